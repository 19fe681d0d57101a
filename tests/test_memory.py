"""The memory savings of the pipeline (issue 13, item 3) change no number.

Each saving replaced an expression by the same operations done in place, a copy by a view,
a dtype by a narrower one, or freed pages the code never reads again. These tests compare
each result, bit for bit, with the plain code it replaced, so that a later saving that
rounds differently or reads released memory fails here, not in a study.
"""

from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pytest

import mottscape as ms
from mottscape import agmon, solvers
from mottscape.hamiltonian import build_hamiltonian
from mottscape.landscape import free_idos
from mottscape.sample import make_sample


@pytest.fixture(scope="module")
def land3():
    """A small 3D Anderson sample in the localized regime, solved by the stencil solver."""
    V = np.random.default_rng(5).uniform(0.0, 20.0, (40, 40, 40))
    return ms.solve_landscape(V, solver="stencil")


def test_in_place_fields_equal_the_plain_expressions(land3):
    vu, u = land3.effective_potential, land3.u
    E = float(np.quantile(vu, 0.1))
    np.testing.assert_array_equal(vu, 1.0 / u - land3.shift)
    plain = np.sqrt(np.maximum(vu - E, 0.0) * land3.mass / land3.units.kinetic)
    np.testing.assert_array_equal(land3.agmon_metric(E), plain)
    dn = free_idos((E - vu) * land3.mass, land3.grid, land3.units, land3.dispersion,
                   derivative=True)
    assert land3.dos(E) == float(np.mean(land3.mass * dn))


def test_uniform_mass_is_a_view_and_h_is_not_kept():
    V = np.random.default_rng(1).uniform(0.0, 4.0, (32, 32))
    sample = make_sample(V, mass=0.5)
    assert not any(sample.mass.strides) and not sample.mass.flags.writeable
    assert np.all(sample.mass == 0.5)
    ham = sample.landscape_hamiltonian
    assert "hamiltonian" not in sample.__dict__  # H itself was built for the sum, not kept
    np.testing.assert_array_equal(ham.diagonal, sample.hamiltonian.diagonal + sample.shift)


def _plain_cg(ham, tol, maxiter):
    """The Jacobi-CG of ``solvers._cg`` as it was written before the in-place rewrite."""
    shape3 = solvers._shape3(ham.shape)
    D = np.ascontiguousarray(ham.diagonal, dtype=float).reshape(shape3)
    S = 1.0 / np.sqrt(D)
    b3 = np.ones(shape3)
    bnorm = float(np.linalg.norm(b3))
    direction, update, apply = solvers._cg_operators(ham, D, S)
    x = b3 / D
    work = np.empty(shape3)
    iterations, target, previous = 0, tol, math.inf
    while True:
        apply(x, work)
        r = S * (b3 - work)
        y = x / S
        true_res = float(np.linalg.norm(b3 - work)) / bnorm
        if true_res <= tol or iterations >= maxiter:
            return x.reshape(ham.shape), iterations, true_res
        stop = target * float(np.linalg.norm(S * b3))
        rr = float(np.vdot(r, r))
        p, p_new, beta = np.zeros(shape3), work, 0.0
        while iterations < maxiter and math.sqrt(rr) > stop:
            pq = direction(r, p, p_new, beta)
            p, p_new = p_new, p
            if pq <= 0.0:
                break
            alpha = rr / pq
            rr_new = update(p, y, r, alpha)
            beta, rr = rr_new / rr, rr_new
            iterations += 1
        work = p_new
        x = S * y
        apply(x, work)
        true_res = float(np.linalg.norm(b3 - work)) / bnorm
        if true_res <= tol or iterations >= maxiter or true_res > 0.5 * previous:
            return x.reshape(ham.shape), iterations, true_res
        previous = true_res
        target *= 0.5 * tol / true_res


