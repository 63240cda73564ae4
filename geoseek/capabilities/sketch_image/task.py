"""Sketch → image training: the MLAGT recipe as a :class:`geoseek.train.TrainTask` and the
fold-training entry point (:func:`train_fold`) behind ``geoseek train sketch-image``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geoseek.capabilities.sketch_image.data import SketchImageData, ensure_sketch_features
from geoseek.capabilities.sketch_image.evaluate import evaluate_split
from geoseek.encoders.sketch_image import MLAGT
from geoseek.sources.datasets import Fold


@dataclass
class TaskConfig:
    """The training recipe. Defaults: the one behind the reported models (docs/sketch-image.md)."""

    classes_per_batch: int = 8
    per_class: int = 4
    margin: float = 0.2
    cross_weight: float = 1.0
    ce_weight: float = 0.0
    real_prob: float = 0.3
    val_queries: int = 300
    miner: str = "batchhard"
    """Triplet loss only: "batchhard" or "semihard" (FaceNet, with hard fallback)."""
    loss: str = "infonce"
    """"triplet": mined triplets on [RT] and on cross scores (the paper; collapses from scratch here);
    "infonce": class-aware multi-positive InfoNCE on [RT] and on the in-batch cross-score matrix."""
    temperature: float = 0.07
    instance_weight: float = 1.0
    """InfoNCE only: weight of an instance-level term pairing each synthesized sketch with its own source image."""
    instance_pairs: bool = True
    """Draw each synthesized sketch from the very image it is paired with (else from another image of the class)."""
    cross_anchors: int = 8
    """InfoNCE only: sketches per batch whose cross scores against every batch image are computed (cost ∝ anchors × batch)."""
    feature_aug: bool = True
    """Rotate / flip the 7×7 backbone feature grids with the same dihedral transform as the ink."""
    drawn_prob: float = 0.0
    """Share of synthesized training sketches taken drawn-style (:mod:`geoseek.sources.drawn_sketch`)
    instead of outlines; needs ``data.drawn`` (``prepare_data(drawn_variants=...)``)."""
    real_holdout: int = 0
    """Seen classes whose Quick, Draw! sketches are kept out of training and judge model selection
    (``val_real``: their real sketches against the held-out seen gallery). Never unseen classes."""
    monitor: str = "val_map"
    """Model selection: "val_map" (held-out seen synthesized sketches), "val_real" (the held-out
    Quick, Draw! classes, needs ``real_holdout``) or "val_mix" (the mean of both)."""
    rerank_hard: int = 0
    """> 0: also train the cross-attention on hard first-stage candidates: each of ``hard_anchors``
    sketches a step is cross-scored against ``hard_sample`` images drawn from its top
    ``rerank_hard`` [RT] neighbours among all training images (the rerank's real input)."""
    hard_anchors: int = 4
    hard_sample: int = 16
    bank_every: int = 50
    """Steps between refreshes of the training images' [RT] vectors the hard candidates come from."""
    finetune_lr_scale: float = 0.1
    """Learning rate of fine-tuned backbone stages, relative to the model's (``sketch_finetune_stages``)."""


def _dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate the last two axes by k·90° and optionally mirror the last one."""
    x = np.rot90(x, k, axes=(-2, -1))
    return x[..., ::-1] if flip else x


class SketchImageTask:
    """The :class:`geoseek.train.TrainTask` of MLAGT on one fold's seen classes."""

    model_name = "mlagt"

    def __init__(self, model: MLAGT, data: SketchImageData, fold: Fold, config: dict[str, Any], task_cfg: TaskConfig | None = None, model_name: str = "mlagt", seed: int = 0) -> None:
        from geoseek.losses import BatchHardMiner, CosineDistance, MultiPositiveInfoNCE, SemiHardMiner, TripletMarginLoss

        self.model, self.data, self.fold, self.config = model, data, fold, config
        self.model_name = model_name
        self.tc = task_cfg or TaskConfig()
        if self.tc.loss not in ("triplet", "infonce"):
            raise ValueError(f"loss must be 'triplet' or 'infonce', got {self.tc.loss!r}")
        self.rng = np.random.default_rng(seed)
        self.classes = list(fold.seen)
        self.class_id = {c: i for i, c in enumerate(self.classes)}
        labels = data.labels
        # fold 0 = the final model on every class: all images train (validation is then not held out)
        train_half = (data.half >= 0) if fold.index == 0 else (data.half == 0)
        self.train_idx = {c: np.nonzero((labels == c) & train_half)[0] for c in self.classes}
        self.real_idx = {c: [i for i, l in enumerate(data.real_labels) if l == c] for c in self.classes}
        # a real-sketch check of our own: some seen classes' Quick, Draw! sketches never train
        with_real = sorted(c for c in self.classes if self.real_idx[c])
        k = min(self.tc.real_holdout, len(with_real))
        self.real_holdout = sorted(np.random.default_rng([seed, 16]).choice(with_real, k, replace=False).tolist()) if k else []
        for c in self.real_holdout:
            self.real_idx[c] = []
        if self.tc.monitor not in ("val_map", "val_real", "val_mix"):
            raise ValueError(f"monitor must be val_map, val_real or val_mix, got {self.tc.monitor!r}")
        if self.tc.monitor != "val_map" and not self.real_holdout:
            raise ValueError(f"monitor {self.tc.monitor} needs real_holdout > 0 and seen classes with Quick, Draw! sketches")
        if self.tc.drawn_prob > 0 and data.drawn is None:
            raise ValueError("drawn_prob > 0 needs drawn-style sketches: prepare_data(..., drawn_variants=N)")
        self.pool = np.concatenate([self.train_idx[c] for c in self.classes])
        self.pool_class = torch.tensor([self.class_id[str(labels[i])] for i in self.pool])
        self._bank: torch.Tensor | None = None
        self._bank_step = -1
        self.miner = SemiHardMiner(self.tc.margin) if self.tc.miner == "semihard" else BatchHardMiner()
        self.triplet = TripletMarginLoss(self.tc.margin, distance=None)
        self.nce = MultiPositiveInfoNCE(self.tc.temperature)
        self.cos = CosineDistance()
        self.use_sketch_features = bool(getattr(model, "needs_sketch_features", False))
        if self.use_sketch_features:
            ensure_sketch_features(data, dtype=model.sketch_backbone_dtype, stages=getattr(model, "sketch_finetune_stages", 0))

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer groups: fine-tuned backbone stages at ``finetune_lr_scale`` × the learning rate."""
        tail = getattr(self.model, "sketch_tail", None)
        if tail is None:
            return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        ids = {id(p) for p in tail.parameters()}
        return [{"params": [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]},
                {"params": list(tail.parameters()), "lr_scale": self.tc.finetune_lr_scale}]

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sketches, sketch features or None, image features, class ids, instance ids (−1: real sketch))."""
        tc, d = self.tc, self.data
        classes = self.rng.choice(self.classes, size=min(tc.classes_per_batch, len(self.classes)), replace=False)
        sk, skf, feats, labels, inst = [], [], [], [], []
        for c in classes:
            pool = self.train_idx[c]
            img = self.rng.choice(pool, size=tc.per_class, replace=len(pool) < tc.per_class)
            src = img if tc.instance_pairs else self.rng.choice(pool, size=tc.per_class, replace=len(pool) < tc.per_class)
            for j in range(tc.per_class):
                k, flip = int(self.rng.integers(0, 4)), bool(self.rng.random() < 0.5)
                if self.real_idx[c] and self.rng.random() < tc.real_prob:
                    r = int(self.rng.choice(self.real_idx[c]))
                    ink, f, iid = d.real[r], (d.real_features[r] if self.use_sketch_features else None), -1
                elif tc.drawn_prob > 0 and self.rng.random() < tc.drawn_prob:
                    v = int(self.rng.integers(0, d.drawn.shape[1]))
                    ink = d.drawn[src[j], v]
                    f = d.drawn_features[src[j]] if self.use_sketch_features else None
                    iid = int(src[j])
                else:
                    v = int(self.rng.integers(0, d.sketches.shape[1]))
                    ink = d.sketches[src[j], v]
                    f = d.sketch_features[src[j]] if self.use_sketch_features else None
                    iid = int(src[j])
                ink = _dihedral(np.asarray(ink, np.float32) / 255.0, k, flip)
                shift = self.rng.integers(-4, 5, size=2)
                sk.append(np.roll(ink, (int(shift[0]), int(shift[1])), axis=(0, 1)))
                if f is not None:
                    skf.append(_dihedral(np.asarray(f, np.float32), k, flip) if tc.feature_aug else np.asarray(f, np.float32))
                g = np.asarray(d.features[img[j]], np.float32)
                if tc.feature_aug:
                    g = _dihedral(g, int(self.rng.integers(0, 4)), bool(self.rng.random() < 0.5))
                feats.append(np.ascontiguousarray(g))
                labels.append(self.class_id[c])
                inst.append(iid if int(img[j]) == iid else -1)
        return (
            torch.from_numpy(np.ascontiguousarray(np.stack(sk)[:, None])),
            torch.from_numpy(np.ascontiguousarray(np.stack(skf))) if skf else None,
            torch.from_numpy(np.stack(feats)),
            torch.tensor(labels),
            torch.tensor(inst),
        )

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        sk, skf, feats, y, inst = self._batch()
        m = self.model
        s_tok = m.sketch_tokens(sk, skf) if skf is not None else m.sketch_tokens(sk)
        i_tok = m.image_tokens_from(feats)
        es, ei = m.embed(s_tok), m.embed(i_tok)
        with torch.no_grad():  # collapse watch: mean off-diagonal cosine among sketch / image [RT] vectors
            n = len(es)
            off = ~torch.eye(n, dtype=torch.bool)
            scalars = {"s_cos": float((es @ es.T)[off].mean()), "i_cos": float((ei @ ei.T)[off].mean())}
        if self.tc.loss == "infonce":
            l_rt = self.nce(es, y, ei, y)
            loss = l_rt
            scalars["rt"] = float(l_rt.detach())
            if self.tc.instance_weight > 0 and bool((inst >= 0).any()):
                l_in = self.nce(es, inst, ei, inst)
                loss = loss + self.tc.instance_weight * l_in
                scalars["inst"] = float(l_in.detach())
            if self.tc.cross_weight > 0:
                from geoseek.losses import multi_positive_nce

                b = len(es)
                anchors = torch.from_numpy(self.rng.permutation(b)[: max(1, min(self.tc.cross_anchors, b))])
                na = len(anchors)
                ai = anchors.repeat_interleave(b)
                bi = torch.arange(b).repeat(na)
                cs = m.cross_score(s_tok[ai], i_tok[bi]).view(na, b) / self.tc.temperature
                l_x = multi_positive_nce(cs, y[anchors][:, None] == y[None, :])
                loss = loss + self.tc.cross_weight * l_x
                scalars["cross"] = float(l_x.detach())
        else:
            t1 = self.miner(es, y, ei, y)
            t2 = self.miner(ei, y, es, y)
            l_rt = self.triplet(es, y, t1, ref_emb=ei) + self.triplet(ei, y, t2, ref_emb=es)
            scalars["rt"] = float(l_rt.detach())
            loss = l_rt
            if self.tc.cross_weight > 0 and len(t1.anchor):
                sp = m.cross_score(s_tok[t1.anchor], i_tok[t1.positive])
                sn = m.cross_score(s_tok[t1.anchor], i_tok[t1.negative])
                l_x = F.relu(self.tc.margin - sp + sn).mean()
                loss = loss + self.tc.cross_weight * l_x
                scalars["cross"] = float(l_x.detach())
        if self.tc.rerank_hard > 0:
            l_h = self._hard_cross_loss(s_tok, es, y, inst, step)
            if l_h is not None:
                loss = loss + max(self.tc.cross_weight, 1e-3) * l_h
                scalars["hard"] = float(l_h.detach())
        if self.tc.ce_weight > 0 and m.classifier is not None:
            l_ce = F.cross_entropy(m.classify(s_tok), y) + F.cross_entropy(m.classify(i_tok), y)
            loss = loss + self.tc.ce_weight * l_ce
            scalars["ce"] = float(l_ce.detach())
        return loss, scalars

    def _hard_cross_loss(self, s_tok: torch.Tensor, es: torch.Tensor, y: torch.Tensor, inst: torch.Tensor,
                         step: int) -> torch.Tensor | None:
        """Multi-positive InfoNCE of cross scores over hard first-stage candidates (``TaskConfig.rerank_hard``)."""
        from geoseek.capabilities.sketch_image.encode import encode_images
        from geoseek.losses import multi_positive_nce

        tc, m, d = self.tc, self.model, self.data
        if self._bank is None or step - self._bank_step >= tc.bank_every or step < self._bank_step:
            was = m.training
            self._bank = torch.from_numpy(encode_images(m, d.features[self.pool])[0])  # (P, D), no grad
            self._bank_step = step
            m.train(was)
        anchors = self.rng.permutation(len(es))[: max(1, min(tc.hard_anchors, len(es)))]
        k = min(tc.rerank_hard, len(self.pool))
        top = (es[anchors].detach() @ self._bank.T).topk(k, dim=1).indices.numpy()
        pos_of = {int(img): i for i, img in enumerate(self.pool)}
        rows, cands = [], []
        for a, t in zip(anchors.tolist(), top):
            c = self.rng.choice(t, size=min(tc.hard_sample, k), replace=False)
            own = pos_of.get(int(inst[a]), -1) if int(inst[a]) >= 0 else -1
            if own >= 0 and own not in c:
                c[0] = own  # the sketch's own image is always a candidate
            if bool((self.pool_class[c] == y[a]).any()):
                rows.append(a)
                cands.append(c)
        if not rows:
            return None
        c = np.stack(cands)  # (A, S) pool positions
        uniq, inv = np.unique(c, return_inverse=True)
        i_tok = m.image_tokens_from(torch.from_numpy(np.asarray(d.features[self.pool[uniq]], np.float32)))
        a_idx = torch.tensor(rows).repeat_interleave(c.shape[1])
        cs = m.cross_score(s_tok[a_idx], i_tok[torch.from_numpy(inv.reshape(-1))]).view(len(rows), -1) / tc.temperature
        pos = self.pool_class[torch.from_numpy(c)] == y[torch.tensor(rows)][:, None]
        return multi_positive_nce(cs, pos)

    def validate(self) -> dict[str, float]:
        """mAP@all of held-out *seen* sketches against the held-out seen gallery (no unseen peeking);
        with ``real_holdout``, ``val_real``: the held-out Quick, Draw! classes' real sketches against
        the same gallery, and ``val_mix`` = the mean of both."""
        d = self.data
        q = d.select(self.fold.seen, "query", 1)[: self.tc.val_queries]
        g = d.select(self.fold.seen, "gallery", 1)
        if len(q) == 0 or len(g) == 0:
            out = {"val_map": 0.0, "val_p10": 0.0}
        else:
            r = evaluate_split(self.model, d, q, g, rerank=0)
            out = {"val_map": r["map"], "val_p10": r["p@10"]}
        if self.real_holdout:
            r = evaluate_split(self.model, d, q, g, rerank=0, real=True, real_classes=self.real_holdout) if len(g) else {}
            out["val_real"] = float(r.get("map", 0.0))
            out["val_mix"] = (out["val_map"] + out["val_real"]) / 2
        return out


# ---------------------------------------------------------------------------------- training
DEFAULT_MODEL_CONFIG: dict[str, Any] = {"sketch_backbone_dtype": "float32"}
"""Model arguments new training runs add: the sketch backbone is trained on float32 features, the
precision every CPU runs (ONNX Runtime makes it faster per query than torch's bf16 even where bf16
is native). A bf16-trained model runs bf16 only on CPUs with native bf16 and float32 elsewhere,
where it lost 0.03 ``quickdraw_hit@10`` (docs/benchmarks.md, "Precision and threads")."""


def train_fold(
    data: SketchImageData,
    fold: Fold,
    out: str | Path,
    steps: int = 1500,
    lr: float = 5e-4,
    model_name: str = "mlagt-fused",
    model_config: dict[str, Any] | None = None,
    task_cfg: TaskConfig | None = None,
    seed: int = 0,
    threads: int | None = 1,
    progress: bool = True,
    validate_every: int = 250,
    patience: int = 0,
    resume: bool = True,
) -> tuple[MLAGT, dict[str, Any]]:
    """Train MLAGT on ``fold.seen`` with :func:`geoseek.train.fit`; returns (best model, fit result).

    The best checkpoint by ``task_cfg.monitor`` is kept at ``out``; ``<out>.last`` resumes an
    interrupted run (``resume``); ``patience`` > 0 stops after that many validations without a
    better one."""
    from geoseek.checkpoint import load_model
    from geoseek.encoders.registry import create_model
    from geoseek.train import FitConfig, fit, seed_everything

    if threads:
        torch.set_num_threads(threads)
    seed_everything(seed)
    config = dict(DEFAULT_MODEL_CONFIG, **(model_config or {}))
    model = create_model(model_name, **config)
    task = SketchImageTask(model, data, fold, config, task_cfg, model_name=model_name, seed=seed)
    cfg = FitConfig(steps=steps, lr=lr, warmup=min(100, steps // 10), validate_every=min(validate_every, steps), monitor=task.tc.monitor,
                    seed=seed, threads=threads, patience=patience,
                    extra={"task": asdict(task.tc), "real_holdout_classes": task.real_holdout})
    result = fit(
        task,
        cfg,
        out,
        data={"dataset": "ucm-aid", "fold": fold.index, "seen": fold.seen, "unseen": fold.unseen, **data.info},
        progress=progress,
        resume=resume,
    )
    best, _ = load_model(out)
    return best, result
