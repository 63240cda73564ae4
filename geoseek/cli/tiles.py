"""CLI of the OSM-tiles capability: ``train tiles``, ``build osm``, ``eval tiles``, ``bench tiles``."""

from __future__ import annotations

import argparse
from pathlib import Path

from geoseek.cli._build_flags import add_build_flags
from geoseek.cli._util import TILE_ZOOM, add_json_flag, comma_names, default_data_dir, int_in, subparsers


def _region(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        from geoseek.errors import NotFoundError

        raise NotFoundError(f"OSM file not found: {p}")
    return p


def _default_region(name: str = "malta-2018-08.osm.pbf") -> str:
    return str(default_data_dir() / "osm" / name)


def _tile_m(args: argparse.Namespace) -> float:
    """``--tile-m``: ground metres of a tile's model input (default TILE_GROUND_M; 0: the XYZ tile itself)."""
    from geoseek.capabilities.tiles.data import TILE_GROUND_M

    return TILE_GROUND_M if args.tile_m is None else float(args.tile_m)


def _add_tile_m(p: argparse.ArgumentParser, what: str) -> None:
    from geoseek.argtypes import float_in

    # default None, resolved by _tile_m: the capability's package is not imported to build the parser
    p.add_argument("--tile-m", type=float_in(0.0, 10_000.0), default=None, metavar="M",
                   help=f"{what} a window of M ground metres centred on each XYZ tile, the same scale at every "
                        "latitude (default 250, the middle of the training windows; 0: the XYZ tile itself, "
                        "306 m × cos(lat) at z17, as before)")


# --- train ---------------------------------------------------------------------------------------


def run_train(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.capabilities.tiles.task import TileTrainConfig, train_tiles
    from geoseek.train import FitConfig

    if args.steps <= 0 or args.batch <= 1:
        raise ValueError("--steps must be > 0 and --batch > 1")
    if args.input_pool is not None and args.input_pool < 1:
        raise ValueError("--input-pool must be >= 1")
    if args.land_use_aux < 0 or args.land_use_balance < 0:
        raise ValueError("--land-use-aux and --land-use-balance must be >= 0")
    if args.triplet_weight < 0 or (args.triplet_weight == 0 and args.land_use_aux == 0):
        raise ValueError("--triplet-weight must be >= 0, and 0 only with --land-use-aux W > 0 (else nothing is trained)")
    if args.ensemble < 1:
        raise ValueError("--ensemble must be >= 1")
    model_config: dict = {"input_pool": args.input_pool} if args.input_pool else {}
    if args.widths:
        if args.model != "tile-cnn" or min(args.widths) < 1:
            raise ValueError("--widths takes positive stage widths and applies to tile-cnn only")
        model_config["widths"] = list(args.widths)
    cfg = TileTrainConfig(
        model=args.model, dim=args.dim, batch=args.batch, margin=args.margin,
        model_config=model_config,
        hard_negatives=not args.no_hard_negatives, hard_after=args.hard_after, val_triplets=args.val_triplets,
        val_retrieval=args.val_retrieval, mining=args.mining, land_use_aux=args.land_use_aux,
        land_use_balance=args.land_use_balance, land_use_target=args.land_use_target,
        triplet_weight=args.triplet_weight,
        batch_negatives=not args.rendered_negatives, mix=args.mix,
        sampler={"d_pos": args.d_pos, "d_neg": args.d_neg, "window_m": args.window_m, "size": args.size,
                 "split_block_m": args.split_block_m, "drop_land_use": args.drop_land_use, "split_holdout": args.split_holdout, "split": args.split_holdout > 0},
    )
    fit_cfg = FitConfig(steps=args.steps, lr=args.lr, validate_every=args.validate_every, threads=args.threads,
                        seed=args.seed, warmup=min(100, args.steps // 10))
    regions = [_region(r) for r in args.region] if args.region else [_region(_default_region())]
    summary = train_tiles(regions if len(regions) > 1 else regions[0], args.out, cfg, fit_cfg, resume=not args.no_resume,
                          progress=not args.json, init=args.init, members=args.ensemble)
    result = {"out": str(args.out), "steps": summary["steps"], "seconds": summary["seconds"], "best": summary["best"]}
    if args.json:
        emit_json(result)
    else:
        print(f"saved {args.out}: best {summary['best']}")
    return 0


# --- build ---------------------------------------------------------------------------------------


def run_build(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.capabilities.tiles.build import build_osm_collection

    from geoseek.cli._build_flags import build_kwargs
    from geoseek.capabilities.common.regions import parse_duration

    region = _region(args.region)
    adapt_s = parse_duration(args.adapt)
    if adapt_s > 0:  # fine-tune on the region's own OSM first (no labels); the collection keeps the adapted model
        from geoseek.capabilities.common.adapt import adapted_checkpoint
        from geoseek.capabilities.tiles.adapt import adapt_tiles

        net, payload, record = adapt_tiles(region, args.model, adapt_s, seed=args.adapt_seed, progress=True)
        with adapted_checkpoint(net, payload, record, Path(args.out).parent) as path:
            result = build_osm_collection(region, args.out, path, zoom=args.zoom, overwrite=args.overwrite, progress=True,
                                          extra={"adaptation": record}, tile_ground_m=_tile_m(args), **build_kwargs(args))
        result["adaptation"] = record
    else:
        result = build_osm_collection(
            region, args.out, args.model, zoom=args.zoom, overwrite=args.overwrite, progress=True,
            tile_ground_m=_tile_m(args), **build_kwargs(args),
        )
    if args.json:
        emit_json(result)
    else:
        print(f"built {result['collection']}: {result['items']} tiles in {result['seconds']:.1f} s "
              f"({result['tiles_per_s']:.0f} tiles/s)")
    return 0


# --- eval ----------------------------------------------------------------------------------------


def run_eval(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.capabilities.tiles.evaluate import evaluate_tiles

    from geoseek.capabilities.common.regions import parse_duration

    baselines = [b for b in args.baselines.split(",") if b] if args.baselines else []
    regions = [_region(r) for r in args.region] if args.region else [_region(_default_region())]
    adapt_s = parse_duration(args.adapt)
    eval_kw = {"zoom": args.zoom, "exclude_m": args.exclude_m, "baselines": baselines,
               "protocols": [p for p in args.protocol.split(",") if p], "tile_ground_m": _tile_m(args)}
    if args.leave_one_out or len(regions) > 1:
        return _eval_regions(args, regions, adapt_s, eval_kw)
    if adapt_s > 0:
        from geoseek.capabilities.tiles.regions import score_region

        result = score_region(regions[0], args.model, adapt_s=adapt_s, adapt_seed=args.adapt_seed,
                              progress=not args.json, split=args.split, figures=args.figures, **eval_kw)
    else:
        result = evaluate_tiles(regions[0], args.model, split=args.split, progress=not args.json,
                                figures=args.figures, **eval_kw)
    if args.json:
        emit_json(result)
    else:
        print(f"{result['region']}: {result['labelled_tiles']} labelled tiles ({result['split']} split), "
              f"exclusion {result['exclude_m']:.0f} m")
        for i, proto in enumerate(args.protocol.split(",")):
            pp = "" if i == 0 else f"{proto}_"
            print(f"land use {proto} ({result[pp + 'query_tiles']} query tiles)")
            print(f"  {'method':<16} {'P@10':>7} {'mAP':>7}")
            for name, pre in [("ours", "")] + [(n, f"{n}_") for n in ("raw", "imagenet", "random")]:
                if f"{pp}{pre}p_at_10" in result:
                    print(f"  {name:<16} {result[pp + pre + 'p_at_10']:7.3f} {result[pp + pre + 'map']:7.3f}")
    return 0


def _loo_recipe(args: argparse.Namespace):
    """The folds' recipe: the default model's training task (or ``--recipe`` JSON over it), no held-out blocks."""
    import json
    from dataclasses import fields

    from geoseek.capabilities.tiles.task import TileTrainConfig
    from geoseek.checkpoint import read_checkpoint, resolve_checkpoint
    from geoseek.errors import InvalidInputError
    from geoseek.train import FitConfig

    base = read_checkpoint(resolve_checkpoint("default", "tiles")).get("data", {}).get("task", {})
    try:
        over = json.loads(args.recipe) if args.recipe else {}
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--recipe is not JSON: {exc}") from None
    known = {f.name for f in fields(TileTrainConfig)}
    bad = sorted(set(over) - known)
    if bad:
        raise InvalidInputError(f"--recipe: unknown fields {bad} (known: {sorted(known)})")
    task = {k: v for k, v in {**base, **over}.items() if k in known}
    task["sampler"] = {**base.get("sampler", {}), **over.get("sampler", {}), "split": False, "split_holdout": 0.0}
    cfg = TileTrainConfig(**task)
    if args.steps < 1:
        raise InvalidInputError("--steps must be >= 1")
    fit_cfg = FitConfig(steps=args.steps, lr=args.lr, validate_every=args.validate_every, threads=args.threads,
                        seed=args.seed, warmup=min(100, args.steps // 10),
                        monitor="val_p10" if cfg.val_retrieval > 0 else "val")
    return cfg, fit_cfg


def _eval_regions(args: argparse.Namespace, regions: list[Path], adapt_s: float, eval_kw: dict) -> int:
    """Several regions, or ``--leave-one-out``: per-region figures, skipped regions with why, and their mean."""
    import sys

    from geoseek.cli import emit_json
    from geoseek.capabilities.tiles.regions import evaluate_regions, leave_one_out
    from geoseek.errors import InvalidInputError

    kw = {**eval_kw, "adapt_s": adapt_s, "adapt_seed": args.adapt_seed}
    if args.leave_one_out:
        if not args.checkpoints:
            raise InvalidInputError("--leave-one-out needs --checkpoints DIR (the folds' models are kept there)")
        cfg, fit_cfg = _loo_recipe(args)
        out = leave_one_out(regions, cfg, fit_cfg, args.checkpoints, progress=not args.json,
                            hold_out=comma_names(args.hold_out), **kw)
    else:
        out = evaluate_regions(regions, args.model, progress=not args.json, split=args.split, **kw)
    out["tile_ground_m"] = float(eval_kw["tile_ground_m"] or 0.0)
    for r in out["regions"]:
        mac = r.get("macro_p_at_10")
        print(f"{r['region']:>28}: P@10 {r['p_at_10']:.3f} (raw {r.get('raw_p_at_10', float('nan')):.3f}), macro "
              f"{'-' if mac is None else f'{mac:.3f}'}, {r['query_tiles']} query tiles", file=sys.stderr)
    for r in out["skipped"]:
        print(f"{r['region']:>28}: skipped ({r['reason']})", file=sys.stderr)
    if args.json:
        emit_json(out)
    return 0


# --- bench ---------------------------------------------------------------------------------------


def run_bench(args: argparse.Namespace) -> int:
    import time

    import numpy as np
    import torch

    from geoseek.checkpoint import load_model
    from geoseek.cli import emit_json
    from geoseek.sources.render import nonempty_tiles, render_xyz
    from geoseek.capabilities.tiles.data import embed_tiles, load_features

    torch.set_num_threads(args.threads)
    t0 = time.time()
    feats = load_features(_region(args.region))
    t_read = time.time() - t0
    xy = nonempty_tiles(feats, args.zoom)
    rng = np.random.default_rng(0)
    pick = [xy[i] for i in rng.choice(len(xy), size=min(args.n, len(xy)), replace=False)]
    render_xyz(feats, args.zoom, *pick[0])  # builds the spatial index outside the timing
    t = time.time()
    tiles = np.stack([render_xyz(feats, args.zoom, x, y, 128) for x, y in pick])
    t_render = time.time() - t
    model, payload = load_model(args.model, "tiles") if args.model == "default" else load_model(args.model)
    embed_tiles(model, tiles[:8])
    t = time.time()
    embed_tiles(model, tiles)
    t_embed = time.time() - t
    result = {
        "region": Path(args.region).name, "zoom": args.zoom, "tiles": len(pick), "threads": args.threads,
        "read_s": t_read, "nonempty_tiles": len(xy), "render_tiles_per_s": len(pick) / t_render,
        "embed_tiles_per_s": len(pick) / t_embed, "render_and_embed_tiles_per_s": len(pick) / (t_render + t_embed),
        "model": payload["model"],
    }
    if args.json:
        emit_json(result)
    else:
        for k, v in result.items():
            print(f"{k:>30}: {v:.1f}" if isinstance(v, float) else f"{k:>30}: {v}")
    return 0


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    p = subparsers(verbs["train"]).add_parser(
        "tiles", help="train a Loc2Vec tile encoder on one or several OSM files (triplet loss, near = similar)")
    p.add_argument("region", nargs="*", help="OSM file(s) (.osm.pbf, .osm, .osm.gz, .osm.bz2; default: Malta under "
                   "the data folder); several: each batch's pairs are shared among them by --mix")
    p.add_argument("--mix", choices=("sqrt", "uniform", "size"), default="sqrt",
                   help="several regions: each pair draws its region with probability ∝ sqrt(its non-empty z16 "
                        "cells) (sqrt), equally (uniform) or ∝ its cells (size)")
    p.add_argument("--out", type=Path, default=Path("tiles-model.pt"), help="checkpoint path (resumes from OUT.last)")
    p.add_argument("--model", default="tile-cnn", help="tile encoder: tile-cnn or tile-efficientnet-lite0")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--input-pool", type=int, default=None, metavar="P",
                   help="average-pool the input tiles by P first (tile-cnn default 2, tile-efficientnet-lite0 1)")
    p.add_argument("--widths", type=int, nargs="+", default=None, metavar="W",
                   help="tile-cnn: channels of its stride-2 stages (default 24 48 96 128)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=32, help="triplets per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--margin", type=float, default=0.3)
    p.add_argument("--no-hard-negatives", action="store_true", help="only random far negatives")
    p.add_argument("--hard-after", type=int, default=200, help="mine hard negatives after this many steps")
    p.add_argument("--mining", choices=("semihard", "all"), default="semihard",
                   help="after --hard-after: one semi-hard in-batch negative per anchor, or all valid ones")
    p.add_argument("--rendered-negatives", action="store_true",
                   help="render one far negative per triplet (default: other pairs of the batch >= d_neg away)")
    p.add_argument("--d-pos", type=float, nargs=2, default=(100.0, 500.0), metavar=("MIN", "MAX"), help="positive distance, m")
    p.add_argument("--d-neg", type=float, default=2000.0, help="minimum negative distance, m")
    p.add_argument("--window-m", type=float, nargs=2, default=(200.0, 320.0), metavar=("MIN", "MAX"), help="window width, m")
    p.add_argument("--size", type=int, default=128, help="tile pixels")
    p.add_argument("--split-block-m", type=float, default=2000.0, help="spatial split block size (mercator m)")
    p.add_argument("--split-holdout", type=float, default=0.25, help="share of blocks held out for evaluation (0: none)")
    p.add_argument("--drop-land-use", type=float, default=0.5,
                   help="probability of blanking a tile's land-use channels in training (per tile)")
    p.add_argument("--land-use-aux", type=float, default=0.0, metavar="W",
                   help="weight of the masked land-use objective: a linear head on the embedding predicts each "
                        "tile's own land-use cover, measured before --drop-land-use blanks it (0: pure Loc2Vec)")
    p.add_argument("--land-use-balance", type=float, default=0.0, metavar="A",
                   help="weigh the land-use objective's classes by (mean share)^-A (0: unweighted, 1: inverse frequency)")
    p.add_argument("--land-use-target", choices=("cover", "dominant"), default="cover",
                   help="the land-use objective predicts each tile's cover shares (soft) or its dominant land use "
                        "(the evaluation's label: most pixels if >= 20 %%, else none)")
    p.add_argument("--triplet-weight", type=float, default=1.0, metavar="W",
                   help="weight of the triplet loss (0 with --land-use-aux: the land-use objective alone, a "
                        "supervised diagnostic)")
    p.add_argument("--init", metavar="CHECKPOINT", default=None,
                   help="start from this checkpoint's weights (path or 'default'), fresh optimizer and schedule")
    p.add_argument("--ensemble", type=int, default=1, metavar="N",
                   help="train N models with seeds SEED..SEED+N-1 (each at OUT's stem + .m<i>, resumable) and save "
                        "them side by side as one tile-ensemble model at OUT (embeddings concatenated)")
    p.add_argument("--val-triplets", type=int, default=200)
    p.add_argument("--val-retrieval", type=int, default=0,
                   help="also validate by land-use P@10 (land use hidden) on up to N z17 tiles of the training "
                        "blocks, and keep the best checkpoint by it (0: off)")
    p.add_argument("--validate-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true")
    add_json_flag(p)
    p.set_defaults(func=run_train)

    p = subparsers(verbs["build"]).add_parser("osm", help="render every non-empty tile of an OSM file into a collection")
    p.add_argument("region", help="OSM file (.osm.pbf, .osm, .osm.gz, .osm.bz2)")
    p.add_argument("--out", required=True, type=Path, help="collection directory")
    p.add_argument("--model", default="default", help="tile model checkpoint, or 'default'")
    p.add_argument("--zoom", type=TILE_ZOOM, default=17, help="XYZ zoom of the tiles (17 ≈ 250 m at 36° N)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--adapt", default="0", metavar="DURATION",
                   help="fine-tune the model on the region's own OSM first (Loc2Vec triplets, no labels) for this "
                        "long: 30s, 10m, 1h (0: no); the collection keeps the adapted model, its manifest's "
                        "extra.adaptation says what was done")
    p.add_argument("--adapt-seed", type=int, default=0, help="seed of the adaptation")
    _add_tile_m(p, "the model sees (and the thumbnails and labels show)")
    add_build_flags(p, partition_size=256, unit="tiles")
    add_json_flag(p)
    p.set_defaults(func=run_build)

    p = subparsers(verbs["eval"]).add_parser("tiles", help="land-use kNN retrieval of tile embeddings vs baselines")
    p.add_argument("region", nargs="*", help="OSM file(s) (default: Malta under the data folder); several: "
                   "per-region figures, skipped regions with the reason, and their mean")
    p.add_argument("--adapt", default="0", metavar="DURATION",
                   help="first fine-tune the model on the region (Loc2Vec triplets, no labels) for this long: 30s, "
                        "10m, 1h (0: no); the JSON gains adapt_seconds and the adaptation's record")
    p.add_argument("--adapt-seed", type=int, default=0, help="seed of the adaptation")
    p.add_argument("--leave-one-out", action="store_true",
                   help="for each region, train a model on the others (the default model's recipe, --recipe, "
                        "--steps) and score it there")
    p.add_argument("--checkpoints", type=Path, help="--leave-one-out: folder of the folds' models (reused by reruns)")
    p.add_argument("--hold-out", metavar="NAMES", help="--leave-one-out: run only the folds holding out these regions "
                   "(comma list of file names or stems); the others still train every fold")
    p.add_argument("--recipe", help="--leave-one-out: JSON of TileTrainConfig fields over the default model's recipe")
    p.add_argument("--steps", type=int, default=3000, help="--leave-one-out: training steps per fold")
    p.add_argument("--lr", type=float, default=2e-3, help="--leave-one-out: learning rate")
    p.add_argument("--validate-every", type=int, default=200, help="--leave-one-out: validation interval")
    p.add_argument("--seed", type=int, default=0, help="--leave-one-out: training seed")
    p.add_argument("--threads", type=int, default=1, help="--leave-one-out: torch threads of training")
    p.add_argument("--model", default="default")
    p.add_argument("--zoom", type=TILE_ZOOM, default=17)
    p.add_argument("--split", choices=("test", "all", "train"), default=None,
                   help="tiles to evaluate (default: held-out blocks when the model was trained on this region, else all)")
    p.add_argument("--exclude-m", type=float, default=1000.0, help="ignore database tiles this close to the query")
    p.add_argument("--baselines", default="raw,imagenet,random", help="comma list of raw, imagenet, random")
    p.add_argument("--protocol", default="hidden,visible",
                   help="land-use channels 'hidden' from every method (labels are not in the input) and/or "
                        "'visible'; the first is reported unprefixed")
    p.add_argument("--figures", type=Path, default=None, help="write the t-SNE map and retrieval grid PNGs here")
    _add_tile_m(p, "every method sees, and the label is read from,")
    add_json_flag(p)
    p.set_defaults(func=run_eval)

    p = subparsers(verbs["bench"]).add_parser("tiles", help="tiles/s rendered and embedded")
    p.add_argument("region", nargs="?", default=_default_region())
    p.add_argument("--model", default="default")
    p.add_argument("--zoom", type=TILE_ZOOM, default=17)
    p.add_argument("-n", type=int_in(1, 1_000_000), default=1000, help="tiles to time")
    p.add_argument("--threads", type=int_in(1, 256), default=2)
    add_json_flag(p)
    p.set_defaults(func=run_bench)
