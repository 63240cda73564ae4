"""The feature caches: rows reused across path spellings, and file names (keys) unchanged."""

from __future__ import annotations

import hashlib

import numpy as np


def test_feature_cache_reuses_rows_whatever_the_path_spelling(tmp_path, monkeypatch, make_images):
    from geoseek.capabilities.sketch_image import data as si

    make_images(tmp_path / "imgs", n=2)
    paths = sorted((tmp_path / "imgs").rglob("*.png"))
    calls = []
    real = si.backbone_features

    def counting(ps, *a, **kw):
        calls.append(len(ps))
        return real(ps, *a, **kw)

    monkeypatch.setattr(si, "backbone_features", counting)
    first = np.asarray(si.cached_features(paths[:4], tmp_path / "cache", progress=False))
    monkeypatch.chdir(tmp_path)
    relative = [p.relative_to(tmp_path) for p in paths]
    again = np.asarray(si.cached_features(relative, tmp_path / "cache", progress=False))  # another spelling, same files
    more = np.asarray(si.cached_features(relative, tmp_path / "cache", progress=False))
    assert calls == [4, len(paths) - 4] and np.array_equal(again[:4], first) and np.array_equal(more, again)


def test_cache_file_names_keep_their_keys(tmp_path, monkeypatch, make_images):
    """Caches written before the package split are still found: the keys are the same sha1 texts."""
    import torch

    from geoseek.capabilities.sketch_image import data as si
    from geoseek.encoders import sketch_image as enc

    def sha(text: str | bytes) -> str:
        return hashlib.sha1(text if isinstance(text, bytes) else text.encode()).hexdigest()[:16]

    make_images(tmp_path / "imgs", n=1)
    paths = sorted((tmp_path / "imgs").rglob("*.png"))
    cache = tmp_path / "cache"
    monkeypatch.setattr(si, "backbone_features", lambda ps, *a, **kw: np.ones((len(ps), 1280, 7, 7), np.float16))
    si.cached_features(paths, cache, progress=False)
    key = sha("\n".join(str(p.resolve()) for p in paths))
    assert (cache / f"features-{key}.npy").is_file()
    assert (cache / f"features-{key}.txt").read_text().splitlines() == [str(p.resolve()) for p in paths]

    sketches = si.cached_sketches(paths, 2, cache, size=32, progress=False)
    assert sketches.shape == (3, 2, 32, 32) and sketches.dtype == np.uint8
    assert (cache / f"sketches-{sha(chr(10).join(map(str, [*paths, 2, 32])))}.npy").is_file()

    monkeypatch.setattr(enc, "sketch_backbone_features", lambda x, dtype="float32": torch.zeros(len(x), 1280, 7, 7))
    inks = np.asarray(sketches[:, 0])
    si.cached_sketch_features(inks, cache, progress=False)
    si.cached_sketch_features(inks, cache, progress=False, dtype="bfloat16")
    assert (cache / f"sketch-features-{sha(inks.tobytes())}.npy").is_file()
    assert (cache / f"sketch-features-bfloat16-{sha(inks.tobytes())}.npy").is_file()
    assert not list(cache.glob("*tmp*"))  # written atomically, no temporary file left
