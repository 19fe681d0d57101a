"""The compiled bounded multi-source fast marching (mottscape._agmon_kernels, eqs. 9-12).

It reimplements scikit-fmm's travel-time marcher: its fields must equal scikit-fmm's to
rounding, meet the same accuracy against exact geodesics, and basin_distances must give the
pairs the per-source scikit-fmm searches gave.
"""

from __future__ import annotations

import numpy as np
import pytest

from mottscape import _agmon_kernels as K
from mottscape import find_basins, make_grid, solve_landscape
from mottscape.agmon import basin_distances, distance_field, floored_metric


def kernel_field(w, grid, source, order=2, bound=np.inf):
    """Distance from a boolean mask by the compiled kernel (inf beyond ``bound``)."""
    wf = floored_metric(np.asarray(w, float), grid).ravel()
    lab = source.astype(np.int64).ravel()
    s3 = np.ones(3, np.int64)
    s3[3 - grid.ndim:] = grid.shape
    h3 = np.ones(3)
    h3[3 - grid.ndim:] = grid.spacing
    out = K.march_field(wf, lab, 1, s3, bool(grid.periodic), h3, order, bound)
    return out.reshape(grid.shape)


def _random_metric(shape, seed):
    rng = np.random.default_rng(seed)
    w = np.abs(rng.normal(1.0, 0.4, shape))
    w[w < 0.7] = 0.0  # zero-metric "basins" that paths cross for free
    return w


@pytest.mark.parametrize("shape", [(48, 40), (14, 16, 12)])
@pytest.mark.parametrize("boundary", ["dirichlet", "periodic"])
@pytest.mark.parametrize("order", [1, 2])
def test_field_equals_scikit_fmm(shape, boundary, order):
    grid = make_grid(shape, spacing=[0.7, 1.1, 0.9][:len(shape)], boundary=boundary)
    w = _random_metric(shape, 1)
    src = np.zeros(shape, bool)
    src[(slice(2, 5),) * len(shape)] = True
    src[(slice(8, 9),) * len(shape)] = True  # a second component
    ref = distance_field(w, grid, src, order=order)
    got = kernel_field(w, grid, src, order=order)
    assert np.all(got[src] == 0.0)
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9)
    # bounded: the cells scikit-fmm's bounded search reaches, with the unbounded values (at
    # order 2 a few cells just below the bound depend on cells beyond it and stay unreached,
    # in both codes: the second-order stencil is not causal)
    bound = 0.4 * float(np.max(ref))
    got_b = kernel_field(w, grid, src, order=order, bound=bound)
    ref_b = distance_field(w, grid, src, order=order, bound=bound)
    np.testing.assert_array_equal(np.isfinite(got_b), np.isfinite(ref_b))
    fin = np.isfinite(got_b)
    assert np.all(got_b[fin] <= bound) and fin.sum() > 0.9 * (ref <= bound).sum()
    np.testing.assert_allclose(got_b[fin], ref[fin], rtol=1e-7, atol=1e-9)


def _two_well_metrics():
    """Mirror-symmetric 2D metrics of two square wells 20 cells apart (many values tie): the
    piecewise-constant one (zero in the wells, 1.2 outside) and the landscape's at
    E = min V_u + 0.1 (continuous, as sqrt([V_u - E]_+) is)."""
    grid = make_grid((26, 56))
    V = np.ones(grid.shape)
    V[10:16, 12:18] = V[10:16, 38:44] = 0.0
    src = V == 0.0
    src[:, 28:] = False
    land = solve_landscape(V)
    jumps = np.where(V == 0.0, 0.0, 1.2)
    smooth = land.agmon_metric(float(np.min(land.effective_potential)) + 0.1)
    return grid, src, jumps, smooth


@pytest.mark.parametrize("order, metric, moved", [(1, "jumps", 1e-9), (1, "smooth", 1e-6),
                                                  (2, "smooth", 0.05), (2, "jumps", 0.5)])
def test_fields_follow_the_metric_at_ties(order, metric, moved):
    # Doubling the metric is exact in floating point, keeps every tie and doubles every
    # distance bit for bit. A rounding-level change (1e-13 relative) reorders the freezing of
    # tied cells and the field moves by more than rounding (documented in mottscape.agmon,
    # "Rounding-level changes of the input"; measured: 4e-12 and 5e-8 of one cell's
    # h max(w) at order 1, 0.012 on the landscape metric and 0.31 on the piecewise-constant
    # one at order 2, behind the second well, whose floored values nearly tie).
    grid, src, jumps, smooth = _two_well_metrics()
    w = {"jumps": jumps, "smooth": smooth}[metric]
    base = kernel_field(w, grid, src, order=order)
    np.testing.assert_array_equal(kernel_field(2.0 * w, grid, src, order=order), 2.0 * base)
    change = np.max(np.abs(kernel_field(w * (1.0 + 1e-13), grid, src, order=order) - base))
    assert change < moved * np.max(w)  # grid spacing 1


