"""The geo-prior model: a registered location encoder + a linear classifier, (lon, lat) → class logits.

Registered as ``geoprior`` (task ``geoprior``) in :data:`geoseek.encoders.registry.MODELS`, which
imports this module when the name is first needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from geoseek.encoders.registry import create_location_encoder, register_model
from geoseek.errors import InvalidInputError


@register_model("geoprior", task="geoprior")
class GeoPriorNet(nn.Module):
    """Location encoder ``encoder`` (built with ``encoder_params``) + linear classifier → logits (N, C)."""

    def __init__(self, encoder: str = "sphereM", num_classes: int = 2, encoder_params: dict[str, Any] | None = None):
        super().__init__()
        if num_classes < 2:
            raise InvalidInputError(f"num_classes must be >= 2, got {num_classes}")
        self.encoder = create_location_encoder(encoder, **(encoder_params or {}))
        self.classifier = nn.Linear(self.encoder.out_dim, num_classes)

    def forward(self, lonlat: object) -> Tensor:
        return self.classifier(self.encoder(lonlat))

    def frozen_features(self, lonlat: object) -> Tensor:
        """Cacheable part of the forward pass (see ``LocationEncoder.frozen_features``)."""
        with torch.no_grad():
            return self.encoder.frozen_features(lonlat)

    def logits_from_frozen(self, features: Tensor) -> Tensor:
        return self.classifier(self.encoder.from_frozen(features))


@torch.no_grad()
def predict_frozen(model: GeoPriorNet, features: Tensor, batch: int = 4096) -> np.ndarray:
    """Logits (N, C) from cached frozen features, in batches."""
    model.eval()
    return torch.cat([model.logits_from_frozen(features[i : i + batch]) for i in range(0, len(features), batch)]).numpy()


@torch.no_grad()
def predict(model: GeoPriorNet, lonlat: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Logits (N, C) for (N, 2) (lon, lat) degrees."""
    model.eval()
    return torch.cat([model(lonlat[i : i + batch]) for i in range(0, len(lonlat), batch)]).numpy()
