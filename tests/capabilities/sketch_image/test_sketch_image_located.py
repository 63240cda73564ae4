"""Located sketch collections: GeoTIFF chips with (lon, lat) footprints, searched with a bbox filter."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def geotiff(tmp_path_factory):
    """A 64×64 px, 10-m, 3-band UTM 33N GeoTIFF (blue-green-red order) with stripes and discs."""
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path_factory.mktemp("raster") / "scene.tif"
    rng = np.random.default_rng(0)
    data = rng.integers(40, 200, (3, 64, 64)).astype(np.uint8)
    data[:, 5:10, :] = 250
    transform = from_origin(500_000, 4_000_640, 10, 10)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=transform) as dst:
        dst.write(data)
    return path, transform


def test_chip_footprints_equal_the_rasterio_transform_in_lonlat(geotiff):
    from pyproj import Transformer

    from geoseek.capabilities.sketch_image.located import raster_chips_px
    from geoseek.sources.imagery import iter_chips

    path, tr = geotiff
    chip, stride = raster_chips_px(path, 160.0, 80.0)
    assert (chip, stride) == (16, 8)
    chips = list(iter_chips(path, chip, stride, windowed=True))
    assert len(chips) == 7 * 7
    assert [c.pixels.tobytes() for c in chips] == [c.pixels.tobytes() for c in iter_chips(path, chip, stride)]
    t = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    c = next(c for c in chips if c.window[:2] == (8, 16))  # col 8, row 16
    x0, y1 = tr * (8, 16)
    x1, y0 = tr * (8 + 16, 16 + 16)
    w, s, e, n = t.transform_bounds(x0, y0, x1, y1, densify_pts=21)
    assert np.allclose(c.footprint, (w, s, e, n), atol=1e-9)
    lon, lat = t.transform((x0 + x1) / 2, (y0 + y1) / 2)
    assert np.allclose(c.centroid, (lon, lat), atol=1e-9)
    with pytest.raises(Exception, match="chip-m"):
        raster_chips_px(path, 30.0)  # 3 px


def test_located_collection_end_to_end_with_bbox_filter(geotiff, trained, tmp_path):
    from geoseek.capabilities.sketch_image.search import search_drawing
    from geoseek.cli import main
    from geoseek.collection import Collection
    from geoseek.geo import BBox
    from geoseek.index.base import Filter

    path, _ = geotiff
    _, ckpt, data, _, _ = trained
    out = tmp_path / "located"
    assert main(["build", "images", "--raster", str(path), "--chip-m", "160", "--out", str(out), "--model", str(ckpt), "--json"]) == 0
    col = Collection.open(out)
    items = list(col.items())
    assert len(col) == 16 and all(it.footprint is not None and it.centroid is not None for it in items)
    west = min(it.footprint[0] for it in items)
    south = min(it.footprint[1] for it in items)
    first = next(it for it in items if it.id.endswith("r00000_c00000"))
    box = BBox(west - 1e-6, first.footprint[1] - 1e-6, first.footprint[2] + 1e-4, first.footprint[3] + 1e-6)
    ink = np.asarray(data.sketches[0, 0], np.float32) / 255.0
    hits = search_drawing(col, ink, k=16, filter=Filter(bbox=box), rerank=4)
    assert 1 <= len(hits) < 16
    for h in hits:
        cx, cy = h.item.centroid
        assert box.west <= cx <= box.east and box.south <= cy <= box.north
    assert len(search_drawing(col, ink, k=16, rerank=0)) == 16 and south < first.footprint[3]
    col.close()
    assert main(["build", "images", "--raster", str(path), "--out", str(tmp_path / "x"), "--model", str(ckpt)]) != 0


# --------------------------------------------------------------------------- partitioned raster builds
PART = 3  # grid chips per partition


@pytest.fixture(scope="module")
def rasters(geotiff, tmp_path_factory) -> list:
    """The 64×64 scene and a 48×64 one whose left 40 columns are nodata (some windows keep 0 chips)."""
    import rasterio
    from rasterio.transform import from_origin

    path = tmp_path_factory.mktemp("raster2") / "holes.tif"
    data = np.random.default_rng(1).integers(30, 220, (3, 48, 64)).astype(np.uint8)
    data[:, :, :40] = 0
    with rasterio.open(path, "w", driver="GTiff", width=64, height=48, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(501_000, 4_000_640, 10, 10), nodata=0) as dst:
        dst.write(data)
    return [geotiff[0], path]


def _build_rasters(rasters, out, ckpt, **kw):
    from geoseek.capabilities.sketch_image.located import build_raster_collection

    return build_raster_collection(rasters, out, 160.0, model=ckpt, progress=False, partition_size=PART, batch=4, **kw)


def _same_collection(a, b) -> None:
    from geoseek.collection import Collection

    with Collection.open(a) as ca, Collection.open(b) as cb:
        ia, ib = list(ca.items()), list(cb.items())
        assert [i.id for i in ia] == [i.id for i in ib]
        assert [(i.label, i.source, i.footprint, i.centroid, i.metadata, i.thumbnail) for i in ia] == \
               [(i.label, i.source, i.footprint, i.centroid, i.metadata, i.thumbnail) for i in ib]
        np.testing.assert_allclose(ca.vectors([i.id for i in ia]), cb.vectors([i.id for i in ib]), atol=1e-6, rtol=0)
        ma, mb = dict(ca.manifest), dict(cb.manifest)
        for k in ("modality", "model_id", "model_checksum", "extra", "count"):
            assert ma[k] == mb[k]
        assert sorted(ca.info()["files"]) == sorted(cb.info()["files"])
    ta, tb = (np.load(p / "arrays" / "tokens.npy") for p in (a, b))
    assert ta.dtype == np.float16 and np.array_equal(ta, tb)


@pytest.fixture(scope="module")
def raster_reference(rasters, trained, tmp_path_factory):
    out = tmp_path_factory.mktemp("rref") / "w1"
    return out, _build_rasters(rasters, out, trained[1], workers=1)


def test_raster_build_is_partitioned_and_keeps_the_located_manifest(rasters, raster_reference, trained):
    from geoseek.build import work_dir
    from geoseek.collection import Collection

    out, r = raster_reference
    # 16 chips of the scene (6 windows of 3) + 3×4 grid chips of the holed raster (4 windows; the first keeps none)
    assert r["engine"] == "inprocess" and r["partitions"] == 10 and r["partitions_computed"] == list(range(10))
    assert r["per_raster"] == {"scene": 16, "holes": 3} and r["items"] == 19 and r["tokens_bytes"] > 0
    assert not work_dir(out).exists()
    with Collection.open(out) as col:
        m = col.manifest
        assert m["extra"]["located"] is True and m["extra"]["chip_m"] == 160.0 and m["extra"]["stride_m"] == 160.0
        assert m["extra"]["sources"] == [str(p) for p in rasters] and m["extra"]["task"]
        items = list(col.items())
        tokens = np.load(out / "arrays" / "tokens.npy")
        assert list(tokens.shape[1:]) == m["extra"]["tokens"] and len(tokens) == len(items) == 19
        assert "model.pt" in col.info()["files"]
        hole = [it for it in items if it.label == "holes"]
        assert [it.id for it in hole] == [f"holes/r{r:05d}_c00048" for r in (0, 16, 32)]
        assert hole[0].metadata["window"] == [48, 0, 16, 16] and hole[0].metadata["chip_m"] == 160.0
        assert all(it.thumbnail and it.centroid and it.source == str(rasters[1]) for it in hole)


def test_raster_build_two_workers_equal_one(rasters, raster_reference, trained, tmp_path):
    r = _build_rasters(rasters, tmp_path / "w2", trained[1], workers=2)
    assert r["engine"] == "processes" and r["workers"] == 2
    _same_collection(raster_reference[0], tmp_path / "w2")


@pytest.mark.slow
def test_raster_build_on_ray_equals_one_worker(rasters, raster_reference, trained, tmp_path):
    pytest.importorskip("ray")
    r = _build_rasters(rasters, tmp_path / "ray", trained[1], workers=2, ray=True)
    assert r["engine"] == "ray"
    _same_collection(raster_reference[0], tmp_path / "ray")


def test_raster_build_kill9_then_resume_redoes_only_unfinished(rasters, raster_reference, trained, tmp_path):
    import json
    import os
    import subprocess
    import sys

    from geoseek.build import work_dir

    out = tmp_path / "k"
    args = [sys.executable, "-m", "geoseek", "build", "images", "--raster", *map(str, rasters), "--chip-m", "160",
            "--model", str(trained[1]), "--out", str(out), "--workers", "1", "--partition-size", str(PART), "--json"]

    def cli(extra=(), env=None):
        return subprocess.run([*args, *extra], capture_output=True, text=True, env={**os.environ, **(env or {})},
                              timeout=600)

    killed = cli(env={"GEOSEEK_TEST_KILL_AFTER_PARTITIONS": "4"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not out.exists()
    assert len(list(work_dir(out).glob("part-*.npz"))) == 4
    done = cli(["--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["partitions_computed"] == [4, 5, 6, 7, 8, 9] and r["partitions_reused"] == 4
    assert r["per_raster"] == {"scene": 16, "holes": 3}
    assert not work_dir(out).exists()
    _same_collection(raster_reference[0], out)


def test_raster_build_without_chips_is_a_clear_error_and_commits_nothing(rasters, raster_reference, trained, tmp_path):
    import shutil

    from geoseek.build import work_dir
    from geoseek.collection import Collection
    from geoseek.errors import InvalidInputError

    import rasterio
    from rasterio.transform import from_origin

    blank = tmp_path / "blank.tif"  # all nodata except a 4-px corner
    data = np.zeros((3, 32, 32), np.uint8)
    data[:, :2, :2] = 9
    with rasterio.open(blank, "w", driver="GTiff", width=32, height=32, count=3, dtype="uint8", crs="EPSG:32633",
                       transform=from_origin(500_000, 4_000_640, 10, 10), nodata=0) as dst:
        dst.write(data)
    out = tmp_path / "empty"
    shutil.copytree(raster_reference[0], out)
    with pytest.raises(InvalidInputError, match="no 160-m chips with at most 5% nodata"):
        _build_rasters([blank], out, trained[1], overwrite=True)
    assert not work_dir(out).exists()
    with Collection.open(out) as col:  # the old collection stays
        assert len(col) == 19
