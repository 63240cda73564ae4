"""The shipped sketch-image model returns the same top-10 whatever precision the process asks for.

Since 2026-12-02 the default was trained on float32 backbone features, so its backbone runs in
float32 (ONNX Runtime where installed) on every CPU, bf16-native or not: the top-10 is identical.
Its bf16-trained predecessor, run in float32 as on a CPU without native bf16, shared only 9.0 of
10 on average (12 Quick, Draw! sketches against 300 image token sets; worst 7) and scored
``quickdraw_hit@10`` 0.77 instead of 0.80. The tile, sketch-map and geo-image defaults run float32
in every precision (nothing in them is bf16).
"""

from __future__ import annotations

import numpy as np
import torch



def test_sketch_image_default_same_top10_in_both_precisions(monkeypatch):
    import torch.nn.functional as F

    from geoseek.checkpoint import load_model
    from geoseek.contention.workloads import _sketch_inks
    from geoseek.encoders import sketch_image as si
    from geoseek.runtime import precision

    net = load_model("default", task="sketch-image")[0]
    assert net.sketch_backbone_dtype == "float32"
    inks = torch.from_numpy(_sketch_inks(12, net.sketch_size))[:, None]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        db = F.normalize(net.image_tokens_from(torch.randn(300, 1280, 7, 7, generator=g).relu_())[:, 0], dim=-1)
        tops = {}
        for dtype in ("float32", "bfloat16"):
            monkeypatch.setenv(precision.ENV, dtype)
            precision.reset()
            feats = si.sketch_backbone_features(inks, dtype=net.sketch_backbone_dtype)  # as at query time
            emb = net.embed(net.sketch_tokens(inks, feats))
            tops[dtype] = (emb @ db.T).topk(10, dim=1).indices.numpy()
    precision.reset()
    overlap = np.array([len(set(a) & set(b)) for a, b in zip(tops["float32"], tops["bfloat16"])])
    assert (overlap == 10).all(), overlap
