"""Tests of the overlapping-box exact reference (method="boxes") and the Sample entry point."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import mottscape as ms
from mottscape.errors import ConvergenceError, InputError
from mottscape.exact import (
    Box,
    _boxes,
    _fermi,
    _velocity_x2,
    count_eigenvalues_below,
    exact_dos,
    exact_eigenstates,
    finish_exact,
    kubo_greenwood,
    lowest_eigenvalues,
    make_boxes,
    plan_exact,
    position_matrix,
    solve_box,
    solve_piece,
)
from mottscape.sample import make_sample

EDGES = np.geomspace(1e-3, 0.5, 12)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """One BLAS thread: the machine is shared, and threaded eigh slows down under load."""
    with threadpool_limits(1):
        yield


def tail_energy(sample, fraction):
    """An energy with about ``fraction`` of the spectrum below it (between two levels)."""
    w = np.linalg.eigvalsh(sample.hamiltonian.matrix().toarray())
    k = int(fraction * w.size)
    return 0.5 * float(w[k] + w[k + 1])


def reference_with_cutoff(sample, ef, e_edges, cutoff):
    """Dense eigenstates; the KG bin sums (eq. 4) over pairs with centroid distance <= cutoff.

    Position form of eq. (5) (velocity form if periodic), T = 0; internal units (no
    sigma_factor).
    """
    g = sample.grid
    E, P = exact_eigenstates(sample, ef - e_edges[-1], ef + e_edges[-1], method="dense")
    wgt = P * P
    if g.periodic:  # velocity form; centroids by circular mean, distances by minimum image
        X2 = _velocity_x2(sample.hamiltonian, P, P, E[None, :] - E[:, None])
        cen = []
        for a in range(g.ndim):
            L = g.shape[a] * g.spacing[a]
            ang = 2 * np.pi * np.indices(g.shape)[a].ravel() / g.shape[a]
            phi = np.arctan2(np.sin(ang) @ wgt, np.cos(ang) @ wgt)
            cen.append(np.mod(phi / (2 * np.pi), 1.0) * L + 0.5 * g.spacing[a])
        cen = np.stack(cen, axis=1)
        Lv = np.asarray(g.shape) * np.asarray(g.spacing)
        disp = cen[:, None, :] - cen[None, :, :]
        disp -= Lv * np.round(disp / Lv)
    else:
        X = position_matrix(P, g)
        X2 = np.sum(X * X, axis=0)
        coords = np.stack([m.ravel() for m in np.meshgrid(
            *[g.coordinates(a) for a in range(g.ndim)], indexing="ij")])
        cen = (coords @ wgt).T
        disp = cen[:, None, :] - cen[None, :, :]
    dist = np.sqrt(np.sum(disp * disp, axis=-1))
    f = _fermi(E, ef, 0.0)
    out = np.zeros(e_edges.size - 1)
    for i in range(E.size):
        for j in range(E.size):
            w = E[j] - E[i]
            if w < e_edges[0] or w >= e_edges[-1] or f[i] <= f[j] or dist[i, j] > cutoff:
                continue
            k = np.searchsorted(e_edges, w, side="right") - 1
            out[k] += (2 * np.pi * w / (g.ndim * g.volume) * (f[i] - f[j]) * X2[i, j]
                       / (e_edges[k + 1] - e_edges[k]))
    return out


@pytest.fixture(scope="module")
def anderson_2d():
    s = make_sample(ms.disorder.anderson((48, 48), width=20, seed=2))
    return s, tail_energy(s, 0.05)


def _rel(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(a - b) / np.abs(b)


# ----------------------------------------------------------------------------- agreement
#: Boxes agree with full diagonalisation to RTOL (relative) in every *resolved* bin: sigma above
#: 1e-5 of the largest bin and less than FAR of it from pairs farther apart than the padding.
RTOL = 1e-6
FAR = _boxes.RESOLVED_FAR

# (shape, boundary, W, fraction of the spectrum below E_F, padding, core): strongly localized
# band tails (1D Anderson W = 5, 2D W = 20, 3D W = 100), boxes smaller than the sample.
CASES = {
    "1d-periodic": ((600,), "periodic", 5, 0.1, 30, 60),
    "2d-dirichlet": ((48, 48), "dirichlet", 20, 0.05, 12, 12),
    "2d-periodic": ((48, 48), "periodic", 20, 0.05, 12, 12),
    "3d-dirichlet": ((16, 16, 16), "dirichlet", 100, 0.02, 4, 5),
}


def resolved_bins(boxes, full):
    sig, far = boxes.sigma.values, boxes.sigma_beyond_padding.values
    ref = full.sigma.values
    return (ref > 1e-5 * ref.max()) & (far < FAR * sig)


@pytest.mark.parametrize("case", list(CASES))
def test_boxes_agree_with_full(case):
    """Boxes against the full dense diagonalisation (velocity form of eq. 5 if periodic)."""
    shape, bc, W, frac, padding, core = CASES[case]
    s = make_sample(ms.disorder.anderson(shape, width=W, seed=3), boundary=bc)
    ef = tail_energy(s, frac)
    full = kubo_greenwood(s, ef, EDGES, method="dense")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no box left unconverged
        b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=padding, core=core)
    assert b.attrs["method"] == "boxes" and b.attrs["n_boxes"] > 1
    assert b.attrs["box_max_residual"] <= 1e-5
    assert int(b.n_states) == int(full.n_states) > 20
    np.testing.assert_array_equal(b.n_pairs.values, full.n_pairs.values)
    ok = resolved_bins(b, full)
    assert ok.sum() >= 3, case
    assert _rel(b.sigma.values[ok], full.sigma.values[ok]).max() < RTOL
    # the part from far pairs is part of sigma, never more
    assert np.all(b.sigma_beyond_padding.values <= b.sigma.values * (1 + 1e-12))


def test_explicit_cutoff_equals_restricted_sum(anderson_2d):
    """With pair_cutoff the boxes give the dense KG sum over the pairs within the cutoff."""
    s, ef = anderson_2d
    b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=12, core=12, pair_cutoff=6.0)
    ref = reference_with_cutoff(s, ef, EDGES, 6.0)
    sig = b.sigma.values / s.units.sigma_factor(s.ndim)
    big = ref > 1e-6 * ref.max()
    assert big.sum() >= 3
    assert _rel(sig[big], ref[big]).max() < RTOL
    assert b.n_pairs_left_out.values.sum() > 0


def test_zero_cutoff_keeps_no_pair(anderson_2d):
    s, ef = anderson_2d
    b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=6, core=16, pair_cutoff=0.0)
    np.testing.assert_array_equal(b.sigma.values, 0.0)
    np.testing.assert_array_equal(b.n_pairs_left_out.values, b.n_pairs.values)


# ----------------------------------------------------------------------------- counting
def test_states_per_energy_window_match_inertia_counts(anderson_2d):
    """Every sub-window holds as many box states as the inertia count of the full H: a
    state kept twice and another lost elsewhere would show here (the window total cannot
    see it)."""
    s, ef = anderson_2d
    lo, hi = ef - 0.5, ef + 0.5
    E, _ = exact_eigenstates(s, lo, hi, method="boxes", padding=8, core=12)
    edges = np.linspace(lo, hi, 9)
    counts = np.diff(count_eigenvalues_below(s, edges))
    np.testing.assert_array_equal(np.histogram(E, edges)[0], counts)
    assert counts.sum() > 30 and np.count_nonzero(counts) >= 6
    Ed, _ = exact_eigenstates(s, lo, hi, method="dense")
    np.testing.assert_allclose(E, Ed, atol=1e-9)


def _corrupt(monkeypatch, duplicate: bool, drop: bool):
    """Make the boxes copy one kept state into the next box that keeps states, and/or drop
    one state of a later box (and every box's spares)."""
    real = _boxes.solve_box
    seen = []

    def corrupted(*args, **kwargs):
        res = real(*args, **kwargs)
        if drop:  # no neighbour's spare may stand in for the dropped state
            res.spares = None
        b = res.block
        if b is None:
            return res
        seen.append(res)
        if duplicate and len(seen) == 2:  # the first state of box 1 also kept by box 2
            a = seen[0].block
            pos = np.searchsorted(b.index, a.index)
            inside = (pos < b.index.size) & (b.index[np.minimum(pos, b.index.size - 1)]
                                             == a.index)
            col = np.zeros(b.index.size)
            col[pos[inside]] = a.vectors[inside, 0]
            res.block = type(b)(b.start, b.stop, np.append(b.energies, a.energies[0]),
                                np.column_stack([b.vectors, col]),
                                np.vstack([b.centroids, a.centroids[:1]]), index=b.index)
        if drop and len(seen) == 4 and b.energies.size > 1:
            res.block = type(b)(b.start, b.stop, b.energies[1:], b.vectors[:, 1:],
                                b.centroids[1:], index=b.index)
        return res

    monkeypatch.setattr(_boxes, "solve_box", corrupted)


def test_state_kept_twice_is_merged(anderson_2d, monkeypatch):
    s, ef = anderson_2d
    clean = kubo_greenwood(s, ef, EDGES, method="boxes", padding=20, core=12)
    _corrupt(monkeypatch, duplicate=True, drop=False)
    b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=20, core=12)
    assert b.attrs["box_duplicates"] == 1
    np.testing.assert_allclose(b.sigma.values, clean.sigma.values, rtol=1e-9, atol=0)


