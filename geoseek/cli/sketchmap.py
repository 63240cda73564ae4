"""``geoseek train|eval|build sketchmap``: the sketch-map (DeepSSN) capability on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geoseek.cli._util import add_json_flag, comma_names, int_in, default_data_dir, subparsers
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


def _recipe(args: argparse.Namespace):
    from geoseek.capabilities.sketchmap.multi import SketchRecipe

    try:
        config = json.loads(args.model_config) if args.model_config else {}
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--model-config is not JSON: {exc}") from None
    if args.steps < 1 or args.batch_scenes < 2:
        raise InvalidInputError("--steps must be >= 1 and --batch-scenes >= 2")
    return SketchRecipe(
        model=args.train_model if hasattr(args, "train_model") else args.model, model_config=config, steps=args.steps,
        batch_scenes=args.batch_scenes, lr=args.lr, margin=args.margin, phases=tuple(args.phases), window_m=args.window_m,
        size=args.size, copies=args.copies, validate_every=args.validate_every, seed=args.seed, mix=args.mix, init=args.init,
        shifts=args.shifts,
    )


def _add_recipe_args(p: argparse.ArgumentParser, *, model_flag: str = "--model") -> None:
    """The training recipe's flags (``train sketchmap``; ``eval sketchmap --leave-one-out`` trains each fold by them)."""
    p.add_argument(model_flag, dest="train_model" if model_flag != "--model" else "model", default="sketchmap-resnet",
                   help="encoder to train: sketchmap-resnet or sketchmap-sppcnn")
    p.add_argument("--model-config", help="JSON of constructor keywords, e.g. '{\"widths\": [32, 64, 96, 128]}'")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-scenes", type=int, default=24, help="scenes per batch (each as 1 scene + 2 sketches)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--margin", type=float, default=0.2)
    p.add_argument("--phases", type=float, nargs=2, default=(0.15, 0.5), metavar=("RANDOM", "NEIGHBOURS"),
                   help="share of steps that end the random and the neighbour mining phases (then semi-hard)")
    p.add_argument("--window-m", type=float, default=480.0, help="scene window side, ground metres (any latitude)")
    p.add_argument("--size", type=int, default=64, help="scene raster pixels (480 m / 64 px = 7.5 m per pixel)")
    p.add_argument("--copies", type=int, default=6, help="simulated training sketches per scene")
    p.add_argument("--shifts", type=int_in(1, 8), default=1, metavar="N",
                   help="also train on the scene grid shifted by 1/N of a window in x and y (up to N² times the "
                        "training scenes; windows overlapping a validation or held-out scene are left out)")
    p.add_argument("--init", metavar="CHECKPOINT", help="start from this checkpoint (path or 'default'; its model and config win)")
    p.add_argument("--validate-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mix", choices=("sqrt", "uniform", "size"), default="sqrt",
                   help="several regions: each batch scene draws its region with probability ∝ sqrt(its training "
                        "scenes) (sqrt), equally (uniform) or ∝ its scenes (size)")


def run_train(args: argparse.Namespace) -> int:
    from geoseek.capabilities.sketchmap.multi import train_sketchmap

    regions = [_region(r) for r in args.region] if args.region else [_region(None)]
    res = train_sketchmap(regions, args.out, _recipe(args), cache=args.cache, threads=args.threads,
                          progress=not args.quiet, feedback_collection=args.with_feedback)
    print(f"best {res['best']} -> {args.out}", file=sys.stderr)
    return 0


