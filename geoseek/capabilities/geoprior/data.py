"""Geo-prior datasets: species occurrences and synthetic von Mises–Fisher sets, by name.

``inat`` (YFCC100M × iNat2017 species), the synthetic sets of
:data:`geoseek.sources.occurrences.VMF_SETS` and ``ariolimax`` (presence vs background, scored by
ROC AUC). Each is split per class with :func:`~geoseek.sources.occurrences.split_per_class`
(70 / 10 / 20 %, ``split_seed``) by the caller.
"""

from __future__ import annotations

from pathlib import Path

from geoseek.errors import InvalidInputError
from geoseek.sources.occurrences import (
    ARIOLIMAX_FILE,
    INAT_FILE,
    VMF_SETS,
    Occurrences,
    load_ariolimax,
    load_inat_yfcc,
    vmf_mixture,
)

DATASETS = ("inat", *VMF_SETS, "ariolimax")


def load_dataset(name: str, data_dir: str | Path, seed: int = 0) -> Occurrences:
    """``inat`` | ``vmf-global`` | ``vmf-polar`` | ``vmf-polar-tight`` | ``ariolimax``.

    ``seed`` only affects the synthetic sets (their generator seed).
    """
    data_dir = Path(data_dir)
    if name == "inat":
        return load_inat_yfcc(data_dir / INAT_FILE)
    if name == "ariolimax":
        return load_ariolimax(data_dir / ARIOLIMAX_FILE)
    if name in VMF_SETS:
        return vmf_mixture(name, seed=seed)
    raise InvalidInputError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
