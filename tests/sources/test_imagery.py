"""GeoTIFF chipping: footprints in (lon, lat), nodata skipping, band roles, stretch; located image folders."""

import numpy as np
import pytest
from PIL import Image

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.sources.imagery import chip_grid, iter_chips, raster_info, raster_stretch, read_located_images, to_rgb8


@pytest.fixture(scope="module")
def rgbn(shared_data):
    return shared_data / "imagery" / "rgbn-5m" / "rgbn.tif"


def test_raster_info_places_the_raster_on_earth(rgbn):
    info = raster_info(rgbn)
    w, s, e, n = info.bounds_lonlat
    assert -72.3 < w < e < -72.1 and 18.4 < s < n < 18.6  # Haiti, UTM 18N
    assert info.rgb_bands == (0, 1, 2) and info.nir_band == 3
    assert info.resolution_m == pytest.approx(5.0)


def test_chips_tile_the_raster_with_consistent_footprints(rgbn):
    info = raster_info(rgbn)
    chips = list(iter_chips(rgbn, size=64))
    assert len(chips) == (515 // 64) * (403 // 64)
    W, S, E, N = info.bounds_lonlat
    for c in chips:
        w, s, e, n = c.footprint
        assert W - 1e-9 <= w < e <= E + 1e-9 and S - 1e-9 <= s < n <= N + 1e-9
        assert w < c.centroid[0] < e and s < c.centroid[1] < n
        assert c.pixels.shape == (4, 64, 64)
    # 64 px × 5 m = 320 m on a side
    w, s, e, n = chips[0].footprint
    assert (n - s) * 111_320 == pytest.approx(320, rel=0.04)  # UTM grid convergence widens the lon/lat box a little
    # chips further down the raster lie further south
    first_row = [c for c in chips if c.window[1] == 0]
    second_row = [c for c in chips if c.window[1] == 64]
    assert second_row[0].centroid[1] < first_row[0].centroid[1]


def test_nodata_chips_are_skipped(shared_data):
    path = shared_data / "imagery" / "landsat8-paraguay" / "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
    chips = list(iter_chips(path, size=256, max_nodata=0.05))
    total = (2041 // 256) * (1860 // 256)
    assert 0 < len(chips) < total  # the scene has a nodata collar
    assert all(c.valid >= 0.95 for c in chips)


def test_stretch_and_rgb(rgbn):
    info = raster_info(rgbn)
    st = raster_stretch(rgbn, info.rgb_bands)
    assert st.shape == (3, 2) and (st[:, 0] < st[:, 1]).all()
    chip = next(iter_chips(rgbn, size=32))
    rgb = to_rgb8(chip.pixels, info.rgb_bands, st)
    assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8 and rgb.max() > rgb.min()


def test_bad_inputs(tmp_path, rgbn):
    with pytest.raises(NotFoundError):
        raster_info(tmp_path / "missing.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(InvalidInputError):
        raster_info(bad)
    with pytest.raises(InvalidInputError, match="smaller"):
        list(iter_chips(rgbn, size=1000))


def test_chip_spans_cut_the_same_grid(rgbn):
    """Spans of the row-major chip grid (as raster-build partitions use them) give the whole grid's chips."""
    rows, cols = chip_grid(rgbn, 48, 40)
    assert (rows, cols) == ((403 - 48) // 40 + 1, (515 - 48) // 40 + 1)
    whole = list(iter_chips(rgbn, 48, 40, max_nodata=1.0))
    assert len(whole) == rows * cols
    parts = [c for i in range(0, rows * cols, 7) for c in iter_chips(rgbn, 48, 40, max_nodata=1.0, span=(i, i + 7))]
    assert [c.id for c in parts] == [c.id for c in whole]
    assert all(np.array_equal(a.pixels, b.pixels) and a.footprint == b.footprint for a, b in zip(parts, whole))
    one = list(iter_chips(rgbn, 48, 40, max_nodata=1.0, span=(cols + 2, cols + 3), windowed=True))
    assert [c.window for c in one] == [(80, 40, 48, 48)] and np.array_equal(one[0].pixels, whole[cols + 2].pixels)
    assert list(iter_chips(rgbn, 48, 40, span=(rows * cols, rows * cols + 5))) == []
    with pytest.raises(InvalidInputError, match="smaller"):
        chip_grid(rgbn, 1000)


def test_located_image_folder(tmp_path):
    Image.new("RGB", (8, 8), (10, 200, 30)).save(tmp_path / "a.png")
    (tmp_path / "locations.csv").write_text("file,lon,lat,label\na.png,14.5,35.9,park\n")
    (img,) = read_located_images(tmp_path)
    assert img.lonlat == (14.5, 35.9) and img.label == "park"
    (tmp_path / "locations.csv").write_text("file,lon,lat\na.png,14.5,95\n")
    with pytest.raises(InvalidInputError, match="lat"):
        read_located_images(tmp_path)
    (tmp_path / "locations.csv").write_text("name,x,y\n")
    with pytest.raises(InvalidInputError, match="columns"):
        read_located_images(tmp_path)
