"""Leave-one-region-out runs shared by the sketch-map and tiles evaluations.

:func:`loo_checkpoint` trains (or reuses) the model of one fold: a checkpoint in the
``--checkpoints`` folder named by the held-out region and a key of (recipe, training regions),
with a ``.done`` marker written once training finished, so a rerun reuses finished folds and
resumes an interrupted one (``fit``'s ``.last`` state). :func:`summarize` averages the scored
regions' figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.capabilities.common.cache import cache_key
from geoseek.capabilities.common.regions import region_stem


def loo_checkpoint(
    kind: str, held_out: Path, train_regions: Sequence[Path], recipe: dict[str, Any], folder: str | Path,
    train: Callable[[list[Path], Path], dict[str, Any]],
) -> tuple[Path, bool]:
    """(checkpoint path, whether it was reused) of the fold holding out ``held_out``."""
    key = cache_key({"recipe": recipe, "train": sorted(Path(r).name for r in train_regions)}, length=10)
    path = Path(folder) / f"{kind}-loo-{region_stem(held_out)}-{key}.pt"
    done = path.with_name(path.name + ".done")
    if path.is_file() and done.is_file():
        return path, True
    path.parent.mkdir(parents=True, exist_ok=True)
    summary = train(list(train_regions), path)
    done.write_text(json.dumps({"held_out": Path(held_out).name, "train": [Path(r).name for r in train_regions],
                                "recipe": recipe, "seconds": summary.get("seconds"), "best": summary.get("best")},
                               default=str, indent=1))
    return path, False


def held_out_regions(regions: Sequence[Path], names: Sequence[str] | None) -> list[Path]:
    """The regions whose folds run: all of ``regions``, or those named in ``names`` (file name or stem).

    The other regions still train every fold; they are only never held out (a fold costs a
    training run, and a goal may concern a few regions). An unknown name is an InvalidInputError.
    """
    from geoseek.errors import InvalidInputError

    if not names:
        return list(regions)
    by_name = {**{region_stem(r): r for r in regions}, **{Path(r).name: r for r in regions}}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InvalidInputError(f"--hold-out: {', '.join(unknown)} is not one of the regions "
                                f"({', '.join(region_stem(r) for r in regions)})")
    chosen = {by_name[n] for n in names}
    return [r for r in regions if r in chosen]


def summarize(rows: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Mean (and min) over ``rows`` of each of ``keys`` present in every row."""
    out: dict[str, Any] = {"regions": len(rows)}
    for k in keys:
        vals = [r[k] for r in rows if isinstance(r.get(k), (int, float))]
        if rows and len(vals) == len(rows):
            out[k] = float(np.mean(vals))
            out[f"min_{k}"] = float(np.min(vals))
    return out
