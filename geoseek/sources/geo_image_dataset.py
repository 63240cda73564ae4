"""The geo-located image dataset of the GIMI protocol: raster chips and rendered OSM tiles.

Sources (defaults, all under ``<data>`` = ``../shared/data``):

* **OSM tiles**: every non-empty XYZ tile at zoom ``zoom`` (16: ~610 m at the equator, ~490 m in
  Malta) of ``osm/malta-2018-08``, ``osm/liechtenstein-2015`` and ``osm/helsinki-center``,
  rendered in the RGB map style (:func:`geoseek.sources.render.to_rgb`) at ``image_size`` px.
  Location: the tile centre. **Label: the tile's dominant OSM land use**
  (:func:`~geoseek.sources.render.dominant_land_use`: the land-use layer — water, park, forest,
  farmland, residential, commercial, industrial — covering most pixels, if it covers ≥ 20 %).
  Tiles without a dominant land use (open sea, roads only, unmapped land) are left out.
* **Raster chips**: ``chip_px``-pixel windows of ``imagery/landsat8-paraguay`` (30 m, blue-green-red),
  ``imagery/rgbn-5m`` (5 m RGB+NIR, Haiti) and ``imagery/neon`` (10 cm RGB, Florida), cut by
  :func:`geoseek.sources.imagery.iter_chips` (chips with > 5 % nodata skipped), shown with a
  per-raster 2–98 % stretch. Location: the chip centre. OSM does not cover these rasters, so
  **label: a spectral class** — k-means (scikit-learn, ``n_init=10``, seeded) on standardized
  chip statistics: mean brightness, its standard deviation (texture), mean green-red
  vegetation index GRVI = (G − R)/(G + R) and, where a NIR band exists, mean NDVI. k = 4 for
  rasters with ≥ 200 chips, 3 for ≥ 40, else 2. Clusters are numbered by increasing mean GRVI
  (``c0`` = least green), and labels are ``<raster>:c<i>`` so classes never mix rasters.

Relevance for retrieval is *same label*: OSM land-use labels are shared across the three OSM
regions; spectral classes belong to one raster.

**Split** (seeded, spatial): within each source, grid cells (tiles / chips) are grouped into
square blocks of ``block`` × ``block`` cells (4 × 4, or 2 × 2 when the grid is smaller than
12 cells a side); blocks are shuffled with ``numpy.random.default_rng([seed, crc32(source)])``
and assigned in order to train / val / test until 60 % / 20 % / 20 % of the source's samples are
reached. Neighbouring cells therefore share a split, which limits (but cannot remove) spatial
leakage between training and test.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from geoseek.errors import InvalidInputError

DEFAULT_OSM = ("osm/malta-2018-08.osm.pbf", "osm/liechtenstein-2015.osm.pbf", "osm/helsinki-center.osm.pbf")
DEFAULT_RASTERS = (
    "imagery/landsat8-paraguay/LC08_L1TP_224078_20200518_20200518_01_RT.TIF",
    "imagery/rgbn-5m/rgbn.tif",
    "imagery/neon/OSBS_029.tif",
)
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)


@dataclass
class GeoImageSample:
    """One geo-located image. ``lonlat`` and ``footprint`` in degrees; ``cell`` = (row, col) in its source grid."""

    id: str
    source: str
    kind: str
    """``osm-tile`` or ``raster-chip``."""
    lonlat: tuple[float, float]
    footprint: tuple[float, float, float, float]
    label: str
    cell: tuple[int, int]
    split: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass
class GeoImageDataset:
    """Samples with their RGB images (N, S, S, 3) uint8 (or None when not kept)."""

    samples: list[GeoImageSample]
    images: np.ndarray | None
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def lonlat(self) -> np.ndarray:
        return np.array([s.lonlat for s in self.samples], dtype=np.float64).reshape(-1, 2)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=object)

    @property
    def splits(self) -> np.ndarray:
        return np.array([s.split for s in self.samples], dtype=object)

    def indices(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise InvalidInputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        return np.nonzero(self.splits == split)[0]

    def meta(self) -> list[dict[str, Any]]:
        """JSON-serializable sample records (for caches and manifests)."""
        return [asdict(s) for s in self.samples]

    @classmethod
    def from_meta(cls, records: Sequence[dict[str, Any]], info: dict[str, Any]) -> GeoImageDataset:
        samples = [
            GeoImageSample(**{**r, "lonlat": tuple(r["lonlat"]), "footprint": tuple(r["footprint"]), "cell": tuple(r["cell"])})
            for r in records
        ]
        return cls(samples, None, info)


# ------------------------------------------------------------------------------ images
def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 → (size, size, 3) uint8 (bilinear)."""
    if rgb.shape[:2] == (size, size):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))


