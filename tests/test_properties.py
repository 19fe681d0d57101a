"""Property-based tests (hypothesis) over potentials, masses, spacings, boundaries, dimensions.

* the landscape: u > 0 and V_u >= min V (maximum principle), for any constant shift convention;
* the Hamiltonian: symmetric, an M-matrix (off-diagonal <= 0, rows dominated by V), and the
  matrix-free stencil equals the assembled matrix;
* the Agmon distance is a metric up to the documented discretisation error (module notes of
  :mod:`mottscape.agmon`): 0 on the source and across zero-metric regions (up to the metric
  floor), symmetric and satisfying the triangle inequality within one cell's h * max(w);
* sigma_LL >= 0, and the flags are consistent with the numbers;
* the symmetries of eq. (3): V -> V + c with E_F -> E_F + c shifts every energy by c and leaves
  sigma unchanged; spacing -> lam * spacing with energies / lam^2 leaves rho_omega unchanged
  and scales sigma by lam^(2 - d); mass -> mu * mass with energies / mu leaves sigma unchanged.

The examples are derandomized (the same examples on every run, so CI is reproducible); set
``MOTTSCAPE_HYPOTHESIS_SCALE=10`` to explore ten times as many.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import mottscape as ms
from mottscape.agmon import FLOOR

SCALE = float(os.environ.get("MOTTSCAPE_HYPOTHESIS_SCALE", "1"))


def fast(n: int):
    return settings(max_examples=max(1, int(n * SCALE)), deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.differing_executors])


# ---------------------------------------------------------------------- strategies
@dataclass(frozen=True)
class Sample:
    V: np.ndarray
    spacing: tuple[float, ...]
    mass: float | np.ndarray
    boundary: str

    @property
    def ndim(self) -> int:
        return self.V.ndim

    def kwargs(self) -> dict:
        return dict(spacing=self.spacing, mass=self.mass, boundary=self.boundary)


MAX_SIDE = {1: 40, 2: 12, 3: 6}


@st.composite
def samples(draw, max_side=MAX_SIDE, mass_maps: bool = True, blocks: bool = True):
    """A random potential (i.i.d. or blocky, any offset and scale), spacing, mass, boundary."""
    d = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(2, max_side[d])) for _ in range(d))
    spacing = tuple(draw(st.floats(0.3, 3.0)) for _ in range(d))
    boundary = draw(st.sampled_from(["dirichlet", "periodic"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    width = draw(st.floats(0.05, 20.0))
    offset = draw(st.floats(-50.0, 50.0))
    block = draw(st.integers(1, 3)) if blocks else 1
    coarse = rng.uniform(0.0, 1.0, tuple(-(-n // block) for n in shape))
    for a in range(d):
        coarse = np.repeat(coarse, block, axis=a)
    V = offset + width * coarse[tuple(slice(0, n) for n in shape)]
    if np.ptp(V) == 0:  # periodic and flat: H is singular (an InputError, see test_errors)
        boundary = "dirichlet"
    if mass_maps and draw(st.booleans()):
        mass = rng.uniform(0.2, 5.0, shape)
    else:
        mass = draw(st.floats(0.2, 5.0))
    return Sample(V, spacing, mass, boundary)


def fermi_between_levels(vu: np.ndarray, q: float) -> float:
    """An energy near quantile ``q`` of V_u, in the middle of a gap between its values wider
    than 1e-8 of their scale, so that no value lies within round-off of it (no ties between
    cells that are equal by symmetry)."""
    v = np.sort(np.ravel(vu))
    gaps = np.flatnonzero(np.diff(v) > 1e-8 * (1.0 + np.abs(v).max()))
    if gaps.size == 0:  # a flat landscape: above every cell
        return float(v[-1]) + 1.0
    k = gaps[np.argmin(np.abs(gaps - q * (v.size - 1)))]
    return 0.5 * float(v[k] + v[k + 1])


def scale_of(V) -> float:
    return 1.0 + float(np.max(np.abs(V)))


# ---------------------------------------------------------------------- Hamiltonian
@fast(100)
@given(samples())
def test_hamiltonian_symmetric_m_matrix_and_matvec_equals_matrix(s):
    ham = ms.build_hamiltonian(s.V, **s.kwargs())
    A = ham.matrix("csr")
    assert abs(A - A.T).max() == 0.0
    off = A - sp.diags_array(A.diagonal())
    assert off.max() <= 0.0  # hopping terms are negative: an M-matrix
    # each row sums to V plus the (non-negative) Dirichlet boundary terms
    rows = np.asarray(A.sum(axis=1)).ravel()
    assert np.all(rows >= s.V.ravel() - 1e-12 * scale_of(A.diagonal()))
    if s.boundary == "periodic":
        np.testing.assert_allclose(rows, s.V.ravel(), atol=1e-12 * scale_of(A.diagonal()))
    x = np.random.default_rng(0).standard_normal(ham.size)
    np.testing.assert_allclose(ham.matvec(x), A @ x, rtol=1e-12,
                               atol=1e-12 * scale_of(A.diagonal()) * np.abs(x).max())
    np.testing.assert_allclose(ham.matvec(x.reshape(ham.shape)).ravel(), A @ x, rtol=1e-12,
                               atol=1e-12 * scale_of(A.diagonal()) * np.abs(x).max())


# ---------------------------------------------------------------------- landscape
@fast(100)
@given(samples(), st.floats(0.0, 10.0))
def test_u_positive_and_effective_potential_above_min_v(s, extra_shift):
    tol = 1e-9 * scale_of(s.V)
    land = ms.solve_landscape(s.V, **s.kwargs())
    assert np.all(land.u > 0)
    assert land.effective_potential.min() >= s.V.min() - tol
    # Another shift convention: the maximum principle u <= 1/min(V + shift) is not trivial.
    shifted = ms.solve_landscape(s.V, **s.kwargs(), shift=-s.V.min() + extra_shift + 1e-3)
    assert np.all(shifted.u > 0)
    assert shifted.effective_potential.min() >= s.V.min() - tol
    assert np.all(np.isfinite(land.eigenvalue_estimates()))
    assert land.eigenvalue_estimates().min() >= s.V.min() - tol


@fast(60)
@given(samples(), st.floats(-100.0, 100.0))
def test_constant_shift_moves_every_landscape_energy_by_c(s, c):
    a = ms.solve_landscape(s.V, **s.kwargs())
    b = ms.solve_landscape(s.V + c, **s.kwargs())
    tol = 1e-9 * (scale_of(s.V) + abs(c))
    np.testing.assert_allclose(b.effective_potential, a.effective_potential + c, rtol=0, atol=tol)
    np.testing.assert_allclose(b.eigenvalue_estimates(), a.eigenvalue_estimates() + c, rtol=0,
                               atol=tol)
    E = fermi_between_levels(a.effective_potential, 0.3)
    ba, bb = ms.find_basins(a, E), ms.find_basins(b, E + c)
    np.testing.assert_array_equal(ba.labels, bb.labels)
    np.testing.assert_allclose(bb.energies, ba.energies + c, rtol=0, atol=tol)


# ---------------------------------------------------------------------- Agmon metric
def cell_mask(shape, cell) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[cell] = True
    return m


@st.composite
def landscapes_with_cells(draw):
    s = draw(samples())
    land = ms.solve_landscape(s.V, **s.kwargs())
    E = fermi_between_levels(land.effective_potential, draw(st.floats(0.0, 0.5)))
    cells = [tuple(draw(st.integers(0, n - 1)) for n in s.V.shape) for _ in range(3)]
    return s, land, E, cells


@fast(100)
@given(landscapes_with_cells())
def test_agmon_distance_is_a_metric_within_the_discretisation_error(args):
    s, land, E, (a, b, c) = args
    w = land.agmon_metric(E)
    one_cell = max(s.spacing) * float(w.max())  # the documented error scale, h * max(w)
    # plus what the floor of the metric adds along a path (w = 0 everywhere above every V_u)
    one_cell += FLOOR * max(float(w.max()), 1.0 / max(land.grid.lengths)) * sum(land.grid.lengths)
    fa = ms.agmon_distance(land, E, cell_mask(s.V.shape, a))
    fb = ms.agmon_distance(land, E, cell_mask(s.V.shape, b))
    for f, src in ((fa, a), (fb, b)):
        assert f[src] == 0.0
        assert np.all(f >= 0) and np.all(np.isfinite(f))
    if s.ndim == 1:  # exact kernel: the trapezoid rule is symmetric
        assert fa[b] == pytest.approx(fb[a], rel=1e-12, abs=1e-12 * one_cell + 1e-300)
    else:
        assert abs(fa[b] - fb[a]) <= 1.25 * one_cell + 1e-12
    # triangle inequality rho(a, c) <= rho(a, b) + rho(b, c)
    assert fa[c] <= fa[b] + fb[c] + 0.5 * one_cell + 1e-12
    # never more than the straight path's cost through the worst cells (+ the scheme's error)
    grid = land.grid
    r = float(np.linalg.norm(grid.displacement(grid.positions(np.array([a])),
                                               grid.positions(np.array([b])))))
    assert fa[b] <= 1.25 * r * float(w.max()) + one_cell


@fast(60)
@given(landscapes_with_cells())
def test_agmon_distance_is_zero_inside_a_basin_and_symmetric_between_basins(args):
    s, land, E, _ = args
    basins = ms.find_basins(land, E)
    w = land.agmon_metric(E)
    floor = FLOOR * max(float(w.max()), 1.0 / max(land.grid.lengths))
    path = sum(land.grid.lengths)  # longest path through a basin: bounded by its box's perimeter
    for i in range(min(basins.n, 3)):
        inside = basins.mask(i)
        start = tuple(np.argwhere(inside)[0])
        f = ms.agmon_distance(land, E, cell_mask(s.V.shape, start))
        assert f[inside].max() <= 2 * floor * path
    if basins.n >= 2:
        one_cell = max(s.spacing) * float(w.max())
        fi = ms.agmon_distance(land, E, basins.mask(0))
        fj = ms.agmon_distance(land, E, basins.mask(1))
        rho_ij, rho_ji = fi[basins.mask(1)].min(), fj[basins.mask(0)].min()
        assert abs(rho_ij - rho_ji) <= one_cell + 1e-12
        assert rho_ij > 0  # two basins are separated by cells above E
        pd = ms.basin_distances(land, basins, sources=[0, 1])
        assert pd.lookup(0, 1) == pytest.approx(min(rho_ij, rho_ji), rel=1e-9)


@fast(60)
@given(st.integers(2, 3), st.integers(0, 2**32 - 1), st.floats(0.3, 3.0),
       st.sampled_from(["dirichlet", "periodic"]))
def test_basins_joined_by_a_zero_metric_corridor_are_at_distance_zero(d, seed, h, boundary):
    """The cells of a random walk set below E form one zero-metric region: rho from its first
    cell is 0 (up to the metric floor) all along it, however far it wanders."""
    rng = np.random.default_rng(seed)
    shape = (9,) * d
    vu = rng.uniform(1.0, 3.0, shape)
    cell = np.array([int(rng.integers(0, 9)) for _ in range(d)])
    walk = [tuple(cell)]
    for _ in range(int(rng.integers(3, 30))):
        axis, step = int(rng.integers(0, d)), int(rng.choice([-1, 1]))
        cell[axis] = np.clip(cell[axis] + step, 0, 8)
        walk.append(tuple(cell))
    for c in walk:
        vu[c] = 0.2
    E = 0.5
    land = ms.Landscape.from_effective_potential(vu, spacing=h, boundary=boundary)
    w = land.agmon_metric(E)
    f = ms.agmon_distance(land, E, cell_mask(shape, walk[0]))
    corridor = np.zeros(shape, bool)
    for c in walk:
        corridor[c] = True
    assert f[walk[-1]] <= FLOOR * float(w.max()) * len(walk) * h * 2
    assert np.all(f[corridor] <= FLOOR * float(w.max()) * len(walk) * h * 2)
    # and positive off it: at least a fraction of one cell's h * w (the scheme's treatment of
    # the jump of the metric at the corridor's edge)
    outside = ~corridor
    assert f[outside].min() >= 0.25 * h * float(w[outside].min())


# ---------------------------------------------------------------------- sigma
DIMS = pytest.mark.parametrize("d", [1, 2, 3])


@st.composite
def pipeline_inputs(draw, d):
    """A block potential of dimension d, E_F in its band tail, and Mott scales rho_omega at
    which a small sample holds pairs (the frequencies follow from a probe run)."""
    shape = {1: (draw(st.integers(200, 600)),), 2: (draw(st.integers(16, 36)),) * 2,
             3: (draw(st.integers(10, 16)),) * 3}[d]
    block = draw(st.integers(1, 3 if d < 3 else 2))  # enough basins for pairs
    seed = draw(st.integers(0, 2**32 - 1))
    width = draw(st.floats(1.0, 8.0))
    V = ms.disorder.block(shape, block=block, width=width, seed=seed)
    q = draw(st.floats(0.03, 0.15))
    rho = draw(st.floats(1.2, 2.5)) + np.cumsum([draw(st.floats(0.3, 1.2)) for _ in range(4)])
    pairs = draw(st.sampled_from(["window", "sigma_omega"]))
    mott = draw(st.sampled_from(["lambertw", "log"]))
    return V, q, rho[::-1], pairs, mott


def _run(V, ef, omega, pairs, mott, **kw):
    return ms.run_pipeline(V, ef, omega, pairs=pairs, mott_scale_method=mott, estimator="eq17",
                           **kw).dataset


def _fermi(V, q, **kw):
    land = ms.solve_landscape(V, **kw)
    return fermi_between_levels(land.effective_potential, q)


def _omegas(V, ef, rho, **kw):
    """Frequencies hbar omega = 2 Delta_xi exp(-rho) (eq. 12 inverted). Delta_xi depends on the
    frequency window (through V_F), so it is taken from a probe run with the first guess."""
    omega = np.array([1e-9])
    for _ in range(2):
        delta = float(ms.run_pipeline(V, ef, omega, estimator="eq17", **kw).dataset.delta_xi)
        omega = 2.0 * delta * np.exp(-np.asarray(rho))
    return omega


def _inputs(args, **kw):
    V, q, rho, pairs, mott = args
    ef = _fermi(V, q, **kw)
    return V, ef, _omegas(V, ef, rho, **kw), pairs, mott


@DIMS
@fast(20)
@given(data=st.data())
def test_sigma_is_non_negative_and_flags_are_consistent(d, data):
    V, ef, omega, pairs, mott = _inputs(data.draw(pipeline_inputs(d)))
    ds = _run(V, ef, omega, pairs, mott)
    event(f"pairs in the shell at {int((ds.n_pairs > 0).sum())} of {omega.size} omegas")
    s_ll, s_mb = ds.sigma_ll.values, ds.sigma_mb.values
    assert np.all((s_ll >= 0) | (np.isnan(s_ll) & ~np.isfinite(ds.rho_omega.values)))
    assert np.all((s_mb >= 0) | np.isnan(s_mb))
    assert np.all(ds.moment.values >= 0) and np.all(ds.n_pairs.values >= 0)
    np.testing.assert_array_equal(ds.flag_no_pairs, ds.n_pairs == 0)
    if pairs == "sigma_omega":  # the states used at each omega are Sigma_omega
        np.testing.assert_array_equal(ds.flag_sigma_omega_tiny, ds.n_states < 2)
    else:  # the window estimator uses every state of the widest window at every omega
        assert np.all(ds.flag_sigma_omega_tiny.values == (int(ds.n_sources) < 2))
    valid = ds.valid.values
    assert np.all(np.isfinite(s_ll[valid])) and np.all(ds.rho_omega.values[valid] > 1)
    assert np.all(s_ll[valid] > 0)  # pairs in the shell give a positive sigma


def _assert_same_physics(a, b, sigma_factor=1.0, rtol=1e-6):
    np.testing.assert_allclose(b.rho_omega, a.rho_omega, rtol=1e-8)
    np.testing.assert_array_equal(b.n_states, a.n_states)
    np.testing.assert_array_equal(b.n_pairs, a.n_pairs)
    np.testing.assert_array_equal(b.valid, a.valid)
    np.testing.assert_allclose(b.sigma_ll, sigma_factor * a.sigma_ll, rtol=rtol, atol=0)
    np.testing.assert_allclose(b.sigma_mb, sigma_factor * a.sigma_mb, rtol=rtol, atol=0)
    event(f"compared sigma_LL > 0 at {int((a.sigma_ll > 0).sum())} omegas")


@DIMS
@fast(12)
@given(data=st.data(), c=st.floats(-100.0, 100.0))
def test_energy_shift_leaves_sigma_unchanged_and_shifts_energies(d, data, c):
    V, ef, omega, pairs, mott = _inputs(data.draw(pipeline_inputs(d)))
    a = ms.run_pipeline(V, ef, omega, pairs=pairs, mott_scale_method=mott, estimator="eq17")
    b = ms.run_pipeline(V + c, ef + c, omega, pairs=pairs, mott_scale_method=mott,
                        estimator="eq17")
    _assert_same_physics(a.dataset, b.dataset)
    tol = 1e-9 * (scale_of(V) + abs(c))
    np.testing.assert_allclose(b.landscape.effective_potential,
                               a.landscape.effective_potential + c, rtol=0, atol=tol)
    np.testing.assert_allclose(b.basins.energies, a.basins.energies + c, rtol=0, atol=tol)
    np.testing.assert_allclose(b.landscape.eigenvalue_estimates(),
                               a.landscape.eigenvalue_estimates() + c, rtol=0, atol=tol)
    assert float(b.dataset.nu) == pytest.approx(float(a.dataset.nu), rel=1e-8)


@DIMS
@fast(12)
@given(data=st.data(), lam=st.floats(0.2, 5.0))
def test_length_rescaling_scales_sigma_by_lam_to_the_2_minus_d(d, data, lam):
    """spacing -> lam h with every energy / lam^2 is H / lam^2 on a stretched sample."""
    V, ef, omega, pairs, mott = _inputs(data.draw(pipeline_inputs(d)))
    a = _run(V, ef, omega, pairs, mott)
    b = _run(V / lam**2, ef / lam**2, omega / lam**2, pairs, mott, spacing=lam)
    _assert_same_physics(a, b, sigma_factor=lam ** (2 - d))
    assert float(b.xi) == pytest.approx(lam * float(a.xi), rel=1e-6, nan_ok=True)
    assert float(b.delta_xi) == pytest.approx(float(a.delta_xi) / lam**2, rel=1e-8)


@DIMS
@fast(12)
@given(data=st.data(), mu=st.floats(0.2, 5.0), as_map=st.booleans())
def test_mass_rescaling_leaves_sigma_unchanged(d, data, mu, as_map):
    """mass -> mu m with every energy / mu is H / mu (a mass map scales the same way)."""
    args = data.draw(pipeline_inputs(d))
    m = np.random.default_rng(1).uniform(0.5, 2.0, args[0].shape) if as_map else 1.0
    V, ef, omega, pairs, mott = _inputs(args, mass=m)
    a = _run(V, ef, omega, pairs, mott, mass=m)
    b = _run(V / mu, ef / mu, omega / mu, pairs, mott, mass=mu * np.asarray(m))
    _assert_same_physics(a, b)