def test_constant_metric_point_source_accuracy_2d_3d():
    """Same error as documented for scikit-fmm (agmon module notes), one-cell sources."""
    n, w = 121, 0.7
    grid = make_grid((n, n))
    c = n // 2
    src = np.zeros((n, n), bool)
    src[c, c] = True
    idx = np.indices((n, n)) - c
    exact = w * np.sqrt((idx**2).sum(axis=0))
    far = exact >= 10 * w
    for order, mean_max, max_max in ((1, 0.02, 0.08), (2, 0.005, 0.03)):
        err = (kernel_field(np.full((n, n), w), grid, src, order)[far] - exact[far]) / exact[far]
        assert np.mean(np.abs(err)) < mean_max and np.max(np.abs(err)) < max_max
        assert err.min() > -1e-3
    n = 41  # the documented case: mean 2.4 %, max 12 % at r >= 5 h
    grid = make_grid((n,) * 3)
    src = np.zeros((n,) * 3, bool)
    src[20, 20, 20] = True
    idx = np.indices((n,) * 3) - 20
    exact = 0.5 * np.sqrt((idx**2).sum(axis=0))
    rho = kernel_field(np.full((n,) * 3, 0.5), grid, src, 2)
    far = exact >= 2.5
    err = (rho[far] - exact[far]) / exact[far]
    assert np.mean(np.abs(err)) < 0.03 and np.max(np.abs(err)) < 0.13
    np.testing.assert_allclose(rho[20, 20, :], 0.5 * np.abs(np.arange(n) - 20), atol=1e-5)


def test_hyperbolic_metric_exact_geodesics():
    """w = 1/y: rho = arccosh(1 + |r2 - r1|^2 / (2 y1 y2)); second order converges faster."""
    n, h = 161, 1.0 / 16
    grid = make_grid((n, n), spacing=h)
    X, Y = np.meshgrid(grid.coordinates(0), 1.0 + grid.coordinates(1), indexing="ij")
    i0, j0 = n // 2, n // 10
    src = np.zeros((n, n), bool)
    src[i0, j0] = True
    exact = np.arccosh(1 + ((X - X[i0, j0]) ** 2 + (Y - Y[i0, j0]) ** 2) / (2 * Y * Y[i0, j0]))
    far = exact > 1.0
    err = {o: np.abs(kernel_field(1.0 / Y, grid, src, o)[far] - exact[far]) / exact[far]
           for o in (1, 2)}
    assert np.mean(err[2]) < 0.005 and np.max(err[2]) < 0.012
    assert np.mean(err[1]) < 0.015
    assert np.mean(err[2]) < 0.5 * np.mean(err[1])


def _skfmm_pairs(land, basins, bound, order=2):
    """The former basin_distances: one windowed scikit-fmm search per source basin."""
    out = {}
    for i in range(basins.n):
        f = distance_field(land.agmon_metric(basins.level), land.grid, basins.mask(i),
                           bound=bound, order=order)
        for j in range(basins.n):
            if j != i:
                r = float(f[basins.labels == j + 1].min())
                key = (min(i, j), max(i, j))
                if r <= bound:
                    out[key] = min(out.get(key, np.inf), r)
    return out


