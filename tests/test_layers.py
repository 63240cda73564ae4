"""The house rules: no import runs from a lower layer of geoseek to a higher one.

Layers, lowest first (DESIGN.md): the foundations (errors, geo, paths, registry, runtime...), then
sources / encoders / losses / index, then collection / train / checkpoint / evaluate, then the
capabilities, then the query modes (search), then the service, then the CLI and the demo. Every
``import`` statement is read from the syntax tree, those inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "geoseek"

# (part of geoseek, layer); a part not listed here is a foundation (layer 0).
LAYERS: dict[str, int] = {
    "sources": 1,
    "encoders": 1,
    "losses": 1,
    "index": 1,
    "collection": 2,
    "train": 2,
    "checkpoint": 2,
    "build": 2,
    "evaluate": 2,
    "capabilities": 3,
    "search": 4,
    "service": 5,
    "contention": 5,
    "cli": 6,
    "demo": 6,
    "__main__": 6,
}
COMPAT = {"tiles", "sketch_image", "sketchmap", "gimi", "geoprior"}
"""Old capability modules, kept as thin re-exports for users: nothing inside geoseek imports them."""


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "geoseek" and len(parts) > 1 else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "geoseek":
                found += [(node.lineno, f"geoseek.{a.name}") for a in node.names]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_import_runs_upward(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = rel.parts[0].removesuffix(".py")
    if own in COMPAT and len(rel.parts) == 1:
        return  # the compatibility modules re-export the capabilities, by design
    own_layer = LAYERS.get(own, 0)
    bad = []
    for line, module in _imports(path):
        part = _part(module)
        if part is None or part == own:
            continue
        if part in COMPAT and len(module.split(".")) == 2:
            bad.append(f"line {line}: {module} (a compatibility module; import from geoseek.capabilities)")
        elif LAYERS.get(part, 0) > own_layer:
            bad.append(f"line {line}: {module} (layer {LAYERS.get(part, 0)} > {own_layer})")
    assert not bad, f"{rel} imports upward: " + "; ".join(bad)
