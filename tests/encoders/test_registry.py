"""The model registries: every listed module loads, names are unique, unknown names say what exists."""

from __future__ import annotations

import pytest

from geoseek.encoders.registry import LOCATION_ENCODERS, MODELS, create_model, list_models
from geoseek.registry import Registry, UnknownNameError


def test_every_capability_registers_its_models() -> None:
    tasks = {MODELS.tags(name)["task"] for name in list_models()}
    assert {"image", "tiles", "sketch-image", "sketchmap", "geo-image", "geoprior"} <= tasks
    assert "efficientnet_lite0" in list_models(task="image")
    assert {"sphereM", "xyz", "geoclip", "spherical_harmonics"} <= set(LOCATION_ENCODERS.names())


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="known: .*tile-cnn"):
        create_model("no-such-model")


def test_a_listed_module_that_fails_to_import_is_an_error() -> None:
    reg: Registry[object] = Registry("thing", modules=["geoseek.no_such_module"])
    with pytest.raises(ModuleNotFoundError):
        reg.names()
    with pytest.raises(ValueError, match="registered twice"):
        ok: Registry[object] = Registry("thing")
        ok.register("a")(lambda: 1)
        ok.register("a")(lambda: 2)
