"""Tiny end-to-end run of sketch → image retrieval: train → build → search (CLI, Python, HTTP)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from geoseek.sources.datasets import Fold, read_class_folders


def _make_images(root, n=10):
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import torch

    from geoseek.sketch_image import prepare_samples, train_fold

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("scenes")
    _make_images(root)
    data = prepare_samples(read_class_folders(root), progress=False)
    ckpt = root.parent / "model.pt"
    fold = Fold(0, ["discs", "grid", "stripes"], [])
    model, result = train_fold(data, fold, ckpt, steps=6, model_name="mlagt-tiny", progress=False, validate_every=3,
                               task_cfg=None)
    return root, ckpt, data, model, result


def test_train_writes_checkpoint_with_metrics(trained):
    from geoseek.checkpoint import load_model, read_checkpoint

    _, ckpt, _, _, result = trained
    payload = read_checkpoint(ckpt)
    assert payload["model"] == "mlagt-tiny"
    # new models run the sketch backbone in bf16, and remember it
    assert payload["config"]["sketch_backbone_dtype"] == "bfloat16"
    assert load_model(ckpt)[0].sketch_backbone_dtype == "bfloat16"
    assert "val_map" in payload["metrics"] and result["steps"] == 6
    assert payload["data"]["seen"] == ["discs", "grid", "stripes"]


@pytest.fixture(scope="module")
def built(trained, tmp_path_factory):
    from geoseek.cli import main

    root, ckpt, _, _, _ = trained
    out = tmp_path_factory.mktemp("cols") / "col"
    assert main(["build", "images", str(root), "--out", str(out), "--model", str(ckpt), "--json"]) == 0
    return out


def test_build_search_cli_and_python(trained, built, tmp_path, capsys):
    from geoseek.cli import main
    from geoseek.collection import Collection
    from geoseek.sketch_image import search_sketch

    out = built
    col = Collection.open(out)
    assert col.manifest["modality"] == "aerial-image" and len(col) == 30
    tokens = col.array("tokens")
    assert tokens.dtype == np.float16 and tokens.shape == (30, 1 + 8, 32)
    assert col.get("discs/0").label == "discs"

    strokes = tmp_path / "s.json"
    strokes.write_text(json.dumps({"strokes": [[[0, 100], [50, 50]], [[0, 100], [20, 20]]]}))
    assert main(["search", str(out), "--sketch", str(strokes), "-k", "5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    hits = res.get("hits", res.get("results"))
    assert len(hits) == 5

    # rerank reorders the ANN candidates by cross-attention score, descending
    ink = np.zeros((112, 112), np.float32)
    ink[20:90:10, :] = 1
    reranked = search_sketch(col, ink, k=30, rerank=30)
    plain = search_sketch(col, ink, k=30, rerank=0)
    assert sorted(h.item.id for h in reranked) == sorted(h.item.id for h in plain)
    scores = [h.score for h in reranked]
    assert scores == sorted(scores, reverse=True)
    # labels filter
    only = search_sketch(col, ink, k=5, filter=__import__("geoseek.search", fromlist=["make_filter"]).make_filter(labels="grid"))
    assert only and all(h.item.label == "grid" for h in only)
    # a bad sketch file is a clear CLI error (exit 2), not a traceback
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["search", str(out), "--sketch", str(bad)]) == 2
    col.close()


def test_http_sketch_search(built):
    from fastapi.testclient import TestClient

    from geoseek.service.app import create_app
    client = TestClient(create_app({"scenes": built}))
    img = Image.new("RGB", (120, 120), "white")
    ImageDraw.Draw(img).ellipse([30, 30, 90, 90], outline="black", width=4)
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    r = client.post("/collections/scenes/search/sketch", files={"file": ("s.png", buf.getvalue(), "image/png")}, data={"k": "4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "sketch" and body["count"] == 4
    r = client.post("/collections/scenes/search/sketch", data={"strokes": json.dumps([[[0, 10, 20], [0, 10, 0]]]), "k": "3"})
    assert r.status_code == 200 and r.json()["count"] == 3
    r = client.post("/collections/scenes/search/sketch", files={"file": ("s.png", b"not an image", "image/png")})
    assert r.status_code == 422
    r = client.post("/collections/scenes/search/sketch", data={"k": "3"})
    assert r.status_code == 422
    r = client.post("/collections/nope/search/sketch", data={"strokes": "[[[0,1],[0,1]]]"})
    assert r.status_code == 404


def test_evaluation_metrics_figure_and_baselines(trained, tmp_path):
    from geoseek.sketch_image import evaluate_fold, summarize

    _, _, data, model, _ = trained
    fold = Fold(1, ["discs", "grid"], ["stripes"])
    r = evaluate_fold(model, data, fold, rerank=5)
    for key in ("seen", "unseen", "unseen_no_rerank", "unseen_no_filter", "baseline_imagenet_unseen", "baseline_hog_unseen"):
        assert 0 <= r[key]["map"] <= 100, key
    from geoseek.sketch_image import results_figure

    png = results_figure(model, data, fold, tmp_path / "fig.png", per_class=1, top=3, rerank=5)
    assert Image.open(png).size[0] > 96 * 3
    s = summarize([r])
    assert s["unseen_map"] == round(r["unseen"]["map"], 2) and "seen_map" in s


def test_training_recipes_infonce_instance_pairs_fused_and_triplet(trained):
    import torch

    from geoseek.encoders.registry import create_model
    from geoseek.sketch_image import SketchImageTask, TaskConfig

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
    assert bf.shape == f32.shape and not np.allclose(bf, f32, atol=1e-3)
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


def test_feature_cache_reuses_rows_whatever_the_path_spelling(tmp_path, monkeypatch):
    from geoseek import sketch_image as si

    _make_images(tmp_path / "imgs", n=2)
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


def test_bench_sketch_search_reports_the_median_of_repeated_runs(built, shared_data, capsys):
    from geoseek.cli import main

    args = ["bench", "sketch-search", "--collection", str(built), "--data", str(shared_data), "--queries", "4",
            "--rerank", "5", "--threads", "1", "--json"]
    assert main([*args, "--repeat", "3"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["queries"] == 4 and out["repeat"] == 3 and len(out["seconds_runs"]) == 3
    assert abs(out["seconds"] - np.median(out["seconds_runs"])) < 2e-3  # the median (runs rounded to ms)
    assert out["same_as_batched"] is True
    assert main([*args, "--repeat", "0"]) == 2
