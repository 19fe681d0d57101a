"""basin_distances on worker processes gives the same pairs as in the calling process."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest

import mottscape as ms
from mottscape import agmon
from mottscape.errors import InputError


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="worker processes need fork")
def test_workers_give_the_same_pairs():
    V = np.random.default_rng(3).uniform(0.0, 4.0, (96, 96))
    land = ms.solve_landscape(V)
    basins = ms.find_basins(land, float(np.quantile(land.effective_potential, 0.15)))
    src = np.arange(min(basins.n, 150))
    one = agmon.basin_distances(land, basins, sources=src, bound=5.0, workers=1)
    two = agmon.basin_distances(land, basins, sources=src, bound=5.0, workers=2)
    assert one.i.size > 0
    np.testing.assert_array_equal(one.i, two.i)
    np.testing.assert_array_equal(one.j, two.j)
    np.testing.assert_array_equal(one.rho, two.rho)


def test_default_workers_and_bad_values():
    assert agmon._search_workers(None, agmon.POOL_MIN_SOURCES - 1) == 1
    assert agmon._search_workers(None, 10 * agmon.POOL_MIN_SOURCES, ndim=1) == 1
    assert agmon._search_workers(3, 10) == 3
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InputError, match="workers"):
            agmon._search_workers(bad, 10)