def _eval_regions(args: argparse.Namespace, regions: list[Path], adapt_s: float) -> int:
    """Several regions, or ``--leave-one-out``: per-region figures and their mean (one JSON object)."""
    from geoseek.capabilities.sketchmap.regions import evaluate_regions, leave_one_out

    strengths = _strengths(args.strengths)
    kw = {"queries": args.queries or None, "strength": float(args.main_strength) if args.main_strength in strengths
          else strengths[0], "adapt_s": adapt_s, "adapt_seed": args.adapt_seed, "with_default": args.with_default}
    if args.leave_one_out:
        if not args.checkpoints:
            raise InvalidInputError("--leave-one-out needs --checkpoints DIR (the folds' models are kept there)")
        out = leave_one_out(regions, _recipe(args), args.checkpoints, cache=args.cache, threads=args.threads or 1,
                            progress=not args.quiet, hold_out=comma_names(args.hold_out), **kw)
    else:
        out = evaluate_regions(regions, args.model, cache=args.cache, progress=not args.quiet, **kw)
    for r in out["regions"]:
        extra = f", adapted {r['adapt_seconds']:.0f} s" if "adapt_seconds" in r else ""
        fused = f", as searched (raw rerank {r['fusion_weight']:g}) {r['search_mrr']:.3f}" if r.get("fusion_weight") else ""
        print(f"{r['region']:>28}: MRR {r['mrr']:.3f}{fused} (raw {r['raw_mrr']:.3f}), {r['n_queries']} queries{extra}",
              file=sys.stderr)
    for r in out["skipped"]:
        print(f"{r['region']:>28}: skipped ({r['reason']})", file=sys.stderr)
    if args.json:
        from geoseek.cli import emit_json

        emit_json(out)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from geoseek.checkpoint import load_model
    from geoseek.capabilities.sketchmap.data import prepare_data
    from geoseek.capabilities.sketchmap.evaluate import eval_queries, evaluate_retrieval
    from geoseek.sources.osm import read_osm

    from geoseek.capabilities.common.regions import parse_duration

    torch.set_num_threads(args.threads or torch.get_num_threads())
    regions = [_region(r) for r in args.region] if args.region else [_region(None)]
    adapt_s = parse_duration(args.adapt)
    if args.leave_one_out or len(regions) > 1:
        return _eval_regions(args, regions, adapt_s)
    region = regions[0]
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
    adapt_record = None
    if adapt_s > 0:  # adapt on the region's scenes (seeds ADAPT_SEED...), never on the query sketches below
        from geoseek.capabilities.sketchmap.adapt import adapt_sketchmap

        model, _, adapt_record = adapt_sketchmap(region, args.model, adapt_s, seed=args.adapt_seed,
                                                 progress=not args.quiet, osm=osm, scenes=data.scenes)
        models["model"] = model
    strengths = _strengths(args.strengths)
    queries = eval_queries(osm, data, strengths, args.queries, progress=not args.quiet, cache_dir=args.cache)
    fusion = None
    if args.fusion:
        from geoseek.capabilities.sketchmap.evaluate import choose_fusion_weight

        w, val_scores = choose_fusion_weight(model, data)
        fusion = {"model": w}
        print(f"raw-pixel fusion weight {w:g} (validation MRR by weight: {val_scores})", file=sys.stderr)
    res = evaluate_retrieval(models, data, queries, fusion)
    if args.figure:
        from geoseek.capabilities.sketchmap.figures import figure_top5

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
    from geoseek.capabilities.sketchmap.regions import query_seed

    out["query_seeds"] = {f"{st:g}": query_seed(st) for st in strengths}
    if adapt_record is not None:
        from geoseek.capabilities.sketchmap.adapt import ADAPT_SEED

        out.update({"adapt_seconds": adapt_record["seconds"], "adapt_sketch_seed": ADAPT_SEED, "adaptation": adapt_record})
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
    from geoseek.capabilities.sketchmap.build import build_scene_collection

    from geoseek.cli._build_flags import build_kwargs

    from geoseek.capabilities.common.regions import parse_duration

    if not args.region:
        raise InvalidInputError("build sketchmap needs the OSM file of your region (e.g. geoseek build sketchmap "
                                "my-city.osm.pbf --out scenes/)")
    region = _region(args.region)
    adapt_s = parse_duration(args.adapt)
    if adapt_s > 0:
        return _build_adapted(args, region, adapt_s)
    report: dict = {}
    col = build_scene_collection(region, args.out, model=args.model, overwrite=args.overwrite,
                                 progress=not (args.quiet or args.json), fusion_weight=args.fusion_weight,
                                 report=report, **build_kwargs(args))
    print(f"{len(col)} scenes -> {col.path}", file=sys.stderr)
    if args.json:
        from geoseek.cli import emit_json

        emit_json(report)
    return 0


