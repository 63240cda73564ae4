"""GIMI training: each method's task improves retrieval on a toy set; the config is validated."""

import numpy as np
import pytest

from geoseek.capabilities.gimi.data import GeoImageFeatures
from geoseek.capabilities.gimi.evaluate import embed_split, retrieval_metrics
from geoseek.capabilities.gimi.task import GimiTrainConfig, train_gimi
from geoseek.errors import InvalidInputError
from geoseek.sources.geo_image_dataset import GeoImageDataset, GeoImageSample


def _toy_data(n_per=24, seed=0):
    """Two regions × two labels; label = a direction in feature space plus noise."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, 16)) * 2
    samples, feats = [], []
    i = 0
    for c, (label, region) in enumerate([("farm", (14.4, 35.9)), ("city", (14.5, 35.9)), ("farm", (9.5, 47.1)), ("lake", (9.55, 47.1))]):
        for j in range(n_per):
            ll = (region[0] + rng.normal() * 0.01, region[1] + rng.normal() * 0.01)
            split = ("train", "train", "train", "val", "test")[j % 5]
            samples.append(GeoImageSample(f"s{i}", "toy", "x", ll, (ll[0] - 1e-3, ll[1] - 1e-3, ll[0] + 1e-3, ll[1] + 1e-3),
                                          label, (i, 0), split))
            feats.append(centers[c] + rng.normal(size=16))
            i += 1
    ds = GeoImageDataset(samples, None, {"image_size": 32})
    return GeoImageFeatures(ds, np.asarray(feats, np.float32))


@pytest.mark.parametrize("method", ["softmax", "triplet", "dpt"])
def test_training_improves_retrieval(tmp_path, method, tiny_model):
    from geoseek.checkpoint import load_model

    data = _toy_data()
    cfg = GimiTrainConfig(method=method, classes_per_batch=3, per_class=6, model=tiny_model)
    summary = train_gimi(data, cfg, tmp_path / "m.pt", steps=60, seed=0, progress=False)
    assert summary["best"]["top5"] > 0.8
    model, payload = load_model(tmp_path / "m.pt")
    assert payload["model"] == "gimi-fusion"
    emb = embed_split(model, data, "test")
    m = retrieval_metrics(emb, data.labels[data.dataset.indices("test")])
    assert m["top10"]["mean"] > 0.8


def test_train_config_is_validated():
    with pytest.raises(InvalidInputError):
        GimiTrainConfig(method="arcface")  # type: ignore[arg-type]
