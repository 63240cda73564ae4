"""Sketch → image test fixtures: three drawn 'scene' classes, a tiny MLAGT trained on them
(train → build → search, end to end) and the collection built with it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from geoseek.sources.datasets import Fold, read_class_folders


def _make_images(root: Path, n: int = 10) -> None:
    """Three visually distinct 'scene' classes drawn with PIL."""
    rng = np.random.default_rng(0)
    for cls in ("stripes", "discs", "grid"):
        for i in range(n):
            img = Image.new("RGB", (96, 96), tuple(int(v) for v in rng.integers(60, 200, 3)))
            d = ImageDraw.Draw(img)
            for j in range(4):
                o = int(rng.integers(0, 12))
                if cls == "stripes":
                    d.line([(0, 10 + 24 * j + o), (96, 10 + 24 * j + o)], fill="white", width=6)
                elif cls == "discs":
                    x, y = rng.integers(10, 80, 2)
                    d.ellipse([x - 12, y - 12, x + 12, y + 12], fill="black")
                else:
                    d.line([(12 + 24 * j + o, 0), (12 + 24 * j + o, 96)], fill="black", width=3)
                    d.line([(0, 12 + 24 * j + o), (96, 12 + 24 * j + o)], fill="black", width=3)
            (root / cls).mkdir(parents=True, exist_ok=True)
            img.save(root / cls / f"{i}.png")


@pytest.fixture
def make_images() -> Callable[..., None]:
    """``make_images(root, n=10)``: write n images of each of the three classes under ``root/<class>/``."""
    return _make_images


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(image root, checkpoint, data, model, fit result) of a 6-step mlagt-tiny on all three classes."""
    import torch

    from geoseek.capabilities.sketch_image.data import prepare_samples
    from geoseek.capabilities.sketch_image.task import train_fold

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("scenes")
    _make_images(root)
    data = prepare_samples(read_class_folders(root), progress=False)
    ckpt = root.parent / "model.pt"
    fold = Fold(0, ["discs", "grid", "stripes"], [])
    model, result = train_fold(data, fold, ckpt, steps=6, model_name="mlagt-tiny", progress=False, validate_every=3,
                               task_cfg=None)
    return root, ckpt, data, model, result


@pytest.fixture(scope="session")
def built(trained, tmp_path_factory):
    """A collection built from the scenes with the trained model (``geoseek build images``)."""
    from geoseek.cli import main

    root, ckpt, _, _, _ = trained
    out = tmp_path_factory.mktemp("cols") / "col"
    assert main(["build", "images", str(root), "--out", str(out), "--model", str(ckpt), "--json"]) == 0
    return out
