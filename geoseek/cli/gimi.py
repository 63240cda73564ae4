"""CLI of location-explicit image search (GIMI): ``build geo-images``, ``train geo-image``, ``eval geo-image``.

Data defaults to the GIMI dataset over ``../shared/data`` (see
:mod:`geoseek.sources.geo_image_dataset`); caches (features, trained heads) go to
``<repo>/runs/geo-image`` unless ``--work-dir`` says otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from geoseek.cli._util import add_json_flag, default_data_dir, subparsers


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, help="data root holding osm/ and imagery/ (default ../shared/data)")
    p.add_argument("--osm", nargs="*", default=None, metavar="PBF",
                   help="OSM extracts to render (default: Malta, Liechtenstein, Helsinki under --data)")
    p.add_argument("--raster", nargs="*", default=None, metavar="TIF",
                   help="GeoTIFFs to chip (default: landsat8-paraguay, rgbn-5m, neon under --data)")
    p.add_argument("--zoom", type=int, default=16, help="XYZ zoom of the OSM tiles (default 16)")
    p.add_argument("--chip-px", type=int, default=64, help="raster chip size in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and the spectral k-means (default 0)")
    p.add_argument("--work-dir", type=Path, default=None, help="cache of features and trained heads (default runs/geo-image)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")


def _dataset_params(args: argparse.Namespace) -> dict:
    import torch

    from geoseek.sources.geo_image_dataset import DEFAULT_OSM, DEFAULT_RASTERS

    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    if args.zoom < 1 or args.zoom > 20:
        raise ValueError(f"--zoom must be in 1..20, got {args.zoom}")
    if args.chip_px < 8:
        raise ValueError(f"--chip-px must be >= 8, got {args.chip_px}")
    return {
        "osm": tuple(args.osm) if args.osm is not None else DEFAULT_OSM,
        "rasters": tuple(args.raster) if args.raster is not None else DEFAULT_RASTERS,
        "zoom": args.zoom,
        "chip_px": args.chip_px,
    }


def _data_dir(args: argparse.Namespace) -> Path:
    from geoseek.errors import NotFoundError

    d = args.data or default_data_dir()
    if not Path(d).is_dir():
        raise NotFoundError(f"no data directory at {d} (give --data)")
    return Path(d)


def _work_dir(args: argparse.Namespace) -> Path:
    from geoseek.capabilities.gimi.data import DEFAULT_WORK_DIR

    return args.work_dir or DEFAULT_WORK_DIR


def _model_args(args: argparse.Namespace) -> dict:
    out: dict = {"fusion": args.fusion, "location_encoder": args.location_encoder}
    if args.embed_dim:
        out["embed_dim"] = args.embed_dim
    return out


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=600, help="optimizer steps (default 600)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--fusion", choices=("concat", "gated", "image"), default="concat",
                   help="how image and location embeddings combine (default concat + projection)")
    p.add_argument("--location-encoder", default="sphereM", help="registered location encoder (default sphereM)")
    p.add_argument("--embed-dim", type=int, default=None, help="embedding width (default 128)")
    p.add_argument("--margin", type=float, default=0.2, help="triplet / DPT margin α (default 0.2)")
    p.add_argument("--penalty-kind", choices=("normalized", "gaussian", "none"), default="normalized",
                   help="DPT's q(d): normalized distance min(d/s, 1) or gaussian 1 − exp(−d²/2s²) (default normalized)")
    p.add_argument("--penalty-scale-m", type=float, default=50_000.0, help="s of q, metres (default 50000)")
    p.add_argument("--penalty-weight", type=float, default=0.1, help="λ of q (default 0.1)")


def _train_cfg(args: argparse.Namespace, method: str | None = None) -> dict:
    cfg = {"margin": args.margin, "penalty_kind": args.penalty_kind, "penalty_scale_m": args.penalty_scale_m,
           "penalty_weight": args.penalty_weight, "model": _model_args(args)}
    if args.fusion == "gated":
        cfg["model_name"] = "gimi-fusion-gated"
    if method:
        cfg["method"] = method
    return cfg


# ---------------------------------------------------------------------------------- train
def run_train(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.capabilities.gimi import GimiTrainConfig, load_features, train_gimi

    if args.steps <= 0:
        raise ValueError("--steps must be > 0")
    data = load_features(_data_dir(args), _work_dir(args), seed=args.seed, progress=not args.json, **_dataset_params(args))
    cfg = GimiTrainConfig(**_train_cfg(args, args.method))
    summary = train_gimi(data, cfg, args.out, steps=args.steps, lr=args.lr, seed=args.seed, progress=not args.json,
                         resume=not args.no_resume)
    result = {"out": str(args.out), "method": args.method, "steps": summary["steps"],
              "seconds": round(summary["seconds"], 1), "best": summary["best"]}
    if args.json:
        emit_json(result)
    else:
        print(f"saved {args.out}: best {summary['best']}")
    return 0


# ----------------------------------------------------------------------------------- eval
def _fmt(v: dict) -> str:
    return f"{100 * v['mean']:.2f} ± {100 * v['std']:.2f}"


def run_eval(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.capabilities.gimi import METHODS, evaluate_gimi, load_features

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ValueError(f"--methods must list some of {', '.join(METHODS)}; got {args.methods!r}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds expects comma-separated integers, got {args.seeds!r}") from None
    if not seeds or args.steps <= 0:
        raise ValueError("--seeds must list at least one seed and --steps must be > 0")
    data = load_features(_data_dir(args), _work_dir(args), seed=args.seed, progress=not args.json, **_dataset_params(args))
    if not 0.0 <= args.geo_weight <= 1.0 or not args.geo_scale_m > 0:
        raise ValueError("--geo-weight must be in [0, 1] and --geo-scale-m > 0")
    report = evaluate_gimi(data, _work_dir(args), methods, seeds, steps=args.steps, base_beta=args.base_beta,
                           cfg=_train_cfg(args), retrain=args.retrain, progress=not args.json,
                           geo_weight=args.geo_weight, geo_scale_m=args.geo_scale_m)
    if args.json:
        emit_json(report)
        return 0
    print(f"GIMI protocol on {report['n_test']} test images ({report['n_labels_test']} labels); mean ± std over queries (%)")
    print(f"{'method':<10} {'Top-5%':>16} {'Top-10%':>16} {'NDCG@5%':>16} {'NDCG@10%':>16}")
    for name, m in report["methods"].items():
        print(f"{name:<10} {_fmt(m['top5']):>16} {_fmt(m['top10']):>16} {_fmt(m['ndcg5']):>16} {_fmt(m['ndcg10']):>16}")
    return 0


# ---------------------------------------------------------------------------------- build
def run_build(args: argparse.Namespace) -> int:
    from geoseek.checkpoint import resolve_checkpoint
    from geoseek.cli import emit_json
    from geoseek.capabilities.gimi import TASK, build_collection, cached_features_for
    from geoseek.sources.geo_image_dataset import build_geo_image_dataset

    from geoseek.errors import InvalidInputError, NotFoundError

    model = resolve_checkpoint(args.model, TASK)
    if not Path(model).is_file():
        raise NotFoundError(f"no model checkpoint at {model}")
    if not args.geo_scale_m > 0:
        raise ValueError("--geo-scale-m must be > 0")
    if args.data is None and args.osm is None and args.raster is None:
        raise InvalidInputError("build geo-images needs your data: --data DIR (holding osm/ and imagery/), or the "
                                "sources themselves with --osm PBF... and/or --raster TIF...")
    params = _dataset_params(args)
    if args.data is None:  # only the sources named: no default source of the evaluation's data
        params["osm"] = tuple(args.osm or ())
        params["rasters"] = tuple(args.raster or ())
    # explicit sources without --data: relative paths are taken from the current folder, not the evaluation's data
    data_dir = Path(args.data) if args.data is not None else Path(".")
    if args.data is not None and not data_dir.is_dir():
        raise NotFoundError(f"no data directory at {data_dir}")
    ds = build_geo_image_dataset(data_dir, seed=args.seed, progress=not args.json, **params)
    feats = cached_features_for(ds, data_dir, _work_dir(args), args.seed, **params)
    from geoseek.cli._build_flags import build_kwargs

    report: dict = {}
    col = build_collection(ds, model, args.out, overwrite=args.overwrite, geo_scale_m=args.geo_scale_m,
                           progress=not args.json, features=feats, report=report, **build_kwargs(args))
    result = {**report, "out": str(col.path), "count": len(col), "dim": col.dim, "model": str(model)}
    if args.json:
        emit_json(result)
    else:
        print(f"built {col.path}: {len(col)} geo-located images, dim {col.dim}")
    return 0


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    p = subparsers(verbs["build"]).add_parser(
        "geo-images", help="a geo-images collection: raster chips + rendered OSM tiles, embedded image ⊕ location")
    _add_data_args(p)
    p.add_argument("--model", default="default", help="fusion checkpoint, or 'default' (the committed one)")
    p.add_argument("--out", required=True, type=Path, metavar="COLLECTION", help="collection directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace an existing collection")
    p.add_argument("--geo-scale-m", type=float, default=5000.0,
                   help="distance scale s of the geographic similarity exp(−d/s) used by --geo-weight (default 5000 m)")
    from geoseek.cli._build_flags import add_build_flags

    add_build_flags(p, partition_size=256, unit="images")
    add_json_flag(p)
    p.set_defaults(func=run_build)

    p = subparsers(verbs["train"]).add_parser("geo-image", help="train the image ⊕ location fusion heads (GIMI)")
    _add_data_args(p)
    _add_train_args(p)
    p.add_argument("--method", choices=("softmax", "triplet", "dpt"), default="dpt", help="loss (default dpt)")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (.pt)")
    p.add_argument("--no-resume", action="store_true", help="start over even if <out>.last exists")
    add_json_flag(p)
    p.set_defaults(func=run_train)

    p = subparsers(verbs["eval"]).add_parser(
        "geo-image", help="GIMI protocol: Top-5/10%%, NDCG@5/10%% for Base, Softmax, Triplet, DPT")
    _add_data_args(p)
    _add_train_args(p)
    p.add_argument("--methods", default="base,softmax,triplet,dpt", help="comma-separated (default all four)")
    p.add_argument("--seeds", default="0", help="training seeds, comma-separated (default 0)")
    p.add_argument("--base-beta", type=float, default=0.5, help="Base: weight β of the location code (default 0.5)")
    p.add_argument("--retrain", action="store_true", help="train again even when cached heads exist")
    p.add_argument("--geo-weight", type=float, default=0.0,
                   help="rank by (1−W)·cos + W·exp(−d/s), the search-time geographic blend (default 0)")
    p.add_argument("--geo-scale-m", type=float, default=5000.0, help="s of the blend, metres (default 5000)")
    add_json_flag(p)
    p.set_defaults(func=run_eval)
