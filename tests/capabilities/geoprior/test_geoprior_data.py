"""Geo-prior data: the datasets by name; an unknown name is refused with the known ones."""

import numpy as np
import pytest

from geoseek.capabilities.geoprior.data import DATASETS, load_dataset
from geoseek.errors import InvalidInputError


def test_synthetic_sets_load_by_name_and_unknown_names_are_refused(tmp_path):
    assert {"inat", "ariolimax", "vmf-polar-tight"} <= set(DATASETS)
    a, b = load_dataset("vmf-polar-tight", tmp_path, seed=1), load_dataset("vmf-polar-tight", tmp_path, seed=1)
    assert np.array_equal(a.lonlat, b.lonlat) and a.num_classes >= 2  # seeded; no file needed
    with pytest.raises(InvalidInputError, match="unknown dataset 'nowhere'.*inat"):
        load_dataset("nowhere", tmp_path)
