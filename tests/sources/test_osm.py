"""The OSM reader on a real tiny extract (central Helsinki) and on small hand-written files."""

from __future__ import annotations

import bz2
import gzip

import numpy as np
import pytest

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.sources.layers import LAYER_NAMES
from geoseek.sources.osm import area_layers, line_layers, mercator_to_lonlat, read_osm

TINY_OSM = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
  <node id="1" lat="60.000" lon="25.000"/>
  <node id="2" lat="60.000" lon="25.010"/>
  <node id="3" lat="60.010" lon="25.010"/>
  <node id="4" lat="60.010" lon="25.000"/>
  <node id="5" lat="60.004" lon="25.004"/>
  <node id="6" lat="60.004" lon="25.006"/>
  <node id="7" lat="60.006" lon="25.006"/>
  <node id="8" lat="60.006" lon="25.004"/>
  <node id="9" lat="60.002" lon="25.002"><tag k="amenity" v="cafe"/></node>
  <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/><nd ref="1"/></way>
  <way id="11"><nd ref="5"/><nd ref="6"/><nd ref="7"/><nd ref="8"/><nd ref="5"/></way>
  <way id="12"><nd ref="1"/><nd ref="3"/><tag k="highway" v="primary"/></way>
  <way id="13"><nd ref="5"/><nd ref="6"/><nd ref="7"/><nd ref="8"/><nd ref="5"/><tag k="building" v="yes"/></way>
  <relation id="20">
    <member type="way" ref="10" role="outer"/><member type="way" ref="11" role="inner"/>
    <tag k="type" v="multipolygon"/><tag k="landuse" v="forest"/>
  </relation>
</osm>
"""


@pytest.fixture(scope="module")
def helsinki(shared_data):
    return read_osm(shared_data / "osm" / "helsinki-center.osm.pbf")


def test_helsinki_has_every_main_layer(helsinki):
    counts = helsinki.counts()
    assert set(counts) == set(LAYER_NAMES)
    for name in ("building", "major_road", "minor_road", "path", "railway", "park", "amenity"):
        assert counts[name] > 10, name
    assert counts["building"] > 300


def test_helsinki_coordinates_are_in_central_helsinki(helsinki):
    w, s, e, n = helsinki.bbox.as_tuple()
    assert 24.9 < w < e < 25.0 and 60.1 < s < n < 60.2
    g = helsinki.layers["building"]
    lonlat = mercator_to_lonlat(g.coords)
    assert np.all((lonlat[:, 0] > 24.9) & (lonlat[:, 0] < 25.0))
    # each part is a closed ring of at least 4 vertices
    lens = np.diff(g.offsets)
    assert lens.min() >= 4
    first, last = g.coords[g.offsets[:-1]], g.coords[g.offsets[1:] - 1]
    np.testing.assert_allclose(first, last)


def test_grid_index_matches_brute_force(helsinki):
    g = helsinki.layers["building"]
    pb = g.part_bounds()
    cx, cy = pb[:, 0].mean(), pb[:, 1].mean()
    box = (cx - 150, cy - 150, cx + 150, cy + 150)
    brute = np.nonzero((pb[:, 0] <= box[2]) & (pb[:, 2] >= box[0]) & (pb[:, 1] <= box[3]) & (pb[:, 3] >= box[1]))[0]
    assert len(brute) > 0
    np.testing.assert_array_equal(np.sort(g.query(box)), brute)


@pytest.mark.parametrize("suffix,opener", [(".osm", open), (".osm.gz", gzip.open), (".osm.bz2", bz2.open)])
def test_xml_multipolygon_with_hole(tmp_path, suffix, opener):
    path = tmp_path / f"tiny{suffix}"
    with opener(path, "wt") as f:
        f.write(TINY_OSM)
    feats = read_osm(path)
    forest = feats.layers["forest"]
    assert forest.n == 1 and forest.n_parts == 2
    assert forest.part_hole.tolist() == [False, True]
    assert feats.layers["building"].n == 1
    assert feats.layers["major_road"].n == 1
    assert feats.layers["amenity"].n == 1
    assert feats.layers["water"].n == 0


def test_missing_bad_and_truncated_files(tmp_path, shared_data):
    with pytest.raises(NotFoundError):
        read_osm(tmp_path / "nope.osm.pbf")
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(b"this is not a protobuf" * 50)
    with pytest.raises(InvalidInputError, match="not a readable OSM file"):
        read_osm(bad)
    data = (shared_data / "osm" / "helsinki-center.osm.pbf").read_bytes()
    cut = tmp_path / "cut.osm.pbf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError):
        read_osm(cut)
    wrong = tmp_path / "x.txt"
    wrong.write_text("hello")
    with pytest.raises(InvalidInputError, match="expected an OpenStreetMap file"):
        read_osm(wrong)


def test_tag_classification():
    assert line_layers({"highway": "trunk_link"}) == ["major_road"]
    assert line_layers({"highway": "residential"}) == ["minor_road"]
    assert line_layers({"highway": "footway", "area": "yes"}) == []
    assert line_layers({"railway": "tram"}) == ["railway"]
    assert area_layers({"building": "no"}) == []
    assert area_layers({"landuse": "retail"}) == ["commercial"]
    assert area_layers({"natural": "water"}) == ["water"]
    assert area_layers({"leisure": "park"}) == ["park"]
