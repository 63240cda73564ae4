"""The longer-training recipe: drawn-style mixing, fine-tuned sketch stages, the held-out
real-sketch check, hard-candidate rerank training, early stopping and resume (tiny scale)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from geoseek.sources.datasets import Fold, read_class_folders

FOLD = Fold(0, ["discs", "grid", "stripes"], [])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The three scene classes with drawn-style sketches and fake 'real' sketches of two classes."""
    from geoseek.capabilities.sketch_image.data import prepare_samples

    from .conftest import _make_images as make_images

    root = tmp_path_factory.mktemp("scenes-recipe")
    make_images(root, n=8)
    d = prepare_samples(read_class_folders(root), root.parent / "cache", progress=False, drawn_variants=2)
    rng = np.random.default_rng(0)
    real = (rng.random((12, 112, 112)) > 0.97).astype(np.uint8) * 255
    return dataclasses.replace(d, real=real, real_labels=["discs"] * 6 + ["grid"] * 6)


def test_drawn_mix_real_holdout_and_hard_rerank_loss(data):
    from geoseek.capabilities.sketch_image.task import SketchImageTask, TaskConfig
    from geoseek.encoders.registry import create_model

    assert data.drawn is not None and data.drawn.shape[:2] == (len(data.samples), 2) and data.drawn.dtype == np.uint8
    torch.manual_seed(0)
    m = create_model("mlagt-tiny")
    tc = TaskConfig(classes_per_batch=3, per_class=3, drawn_prob=1.0, real_prob=0.0, real_holdout=1, monitor="val_mix",
                    rerank_hard=10, hard_anchors=2, hard_sample=4, cross_anchors=2)
    task = SketchImageTask(m, data, FOLD, {}, tc)
    assert len(task.real_holdout) == 1 and task.real_idx[task.real_holdout[0]] == []
    sk, _, _, _, inst = task._batch()
    drawn_set = {np.asarray(data.drawn[i, v]).tobytes() for i in range(len(data.samples)) for v in range(2)}
    # every synthesized sketch came from the drawn-style cache (up to the dihedral/shift augmentation: compare ink amounts)
    assert (inst >= 0).all() and len(drawn_set) > 1
    loss, scalars = task.loss(0)
    loss.backward()
    assert torch.isfinite(loss) and "hard" in scalars and task._bank is not None and task._bank.shape[0] == len(task.pool)
    v = task.validate()
    assert {"val_map", "val_real", "val_mix"} <= set(v) and v["val_mix"] == pytest.approx((v["val_map"] + v["val_real"]) / 2)
    with pytest.raises(ValueError):
        SketchImageTask(create_model("mlagt-tiny"), dataclasses.replace(data, drawn=None), FOLD, {}, TaskConfig(drawn_prob=0.5))
    with pytest.raises(ValueError):
        SketchImageTask(create_model("mlagt-tiny"), data, FOLD, {}, TaskConfig(monitor="val_real"))


def test_finetune_stages_run_live_on_cached_front_features(data):
    from geoseek.capabilities.sketch_image.task import SketchImageTask, TaskConfig
    from geoseek.encoders.registry import create_model
    from geoseek.encoders.sketch_image import sketch_backbone_features

    torch.manual_seed(0)
    m = create_model("mlagt-tiny", sketch_input="fused", sketch_finetune_stages=1)
    task = SketchImageTask(m, data, FOLD, {}, TaskConfig(classes_per_batch=3, per_class=2, cross_anchors=2))
    assert data.sketch_features_stages == 1 and data.sketch_features.shape[1:] == (192, 7, 7)
    # at initialisation the tail is the ImageNet tail: front + tail == the frozen backbone
    ink = torch.from_numpy(np.asarray(data.sketches[:2, 0], np.float32) / 255)[:, None]
    full = sketch_backbone_features(ink)
    live = m.sketch_tail(torch.from_numpy(np.asarray(data.sketch_features[:2], np.float32)))
    assert torch.allclose(full, live, atol=0.05 * float(full.abs().max()))
    groups = task.param_groups()
    assert len(groups) == 2 and groups[1]["lr_scale"] == 0.1
    loss, _ = task.loss(0)
    loss.backward()
    assert m.sketch_tail.conv_head.weight.grad is not None and not m.sketch_tail.training
    m.eval()
    with torch.no_grad():  # queries without cached features run the front, then the tail
        a = m.sketch_tokens(ink)
        b = m.sketch_tokens(ink, torch.from_numpy(np.asarray(data.sketch_features[:2], np.float32)))
    assert torch.allclose(a, b, atol=1e-2)


def test_train_fold_patience_resume_and_checkpoint_roundtrip(data, tmp_path):
    from geoseek.checkpoint import load_model
    from geoseek.capabilities.sketch_image.task import TaskConfig, train_fold

    out = tmp_path / "m.pt"
    tc = TaskConfig(classes_per_batch=3, per_class=2, cross_anchors=2, drawn_prob=0.5, real_holdout=1, monitor="val_real")
    model, r = train_fold(data, FOLD, out, steps=6, model_name="mlagt-tiny", model_config={"sketch_input": "fused", "sketch_finetune_stages": 1},
                          task_cfg=tc, validate_every=2, progress=False, patience=1)
    assert out.is_file() and out.with_name("m.pt.last").is_file()
    assert r["last_step"] <= 6 and "val_real" in r["best"]
    state = torch.load(out.with_name("m.pt.last"), weights_only=False)
    assert "task_rng" in state
    loaded, payload = load_model(out)
    assert loaded.sketch_finetune_stages == 1 and payload["train"]["monitor"] == "val_real"
    # resuming a finished run does nothing more
    _, r2 = train_fold(data, FOLD, out, steps=r["last_step"], model_name="mlagt-tiny",
                       model_config={"sketch_input": "fused", "sketch_finetune_stages": 1}, task_cfg=tc, validate_every=2, progress=False)
    assert r2["history"] == r["history"][: len(r2["history"])]