def test_state_kept_twice_and_one_lost_is_caught(anderson_2d, monkeypatch):
    """A copy and a loss leave the window total right; the merge removes the copy, and the
    inertia count then sees the loss (and the boxes are solved again, wider)."""
    s, ef = anderson_2d
    _corrupt(monkeypatch, duplicate=True, drop=True)
    with pytest.warns(RuntimeWarning, match="inertia count"):
        b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=10, core=12)
    assert b.attrs["box_widened_from"] == 10


def test_missing_state_is_detected(anderson_2d, monkeypatch):
    """A box that loses a state is caught by the inertia count of the full H: the pieces of a
    study raise, kubo_greenwood solves the boxes again with twice the padding."""
    s, ef = anderson_2d
    _corrupt(monkeypatch, duplicate=False, drop=True)
    plan = plan_exact(s, ef, EDGES, method="boxes", padding=6, core=16)
    pieces = [solve_piece(s.hamiltonian, plan, k) for k in range(plan.n_pieces)]
    with pytest.raises(ConvergenceError, match="inertia count"):
        finish_exact(s, plan, pieces, ef, EDGES)
    _corrupt(monkeypatch, duplicate=False, drop=True)
    with pytest.warns(RuntimeWarning, match="inertia count"):
        b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=6, core=16)
    assert b.attrs["box_widened_from"] == 6


