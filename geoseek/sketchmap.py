"""Kept for compatibility: the sketch-map capability now lives in :mod:`geoseek.capabilities.sketchmap`.

This module only re-exports the names it used to define, so ``from geoseek.sketchmap import ...``
keeps working; new code imports from the package. Where each name lives now:

- ``geoseek.capabilities.sketchmap.data``: ``DEFAULT_WINDOW_M``, ``DEFAULT_SIZE``, ``TRAIN_SEED``,
  ``VAL_SEED``, ``EVAL_SEED``, ``SceneSet``, ``region_scenes``, ``split_scenes``, ``sketch_seed``,
  ``simulate_pool``, ``SketchMapData``, ``prepare_data``;
- ``geoseek.capabilities.sketchmap.vectors``: ``embed``, ``raw_vectors``, ``fused_scores``, ``RAW_POOL``, ``RERANK``;
- ``geoseek.capabilities.sketchmap.task``: ``SketchMapTask`` (and ``_d4``);
- ``geoseek.capabilities.sketchmap.evaluate``: ``true_ranks``, ``rank_metrics``, ``eval_queries``,
  ``FUSION_WEIGHTS``, ``fused_ranks``, ``choose_fusion_weight``, ``evaluate_retrieval``;
- ``geoseek.capabilities.sketchmap.build``: ``MODALITY``, ``TASK``, ``scene_id``, ``build_scene_collection``;
- ``geoseek.capabilities.sketchmap.search``: ``collection_model``, ``sketch_raster``, and
  ``search_sketch_map``, now named ``search_scenes`` (the generic entry is
  :func:`geoseek.search.sketchmap.search_sketch_map`);
- ``geoseek.capabilities.sketchmap.feedback``: ``FEEDBACK_FILE``, ``feedback_path``, ``append_feedback``,
  ``read_feedback``, ``count_feedback``, ``feedback_sketches``;
- ``geoseek.capabilities.sketchmap.figures``: ``figure_top5``;
- ``_MODELS`` is the one process-wide model cache of :mod:`geoseek.capabilities.common.models`.
"""

from __future__ import annotations

from geoseek.capabilities.common.models import _MODELS
from geoseek.capabilities.sketchmap.build import MODALITY, TASK, build_scene_collection, scene_id
from geoseek.capabilities.sketchmap.data import (
    DEFAULT_SIZE,
    DEFAULT_WINDOW_M,
    EVAL_SEED,
    TRAIN_SEED,
    VAL_SEED,
    SceneSet,
    SketchMapData,
    prepare_data,
    region_scenes,
    simulate_pool,
    sketch_seed,
    split_scenes,
)
from geoseek.capabilities.sketchmap.evaluate import (
    FUSION_WEIGHTS,
    choose_fusion_weight,
    eval_queries,
    evaluate_retrieval,
    fused_ranks,
    rank_metrics,
    true_ranks,
)
from geoseek.capabilities.sketchmap.feedback import (
    FEEDBACK_FILE,
    append_feedback,
    count_feedback,
    feedback_path,
    feedback_sketches,
    read_feedback,
)
from geoseek.capabilities.sketchmap.figures import figure_top5
from geoseek.capabilities.sketchmap.search import collection_model, sketch_raster
from geoseek.capabilities.sketchmap.search import search_scenes as search_sketch_map
from geoseek.capabilities.sketchmap.task import SketchMapTask, _d4
from geoseek.capabilities.sketchmap.vectors import RAW_POOL, RERANK, embed, fused_scores, raw_vectors

__all__ = [
    "DEFAULT_SIZE", "DEFAULT_WINDOW_M", "EVAL_SEED", "FEEDBACK_FILE", "FUSION_WEIGHTS", "MODALITY", "RAW_POOL", "RERANK",
    "TASK", "TRAIN_SEED", "VAL_SEED", "SceneSet", "SketchMapData", "SketchMapTask", "append_feedback",
    "build_scene_collection", "choose_fusion_weight", "collection_model", "count_feedback", "embed", "eval_queries",
    "evaluate_retrieval", "feedback_path", "feedback_sketches", "figure_top5", "fused_ranks", "fused_scores",
    "prepare_data", "rank_metrics", "raw_vectors", "read_feedback", "region_scenes", "scene_id", "search_sketch_map",
    "simulate_pool", "sketch_raster", "sketch_seed", "split_scenes", "true_ranks",
]
