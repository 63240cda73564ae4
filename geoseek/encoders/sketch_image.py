"""MLAGT: zero-shot sketch → aerial image retrieval with multi-level, attention-guided tokens.

After Yang et al., "Zero-Shot Sketch-Based Remote-Sensing Image Retrieval Based on Multi-Level
and Attention-Guided Tokenization", Remote Sensing 16(10):1653, 2024, rebuilt CPU-friendly:

* **Image tokens**: the 7×7 feature map of a frozen ImageNet EfficientNet-Lite0 (stride 32,
  1280 channels at 224 px; :func:`image_backbone_features`), projected to ``dim`` — so image
  features can be precomputed once and training touches only the small transformer. With
  ``image_tokens="patch"`` a learned patch embedding of the raw image is used instead.
* **Sketch tokens**: the multi-level convolution tokenizer (a 7×7 then 3×3 convolutions, each
  stride 2); the last two levels are pooled to the same grid and summed, so every token sees
  both fine strokes and layout (:class:`MultiLevelSketchTokenizer`).
* ``depth`` **pre-LN transformer blocks** (multi-head self-attention + MLP with residuals),
  shared by both modalities, with a learned **[RT]** retrieval token per modality prepended.
* **Token filtering** after the blocks in ``filter_layers``: keep the ``keep`` tokens with the
  highest [RT] attention (averaged over heads) of that block and pass on their *post-attention*
  values, i.e. the block's outputs (the released code returns the pre-attention tokens and
  leaves filtering off).
* **Cross-attention** (:class:`CrossSwapLayer`): the two modalities swap queries — the sketch
  stream is updated with attention whose queries come from the image tokens and keys/values
  from the sketch tokens, and vice versa — then each [RT] pair is compared by cosine. It
  needs equal token counts (both filtered to ``keep``, or 49 + 1 unfiltered at the default sizes).

Retrieval is two-stage (:mod:`geoseek.capabilities.sketch_image.search`): the [RT] vectors
(``embed_*``) go into an ANN index; the top N are re-ranked by :meth:`MLAGT.cross_score` against
each image's stored, filtered tokens.

Shapes: sketches (N, 1, S, S) ink maps in [0, 1] (1 = ink); image features (N, 1280, 7, 7);
tokens (N, 1 + T, dim) with [RT] first; embeddings (N, dim) L2-normalized.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from geoseek.encoders.registry import register_model

IMAGE_SIZE = 224
"""Image side (pixels) fed to the backbone; 224 → a 7×7 token grid."""


class Attention(nn.Module):
    """Multi-head attention that also returns its weights (N, heads, Lq, Lk)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, q_in: torch.Tensor, kv_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, lq, d = q_in.shape
        h = self.heads
        q = self.q(q_in).view(b, lq, h, d // h).transpose(1, 2)
        k, v = self.kv(kv_in).view(b, kv_in.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1) / math.sqrt(d // h)).softmax(-1)
        out = (attn @ v).transpose(1, 2).reshape(b, lq, d)
        return self.proj(out), attn


class Mlp(nn.Sequential):
    def __init__(self, dim: int, ratio: float = 2.0, drop: float = 0.0) -> None:
        hidden = int(dim * ratio)
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, dim))


class Block(nn.Module):
    """Pre-LN transformer block: x + MSA(LN(x)), then + MLP(LN(·)). Returns (x, attention)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio, drop)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.norm1(x)
        a, attn = self.attn(y, y)
        x = x + a
        x = x + self.mlp(self.norm2(x))
        return x, attn


def filter_tokens(x: torch.Tensor, attn: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep [RT] plus the ``keep`` tokens that [RT] attends to most.

    Args:
        x: (N, 1 + T, D) block *outputs* (post-attention values), [RT] first.
        attn: (N, heads, 1 + T, 1 + T) that block's attention weights.
    Returns:
        (N, 1 + keep, D) tokens in descending [RT]-attention order, and the kept indices
        (N, keep) into the T non-[RT] tokens.
    """
    rt_attn = attn[:, :, 0, 1:].mean(1)  # (N, T)
    keep = min(keep, rt_attn.shape[1])
    idx = rt_attn.topk(keep, dim=1).indices
    kept = x[:, 1:].gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))
    return torch.cat([x[:, :1], kept], 1), idx


