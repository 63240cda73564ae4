"""Sketch → aerial image retrieval (MLAGT).

Pipeline::

    images ──EfficientNet-Lite0 (frozen)──► 7×7×1280 features ──MLAGT image branch──► [RT] + filtered tokens
    sketch (PNG / strokes) ──ink map──► MLAGT sketch branch ──► [RT] + filtered tokens
    search: ANN over image [RT] vectors (collection) → top N → cross-attention rerank with stored tokens

Modules:

- :mod:`~geoseek.capabilities.sketch_image.data`: image loading, the backbone-feature and
  synthesized-sketch caches, the UC Merced + AID protocol data (:class:`SketchImageData`);
- :mod:`~geoseek.capabilities.sketch_image.encode`: MLAGT inference (sketches / image features →
  [RT] vectors and tokens, cross-attention rerank), shared by evaluation, search and figures;
- :mod:`~geoseek.capabilities.sketch_image.task`: the training task and :func:`train_fold`;
- :mod:`~geoseek.capabilities.sketch_image.evaluate`: the zero-shot protocol, metrics and the
  HOG / ImageNet baselines;
- :mod:`~geoseek.capabilities.sketch_image.figures`: query / top-k retrieval grids;
- :mod:`~geoseek.capabilities.sketch_image.build`: image folders → a sketch-searchable collection;
- :mod:`~geoseek.capabilities.sketch_image.search`: two-stage search of a built collection.
"""

from geoseek.capabilities.sketch_image.build import build_image_collection, thumbnail
from geoseek.capabilities.sketch_image.data import (
    MODALITY,
    TASK,
    SketchImageData,
    backbone_features,
    cached_features,
    cached_sketch_features,
    cached_sketches,
    ensure_sketch_features,
    load_image,
    prepare_data,
    prepare_samples,
)
from geoseek.capabilities.sketch_image.encode import encode_images, encode_sketches, rerank
from geoseek.capabilities.sketch_image.evaluate import (
    baseline_scores,
    evaluate_fold,
    evaluate_split,
    hog_features,
    image_edges,
    imagenet_sketch_features,
    summarize,
)
from geoseek.capabilities.sketch_image.figures import results_figure
from geoseek.capabilities.sketch_image.search import search_drawing, search_ink_maps
from geoseek.capabilities.sketch_image.task import DEFAULT_MODEL_CONFIG, SketchImageTask, TaskConfig, train_fold

__all__ = [
    "DEFAULT_MODEL_CONFIG",
    "MODALITY",
    "TASK",
    "SketchImageData",
    "SketchImageTask",
    "TaskConfig",
    "backbone_features",
    "baseline_scores",
    "build_image_collection",
    "cached_features",
    "cached_sketch_features",
    "cached_sketches",
    "encode_images",
    "encode_sketches",
    "ensure_sketch_features",
    "evaluate_fold",
    "evaluate_split",
    "hog_features",
    "image_edges",
    "imagenet_sketch_features",
    "load_image",
    "prepare_data",
    "prepare_samples",
    "rerank",
    "results_figure",
    "search_drawing",
    "search_ink_maps",
    "summarize",
    "thumbnail",
    "train_fold",
]
