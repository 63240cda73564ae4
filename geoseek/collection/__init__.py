"""Searchable collections on disk: items (SQLite + R*Tree), vectors (an index backend),
optional named arrays and files; atomic builds and durable incremental edits.

    from geoseek.collection import Collection, Item, Hit
    with Collection.create(path, modality="osm-tiles", dim=128) as b:
        b.add(items, vectors)
    col = Collection.open(path)
    hits = col.search(query_vectors, k=10, filter=Filter(bbox=...))
"""

from geoseek.collection.core import (
    FORMAT_VERSION,
    Collection,
    CollectionBuilder,
    CollectionError,
    CorruptCollectionError,
    NewerFormatError,
    collection_path,
)
from geoseek.collection.items import Hit, Hits, Item, ItemStore
from geoseek.index.base import BBox, Filter, Radius

__all__ = [
    "FORMAT_VERSION", "Collection", "CollectionBuilder", "CollectionError", "CorruptCollectionError",
    "NewerFormatError", "collection_path", "Hit", "Hits", "Item", "ItemStore", "Filter", "Radius", "BBox",
]
