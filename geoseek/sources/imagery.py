"""Georeferenced imagery → chips with footprints in (lon, lat) degrees.

Two kinds of input:

* **GeoTIFFs** (any CRS rasterio + pyproj understand): :func:`iter_chips` cuts a raster into a
  grid of ``size × size`` pixel windows (``stride`` apart), skips windows with too much nodata,
  and returns :class:`Chip` objects with their raw pixels, footprint ``(west, south, east, north)``
  and centre ``(lon, lat)`` in WGS84 degrees (window corners transformed with pyproj, edges
  densified).
* **Image folders** with a ``locations.csv`` (columns ``file, lon, lat`` and optionally ``label``):
  :func:`read_located_images`; GeoTIFFs in a folder are chipped instead.

:func:`to_rgb8` turns raw chip pixels into an (H, W, 3) uint8 display image with a per-raster
percentile stretch (:func:`raster_stretch`), the form the image encoders take.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.geo import as_lonlat

GEOTIFF_EXTS = (".tif", ".tiff")
PLAIN_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class RasterInfo:
    """What a GeoTIFF holds. ``bounds_lonlat`` is (west, south, east, north) degrees."""

    path: Path
    crs: str
    width: int
    height: int
    count: int
    dtype: str
    resolution_m: float
    nodata: float | None
    bounds_lonlat: tuple[float, float, float, float]
    rgb_bands: tuple[int, int, int]
    """0-based band indices to show as red, green, blue."""
    nir_band: int | None
    """0-based near-infrared band, when known."""


@dataclass
class Chip:
    """A window of a raster: raw pixels (C, H, W) and where it lies on Earth."""

    id: str
    source: str
    window: tuple[int, int, int, int]
    """(col_off, row_off, width, height) in raster pixels."""
    footprint: tuple[float, float, float, float]
    """(west, south, east, north) degrees."""
    centroid: tuple[float, float]
    """(lon, lat) degrees of the window centre."""
    pixels: np.ndarray
    """(C, H, W), the raster's own dtype."""
    valid: float = 1.0
    """Share of pixels that are not nodata."""
    metadata: dict = field(default_factory=dict)


def _open(path: str | Path):
    import rasterio
    from rasterio.errors import RasterioIOError

    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no raster at {path}")
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise InvalidInputError(f"{path} is not a raster rasterio can read: {exc}") from None


def _band_roles(src) -> tuple[tuple[int, int, int], int | None]:
    """Guess (RGB band indices, NIR band index) from colour interpretation and descriptions.

    Rasters that declare red/green/blue colour interpretation use it (a 4th undeclared band of a
    4-band RGB raster is taken as NIR). Undeclared 3-band rasters are taken as blue, green, red
    (the Landsat band 2-3-4 order); 1-band rasters are grey.
    """
    from rasterio.enums import ColorInterp

    ci = list(src.colorinterp)
    desc = [(d or "").lower() for d in src.descriptions]
    named = {n: desc.index(n) for n in ("red", "green", "blue", "nir") if n in desc}
    if {"red", "green", "blue"} <= named.keys():
        return (named["red"], named["green"], named["blue"]), named.get("nir")
    if ColorInterp.red in ci and ColorInterp.green in ci and ColorInterp.blue in ci:
        rgb = (ci.index(ColorInterp.red), ci.index(ColorInterp.green), ci.index(ColorInterp.blue))
        nir = next((i for i in range(src.count) if i not in rgb and ci[i] == ColorInterp.undefined), None)
        return rgb, nir
    if src.count >= 3:
        return (2, 1, 0), (3 if src.count >= 4 else None)
    return (0, 0, 0), None