def _build_adapted(args: argparse.Namespace, region: Path, adapt_s: float) -> int:
    """``build sketchmap REGION --adapt DURATION``: adapt the model on the region, then build with it."""
    from geoseek.cli._build_flags import build_kwargs
    from geoseek.capabilities.common.adapt import adapted_checkpoint
    from geoseek.capabilities.sketchmap.adapt import adapt_sketchmap
    from geoseek.capabilities.sketchmap.build import build_scene_collection

    net, payload, record = adapt_sketchmap(region, args.model, adapt_s, seed=args.adapt_seed, progress=not args.quiet)
    print(f"adapted {record['base_checkpoint']} on {region.name}: {record['steps']} steps in {record['seconds']:.1f} s "
          f"(budget {adapt_s:g} s)", file=sys.stderr)
    report: dict = {}
    with adapted_checkpoint(net, payload, record, Path(args.out).parent) as path:
        col = build_scene_collection(region, args.out, model=path, overwrite=args.overwrite,
                                     progress=not (args.quiet or args.json), fusion_weight=args.fusion_weight,
                                     report=report, extra={"adaptation": record}, **build_kwargs(args))
    print(f"{len(col)} scenes -> {col.path}", file=sys.stderr)
    if args.json:
        from geoseek.cli import emit_json

        emit_json({**report, "adaptation": record})
    return 0


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    p = subparsers(verbs["train"]).add_parser(
        "sketchmap", help="train a sketch-map encoder (DeepSSN) on simulated sketches of one or several regions' OSM scenes"
    )
    p.add_argument("region", nargs="*", help=f"OSM file(s); several: batches mix them by --mix (default: <data>/osm/{DEFAULT_REGION})")
    p.add_argument("--out", type=Path, default=Path("runs/sketchmap.pt"), help="checkpoint path (resumes from OUT.last)")
    _add_recipe_args(p)
    p.add_argument("--cache", type=Path, help="directory to cache scenes and simulated sketches (.npz)")
    p.add_argument("--with-feedback", metavar="COLLECTION", help="also train on the (sketch, chosen scene) feedback stored in COLLECTION")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run_train)

    p = subparsers(verbs["eval"]).add_parser(
        "sketchmap", help="DeepSSN protocol: rank of the true scene for simulated sketch queries of held-out scenes"
    )
    p.add_argument("region", nargs="*", help=f"OSM file(s) (default: <data>/osm/{DEFAULT_REGION}); several: per-region "
                   "figures and their mean")
    p.add_argument("--model", default="default", help="checkpoint path or 'default'")
    p.add_argument("--baseline", help="a second checkpoint to compare (e.g. the SPP-CNN)")
    p.add_argument("--adapt", default="0", metavar="DURATION",
                   help="first fine-tune the model on the region's own scenes for this long (30s, 10m, 1h; 0: no), "
                        "with sketch seeds apart from the queries'; the JSON gains adapt_seconds")
    p.add_argument("--adapt-seed", type=int, default=0, help="seed of the adaptation's optimizer and batches")
    p.add_argument("--leave-one-out", action="store_true",
                   help="for each region, train a model on the others (the recipe flags below) and score it there")
    p.add_argument("--checkpoints", type=Path, help="--leave-one-out: folder of the folds' models (reused by reruns)")
    p.add_argument("--hold-out", metavar="NAMES", help="--leave-one-out: run only the folds holding out these regions "
                   "(comma list of file names or stems); the others still train every fold")
    p.add_argument("--with-default", action="store_true", help="several regions: also score the default model")
    _add_recipe_args(p, model_flag="--train-model")
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
    p.add_argument("region", nargs="?", help="OSM file of your region (required)")
    p.add_argument("--out", type=Path, required=True, help="collection directory")
    p.add_argument("--model", default="default", help="sketch-map checkpoint path or 'default'")
    p.add_argument("--adapt", default="0", metavar="DURATION",
                   help="fine-tune the model on the region's own OSM first (no labels) for this long: 30s, 10m, 1h "
                        "(0: no); the adapted model is the collection's, the manifest's extra.adaptation says what was done")
    p.add_argument("--adapt-seed", type=int, default=0, help="seed of the adaptation")
    p.add_argument("--fusion-weight", type=float, default=None,
                   help="rerank the top 100 by model + W × raw-pixel cosine (default: the checkpoint's chosen weight, else 0)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    from geoseek.cli._build_flags import add_build_flags

    add_build_flags(p, partition_size=256, unit="candidate windows")
    add_json_flag(p)
    p.set_defaults(func=run_build)
