"""Multi-region training's batch-mixing rule (RegionMix) and the --adapt duration parser."""

from __future__ import annotations

import numpy as np
import pytest

from geoseek.capabilities.common.regions import Deadline, DeadlineReached, RegionMix, parse_duration
from geoseek.errors import InvalidInputError


@pytest.mark.parametrize("rule,weights", [("sqrt", [10.0, 5.0, 1.0]), ("uniform", [1.0, 1.0, 1.0]), ("size", [100.0, 25.0, 1.0])])
def test_region_mix_draws_every_region_in_the_documented_proportions(rule, weights):
    mix = RegionMix([100, 25, 1], rule)
    expected = np.asarray(weights) / sum(weights)
    assert np.allclose(mix.p, expected)
    rng = np.random.default_rng(0)
    counts = np.stack([mix.counts(24, rng) for _ in range(3000)])
    assert (counts.sum(1) == 24).all()  # every batch is full
    totals = counts.sum(0)
    assert (totals > 0).all()  # every region drawn, even the one-scene region
    share = totals / totals.sum()
    assert np.abs(share - expected).max() < 0.01  # 72,000 draws: the standard error is under 0.002


def test_region_mix_refuses_bad_input():
    with pytest.raises(InvalidInputError):
        RegionMix([10, 0])
    with pytest.raises(InvalidInputError):
        RegionMix([10, 5], "proportional")
    with pytest.raises(InvalidInputError):
        RegionMix([])


def test_parse_duration():
    assert parse_duration("30s") == 30 and parse_duration("10m") == 600 and parse_duration("1h") == 3600
    assert parse_duration("1h30m") == 5400 and parse_duration("90") == 90 and parse_duration("0") == 0
    assert parse_duration(None) == 0 and parse_duration("2.5m") == 150
    for bad in ("ten minutes", "-5s", "5x", ""):
        with pytest.raises(InvalidInputError):
            parse_duration(bad)


def test_deadline():
    d = Deadline(0.0)
    assert d.passed()
    with pytest.raises(DeadlineReached):
        d.check()
    assert not Deadline(60).passed()


def test_held_out_regions_by_name_or_stem_in_the_regions_order():
    from pathlib import Path

    import pytest

    from geoseek.capabilities.common.loo import held_out_regions
    from geoseek.errors import InvalidInputError

    rs = [Path("d/malta-2018-08.osm.pbf"), Path("d/porto.osm.pbf"), Path("d/moscow.osm.pbf")]
    assert held_out_regions(rs, None) == rs
    assert held_out_regions(rs, ["moscow.osm.pbf", "malta-2018-08"]) == [rs[0], rs[2]]
    with pytest.raises(InvalidInputError, match="atlantis"):
        held_out_regions(rs, ["atlantis"])