def _footprint(transformer, crs_bounds: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    w, s, e, n = transformer.transform_bounds(*crs_bounds, densify_pts=5)
    return (float(w), float(s), float(e), float(n))


def raster_info(path: str | Path) -> RasterInfo:
    """Read a raster's header: size, CRS, bounds in (lon, lat), band roles."""
    from pyproj import Transformer

    with _open(path) as src:
        if src.crs is None:
            raise InvalidInputError(f"{path} has no coordinate reference system; cannot place it on Earth")
        t = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        rgb, nir = _band_roles(src)
        return RasterInfo(
            path=Path(path), crs=src.crs.to_string(), width=src.width, height=src.height, count=src.count,
            dtype=src.dtypes[0], resolution_m=float(abs(src.res[0])), nodata=src.nodata,
            bounds_lonlat=_footprint(t, tuple(src.bounds)), rgb_bands=rgb, nir_band=nir,
        )


def _valid_mask(pixels: np.ndarray, nodata: float | None) -> np.ndarray:
    """(H, W) True where a pixel holds data: not all bands equal to ``nodata`` (0 when undeclared)."""
    nd = 0 if nodata is None else nodata
    return ~np.all(pixels == nd, axis=0)


def _chip_grid(src, path: str | Path, size: int, stride: int | None) -> tuple[int, int, int]:
    """(rows, cols, stride) of the chip grid of an open raster; clear errors for bad sizes."""
    if size < 1:
        raise InvalidInputError(f"chip size must be >= 1 pixel, got {size}")
    stride = stride or size
    if stride < 1:
        raise InvalidInputError(f"chip stride must be >= 1 pixel, got {stride}")
    if src.crs is None:
        raise InvalidInputError(f"{path} has no coordinate reference system; cannot place it on Earth")
    if src.width < size or src.height < size:
        raise InvalidInputError(f"{path} is {src.width}×{src.height} pixels, smaller than one {size}-pixel chip")
    return (src.height - size) // stride + 1, (src.width - size) // stride + 1, stride


def chip_grid(path: str | Path, size: int = 64, stride: int | None = None) -> tuple[int, int]:
    """(rows, cols) of the chip grid :func:`iter_chips` cuts ``path`` into (reads the header only).

    Chip ``i`` of the grid (row-major, before nodata skipping) is at pixel row
    ``(i // cols) * stride``, column ``(i % cols) * stride``.
    """
    with _open(path) as src:
        rows, cols, _ = _chip_grid(src, path, size, stride)
        return rows, cols


def iter_chips(
    path: str | Path,
    size: int = 64,
    stride: int | None = None,
    max_nodata: float = 0.05,
    source: str | None = None,
    windowed: bool = False,
    span: tuple[int, int] | None = None,
) -> Iterator[Chip]:
    """Cut ``path`` into ``size × size`` pixel chips on a grid ``stride`` pixels apart (default: ``size``).

    Chips whose share of nodata pixels exceeds ``max_nodata`` are skipped (nodata is the raster's
    declared value, else all-bands-zero). Ids are ``<source>/r<row>_c<col>`` in pixels.
    ``span`` = (start, stop): only the grid chips start..stop-1 (row-major indices of
    :func:`chip_grid`, before skipping); None: the whole grid. Pixels are read with one rasterio
    window bounding the span's chips, or, with ``windowed``, one window per chip (least memory;
    same chips).
    """
    from pyproj import Transformer
    from rasterio.windows import Window
    from rasterio.windows import bounds as window_bounds

    source = source or Path(path).stem
    with _open(path) as src:
        n_rows, n_cols, stride = _chip_grid(src, path, size, stride)
        start, stop = (0, n_rows * n_cols) if span is None else (max(0, int(span[0])), min(int(span[1]), n_rows * n_cols))
        if start >= stop:
            return
        t = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True)
        data, y0, x0 = None, 0, 0
        if not windowed:  # one read of the span's bounding window beats a read per chip
            (r0, c0), (r1, c1) = divmod(start, n_cols), divmod(stop - 1, n_cols)
            if r0 != r1:
                c0, c1 = 0, n_cols - 1
            y0, x0 = r0 * stride, c0 * stride
            data = src.read(window=Window(x0, y0, c1 * stride + size - x0, r1 * stride + size - y0))
        for i in range(start, stop):
            row, col = (i // n_cols) * stride, (i % n_cols) * stride
            win = Window(col, row, size, size)
            pix = src.read(window=win) if data is None else data[:, row - y0 : row - y0 + size, col - x0 : col - x0 + size]
            valid = float(_valid_mask(pix, src.nodata).mean())
            if 1.0 - valid > max_nodata:
                continue
            fb = _footprint(t, window_bounds(win, src.transform))
            cx, cy = src.xy(row + size / 2, col + size / 2, offset="ul")
            lon, lat = t.transform(cx, cy)
            yield Chip(
                id=f"{source}/r{row:05d}_c{col:05d}", source=source, window=(col, row, size, size),
                footprint=fb, centroid=(float(lon), float(lat)), pixels=pix.copy(), valid=valid,
                metadata={"crs": src.crs.to_string(), "resolution_m": float(abs(src.res[0])), "size_px": size},
            )


def raster_stretch(path: str | Path, bands: Sequence[int], low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Per-band (low, high) percentiles over a raster's valid pixels, shape (len(bands), 2).

    Computed once per raster so that chips of one raster share a display stretch.
    """
    with _open(path) as src:
        step = max(1, int(np.sqrt(src.width * src.height / 1_000_000)))
        data = src.read()[:, ::step, ::step]
        valid = _valid_mask(data, src.nodata)
        out = []
        for b in bands:
            v = data[b][valid].astype(np.float64)
            out.append(np.percentile(v, [low, high]) if v.size else np.array([0.0, 1.0]))
        return np.asarray(out, dtype=np.float64)


def to_rgb8(pixels: np.ndarray, rgb_bands: Sequence[int], stretch: np.ndarray | None = None) -> np.ndarray:
    """Raw (C, H, W) pixels → (H, W, 3) uint8 by linear stretch of ``rgb_bands`` between ``stretch`` rows.

    Without ``stretch``, uint8 rasters are taken as they are and others are stretched by the
    chip's own 2-98 percentiles.
    """
    bands = np.stack([pixels[b] for b in rgb_bands]).astype(np.float64)
    if stretch is None:
        if pixels.dtype == np.uint8:
            return np.ascontiguousarray(bands.transpose(1, 2, 0).astype(np.uint8))
        stretch = np.percentile(bands.reshape(3, -1), [2, 98], axis=1).T
    lo, hi = stretch[:, 0][:, None, None], stretch[:, 1][:, None, None]
    out = np.clip((bands - lo) / np.maximum(hi - lo, 1e-9), 0, 1) * 255
    return np.ascontiguousarray(out.round().astype(np.uint8).transpose(1, 2, 0))


@dataclass
class LocatedImage:
    """A plain image file with a known location (from ``locations.csv``)."""

    path: Path
    lonlat: tuple[float, float]
    label: str | None = None


def read_located_images(root: str | Path, csv_name: str = "locations.csv") -> list[LocatedImage]:
    """Images listed in ``root/locations.csv`` (columns ``file, lon, lat[, label]``, degrees).

    Raises a clear error for a missing file, a missing column, or an out-of-range coordinate.
    """
    root = Path(root)
    table = root / csv_name
    if not table.is_file():
        raise NotFoundError(f"no {csv_name} in {root}: list images as 'file,lon,lat[,label]' rows")
    out: list[LocatedImage] = []
    with table.open(newline="") as f:
        reader = csv.DictReader(f)
        need = {"file", "lon", "lat"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise InvalidInputError(f"{table} must have the columns file, lon, lat (and optionally label)")
        for i, row in enumerate(reader, start=2):
            p = root / row["file"]
            if not p.is_file():
                raise NotFoundError(f"{table}:{i}: no image {p}")
            try:
                lon, lat = float(row["lon"]), float(row["lat"])
                as_lonlat((lon, lat), name=f"{table.name} line {i}")
            except ValueError as exc:
                raise InvalidInputError(f"{table}:{i}: {exc}") from None
            out.append(LocatedImage(p, (lon, lat), (row.get("label") or None)))
    return out


def find_geotiffs(root: str | Path) -> list[Path]:
    """GeoTIFF files under ``root`` (recursively), sorted; ``root`` may itself be a file."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise NotFoundError(f"no raster file or folder at {root}")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in GEOTIFF_EXTS and p.is_file())