def _block_of(energies, vectors, index):
    vectors = np.asarray(vectors, float)
    return _boxes._Block(int(min(index)), int(max(index)) + 1, np.asarray(energies, float),
                         vectors / np.linalg.norm(vectors, axis=0),
                         np.zeros((len(energies), 2)), index=np.asarray(index))


def test_copies_interleaved_in_energy_with_another_state_are_merged():
    """Box 2 holds a copy of box 0's state; box 1's state (orthogonal, elsewhere) lies
    between the two copies in energy. The earliest box's copy is kept."""
    g = ms.grid.Grid((8, 8), (1.0, 1.0))
    a = _block_of([1.0], [[1.0], [2.0], [0.0]], [0, 1, 2])
    b = _block_of([1.0 + 1e-9], [[1.0], [1.0]], [40, 41])
    c = _block_of([1.0 + 2e-9, 1.3], [[1.0, 0.0], [2.0, 0.0], [0.1, 1.0]], [0, 1, 3])
    out, dropped = _boxes.merge_duplicates([a, b, c], g, 1.0)
    np.testing.assert_array_equal(dropped, [0, 0, 1])
    assert [blk.energies.tolist() for blk in out] == [[1.0], [1.0 + 1e-9], [1.3]]


GAUSSIAN_EDGES = np.geomspace(5e-3, 0.1, 7)
GAUSSIAN_WINDOW = (-1.286, -1.086)  # E_F = -1.186 and the top edge 0.1