class MultiLevelSketchTokenizer(nn.Module):
    """Conv stack 7×7/2 → 3×3/2 → 3×3/2 → 3×3/2; the last two levels are merged into tokens.

    (N, 1, S, S) → (N, (S/16)², dim). At S = 112 that is a 7×7 grid (49 tokens).
    """

    def __init__(self, dim: int, widths: Sequence[int] = (32, 64, 128, 192)) -> None:
        super().__init__()
        layers, cin = [], 1
        for i, w in enumerate(widths):
            k = 7 if i == 0 else 3
            layers.append(nn.Sequential(nn.Conv2d(cin, w, k, 2, k // 2, bias=False), nn.BatchNorm2d(w), nn.GELU()))
            cin = w
        self.levels = nn.ModuleList(layers)
        self.proj_mid = nn.Conv2d(widths[-2], dim, 1)
        self.proj_top = nn.Conv2d(widths[-1], dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = []
        for level in self.levels:
            x = level(x)
            feats.append(x)
        top = self.proj_top(feats[-1])
        mid = F.adaptive_avg_pool2d(self.proj_mid(feats[-2]), top.shape[-2:])
        return (top + mid).flatten(2).transpose(1, 2)


class CrossSwapLayer(nn.Module):
    """Cross-attention with swapped queries between the sketch and the image token sets.

    sketch' = S + Attn(q=LN(I), kv=LN(S)) then + MLP;  image' = I + Attn(q=LN(S), kv=LN(I)) then + MLP.
    Both sets must have the same length (row 0 is [RT]).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0) -> None:
        super().__init__()
        self.norm_s = nn.LayerNorm(dim)
        self.norm_i = nn.LayerNorm(dim)
        self.attn_s = Attention(dim, heads)
        self.attn_i = Attention(dim, heads)
        self.norm_s2 = nn.LayerNorm(dim)
        self.norm_i2 = nn.LayerNorm(dim)
        self.mlp_s = Mlp(dim, mlp_ratio)
        self.mlp_i = Mlp(dim, mlp_ratio)

    def forward(self, s: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if s.shape[1] != i.shape[1]:
            raise ValueError(f"cross-attention needs equal token counts, got sketch {s.shape[1]} and image {i.shape[1]}")
        sn, im = self.norm_s(s), self.norm_i(i)
        s2 = s + self.attn_s(im, sn)[0]
        i2 = i + self.attn_i(sn, im)[0]
        s2 = s2 + self.mlp_s(self.norm_s2(s2))
        i2 = i2 + self.mlp_i(self.norm_i2(i2))
        return s2, i2


class MLAGT(nn.Module):
    """The sketch ↔ image model (see the module docstring). Sizes are constructor arguments."""

    def __init__(
        self,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        sketch_size: int = 112,
        sketch_widths: Sequence[int] = (24, 48, 96, 128),
        image_tokens: str = "backbone",
        backbone_dim: int = 1280,
        patch_size: int = 32,
        filter_layers: Sequence[int] = (2,),
        keep: Sequence[int] | int = (16,),
        cross_layers: int = 1,
        num_classes: int = 0,
        drop: float = 0.1,
        sketch_input: str = "conv",
        sketch_backbone_dtype: str = "float32",
        sketch_finetune_stages: int = 0,
    ) -> None:
        super().__init__()
        if sketch_input not in ("conv", "backbone", "fused"):
            raise ValueError(f"sketch_input must be 'conv', 'backbone' or 'fused', got {sketch_input!r}")
        _torch_dtype(sketch_backbone_dtype)
        self.sketch_backbone_dtype = sketch_backbone_dtype
        self.dim, self.depth, self.sketch_size = dim, depth, sketch_size
        self.image_tokens = image_tokens
        self.sketch_input = sketch_input
        self.filter_layers = tuple(int(f) for f in filter_layers)
        keep = [keep] * len(self.filter_layers) if isinstance(keep, int) else list(keep)
        if len(keep) != len(self.filter_layers):
            raise ValueError("keep needs one entry per filter layer")
        if any(not 1 <= f <= depth for f in self.filter_layers):
            raise ValueError(f"filter_layers must be in 1..{depth}")
        self.keep = tuple(int(k) for k in keep)
        self.filtering = True
        grid = sketch_size // 16 if sketch_input != "backbone" else IMAGE_SIZE // 32
        self.sketch_tokenizer = MultiLevelSketchTokenizer(dim, sketch_widths) if sketch_input != "backbone" else None
        # frozen ImageNet features of the rendered sketch (7×7×1280), projected like the image side
        self.sketch_proj = (
            nn.Sequential(nn.LayerNorm(backbone_dim), nn.Linear(backbone_dim, dim)) if sketch_input != "conv" else None
        )
        # fine-tuned last backbone stages on the sketch side (geoseek.encoders.sketch_tail): the
        # sketch features are then the frozen front's, and this tail runs live on them
        self.sketch_finetune_stages = int(sketch_finetune_stages) if sketch_input != "conv" else 0
        if sketch_finetune_stages and sketch_input == "conv":
            raise ValueError("sketch_finetune_stages needs sketch_input 'backbone' or 'fused'")
        if self.sketch_finetune_stages:
            from geoseek.encoders.sketch_tail import SketchTail

            self.sketch_tail: nn.Module | None = SketchTail(self.sketch_finetune_stages)
        else:
            self.sketch_tail = None
        self.sketch_pos = nn.Parameter(torch.zeros(1, grid * grid, dim))
        if image_tokens == "backbone":
            self.image_proj = nn.Sequential(nn.LayerNorm(backbone_dim), nn.Linear(backbone_dim, dim))
            n_img = (IMAGE_SIZE // 32) ** 2
        elif image_tokens == "patch":
            self.image_proj = nn.Conv2d(3, dim, patch_size, patch_size)
            n_img = (IMAGE_SIZE // patch_size) ** 2
        else:
            raise ValueError(f"image_tokens must be 'backbone' or 'patch', got {image_tokens!r}")
        self.image_pos = nn.Parameter(torch.zeros(1, n_img, dim))
        self.rt_sketch = nn.Parameter(torch.zeros(1, 1, dim))
        self.rt_image = nn.Parameter(torch.zeros(1, 1, dim))
        self.drop = nn.Dropout(drop)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, drop) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.cross = nn.ModuleList(CrossSwapLayer(dim, heads, mlp_ratio) for _ in range(cross_layers))
        self.classifier = nn.Linear(dim, num_classes) if num_classes > 0 else None
        for p in (self.sketch_pos, self.image_pos, self.rt_sketch, self.rt_image):
            nn.init.trunc_normal_(p, std=0.02)

    # ----------------------------------------------------------------------------- tokens
    def _encode(self, tokens: torch.Tensor, rt: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = torch.cat([rt.expand(tokens.shape[0], -1, -1), tokens + pos], 1)
        x = self.drop(x)
        filters = dict(zip(self.filter_layers, self.keep))
        for i, block in enumerate(self.blocks, start=1):
            x, attn = block(x)
            if self.filtering and i in filters:
                x, _ = filter_tokens(x, attn, filters[i])
        return self.norm(x)

    @property
    def needs_sketch_features(self) -> bool:
        """Whether sketch tokens use the frozen backbone's features of the rendered sketch."""
        return self.sketch_proj is not None

    def sketch_tokens(self, sketches: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 1, S, S) ink maps → (N, 1 + T, dim) tokens, [RT] first.

        With ``sketch_input`` "backbone" or "fused", ``features`` are the (N, 1280, 7, 7)
        :func:`sketch_backbone_features` of the same sketches (computed here when None; pass
        them precomputed to train fast). "fused" adds them to the multi-level conv tokens. With
        ``sketch_finetune_stages`` N > 0 they are instead the frozen front's
        :func:`~geoseek.encoders.sketch_tail.sketch_front_features`, run through the model's
        trainable tail here.
        """
        if sketches.shape[-1] != self.sketch_size or sketches.shape[-2] != self.sketch_size:
            sketches = F.interpolate(sketches, size=(self.sketch_size, self.sketch_size), mode="bilinear", align_corners=False)
        t = self.sketch_tokenizer(sketches) if self.sketch_tokenizer is not None else None
        if self.sketch_proj is not None:
            if features is None and self.sketch_tail is not None:
                from geoseek.encoders.sketch_tail import sketch_front_features

                features = sketch_front_features(sketches, self.sketch_finetune_stages, dtype=self.sketch_backbone_dtype)
            elif features is None:
                features = sketch_backbone_features(sketches, dtype=self.sketch_backbone_dtype)
            if self.sketch_tail is not None:  # ``features`` are the frozen front's: run the fine-tuned tail
                features = self.sketch_tail(features)
            f = self.sketch_proj(features.float().flatten(2).transpose(1, 2))
            if t is not None and t.shape[1] != f.shape[1]:
                raise ValueError(f"fused sketch tokens need a {int(f.shape[1] ** 0.5)}² conv grid, got {t.shape[1]} tokens")
            t = f if t is None else t + f
        return self._encode(t, self.rt_sketch, self.sketch_pos)

    def image_tokens_from(self, images_or_features: torch.Tensor) -> torch.Tensor:
        """Backbone features (N, C, 7, 7) — or raw images (N, 3, 224, 224) for the patch variant — → tokens."""
        x = images_or_features
        if self.image_tokens == "backbone":
            t = self.image_proj(x.float().flatten(2).transpose(1, 2))
        else:
            t = self.image_proj(x).flatten(2).transpose(1, 2)
        return self._encode(t, self.rt_image, self.image_pos)

    @staticmethod
    def embed(tokens: torch.Tensor) -> torch.Tensor:
        """The L2-normalized [RT] vector (N, dim) of a token set."""
        return F.normalize(tokens[:, 0], dim=-1)

    def embed_sketch(self, sketches: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        return self.embed(self.sketch_tokens(sketches, features))

    def embed_image(self, features: torch.Tensor) -> torch.Tensor:
        return self.embed(self.image_tokens_from(features))

    # ------------------------------------------------------------------------------ cross
    def cross_pair(self, s_tokens: torch.Tensor, i_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row-aligned token sets (P, L, D) × (P, L, D) → cross-attended [RT] pairs (P, D), (P, D)."""
        s, i = s_tokens, i_tokens.to(s_tokens.dtype)
        for layer in self.cross:
            s, i = layer(s, i)
        return F.normalize(s[:, 0], dim=-1), F.normalize(i[:, 0], dim=-1)

    def cross_score(self, s_tokens: torch.Tensor, i_tokens: torch.Tensor) -> torch.Tensor:
        """Cosine of the cross-attended [RT] pair: one sketch (1, L, D) or (P, L, D) vs images (P, L, D) → (P,)."""
        if s_tokens.shape[0] == 1 and i_tokens.shape[0] > 1:
            s_tokens = s_tokens.expand(i_tokens.shape[0], -1, -1)
        a, b = self.cross_pair(s_tokens, i_tokens)
        return (a * b).sum(-1)

    def cross_score_candidates(self, s_tokens: torch.Tensor, i_tokens: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """Rerank scores of each sketch against its candidate images, computing only the [RT] rows.

        Args:
            s_tokens: (Q, L, D) sketch tokens. i_tokens: (M, L, D) image tokens.
            cand: (Q, N) long indices into ``i_tokens``.
        Returns:
            (Q, N) cosine of the cross-attended [RT] pairs; equal to :meth:`cross_score` on each
            pair (exact for one cross layer; several layers fall back to the full computation).
        """
        if len(self.cross) != 1:
            return torch.stack([self.cross_score(s_tokens[q : q + 1], i_tokens[cand[q]]) for q in range(len(cand))])
        layer = self.cross[0]
        s, i = s_tokens.float(), i_tokens.float()
        h, d = layer.attn_s.heads, s.shape[-1]
        dh = d // h
        sn, im = layer.norm_s(s), layer.norm_i(i)
        q_s = layer.attn_s.q(im[:, 0]).view(-1, h, dh)  # image [RT] queries for the sketch stream (M, h, dh)
        k_s, v_s = layer.attn_s.kv(sn).view(s.shape[0], s.shape[1], 2, h, dh).unbind(2)  # (Q, L, h, dh)
        q_i = layer.attn_i.q(sn[:, 0]).view(-1, h, dh)  # sketch [RT] queries for the image stream (Q, h, dh)
        # The image stream's keys and values are never formed: the sketch query is folded into
        # the key weights (q·(W_k x + b_k) = (W_kᵀq)·x + const, the constant cancels in the
        # softmax), and the values are projected after pooling (Σ a W_v x + b_v = W_v Σ a x + b_v):
        # O(L·D) per candidate instead of O(L·D²).
        w_k, w_v = layer.attn_i.kv.weight[:d].view(h, dh, d), layer.attn_i.kv.weight[d:].view(h, dh, d)
        b_v = layer.attn_i.kv.bias[d:].view(h, dh)
        qk_i = torch.einsum("qhe,hed->qhd", q_i, w_k)  # (Q, h, D)
        scale = 1.0 / math.sqrt(dh)
        out = []
        for qi in range(cand.shape[0]):
            c = cand[qi]
            a = torch.einsum("nhd,lhd->nhl", q_s[c], k_s[qi]) * scale
            srt = torch.einsum("nhl,lhd->nhd", a.softmax(-1), v_s[qi]).reshape(len(c), d)
            srt = s[qi, 0] + layer.attn_s.proj(srt)
            srt = srt + layer.mlp_s(layer.norm_s2(srt))
            imc = im[c]  # (N, L, D)
            b = torch.einsum("nld,hd->nhl", imc, qk_i[qi]) * scale
            pooled = torch.einsum("nhl,nld->nhd", b.softmax(-1), imc)  # (N, h, D)
            irt = (torch.einsum("nhd,hed->nhe", pooled, w_v) + b_v).reshape(len(c), d)
            irt = i[c, 0] + layer.attn_i.proj(irt)
            irt = irt + layer.mlp_i(layer.norm_i2(irt))
            out.append((F.normalize(srt, dim=-1) * F.normalize(irt, dim=-1)).sum(-1))
        return torch.stack(out)

    def classify(self, tokens: torch.Tensor) -> torch.Tensor | None:
        return None if self.classifier is None else self.classifier(tokens[:, 0])


@register_model("mlagt", task="sketch-image")
def mlagt(**kwargs) -> MLAGT:
    """MLAGT with the CPU-friendly defaults (dim 128, 4 blocks, filter to 16 tokens after block 2)."""
    return MLAGT(**kwargs)


@register_model("mlagt-fused", task="sketch-image")
def mlagt_fused(**kwargs) -> MLAGT:
    """MLAGT whose sketch tokens add frozen ImageNet EfficientNet-Lite0 features of the rendered
    sketch to the multi-level conv tokens (``sketch_input="fused"``)."""
    cfg = dict(sketch_input="fused")
    cfg.update(kwargs)
    return MLAGT(**cfg)


@register_model("mlagt-tiny", task="sketch-image")
def mlagt_tiny(**kwargs) -> MLAGT:
    """A very small MLAGT for tests (dim 32, 2 blocks)."""
    cfg = dict(dim=32, depth=2, heads=2, sketch_widths=(8, 16, 24, 32), filter_layers=(1,), keep=(8,))
    cfg.update(kwargs)
    return MLAGT(**cfg)


# --------------------------------------------------------------------------- image features
_BACKBONE: dict[str, nn.Module] = {}
_BACKBONE_LOCK = threading.RLock()
"""Builds the cached backbones once per process: a server's concurrent first requests must not
each load (or trace) their own copy."""


def image_backbone():
    """The frozen ImageNet EfficientNet-Lite0 (cached per process, eval mode)."""
    if "lite0" not in _BACKBONE:
        with _BACKBONE_LOCK:
            if "lite0" not in _BACKBONE:
                from geoseek.encoders.backbones import efficientnet_lite0

                m = efficientnet_lite0(pretrained=True, num_classes=0)
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
                _BACKBONE["lite0"] = m
    return _BACKBONE["lite0"]


class _Features(nn.Module):
    def __init__(self, m: nn.Module) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m.forward_features(x)


BACKBONE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}
"""Precisions the frozen backbone can run in (``MLAGT(sketch_backbone_dtype=...)``)."""


def _torch_dtype(dtype: str) -> torch.dtype:
    if dtype not in BACKBONE_DTYPES:
        raise ValueError(f"backbone dtype must be one of {sorted(BACKBONE_DTYPES)}, got {dtype!r}")
    return BACKBONE_DTYPES[dtype]


def _backbone_in(dtype: str) -> nn.Module:
    """The eager backbone, or a channels-last copy cast to ``dtype`` (cached per process)."""
    if dtype == "float32":
        return image_backbone()
    import copy

    key = f"lite0-{dtype}"
    with _BACKBONE_LOCK:
        if key not in _BACKBONE:
            m = copy.deepcopy(image_backbone()).to(memory_format=torch.channels_last).to(_torch_dtype(dtype)).eval()
            _BACKBONE[key] = m
    return _BACKBONE[key]


def frozen_image_backbone(dtype: str = "float32") -> nn.Module | None:
    """The backbone's ``forward_features`` in channels-last memory format, traced and frozen by
    TorchScript (batch norm folded into the convolutions, oneDNN fusions): about 1.9× faster on
    a CPU than the eager module (18.9 vs 36.0 ms per 224-px image on one core,
    ``bench/sketch_stages.py``), equal to it within 1e-4. ``dtype="bfloat16"`` traces a bf16
    copy (input and output bf16): about 2× faster again where the CPU has native bf16
    (AVX512-BF16 / AMX), features within cosine ≈ 0.99 of float32's — a model must be
    trained on the precision it queries with. Takes NCHW input of either memory format.
    Built once per process and dtype; None if tracing fails or ``GEOSEEK_NO_JIT=1``."""
    import os

    if os.environ.get("GEOSEEK_NO_JIT") == "1":
        return None
    td = _torch_dtype(dtype)
    key = "lite0-frozen" if dtype == "float32" else f"lite0-frozen-{dtype}"
    if key in _BACKBONE:
        return _BACKBONE[key]
    with _BACKBONE_LOCK:
        if key in _BACKBONE:
            return _BACKBONE[key]
        try:
            import copy

            with torch.no_grad():
                example = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE, dtype=td).contiguous(memory_format=torch.channels_last)
                m = copy.deepcopy(_backbone_in(dtype)).to(memory_format=torch.channels_last).eval()
                _BACKBONE[key] = torch.jit.freeze(torch.jit.trace(_Features(m).eval(), example))
        except Exception:  # noqa: BLE001 - an optimization only: fall back to the eager module
            _BACKBONE[key] = None  # type: ignore[assignment]
    return _BACKBONE[key]


@torch.no_grad()
def image_backbone_features(images: torch.Tensor, dtype: str = "float32") -> torch.Tensor:
    """(N, 3, 224, 224) images in [0, 1] → (N, 1280, 7, 7) float32 EfficientNet-Lite0 head features,
    computed in ``dtype`` ("float32" or "bfloat16").

    On a CPU, 224-px inputs run in float32 through ONNX Runtime
    (:mod:`geoseek.encoders.onnx_backbone`, ~2× faster, same features within 1e-4) when
    :func:`geoseek.runtime.backend.active_backend` says "onnx" (``GEOSEEK_INFERENCE``), else
    through :func:`frozen_image_backbone` when it is available.
    ``dtype`` is the precision the caller's model was trained with; it runs as
    :func:`geoseek.runtime.precision.effective_dtype` says: bfloat16 (always torch) only where the
    CPU has native bf16 (or ``GEOSEEK_PRECISION=bfloat16``), float32 elsewhere (emulated bf16 is ~40× slower)."""
    from geoseek.runtime.precision import effective_dtype

    _torch_dtype(dtype)
    dtype = effective_dtype(dtype)
    td = _torch_dtype(dtype)
    x = (images - 0.5) / 0.5
    if x.device.type == "cpu" and tuple(x.shape[1:]) == (3, IMAGE_SIZE, IMAGE_SIZE):
        if dtype == "float32":
            from geoseek.runtime.backend import active_backend

            if active_backend() == "onnx":
                from geoseek.encoders import onnx_backbone

                out = onnx_backbone.run(x)
                if out is not None:
                    return out
        frozen = frozen_image_backbone(dtype)
        if frozen is not None:
            return frozen(x.to(td).contiguous(memory_format=torch.channels_last)).float().contiguous()
    return _backbone_in(dtype).forward_features(x.to(td)).float()


@torch.no_grad()
def sketch_backbone_features(sketches: torch.Tensor, batch: int = 64, dtype: str = "float32") -> torch.Tensor:
    """(N, 1, S, S) ink maps in [0, 1] → (N, 1280, 7, 7) float32 features of the sketch drawn black
    on white at 224 px, the backbone run in ``dtype``."""
    out = []
    for i in range(0, len(sketches), batch):
        x = F.interpolate(1 - sketches[i : i + batch].float(), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        out.append(image_backbone_features(x.expand(-1, 3, -1, -1), dtype))
    return torch.cat(out) if out else torch.zeros(0, 1280, IMAGE_SIZE // 32, IMAGE_SIZE // 32)
