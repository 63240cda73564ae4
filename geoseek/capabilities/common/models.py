"""The model stored inside a collection, loaded once per process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoseek.checkpoint import ModelCache
from geoseek.errors import InvalidInputError

if TYPE_CHECKING:
    import torch

    from geoseek.collection import Collection

_MODELS = ModelCache()
"""The models of the collections searched in this process (shared by every capability)."""


def collection_model(col: Collection, modality: str | None = None) -> torch.nn.Module:
    """The model a collection was built with (``files/<extra.model_file>``, default ``model.pt``).

    Loaded once per file and process (see :class:`geoseek.checkpoint.ModelCache`). With
    ``modality``, a collection of another modality is refused with a clear
    :class:`~geoseek.errors.InvalidInputError`.
    """
    found = col.manifest.get("modality")
    if modality is not None and found != modality:
        raise InvalidInputError(f"this search needs a {modality!r} collection; {col.path} holds {found!r}")
    extra = col.manifest.get("extra", {}) or {}
    return _MODELS.get(col.file(extra.get("model_file", "model.pt")))