def _gaussian_96(seed):
    return ms.disorder.gaussian((96, 96), correlation_length=3.0, amplitude=1.0, seed=seed)


def _assert_same_states(V, padding):
    """The boxes' window eigenpairs are the whole-sample shift-invert ones."""
    E, P = exact_eigenstates(V, *GAUSSIAN_WINDOW, method="shift-invert")
    Eb, Pb = exact_eigenstates(V, *GAUSSIAN_WINDOW, method="boxes", padding=padding)
    np.testing.assert_allclose(Eb, E, atol=1e-9, rtol=0)
    np.testing.assert_allclose(np.abs(np.sum(Pb * P, axis=0)), 1.0, atol=1e-6)


def test_a_state_pushed_out_of_the_window_by_its_box_is_found(monkeypatch):
    """Smooth field: a state at -1.2831 whose owner box (padding 8) cuts off a partner that
    repelled it; the box copy falls to -1.2860, below the window's lower edge -1.286, and no
    box grew for it. The band around the window brings it back."""
    V = _gaussian_96(3)
    _assert_same_states(V, padding=8)
    monkeypatch.setattr(_boxes, "EDGE_BAND", 0.0)
    with pytest.warns(RuntimeWarning, match="inertia count.*padding=16"):
        exact_eigenstates(V, *GAUSSIAN_WINDOW, method="boxes", padding=8)


def test_a_state_its_owner_misses_is_recovered_from_a_neighbour(monkeypatch):
    """At padding 4 one window state is converged only by a box next to its owner (its
    centroid within NEAR_CORE cells of that box's core): it is kept once, from the spares."""
    V = _gaussian_96(3)
    b = kubo_greenwood(V, -1.186, GAUSSIAN_EDGES, method="boxes", padding=4)
    assert b.attrs["box_recovered"] >= 1
    _assert_same_states(V, padding=4)
    real = _boxes.solve_box

    def without_spares(*args, **kwargs):
        res = real(*args, **kwargs)
        res.spares = None
        return res

    monkeypatch.setattr(_boxes, "solve_box", without_spares)
    with pytest.warns(RuntimeWarning, match="inertia count.*padding=8"):
        exact_eigenstates(V, *GAUSSIAN_WINDOW, method="boxes", padding=4)


def test_boxes_that_lose_a_state_are_solved_again_with_twice_the_padding(anderson_2d,
                                                                         monkeypatch):
    """A state lost by the boxes at padding 6 (dropped on purpose, spares too) fails the
    inertia count; the boxes are solved again at padding 12, with a warning, and give the
    numbers of a plain run at 12. A loss at every padding still raises."""
    s, ef = anderson_2d
    clean = kubo_greenwood(s, ef, EDGES, method="boxes", padding=12, core=16)
    real = _boxes.solve_box

    def losing(ham, box, *args, **kwargs):
        res = real(ham, box, *args, **kwargs)
        if box.padding == 6 or always:
            res.spares = None
            if res.block is not None and box.core_lo == (16, 16):
                b = res.block
                res.block = type(b)(b.start, b.stop, b.energies[1:], b.vectors[:, 1:],
                                    b.centroids[1:], index=b.index)
        return res

    always = False
    monkeypatch.setattr(_boxes, "solve_box", losing)
    with pytest.warns(RuntimeWarning, match="padding=12"):
        b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=6, core=16)
    assert b.attrs["box_widened_from"] == 6 and b.attrs["box_padding"] == 12
    np.testing.assert_array_equal(b.sigma.values, clean.sigma.values)
    always = True
    with pytest.raises(ConvergenceError, match="inertia count"), \
            pytest.warns(RuntimeWarning, match="padding=12"):
        kubo_greenwood(s, ef, EDGES, method="boxes", padding=6, core=16)


