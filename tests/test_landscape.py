"""The landscape solve (eq. 2) and the landscape law (refs. [28-30])."""

import math

import numpy as np
import pytest

import mottscape as ms
from mottscape.landscape import free_idos


@pytest.mark.parametrize("V0,N,h", [(0.3, 40, 1.0), (2.0, 101, 0.2), (0.05, 300, 1.0)])
def test_constant_potential_1d_box_closed_form(V0, N, h):
    """V = V0 in a Dirichlet box: u_i = (1 - cosh(k (i - c)) / cosh(k (N + 1)/2)) / V0,
    with cosh k = 1 + V0 h^2 / 2 (the exact discrete solution; ghost cells at i = -1, N)."""
    land = ms.solve_landscape(np.full(N, V0), spacing=h, shift=0.0)
    kappa = math.acosh(1 + V0 * h**2 / 2)
    i = np.arange(N)
    exact = (1 - np.cosh(kappa * (i - (N - 1) / 2)) / np.cosh(kappa * (N + 1) / 2)) / V0
    np.testing.assert_allclose(land.u, exact, rtol=1e-10)
    assert land.converged


def test_constant_potential_continuum_limit():
    """The discrete u converges to the continuum (1 - cosh(k(x - L/2)) / cosh(k L/2)) / V0."""
    V0, L = 1.0, 10.0
    errs = []
    for n in (100, 200):
        h = L / n
        # walls at the ghost centres
        land = ms.solve_landscape(np.full(n - 1, V0), spacing=h, shift=0.0)
        x = (np.arange(n - 1) + 1) * h
        exact = (1 - np.cosh(math.sqrt(V0) * (x - L / 2)) / np.cosh(math.sqrt(V0) * L / 2)) / V0
        errs.append(np.abs(land.u - exact).max())
    assert errs[1] < errs[0] / 3.5  # second order in h


@pytest.mark.parametrize("shape", [(30,), (12, 10), (6, 5, 4)])
def test_periodic_constant_potential_gives_flat_landscape(shape):
    land = ms.solve_landscape(np.full(shape, 0.7), boundary="periodic", shift=0.3)
    np.testing.assert_allclose(land.effective_potential, 0.7, rtol=1e-10)
    with pytest.raises(ms.InputError, match="shift > 0"):
        ms.solve_landscape(np.full(shape, 0.7), boundary="periodic")


@pytest.mark.parametrize("solver", ["direct", "cg", "amg", "stencil", "mg", "stencil-cg"])
def test_solvers_agree(solver):
    rng = np.random.default_rng(3)
    V = rng.uniform(0, 4, (40, 30))
    ref = ms.solve_landscape(V, solver="direct").u
    land = ms.solve_landscape(V, solver=solver, tol=1e-12)
    np.testing.assert_allclose(land.u, ref, rtol=1e-9)
    assert land.residual < 1e-10


def test_negative_potential_is_shifted_and_reported_unshifted():
    rng = np.random.default_rng(4)
    V = rng.uniform(-2, 1, (25, 20))
    land = ms.solve_landscape(V)
    assert land.shift == pytest.approx(-V.min())
    ref = ms.solve_landscape(V + land.shift, shift=0.0)
    np.testing.assert_allclose(land.effective_potential, ref.effective_potential - land.shift)
    assert np.all(land.u > 0)
    # The landscape law is evaluated in the frame of V: a shift of E by the shift.
    assert land.idos(0.5) == pytest.approx(ref.idos(0.5 + land.shift))


@pytest.mark.parametrize("c", [-3.0, 0.5, 10.0])
def test_default_shift_makes_results_covariant(c):
    """V -> V + c moves V_u, the landscape law and the eigenvalue estimates by c."""
    rng = np.random.default_rng(8)
    V = rng.uniform(0, 4, (30, 20))
    a, b = ms.solve_landscape(V), ms.solve_landscape(V + c)
    np.testing.assert_allclose(b.effective_potential, a.effective_potential + c, atol=1e-9)
    np.testing.assert_allclose(b.eigenvalue_estimates(), a.eigenvalue_estimates() + c,
                               atol=1e-9)
    assert b.idos(1.0 + c) == pytest.approx(a.idos(1.0))


def test_bad_shift():
    with pytest.raises(ms.InputError, match="shift"):
        ms.solve_landscape(np.array([-1.0, 2.0, 3.0]), shift=0.5)


def test_u_positive_and_effective_potential_above_min_v():
    rng = np.random.default_rng(5)
    V = rng.uniform(0, 4, (8, 9, 7))
    land = ms.solve_landscape(V)
    assert np.all(land.u > 0)
    assert land.effective_potential.min() >= V.min()


def test_lattice_free_idos_matches_exact_count_2d():
    """Landscape law of a flat periodic sample = IDOS of the clean lattice (counted exactly)."""
    L, c = 64, 0.5
    land = ms.solve_landscape(np.full((L, L), c), boundary="periodic", shift=1.0)
    k = 2 * np.pi * np.arange(L) / L
    eps = (2 - 2 * np.cos(k))[:, None] + (2 - 2 * np.cos(k))[None, :]
    for E in (0.6, 1.0, 2.5, 4.5):
        exact = np.count_nonzero(eps.ravel() + c <= E) / L**2
        assert land.idos(E) == pytest.approx(exact, abs=0.01 + 0.05 * exact)


def test_lattice_and_continuum_laws_agree_at_low_energy_and_fine_grids():
    grid = ms.make_grid((10, 10), spacing=0.05)
    for e in (0.5, 2.0):
        lat = free_idos(np.array([e]), grid, ms.LATTICE, "lattice")[0]
        con = free_idos(np.array([e]), grid, ms.LATTICE, "continuum")[0]
        assert lat == pytest.approx(con, rel=0.01)
    grid1 = ms.make_grid((10,), spacing=1.0)
    e = 1.0  # 1D closed form: arccos(1 - e/2)/pi
    assert free_idos(np.array([e]), grid1, ms.LATTICE)[0] == pytest.approx(
        math.acos(1 - e / 2) / math.pi, rel=1e-3)


def test_dos_is_derivative_of_idos():
    rng = np.random.default_rng(6)
    land = ms.solve_landscape(np.repeat(rng.uniform(0, 4, 200), 4))
    for disp in ("lattice", "continuum"):
        object.__setattr__(land, "dispersion", disp)
        E, dE = 0.8, 1e-3
        fd = (land.idos(E + dE) - land.idos(E - dE)) / (2 * dE)
        assert land.dos(E) == pytest.approx(fd, rel=0.02)


def test_eigenvalue_estimate_of_a_single_well():
    """(1 + d/4) min V_u approximates the ground state of a deep well (ref. [30])."""
    V = np.full(200, 4.0)
    V[80:120] = 0.0
    land = ms.solve_landscape(V, spacing=0.25)
    est = land.eigenvalue_estimates()[0]
    exact = np.linalg.eigvalsh(land.hamiltonian.matrix().toarray())[0]
    assert est == pytest.approx(exact, rel=0.1)


def test_convergence_failure_raises_with_residual():
    rng = np.random.default_rng(7)
    V = rng.uniform(0, 0.01, (60, 60))
    with pytest.raises(ms.ConvergenceError, match="residual") as info:
        ms.solve_landscape(V, solver="cg", maxiter=2)
    assert info.value.residual > 1e-10
    land = ms.solve_landscape(V, solver="cg", maxiter=2, on_failure="flag")
    assert not land.converged
