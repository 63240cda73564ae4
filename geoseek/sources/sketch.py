"""Raster sketches: Quick, Draw! strokes, strokes JSON, PNG/JPG drawings, and synthesized sketches.

Every function here returns a sketch as an **ink map**: a float32 array (H, W) in [0, 1] where
1 is ink and 0 is paper, square, with the drawing cropped to its ink bounding box plus a
margin and centred (MLAGT's preprocessing: remove white space, scale the longer side, pad to a
square). Models take it as a (N, 1, H, W) tensor.

Inputs understood
-----------------
* Quick, Draw! simplified strokes (``.ndjson``, one drawing a line:
  ``{"word": ..., "drawing": [[xs, ys], [xs, ys], ...]}`` in a 256-px frame).
* A strokes JSON file or upload: a Quick, Draw! record, ``{"strokes": [[xs, ys], ...]}``,
  ``{"drawing": ...}``, a bare list of ``[xs, ys]`` pairs, or a list of point lists
  ``[[[x, y], [x, y], ...], ...]``. Coordinates are pixels of any frame (they are rescaled).
* A PNG/JPG drawing (dark lines on a light background; a transparent background is read as
  white).

Synthesized sketches
--------------------
:func:`synthesize_sketch` makes a sketch-like line drawing from an aerial image, for classes
that have no hand-drawn sketches: the image is smoothed (median filter), its colours are
reduced to a few clusters (posterization), region boundaries between clusters are drawn as
lines, strong intensity edges (Sobel magnitude above a high percentile) are added, tiny specks
are dropped, and the lines are thickened to a pen width. Random jitter of the number of
colours, edge percentile and pen width (with ``rng``) gives varied drawings of the same image.
They look like a careful tracer's outline drawing, not like a person's abstract doodle; the
docs compare retrieval with real and with synthesized sketches.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from geoseek.errors import InvalidInputError

DEFAULT_SIZE = 112
"""Default sketch raster side in pixels (the sketch tokenizer's input size)."""

# Quick, Draw! categories used as real hand-drawn sketches of aerial scene classes. These are
# object doodles (a bridge seen from the side, a tree), not top-down scene drawings: a proxy,
# documented in docs/sketch-image.md. Keys are canonical class names of geoseek.sources.datasets.
QUICKDRAW_TO_CLASS: dict[str, str] = {
    "airplane": "airplane",
    "beach": "beach",
    "bridge": "bridge",
    "river": "river",
    "pond": "pond",
    "tree": "forest",
    "baseball": "baseball_diamond",
    "tennis racquet": "tennis_court",
    "sailboat": "harbor",
    "church": "church",
    "soccer ball": "stadium",
    "car": "parking_lot",
    "house": "dense_residential",
    "circle": "storage_tanks",
    "golf club": "golf_course",
    "tractor": "farmland",
}


def _to_ink(gray: np.ndarray) -> np.ndarray:
    """Grayscale [0, 255] paper-light drawing → ink map in [0, 1]."""
    return 1.0 - gray.astype(np.float32) / 255.0


def crop_and_square(ink: np.ndarray, size: int = DEFAULT_SIZE, margin: float = 0.08, threshold: float = 0.2) -> np.ndarray:
    """Crop an ink map to its ink bounding box (plus ``margin`` of the box side), pad square, resize to ``size``."""
    ys, xs = np.nonzero(ink > threshold)
    if len(xs) == 0:
        raise InvalidInputError("the sketch is empty: no dark strokes were found")
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(x1 - x0, y1 - y0)
    pad = int(round(side * margin)) + 1
    side += 2 * pad
    canvas = np.zeros((side, side), np.float32)
    ox = (side - (x1 - x0)) // 2
    oy = (side - (y1 - y0)) // 2
    canvas[oy : oy + y1 - y0, ox : ox + x1 - x0] = ink[y0:y1, x0:x1]
    img = Image.fromarray((canvas * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, np.float32) / 255.0


# ---------------------------------------------------------------------------------------- strokes
Strokes = list[tuple[np.ndarray, np.ndarray]]
"""A drawing: one (xs, ys) pair of float arrays per pen stroke (pixels of any frame)."""

MAX_COORD = 1e7
"""Largest |x| or |y| of a stroke point, pixels (beyond, the drawing's span is not representable)."""
MAX_STROKES = 10_000
MAX_POINTS = 200_000
MAX_STROKES_JSON_BYTES = 20 * 1024 * 1024


def parse_strokes(obj: Any) -> Strokes:
    """Normalize any supported strokes JSON value to :data:`Strokes` (raises InvalidInputError)."""
    if isinstance(obj, dict):
        for key in ("drawing", "strokes"):
            if key in obj:
                return parse_strokes(obj[key])
        raise InvalidInputError("strokes JSON object needs a 'drawing' or 'strokes' field")
    if not isinstance(obj, list) or not obj:
        raise InvalidInputError("strokes must be a non-empty list of strokes")
    if len(obj) > MAX_STROKES:
        raise InvalidInputError(f"the sketch has {len(obj):,} strokes, more than {MAX_STROKES:,}")
    out: Strokes = []
    points = 0
    for i, stroke in enumerate(obj):
        try:
            arr = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError(f"stroke {i} is not numeric") from None
        if arr.ndim == 2 and arr.shape[0] in (2, 3) and arr.shape[1] != 2:
            xs, ys = arr[0], arr[1]  # Quick, Draw! [xs, ys(, ts)]
        elif arr.ndim == 2 and arr.shape[1] == 2:
            xs, ys = arr[:, 0], arr[:, 1]  # [[x, y], ...]
        elif arr.ndim == 2 and arr.shape == (2, 2):
            xs, ys = arr[0], arr[1]
        else:
            raise InvalidInputError(f"stroke {i} must be [xs, ys] or a list of [x, y] points, got shape {arr.shape}")
        if len(xs) == 0 or not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            raise InvalidInputError(f"stroke {i} is empty or has non-finite coordinates")
        if np.abs(xs).max() > MAX_COORD or np.abs(ys).max() > MAX_COORD:
            raise InvalidInputError(f"stroke {i} has coordinates beyond ±{MAX_COORD:g} pixels")
        points += len(xs)
        if points > MAX_POINTS:
            raise InvalidInputError(f"the sketch has more than {MAX_POINTS:,} points")
        out.append((xs, ys))
    return out


def rasterize_strokes(strokes: Strokes | Any, size: int = DEFAULT_SIZE, line_width: float = 0.025, margin: float = 0.08,
                      widths: Sequence[float] | None = None) -> np.ndarray:
    """Draw strokes into a ``size``×``size`` ink map, scaled to fit with ``margin``.

    ``line_width`` is the pen width as a fraction of ``size``; ``widths`` (one per stroke, same
    unit) overrides it stroke by stroke (a varying pen).
    """
    if not (isinstance(strokes, list) and strokes and isinstance(strokes[0], tuple)):
        strokes = parse_strokes(strokes)
    xs = np.concatenate([s[0] for s in strokes])
    ys = np.concatenate([s[1] for s in strokes])
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise InvalidInputError("the sketch has non-finite coordinates")
    x0, y0 = xs.min(), ys.min()
    with np.errstate(over="ignore"):
        span = max(xs.max() - x0, ys.max() - y0, 1e-6)
    if not np.isfinite(span):
        raise InvalidInputError("the sketch's coordinates span more than a float can hold; it would draw blank")
    inner = size * (1 - 2 * margin)
    scale = inner / span
    ox = (size - (xs.max() - x0) * scale) / 2
    oy = (size - (ys.max() - y0) * scale) / 2
    if widths is not None and len(widths) != len(strokes):
        raise InvalidInputError(f"widths needs one entry per stroke ({len(strokes)}), got {len(widths)}")
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for si, (sx, sy) in enumerate(strokes):
        width = max(1, int(round((line_width if widths is None else widths[si]) * size)))
        pts = [(float(ox + (x - x0) * scale), float(oy + (y - y0) * scale)) for x, y in zip(sx, sy)]
        if len(pts) == 1:
            (x, y), r = pts[0], width / 2
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
        else:
            draw.line(pts, fill=255, width=width, joint="curve")
    ink = np.asarray(img, np.float32) / 255.0
    if not ink.any():
        raise InvalidInputError("the sketch is blank: its strokes draw nothing (check the coordinates)")
    return ink


def read_quickdraw(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Records of a Quick, Draw! ``.ndjson`` file (each has ``word`` and ``drawing``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Quick, Draw! file at {path}")
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            out.append(json.loads(line))
            if limit is not None and len(out) >= limit:
                break
    return out


def quickdraw_sketches(strokes_dir: str | Path, mapping: dict[str, str] | None = None, size: int = DEFAULT_SIZE) -> Iterator[tuple[np.ndarray, str, str]]:
    """Yield (ink map, class name, source id) for every drawing of every mapped category."""
    mapping = QUICKDRAW_TO_CLASS if mapping is None else mapping
    for word, cls in mapping.items():
        path = Path(strokes_dir) / f"{word}.ndjson"
        if not path.is_file():
            continue
        for i, rec in enumerate(read_quickdraw(path)):
            yield rasterize_strokes(rec["drawing"], size), cls, f"quickdraw:{word}:{rec.get('key_id', i)}"


# ----------------------------------------------------------------------------------- image files
def read_sketch_image(data: bytes | str | Path | Image.Image, size: int = DEFAULT_SIZE) -> np.ndarray:
    """A PNG/JPG drawing (dark lines on light paper) → cropped, squared ink map."""
    if isinstance(data, Image.Image):
        img = data
    else:
        try:
            img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
            img.load()
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise InvalidInputError(f"cannot read the sketch image ({type(exc).__name__}): not a PNG/JPG drawing?") from None
    if img.mode in ("RGBA", "LA", "P"):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    gray = np.asarray(img.convert("L"), np.float32)
    if gray.mean() < 110:  # light lines on a dark background: flip to dark-on-light
        gray = 255 - gray
    ink = _to_ink(gray)
    ink = np.clip((ink - 0.15) / 0.85, 0, 1)  # paper texture / JPEG noise → 0
    return crop_and_square(ink, size)


def load_sketch(source: str | Path | bytes, size: int = DEFAULT_SIZE, filename: str | None = None) -> np.ndarray:
    """Load a sketch from a path or bytes: strokes JSON (``.json``/``.ndjson`` or JSON bytes) or an image."""
    name = (filename or (str(source) if not isinstance(source, bytes) else "")).lower()
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no sketch file at {path}")
        raw = path.read_bytes()
    else:
        raw = source
    looks_json = name.endswith((".json", ".ndjson", ".geojson")) or raw.lstrip()[:1] in (b"{", b"[")
    if looks_json:
        from geoseek.safejson import loads_limited

        text = raw.decode("utf-8", errors="replace").strip()
        if name.endswith(".ndjson"):
            text = text.splitlines()[0] if text else ""
        obj = loads_limited(text, max_bytes=MAX_STROKES_JSON_BYTES, what="the sketch strokes JSON")
        return rasterize_strokes(parse_strokes(obj), size)
    return read_sketch_image(raw, size)


def save_ink(ink: np.ndarray, path: str | Path) -> None:
    """Write an ink map as a black-on-white PNG."""
    Image.fromarray(((1 - np.clip(ink, 0, 1)) * 255).astype(np.uint8)).save(path)


# ------------------------------------------------------------------------------------ synthesizer
def _sobel_magnitude(g: np.ndarray) -> np.ndarray:
    p = np.pad(g, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return np.hypot(gx, gy)


def synthesize_sketch(
    image: Image.Image | np.ndarray | str | Path,
    size: int = DEFAULT_SIZE,
    rng: np.random.Generator | None = None,
    work: int = 128,
) -> np.ndarray:
    """A sketch-like line drawing (ink map ``size``×``size``) of an aerial image; see the module doc.

    Args:
        image: RGB image (PIL, (H, W, 3) uint8 array, or a path).
        rng: jitters the drawing style (None: the fixed default style).
        work: working resolution in pixels (the image is resized to ``work``×``work`` first).
    """
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image.astype(np.uint8))
    img = image.convert("RGB").resize((work, work), Image.Resampling.BILINEAR)
    if rng is None:
        colors, pct, pen, median = 4, 96.0, 2, 7
    else:
        colors = int(rng.integers(3, 6))
        pct = float(rng.uniform(94, 98.5))
        pen = int(rng.integers(1, 4))
        median = int(rng.choice([5, 7, 9]))
    smooth = img.filter(ImageFilter.MedianFilter(median))
    labels = np.asarray(smooth.quantize(colors, method=Image.Quantize.MEDIANCUT).filter(ImageFilter.ModeFilter(9)), np.int16)
    boundary = np.zeros(labels.shape, bool)
    boundary[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    boundary[1:, :] |= labels[1:, :] != labels[:-1, :]
    gray = np.asarray(smooth.convert("L"), np.float32)
    mag = _sobel_magnitude(gray)
    edges = mag > np.percentile(mag, pct)
    lines = boundary | edges
    # drop specks: keep pixels with at least 2 line neighbours in their 3x3 window
    p = np.pad(lines, 1)
    neigh = sum(p[1 + dy : 1 + dy + lines.shape[0], 1 + dx : 1 + dx + lines.shape[1]] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    lines &= neigh >= 3
    ink = Image.fromarray((lines * 255).astype(np.uint8))
    if pen > 1:
        ink = ink.filter(ImageFilter.MaxFilter(2 * (pen // 2) + 1))
    ink = ink.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(ink, np.float32) / 255.0


def augment_ink(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip / 90° rotation / small shift of an ink map (aerial scenes have no 'up')."""
    out = np.rot90(ink, int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    shift = rng.integers(-4, 5, size=2)
    out = np.roll(out, tuple(int(s) for s in shift), axis=(0, 1))
    return np.ascontiguousarray(out)


def stack_inks(inks: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 1, H, W) float32 batch of ink maps."""
    return np.stack([np.asarray(i, np.float32) for i in inks])[:, None]
