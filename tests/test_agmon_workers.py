"""basin_distances' ``workers`` argument is accepted, validated and has no effect."""

from __future__ import annotations

import numpy as np
import pytest

import mottscape as ms
from mottscape import agmon
from mottscape.errors import InputError


def test_workers_give_the_same_pairs(monkeypatch):
    V = np.random.default_rng(3).uniform(0.0, 4.0, (64, 64))
    land = ms.solve_landscape(V)
    basins = ms.find_basins(land, float(np.quantile(land.effective_potential, 0.15)))
    src = np.arange(min(basins.n, 150))
    one = agmon.basin_distances(land, basins, sources=src, bound=5.0, workers=1)
    assert one.i.size > 0
    for workers in (None, 2):
        two = agmon.basin_distances(land, basins, sources=src, bound=5.0, workers=workers)
        np.testing.assert_array_equal(one.i, two.i)
        np.testing.assert_array_equal(one.j, two.j)
        np.testing.assert_array_equal(one.rho, two.rho)
    # with a progress bar the sources run in batches: same pairs
    monkeypatch.setattr(agmon, "_BATCH", 16)
    three = agmon.basin_distances(land, basins, sources=src, bound=5.0, progress=True)
    np.testing.assert_array_equal(one.rho, three.rho)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="workers"):
            agmon.basin_distances(land, basins, sources=src, bound=5.0, workers=bad)
