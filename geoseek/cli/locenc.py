"""``geoseek train geoprior``, ``geoseek eval geoprior``, ``geoseek eval locenc``, ``geoseek bench locenc``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from geoseek.cli._util import add_json_flag, default_data_dir, subparsers

DEFAULT_DATASETS = ("inat", "vmf-global", "vmf-polar", "vmf-polar-tight", "ariolimax")


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    p = subparsers(verbs["train"]).add_parser(
        "geoprior", help="train a location-only species classifier (location encoder + linear classifier)"
    )
    _data_args(p)
    p.add_argument("--encoder", default="sphereM", help="location encoder name (default sphereM)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="encoder parameter, VALUE parsed as JSON (e.g. frequency_num=16, head=\"siren\")")
    _train_args(p, steps=1000)
    p.add_argument("--out", type=Path, default=None, help="checkpoint path (default geoprior-<encoder>-<data>.pt)")
    add_json_flag(p)
    p.set_defaults(func=run_train)

    ev = subparsers(verbs["eval"])
    p = ev.add_parser("geoprior", help="top-1 / top-3 / MRR (and AUC) of a geoprior checkpoint on its test split")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data-dir", type=Path, default=None, help="shared data folder (default ../shared/data)")
    add_json_flag(p)
    p.set_defaults(func=run_eval)

    p = ev.add_parser("locenc", help="all location encoders side by side on geo-aware classification, plus throughput")
    p.add_argument("--encoders", default="all", help="comma-separated encoder names (default all registered)")
    p.add_argument("--datasets", default=",".join(DEFAULT_DATASETS), help="comma-separated datasets")
    p.add_argument("--data-dir", type=Path, default=None, help="shared data folder (default ../shared/data)")
    _train_args(p, steps=None)
    p.add_argument("--throughput-points", type=int, default=262_144, help="points per throughput run (0 = skip)")
    add_json_flag(p)
    p.set_defaults(func=run_locenc)

    p = subparsers(verbs["bench"]).add_parser("locenc", help="encode throughput (points/s) of every location encoder")
    p.add_argument("--encoders", default="all")
    p.add_argument("--points", type=int, default=262_144)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    add_json_flag(p)
    p.set_defaults(func=run_bench)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="inat", help="inat | vmf-global | vmf-polar | vmf-polar-tight | ariolimax")
    p.add_argument("--data-dir", type=Path, default=None, help="shared data folder (default ../shared/data)")


def _train_args(p: argparse.ArgumentParser, steps: int | None) -> None:
    p.add_argument("--loss", choices=("ce", "pa"), default="ce", help="cross-entropy or presence-absence")
    p.add_argument("--steps", type=int, default=steps,
                   help="optimizer steps" + ("" if steps else " (default: inat 300, the others 150)"))
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the per-class 70/10/20 split (and synthetic data)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")


def _parse_params(items: list[str]) -> dict[str, Any]:
    from geoseek.errors import InvalidInputError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--param expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _load(name: str, data_dir: Path | None, split_seed: int):
    from geoseek.capabilities.geoprior import load_dataset
    from geoseek.sources.occurrences import split_per_class

    data = load_dataset(name, data_dir or default_data_dir(), seed=split_seed)
    return data, split_per_class(data.labels, seed=split_seed)


def _emit(obj: Any) -> None:
    from geoseek.cli import emit_json

    emit_json(obj)


def run_train(args: argparse.Namespace) -> int:
    import torch

    from geoseek.capabilities.geoprior import GeoPriorConfig, evaluate_geoprior, frequency_baseline, train_geoprior

    torch.set_num_threads(args.threads)
    data, split = _load(args.data, args.data_dir, args.split_seed)
    cfg = GeoPriorConfig(
        encoder=args.encoder, encoder_params=_parse_params(args.param), loss=args.loss, batch_size=args.batch_size,
        steps=args.steps, lr=args.lr, seed=args.seed,
    )
    out = args.out or Path(f"geoprior-{args.encoder}-{args.data}.pt")
    info = {"split_seed": args.split_seed, "split": "per-class 70/10/20"}
    model, result = train_geoprior(data, split, cfg, out, progress=not args.json, threads=args.threads, data_info=info)
    test = evaluate_geoprior(model, data, split["test"])
    base = frequency_baseline(data.labels[split["train"]], data.labels[split["test"]], data.num_classes)
    report = {"checkpoint": str(out), "data": args.data, "encoder": args.encoder, "loss": args.loss,
              "val": result["best"], "test": test, "baseline_test": base, "train_seconds": result["seconds"]}
    if args.json:
        _emit(report)
    else:
        print(f"saved {out}\ntest: " + _fmt(test) + "\nno-prior baseline: " + _fmt(base))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    import geoseek.encoders.geoprior  # noqa: F401  (registers the "geoprior" model)
    from geoseek.checkpoint import load_model
    from geoseek.errors import InvalidInputError
    from geoseek.capabilities.geoprior import evaluate_geoprior, frequency_baseline

    model, payload = load_model(args.checkpoint)
    if payload["model"] != "geoprior":
        raise InvalidInputError(f"{args.checkpoint} holds a {payload['model']!r} model, not a geoprior")
    info = payload.get("data", {})
    name, split_seed = info.get("name"), int(info.get("split_seed", 0))
    data, split = _load(name, args.data_dir, split_seed)
    test = evaluate_geoprior(model, data, split["test"])
    base = frequency_baseline(data.labels[split["train"]], data.labels[split["test"]], data.num_classes)
    report = {"checkpoint": str(args.checkpoint), "data": name, "encoder": payload["config"]["encoder"],
              "n_test": int(len(split["test"])), "test": test, "baseline_test": base}
    if args.json:
        _emit(report)
    else:
        print(f"{name} test ({len(split['test'])} points): {_fmt(test)}\nno-prior baseline: {_fmt(base)}")
    return 0


def _fmt(m: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4f}" for k, v in m.items())


# --- throughput -----------------------------------------------------------------------------------


def measure_throughput(encoder, points: int, repeats: int = 3, seed: int = 0, batch: int = 65_536) -> dict[str, float]:
    """Best-of-``repeats`` rates of ``encode_position`` on ``points`` random (lon, lat) points.

    * ``pts_per_s`` / ``cpu_pts_per_s``: one call returning a fresh (points, D) tensor,
      by wall clock and by process CPU time (the latter is less sensitive to other load).
    * ``stream_pts_per_s`` / ``stream_cpu_pts_per_s``: batches of ``batch`` points written
      into one reused output buffer (``encode_position(x, out=buf)``), as an index builder would.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(points, 2, generator=g) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])
    batch = min(batch, points)
    buf = torch.empty(batch, encoder.pos_dim)
    best = {"wall": float("inf"), "cpu": float("inf"), "swall": float("inf"), "scpu": float("inf")}
    with torch.no_grad():
        encoder.encode_position(x[:batch], out=buf)  # warm-up
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            encoder.encode_position(x)
            best["wall"] = min(best["wall"], time.perf_counter() - t0)
            best["cpu"] = min(best["cpu"], time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, points - batch + 1, batch):
                encoder.encode_position(x[i : i + batch], out=buf)
            n = (points // batch) * batch
            best["swall"] = min(best["swall"], (time.perf_counter() - t0) * points / n)
            best["scpu"] = min(best["scpu"], (time.process_time() - c0) * points / n)
    rate = {k: points / max(v, 1e-9) for k, v in best.items()}
    return {"pts_per_s": rate["wall"], "cpu_pts_per_s": rate["cpu"],
            "stream_pts_per_s": rate["swall"], "stream_cpu_pts_per_s": rate["scpu"]}


def _encoder_names(spec: str) -> list[str]:
    from geoseek.encoders.registry import LOCATION_ENCODERS, list_location_encoders

    if spec == "all":
        return list_location_encoders()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for n in names:
        LOCATION_ENCODERS.get(n)  # clear error on unknown names
    return names


def run_bench(args: argparse.Namespace) -> int:
    import torch

    from geoseek.encoders.registry import create_location_encoder

    torch.set_num_threads(args.threads)
    rows = []
    for name in _encoder_names(args.encoders):
        enc = create_location_encoder(name)
        r = measure_throughput(enc, args.points, args.repeats)
        rows.append({"encoder": name, "pos_dim": enc.pos_dim, **r})
        if not args.json:
            print(f"{name:20s} dim {enc.pos_dim:5d}  one call: {r['pts_per_s'] / 1e6:7.3f} M pts/s wall "
                  f"{r['cpu_pts_per_s'] / 1e6:7.3f} cpu   streamed: {r['stream_pts_per_s'] / 1e6:7.3f} wall "
                  f"{r['stream_cpu_pts_per_s'] / 1e6:7.3f} cpu", flush=True)
    if args.json:
        _emit({"points": args.points, "threads": args.threads, "loadavg": os.getloadavg(), "encoders": rows})
    return 0


# --- side-by-side benchmark -----------------------------------------------------------------------

DEFAULT_STEPS = {"inat": 300, "vmf-global": 150, "vmf-polar": 150, "vmf-polar-tight": 150, "ariolimax": 150}


def run_locenc(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from geoseek.encoders.registry import create_location_encoder
    from geoseek.capabilities.geoprior import GeoPriorConfig, evaluate_geoprior, frequency_baseline, train_geoprior

    torch.set_num_threads(args.threads)
    started = time.time()
    names = _encoder_names(args.encoders)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    loaded = {d: _load(d, args.data_dir, args.split_seed) for d in datasets}
    ds_info = {
        d: {"n_train": int(len(s["train"])), "n_val": int(len(s["val"])), "n_test": int(len(s["test"])),
            "classes": data.num_classes, "steps": args.steps or DEFAULT_STEPS.get(d, 200)}
        for d, (data, s) in loaded.items()
    }
    baseline = {
        d: frequency_baseline(data.labels[s["train"]], data.labels[s["test"]], data.num_classes)
        for d, (data, s) in loaded.items()
    }
    results: list[dict[str, Any]] = [{"encoder": "baseline", "description": "no prior: training class frequency",
                                      "datasets": baseline}]
    bar = tqdm(total=len(names) * len(datasets), desc="locenc", mininterval=5.0)
    for name in names:
        enc = create_location_encoder(name)
        row: dict[str, Any] = {"encoder": name, "pos_dim": enc.pos_dim, "out_dim": enc.out_dim,
                               "head": enc.config.head, "datasets": {}}
        if args.throughput_points:
            row["throughput"] = measure_throughput(enc, args.throughput_points)
        for d, (data, s) in loaded.items():
            bar.set_postfix_str(f"{name} on {d}")
            cfg = GeoPriorConfig(encoder=name, loss=args.loss, batch_size=args.batch_size,
                                 steps=ds_info[d]["steps"], lr=args.lr, seed=args.seed)
            t0 = time.time()
            model, _ = train_geoprior(data, s, cfg, None, progress=False, threads=args.threads)
            metrics = evaluate_geoprior(model, data, s["test"])
            row["datasets"][d] = {**metrics, "train_s": round(time.time() - t0, 2)}
            bar.update(1)
        results.append(row)
    bar.close()
    report = {
        "settings": {"loss": args.loss, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                     "split": "per-class 70/10/20", "split_seed": args.split_seed, "threads": args.threads,
                     "throughput_points": args.throughput_points, "loadavg_end": os.getloadavg(),
                     "seconds": round(time.time() - started, 1)},
        "datasets": ds_info,
        "encoders": results,
    }
    print(markdown_table(report), file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.json:
        _emit(report)
    return 0


def markdown_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: one row per encoder; top-1 / MRR per dataset, AUC for two classes."""
    ds = list(report["datasets"])
    head = ["encoder"]
    for d in ds:
        head += [f"{d} AUC"] if report["datasets"][d]["classes"] == 2 else [f"{d} top-1", f"{d} top-3", f"{d} MRR"]
    head.append("M pts/s (wall / cpu)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["encoders"]:
        cells = [row["encoder"]]
        for d in ds:
            m = row["datasets"].get(d, {})
            keys = ["auc"] if report["datasets"][d]["classes"] == 2 else ["top1", "top3", "mrr"]
            cells += [f"{m[k]:.3f}" if k in m else "" for k in keys]
        t = row.get("throughput")
        cells.append(f"{t['pts_per_s'] / 1e6:.2f} / {t['cpu_pts_per_s'] / 1e6:.2f}" if t else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
