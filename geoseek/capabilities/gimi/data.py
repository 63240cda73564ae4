"""What geo-image search reads and caches: the dataset with its frozen-backbone features.

The backbone (EfficientNet-Lite0, ImageNet, frozen) runs once per dataset; its (N, 1280) features
are cached in ``<work_dir>/data-<key>/{meta.json, features.npy}``, keyed by the resolved data
directory, the dataset parameters and the seed (:func:`dataset_key`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geoseek.capabilities.common import atomic_save_npy, cache_key
from geoseek.paths import default_runs_dir

if TYPE_CHECKING:
    from geoseek.encoders.fusion import GeoImageEncoder
    from geoseek.sources.geo_image_dataset import GeoImageDataset

DEFAULT_WORK_DIR = default_runs_dir("geo-image")
"""``<repo>/runs/geo-image``: feature caches and trained heads of the evaluation."""


@torch.no_grad()
def backbone_features(model: GeoImageEncoder, images: np.ndarray, batch: int = 64, progress: bool = True) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, F) float32 frozen-backbone features."""
    from tqdm.auto import tqdm

    model.eval()
    out = []
    for i in tqdm(range(0, len(images), batch), disable=not progress, desc="image features"):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch])).permute(0, 3, 1, 2).float() / 255.0
        out.append(model.image_features(x).numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, model.feature_dim), np.float32)


@dataclass
class GeoImageFeatures:
    """The dataset's metadata with its precomputed backbone features (row-aligned)."""

    dataset: GeoImageDataset
    features: np.ndarray

    @property
    def lonlat(self) -> np.ndarray:
        return self.dataset.lonlat

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels


def dataset_key(params: dict[str, Any]) -> str:
    """12 hex digits keying a cache entry by its parameters (sorted JSON, see :func:`~geoseek.capabilities.common.cache_key`)."""
    return cache_key(params, length=12)


def _dataset_params(params: dict[str, Any]) -> dict[str, Any]:
    """The dataset parameters with their defaults filled in (the key of the feature cache)."""
    from geoseek.sources.geo_image_dataset import DEFAULT_OSM, DEFAULT_RASTERS

    return {"osm": DEFAULT_OSM, "rasters": DEFAULT_RASTERS, "zoom": 16, "chip_px": 64, "image_size": 128, **params}


def _cache_dir(data_dir: str | Path, work_dir: str | Path, seed: int, params: dict[str, Any]) -> Path:
    return Path(work_dir) / f"data-{dataset_key({'data': str(Path(data_dir).resolve()), 'seed': seed, **params})}"


def cached_features_for(dataset: GeoImageDataset, data_dir: str | Path, work_dir: str | Path = DEFAULT_WORK_DIR,
                        seed: int = 0, **params: Any) -> np.ndarray | None:
    """Backbone features cached by :func:`load_features` for exactly these samples (same ids, same order), or None."""
    cache = _cache_dir(data_dir, work_dir, seed, _dataset_params(params))
    try:
        meta = json.loads((cache / "meta.json").read_text())
        feats = np.load(cache / "features.npy")
    except (OSError, ValueError):
        return None
    if [r["id"] for r in meta["samples"]] != [s.id for s in dataset.samples]:
        return None
    return feats


def load_features(
    data_dir: str | Path, work_dir: str | Path = DEFAULT_WORK_DIR, seed: int = 0, progress: bool = True, **params: Any
) -> GeoImageFeatures:
    """Build (or reuse from ``work_dir``) the dataset and its backbone features.

    The cache is ``<work_dir>/data-<key>/{meta.json, features.npy}``, keyed by the data
    directory, the dataset parameters and the seed.
    """
    from geoseek.encoders.fusion import GeoImageEncoder
    from geoseek.sources.geo_image_dataset import GeoImageDataset, build_geo_image_dataset

    params = _dataset_params(params)
    cache = _cache_dir(data_dir, work_dir, seed, params)
    meta_f, feat_f = cache / "meta.json", cache / "features.npy"
    if meta_f.is_file() and feat_f.is_file():
        meta = json.loads(meta_f.read_text())
        ds = GeoImageDataset.from_meta(meta["samples"], meta["info"])
        return GeoImageFeatures(ds, np.load(feat_f))
    ds = build_geo_image_dataset(data_dir, seed=seed, progress=progress, **params)
    enc = GeoImageEncoder(image_size=ds.info["image_size"])
    feats = backbone_features(enc, ds.images, progress=progress)
    atomic_save_npy(feat_f, feats)
    meta_f.write_text(json.dumps({"samples": ds.meta(), "info": ds.info}))
    ds.images = None
    return GeoImageFeatures(ds, feats)
