"""GIMI test fixtures: a tiny fusion model's settings and a small geo-images collection."""

import numpy as np
import pytest
import torch

from geoseek.sources.geo_image_dataset import GeoImageDataset, GeoImageSample

TINY_MODEL = {"backbone": None, "feature_dim": 16, "embed_dim": 8, "hidden_dim": 32, "location_dropout": 0.0,
              "location_params": {"frequency_num": 8, "min_radius": 1e-4, "max_radius": 1.0, "head": "mlp",
                                  "hidden_dim": 16, "num_layers": 1, "out_dim": 8}}


@pytest.fixture
def tiny_model() -> dict:
    """Keyword arguments of a tiny ``gimi-fusion`` model (no backbone; 16 features → 8-d vectors)."""
    return TINY_MODEL


@pytest.fixture(scope="module")
def geo_collection(tmp_path_factory):
    from geoseek.checkpoint import save_checkpoint
    from geoseek.encoders import create_model
    from geoseek.capabilities.gimi.build import build_collection

    tmp = tmp_path_factory.mktemp("gimi")
    torch.manual_seed(0)
    cfg = {"image_size": 32, "embed_dim": 16, "hidden_dim": 32, "location_params": TINY_MODEL["location_params"]}
    model = create_model("gimi-fusion", **cfg)
    ckpt = save_checkpoint(tmp / "model.pt", model_name="gimi-fusion", config=cfg, model=model)
    rng = np.random.default_rng(0)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (200, 30, 200), (30, 200, 200)]
    samples, images = [], []
    for i, col in enumerate(colours):
        ll = (14.40 + 0.05 * i, 35.9)
        img = np.clip(np.array(col)[None, None, :] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        samples.append(GeoImageSample(f"img{i}", "toy", "x", ll, (ll[0] - 0.01, 35.89, ll[0] + 0.01, 35.91),
                                      "red" if i == 0 else f"c{i}", (0, i), "test"))
        images.append(img)
    ds = GeoImageDataset(samples, np.stack(images), {"image_size": 32})
    col = build_collection(ds, ckpt, tmp / "col", geo_scale_m=2000, progress=False)
    return col, images
