"""Model registries, in timm's style: ``create_model(name, **kw)`` and ``list_models()``.

Two registries: :data:`MODELS` (image backbones, tile, sketch, sketch-map and fusion encoders; tagged
with the ``task`` they serve) and :data:`LOCATION_ENCODERS` ((lon, lat) → vector modules).
Modules listed here register their entries when first needed.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from geoseek.registry import Registry

MODELS: Registry[nn.Module] = Registry(
    "model",
    modules=[
        "geoseek.encoders.backbones",
        "geoseek.encoders.tiles",
        "geoseek.encoders.sketch_image",
        "geoseek.encoders.sketchmap",
        "geoseek.encoders.fusion",
        "geoseek.encoders.geoprior",
    ],
)
LOCATION_ENCODERS: Registry[nn.Module] = Registry("location encoder", modules=["geoseek.encoders.location"])

register_model = MODELS.register
register_location_encoder = LOCATION_ENCODERS.register


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model registered as ``name``."""
    return MODELS.create(name, **kwargs)


def list_models(task: str | None = None) -> list[str]:
    """Registered model names, optionally only those for ``task`` ("tiles", "sketchmap"...)."""
    return MODELS.names(**({"task": task} if task else {}))


def create_location_encoder(name: str, **kwargs: Any) -> nn.Module:
    """Build the location encoder registered as ``name`` (input (N, 2) (lon, lat) degrees)."""
    return LOCATION_ENCODERS.create(name, **kwargs)


def list_location_encoders() -> list[str]:
    return LOCATION_ENCODERS.names()
