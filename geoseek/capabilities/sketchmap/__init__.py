"""Spatial query by sketch map (DeepSSN): a drawn map of typed objects → matching OSM scenes.

Modules:

- :mod:`~geoseek.capabilities.sketchmap.data` — scenes of a region (:func:`region_scenes`),
  simulated sketches (:func:`simulate_pool`), the cached split and training sketches (:func:`prepare_data`);
- :mod:`~geoseek.capabilities.sketchmap.vectors` — rasters → model vectors (:func:`embed`), raw-pixel
  vectors and fused scores, shared by the modules below;
- :mod:`~geoseek.capabilities.sketchmap.task` — :class:`SketchMapTask`, the triplet task with scheduled
  exemplar mining for :func:`geoseek.train.fit`;
- :mod:`~geoseek.capabilities.sketchmap.evaluate` — DeepSSN's protocol (:func:`evaluate_retrieval`), ranks
  and metrics, the raw-pixel baseline and fusion;
- :mod:`~geoseek.capabilities.sketchmap.figures` — sketch queries beside their top-5 scenes;
- :mod:`~geoseek.capabilities.sketchmap.build` — scene collections (:func:`build_scene_collection`);
- :mod:`~geoseek.capabilities.sketchmap.search` — the query pipeline over a scene collection
  (:func:`search_scenes`);
- :mod:`~geoseek.capabilities.sketchmap.feedback` — the (sketch, chosen scene) feedback log.
"""

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
from geoseek.capabilities.sketchmap.search import collection_model, search_scenes, sketch_raster
from geoseek.capabilities.sketchmap.task import SketchMapTask
from geoseek.capabilities.sketchmap.vectors import RAW_POOL, RERANK, embed, fused_scores, raw_vectors

__all__ = [
    "DEFAULT_SIZE", "DEFAULT_WINDOW_M", "EVAL_SEED", "FEEDBACK_FILE", "FUSION_WEIGHTS", "MODALITY", "RAW_POOL", "RERANK",
    "TASK", "TRAIN_SEED", "VAL_SEED", "SceneSet", "SketchMapData", "SketchMapTask", "append_feedback",
    "build_scene_collection", "choose_fusion_weight", "collection_model", "count_feedback", "embed", "eval_queries",
    "evaluate_retrieval", "feedback_path", "feedback_sketches", "figure_top5", "fused_ranks", "fused_scores",
    "prepare_data", "rank_metrics", "raw_vectors", "read_feedback", "region_scenes", "scene_id", "search_scenes",
    "simulate_pool", "sketch_raster", "sketch_seed", "split_scenes", "true_ranks",
]
