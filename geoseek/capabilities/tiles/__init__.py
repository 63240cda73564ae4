"""The OSM-tiles capability (Loc2Vec / Geobacter): location embeddings from rendered OSM tiles.

Modules, one job each:

- :mod:`~geoseek.capabilities.tiles.data` — OSM features (memoized), triplet samplers, a tile's
  model input (:func:`render_tile`: :data:`TILE_GROUND_M` ground metres around the XYZ tile), the
  labelled tiles of a region or of its training blocks, :func:`embed_tiles`;
- :mod:`~geoseek.capabilities.tiles.task` — :class:`TileTrainConfig`, :class:`TileTripletTask`
  (the :class:`geoseek.train.TrainTask` for :func:`geoseek.train.fit`) and :func:`train_tiles`;
- :mod:`~geoseek.capabilities.tiles.losses` — the masked land-use objective beside the triplet loss;
- :mod:`~geoseek.capabilities.tiles.ensemble` — several trained encoders as one ``tile-ensemble``
  checkpoint (:func:`ensemble_checkpoints`, :func:`member_path`);
- :mod:`~geoseek.capabilities.tiles.evaluate` — our land-use kNN retrieval protocol
  (:func:`evaluate_tiles`) with its raw-raster, ImageNet and random baselines;
- :mod:`~geoseek.capabilities.tiles.figures` — the t-SNE embedding map and the retrieval grid;
- :mod:`~geoseek.capabilities.tiles.build` — every non-empty XYZ tile of a region → a collection
  (:func:`build_osm_collection`);
- :mod:`~geoseek.capabilities.tiles.search` — queries over such a collection: :func:`similar`
  ("places like this one"), :func:`arithmetic`, :func:`interpolate`;
- :mod:`~geoseek.capabilities.tiles.basemap` — the collection's offline basemap tiles (:func:`basemap_png`).
"""

from geoseek.capabilities.tiles.basemap import basemap_png
from geoseek.capabilities.tiles.build import build_osm_collection
from geoseek.capabilities.tiles.data import (
    DEFAULT_ZOOM, MODALITY, TASK, TILE_GROUND_M, TILE_PX, EvalTiles, embed_tiles, load_features, make_sampler,
    region_tiles, render_tile, training_block_tiles,
)
from geoseek.capabilities.tiles.ensemble import ensemble_checkpoints, member_path
from geoseek.capabilities.tiles.evaluate import evaluate_tiles, imagenet_vectors, knn_report, raw_vectors
from geoseek.capabilities.tiles.figures import plot_embedding_map, plot_retrieval_grid
from geoseek.capabilities.tiles.losses import dominant_class, land_use_class_weights, land_use_loss
from geoseek.capabilities.tiles.search import (
    CollectionContext, arithmetic, check_collection, interpolate, similar, tile_id_at, vector_at,
)
from geoseek.capabilities.tiles.task import TileTrainConfig, TileTripletTask, train_tiles

__all__ = [
    "DEFAULT_ZOOM", "MODALITY", "TASK", "TILE_GROUND_M", "TILE_PX", "CollectionContext", "EvalTiles", "TileTrainConfig",
    "TileTripletTask", "arithmetic", "basemap_png", "build_osm_collection", "check_collection", "dominant_class",
    "embed_tiles", "ensemble_checkpoints", "evaluate_tiles", "imagenet_vectors", "interpolate", "knn_report",
    "land_use_class_weights", "land_use_loss", "load_features", "make_sampler", "member_path", "plot_embedding_map",
    "plot_retrieval_grid", "raw_vectors", "region_tiles", "render_tile", "similar", "tile_id_at", "train_tiles",
    "training_block_tiles", "vector_at",
]
