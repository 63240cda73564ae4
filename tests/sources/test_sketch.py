"""Sketch inputs: strokes, PNG/JPG, Quick, Draw!, and the synthesizer."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from geoseek.errors import InvalidInputError
from geoseek.sources.sketch import (
    QUICKDRAW_TO_CLASS,
    augment_ink,
    load_sketch,
    parse_strokes,
    quickdraw_sketches,
    rasterize_strokes,
    read_quickdraw,
    read_sketch_image,
    synthesize_sketch,
)
from geoseek.sources.datasets import UCM_AID_CLASSES

SQUARE = [[[10, 200, 200, 10, 10], [10, 10, 200, 200, 10]]]


def test_rasterize_strokes_fits_and_draws_ink():
    ink = rasterize_strokes(parse_strokes(SQUARE), size=64)
    assert ink.shape == (64, 64) and ink.dtype == np.float32
    assert 0 <= ink.min() and ink.max() == pytest.approx(1.0)
    # the square's outline touches near the margins, the centre stays paper
    assert ink[32, 32] == 0
    assert ink[:, :8].sum() > 0 and ink[:, -8:].sum() > 0


def test_stroke_formats_agree():
    qd = rasterize_strokes({"drawing": SQUARE}, 48)
    pts = rasterize_strokes({"strokes": [[[10, 10], [200, 10], [200, 200], [10, 200], [10, 10]]]}, 48)
    assert np.allclose(qd, pts)


@pytest.mark.parametrize("bad", [{}, [], {"drawing": [[["a"], ["b"]]]}, {"strokes": [[[1, 2, 3]]]}, "x"])
def test_bad_strokes_raise_clear_errors(bad):
    with pytest.raises(InvalidInputError):
        parse_strokes(bad)


def test_load_sketch_json_bytes_and_file(tmp_path):
    raw = json.dumps({"drawing": SQUARE}).encode()
    a = load_sketch(raw, 32)
    f = tmp_path / "s.json"
    f.write_bytes(raw)
    assert np.allclose(a, load_sketch(f, 32))
    with pytest.raises(InvalidInputError):
        load_sketch(b"{not json", 32)
    with pytest.raises(FileNotFoundError):
        load_sketch(tmp_path / "missing.png", 32)


def test_png_sketch_is_cropped_and_inverted(tmp_path):
    img = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(img).line([(100, 50), (200, 150)], fill="black", width=4)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    ink = read_sketch_image(buf.getvalue(), 64)
    assert ink.shape == (64, 64)
    # the diagonal is scaled up to fill the square: ink near two opposite corners
    assert ink[:16, :16].sum() > 0 and ink[-16:, -16:].sum() > 0
    assert ink[:16, -16:].sum() == 0
    p = tmp_path / "s.png"
    img.save(p)
    assert np.allclose(load_sketch(p, 64), ink)
    with pytest.raises(InvalidInputError, match="empty"):
        read_sketch_image(Image.new("RGB", (50, 50), "white"), 64)
    with pytest.raises(InvalidInputError):
        read_sketch_image(b"\x89PNG garbage", 64)


def test_quickdraw_real_files(shared_data):
    strokes = shared_data / "sketches" / "quickdraw" / "strokes"
    recs = read_quickdraw(strokes / "bridge.ndjson", limit=3)
    assert len(recs) == 3 and recs[0]["word"] == "bridge"
    for word, cls in QUICKDRAW_TO_CLASS.items():
        assert (strokes / f"{word}.ndjson").is_file(), word
        assert cls in UCM_AID_CLASSES
    got = list(quickdraw_sketches(strokes, {"pond": "pond"}, size=48))
    assert len(got) == 25 and got[0][1] == "pond" and got[0][0].shape == (48, 48)


def test_earth_on_canvas_sketch_reads(shared_data):
    ink = load_sketch(shared_data / "sketches" / "earth-on-canvas-extra" / "0.jpg", 112)
    assert ink.shape == (112, 112) and 0.01 < (ink > 0.3).mean() < 0.5


def test_synthesized_sketch_is_a_sparse_line_drawing(shared_data):
    path = next((shared_data / "imagery" / "ucmerced" / "tenniscourt").glob("*.jpg"))
    ink = synthesize_sketch(path, 96)
    assert ink.shape == (96, 96)
    frac = (ink > 0.5).mean()
    assert 0.02 < frac < 0.6  # lines, not a filled image nor blank paper
    assert np.allclose(ink, synthesize_sketch(path, 96))  # deterministic default style
    rng = np.random.default_rng(1)
    assert not np.allclose(ink, synthesize_sketch(path, 96, rng))
    aug = augment_ink(ink, np.random.default_rng(0))
    assert aug.shape == ink.shape and aug.sum() == pytest.approx(ink.sum(), rel=1e-5)
