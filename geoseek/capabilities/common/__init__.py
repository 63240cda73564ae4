"""What the capabilities share: the collection-model loader, array caches, JSON reports."""

from geoseek.capabilities.common.cache import atomic_save_npy, cache_key
from geoseek.capabilities.common.models import collection_model
from geoseek.capabilities.common.reports import save_json

__all__ = ["atomic_save_npy", "cache_key", "collection_model", "save_json"]
