"""The frozen backbone in ONNX Runtime: same features as TorchScript, cached export, overrides, fallback."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from geoseek.encoders import onnx_backbone as ob
from geoseek.encoders import sketch_image as si
from geoseek.runtime import backend, describe_runtime

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """A private cache folder, exported into once for the whole module."""
    return tmp_path_factory.mktemp("geoseek-cache")


@pytest.fixture
def fresh(monkeypatch, onnx_cache):
    """ONNX backend state forgotten before and after; the cache in ``onnx_cache``."""
    monkeypatch.setenv("GEOSEEK_CACHE", str(onnx_cache))
    monkeypatch.delenv(backend.ENV, raising=False)
    backend.reset()
    ob.reset()
    yield onnx_cache
    backend.reset()
    ob.reset()


def _real_images(shared_data, n: int = 4) -> torch.Tensor:
    from geoseek.capabilities.sketch_image.data import load_image

    paths = sorted((shared_data / "imagery" / "ucmerced").glob("*/*00.*"))[:n]
    assert len(paths) == n
    return torch.from_numpy(np.stack([load_image(p) for p in paths])).permute(0, 3, 1, 2)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) / float(b.abs().max())


def test_onnx_features_equal_torchscript_on_real_images_and_sketches(fresh, monkeypatch, shared_data):
    if si.frozen_image_backbone("float32") is None:
        pytest.skip("TorchScript tracing unavailable")
    imgs = _real_images(shared_data)
    torch.manual_seed(0)
    inks = (torch.rand(3, 1, 112, 112) > 0.92).float()
    called = []
    real_run = ob.run
    monkeypatch.setattr(ob, "run", lambda x: called.append(len(x)) or real_run(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning on the ONNX path
        fast_img = si.image_backbone_features(imgs)
        fast_sk = si.sketch_backbone_features(inks)
    assert called == [len(imgs), len(inks)]
    assert describe_runtime()["inference"] == "onnx"
    backend.set_inference("torch")
    ref_img = si.image_backbone_features(imgs)
    ref_sk = si.sketch_backbone_features(inks)
    assert called == [len(imgs), len(inks)]  # torch this time
    assert fast_img.shape == ref_img.shape == (len(imgs), 1280, 7, 7) and fast_img.dtype == torch.float32
    assert _rel(fast_img, ref_img) <= 1e-4 and _rel(fast_sk, ref_sk) <= 1e-4
    assert not torch.equal(fast_img[0], fast_img[1])  # real, distinct features


def test_export_is_cached_and_reused_by_the_next_session(fresh, monkeypatch):
    s1 = ob.session(1)
    assert s1 is not None
    files = list((fresh / "onnx").glob("*.onnx"))
    assert len(files) == 1 and files[0] == ob.cache_path(si.image_backbone())
    assert not list((fresh / "onnx").glob("*.tmp"))  # the temporary file was renamed
    mtime = files[0].stat().st_mtime_ns
    ob.reset()  # as a new process would: no session, no remembered path

    def no_export(*a, **kw):
        raise AssertionError("exported again")

    monkeypatch.setattr(ob, "export", no_export)
    s2 = ob.session(2)
    assert s2 is not None and s2 is not s1
    assert files[0].stat().st_mtime_ns == mtime
    assert ob.session(2) is s2  # one session per thread count per process
    opts = s2.get_session_options()
    assert opts.intra_op_num_threads == 2
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_cache_key_follows_the_weights(fresh):
    m = si.image_backbone()
    assert ob.cache_path(m) == ob.cache_path(m)
    other = torch.nn.Linear(2, 2)
    assert ob.weights_checksum(other) != ob.weights_checksum(m)
    assert f"opset{ob.OPSET}" in ob.cache_path(m).name and torch.__version__.split("+")[0] in ob.cache_path(m).name


def test_geoseek_inference_torch_forces_torch(fresh, monkeypatch):
    monkeypatch.setenv(backend.ENV, "torch")
    monkeypatch.setattr(ob, "run", lambda x: pytest.fail("ONNX Runtime used"))
    out = si.image_backbone_features(torch.rand(1, 3, si.IMAGE_SIZE, si.IMAGE_SIZE))
    assert out.shape == (1, 1280, 7, 7)
    assert describe_runtime()["inference"] == "torch"
    monkeypatch.setenv(backend.ENV, "tensorflow")
    backend.reset()
    with pytest.raises(ValueError, match="GEOSEEK_INFERENCE"):
        backend.resolve_backend()


def test_bfloat16_backbone_stays_on_torch(fresh, monkeypatch):
    from geoseek.runtime import precision

    monkeypatch.setattr(precision, "effective_dtype", lambda trained: trained)
    monkeypatch.setattr(ob, "run", lambda x: pytest.fail("ONNX Runtime used for bf16"))
    assert si.image_backbone_features(torch.rand(1, 3, si.IMAGE_SIZE, si.IMAGE_SIZE), "bfloat16").dtype == torch.float32


def test_missing_onnxruntime_falls_back_to_torch_with_one_warning(fresh, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    x = torch.rand(1, 3, si.IMAGE_SIZE, si.IMAGE_SIZE)
    with pytest.warns(RuntimeWarning, match="onnxruntime"):
        out = si.image_backbone_features(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        si.image_backbone_features(x)  # once only
    assert out.shape == (1, 1280, 7, 7) and backend.active_backend() == "torch"


def test_failed_export_falls_back_to_torch_with_one_warning(fresh, monkeypatch, tmp_path):
    monkeypatch.setenv("GEOSEEK_CACHE", str(tmp_path))  # nothing cached: must export

    def broken(*a, **kw):
        raise RuntimeError("exporter broke")

    monkeypatch.setattr(ob, "export", broken)
    x = torch.rand(2, 3, si.IMAGE_SIZE, si.IMAGE_SIZE)
    with pytest.warns(RuntimeWarning, match="exporter broke"):
        out = si.image_backbone_features(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = si.image_backbone_features(x)
    assert torch.allclose(out, again) and backend.active_backend() == "torch"
    assert describe_runtime()["inference"] == "torch"