def png_thumbnail(rgb: np.ndarray, size: int | None = None) -> bytes:
    """Lossless PNG bytes of an (H, W, 3) uint8 image (resized to ``size`` px when given).

    Collections keep the model-size image losslessly: the fusion heads are trained on exact
    renders and lose much similarity on downscaled or JPEG-compressed copies (see the docs), so
    a thumbnail sent back as a query must be the image that was indexed.
    """
    buf = io.BytesIO()
    Image.fromarray(resize_rgb(rgb, size) if size else rgb).save(buf, "PNG", optimize=True)
    return buf.getvalue()


# --------------------------------------------------------------------------- OSM tiles
def osm_tile_samples(
    path: str | Path, zoom: int = 16, image_size: int = 128, min_fraction: float = 0.2, progress: bool = True
) -> tuple[list[GeoImageSample], list[np.ndarray]]:
    """Rendered RGB tiles of one OSM file with a dominant land use, and their samples."""
    from geoseek.geo import tile_bounds
    from geoseek.sources.osm import read_osm
    from geoseek.sources.render import dominant_land_use, nonempty_tiles, render_xyz, to_rgb

    path = Path(path)
    source = path.name.split(".")[0]
    feats = read_osm(path)
    samples, images = [], []
    for x, y in tqdm(nonempty_tiles(feats, zoom), disable=not progress, desc=f"render {source}", leave=False):
        tile = render_xyz(feats, zoom, x, y, image_size)
        label = dominant_land_use(tile, min_fraction)
        if label is None:
            continue
        b = tile_bounds(x, y, zoom)
        samples.append(
            GeoImageSample(
                id=f"{source}/{zoom}/{x}/{y}", source=source, kind="osm-tile", lonlat=b.center, footprint=b.as_tuple(),
                label=label, cell=(y, x), metadata={"zoom": zoom, "x": x, "y": y},
            )
        )
        images.append(to_rgb(tile))
    return samples, images


