"""Sketch → aerial image retrieval (MLAGT): kept for compatibility, the code lives in
:mod:`geoseek.capabilities.sketch_image`.

This module only re-exports the names it used to define, for import paths users may rely on;
new code imports from the package. Where each name lives now:

- ``capabilities.sketch_image.data``: ``TASK``, ``MODALITY``, ``load_image``, ``backbone_features``,
  ``cached_features``, ``cached_sketches``, ``cached_sketch_features``, ``SketchImageData``,
  ``prepare_data``, ``prepare_samples``, ``ensure_sketch_features``;
- ``capabilities.sketch_image.encode``: ``encode_sketches``, ``encode_images``, ``rerank``
  (also ``rerank_fn`` here);
- ``capabilities.sketch_image.task``: ``TaskConfig``, ``SketchImageTask``, ``DEFAULT_MODEL_CONFIG``,
  ``train_fold``;
- ``capabilities.sketch_image.evaluate``: ``evaluate_split``, ``evaluate_fold``, ``summarize``,
  ``hog_features``, ``image_edges``, ``imagenet_sketch_features``, ``baseline_scores``;
- ``capabilities.sketch_image.figures``: ``results_figure``;
- ``capabilities.sketch_image.build``: ``build_image_collection``, ``thumbnail``;
- ``capabilities.sketch_image.search``: ``search_ink_maps`` (was ``search_sketches``) and
  ``search_drawing`` (was ``search_sketch``), both old names kept here as aliases;
- ``capabilities.common``: ``collection_model`` (one model cache for every capability).

Patching a name here (e.g. ``backbone_features``) no longer changes what the package calls:
patch it in the module named above.
"""

from geoseek.capabilities.common import collection_model
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

rerank_fn = rerank
search_sketches = search_ink_maps
"""Old name of :func:`geoseek.capabilities.sketch_image.search.search_ink_maps`."""
search_sketch = search_drawing
"""Old name of :func:`geoseek.capabilities.sketch_image.search.search_drawing`."""

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
    "collection_model",
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
    "rerank_fn",
    "results_figure",
    "search_drawing",
    "search_ink_maps",
    "search_sketch",
    "search_sketches",
    "summarize",
    "thumbnail",
    "train_fold",
]
