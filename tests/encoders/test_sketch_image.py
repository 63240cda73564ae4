"""MLAGT: token filtering, cross-attention, shapes and registry."""

from __future__ import annotations

import pytest
import torch

from geoseek.encoders.registry import create_model, list_models
from geoseek.encoders.sketch_image import Block, CrossSwapLayer, MLAGT, filter_tokens


def test_registered_for_task():
    assert {"mlagt", "mlagt-tiny"} <= set(list_models(task="sketch-image"))


def test_filter_keeps_top_k_by_rt_attention_and_post_attention_values():
    torch.manual_seed(0)
    block = Block(16, heads=2)
    x = torch.randn(3, 11, 16)  # [RT] + 10 tokens
    out, attn = block(x)
    kept, idx = filter_tokens(out, attn, keep=4)
    assert kept.shape == (3, 5, 16)
    rt_attn = attn[:, :, 0, 1:].mean(1)
    for b in range(3):
        expected = set(rt_attn[b].argsort(descending=True)[:4].tolist())
        assert set(idx[b].tolist()) == expected
        # descending order of [RT] attention
        assert torch.all(rt_attn[b, idx[b]][:-1] >= rt_attn[b, idx[b]][1:])
        # values are the block's outputs (post-attention), not its inputs
        assert torch.allclose(kept[b, 1:], out[b, 1:][idx[b]])
        assert not torch.allclose(kept[b, 1:], x[b, 1:][idx[b]])
        assert torch.equal(kept[b, 0], out[b, 0])


def test_model_filters_at_chosen_layer_and_ablation_switch():
    m = create_model("mlagt-tiny").eval()
    sk = torch.rand(2, 1, 112, 112)
    feats = torch.rand(2, 1280, 7, 7)
    st, it = m.sketch_tokens(sk), m.image_tokens_from(feats)
    assert st.shape == (2, 1 + 8, 32) and it.shape == (2, 1 + 8, 32)
    m.filtering = False
    assert m.sketch_tokens(sk).shape == (2, 1 + 49, 32)
    assert m.image_tokens_from(feats).shape == (2, 1 + 49, 32)
    m.filtering = True
    e = m.embed(st)
    assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)


def test_filter_uses_attention_of_that_block():
    """Whatever the input, the model's kept tokens equal filter_tokens on the chosen block."""
    torch.manual_seed(1)
    m = MLAGT(dim=32, depth=2, heads=2, sketch_widths=(8, 8, 8, 8), filter_layers=(2,), keep=(5,), drop=0.0).eval()
    feats = torch.rand(1, 1280, 7, 7)
    t = m.image_proj(feats.flatten(2).transpose(1, 2))
    x = torch.cat([m.rt_image, t + m.image_pos], 1)
    x, _ = m.blocks[0](x)
    x, attn = m.blocks[1](x)
    expected, _ = filter_tokens(x, attn, 5)
    assert torch.allclose(m.norm(expected), m.image_tokens_from(feats), atol=1e-5)


def test_cross_swap_queries_and_scores():
    torch.manual_seed(0)
    layer = CrossSwapLayer(16, 2)
    s, i = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    s2, i2 = layer(s, i)
    assert s2.shape == s.shape and i2.shape == i.shape
    # the sketch stream's attention takes its queries from the image tokens
    i_alt = i.clone()
    i_alt[:, 0] = torch.randn(2, 16)
    s3, _ = layer(s, i_alt)
    assert not torch.allclose(s3[:, 0], s2[:, 0])
    with pytest.raises(ValueError, match="equal token counts"):
        layer(s, i[:, :3])
    m = create_model("mlagt-tiny").eval()
    st = m.sketch_tokens(torch.rand(1, 1, 112, 112))
    it = m.image_tokens_from(torch.rand(4, 1280, 7, 7))
    sc = m.cross_score(st, it)
    assert sc.shape == (4,) and torch.all(sc.abs() <= 1 + 1e-5)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        MLAGT(filter_layers=(9,))
    with pytest.raises(ValueError):
        MLAGT(image_tokens="nope")


def test_patch_variant_and_gradients():
    m = create_model("mlagt-tiny", image_tokens="patch")
    it = m.image_tokens_from(torch.rand(2, 3, 224, 224))
    st = m.sketch_tokens(torch.rand(2, 1, 112, 112))
    loss = (1 - m.cross_score(st, it)).sum() + (1 - (m.embed(st) * m.embed(it)).sum())
    loss.backward()
    assert m.sketch_tokenizer.levels[0][0].weight.grad is not None
    assert m.cross[0].attn_s.q.weight.grad is not None


