"""GeoImageEncoder: shapes, fusion kinds, unknown locations, location sensitivity, checkpoint hygiene."""

import pytest
import torch

from geoseek.checkpoint import load_model, save_checkpoint
from geoseek.encoders import create_model, list_models
from geoseek.encoders.fusion import GeoImageEncoder
from geoseek.errors import InvalidInputError

SMALL = dict(backbone=None, feature_dim=16, embed_dim=8, hidden_dim=16, location_dropout=0.0,
             location_params={"frequency_num": 8, "min_radius": 1e-4, "max_radius": 1.0, "head": "mlp",
                              "hidden_dim": 16, "num_layers": 1, "out_dim": 8})


def _lonlat(n):
    return torch.stack([torch.linspace(14.3, 14.5, n), torch.full((n,), 35.9)], 1)


def test_registered_for_geo_image_task():
    names = list_models(task="geo-image")
    assert "gimi-fusion" in names and "gimi-fusion-gated" in names


@pytest.mark.parametrize("fusion", ["concat", "gated", "image"])
def test_features_to_unit_embeddings(fusion):
    torch.manual_seed(0)
    m = GeoImageEncoder(fusion=fusion, **SMALL).eval()
    e = m.embed_features(torch.randn(5, 16), _lonlat(5))
    assert e.shape == (5, 8)
    assert torch.allclose(e.norm(dim=1), torch.ones(5), atol=1e-5)


@pytest.mark.parametrize("fusion", ["concat", "gated"])
def test_location_changes_the_embedding_and_gradients_reach_both_branches(fusion):
    torch.manual_seed(0)
    m = GeoImageEncoder(fusion=fusion, **SMALL)
    with torch.no_grad():  # make the gate non-trivial for the gated variant
        for p in m.fuse.parameters():
            p.normal_(0, 0.5)
    m.eval()
    x = torch.randn(1, 16).repeat(2, 1)
    ll = torch.tensor([[14.4, 35.9], [9.5, 47.1]])  # Malta vs Liechtenstein
    e = m.embed_features(x, ll)
    assert not torch.allclose(e[0], e[1], atol=1e-4)  # same image, different place
    e.sum().backward()
    assert m.image_head[1].weight.grad.abs().sum() > 0
    assert m.location_proj.weight.grad.abs().sum() > 0


def test_image_fusion_ignores_location():
    m = GeoImageEncoder(fusion="image", **SMALL).eval()
    x = torch.randn(1, 16).repeat(2, 1)
    e = m.embed_features(x, torch.tensor([[14.4, 35.9], [9.5, 47.1]]))
    assert torch.allclose(e[0], e[1])


def test_missing_locations_use_the_unknown_vector():
    torch.manual_seed(0)
    m = GeoImageEncoder(**SMALL).eval()
    x = torch.randn(3, 16)
    none = m.embed_features(x, None)
    nan = m.embed_features(x, torch.full((3, 2), float("nan")))
    assert torch.allclose(none, nan)
    mixed = m.embed_features(x, torch.tensor([[14.4, 35.9], [float("nan"), float("nan")], [14.5, 35.9]]))
    assert torch.allclose(mixed[1], none[1]) and not torch.allclose(mixed[0], none[0])


def test_location_dropout_only_while_training():
    torch.manual_seed(0)
    m = GeoImageEncoder(**{**SMALL, "location_dropout": 1.0})
    x, ll = torch.randn(4, 16), _lonlat(4)
    m.train()
    m.image_head[3].p = 0.0  # no head dropout: compare deterministic outputs
    assert torch.allclose(m.embed_features(x, ll), m.embed_features(x, None))
    m.eval()
    assert not torch.allclose(m.embed_features(x, ll), m.embed_features(x, None))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(InvalidInputError, match="fusion"):
        GeoImageEncoder(fusion="sum", **{k: v for k, v in SMALL.items()})
    m = GeoImageEncoder(**SMALL)
    with pytest.raises(InvalidInputError, match="features"):
        m.embed_features(torch.randn(2, 7), None)
    with pytest.raises(InvalidInputError, match="lonlat"):
        m.embed_features(torch.randn(2, 16), torch.zeros(3, 2))
    with pytest.raises(InvalidInputError, match="backbone"):
        m(torch.rand(1, 3, 32, 32))


def test_frozen_backbone_is_left_out_of_checkpoints(tmp_path):
    torch.manual_seed(0)
    cfg = dict(embed_dim=8, hidden_dim=16, image_size=32, location_params=SMALL["location_params"])
    m = create_model("gimi-fusion", **cfg).eval()
    sd = m.state_dict()
    assert not any(k.startswith("backbone.") for k in sd)
    assert all(not p.requires_grad for p in m.backbone.parameters())
    path = save_checkpoint(tmp_path / "m.pt", model_name="gimi-fusion", config=cfg, model=m)
    assert path.stat().st_size < 2_000_000  # heads only (the backbone alone is ~13 MB)
    m2, _ = load_model(path)
    img, ll = torch.rand(2, 3, 40, 40), _lonlat(2)
    assert torch.allclose(m(img, ll), m2(img, ll), atol=1e-5)


def test_committed_default_model_loads():
    model, payload = load_model("default", task="geo-image")
    assert payload["model"] == "gimi-fusion" and payload["config"]["location_params"]["min_radius"] == 1e-5
    e = model.embed_features(torch.randn(2, 1280), torch.tensor([[14.4, 35.9], [9.5, 47.1]]))
    assert e.shape == (2, 128) and torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
