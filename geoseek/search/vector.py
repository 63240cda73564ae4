"""Search a collection by a query vector or by one of its items (``--vector``, ``--item``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.index.base import Filter
from geoseek.search import QueryMode

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit


def search_vector(collection: Collection, vector: np.ndarray, k: int = 10,
                  filter: Filter | None = None) -> list[Hit]:
    """Top-k items for one query vector (D,) (InvalidInputError on a wrong dimension)."""
    vector = np.asarray(vector, dtype=np.float32)
    if vector.ndim != 1 and not (vector.ndim == 2 and len(vector) == 1):
        raise InvalidInputError(f"expected one query vector of shape ({collection.dim},), got {vector.shape}")
    return collection.search(vector.reshape(1, -1), k, filter)[0]


def search_item(collection: Collection, item_id: str, k: int = 10, filter: Filter | None = None,
                include_self: bool = False) -> list[Hit]:
    """Top-k items most similar to the stored item ``item_id`` (itself excluded by default)."""
    return collection.search_item(item_id, k, filter, include_self=include_self)


def parse_vector(text: str) -> np.ndarray:
    """A vector from ``FILE.npy`` (shape (D,) or (1, D)), a JSON list, or comma-separated numbers."""
    path = Path(text)
    if text.endswith(".npy") or path.is_file():
        if not path.is_file():
            raise NotFoundError(f"vector file {path} does not exist")
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read {path} as a .npy array: {exc}") from None
    else:
        try:
            arr = np.array([float(v) for v in text.strip().strip("[]").split(",") if v.strip()])
        except ValueError:
            raise InvalidInputError(f"--vector expects FILE.npy or comma-separated numbers, got {text[:60]!r}") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2 and len(arr) == 1:
        arr = arr[0]
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(f"expected one vector, got an array of shape {arr.shape}")
    return arr


def _add_vector_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vector", metavar="FILE.npy|V1,V2,...", help="search by this query vector")


def _add_item_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--item", metavar="ID", help="search by the stored vector of this item (itself excluded)")


def _run_vector(collection: Collection, args: argparse.Namespace) -> list[Hit]:
    vec = parse_vector(args.vector)
    if vec.shape[0] != collection.dim:
        raise InvalidInputError(f"the query vector has {vec.shape[0]} dimensions, {collection.name} has {collection.dim}")
    return search_vector(collection, vec, args.k, args.filter)


def _run_item(collection: Collection, args: argparse.Namespace) -> list[Hit]:
    return search_item(collection, args.item, args.k, args.filter)


MODES = [
    QueryMode(name="vector", modality=None, add_arguments=_add_vector_args,
              selected=lambda a: getattr(a, "vector", None) is not None, run=_run_vector,
              help="by a query vector (.npy or comma-separated numbers)"),
    QueryMode(name="item", modality=None, add_arguments=_add_item_args,
              selected=lambda a: getattr(a, "item", None) is not None, run=_run_item,
              help="by an item of the collection"),
]
