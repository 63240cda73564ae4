"""The old import path ``geoseek.gimi`` still re-exports the names it defined."""

import geoseek.capabilities.gimi as new
import geoseek.gimi as old


def test_old_module_reexports_the_new_package():
    for name in ("DEFAULT_WORK_DIR", "METHODS", "TASK", "MODALITY", "GimiTrainConfig", "load_features", "train_gimi",
                 "evaluate_gimi", "retrieval_metrics", "combined_scores", "build_collection", "collection_model"):
        assert getattr(old, name) is getattr(new, name), name
    assert old.search_image is new.nearest_by_image_and_location
