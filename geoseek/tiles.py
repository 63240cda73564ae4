"""Kept for compatibility: the OSM-tiles capability now lives in :mod:`geoseek.capabilities.tiles`.

This module only re-exports the names it used to define, for import paths users may rely on;
new code imports from the package. Where each name lives now:

- :mod:`geoseek.capabilities.tiles.data`: ``MODALITY``, ``TASK``, ``DEFAULT_ZOOM``, ``TILE_PX``,
  ``load_features`` (and its ``_FEATURE_CACHE``), ``embed_tiles``, ``make_sampler``, ``training_block_tiles``, ``EvalTiles``,
  ``region_tiles``;
- :mod:`geoseek.capabilities.tiles.task`: ``TileTrainConfig``, ``TileTripletTask``, ``train_tiles``;
- :mod:`geoseek.capabilities.tiles.losses`: ``dominant_class``, ``land_use_loss``,
  ``land_use_class_weights``, ``_cover_target``;
- :mod:`geoseek.capabilities.tiles.ensemble`: ``member_path``, ``ensemble_checkpoints``;
- :mod:`geoseek.capabilities.tiles.evaluate`: ``evaluate_tiles``, ``knn_report``,
  ``imagenet_vectors``, ``_raw_vectors`` (now ``raw_vectors``);
- :mod:`geoseek.capabilities.tiles.figures`: ``plot_embedding_map``, ``plot_retrieval_grid``;
- :mod:`geoseek.capabilities.tiles.build`: ``build_osm_collection``;
- :mod:`geoseek.capabilities.tiles.search`: ``_CollectionContext`` (now ``CollectionContext``),
  ``check_collection``, ``tile_id_at``, ``vector_at``, ``similar``, ``arithmetic``, ``interpolate``
  (and their helpers ``_resolve``, ``_normalize``, ``_search``);
- :mod:`geoseek.capabilities.tiles.basemap`: ``basemap_png``;
- :mod:`geoseek.capabilities.common`: ``save_json``.
"""

from __future__ import annotations

from geoseek.capabilities.common.reports import save_json
from geoseek.capabilities.tiles.basemap import basemap_png
from geoseek.capabilities.tiles.build import build_osm_collection
from geoseek.capabilities.tiles.data import (
    _FEATURE_CACHE, DEFAULT_ZOOM, MODALITY, TASK, TILE_PX, EvalTiles, embed_tiles, load_features, make_sampler, region_tiles,
    training_block_tiles,
)
from geoseek.capabilities.tiles.ensemble import ensemble_checkpoints, member_path
from geoseek.capabilities.tiles.evaluate import evaluate_tiles, imagenet_vectors, knn_report
from geoseek.capabilities.tiles.evaluate import raw_vectors as _raw_vectors
from geoseek.capabilities.tiles.figures import plot_embedding_map, plot_retrieval_grid
from geoseek.capabilities.tiles.losses import _cover_target, dominant_class, land_use_class_weights, land_use_loss
from geoseek.capabilities.tiles.search import CollectionContext as _CollectionContext
from geoseek.capabilities.tiles.search import (
    _normalize, _resolve, _search, arithmetic, check_collection, interpolate, similar, tile_id_at, vector_at,
)
from geoseek.capabilities.tiles.task import TileTrainConfig, TileTripletTask, train_tiles

__all__ = [
    "DEFAULT_ZOOM", "MODALITY", "TASK", "TILE_PX", "EvalTiles", "TileTrainConfig", "TileTripletTask", "arithmetic",
    "basemap_png", "build_osm_collection", "check_collection", "dominant_class", "embed_tiles",
    "ensemble_checkpoints", "evaluate_tiles", "imagenet_vectors", "interpolate", "knn_report",
    "land_use_class_weights", "land_use_loss", "load_features", "make_sampler", "member_path", "plot_embedding_map",
    "plot_retrieval_grid", "region_tiles", "save_json", "similar", "tile_id_at", "train_tiles",
    "training_block_tiles", "vector_at",
]
