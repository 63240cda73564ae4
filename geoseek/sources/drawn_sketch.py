"""Drawn-style synthesized sketches: what a person draws in a quick top-down sketch of an aerial image.

:func:`geoseek.sources.sketch.synthesize_sketch` traces every colour boundary and strong edge
(a careful tracer's outline, far denser than anyone draws). :func:`drawn_sketch` instead
vectorizes the scene's large structures and draws a few strokes of them:

1. **Segment**: the image (``work`` px square) is median-filtered, posterized to ``colors``
   colours and mode-filtered; each connected region of one colour is a candidate structure.
2. **Drop detail**: regions smaller than ``min_area`` (share of the image) and the largest
   background region (covering more than ``background`` of the image) are left out.
3. **Vectorize**: each region's outline is traced (marching squares, ``contourpy``) and
   simplified by Douglas–Peucker (``shapely.simplify``, tolerance ``dp_tol`` × ``work``).
4. **Shapes**: a region away from the image border that is nearly a circle (circularity
   4πA/P² above 0.8) is drawn as a circle, nearly a rectangle (area / minimum rotated
   rectangle above 0.62) as that rectangle, else as its simplified polygon. A region that
   touches the border is drawn as open polylines: its outline without the segments that lie on
   the frame (people do not draw the frame), so a road crossing the scene becomes two long lines
   and a river bank one gently curving line. Elongated objects (rectangles longer than 3.5× their
   width: runways, courts) sometimes get a centre line.
5. **Keep the salient ones**: candidates are ranked by area (closed shapes) or length (open
   lines); at most ``max_strokes`` are kept, and a candidate mostly covered by strokes already
   kept is skipped (a shared boundary is drawn once).
6. **Draw**: every stroke is densified and wobbled (smooth random displacement of ``wobble`` ×
   ``work`` px), closed shapes may overshoot or stay a little open, and the strokes go through
   :func:`geoseek.sources.sketch.rasterize_strokes` — the rasterizer Quick, Draw! strokes go
   through — with a pen width drawn per sketch and varied per stroke.

Everything is drawn from ``rng`` (``numpy.random.default_rng(seed)``): same image and seed → same
sketch. :func:`drawn_strokes` returns the strokes (``work``-px frame, every point inside
``[0, work]``) before rasterizing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from geoseek.sources.sketch import DEFAULT_SIZE, Strokes, rasterize_strokes


@dataclass(frozen=True)
class DrawnStyle:
    """Knobs of :func:`drawn_sketch` (the style a random ``rng`` jitters around; lengths are shares of ``work``)."""

    colors: int = 4
    """Posterization colours (regions = connected areas of one colour)."""
    median: int = 7
    """Median-filter size, px at ``work``."""
    min_area: float = 0.008
    """Smallest region drawn, share of the image area."""
    background: float = 0.45
    """A region covering more than this share is the background and is not outlined."""
    dp_tol: float = 0.07
    """Douglas–Peucker tolerance, share of ``work``."""
    max_strokes: int = 6
    """At most this many strokes."""
    wobble: float = 0.006
    """Wobble amplitude (standard deviation), share of ``work``."""
    pen: float = 0.025
    """Pen width, share of the output size (Quick, Draw! strokes use 0.025)."""
    pen_var: float = 0.3
    """Relative spread of the pen width stroke to stroke."""
    p_centre_line: float = 0.5
    """Chance that an elongated rectangle gets its centre line."""


def _jittered_style(rng: np.random.Generator) -> DrawnStyle:
    return DrawnStyle(
        colors=int(rng.integers(3, 6)),
        median=int(rng.choice([5, 7, 9])),
        min_area=float(rng.uniform(0.006, 0.015)),
        background=float(rng.uniform(0.35, 0.55)),
        dp_tol=float(rng.uniform(0.05, 0.09)),
        max_strokes=int(rng.integers(3, 9)),
        wobble=float(rng.uniform(0.003, 0.009)),
        pen=float(rng.uniform(0.018, 0.035)),
        pen_var=float(rng.uniform(0.1, 0.4)),
        p_centre_line=0.5,
    )


@dataclass
class _Candidate:
    points: np.ndarray
    """(P, 2) x, y in work px."""
    closed: bool
    salience: float


def _regions(img: Image.Image, style: DrawnStyle) -> tuple[np.ndarray, int]:
    """Connected one-colour regions of the posterized image: (label map (H, W) int32, count)."""
    from scipy import ndimage

    smooth = img.filter(ImageFilter.MedianFilter(style.median))
    q = np.asarray(smooth.quantize(style.colors, method=Image.Quantize.MEDIANCUT).filter(ImageFilter.ModeFilter(7)), np.int32)
    out = np.zeros(q.shape, np.int32)
    n = 0
    for c in np.unique(q):
        lab, k = ndimage.label(q == c)
        out[lab > 0] = lab[lab > 0] + n
        n += k
    return out, n


def _outline(mask: np.ndarray) -> np.ndarray | None:
    """The longest closed outline (P, 2) of a boolean mask, x, y in pixel-centre coordinates."""
    import contourpy

    z = np.pad(mask.astype(np.float64), 1)
    lines = contourpy.contour_generator(z=z, line_type=contourpy.LineType.Separate).lines(0.5)
    if not lines:
        return None
    best = max(lines, key=len)
    return np.asarray(best, np.float64) - 1.0  # undo the padding


def _smooth_mask(mask: np.ndarray, r: int) -> np.ndarray:
    """Close, open and hole-fill a region mask with a (2r+1)-px square: ragged detail dropped."""
    from scipy import ndimage

    st = np.ones((2 * r + 1, 2 * r + 1), bool)
    pad = 2 * r + 1
    m = np.pad(mask, pad, mode="edge")  # the region continues beyond the frame: no erosion there
    m = ndimage.binary_opening(ndimage.binary_closing(m, st), st)[pad:-pad, pad:-pad]
    return ndimage.binary_fill_holes(m)


def _chaikin(p: np.ndarray, closed: bool) -> np.ndarray:
    """One round of Chaikin corner cutting: sharp vertices → gentle curves."""
    a, b = (p[:-1], p[1:])
    q = np.empty((2 * len(a), 2))
    q[0::2], q[1::2] = 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b
    if closed:
        return np.vstack([q, q[:1]])
    return np.vstack([p[:1], q, p[-1:]])


def _on_frame(p: np.ndarray, work: int, tol: float) -> np.ndarray:
    """(P,) whether each point lies on the image frame (within ``tol`` px)."""
    lo, hi = -0.5 + tol, work - 0.5 - tol
    return (p[:, 0] <= lo) | (p[:, 0] >= hi) | (p[:, 1] <= lo) | (p[:, 1] >= hi)


def _open_pieces(ring: np.ndarray, work: int) -> list[np.ndarray]:
    """A closed ring without its frame segments → open polylines (each ≥ 2 points)."""
    on = _on_frame(ring, work, 1.0)
    if not on.any():
        return [ring]
    # start at a frame point so pieces do not wrap around the array end
    start = int(np.argmax(on))
    r, o = np.roll(ring[:-1], -start, 0), np.roll(on[:-1], -start)
    r, o = np.vstack([r, r[:1]]), np.append(o, o[0])
    pieces, cur = [], []
    for i in range(len(r)):
        if o[i]:
            if cur:
                cur.append(r[i])  # end on the frame point
                pieces.append(np.asarray(cur))
            cur = [r[i]]
        else:
            cur.append(r[i])
    if len(cur) > 1 and not o[len(r) - 1]:
        pieces.append(np.asarray(cur))
    # a segment between two consecutive frame points is the frame itself: drop 2-point pieces along it
    return [p for p in pieces if len(p) >= 2 and not (len(p) == 2 and _on_frame(p, work, 1.0).all())]


def _candidates(labels: np.ndarray, n: int, style: DrawnStyle, rng: np.random.Generator) -> list[_Candidate]:
    """Shapes and lines of the salient regions (see the module docstring, steps 2–4)."""
    import shapely

    work = labels.shape[0]
    area_px = work * work
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    out: list[_Candidate] = []
    for r in np.argsort(-counts[1:])[: 3 * style.max_strokes] + 1:
        a = counts[r]
        if a < style.min_area * area_px or a > style.background * area_px:
            continue
        ring = _outline(_smooth_mask(labels == r, max(1, work // 64)))
        if ring is None or len(ring) < 4:
            continue
        touches = bool(_on_frame(ring, work, 1.0).any())
        poly = shapely.Polygon(ring)
        if not poly.is_valid:
            poly = poly.buffer(0)
            if poly.is_empty or poly.geom_type != "Polygon":
                continue
        tol = style.dp_tol * work
        if not touches:
            perim = max(poly.length, 1e-6)
            circ = 4 * math.pi * poly.area / perim**2
            rect = shapely.minimum_rotated_rectangle(poly)
            if circ > 0.8:
                c = poly.centroid
                rad = math.sqrt(poly.area / math.pi)
                t = np.linspace(0, 2 * math.pi, 25)
                pts = np.stack([c.x + rad * np.cos(t), c.y + rad * np.sin(t)], 1)
            elif rect.area > 0 and poly.area / rect.area > 0.62:
                pts = np.asarray(rect.exterior.coords)
                sides = np.linalg.norm(np.diff(pts[:3], axis=0), axis=1)
                if sides.max() > 3.5 * max(sides.min(), 1e-6) and rng.random() < style.p_centre_line:
                    i = int(np.argmin(sides))  # the centre line joins the midpoints of the short sides
                    m1 = (pts[i] + pts[i + 1]) / 2
                    m2 = (pts[i + 2] + pts[(i + 3) % 4]) / 2
                    out.append(_Candidate(np.stack([m1, m2]), False, 0.5 * float(sides.max())))
            else:
                simple = poly.simplify(tol, preserve_topology=False)
                if simple.is_empty or simple.geom_type != "Polygon" or len(simple.exterior.coords) < 4:
                    continue
                pts = _chaikin(np.asarray(simple.exterior.coords), True)
            out.append(_Candidate(pts, True, float(a)))
        else:
            simple = poly.simplify(tol, preserve_topology=False)
            if simple.is_empty or simple.geom_type != "Polygon":
                continue
            for piece in _open_pieces(np.asarray(simple.exterior.coords), work):
                length = float(np.linalg.norm(np.diff(piece, axis=0), axis=1).sum())
                if length >= 0.15 * work:
                    piece = _chaikin(piece, False)
                    # an open line scores by its length against the area of a closed shape of similar extent
                    out.append(_Candidate(piece, False, length * length / 4))
    return out


def _densify(p: np.ndarray, step: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return p
    t = np.linspace(0, s[-1], max(2, int(math.ceil(s[-1] / step)) + 1))
    return np.stack([np.interp(t, s, p[:, 0]), np.interp(t, s, p[:, 1])], 1)


def _wobble(p: np.ndarray, amp: float, rng: np.random.Generator, closed: bool) -> np.ndarray:
    """Smooth random displacement (a low-pass random walk) of a densified polyline."""
    n = len(p)
    noise = rng.normal(0, 1, (n + 8, 2))
    k = np.ones(9) / 9
    smooth = np.stack([np.convolve(noise[:, j], k, "valid") for j in range(2)], 1)[:n]
    smooth *= amp / max(float(smooth.std()), 1e-9)
    q = p + smooth
    if closed:
        # overshoot past the start, or stop a little short of it, as a hand does
        m = max(1, n // 12)
        q = np.vstack([q, q[1 : 1 + m]]) if rng.random() < 0.5 else q[: max(2, n - int(rng.integers(0, m + 1)))]
    return q


def _covered(p: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """(P,) whether each point falls on already drawn ink (a dilated mask at work px)."""
    h = drawn.shape[0]
    ij = np.clip(np.round(p).astype(int), 0, h - 1)
    return drawn[ij[:, 1], ij[:, 0]]


def drawn_strokes(
    image: Image.Image | np.ndarray | str | Path,
    rng: np.random.Generator | None = None,
    work: int = 128,
    style: DrawnStyle | None = None,
) -> tuple[Strokes, list[float]]:
    """The strokes of a drawn-style sketch and their pen widths (share of the output size).

    Strokes are (xs, ys) in the ``work``-px frame of the image, every point inside ``[0, work]``.
    ``rng`` None draws the fixed default :class:`DrawnStyle` without random jitter of the style
    (the wobble then comes from ``default_rng(0)``).
    """
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image.astype(np.uint8))
    img = image.convert("RGB").resize((work, work), Image.Resampling.BILINEAR)
    if style is None:
        style = _jittered_style(rng) if rng is not None else DrawnStyle()
    rng = rng if rng is not None else np.random.default_rng(0)
    labels, n = _regions(img, style)
    cands = _candidates(labels, n, style, rng)
    if not cands:  # a uniform scene: fall back to finer regions, then to the largest region's outline
        finer = replace(style, colors=style.colors + 2, min_area=style.min_area / 2, background=0.9)
        labels, n = _regions(img, finer)
        cands = _candidates(labels, n, finer, rng)
    cands.sort(key=lambda c: -c.salience)
    canvas = Image.new("1", (work, work), 0)
    pen_px = max(2, int(round(0.03 * work)))
    strokes: Strokes = []
    widths: list[float] = []
    for c in cands:
        if len(strokes) >= style.max_strokes:
            break
        dense = _densify(c.points, 2.0)
        cov = _covered(dense, np.asarray(canvas, bool))
        if cov.mean() > 0.6:
            continue
        pieces = [dense] if not cov.any() else [seg for seg in np.split(dense, np.nonzero(np.diff(cov.astype(int)))[0] + 1) if not _covered(seg, np.asarray(canvas, bool)).any() and len(seg) >= 4]
        closed = c.closed and not cov.any()
        for seg in pieces:
            q = np.clip(_wobble(seg, style.wobble * work, rng, closed), 0.0, float(work))
            strokes.append((q[:, 0].copy(), q[:, 1].copy()))
            widths.append(float(style.pen * np.exp(rng.normal(0, style.pen_var))))
            ImageDraw.Draw(canvas).line([tuple(map(float, xy)) for xy in seg], fill=1, width=pen_px)
            if len(strokes) >= style.max_strokes:
                break
    if not strokes:  # nothing salient at all: one loose loop around the scene centre (a "field")
        t = np.linspace(0, 2 * math.pi, 30)
        loop = np.stack([work / 2 + 0.35 * work * np.cos(t), work / 2 + 0.3 * work * np.sin(t)], 1)
        q = np.clip(_wobble(loop, style.wobble * work, rng, True), 0.0, float(work))
        strokes, widths = [(q[:, 0].copy(), q[:, 1].copy())], [style.pen]
    return strokes, widths


def drawn_sketch(
    image: Image.Image | np.ndarray | str | Path,
    size: int = DEFAULT_SIZE,
    rng: np.random.Generator | None = None,
    work: int = 128,
    style: DrawnStyle | None = None,
) -> np.ndarray:
    """A drawn-style sketch (ink map ``size``×``size`` float32 in [0, 1]) of an aerial image.

    Same arguments as :func:`geoseek.sources.sketch.synthesize_sketch` (``rng`` jitters the
    style; None: the fixed default style); see the module docstring for the method. Strokes go
    through :func:`~geoseek.sources.sketch.rasterize_strokes`, cropped to their extent like a
    Quick, Draw! drawing (a frame-to-frame line therefore spans the canvas, as a person's would).
    """
    strokes, widths = drawn_strokes(image, rng, work, style)
    return rasterize_strokes(strokes, size, widths=widths)
