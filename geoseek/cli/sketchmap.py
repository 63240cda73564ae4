"""``geoseek train|eval|build sketchmap``: the sketch-map (DeepSSN) capability on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geoseek.cli._util import add_json_flag, default_data_dir, subparsers
from geoseek.errors import InvalidInputError, NotFoundError

DEFAULT_REGION = "malta-2018-08.osm.pbf"


def _region(path: str | None) -> Path:
    p = Path(path) if path else default_data_dir() / "osm" / DEFAULT_REGION
    if not p.is_file():
        raise NotFoundError(f"OSM file not found: {p}")
    return p


def _strengths(text: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InvalidInputError(f"--strengths expects comma-separated numbers, got {text!r}") from None
    if not vals or any(v < 0 or v > 3 for v in vals):
        raise InvalidInputError(f"--strengths must be numbers in [0, 3], got {text!r}")
    return vals


def run_train(args: argparse.Namespace) -> int:
    import torch

    from geoseek.losses.mining_schedule import MiningSchedule
    from geoseek.sketchmap import SketchMapTask, feedback_sketches, prepare_data
    from geoseek.train import FitConfig, fit

    if args.threads:
        torch.set_num_threads(args.threads)
    region = _region(args.region)
    data = prepare_data(
        region, window_m=args.window_m, size=args.size, copies=args.copies, cache_dir=args.cache, progress=not args.quiet
    )
    feedback = feedback_sketches(args.with_feedback, data) if args.with_feedback else None
    if feedback is not None:
        print(f"feedback: {sum(len(v) for v in feedback.values())} sketches of {len(feedback)} scenes", file=sys.stderr)
    steps = args.steps
    schedule = MiningSchedule(
        random_until=int(steps * args.phases[0]), neighbours_until=int(steps * args.phases[1]), margin=args.margin,
        refresh_every=max(50, steps // 10),
    )
    config = json.loads(args.model_config) if args.model_config else {}
    model_name = args.model
    init = None
    if args.init:
        from geoseek.checkpoint import load_model

        init, init_payload = load_model(args.init, task="sketchmap") if args.init == "default" else load_model(args.init)
        model_name, config = init_payload["model"], init_payload["config"]
    task = SketchMapTask(data, model_name, config, schedule=schedule, batch_scenes=args.batch_scenes, seed=args.seed, feedback=feedback)
    if init is not None:
        task.model.load_state_dict(init.state_dict())
    cfg = FitConfig(steps=steps, lr=args.lr, validate_every=args.validate_every, monitor="val_mrr", seed=args.seed, threads=args.threads)
    info = {**data.settings, "n_scenes": len(data.scenes), "n_train": len(data.train_idx), "n_val": len(data.val_idx),
            "n_test": len(data.test_idx), "feedback": str(args.with_feedback) if args.with_feedback else None,
            "schedule": {"random_until": schedule.random_until, "neighbours_until": schedule.neighbours_until,
                         "rank_window": list(schedule.rank_window)}}
    res = fit(task, cfg, args.out, data=info, progress=not args.quiet)
    print(f"best {res['best']} -> {args.out}", file=sys.stderr)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from geoseek.checkpoint import load_model
    from geoseek.sketchmap import eval_queries, evaluate_retrieval, prepare_data
    from geoseek.sources.osm import read_osm

    torch.set_num_threads(args.threads or torch.get_num_threads())
    region = _region(args.region)
    model, payload = load_model(args.model, task="sketchmap")
    s = payload.get("data", {})
    models = {"model": model}
    base_name = None
    if args.baseline:
        base_model, base_payload = load_model(args.baseline)
        base_name = base_payload["model"].removeprefix("sketchmap-")
        models["baseline"] = base_model
    osm = read_osm(region)
    data = prepare_data(
        region, window_m=s.get("window_m", 480.0), size=s.get("size", 64), copies=s.get("copies", 6),
        holdout=s.get("holdout", 0.2), val=s.get("val", 0.08), split_seed=s.get("split_seed", 0),
        strength=tuple(s.get("strength", (0.3, 1.5))), cache_dir=args.cache, progress=not args.quiet, osm=osm,
    )
    strengths = _strengths(args.strengths)
    queries = eval_queries(osm, data, strengths, args.queries, progress=not args.quiet, cache_dir=args.cache)
    fusion = None
    if args.fusion:
        from geoseek.sketchmap import choose_fusion_weight

        w, val_scores = choose_fusion_weight(model, data)
        fusion = {"model": w}
        print(f"raw-pixel fusion weight {w:g} (validation MRR by weight: {val_scores})", file=sys.stderr)
    res = evaluate_retrieval(models, data, queries, fusion)
    if args.figure:
        from geoseek.sketchmap import figure_top5

        q, truth = queries[float(args.main_strength)] if float(args.main_strength) in queries else next(iter(queries.values()))
        figure_top5(model, data, q, truth, args.figure)
        print(f"figure -> {args.figure}", file=sys.stderr)
    main = f"{args.main_strength:g}" if f"{args.main_strength:g}" in res["by_strength"] else next(iter(res["by_strength"]))
    row = res["by_strength"][main]
    out = {"model": payload["model"], "checkpoint": payload["path"], "region": region.name, "strength": float(main), **row["model"]}
    out.update({f"raw_{k}": v for k, v in row["raw"].items()})
    if "baseline" in row:
        out.update({f"{base_name}_{k}": v for k, v in row["baseline"].items()})
        out["baseline_checkpoint"] = str(args.baseline)
    if fusion:
        out.update({f"fused_{k}": v for k, v in row["model+raw"].items()})
        out["fusion_weight"] = fusion["model"]
    out.update({"n_scenes": res["n_scenes"], "n_queries": res["n_queries"], "by_strength": res["by_strength"]})
    if not args.json or args.verbose:
        print(f"{'strength':>8} {'model':>22} {'MRR':>6} {'@1':>6} {'@3':>6} {'@5':>6} {'@10':>6}", file=sys.stderr)
        for st, r in res["by_strength"].items():
            for name, m in r.items():
                label = {"model": payload["model"], "baseline": f"sketchmap-{base_name}", "raw": "raw kNN",
                         "model+raw": "model + raw fusion"}[name]
                print(f"{st:>8} {label:>22} {m['mrr']:6.3f} {m['acc_at_1']:6.3f} {m['acc_at_3']:6.3f} {m['acc_at_5']:6.3f} {m['acc_at_10']:6.3f}", file=sys.stderr)
    if args.json:
        from geoseek.cli import emit_json

        emit_json(out)
    return 0


def run_build(args: argparse.Namespace) -> int:
    from geoseek.sketchmap import build_scene_collection

    region = _region(args.region)
    col = build_scene_collection(region, args.out, model=args.model, overwrite=args.overwrite, progress=not args.quiet,
                                 fusion_weight=args.fusion_weight)
    print(f"{len(col)} scenes -> {col.path}", file=sys.stderr)
    return 0


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    p = subparsers(verbs["train"]).add_parser(
        "sketchmap", help="train a sketch-map encoder (DeepSSN) on simulated sketches of a region's OSM scenes"
    )
    p.add_argument("region", nargs="?", help=f"OSM file (default: <data>/osm/{DEFAULT_REGION})")
    p.add_argument("--out", type=Path, default=Path("runs/sketchmap.pt"), help="checkpoint path (resumes from OUT.last)")
    p.add_argument("--model", default="sketchmap-resnet", help="encoder: sketchmap-resnet or sketchmap-sppcnn")
    p.add_argument("--model-config", help="JSON of constructor keywords, e.g. '{\"widths\": [32, 64, 96, 128]}'")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-scenes", type=int, default=24, help="scenes per batch (each as 1 scene + 2 sketches)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--phases", type=float, nargs=2, default=(0.15, 0.5), metavar=("RANDOM", "NEIGHBOURS"),
                   help="share of steps that end the random and the neighbour mining phases (then semi-hard)")
    p.add_argument("--window-m", type=float, default=480.0, help="scene window side, ground metres")
    p.add_argument("--size", type=int, default=64, help="scene raster pixels")
    p.add_argument("--copies", type=int, default=6, help="simulated training sketches per scene")
    p.add_argument("--cache", type=Path, help="directory to cache scenes and simulated sketches (.npz)")
    p.add_argument("--init", metavar="CHECKPOINT", help="start from this checkpoint (path or 'default'; its model and config win)")
    p.add_argument("--with-feedback", metavar="COLLECTION", help="also train on the (sketch, chosen scene) feedback stored in COLLECTION")
    p.add_argument("--validate-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_train)

    p = subparsers(verbs["eval"]).add_parser(
        "sketchmap", help="DeepSSN protocol: rank of the true scene for simulated sketch queries of held-out scenes"
    )
    p.add_argument("region", nargs="?", help=f"OSM file (default: <data>/osm/{DEFAULT_REGION})")
    p.add_argument("--model", default="default", help="checkpoint path or 'default'")
    p.add_argument("--baseline", help="a second checkpoint to compare (e.g. the SPP-CNN)")
    p.add_argument("--queries", type=int, default=200, help="held-out scenes queried (0: all)")
    p.add_argument("--strengths", default="0.5,1,1.5", help="sketch distortion strengths, comma-separated")
    p.add_argument("--main-strength", type=float, default=1.0, help="strength of the headline figures")
    p.add_argument("--cache", type=Path, help="directory to cache scenes and simulated sketches (.npz)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--verbose", action="store_true", help="print the table also with --json")
    p.add_argument("--fusion", action="store_true",
                   help="also rank by model cosine + w × raw-pixel cosine, w chosen on the validation sketches")
    p.add_argument("--figure", type=Path, help="also save a PNG of sketch queries with their top-5 scenes")
    add_json_flag(p)
    p.set_defaults(func=run_eval)

    p = subparsers(verbs["build"]).add_parser(
        "sketchmap", help="cut a region into scenes and embed them for sketch-map search (modality osm-scenes)"
    )
    p.add_argument("region", nargs="?", help=f"OSM file (default: <data>/osm/{DEFAULT_REGION})")
    p.add_argument("--out", type=Path, required=True, help="collection directory")
    p.add_argument("--model", default="default", help="sketch-map checkpoint path or 'default'")
    p.add_argument("--fusion-weight", type=float, default=None,
                   help="rerank the top 100 by model + W × raw-pixel cosine (default: the checkpoint's chosen weight, else 0)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_build)
