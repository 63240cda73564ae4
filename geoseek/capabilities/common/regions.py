"""Several regions at once: the batch-mixing rule of multi-region training, time budgets, run records.

* :class:`RegionMix` — how many items of a batch each region gives (multi-region training of the
  sketch-map and tiles encoders);
* :func:`parse_duration` — ``--adapt 10m`` → 600.0 seconds;
* :class:`Deadline` — a wall-clock budget checked every step of self-adaptation (and
  :class:`DeadlineReached`, raised by work inside a step that checks it too);
* :func:`region_stem` — ``.../porto.osm.pbf`` → ``porto``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from geoseek.errors import InvalidInputError

MIX_RULES = ("sqrt", "uniform", "size")


class RegionMix:
    """The rule that balances regions in a multi-region batch.

    Every item of a batch (a scene for sketch maps, an anchor/positive pair for tiles) draws its
    region independently with probability

        p_i = w_i / Σ_j w_j,   w_i = sqrt(n_i)  (rule "sqrt", the default),
                               w_i = 1          (rule "uniform"),
                               w_i = n_i        (rule "size": as if the regions were one pool),

    where ``n_i`` is region i's size in training units (its training scenes, or its non-empty
    z16 cells for tiles). "sqrt" keeps a large region (Malta: ~1,000 scenes) from drowning the
    city centres (~20-100 scenes each) while still drawing it more often than a tiny one, so
    that small regions are not memorised. The counts of a batch are one multinomial draw of the
    batch size over ``p``: every region's expected share is exactly ``p_i``.
    """

    def __init__(self, sizes: Sequence[int], rule: str = "sqrt") -> None:
        if rule not in MIX_RULES:
            raise InvalidInputError(f"unknown region mixing rule {rule!r}: use one of {', '.join(MIX_RULES)}")
        n = np.asarray(sizes, np.float64)
        if n.ndim != 1 or len(n) == 0 or (n <= 0).any():
            raise InvalidInputError(f"every region needs at least one training unit, got sizes {list(sizes)}")
        self.sizes, self.rule = n, rule
        w = {"sqrt": np.sqrt(n), "uniform": np.ones_like(n), "size": n}[rule]
        self.p = w / w.sum()

    def __len__(self) -> int:
        return len(self.p)

    def counts(self, batch: int, rng: np.random.Generator) -> np.ndarray:
        """(R,) int: items of a ``batch``-item batch per region (sums to ``batch``)."""
        return rng.multinomial(int(batch), self.p)

    def to_dict(self) -> dict:
        return {"rule": self.rule, "sizes": [int(v) for v in self.sizes], "p": [float(v) for v in self.p]}


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int | None) -> float:
    """``"30s"``, ``"10m"``, ``"1h"``, ``"1h30m"``, ``"90"`` (seconds), ``0`` or None → seconds (float >= 0)."""
    if text is None:
        return 0.0
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        parts = re.findall(r"(\d+(?:\.\d+)?)(h|min|m|s|)", s)
        if not s or "".join(a + b for a, b in parts) != s:
            raise InvalidInputError(f"not a duration: {text!r} (use e.g. 30s, 10m, 1h, or 0 for none)")
        value = sum(float(a) * _UNITS[b] for a, b in parts)
    if not np.isfinite(value) or value < 0:
        raise InvalidInputError(f"a duration must be >= 0 seconds, got {text!r}")
    return value


class DeadlineReached(Exception):
    """Raised inside a step (e.g. before simulating one more sketch) when its :class:`Deadline` has passed:
    the adaptation loop drops that step and stops, so the budget is overshot by one sketch, not one step."""


class Deadline:
    """A wall-clock budget of ``seconds`` started now (monotonic clock)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.t0 = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    @property
    def left(self) -> float:
        return self.seconds - self.elapsed

    def passed(self) -> bool:
        return self.elapsed >= self.seconds

    def check(self) -> None:
        """Raise :class:`DeadlineReached` once the budget is spent."""
        if self.passed():
            raise DeadlineReached(f"budget of {self.seconds:g} s spent")


def region_stem(path: str | Path) -> str:
    """File name up to its first dot: ``../osm/porto.osm.pbf`` → ``porto``."""
    return Path(path).name.split(".")[0]
