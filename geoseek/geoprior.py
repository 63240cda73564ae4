"""Kept for compatibility: geo-aware classification now lives in :mod:`geoseek.capabilities.geoprior`.

This module only re-exports the names it used to define; import from the new package instead.
Where each name lives now (all under ``geoseek.capabilities.geoprior``):

- ``data``: ``DATASETS``, ``load_dataset``;
- ``model``: ``GeoPriorNet`` (the registered ``geoprior`` model), ``predict``, ``predict_frozen``;
- ``task``: ``GeoPriorConfig``, ``GeoPriorTask``, ``train_geoprior``;
- ``evaluate``: ``classification_metrics``, ``frequency_baseline``, ``evaluate_geoprior``.
"""

from geoseek.capabilities.geoprior.data import DATASETS, load_dataset
from geoseek.capabilities.geoprior.evaluate import classification_metrics, evaluate_geoprior, frequency_baseline
from geoseek.encoders.geoprior import GeoPriorNet, predict, predict_frozen
from geoseek.capabilities.geoprior.task import GeoPriorConfig, GeoPriorTask, train_geoprior

__all__ = [
    "DATASETS",
    "GeoPriorConfig",
    "GeoPriorNet",
    "GeoPriorTask",
    "classification_metrics",
    "evaluate_geoprior",
    "frequency_baseline",
    "load_dataset",
    "predict",
    "predict_frozen",
    "train_geoprior",
]
