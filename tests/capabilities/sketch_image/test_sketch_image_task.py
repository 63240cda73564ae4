"""The MLAGT training task and fold training."""

from __future__ import annotations

import numpy as np
import pytest

from geoseek.sources.datasets import Fold


def test_train_writes_checkpoint_with_metrics(trained):
    from geoseek.checkpoint import load_model, read_checkpoint

    _, ckpt, _, _, result = trained
    payload = read_checkpoint(ckpt)
    assert payload["model"] == "mlagt-tiny"
    # new models train the sketch backbone on float32 features (every CPU runs them), and remember it
    assert payload["config"]["sketch_backbone_dtype"] == "float32"
    assert load_model(ckpt)[0].sketch_backbone_dtype == "float32"
    assert "val_map" in payload["metrics"] and result["steps"] == 6
    assert payload["data"]["seen"] == ["discs", "grid", "stripes"]


def test_training_recipes_infonce_instance_pairs_fused_and_triplet(trained):
    import torch

    from geoseek.encoders.registry import create_model
    from geoseek.capabilities.sketch_image.task import SketchImageTask, TaskConfig

    _, _, data, _, _ = trained
    fold = Fold(0, ["discs", "grid", "stripes"], [])
    torch.manual_seed(0)
    m = create_model("mlagt-tiny", sketch_input="fused")
    task = SketchImageTask(m, data, fold, {}, TaskConfig(classes_per_batch=3, per_class=3, cross_anchors=4))
    sk, skf, feats, y, inst = task._batch()
    assert skf is not None and skf.shape == (9, 1280, 7, 7) and data.sketch_features is not None
    assert data.sketch_features_dtype == "float32"
    f32 = np.asarray(data.sketch_features, np.float32)
    SketchImageTask(create_model("mlagt-tiny", sketch_input="fused", sketch_backbone_dtype="bfloat16"), data, fold, {},
                    TaskConfig(classes_per_batch=3, per_class=3))
    assert data.sketch_features_dtype == "bfloat16"  # recomputed in the model's precision
    bf = np.asarray(data.sketch_features, np.float32)
    from geoseek.runtime.precision import effective_dtype

    # bf16 features where this CPU runs bf16 natively; float32 ones (the same) where it does not
    assert bf.shape == f32.shape and np.allclose(bf, f32, atol=1e-3) == (effective_dtype("bfloat16") == "float32")
    task = SketchImageTask(m, data, fold, {}, TaskConfig(classes_per_batch=3, per_class=3, cross_anchors=4))
    assert data.sketch_features_dtype == "float32"
    assert (inst >= 0).all()  # no Quick, Draw! here: every sketch is paired with its own source image
    loss, scalars = task.loss(0)
    loss.backward()
    assert torch.isfinite(loss) and {"rt", "inst", "cross", "s_cos", "i_cos"} <= set(scalars)
    assert m.sketch_proj[1].weight.grad is not None and m.cross[0].attn_s.q.weight.grad is not None
    # the paper's triplet recipe still runs
    t2 = SketchImageTask(create_model("mlagt-tiny"), data, fold, {}, TaskConfig(loss="triplet", instance_pairs=False, classes_per_batch=3, per_class=3))
    loss, scalars = t2.loss(0)
    assert torch.isfinite(loss) and "inst" not in scalars
    with pytest.raises(ValueError):
        SketchImageTask(create_model("mlagt-tiny"), data, fold, {}, TaskConfig(loss="nope"))
