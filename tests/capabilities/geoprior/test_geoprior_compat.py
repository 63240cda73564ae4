"""The old import path ``geoseek.geoprior`` still re-exports the names it defined."""

import geoseek.capabilities.geoprior as new
import geoseek.geoprior as old


def test_old_module_reexports_the_new_package():
    for name in ("DATASETS", "GeoPriorConfig", "GeoPriorNet", "GeoPriorTask", "classification_metrics",
                 "evaluate_geoprior", "frequency_baseline", "load_dataset", "predict", "predict_frozen",
                 "train_geoprior"):
        assert getattr(old, name) is getattr(new, name), name