# ------------------------------------------------------------------------ raster chips
def chip_statistics(pixels: np.ndarray, rgb_bands: Sequence[int], nir_band: int | None, stretch: np.ndarray) -> np.ndarray:
    """Per-chip spectral statistics: [mean brightness, brightness std, mean GRVI(, mean NDVI)].

    Bands are first scaled to [0, 1] by the raster's stretch (RGB) or its own 2-98 % range (NIR).
    """
    rgb = np.stack([pixels[b] for b in rgb_bands]).astype(np.float64)
    lo, hi = stretch[:, 0][:, None, None], stretch[:, 1][:, None, None]
    rgb = np.clip((rgb - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    r, g, _ = rgb
    bright = rgb.mean(0)
    eps = 1e-6
    grvi = (g - r) / (g + r + eps)
    out = [bright.mean(), bright.std(), grvi.mean()]
    if nir_band is not None:
        nir = pixels[nir_band].astype(np.float64)
        nr = pixels[rgb_bands[0]].astype(np.float64)
        out.append(((nir - nr) / (nir + nr + eps)).mean())
    return np.asarray(out, dtype=np.float64)


def clusters_for(n_chips: int) -> int:
    """k of the spectral k-means: 4 for ≥ 200 chips, 3 for ≥ 40, else 2."""
    return 4 if n_chips >= 200 else 3 if n_chips >= 40 else 2


def spectral_classes(stats: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means cluster ids (N,) of standardized chip statistics, renumbered by increasing GRVI (column 2)."""
    from sklearn.cluster import KMeans

    if len(stats) < k:
        raise InvalidInputError(f"{len(stats)} chips cannot make {k} spectral classes")
    z = (stats - stats.mean(0)) / np.maximum(stats.std(0), 1e-12)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    order = np.argsort([stats[km.labels_ == c, 2].mean() for c in range(k)])
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return rank[km.labels_]


def raster_chip_samples(
    path: str | Path, chip_px: int = 64, image_size: int = 128, seed: int = 0, max_nodata: float = 0.05
) -> tuple[list[GeoImageSample], list[np.ndarray]]:
    """Chips of one GeoTIFF with spectral-class labels (see the module docstring)."""
    from geoseek.sources.imagery import iter_chips, raster_info, raster_stretch, to_rgb8

    path = Path(path)
    info = raster_info(path)
    source = path.parent.name if path.parent.name not in ("", ".") else path.stem
    stretch = raster_stretch(path, info.rgb_bands)
    chips = list(iter_chips(path, chip_px, max_nodata=max_nodata, source=source))
    if not chips:
        raise InvalidInputError(f"{path} gave no chips of {chip_px} px with at most {max_nodata:.0%} nodata")
    stats = np.stack([chip_statistics(c.pixels, info.rgb_bands, info.nir_band, stretch) for c in chips])
    k = clusters_for(len(chips))
    cls = spectral_classes(stats, k, seed)
    samples, images = [], []
    for c, ci, st in zip(chips, cls, stats):
        col, row = c.window[0] // chip_px, c.window[1] // chip_px
        samples.append(
            GeoImageSample(
                id=c.id, source=source, kind="raster-chip", lonlat=c.centroid, footprint=c.footprint,
                label=f"{source}:c{int(ci)}", cell=(row, col),
                metadata={**c.metadata, "window": list(c.window), "stats": [round(float(v), 5) for v in st]},
            )
        )
        images.append(resize_rgb(to_rgb8(c.pixels, info.rgb_bands, stretch), image_size))
    return samples, images


# ---------------------------------------------------------------------------------- split
def block_split(samples: Sequence[GeoImageSample], seed: int = 0, fractions: Sequence[float] = SPLIT_FRACTIONS) -> None:
    """Assign ``sample.split`` in place by seeded spatial blocks per source (module docstring)."""
    by_source: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_source.setdefault(s.source, []).append(i)
    for source, idx in by_source.items():
        cells = np.array([samples[i].cell for i in idx])
        side = int(max(np.ptp(cells[:, 0]), np.ptp(cells[:, 1])) + 1)
        b = 4 if side >= 12 else 2
        keys = [(r // b, c // b) for r, c in cells]
        blocks = sorted(set(keys))
        rng = np.random.default_rng([seed, zlib.crc32(source.encode())])
        order = rng.permutation(len(blocks))
        members: dict[tuple[int, int], list[int]] = {}
        for i, k in zip(idx, keys):
            members.setdefault(k, []).append(i)
        targets = np.cumsum(fractions) * len(idx)
        done, part = 0, 0
        for o in order:
            while part < len(SPLITS) - 1 and done >= targets[part] - 1e-9:
                part += 1
            for i in members[blocks[o]]:
                samples[i].split = SPLITS[part]
            done += len(members[blocks[o]])


# -------------------------------------------------------------------------------- builder
def build_geo_image_dataset(
    data_dir: str | Path,
    osm: Sequence[str | Path] = DEFAULT_OSM,
    rasters: Sequence[str | Path] = DEFAULT_RASTERS,
    zoom: int = 16,
    chip_px: int = 64,
    image_size: int = 128,
    seed: int = 0,
    progress: bool = True,
) -> GeoImageDataset:
    """Build the dataset (images kept in memory); relative source paths are under ``data_dir``."""
    data_dir = Path(data_dir)
    samples: list[GeoImageSample] = []
    images: list[np.ndarray] = []
    for p in tqdm(list(osm), disable=not progress, desc="OSM tiles"):
        s, im = osm_tile_samples(data_dir / p, zoom, image_size, progress=progress)
        samples += s
        images += im
    for p in tqdm(list(rasters), disable=not progress, desc="raster chips"):
        s, im = raster_chip_samples(data_dir / p, chip_px, image_size, seed)
        samples += s
        images += im
    if not samples:
        raise InvalidInputError("no labelled geo-located images: give OSM files or rasters")
    block_split(samples, seed)
    info = {
        "data_dir": str(data_dir),
        "osm": [str(p) for p in osm],
        "rasters": [str(p) for p in rasters],
        "zoom": zoom,
        "chip_px": chip_px,
        "image_size": image_size,
        "seed": seed,
        "split": "spatial blocks per source, 60/20/20 (geoseek.sources.geo_image_dataset)",
        "labels": "OSM tiles: dominant land use (>= 20 %); raster chips: spectral k-means class <raster>:c<i>",
    }
    return GeoImageDataset(samples, np.stack(images), info)
