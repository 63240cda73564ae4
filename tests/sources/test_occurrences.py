"""Occurrence data for the geo prior: the real files, the GeoPackage header, the per-class split, the vMF sets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geoseek.sources.occurrences import (
    ARIOLIMAX_FILE,
    INAT_FILE,
    VMFSpec,
    gpkg_geometry_to_wkb,
    load_ariolimax,
    load_inat_yfcc,
    sample_vmf,
    split_per_class,
    vmf_mixture,
)

SMALL_POLAR = VMFSpec(num_classes=8, kappa=(100.0, 400.0), min_abs_lat=75.0, per_class=120)


def test_inat_yfcc_file(shared_data):
    d = load_inat_yfcc(shared_data / INAT_FILE)
    assert len(d) == 36_143 and d.num_classes == 4_472
    assert d.lonlat.shape == (36_143, 2) and np.abs(d.lonlat[:, 1]).max() <= 90
    assert d.classes == sorted(d.classes) and d.labels.max() == 4_471


def test_ariolimax_geopackage(shared_data):
    d = load_ariolimax(shared_data / ARIOLIMAX_FILE)
    assert np.bincount(d.labels).tolist() == [4_990, 1_595]
    # California, reprojected from EPSG:32610
    assert (d.lonlat[:, 0] > -125).all() and (d.lonlat[:, 0] < -114).all()
    assert (d.lonlat[:, 1] > 32).all() and (d.lonlat[:, 1] < 42.1).all()


def test_gpkg_header_is_stripped():
    import shapely

    wkb = shapely.Point(500000.0, 4000000.0).wkb
    no_env = b"GP\x00\x01" + (32610).to_bytes(4, "little") + wkb
    with_env = b"GP\x00\x03" + (32610).to_bytes(4, "little") + bytes(32) + wkb  # flags: envelope 1 (xy)
    assert gpkg_geometry_to_wkb(no_env) == wkb and gpkg_geometry_to_wkb(with_env) == wkb
    with pytest.raises(ValueError, match="GP"):
        gpkg_geometry_to_wkb(wkb)


def test_split_is_seeded_disjoint_and_per_class():
    labels = np.repeat(np.arange(30), np.arange(1, 31))
    a, b = split_per_class(labels, seed=3), split_per_class(labels, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], split_per_class(labels, seed=4)["test"])
    allidx = np.concatenate([a["train"], a["val"], a["test"]])
    assert np.array_equal(np.sort(allidx), np.arange(len(labels)))
    assert set(labels[a["test"]]) <= set(labels[a["train"]])  # every test class is seen in training
    for c in (0, 9, 29):  # 1, 10 and 30 points
        n_test = int((labels[a["test"]] == c).sum())
        assert n_test == {0: 0, 9: 2, 29: 6}[c]


def test_vmf_sampler_matches_the_mean_cosine():
    rng = np.random.default_rng(0)
    for kappa in (2.0, 50.0, 800.0):
        mu = np.tile([[0.0, 0.6, 0.8]], (20_000, 1))
        x = sample_vmf(mu, np.full(20_000, kappa), rng)
        assert np.allclose(np.linalg.norm(x, axis=1), 1.0)
        expected = 1 / math.tanh(kappa) - 1 / kappa  # E[μ·x] for vMF on S²
        assert abs((x @ mu[0]).mean() - expected) < 0.01


def test_vmf_sets_are_seeded_and_polar_ones_stay_near_the_poles():
    a, b = vmf_mixture(SMALL_POLAR, seed=1), vmf_mixture(SMALL_POLAR, seed=1)
    assert np.array_equal(a.lonlat, b.lonlat) and np.array_equal(a.labels, b.labels)
    assert len(a) == 8 * 120 and a.num_classes == 8
    assert np.mean(np.abs(a.lonlat[:, 1]) > 65) > 0.95
    g = vmf_mixture("vmf-global", seed=0)
    assert np.mean(np.abs(g.lonlat[:, 1]) > 65) < 0.3
