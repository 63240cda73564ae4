"""CLI of sketch → aerial image retrieval (MLAGT).

* ``geoseek train sketch-image``: train MLAGT on one fold's seen classes (or on all classes).
* ``geoseek build images FOLDER [FOLDER...] --out COLLECTION``: a sketch-searchable collection.
* ``geoseek eval sketch-image --folds 1,2,3,4 --json``: the zero-shot protocol with ablations and baselines.
* ``geoseek eval sketch-realism --json``: real vs synthesized sketches (statistics, a classifier).
* ``geoseek bench sketch-search --queries 100 --db 5000 --json``: end-to-end two-stage search time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from geoseek.cli._util import add_json_flag, default_data_dir, subparsers

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = "mlagt-fused"
DEFAULT_LR = 5e-4


def _cache_default() -> Path:
    return Path.home() / ".cache" / "geoseek" / "sketch-image"


def _common_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=None, help="shared data folder (default: ../shared/data beside the repo)")
    p.add_argument("--cache", type=Path, default=None, help="cache of image features and synthesized sketches (default ~/.cache/geoseek/sketch-image)")
    p.add_argument("--per-class", type=int, default=None, help="use only the first N images of each class (quick runs)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def _parse_folds(text: str) -> list[int]:
    from geoseek.errors import InvalidInputError

    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidInputError(f"--folds expects comma-separated fold numbers like 1,2,3,4, got {text!r}") from None
    if not out or any(not 1 <= f <= 4 for f in out):
        raise InvalidInputError(f"folds are numbered 1..4, got {text!r}")
    return out


def _model_config(args: argparse.Namespace) -> dict:
    cfg = {}
    if getattr(args, "dim", None):
        cfg["dim"] = args.dim
    if getattr(args, "depth", None):
        cfg["depth"] = args.depth
    if getattr(args, "keep", None):
        cfg["keep"] = [args.keep]
    if getattr(args, "sketch_backbone_dtype", None):
        cfg["sketch_backbone_dtype"] = args.sketch_backbone_dtype
    if getattr(args, "finetune_stages", 0):
        cfg["sketch_finetune_stages"] = args.finetune_stages
    return cfg


def _dtype_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sketch-backbone-dtype", choices=("bfloat16", "float32"), default=None,
                   help="precision of the frozen backbone on the sketch side, in training and at query time "
                        "(default float32: the same results on every CPU; bfloat16 runs bf16 only where the CPU "
                        "has native bf16, float32 elsewhere)")


def _task_args(p: argparse.ArgumentParser) -> None:
    """Training-recipe options (defaults: :class:`geoseek.capabilities.sketch_image.task.TaskConfig`)."""
    from geoseek.capabilities.sketch_image.task import TaskConfig

    d = TaskConfig()
    g = p.add_argument_group("training recipe")
    g.add_argument("--loss", choices=("infonce", "triplet"), default=d.loss,
                   help=f"infonce: class-aware multi-positive InfoNCE; triplet: the paper's mined triplets (default {d.loss})")
    g.add_argument("--miner", choices=("batchhard", "semihard"), default=d.miner, help="triplet loss only")
    g.add_argument("--temperature", type=float, default=d.temperature)
    g.add_argument("--instance-weight", type=float, default=d.instance_weight,
                   help="weight of the instance term (sketch ↔ its own source image); needs instance pairs")
    g.add_argument("--instance-pairs", action=argparse.BooleanOptionalAction, default=d.instance_pairs,
                   help="pair each synthesized sketch with its own source image in a batch")
    g.add_argument("--cross-weight", type=float, default=d.cross_weight)
    g.add_argument("--classes-per-batch", type=int, default=d.classes_per_batch)
    g.add_argument("--per-class-batch", type=int, default=d.per_class, help="sketch/image pairs per class in a batch")
    g.add_argument("--real-prob", type=float, default=d.real_prob, help="share of Quick, Draw! sketches where a class has them")
    g.add_argument("--validate-every", type=int, default=250)
    g.add_argument("--drawn-prob", type=float, default=d.drawn_prob,
                   help="share of synthesized training sketches taken drawn-style instead of outlines (default 0)")
    g.add_argument("--drawn-variants", type=int, default=3, help="drawn-style sketches cached per image when --drawn-prob > 0 (default 3)")
    g.add_argument("--finetune-stages", type=int, default=0, choices=(0, 1, 2, 3),
                   help="fine-tune the last N backbone stages on the sketch side (mlagt-fused; default 0: frozen)")
    g.add_argument("--finetune-lr-scale", type=float, default=d.finetune_lr_scale, help="their learning rate relative to --lr")
    g.add_argument("--real-holdout", type=int, default=d.real_holdout,
                   help="seen classes whose Quick, Draw! sketches are held out of training as a real-sketch check (val_real)")
    g.add_argument("--monitor", choices=("val_map", "val_real", "val_mix"), default=d.monitor,
                   help="model selection: synthesized held-out seen (val_map), held-out real classes (val_real) or their mean")
    g.add_argument("--rerank-hard", type=int, default=d.rerank_hard,
                   help="train the cross-attention on hard first-stage candidates: the top N (e.g. 100; default 0: off)")
    g.add_argument("--patience", type=int, default=0, help="stop after this many validations without improvement (default 0: never)")


def _task_cfg(args: argparse.Namespace):
    from geoseek.capabilities.sketch_image.task import TaskConfig

    return TaskConfig(classes_per_batch=args.classes_per_batch, per_class=args.per_class_batch, cross_weight=args.cross_weight,
                      real_prob=args.real_prob, miner=args.miner, loss=args.loss, temperature=args.temperature,
                      instance_weight=args.instance_weight, instance_pairs=args.instance_pairs, drawn_prob=args.drawn_prob,
                      real_holdout=args.real_holdout, monitor=args.monitor, rerank_hard=args.rerank_hard,
                      finetune_lr_scale=args.finetune_lr_scale)


def _check_recipe(args: argparse.Namespace) -> None:
    from geoseek.errors import InvalidInputError

    if not 0.0 <= args.drawn_prob <= 1.0:
        raise InvalidInputError(f"--drawn-prob must be in [0, 1], got {args.drawn_prob}")
    if args.drawn_variants < 1:
        raise InvalidInputError(f"--drawn-variants must be >= 1, got {args.drawn_variants}")
    if args.monitor != "val_map" and args.real_holdout < 1:
        raise InvalidInputError(f"--monitor {args.monitor} needs --real-holdout N (N >= 1)")
    if args.finetune_stages and args.model == "mlagt":
        raise InvalidInputError("--finetune-stages needs a model with backbone sketch features (mlagt-fused)")
    if args.rerank_hard < 0 or args.patience < 0 or args.real_holdout < 0:
        raise InvalidInputError("--rerank-hard, --patience and --real-holdout must be >= 0")


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    p = subparsers(verbs["train"]).add_parser("sketch-image", help="train the MLAGT sketch → aerial image model")
    _common_data(p)
    p.add_argument("--fold", default="all", help="fold 1..4 (train on its 15 seen classes) or 'all' (all 20 classes; the default model)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=DEFAULT_LR)
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"registered model name: mlagt-fused (conv + frozen ImageNet sketch tokens), mlagt (the paper's conv tokenizer), mlagt-tiny (default {DEFAULT_MODEL})")
    p.add_argument("--dim", type=int, default=None)
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--keep", type=int, default=None, help="tokens kept by the filter")
    _dtype_arg(p)
    p.add_argument("--out", type=Path, default=Path("runs/sketch-image/model.pt"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT.last (an interrupted run) exists")
    _task_args(p)
    add_json_flag(p)
    p.set_defaults(func=run_train)

    p = subparsers(verbs["build"]).add_parser("images", help="collection of aerial images searchable by sketch (FOLDER/<class>/*.jpg)")
    p.add_argument("folders", nargs="*", type=Path, metavar="FOLDER")
    p.add_argument("--raster", nargs="+", type=Path, default=None, metavar="TIF",
                   help="GeoTIFFs (any CRS) to chip into located items instead of image folders (needs --chip-m)")
    p.add_argument("--chip-m", type=float, default=None, help="raster chip side, metres")
    p.add_argument("--stride-m", type=float, default=None, help="distance between raster chips, metres (default: --chip-m)")
    p.add_argument("--out", required=True, type=Path, metavar="COLLECTION")
    p.add_argument("--model", default="default", help="MLAGT checkpoint (default: the installed sketch-image model)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-thumbnails", action="store_true")
    p.add_argument("--threads", type=int, default=None)
    from geoseek.cli._build_flags import add_build_flags

    add_build_flags(p, partition_size=32, unit="images (with --raster: grid chips)")
    add_json_flag(p)
    p.set_defaults(func=run_build)

    p = subparsers(verbs["eval"]).add_parser("sketch-image", help="zero-shot sketch → image retrieval (MLAGT protocol)")
    _common_data(p)
    p.add_argument("--folds", default="1,2,3,4")
    p.add_argument("--fold-set", default="ucm-aid", help="committed folds file (ucm-aid)")
    p.add_argument("--steps", type=int, default=1000, help="training steps per fold (when no checkpoint exists)")
    p.add_argument("--checkpoints", type=Path, default=Path("runs/sketch-image"),
                   help="folder of fold<N>.pt checkpoints: reused if present, else trained and saved there")
    p.add_argument("--retrain", action="store_true", help="train even if a fold checkpoint exists")
    p.add_argument("--model", default=DEFAULT_MODEL, help="registered model trained when no checkpoint exists")
    _dtype_arg(p)
    p.add_argument("--lr", type=float, default=DEFAULT_LR)
    _task_args(p)
    p.add_argument("--rerank", type=int, default=100)
    p.add_argument("--no-ablations", action="store_true")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--report", type=Path, default=None, help="also write the full per-fold report JSON here")
    p.add_argument("--merge", type=Path, nargs="+", default=None, metavar="REPORT",
                   help="summarize --report files of separate runs (e.g. one process per fold) instead of evaluating")
    p.add_argument("--figure", type=Path, default=None,
                   help="write query / top-5 figures of the first fold here (PATH.png; PATH-real.png for Quick, Draw! queries)")
    add_json_flag(p)
    p.set_defaults(func=run_eval)

    p = subparsers(verbs["eval"]).add_parser("sketch-realism", help="real vs synthesized sketches: raster statistics and a classifier")
    p.add_argument("--data", type=Path, default=None, help="shared data folder (default: ../shared/data beside the repo)")
    p.add_argument("--per-class", type=int, default=20, help="UC Merced + AID images per class to synthesize from (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", type=Path, default=None, help="also write a PNG of synthesized next to real sketches")
    add_json_flag(p)
    p.set_defaults(func=run_realism)

    p = subparsers(verbs["bench"]).add_parser("sketch-search", help="end-to-end two-stage sketch search time")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--db", type=int, default=5000, help="database size (UC Merced + AID-100 images, up to 5100)")
    p.add_argument("--rerank", type=int, default=100)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--model", default="default")
    p.add_argument("--collection", type=Path, default=None, help="reuse this collection instead of building one")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3, help="time the queries this many times; seconds = the median")
    p.add_argument("--features-cache", type=Path, default=None,
                   help="reuse cached backbone features for the build (they do not depend on the trained model); "
                        "the uncached backbone cost is then measured on 64 images and reported per image")
    add_json_flag(p)
    p.set_defaults(func=run_bench)


# ----------------------------------------------------------------------------------------- train
def run_train(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.capabilities.sketch_image.data import prepare_data
    from geoseek.capabilities.sketch_image.task import train_fold
    from geoseek.sources.datasets import UCM_AID_CLASSES, Fold, load_folds

    _check_recipe(args)
    data = prepare_data(args.data or default_data_dir(), args.cache or _cache_default(), per_class=args.per_class,
                        drawn_variants=args.drawn_variants if args.drawn_prob > 0 else 0)
    if args.fold == "all":
        fold = Fold(0, sorted(UCM_AID_CLASSES), [])
    else:
        folds = {f.index: f for f in load_folds("ucm-aid")}
        fold = folds[_parse_folds(args.fold)[0]]
    model, result = train_fold(data, fold, args.out, steps=args.steps, lr=args.lr, model_name=args.model,
                               model_config=_model_config(args), task_cfg=_task_cfg(args), seed=args.seed,
                               threads=args.threads, validate_every=args.validate_every, patience=args.patience,
                               resume=not args.no_resume)
    out = {"checkpoint": str(args.out), "fold": fold.index, "best": result["best"], "last_step": result["last_step"],
           "seconds": round(result["seconds"], 1)}
    if args.json:
        emit_json(out)
    else:
        print(json.dumps(out, indent=1))
    return 0


# ----------------------------------------------------------------------------------------- build
def _run_build_rasters(args: argparse.Namespace) -> int:
    from geoseek.capabilities.sketch_image.located import build_raster_collection
    from geoseek.cli import emit_json
    from geoseek.cli._build_flags import build_kwargs
    from geoseek.errors import InvalidInputError

    if args.folders or not args.raster or args.chip_m is None:
        raise InvalidInputError("located builds take --raster A.tif [B.tif ...] with --chip-m M, and no image folders")
    r = build_raster_collection(args.raster, args.out, args.chip_m, args.stride_m, args.model, overwrite=args.overwrite,
                                thumbnails=not args.no_thumbnails, progress=not args.json, **build_kwargs(args))
    r["collection"] = str(args.out)
    if args.json:
        emit_json(r)
    else:
        print(f"built {args.out}: {r['items']} located chips in {r['seconds']:.1f} s")
    return 0


def run_build(args: argparse.Namespace) -> int:
    import torch

    from geoseek.cli import emit_json
    from geoseek.capabilities.sketch_image.build import build_image_collection

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.raster or args.chip_m is not None:
        return _run_build_rasters(args)
    if not args.folders:
        from geoseek.errors import InvalidInputError

        raise InvalidInputError("give image folders (FOLDER/<class>/*.jpg) or --raster A.tif ... --chip-m M")
    from geoseek.cli._build_flags import build_kwargs

    r = build_image_collection(args.folders, args.out, args.model, overwrite=args.overwrite,
                               thumbnails=not args.no_thumbnails, progress=not args.json, **build_kwargs(args))
    r["collection"] = str(args.out)
    if args.json:
        emit_json(r)
    else:
        print(f"built {args.out}: {r['items']} images in {r['seconds']:.1f} s")
    return 0


# ------------------------------------------------------------------------------------------ eval
def run_eval(args: argparse.Namespace) -> int:
    import torch

    from geoseek.capabilities.sketch_image.data import prepare_data
    from geoseek.capabilities.sketch_image.evaluate import evaluate_fold, summarize
    from geoseek.capabilities.sketch_image.task import train_fold
    from geoseek.checkpoint import load_model
    from geoseek.cli import emit_json
    from geoseek.sources.datasets import load_folds

    torch.set_num_threads(args.threads)
    if args.merge:
        return _merge_reports(args)
    wanted = _parse_folds(args.folds)
    folds = {f.index: f for f in load_folds(args.fold_set)}
    _check_recipe(args)
    data = prepare_data(args.data or default_data_dir(), args.cache or _cache_default(), per_class=args.per_class,
                        drawn_variants=args.drawn_variants if args.drawn_prob > 0 else 0)
    reports = []
    t0 = time.time()
    for i in wanted:
        fold = folds[i]
        ckpt = args.checkpoints / f"fold{i}.pt"
        if ckpt.is_file() and not args.retrain:
            model, payload = load_model(ckpt)
            if payload.get("data", {}).get("fold") != i:
                raise ValueError(f"{ckpt} was not trained on fold {i}")
        else:
            model, _ = train_fold(data, fold, ckpt, steps=args.steps, lr=args.lr, model_name=args.model, task_cfg=_task_cfg(args),
                                  model_config=_model_config(args), threads=args.threads, validate_every=args.validate_every,
                                  patience=args.patience)
        model.eval()
        with torch.no_grad():
            r = evaluate_fold(model, data, fold, rerank=args.rerank, ablations=not args.no_ablations, baselines=not args.no_baselines)
        reports.append(r)
        if args.figure and len(reports) == 1:
            from geoseek.capabilities.sketch_image.figures import results_figure

            results_figure(model, data, fold, args.figure, per_class=2, rerank=args.rerank)
            if any(c in data.real_labels for c in fold.unseen):
                results_figure(model, data, fold, args.figure.with_name(args.figure.stem + "-real" + args.figure.suffix), per_class=2,
                               rerank=args.rerank, real=True)
        print(f"fold {i}: unseen mAP {r['unseen']['map']:.2f}  seen mAP {r['seen']['map']:.2f}", flush=True)
    summary = summarize(reports)
    out = {
        "seen_map": summary.get("seen_map"),
        "unseen_map": summary.get("unseen_map"),
        **summary,
        "folds": wanted,
        "seconds": round(time.time() - t0, 1),
    }
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"summary": out, "folds": reports}, indent=1, default=str))
    if args.json:
        emit_json(out)
    else:
        print(json.dumps(out, indent=1))
    return 0


def _merge_reports(args: argparse.Namespace) -> int:
    from geoseek.capabilities.sketch_image.evaluate import summarize
    from geoseek.cli import emit_json
    from geoseek.errors import InvalidInputError

    reports = []
    for path in args.merge:
        try:
            reports += json.loads(Path(path).read_text())["folds"]
        except (OSError, ValueError, KeyError) as exc:
            raise InvalidInputError(f"{path} is not a sketch-image eval report: {exc}") from None
    reports.sort(key=lambda r: r["fold"])
    summary = summarize(reports)
    out = {"seen_map": summary.get("seen_map"), "unseen_map": summary.get("unseen_map"), **summary,
           "folds": [r["fold"] for r in reports]}
    if args.report:
        args.report.write_text(json.dumps({"summary": out, "folds": reports}, indent=1, default=str))
    if args.json:
        emit_json(out)
    else:
        print(json.dumps(out, indent=1))
    return 0


def run_realism(args: argparse.Namespace) -> int:
    from geoseek.capabilities.sketch_image import realism
    from geoseek.cli import emit_json
    from geoseek.errors import InvalidInputError

    if args.per_class < 1:
        raise InvalidInputError(f"--per-class must be >= 1, got {args.per_class}")
    data_dir = args.data or default_data_dir()
    t0 = time.time()
    images = realism.sample_images(data_dir, args.per_class, args.seed)
    real = realism.real_sketch_sets(data_dir)
    synth = realism.synthesized_sets(images, args.seed)
    out = realism.realism_table(real, synth, args.seed)
    if args.figure:
        shown = images[:: max(1, len(images) // 10)][:10]
        idx = [images.index(p) for p in shown]
        realism.realism_figure(real, {k: v[idx] for k, v in synth.items()}, shown, args.figure, n=len(shown))
        out["figure"] = str(args.figure)
    out["images"] = len(images)
    out["seconds"] = round(time.time() - t0, 1)
    if args.json:
        emit_json(out)
    else:
        names = out["statistics"]
        print("set".ljust(16) + "n".rjust(5) + "".join(n.rjust(11) for n in names))
        for k, v in out["sets"].items():
            print(k.ljust(16) + str(v["n"]).rjust(5) + "".join(f"{v[n]:11.3f}" for n in names))
        for k, v in out["separability"].items():
            print(f"classifier accuracy {k}: {v:.3f} (0.5 = indistinguishable)")
    return 0


# ----------------------------------------------------------------------------------------- bench
def bench_queries(data_dir: Path, n: int, size: int) -> list[tuple[str, bytes, str]]:
    """``n`` sketch queries as uploads would arrive: Quick, Draw! strokes JSON bytes of mapped classes."""
    from geoseek.sources.sketch import QUICKDRAW_TO_CLASS, read_quickdraw

    out = []
    words = list(QUICKDRAW_TO_CLASS)
    per = -(-n // len(words))
    for w in words:
        path = data_dir / "sketches" / "quickdraw" / "strokes" / f"{w}.ndjson"
        for rec in read_quickdraw(path, limit=per):
            out.append((f"{w}.json", json.dumps({"drawing": rec["drawing"]}).encode(), QUICKDRAW_TO_CLASS[w]))
    return out[:n]


def run_bench(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np
    import torch

    from geoseek.capabilities.sketch_image.build import build_image_collection
    from geoseek.capabilities.sketch_image.search import search_drawing, search_ink_maps
    from geoseek.cli import emit_json
    from geoseek.collection import Collection
    from geoseek.sources.sketch import load_sketch

    if args.repeat < 1 or args.queries < 1:
        raise ValueError("--repeat and --queries must be >= 1")
    torch.set_num_threads(args.threads)
    data_dir = args.data or default_data_dir()
    build: dict = {}
    tmp = None
    if args.collection is None:
        tmp = tempfile.TemporaryDirectory(prefix="geoseek-bench-")
        folders = [data_dir / "imagery" / "ucmerced", data_dir / "imagery" / "aid-100"]
        col_path = Path(tmp.name) / "images"
        build = build_image_collection(folders, col_path, args.model, progress=True, features_cache=args.features_cache)
        if args.features_cache:
            from geoseek.capabilities.sketch_image.data import backbone_features
            from geoseek.sources.datasets import read_class_folders

            sample = [s.path for s in read_class_folders(folders[0])][::33][:64]
            t = time.perf_counter()
            backbone_features(sample, progress=False)
            build["backbone_seconds_per_image"] = (time.perf_counter() - t) / len(sample)
        if build["items"] > args.db:
            col0 = Collection.open(col_path)
            ids = [it.id for it in col0.items()][args.db:]
            col0.remove(ids)
            col0.close()
    else:
        col_path = args.collection
    col = Collection.open(col_path)
    queries = bench_queries(data_dir, args.queries, 112)
    # warm-up: load the model and the tokens once (what a running server has done already)
    search_drawing(col, queries[0][1], k=args.k, rerank=args.rerank, filename=queries[0][0])
    runs, runs_batched, runs_no_rerank = [], [], []
    for _ in range(args.repeat):  # timings on shared cores swing: the median of a few runs
        t = time.perf_counter()
        results = [search_drawing(col, raw, k=args.k, rerank=args.rerank, filename=name) for name, raw, _ in queries]
        runs.append(time.perf_counter() - t)
        t = time.perf_counter()
        inks = np.stack([load_sketch(raw, 112, filename=name) for name, raw, _ in queries])
        batched = search_ink_maps(col, inks, k=args.k, rerank=args.rerank)
        runs_batched.append(time.perf_counter() - t)
        t = time.perf_counter()
        search_ink_maps(col, inks, k=args.k, rerank=0)
        runs_no_rerank.append(time.perf_counter() - t)
    seconds, seconds_batched, seconds_no_rerank = (float(np.median(r)) for r in (runs, runs_batched, runs_no_rerank))
    hit = np.mean([any(h.item.label and _same(h.item.label, q[2]) for h in r[:10]) for r, q in zip(results, queries)])
    out = {
        "queries": len(queries),
        "db": len(col),
        "rerank": args.rerank,
        "k": args.k,
        "threads": args.threads,
        "seconds": round(seconds, 3),
        "seconds_runs": [round(r, 3) for r in runs],
        "repeat": args.repeat,
        "seconds_batched": round(seconds_batched, 3),
        "seconds_no_rerank_batched": round(seconds_no_rerank, 3),
        "ms_per_query": round(1000 * seconds / len(queries), 2),
        "build_seconds": round(build.get("seconds", float("nan")), 1) if build else None,
        "build_items": build.get("items"),
        "tokens_bytes": build.get("tokens_bytes"),
        "build_features_cached": bool(args.features_cache) if build else None,
        "backbone_seconds_per_image": round(build["backbone_seconds_per_image"], 4) if "backbone_seconds_per_image" in build else None,
        "quickdraw_hit@10": round(float(hit), 3),
        "same_as_batched": all([h.item.id for h in a] == [h.item.id for h in b] for a, b in zip(results, batched)),
    }
    col.close()
    if tmp is not None:
        tmp.cleanup()
    if args.json:
        emit_json(out)
    else:
        print(json.dumps(out, indent=1))
    return 0


def _same(item_label: str, cls: str) -> bool:
    """Whether a UC Merced / AID folder label belongs to canonical class ``cls``."""
    from geoseek.sources.datasets import UCM_AID_CLASSES

    return item_label in {folder for _, folder in UCM_AID_CLASSES.get(cls, [])}
