"""Kept for compatibility: geo-image search (GIMI) now lives in :mod:`geoseek.capabilities.gimi`.

This module only re-exports the names it used to define; import from the new package instead.
Where each name lives now (all under ``geoseek.capabilities``):

- ``gimi.data``: ``DEFAULT_WORK_DIR``, ``GeoImageFeatures``, ``backbone_features``,
  ``cached_features_for``, ``dataset_key``, ``load_features``;
- ``gimi.task``: ``GimiTrainConfig``, ``GimiTask``, ``Method``, ``train_gimi``;
- ``gimi.evaluate``: ``METHODS``, ``base_embeddings``, ``retrieval_metrics``, ``embed_split``, ``evaluate_gimi``;
- ``gimi.search``: ``DEFAULT_GEO_SCALE_M``, ``combined_scores``, ``image_to_array``, ``embed_query``,
  and ``search_image`` — now named ``nearest_by_image_and_location`` (``search_image`` is its alias here);
- ``gimi.build``: ``TASK``, ``MODALITY``, ``build_collection``;
- ``common``: ``collection_model`` (one model cache for every capability);
- ``geoseek.paths.repo_dir()``: ``REPO``.
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
)
from geoseek.capabilities.gimi.search import nearest_by_image_and_location as search_image
from geoseek.capabilities.gimi.task import GimiTask, GimiTrainConfig, Method, train_gimi
from geoseek.paths import repo_dir

REPO = repo_dir()

__all__ = [
    "DEFAULT_GEO_SCALE_M",
    "DEFAULT_WORK_DIR",
    "METHODS",
    "MODALITY",
    "REPO",
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
    "retrieval_metrics",
    "search_image",
    "train_gimi",
]