# ----------------------------------------------------------------------------- padding
def test_small_padding_is_detected_and_enlarged(anderson_2d):
    """Starting from 1 cell of padding, boxes whose states leak grow until the residual
    against the full H is below box_tol; the result still matches dense."""
    s, ef = anderson_2d
    b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=1, core=12, pair_cutoff=1e9,
                       box_tol=1e-8)
    assert b.attrs["box_retries"] > 0
    assert b.attrs["box_max_padding"] > 1
    assert b.attrs["box_max_residual"] <= 1e-8


def test_boxes_grow_only_the_faces_that_leak(anderson_2d):
    """A box regrows on the faces its states leak through, not on every face."""
    s, ef = anderson_2d
    lo, hi = ef - 0.5, ef + 0.5
    grown = []
    for box in make_boxes(s.grid, 12, 2):
        r = solve_box(s.hamiltonian, box, lo, hi, tol=1e-8)
        assert r.residual <= 1e-8
        if r.box.grow is not None:
            grown.append(np.asarray(r.box.grow))
    assert grown, "padding 2 should be too small somewhere"
    # some box grew on fewer than all of its four faces
    assert any(np.count_nonzero(g) < g.size for g in grown)


def test_face_growth_follows_the_decay():
    """A decaying state cut by the upper (Dirichlet) face of a 1D box, exp(-kappa |x - 30|)
    minus its image in the wall (zero one cell beyond the box): the growth brings its leak
    below the target, on that face only, and is not much more than needed."""
    g = make_sample(np.zeros(64)).grid
    axes = [np.arange(10, 40)]
    kappa, target = 0.8, 1e-6
    x = axes[0].astype(float)
    psi = (np.exp(-kappa * np.abs(x - 30.0)) - np.exp(-kappa * (50.0 - x)))[:, None]
    psi /= np.linalg.norm(psi)
    growth = _boxes._face_growth(g, axes, psi, 1.0, target)
    assert growth[0, 0] == 0 and growth[0, 1] > 0
    leak = float(psi[-1, 0])
    assert leak * np.exp(-kappa * growth[0, 1]) < target
    assert leak * np.exp(-kappa * (growth[0, 1] - 2)) > target  # not much more than needed


def test_boxes_repeat_bit_for_bit():
    """The same box solved first or after others gives the same bits (fixed Lanczos start)."""
    s = make_sample(ms.disorder.anderson((60, 60), width=20, seed=5))
    ef = tail_energy(s, 0.06)
    boxes = make_boxes(s.grid, 20, 10)  # the centre box has 40^2 cells: shift-invert
    first = solve_box(s.hamiltonian, boxes[4], ef - 0.5, ef + 0.5, density=0.01)
    for box in boxes[:4]:
        solve_box(s.hamiltonian, box, ef - 0.5, ef + 0.5, density=0.01)
    again = solve_box(s.hamiltonian, boxes[4], ef - 0.5, ef + 0.5, density=0.01)
    assert first.block is not None and first.factorisations > 0
    np.testing.assert_array_equal(first.block.energies, again.block.energies)
    np.testing.assert_array_equal(first.block.vectors, again.block.vectors)


