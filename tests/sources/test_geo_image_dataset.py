"""The GIMI dataset pieces: spectral classes, raster chip labels, OSM tile labels, the spatial split."""

import numpy as np
import pytest

from geoseek.sources.geo_image_dataset import (
    GeoImageSample,
    block_split,
    clusters_for,
    raster_chip_samples,
    spectral_classes,
)


def test_spectral_classes_are_ordered_by_greenness():
    rng = np.random.default_rng(0)
    stats = np.concatenate([rng.normal([b, 0.1, g], 0.01, size=(20, 3)) for b, g in ((0.2, 0.3), (0.8, -0.2), (0.5, 0.05))])
    cls = spectral_classes(stats, 3, seed=0)
    # the group with GRVI -0.2 is c0, 0.05 is c1, 0.3 is c2
    assert (cls[20:40] == 0).all() and (cls[40:] == 1).all() and (cls[:20] == 2).all()
    assert clusters_for(738) == 4 and clusters_for(48) == 3 and clusters_for(36) == 2


def test_raster_chips_get_labels_and_locations(shared_data):
    samples, images = raster_chip_samples(shared_data / "imagery" / "neon" / "OSBS_029.tif", chip_px=64, image_size=32)
    assert len(samples) == 36 and len(images) == 36
    assert images[0].shape == (32, 32, 3)
    assert {s.label for s in samples} == {"neon:c0", "neon:c1"}
    lon, lat = samples[0].lonlat
    assert -82.0 < lon < -81.98 and 29.69 < lat < 29.7


def test_block_split_is_seeded_spatial_and_covers_every_source():
    samples = [GeoImageSample(f"{src}/{r}_{c}", src, "x", (0.0, 0.0), (0, 0, 1, 1), "l", (r, c))
               for src in ("a", "b") for r in range(20) for c in range(20)]
    block_split(samples, seed=3)
    splits = [s.split for s in samples]
    for src in ("a", "b"):
        part = [s.split for s in samples if s.source == src]
        frac = {k: part.count(k) / len(part) for k in ("train", "val", "test")}
        assert frac["train"] == pytest.approx(0.6, abs=0.06) and frac["test"] == pytest.approx(0.2, abs=0.06)
    # cells of one 4×4 block share a split
    a = {s.cell: s.split for s in samples if s.source == "a"}
    assert len({a[(r, c)] for r in range(4) for c in range(4)}) == 1
    again = [GeoImageSample(s.id, s.source, s.kind, s.lonlat, s.footprint, s.label, s.cell) for s in samples]
    block_split(again, seed=3)
    assert [s.split for s in again] == splits
    block_split(again, seed=4)
    assert [s.split for s in again] != splits