def _block(shape, block, boundary, seed):
    rng = np.random.default_rng(seed)
    V = rng.uniform(0, 4, tuple(s // block for s in shape))
    for a in range(len(shape)):
        V = np.repeat(V, block, axis=a)
    land = solve_landscape(V, boundary=boundary)
    return land, find_basins(land, float(np.quantile(land.effective_potential, 0.07)))


@pytest.mark.parametrize("shape,block,boundary,seed",
                         [((48, 48), 3, "dirichlet", 2), ((48, 48), 3, "periodic", 3),
                          ((15, 15, 15), 3, "periodic", 4), ((15, 15, 15), 3, "dirichlet", 5)])
@pytest.mark.parametrize("order", [1, 2])
def test_basin_distances_equal_the_scikit_fmm_searches(shape, block, boundary, seed, order):
    land, basins = _block(shape, block, boundary, seed)
    assert basins.n >= 5
    bound = 4.0
    ref = _skfmm_pairs(land, basins, bound, order)
    pd = basin_distances(land, basins, bound=bound, order=order)
    got = {(int(a), int(b)): float(r) for a, b, r in zip(pd.i, pd.j, pd.rho, strict=True)}
    assert len(ref) >= 5
    edge = {k for k, r in {**ref, **got}.items() if abs(r - bound) < 1e-6}
    assert set(got) - edge == set(ref) - edge
    for k in set(got) & set(ref):
        assert got[k] == pytest.approx(ref[k], rel=1e-7, abs=1e-9)


def test_basin_cells_groups_cells_by_label():
    labels = np.array([0, 2, 1, 2, 0, 3, 1, 2], np.int64)
    cells, start = K.basin_cells(labels, 3)
    np.testing.assert_array_equal(start, [0, 2, 5, 6])
    np.testing.assert_array_equal(cells, [2, 6, 1, 3, 7, 5])


@pytest.mark.parametrize("shape,boundary", [((48, 48), "periodic"), ((15, 15, 15), "dirichlet")])
def test_march_pairs_never_reads_unset_scratch(shape, boundary):
    """dist and pos may come from np.empty (basin_distances allocates them so, to keep the
    pages a search never reaches out of memory): filled with garbage, the pairs are the same."""
    land, basins = _block(shape, 3, boundary, 6)
    grid = land.grid
    wf = floored_metric(land.agmon_metric(basins.level), grid).ravel()
    labels = basins.labels.astype(np.int64).ravel()
    cells, start = K.basin_cells(labels, basins.n)
    src = np.arange(basins.n)
    bounds = np.full(src.size, 4.0)
    wanted = np.ones(basins.n + 1, np.bool_)
    s3 = np.ones(3, np.int64)
    s3[3 - grid.ndim:] = grid.shape
    h3 = np.ones(3)
    h3[3 - grid.ndim:] = grid.spacing
    n = wf.size
    rng = np.random.default_rng(0)

    def scratch(garbage):
        dist = rng.uniform(-5, 5, n) if garbage else np.full(n, np.inf)
        pos = rng.integers(-5, n, n) if garbage else np.full(n, -1, np.int64)
        return (dist, np.zeros(n, np.uint8), pos, np.empty(n, np.int64), np.empty(n),
                np.empty(n, np.int64), np.empty(n, np.int64))

    args = (wf, labels, cells, start, src, bounds, wanted, s3, bool(grid.periodic), h3, 2)
    clean = K.march_pairs(*args, *scratch(False))
    dirty = K.march_pairs(*args, *scratch(True))
    assert clean[0].size >= 5
    for a, b in zip(clean, dirty, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape,boundary", [((48, 48), "periodic"), ((15, 15, 15), "dirichlet")])
def test_fields_marched_into_shared_arrays_equal_fresh_ones(shape, boundary):
    """The tubes march every source into one set of grid-sized arrays, resetting only the
    cells the previous search touched: each field equals the one marched on fresh arrays,
    whatever the sources before it (here every basin in turn, with bounds that differ)."""
    land, basins = _block(shape, 3, boundary, 6)
    grid = land.grid
    wf = floored_metric(land.agmon_metric(basins.level), grid).ravel()
    labels = basins.labels.astype(np.int64).ravel()
    cells, start = K.basin_cells(labels, basins.n)
    s3 = np.ones(3, np.int64)
    s3[3 - grid.ndim:] = grid.shape
    h3 = np.ones(3)
    h3[3 - grid.ndim:] = grid.spacing
    n = wf.size
    dist, flag = np.full(n, np.inf), np.zeros(n, np.uint8)
    work = (np.full(n, -1, np.int64), np.empty(n, np.int64), np.empty(n),
            np.empty(n, np.int64), np.empty(n, np.int64))
    nt = 0
    assert basins.n >= 5
    for b in range(basins.n):
        bound = 2.0 + 3.0 * (b % 3)
        K.reset_touched(nt, work[1], dist, flag)
        nt = K.march_field_into(wf, labels, cells[start[b]:start[b + 1]], b + 1, s3,
                                bool(grid.periodic), h3, 2, bound, dist, flag, *work)
        fresh = K.march_field(wf, labels, b + 1, s3, bool(grid.periodic), h3, 2, bound)
        np.testing.assert_array_equal(dist, fresh)
        assert np.isfinite(fresh).sum() > (start[b + 1] - start[b])
