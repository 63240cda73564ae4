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
