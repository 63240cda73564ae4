"""Encoders: torch modules that turn scenes, sketches, images and locations into vectors."""

from geoseek.encoders.registry import (
    create_location_encoder,
    create_model,
    list_location_encoders,
    list_models,
)

__all__ = ["create_model", "list_models", "create_location_encoder", "list_location_encoders"]
