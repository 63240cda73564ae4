"""``python -m geoseek.demo``: build the demo collections from ../shared/data (when missing),
start the service over them and print its URL.

Collections (under ``--dir``):
- ``malta``: OSM tiles of Malta, built by ``geoseek build osm`` (similar places, basemap);
- ``malta-scenes``: Malta cut into scenes for sketch-map search, by ``geoseek build sketchmap``;
- ``geo-images``: located aerial chips and OSM tiles for image search (± location), by
  ``geoseek build geo-images``;
- ``ucmerced``: UC Merced aerial scenes for sketch → image search, by ``geoseek build images``;
- ``located-aerial`` / ``located-neon``: chips of the shared GeoTIFFs for sketch → image search with
  (lon, lat) footprints, by ``geoseek build images --raster ... --chip-m M``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_OLD_BASELINE_MODEL_ID = "demo-colour-layout-texture-v1"
"""``model_id`` of the UC Merced collections an earlier demo built with a colour / layout / texture
descriptor (no model); such a collection is rebuilt with ``geoseek build images``."""


def _run_builder(argv: Sequence[str]) -> bool:
    print("geoseek demo: " + " ".join(["geoseek", *argv]), flush=True)
    rc = subprocess.call([sys.executable, "-m", "geoseek", *argv])
    if rc != 0:
        print(f"geoseek demo: `geoseek {' '.join(argv)}` failed (exit {rc}); continuing without it", file=sys.stderr)
    return rc == 0


def ensure_collections(data: Path, demo_dir: Path) -> dict[str, Path]:
    """Build the demo collections that are missing; returns {name: path} of those available."""
    from geoseek.collection import Collection

    demo_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def usable(path: Path) -> bool:
        try:
            Collection.open(path)
            return True
        except Exception:
            return False

    malta = demo_dir / "malta"
    pbf = data / "osm" / "malta-2018-08.osm.pbf"
    if not usable(malta) and pbf.is_file():
        _run_builder(["build", "osm", str(pbf), "--out", str(malta)])
    if usable(malta):
        out["malta"] = malta

    scenes = demo_dir / "malta-scenes"
    if not usable(scenes) and pbf.is_file():
        _run_builder(["build", "sketchmap", str(pbf), "--out", str(scenes)])
    if usable(scenes):
        out["malta-scenes"] = scenes

    geo = demo_dir / "geo-images"
    if not usable(geo):
        _run_builder(["build", "geo-images", "--data", str(data), "--out", str(geo)])
    if usable(geo):
        out["geo-images"] = geo

    uc = demo_dir / "ucmerced"
    images = data / "imagery" / "ucmerced"
    baseline = usable(uc) and Collection.open(uc).manifest.get("model_id") == _OLD_BASELINE_MODEL_ID
    if (not usable(uc) or baseline) and images.is_dir():
        # atomic: a failed rebuild leaves the old collection in place
        _run_builder(["build", "images", str(images), "--out", str(uc), "--overwrite"])
    if usable(uc):
        out["ucmerced"] = uc

    # located aerial chips for sketch search (hits on the map, --bbox / --radius apply); one chip
    # size per collection: the Landsat and 5-m rasters at 960 m, the 10-cm NEON tile at 10 m
    located = {
        "located-aerial": (["landsat8-paraguay/LC08_L1TP_224078_20200518_20200518_01_RT.TIF", "rgbn-5m/rgbn.tif"], "960"),
        "located-neon": (["neon/OSBS_029.tif"], "10"),
    }
    for name, (rasters, chip_m) in located.items():
        path = demo_dir / name
        tifs = [data / "imagery" / r for r in rasters]
        if not usable(path) and all(t.is_file() for t in tifs):
            _run_builder(["build", "images", "--raster", *map(str, tifs), "--chip-m", chip_m, "--out", str(path), "--overwrite"])
        if usable(path):
            out[name] = path
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from geoseek.paths import default_data_dir

    p = argparse.ArgumentParser(prog="python -m geoseek.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=default_data_dir(), help="the shared data folder (default ../shared/data)")
    p.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo collections are built (default .demo)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--build-only", action="store_true", help="build the collections and exit")
    args = p.parse_args(argv)
    from geoseek.errors import GeoseekError

    try:
        collections = ensure_collections(args.data.resolve(), args.dir.resolve())
    except GeoseekError as exc:
        print(f"geoseek demo: error: {exc}", file=sys.stderr)
        return 2
    if not collections:
        print(f"geoseek demo: error: no demo collection could be built from {args.data}", file=sys.stderr)
        return 2
    if args.build_only:
        print("geoseek demo: built " + ", ".join(f"{k} ({v})" for k, v in collections.items()))
        return 0
    import uvicorn

    from geoseek.service.deps import TOKEN_ENV, read_token
    from geoseek.service.app import create_app

    token = read_token(TOKEN_ENV, None)
    app = create_app(collections, token=token)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"\ngeoseek demo: open http://{shown}:{args.port}/  (collections: {', '.join(collections)}; API docs at /docs)\n", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
