"""Location-explicit image-to-image search (GIMI): image ⊕ location, distance-penalized triplet.

Pipeline::

    geo-located images ──EfficientNet-Lite0 (ImageNet, frozen; computed once)──► (N, 1280)
        ──GeoImageEncoder heads (image head ⊕ location encoder, fusion)──► (N, 128) unit vectors
    search: cosine over the collection, optionally re-weighted by geographic proximity

Modules, one job each:

- :mod:`~geoseek.capabilities.gimi.data`: the dataset and its cached frozen-backbone features
  (:func:`load_features`, :func:`cached_features_for`, :data:`DEFAULT_WORK_DIR`);
- :mod:`~geoseek.capabilities.gimi.task`: the training task of the fusion heads (softmax, triplet,
  DPT) for :func:`geoseek.train.fit` and its entry point :func:`train_gimi`;
- :mod:`~geoseek.capabilities.gimi.evaluate`: GIMI's protocol, the Base baseline, the retrieval
  metrics and the table of methods (:func:`evaluate_gimi`);
- :mod:`~geoseek.capabilities.gimi.build`: located images → vectors → a ``geo-images`` collection;
- :mod:`~geoseek.capabilities.gimi.search`: the query pipeline (:func:`nearest_by_image_and_location`,
  :func:`combined_scores`).

There are no figures for this capability.
"""

from geoseek.capabilities.common import collection_model
from geoseek.capabilities.gimi.build import MODALITY, TASK, build_collection
from geoseek.capabilities.gimi.data import (
    DEFAULT_WORK_DIR,
    GeoImageFeatures,
    backbone_features,
    cached_features_for,
    dataset_key,
    load_features,
)
from geoseek.capabilities.gimi.evaluate import METHODS, base_embeddings, embed_split, evaluate_gimi, retrieval_metrics
from geoseek.capabilities.gimi.search import (
    DEFAULT_GEO_SCALE_M,
    combined_scores,
    embed_query,
    image_to_array,
    nearest_by_image_and_location,
)
from geoseek.capabilities.gimi.task import GimiTask, GimiTrainConfig, Method, train_gimi

__all__ = [
    "DEFAULT_GEO_SCALE_M",
    "DEFAULT_WORK_DIR",
    "METHODS",
    "MODALITY",
    "TASK",
    "GeoImageFeatures",
    "GimiTask",
    "GimiTrainConfig",
    "Method",
    "backbone_features",
    "base_embeddings",
    "build_collection",
    "cached_features_for",
    "collection_model",
    "combined_scores",
    "dataset_key",
    "embed_query",
    "embed_split",
    "evaluate_gimi",
    "image_to_array",
    "load_features",
    "nearest_by_image_and_location",
    "retrieval_metrics",
    "train_gimi",
]