def test_fast_candidate_rerank_matches_full_cross_attention():
    torch.manual_seed(3)
    m = create_model("mlagt-tiny").eval()
    st = m.sketch_tokens(torch.rand(3, 1, 112, 112))
    it = m.image_tokens_from(torch.rand(6, 1280, 7, 7))
    cand = torch.tensor([[0, 2, 5], [1, 1, 3], [4, 0, 2]])
    fast = m.cross_score_candidates(st, it, cand)
    for q in range(3):
        full = m.cross_score(st[q : q + 1], it[cand[q]])
        assert torch.allclose(fast[q], full, atol=1e-5)


def test_fused_sketch_tokens_add_backbone_features_to_conv_tokens():
    from geoseek.encoders.sketch_image import sketch_backbone_features

    torch.manual_seed(0)
    m = create_model("mlagt-tiny", sketch_input="fused").eval()
    assert m.needs_sketch_features and not create_model("mlagt-tiny").needs_sketch_features
    x = (torch.rand(2, 1, 112, 112) > 0.9).float()
    feats = sketch_backbone_features(x)
    assert feats.shape == (2, 1280, 7, 7)
    with torch.no_grad():
        a = m.sketch_tokens(x)  # features computed inside
        b = m.sketch_tokens(x, feats)  # precomputed (how training runs)
        c = m.sketch_tokens(x, torch.zeros_like(feats))
    assert torch.allclose(a, b, atol=1e-5) and not torch.allclose(a, c, atol=1e-3)
    assert "mlagt-fused" in list_models("sketch-image")
    only = create_model("mlagt-tiny", sketch_input="backbone").eval()
    assert only.sketch_tokenizer is None and only.embed_sketch(x, feats).shape == (2, 32)
    with pytest.raises(ValueError):
        MLAGT(sketch_input="strokes")


def test_frozen_backbone_equals_eager_and_is_used_for_224px_inputs(monkeypatch):
    from geoseek.encoders import sketch_image as si
    from geoseek.runtime import backend

    frozen = si.frozen_image_backbone()
    if frozen is None:
        pytest.skip("TorchScript tracing unavailable")
    backend.reset()
    monkeypatch.setenv(backend.ENV, "torch")  # the torch path (ONNX Runtime: tests/encoders/test_onnx_backbone.py)
    try:
        x = torch.rand(3, 3, si.IMAGE_SIZE, si.IMAGE_SIZE)
        with torch.no_grad():
            eager = si.image_backbone().forward_features((x - 0.5) / 0.5)
        fast = si.image_backbone_features(x)
        assert fast.shape == (3, 1280, 7, 7) and torch.allclose(fast, eager, atol=1e-4)
        monkeypatch.setenv("GEOSEEK_NO_JIT", "1")
        assert si.frozen_image_backbone() is None
        assert torch.allclose(si.image_backbone_features(x), eager, atol=1e-6)
    finally:
        backend.reset()


def test_bf16_sketch_backbone_is_close_to_float32_and_used_by_models_configured_for_it():
    from geoseek.encoders import sketch_image as si

    torch.manual_seed(1)
    x = (torch.rand(3, 1, 112, 112) > 0.9).float()
    f32 = si.sketch_backbone_features(x)
    bf = si.sketch_backbone_features(x, dtype="bfloat16")
    assert bf.dtype == torch.float32 and bf.shape == f32.shape
    cos = torch.nn.functional.cosine_similarity(f32.flatten(1), bf.flatten(1))
    assert (cos > 0.95).all() and not torch.allclose(f32, bf, atol=1e-3)  # close, not the same features
    with pytest.raises(ValueError):
        si.sketch_backbone_features(x, dtype="float8")
    with pytest.raises(ValueError):
        MLAGT(sketch_backbone_dtype="half")
    m = create_model("mlagt-tiny", sketch_input="fused", sketch_backbone_dtype="bfloat16").eval()
    with torch.no_grad():
        inside = m.sketch_tokens(x)
        assert torch.allclose(inside, m.sketch_tokens(x, bf), atol=1e-4)
        assert not torch.allclose(inside, m.sketch_tokens(x, f32), atol=1e-4)


def test_bf16_frozen_backbone_matches_its_eager_copy(monkeypatch):
    from geoseek.encoders import sketch_image as si

    if si.frozen_image_backbone("bfloat16") is None:
        pytest.skip("TorchScript tracing unavailable")
    x = torch.rand(2, 3, si.IMAGE_SIZE, si.IMAGE_SIZE)
    fast = si.image_backbone_features(x, "bfloat16")
    monkeypatch.setenv("GEOSEEK_NO_JIT", "1")
    eager = si.image_backbone_features(x, "bfloat16")
    cos = torch.nn.functional.cosine_similarity(fast.flatten(1), eager.flatten(1))
    assert (cos > 0.98).all()
