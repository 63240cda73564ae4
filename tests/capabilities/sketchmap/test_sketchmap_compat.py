"""The old import path ``geoseek.sketchmap`` still re-exports the names it defined."""

import geoseek.capabilities.sketchmap as new
import geoseek.sketchmap as old
from geoseek.capabilities.common import models


def test_old_module_reexports_the_new_package():
    for name in ("DEFAULT_WINDOW_M", "DEFAULT_SIZE", "TRAIN_SEED", "VAL_SEED", "EVAL_SEED", "FEEDBACK_FILE", "MODALITY",
                 "TASK", "RAW_POOL", "RERANK", "FUSION_WEIGHTS", "SceneSet", "SketchMapData", "SketchMapTask",
                 "region_scenes", "split_scenes", "sketch_seed", "simulate_pool", "prepare_data", "embed", "raw_vectors",
                 "true_ranks", "rank_metrics", "eval_queries", "fused_scores", "fused_ranks", "choose_fusion_weight",
                 "evaluate_retrieval", "scene_id", "build_scene_collection", "collection_model", "sketch_raster",
                 "feedback_path", "append_feedback", "read_feedback", "count_feedback", "feedback_sketches", "figure_top5"):
        assert getattr(old, name) is getattr(new, name), name
    assert old.search_sketch_map is new.search_scenes
    assert old._MODELS is models._MODELS  # one model cache per process, shared by every capability
