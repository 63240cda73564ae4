"""Fuzz every endpoint of the app's OpenAPI schema (schemathesis + hypothesis): no input may
cause a 5xx, and every error is JSON ``{"error", "detail"}``.

Each operation is fuzzed with schema-conforming (positive) and schema-violating (negative)
requests. Path parameter ``name`` is pinned to one of the served collections (images, OSM scenes
and OSM tiles, so capability routes run past their modality checks; unknown names are
covered by test_app.py) and ``item_id`` to a real item half of the time, so the generated bodies and
query strings reach the code behind the lookups. Bounded: up to EXAMPLES per operation and
mode, fewer for slow operations (about SECONDS_PER_OPERATION each), derandomized so a run is
reproducible.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

COLLECTIONS = ("scenes", "helsinki", "helsinki-tiles")
EXAMPLES = 8
SECONDS_PER_OPERATION = 0.5


def _operations(app) -> list:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    return [result.ok() for result in schema.get_all_operations()]


def _check(case, real_items: dict[str, str]) -> None:
    params = case.path_parameters or {}
    name = "scenes"
    if "name" in params:  # pinned to a served collection, chosen by the generated value
        name = params["name"] = COLLECTIONS[len(str(params["name"])) % len(COLLECTIONS)]
    if "item_id" in params and len(str(params["item_id"])) % 2 == 0:
        params["item_id"] = real_items[name]
    response = case.call()
    where = f"{case.method} {case.formatted_path} params={case.query} body={str(case.body)[:200]}"
    assert response.status_code < 500, f"{where} -> {response.status_code}: {response.text[:500]}"
    if response.status_code >= 400:
        body = response.json()
        assert "error" in body and "detail" in body, f"{where} -> {body}"


@pytest.fixture(scope="module")
def fuzz_app(scenes_path, sketch_scenes, osm_tiles):
    """Collections of three modalities, so capability routes run past their modality checks."""
    from geoseek.service.app import create_app

    return create_app({"scenes": scenes_path, "helsinki": sketch_scenes, "helsinki-tiles": osm_tiles},
                      max_upload_bytes=200_000, max_pixels=1_000_000)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_server_errors(fuzz_app, mode) -> None:
    real_items = {name: next(e.collection.items()).id for name, e in fuzz_app.state.collections.items()}
    operations = _operations(fuzz_app)
    assert len(operations) >= 8
    for op in operations:
        try:
            strategy = op.as_strategy(generation_mode=mode)
        except Exception as exc:  # an operation without anything to violate in negative mode
            if mode is GenerationMode.NEGATIVE:
                continue
            raise AssertionError(f"{op.method} {op.path}: {exc}") from exc

        # calibrate: operations whose code is slow (model inference) get fewer examples
        t0 = time.perf_counter()
        _fuzz(strategy, 2, mode, real_items)
        per_example = (time.perf_counter() - t0) / 2
        cap = EXAMPLES if mode is GenerationMode.POSITIVE else EXAMPLES // 2
        _fuzz(strategy, max(1, min(cap, int(SECONDS_PER_OPERATION / max(per_example, 1e-3)))), mode, real_items)


def _fuzz(strategy, examples: int, mode, real_items: dict[str, str]) -> None:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case) -> None:
        _check(case, real_items)

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be made invalid (no parameters, no body)
        if mode is not GenerationMode.NEGATIVE:
            raise
