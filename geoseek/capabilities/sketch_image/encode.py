"""MLAGT inference shared by evaluation, search and figures: ink maps and backbone features →
[RT] vectors and token sets, and the cross-attention rerank of a score matrix."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from geoseek.encoders.sketch_image import MLAGT


def _eval(model: torch.nn.Module) -> None:
    """Switch to eval mode only if needed (``eval()`` walks every submodule: ~0.7 ms a query)."""
    if any(m.training for m in model.modules()):
        model.eval()


@torch.no_grad()
def encode_sketches(model: MLAGT, inks: np.ndarray, batch: int = 128, features: np.ndarray | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Ink maps (N, S, S) uint8 or float → ([RT] vectors (N, D) float32, tokens (N, L, D)).

    ``features``: precomputed sketch backbone features (N, 1280, 7, 7) for models that use
    them (computed from the inks when None).
    """
    _eval(model)
    toks = []
    use_f = features is not None and getattr(model, "needs_sketch_features", False)
    for i in range(0, len(inks), batch):
        x = torch.from_numpy(np.asarray(inks[i : i + batch], np.float32))
        if x.max() > 1.5:
            x = x / 255.0
        if use_f:
            toks.append(model.sketch_tokens(x[:, None], torch.from_numpy(np.asarray(features[i : i + batch], np.float32))))
        else:
            toks.append(model.sketch_tokens(x[:, None]))
    t = torch.cat(toks)
    return model.embed(t).numpy(), t


@torch.no_grad()
def encode_images(model: MLAGT, feats: np.ndarray, batch: int = 256, progress: bool = False) -> tuple[np.ndarray, torch.Tensor]:
    """Backbone features (N, 1280, 7, 7) → ([RT] vectors (N, D) float32, tokens (N, L, D))."""
    _eval(model)
    toks = []
    for i in tqdm(range(0, len(feats), batch), disable=not progress, desc="image tokens"):
        toks.append(model.image_tokens_from(torch.from_numpy(np.asarray(feats[i : i + batch], np.float32))))
    t = torch.cat(toks)
    return model.embed(t).numpy(), t


@torch.no_grad()
def rerank(model: MLAGT, s_tokens: torch.Tensor, scores: np.ndarray, i_tokens: torch.Tensor, top: int) -> np.ndarray:
    """Replace the top ``top`` scores of each query row with cross-attention scores (+2 so they stay on top)."""
    scores = scores.copy()
    order = np.argsort(-scores, axis=1)[:, :top]
    cs = model.cross_score_candidates(s_tokens, i_tokens.float(), torch.from_numpy(order)).numpy()
    np.put_along_axis(scores, order, 2.0 + cs, axis=1)
    return scores