def test_solve_box_is_an_independent_task(anderson_2d):
    """Boxes solved one by one (as tasks) own every window state exactly once."""
    s, ef = anderson_2d
    lo, hi = ef - 0.2, ef + 0.2
    ham = s.hamiltonian
    n_lo, n_hi = count_eigenvalues_below(s, [lo, hi])
    boxes = make_boxes(s.grid, 16, 8)
    assert len(boxes) == 9 and isinstance(boxes[0], Box)
    results = [solve_box(ham, box, lo, hi) for box in boxes]
    kept = np.sort(np.concatenate([r.block.energies for r in results if r.block is not None]))
    assert kept.size == n_hi - n_lo
    Ed, _ = exact_eigenstates(s, lo, hi, method="dense")
    np.testing.assert_allclose(kept, Ed, atol=1e-9)
    for r in results:
        if r.block is not None:  # centroids lie in the core of the owning box
            idx = r.block.centroids - 0.5
            assert np.all(idx >= np.array(r.box.core_lo) - 0.5)
            assert np.all(idx < np.array(r.box.core_hi) - 0.5 + 1e-12)


# ----------------------------------------------------------------------------- Sample API
def test_sample_and_array_calls_agree():
    V = ms.disorder.anderson((14, 12), width=20, seed=7)
    s = make_sample(V, spacing=2.0, mass=0.5)
    ef = tail_energy(s, 0.2)
    a = kubo_greenwood(V, ef, EDGES, spacing=2.0, mass=0.5)
    b = kubo_greenwood(s, ef, EDGES)
    np.testing.assert_array_equal(a.sigma.values, b.sigma.values)
    np.testing.assert_array_equal(lowest_eigenvalues(s, 5),
                                  lowest_eigenvalues(V, 5, spacing=2.0, mass=0.5))
    edges = np.linspace(ef - 1, ef + 1, 5)
    np.testing.assert_array_equal(exact_dos(s, edges).idos.values,
                                  exact_dos(V, edges, spacing=2.0, mass=0.5).idos.values)
    np.testing.assert_array_equal(count_eigenvalues_below(s, edges),
                                  count_eigenvalues_below(s.hamiltonian, edges))


def test_boxes_in_1d_are_segments():
    V = ms.disorder.anderson(600, width=3, seed=1)
    s = make_sample(V)
    ef = tail_energy(s, 0.1)
    b = kubo_greenwood(s, ef, np.geomspace(1e-3, 0.2, 6), method="boxes", core=100, padding=60)
    assert b.attrs["method"] == "segments"
    t = kubo_greenwood(s, ef, np.geomspace(1e-3, 0.2, 6), method="tridiagonal")
    np.testing.assert_allclose(b.sigma.values, t.sigma.values, rtol=1e-8,
                               atol=1e-12 * t.sigma.values.max())


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"core": 0}, r"core=0 must be a whole number of cells >= 1"),
    ({"padding": -1}, r"padding=-1 must be a whole number of cells >= 0"),
    ({"padding": 2.5}, r"padding=2.5 must be a whole number of cells"),
    ({"padding": "wide"}, r"padding must be a whole number of cells, got 'wide'"),
    ({"box_tol": -1.0}, r"box_tol=-1.0 must be > 0 .*the default is 1e-05"),
    ({"box_tol": 0.0}, r"box_tol=0.0 must be > 0"),
    ({"pair_cutoff": -1.0}, r"pair_cutoff=-1.0 must be >= 0"),
])
def test_box_arguments_are_checked(kwargs, pattern):
    s = make_sample(ms.disorder.anderson((10, 10), width=20, seed=1))
    with pytest.raises(InputError, match=pattern):
        kubo_greenwood(s, 5.0, EDGES, method="boxes", **kwargs)


def test_periodic_box_larger_than_sample_is_refused():
    s = make_sample(ms.disorder.anderson((20, 20), width=20, seed=1), boundary="periodic")
    with pytest.raises(InputError, match=r"smaller than the sample.*core \+ 2 \* padding = 26 "
                                         r">= 20 cells along axis 0; pass a smaller core= or "
                                         r"padding="):
        kubo_greenwood(s, 5.0, EDGES, method="boxes", core=10, padding=8)


