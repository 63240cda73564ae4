"""The drawn-style sketch synthesizer and the realism statistics."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw


def _scene(seed: int = 0) -> Image.Image:
    """A synthetic aerial-like scene: a field, a road across it, a building and a round tank."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (128, 128), (70, 110, 60))
    d = ImageDraw.Draw(img)
    d.polygon([(0, 50), (128, 70), (128, 84), (0, 64)], fill=(150, 150, 150))  # a road
    d.rectangle([20, 88, 56, 118], fill=(190, 80, 70))  # a building
    d.ellipse([80, 10, 112, 42], fill=(230, 230, 230))  # a tank
    arr = np.asarray(img, np.int16) + rng.integers(-8, 9, (128, 128, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_deterministic_with_a_seed_and_varied_across_seeds():
    from geoseek.sources.drawn_sketch import drawn_sketch

    img = _scene()
    a = drawn_sketch(img, rng=np.random.default_rng(3))
    b = drawn_sketch(img, rng=np.random.default_rng(3))
    c = drawn_sketch(img, rng=np.random.default_rng(4))
    assert a.shape == (112, 112) and a.dtype == np.float32 and np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(drawn_sketch(img), drawn_sketch(img))  # rng None: the fixed default style


def test_strokes_inside_the_canvas_few_and_shapes_fitted():
    from geoseek.sources.drawn_sketch import DrawnStyle, drawn_strokes

    for seed in range(6):
        strokes, widths = drawn_strokes(_scene(seed), np.random.default_rng(seed), work=128)
        assert 1 <= len(strokes) <= 10 and len(widths) == len(strokes)
        for xs, ys in strokes:
            assert len(xs) == len(ys) >= 2
            assert xs.min() >= 0 and ys.min() >= 0 and xs.max() <= 128 and ys.max() <= 128
        assert all(0.005 < w < 0.1 for w in widths)
    # the tank is drawn as a circle: some stroke stays at a near-constant distance from its centre
    img = Image.new("RGB", (128, 128), (70, 110, 60))
    d = ImageDraw.Draw(img)
    d.ellipse([40, 40, 88, 88], fill=(230, 230, 230))
    d.rectangle([8, 8, 30, 20], fill=(190, 80, 70))
    strokes, _ = drawn_strokes(img, None, style=DrawnStyle(wobble=0.0, max_strokes=10))
    radii = [np.hypot(xs - 64, ys - 64) for xs, ys in strokes]
    assert any(abs(r.mean() - 24) < 2 and r.std() < 1 for r in radii)
    # the building is drawn as its rectangle: a closed stroke within its box
    assert any(xs.min() > 4 and xs.max() < 34 and ys.min() > 4 and ys.max() < 24 and len(xs) > 10 for xs, ys in strokes)


def test_statistics_within_documented_ranges_and_separability():
    from geoseek.capabilities.sketch_image.realism import STAT_NAMES, separability, sketch_statistics, skeletonize, statistics
    from geoseek.sources.drawn_sketch import drawn_sketch
    from geoseek.sources.sketch import synthesize_sketch

    # skeleton of a 5-px-thick horizontal bar is a ~1-px line about as long as the bar
    bar = np.zeros((40, 40), bool)
    bar[18:23, 5:35] = True
    sk = skeletonize(bar)
    assert 20 <= sk.sum() <= 31 and sk.sum(0).max() == 1
    drawn = statistics([drawn_sketch(_scene(s), rng=np.random.default_rng(s)) for s in range(8)])
    outline = statistics([synthesize_sketch(_scene(s), rng=np.random.default_rng(s)) for s in range(8)])
    assert drawn.shape == (8, len(STAT_NAMES))
    d = dict(zip(STAT_NAMES, drawn.mean(0)))
    # the documented ranges of drawn-style sketches (docs/sketch-image.md): sparse ink, few strokes
    assert 0.02 <= d["density"] <= 0.2 and 1 <= d["components"] <= 8 and d["endpoints"] <= 16 and 1.5 <= d["width"] <= 5
    assert d["density"] < dict(zip(STAT_NAMES, outline.mean(0)))["density"]
    assert np.all(sketch_statistics(np.zeros((20, 20))) == 0)
    rng = np.random.default_rng(0)
    same = separability(rng.random((40, 3)), rng.random((40, 3)))
    apart = separability(rng.random((40, 3)), rng.random((40, 3)) + 5)
    assert apart > 0.95 and same < 0.8
    with pytest.raises(ValueError):
        separability(np.zeros((1, 3)), np.zeros((5, 3)))
