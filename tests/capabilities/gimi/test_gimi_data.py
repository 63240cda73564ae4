"""GIMI data: the default work folder and the feature cache's lookup by sample ids."""

import json

import numpy as np

import geoseek
from geoseek.capabilities.gimi.data import DEFAULT_WORK_DIR, _cache_dir, _dataset_params, cached_features_for
from geoseek.sources.geo_image_dataset import GeoImageDataset, GeoImageSample


def test_default_work_dir_is_the_repos_runs_folder():
    from pathlib import Path

    repo = Path(geoseek.__file__).resolve().parents[1]
    assert DEFAULT_WORK_DIR == repo / "runs" / "geo-image"


def _dataset(ids):
    samples = [GeoImageSample(i, "toy", "x", (14.4, 35.9), (14.39, 35.89, 14.41, 35.91), "a", (0, n), "test")
               for n, i in enumerate(ids)]
    return GeoImageDataset(samples, None, {"image_size": 32})


def test_cached_features_are_found_only_for_the_same_samples(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ds = _dataset(["a", "b", "c"])
    assert cached_features_for(ds, data_dir, tmp_path / "work", seed=3) is None  # nothing cached yet
    cache = _cache_dir(data_dir, tmp_path / "work", 3, _dataset_params({}))
    cache.mkdir(parents=True)
    feats = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.save(cache / "features.npy", feats)
    (cache / "meta.json").write_text(json.dumps({"samples": ds.meta(), "info": ds.info}))
    assert np.array_equal(cached_features_for(ds, data_dir, tmp_path / "work", seed=3), feats)
    assert cached_features_for(_dataset(["a", "c", "b"]), data_dir, tmp_path / "work", seed=3) is None  # other order
    assert cached_features_for(ds, data_dir, tmp_path / "work", seed=4) is None  # another seed, another key
    assert cached_features_for(ds, data_dir, tmp_path / "work", seed=3, zoom=15) is None  # other parameters
