"""Geo-prior model: registered lazily under ``geoprior`` from its new module; logits of shape (N, C)."""

import subprocess
import sys

import numpy as np
import pytest

from geoseek.encoders.geoprior import GeoPriorNet, predict
from geoseek.errors import InvalidInputError


def test_model_maps_lonlat_to_class_logits():
    model = GeoPriorNet(encoder="xyz", num_classes=3, encoder_params={"hidden_dim": 8})
    logits = predict(model, np.array([[14.4, 35.9], [0.0, 0.0]]), batch=1)
    assert logits.shape == (2, 3) and np.isfinite(logits).all()
    with pytest.raises(InvalidInputError, match="num_classes"):
        GeoPriorNet(num_classes=1)


def test_registry_imports_the_new_module_not_the_old_one():
    code = ("import sys; from geoseek.encoders.registry import create_model, list_models\n"
            "m = create_model('geoprior', encoder='xyz', num_classes=3)\n"
            "assert type(m).__module__ == 'geoseek.encoders.geoprior', type(m).__module__\n"
            "assert 'geoprior' in list_models('geoprior')\n"
            "assert 'geoseek.geoprior' not in sys.modules\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
