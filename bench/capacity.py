"""Capacity figures (issue #17): bytes per item and build seconds per item per core, by modality,
and what a country and a continent of OSM tiles would take.

``.venv/bin/python bench/capacity.py --json``

For each modality a collection is built from the shared real data on ONE core (``geoseek build ...
--workers 1``, in a subprocess, as ``python -m geoseek.demo`` builds them), then measured on disk:

==============  ============================================================================
``osm``         ``geoseek build osm <pbf>`` (XYZ z17 tiles; default Malta)
``sketchmap``   ``geoseek build sketchmap <pbf>`` (scenes for sketch-map search; same pbf)
``images``      ``geoseek build images <UC Merced>`` (sketch → image; the first
                ``--images-per-class`` images of each class, through a folder of symlinks)
``geo-images``  ``geoseek build geo-images --data <data>`` (the demo's collection; its feature
                cache goes to the work folder, so the backbone runs inside the build)
``rasters``     ``geoseek build images --raster <landsat8> <rgbn-5m> --chip-m 960`` (the demo's
                ``located-aerial`` chips)
==============  ============================================================================

Per modality: items; ``build_seconds`` (the build's JSON ``seconds``), the command's wall time
and peak RSS; seconds per item per core (``--workers 1``: one core); bytes per item of the float32
vectors (4·D: inside ``index/faiss.index`` for a flat / IVF-Flat index, ``index/vectors.npy`` for
IVF-PQ), the other index files, the per-item arrays (``arrays/*.npy``: tokens, scene rasters), the
thumbnails (sum of ``length(thumbnail)`` in ``items.sqlite``; they are inside the SQLite file), the
SQLite file (``sqlite_unused``: the free space inside its pages, from SQLite's ``dbstat`` when
built in); the copied model / source files (``files/``: a fixed cost per collection, not per item);
and the total. ``parts_bytes`` (vectors + other index files + arrays + SQLite + files + manifest)
sums to ``bytes.total``.

The extrapolation (``extrapolation`` in the JSON) is arithmetic from the ``osm`` per-item figures,
with its assumptions listed beside it: a country = 1.2 M z17 tiles (the Netherlands), a continent =
300 M (Europe); core-hours; wall hours on 2 / 16 / 64 cores with a parallel efficiency (speedup on c
cores = c × efficiency; 0.91 from the 1.82× of ``--workers 2`` in docs/scaling.md); disk and serving
RAM for an IVF-PQ collection (the per-item RAM figures of the 10 M run in docs/scaling.md).

Timings are only meaningful on a quiet machine (``load_average`` is in the JSON); sizes are not
affected by load. The first run after installing may include a one-time ONNX export of the
image backbone (cached under ``$GEOSEEK_CACHE``): run twice before quoting times.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODALITIES = ("osm", "sketchmap", "images", "geo-images", "rasters")
RASTERS = ("imagery/landsat8-paraguay/LC08_L1TP_224078_20200518_20200518_01_RT.TIF", "imagery/rgbn-5m/rgbn.tif")
RASTER_CHIP_M = "960"
REGIONS = (("country", "the Netherlands", 1_200_000), ("continent", "Europe", 300_000_000))
DEFAULT_CORES = (2, 16, 64)
DEFAULT_EFFICIENCY = 0.91
"""Speedup on c cores = c × efficiency: ``--workers 2`` built Malta 1.82× faster than ``--workers 1``
(docs/scaling.md, "Partitioned builds"): 1.82 / 2 = 0.91."""
ITEM_COLUMNS_RAM = 100
"""Bytes of RAM per item for the item columns a serving process loads to join hits (``ItemCache``),
besides the id text: docs/scaling.md, "Bytes per item" (10 M run)."""
INDEX_SECONDS_PER_ITEM = 578 / 10_000_000
"""IVF-PQ index build (SQLite items, vector spill, train, add, calibrate) of the 10 M run in
docs/scaling.md: 578 s for 10 M items, one process on 2 cores (noisy). Added after the partitions."""


def _default_data() -> Path:
    from geoseek.paths import default_data_dir

    return default_data_dir()


# ------------------------------------------------------------------------------------------- builds
def _image_subset(ucmerced: Path, per_class: int, dest: Path) -> Path:
    """``ucmerced`` itself when ``per_class`` covers every class folder, else a folder of symlinks to
    the first ``per_class`` images (sorted names) of each class."""
    classes = sorted(p for p in ucmerced.iterdir() if p.is_dir())
    if per_class <= 0 or all(sum(1 for f in c.iterdir() if f.is_file()) <= per_class for c in classes):
        return ucmerced
    for c in classes:
        (dest / c.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(f for f in c.iterdir() if f.is_file())[:per_class]:
            (dest / c.name / f.name).symlink_to(f.resolve())
    return dest


def build_argv(modality: str, data: Path, out: Path, work: Path, args: argparse.Namespace) -> list[str]:
    """The ``geoseek ...`` arguments that build ``modality`` into ``out`` on one core."""
    common = ["--out", str(out), "--workers", "1", "--json", "--overwrite"]
    pbf = Path(args.osm) if args.osm else data / "osm" / "malta-2018-08.osm.pbf"
    if modality == "osm":
        return ["build", "osm", str(pbf), *common]
    if modality == "sketchmap":
        return ["build", "sketchmap", str(pbf), *common]
    if modality == "images":
        folder = _image_subset(data / "imagery" / "ucmerced", args.images_per_class, work / "ucmerced-subset")
        return ["build", "images", str(folder), *common]
    if modality == "geo-images":
        return ["build", "geo-images", "--data", str(data), "--work-dir", str(work / "geo-image-cache"), *common]
    if modality == "rasters":
        return ["build", "images", "--raster", *(str(data / r) for r in RASTERS), "--chip-m", RASTER_CHIP_M, *common]
    raise ValueError(f"unknown modality {modality!r}")


def run_build(argv: list[str], logs: Path) -> tuple[dict[str, Any], float, int]:
    """Run ``python -m geoseek <argv>``; (its JSON report, wall seconds, peak RSS bytes of the child)."""
    logs.mkdir(parents=True, exist_ok=True)
    out_f, err_f = logs / "stdout.txt", logs / "stderr.txt"
    t = time.perf_counter()
    with open(out_f, "wb") as out, open(err_f, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "geoseek", *argv], stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    text = out_f.read_text(errors="replace").strip()
    if proc.returncode != 0 or not text:
        tail = err_f.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"`geoseek {' '.join(argv)}` failed (exit {proc.returncode}):\n{tail}")
    report = json.loads(text.splitlines()[-1])
    rss = int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)
    return report, wall, rss


# ------------------------------------------------------------------------------------------ measure
def _npy_nbytes(path: Path) -> tuple[int, list[int], str]:
    import numpy as np

    arr = np.load(path, mmap_mode="r")
    return int(arr.nbytes), list(arr.shape), str(arr.dtype)


def _image_format(blob: bytes | None) -> str | None:
    if not blob:
        return None
    if blob[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if blob[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if blob[:4] == b"RIFF" and blob[8:12] == b"WEBP":
        return "webp"
    return "other"


def measure_collection(path: Path) -> dict[str, Any]:
    """Sizes of a built collection, by part, in bytes (apparent file sizes)."""
    path = Path(path)
    manifest = json.loads((path / "manifest.json").read_text())
    n, dim = int(manifest["count"]), int(manifest["dim"])
    sizes = {p.relative_to(path).as_posix(): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}
    total = sum(sizes.values())

    def under(prefix: str) -> int:
        return sum(s for k, s in sizes.items() if k.startswith(prefix))

    index_files = under("index/")
    config = json.loads((path / "index" / "config.json").read_text()) if "index/config.json" in sizes else {}
    vec_file = path / "index" / "vectors.npy"
    if vec_file.is_file():
        vectors = _npy_nbytes(vec_file)[0]
        vectors_where = "index/vectors.npy"
    elif sizes.get("index/faiss.index", 0) >= 4 * dim * n:
        vectors = 4 * dim * n
        vectors_where = "index/faiss.index (a flat / IVF-Flat index holds the float32 vectors)"
    else:  # an index that keeps no float32 copy (not built by geoseek build)
        vectors, vectors_where = 0, "not stored as float32"
    arrays = {}
    for k in sizes:
        if k.startswith("arrays/") and k.endswith(".npy"):
            nbytes, shape, dtype = _npy_nbytes(path / k)
            arrays[Path(k).stem] = {"file_bytes": sizes[k], "data_bytes": nbytes, "shape": shape, "dtype": dtype}
    sqlite_bytes = sum(s for k, s in sizes.items() if k.startswith("items.sqlite"))
    con = sqlite3.connect(f"file:{path / 'items.sqlite'}?mode=ro", uri=True)
    try:
        rows, n_thumbs, thumbs, id_chars, meta_chars = con.execute(
            "SELECT count(*), count(thumbnail), coalesce(sum(length(thumbnail)), 0), coalesce(sum(length(id)), 0), "
            "coalesce(sum(length(metadata)), 0) FROM items").fetchone()
        one = con.execute("SELECT thumbnail FROM items WHERE thumbnail IS NOT NULL LIMIT 1").fetchone()
        try:  # free space inside the file's pages (SQLite built with the dbstat table), else None
            unused = int(con.execute("SELECT coalesce(sum(unused), 0) FROM dbstat").fetchone()[0])
        except sqlite3.Error:
            unused = None
    finally:
        con.close()
    files = {k[len("files/"):]: s for k, s in sizes.items() if k.startswith("files/")}
    array_bytes = under("arrays/")
    other = total - index_files - array_bytes - sqlite_bytes - sum(files.values())  # manifest.json, ...
    return {
        "items": n, "dim": dim, "modality": manifest.get("modality"), "index_type": config.get("index_type"),
        "sqlite_rows": int(rows),
        "bytes": {
            "vectors": vectors, "vectors_where": vectors_where,
            "index_other": index_files - vectors, "index_files": index_files,
            "arrays": array_bytes, "arrays_detail": arrays,
            "thumbnails": int(thumbs), "thumbnails_count": int(n_thumbs), "thumbnail_format": _image_format(one[0] if one else None),
            "sqlite": sqlite_bytes, "sqlite_without_thumbnails": sqlite_bytes - int(thumbs), "sqlite_unused": unused,
            "id_text": int(id_chars), "metadata_json": int(meta_chars),
            "files": files, "files_total": sum(files.values()), "other": other,
            "total": total,
        },
    }


def per_item(m: dict[str, Any]) -> dict[str, float]:
    """Bytes per item of each part; ``total`` is per-item growth (fixed files and manifest excluded)."""
    b, n = m["bytes"], max(1, m["items"])
    out = {k: b[k] / n for k in ("vectors", "index_other", "arrays", "thumbnails", "sqlite", "sqlite_without_thumbnails",
                                 "id_text")}
    if b.get("sqlite_unused") is not None:
        out["sqlite_unused"] = b["sqlite_unused"] / n
    for name, a in b["arrays_detail"].items():
        out[f"arrays.{name}"] = a["file_bytes"] / n
    out["total"] = (b["total"] - b["files_total"] - b["other"]) / n
    return out


def measure_modality(modality: str, data: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out = work / modality
    argv = build_argv(modality, data, out, work, args)
    report, wall, rss = run_build(argv, work / "logs" / modality)
    m = measure_collection(out)
    b = m["bytes"]
    seconds = float(report["seconds"])
    res = {
        "command": "geoseek " + " ".join(argv),
        "items": m["items"], "dim": m["dim"], "index_type": m["index_type"], "workers": report.get("workers", 1),
        "build_seconds": seconds, "wall_seconds": wall, "peak_rss_bytes": rss,
        "seconds_per_item_core": seconds / max(1, m["items"]),
        "wall_seconds_per_item_core": wall / max(1, m["items"]),
        "bytes": b, "bytes_per_item": per_item(m),
        "fixed_bytes": b["files_total"] + b["other"],
        "parts_bytes": b["vectors"] + b["index_other"] + b["arrays"] + b["sqlite"] + b["files_total"] + b["other"],
        "build_report": {k: v for k, v in report.items() if isinstance(v, (int, float, str)) and k != "collection"},
    }
    if modality == "geo-images":
        res["note"] = "build_seconds excludes preparing the dataset (rendering the OSM tiles, cutting the chips): see wall_seconds"
    return res


# ------------------------------------------------------------------------------------- extrapolate
def extrapolate(osm: dict[str, Any], cores: list[int], efficiency: float,
                index_seconds_per_item: float = INDEX_SECONDS_PER_ITEM) -> dict[str, Any]:
    """Arithmetic from the osm per-item figures: core-hours, wall hours, disk and serving RAM."""
    from geoseek.index.ivfpq import ARRAY_BYTES_PER_ITEM, IVF_ID_BYTES

    dim = int(osm["dim"])
    pq_m = max(d for d in range(1, dim // 4 + 1) if dim % d == 0)
    bpi = osm["bytes_per_item"]
    mean_id = bpi["id_text"]
    disk_per_item = {
        "vectors (index/vectors.npy)": 4 * dim,
        "IVF-PQ codes + ids + geoseek arrays": pq_m + IVF_ID_BYTES + ARRAY_BYTES_PER_ITEM,
        "per-item arrays": bpi["arrays"],
        "SQLite (thumbnails included)": bpi["sqlite"],
    }
    ram_per_item = {
        "IVF-PQ codes + ids + geoseek arrays": pq_m + IVF_ID_BYTES + ARRAY_BYTES_PER_ITEM,
        "item columns (ItemCache)": ITEM_COLUMNS_RAM,
        "id text": mean_id,
    }
    s = osm["seconds_per_item_core"]

    def speedup(c: int) -> float:
        return 1.0 if c <= 1 else c * efficiency

    regions = {}
    for key, name, n in REGIONS:
        core_h = n * s / 3600
        index_h = n * index_seconds_per_item / 3600
        regions[key] = {
            "name": name, "items": n,
            "core_hours": core_h,
            "index_build_hours": index_h,
            "wall_hours": {str(c): core_h / speedup(c) + index_h for c in cores},
            "disk_bytes": n * sum(disk_per_item.values()) + osm["fixed_bytes"],
            "disk_bytes_without_thumbnails": n * (sum(disk_per_item.values()) - bpi["thumbnails"]) + osm["fixed_bytes"],
            "serving_ram_bytes": n * sum(ram_per_item.values()),
            "vectors_page_cache_bytes": n * 4 * dim,
        }
    return {
        "what": "arithmetic from the measured osm per-item figures, not a measurement at that scale",
        "assumptions": {
            "items": {k: f"{n:,} z17 tiles ({name}, issue #17)" for k, name, n in REGIONS},
            "seconds_per_item_core": s,
            "speedup": f"c × {efficiency} on c > 1 cores (docs/scaling.md: --workers 2 built Malta 1.82× faster)",
            "parallel_efficiency": efficiency,
            "index_seconds_per_item": index_seconds_per_item,
            "index_build": "IVF-PQ build after the partitions, one process, not divided by cores: 578 s for 10 M items "
                           "(docs/scaling.md, 10 M run on 2 cores)",
            "index": f"IVF-PQ with exact re-ranking, D = {dim}, m = {pq_m} B codes, {IVF_ID_BYTES} B ids, "
                     f"{ARRAY_BYTES_PER_ITEM} B geoseek arrays per item (geoseek/index/ivfpq.py; 69.2 B/item measured at 10 M)",
            "disk_bytes_per_item": disk_per_item,
            "ram_bytes_per_item": ram_per_item,
            "ram_source": "docs/scaling.md, Bytes per item (10 M run): codes + ids + arrays ~70 B, item columns ~100 B + "
                          "id text (mean id length measured here); the float32 vectors are memory-mapped: page cache, "
                          "not process RAM (vectors_page_cache_bytes to keep them all cached)",
            "not_included": "the input .osm.pbf the collection copies into files/ (its own size), the build's shard "
                            "folder (<out>.partial) while building, the RAM of the build (peak_rss_bytes of the osm run "
                            "is for the measured region only)",
        },
        "regions": regions,
    }


# ---------------------------------------------------------------------------------------- report
def _fmt_bytes(v: float) -> str:
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= f:
            return f"{v / f:,.1f} {unit}"
    return f"{v:,.0f} B"


def table(res: dict[str, Any]) -> str:
    lines = [f"CPU: {res['cpu'].get('cpu_model')} ({res['cpu'].get('cores_available')} cores), "
             f"load average {', '.join(f'{x:.2f}' for x in res['load_average'])}", ""]
    head = ("modality", "items", "build s", "s/item/core", "vectors", "index other", "arrays", "thumbnails",
            "SQLite", "total/item", "fixed")
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for mod, r in res["modalities"].items():
        p = r["bytes_per_item"]
        lines.append("| " + " | ".join([
            mod, f"{r['items']:,}", f"{r['build_seconds']:.1f}", f"{r['seconds_per_item_core'] * 1000:.2f} ms",
            *(f"{p[k]:,.0f}" for k in ("vectors", "index_other", "arrays", "thumbnails", "sqlite", "total")),
            _fmt_bytes(r["fixed_bytes"])]) + " |")
    ex = res.get("extrapolation")
    if ex:
        lines += ["", f"Extrapolation ({ex['what']}):", ""]
        cores = list(next(iter(ex["regions"].values()))["wall_hours"])
        head = ("region", "items", "core-hours", *(f"wall h, {c} cores" for c in cores), "disk", "serving RAM")
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for r in ex["regions"].values():
            lines.append("| " + " | ".join([
                r["name"], f"{r['items']:,}", f"{r['core_hours']:,.1f}", *(f"{h:,.1f}" for h in r["wall_hours"].values()),
                _fmt_bytes(r["disk_bytes"]), _fmt_bytes(r["serving_ram_bytes"])]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/capacity.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=None, help="the shared data folder (default $GEOSEEK_DATA, else ../shared/data)")
    p.add_argument("--only", default=",".join(MODALITIES), help=f"comma-separated modalities (default all: {','.join(MODALITIES)})")
    p.add_argument("--osm", type=Path, default=None, help="the .osm.pbf of the osm and sketchmap builds (default Malta)")
    p.add_argument("--images-per-class", type=int, default=100,
                   help="UC Merced images per class for the images build (default 100: all 2,100; 0: all)")
    p.add_argument("--work", type=Path, default=None, help="where the collections are built (default: a temporary folder, removed after)")
    p.add_argument("--cores", default=",".join(map(str, DEFAULT_CORES)), help="core counts of the wall-hour estimates")
    p.add_argument("--parallel-efficiency", type=float, default=DEFAULT_EFFICIENCY,
                   help="speedup on c cores = c × this (default 0.91: 1.82× on 2 cores)")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = p.parse_args(argv)
    mods = [m.strip() for m in args.only.split(",") if m.strip()]
    bad = [m for m in mods if m not in MODALITIES]
    if bad or not mods:
        p.error(f"--only: unknown {', '.join(bad) or '(none)'}; choose from {', '.join(MODALITIES)}")
    try:
        cores = sorted({int(c) for c in args.cores.split(",") if c.strip()})
    except ValueError:
        p.error("--cores: comma-separated integers")
    if not cores or min(cores) < 1:
        p.error("--cores: integers >= 1")
    if not 0 < args.parallel_efficiency <= 1:
        p.error("--parallel-efficiency must be in (0, 1]")
    data = (args.data or _default_data()).resolve()
    if not data.is_dir():
        p.error(f"no data folder at {data} (--data or $GEOSEEK_DATA)")

    from geoseek.runtime import describe_runtime

    temp = args.work is None
    work = Path(tempfile.mkdtemp(prefix="geoseek-capacity-")) if temp else args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"bench": "capacity", "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "cpu": describe_runtime(), "machine": platform.machine(),
                           "load_average": list(os.getloadavg()), "data": str(data), "modalities": {}}
    try:
        for mod in mods:
            if not args.json:
                print(f"capacity: building {mod} ...", flush=True)
            res["modalities"][mod] = measure_modality(mod, data, work, args)
    finally:
        if temp:
            shutil.rmtree(work, ignore_errors=True)
    res["load_average_after"] = list(os.getloadavg())
    if "osm" in res["modalities"]:
        res["extrapolation"] = extrapolate(res["modalities"]["osm"], cores, args.parallel_efficiency)
    if args.json:
        print(json.dumps(res), flush=True)
    else:
        print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
