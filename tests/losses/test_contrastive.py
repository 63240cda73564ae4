"""MultiPositiveInfoNCE: values, positives, masking, gradients."""

from __future__ import annotations

import math

import torch

from geoseek.losses import MultiPositiveInfoNCE, multi_positive_nce


def test_single_positive_equals_cross_entropy():
    torch.manual_seed(0)
    a, b = torch.randn(5, 8), torch.randn(5, 8)
    loss = MultiPositiveInfoNCE(temperature=0.1, symmetric=False)(a, torch.arange(5), b, torch.arange(5))
    logits = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T / 0.1
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits, torch.arange(5)), atol=1e-6)


def test_multi_positive_average_and_negative_labels():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
    pos = torch.tensor([[True, True, False, False]])
    assert math.isclose(float(multi_positive_nce(logits, pos)), math.log(4), rel_tol=1e-6)
    # a row whose label is negative has no positive: it does not count as an anchor
    emb = torch.eye(3)
    loss = MultiPositiveInfoNCE(0.5, symmetric=False)(emb, torch.tensor([0, 1, -1]), emb, torch.tensor([0, 1, -1]))
    want = torch.nn.functional.cross_entropy(emb[:2] @ emb.T / 0.5, torch.tensor([0, 1]))
    assert torch.allclose(loss, want, atol=1e-6)


def test_aligned_embeddings_score_lower_than_collapsed_ones_and_gradients_flow():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    good = torch.nn.functional.one_hot(labels, 4).float()
    collapsed = torch.ones(6, 4, requires_grad=True)
    f = MultiPositiveInfoNCE(0.1)
    assert f(good, labels, good, labels) < f(collapsed, labels, collapsed, labels)
    f(collapsed + 0.01 * torch.randn(6, 4), labels, good, labels).backward()
    assert collapsed.grad is not None and collapsed.grad.abs().sum() > 0


def test_same_batch_excludes_the_diagonal():
    emb = torch.nn.functional.one_hot(torch.tensor([0, 0, 1, 1]), 2).float()
    loss = MultiPositiveInfoNCE(0.05)(emb, torch.tensor([0, 0, 1, 1]))
    assert float(loss) < 1e-3  # own row excluded: the other same-class row wins the softmax