@pytest.mark.parametrize("mass", [1.0, "map"])
def test_in_place_cg_gives_the_plain_iterates(mass):
    rng = np.random.default_rng(2)
    V = rng.uniform(0.0, 4.0, (48, 40))
    m = rng.uniform(0.5, 2.0, V.shape) if mass == "map" else mass
    ham = build_hamiltonian(V, mass=m)
    for tol in (1e-10, 1e-14):  # 1e-14 restarts the CG at least once
        got = solvers.solve_stencil(ham, method="cg", tol=tol)
        u, it, res = _plain_cg(ham, tol, solvers._default_maxiter(ham))
        np.testing.assert_array_equal(got.u, u)
        assert (got.iterations, got.residual) == (it, res)


@pytest.mark.parametrize("method", ["cg", "mg"])
def test_default_rhs_view_equals_an_array_of_ones(method):
    V = np.random.default_rng(4).uniform(0.0, 4.0, (64, 48))
    ham = build_hamiltonian(V)
    a = solvers.solve_stencil(ham, method=method)
    b = solvers.solve_stencil(ham, np.ones(ham.shape), method=method)
    np.testing.assert_array_equal(a.u, b.u)
    assert (a.iterations, a.residual) == (b.iterations, b.residual)


def test_released_scratch_and_int32_labels_change_no_distance(land3, monkeypatch):
    """Pages handed back between batches and int32 labels give the same pairs as before."""
    basins = ms.find_basins(land3, float(np.quantile(land3.effective_potential, 0.1)))
    assert basins.labels.dtype == np.int32
    src = np.arange(min(basins.n, 200))
    monkeypatch.setattr(agmon, "_BATCH", 8)  # many batches, so many releases per thread
    got = agmon.basin_distances(land3, basins, sources=src, bound=6.0, workers=2)
    assert got.i.size > 0
    # as before: int64 labels and scratch arrays that keep their pages
    monkeypatch.setattr(agmon._Scratch, "release", lambda self, below=None: None)
    wide = dataclasses.replace(basins, labels=basins.labels.astype(np.int64))
    monkeypatch.setattr(agmon, "_kernel_labels",
                        lambda labels, nb: np.ascontiguousarray(labels).ravel())
    ref = agmon.basin_distances(land3, wide, sources=src, bound=6.0, workers=1)
    for a, b in ((got.i, ref.i), (got.j, ref.j), (got.rho, ref.rho)):
        np.testing.assert_array_equal(a, b)


def test_unbounded_searches_keep_the_thread_memory_rule():
    cells = agmon.THREAD_MEMORY // agmon.SCRATCH_BYTES_PER_CELL + 1
    assert agmon._search_threads(None, 10_000, cells, bounded=False) == 1
    assert agmon._search_threads(None, 10_000, cells, bounded=True) == min(
        agmon.MAX_THREADS, len(os.sched_getaffinity(0)))


@pytest.mark.skipif(not hasattr(__import__("mmap"), "MADV_DONTNEED"), reason="no madvise")
def test_scratch_release_below_hands_back_only_the_cell_pages_below():
    """release(below=c) zeroes (hands back) the by-cell arrays' pages before cell c, keeps the
    pages after it and every page of the by-slot arrays; release() hands back everything."""
    import mmap

    n = 8 * mmap.PAGESIZE
    s = agmon._Scratch(n)
    for a in s.arrays:
        a[:] = 7
    cut = 3 * mmap.PAGESIZE + 5  # not on a page boundary of any array
    s.release(below=cut)
    for k, a in enumerate(s.arrays):
        if k < agmon._Scratch.BY_CELL:
            edge = cut * a.itemsize // mmap.PAGESIZE * mmap.PAGESIZE // a.itemsize
            assert edge <= cut
            assert np.all(a[:edge] == 0) and np.all(a[cut:] == 7)
        else:
            assert np.all(a == 7)
    s.release()
    assert all(np.all(a == 0) for a in s.arrays)
