"""Geo-aware classification from location alone (a "geo prior", Mac Aodha et al. 2019).

A :class:`GeoPriorNet` is a registered location encoder (position encoding + head) followed by a
linear classifier: (lon, lat) degrees → class logits, trained with :func:`geoseek.train.fit`.

Modules, one job each:

- :mod:`~geoseek.capabilities.geoprior.data`: the datasets by name (:func:`load_dataset`, :data:`DATASETS`);
- :mod:`~geoseek.encoders.geoprior` (an encoder, so it lives below the capabilities): the registered ``geoprior`` model and batched
  prediction (:func:`predict`, :func:`predict_frozen`);
- :mod:`~geoseek.capabilities.geoprior.task`: the training task (cross-entropy or presence–absence)
  and its entry point :func:`train_geoprior`;
- :mod:`~geoseek.capabilities.geoprior.evaluate`: top-1, top-3, MRR (+ ROC AUC for two classes) and
  the no-prior frequency baseline.

The capability builds no collection and has no search of its own.
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