def test_padding_that_cannot_grow_is_reported():
    """Periodic 32^2 at 8 % of the spectrum: a state needs more padding than a box smaller
    than the sample allows; the boxes warn and record it instead of failing silently."""
    s = make_sample(ms.disorder.anderson((32, 32), width=20, seed=4), boundary="periodic")
    ef = tail_energy(s, 0.08)
    with pytest.warns(RuntimeWarning, match="exceeds box_tol"):
        b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=8, core=8)
    assert b.attrs["box_unconverged"] >= 1
    assert b.attrs["box_max_residual"] > 1e-5


@pytest.mark.slow
def test_boxes_3d_24_agree_with_shift_invert():
    """24^3 Anderson W = 100 (13824 cells): boxes against global shift-invert slicing."""
    s = make_sample(ms.disorder.anderson((24, 24, 24), width=100, seed=3))
    ef = 8.0
    si = kubo_greenwood(s, ef, EDGES, method="shift-invert")
    b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=8, core=8)
    assert b.attrs["n_boxes"] == 27
    assert int(b.n_states) == int(si.n_states) > 100
    np.testing.assert_array_equal(b.n_pairs.values, si.n_pairs.values)
    ok = resolved_bins(b, si)
    assert ok.sum() >= 3
    assert _rel(b.sigma.values[ok], si.sigma.values[ok]).max() < RTOL
    assert math.isfinite(b.attrs["box_max_residual"])


@pytest.mark.slow
def test_boxes_3d_periodic_agree_with_shift_invert():
    """24^3 periodic Anderson W = 100: boxes (position form, unwrapped inside each box)
    against global shift-invert slicing (velocity form of eq. 5). On 16^3-20^3 periodic
    samples the boxes cannot grow enough (a box must stay smaller than the sample): a few
    resonant tail states need 9-10 cells of padding."""
    s = make_sample(ms.disorder.anderson((24, 24, 24), width=100, seed=3), boundary="periodic")
    w = lowest_eigenvalues(s, 140)
    ef = 0.5 * float(w[-2] + w[-1])
    si = kubo_greenwood(s, ef, EDGES, method="shift-invert")
    assert si.attrs["matrix_elements"].startswith("velocity")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no box left unconverged
        b = kubo_greenwood(s, ef, EDGES, method="boxes", padding=5, core=6)
    assert b.attrs["n_boxes"] == 64 and b.attrs["box_max_residual"] <= 1e-5
    assert int(b.n_states) == int(si.n_states) > 100
    np.testing.assert_array_equal(b.n_pairs.values, si.n_pairs.values)
    ok = resolved_bins(b, si)
    assert ok.sum() >= 3
    assert _rel(b.sigma.values[ok], si.sigma.values[ok]).max() < RTOL


@pytest.mark.parametrize("shape,boundary", [((40, 36), "dirichlet"), ((40, 36), "periodic"),
                                            ((12, 10, 9), "periodic"), ((300,), "periodic")])
def test_box_submatrix_equals_scipys_selection(shape, boundary):
    """The boxes' submatrices of H, wrapped boxes included, entry for entry and in scipy's
    order (the factorisations downstream then do not change)."""
    from mottscape.exact._common import box_submatrix

    s = make_sample(np.random.default_rng(0).uniform(0, 4, shape), boundary=boundary)
    A, g = s.hamiltonian.matrix("csr"), s.hamiltonian.grid
    for box in make_boxes(g, 4, 2):
        local = np.stack([m.ravel() for m in np.meshgrid(*box.support(g), indexing="ij")])
        idx = np.ravel_multi_index(tuple(local % np.array(g.shape)[:, None]), g.shape)
        ref, got = A[idx][:, idx], box_submatrix(A, idx)
        for a, b in ((ref.indptr, got.indptr), (ref.indices, got.indices), (ref.data, got.data)):
            np.testing.assert_array_equal(b, a)
    # a row without entries (a zero diagonal and no neighbour in the box) is kept empty
    B = sp.csr_array(np.array([[0.0, 0, 1], [0, 2, 0], [1, 0, 3]]))
    np.testing.assert_array_equal(box_submatrix(B, np.array([0, 1])).toarray(), [[0, 0], [0, 2]])
