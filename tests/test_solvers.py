"""Tests of the matrix-free landscape solvers (:mod:`mottscape.solvers`)."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import scipy.sparse.linalg as spla

from mottscape.errors import InputError
from mottscape.hamiltonian import build_hamiltonian
from mottscape.solvers import (
    Multigrid,
    _level_matrix,
    choose_method,
    estimate_cg_iterations,
    solve_stencil,
    stencil_matvec,
)

SHAPES = {1: (37,), 2: (13, 10), 3: (7, 9, 6)}
SPACINGS = {1: (0.7,), 2: (0.7, 1.1), 3: (0.7, 1.1, 0.9)}


def _ham(d, boundary, random_mass, seed=0, vmin=0.2):
    rng = np.random.default_rng(seed)
    shape = SHAPES[d]
    V = rng.uniform(vmin, 3.0, shape)
    mass = rng.uniform(0.4, 2.5, shape) if random_mass else 1.3
    return build_hamiltonian(V, spacing=SPACINGS[d], mass=mass, boundary=boundary)


def _smooth_field(shape, corr_cells, seed=0):
    """Gaussian-correlated noise (FFT filter), unit variance, ``corr_cells`` cells per length."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=shape)
    k2 = sum(np.meshgrid(*[np.fft.fftfreq(n) ** 2 for n in shape], indexing="ij"))
    kernel = np.exp(-0.5 * k2 * (2 * np.pi * corr_cells) ** 2)
    f = np.real(np.fft.ifftn(np.fft.fftn(noise) * kernel))
    return f / f.std()


def _smooth_on(n, seed=0):
    """The same continuum field sampled at n cells per side (box [0, 6.4]^2), V in [1, ~10]."""
    base = _smooth_field((64, 64), 10.0, seed)
    # Fourier interpolation of the 64^2 field to n^2 keeps the continuum field fixed.
    F = np.fft.fftshift(np.fft.fft2(base))
    pad = (n - 64) // 2
    F = np.pad(F, pad)
    f = np.real(np.fft.ifft2(np.fft.ifftshift(F))) * (n / 64) ** 2
    return 1.0 + f**2, 6.4 / n


# --------------------------------------------------------------------- stencil = matrix
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("boundary", ["dirichlet", "periodic"])
@pytest.mark.parametrize("random_mass", [False, True])
def test_stencil_matvec_equals_assembled_matrix(d, boundary, random_mass):
    ham = _ham(d, boundary, random_mass)
    x = np.random.default_rng(1).normal(size=ham.shape)
    ref = (ham.matrix() @ x.ravel()).reshape(ham.shape)
    np.testing.assert_allclose(stencil_matvec(ham, x), ref, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("shape", [(1,), (2,), (1, 5), (2, 1, 3)])
@pytest.mark.parametrize("boundary", ["dirichlet", "periodic"])
def test_stencil_matvec_degenerate_axes(shape, boundary):
    rng = np.random.default_rng(2)
    ham = build_hamiltonian(rng.uniform(1, 2, shape), boundary=boundary,
                            mass=rng.uniform(0.5, 2, shape))
    x = rng.normal(size=shape)
    ref = (ham.matrix() @ x.ravel()).reshape(shape)
    np.testing.assert_allclose(stencil_matvec(ham, x), ref, rtol=1e-13, atol=1e-12)
    ham_u = build_hamiltonian(rng.uniform(1, 2, shape), boundary=boundary)
    ref = (ham_u.matrix() @ x.ravel()).reshape(shape)
    np.testing.assert_allclose(stencil_matvec(ham_u, x), ref, rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("shape", [(5, 37, 20), (3, 70, 9), (67, 300)])
@pytest.mark.parametrize("boundary", ["dirichlet", "periodic"])
def test_tiled_kernels_partial_tiles(shape, boundary):
    """Shapes whose row count is not a multiple of the kernels' tile height."""
    rng = np.random.default_rng(4)
    ham = build_hamiltonian(rng.uniform(0, 4, shape), spacing=0.8, boundary=boundary)
    x = rng.normal(size=shape)
    ref = (ham.matrix() @ x.ravel()).reshape(shape)
    np.testing.assert_allclose(stencil_matvec(ham, x), ref, rtol=1e-13, atol=1e-12)
    res = solve_stencil(ham, method="cg")
    true = np.linalg.norm(1.0 - ham.matrix() @ res.u.ravel()) / math.sqrt(ham.size)
    assert res.converged and true <= 1e-10


# --------------------------------------------------------------------- solves vs spsolve
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("boundary", ["dirichlet", "periodic"])
@pytest.mark.parametrize("random_mass", [False, True])
@pytest.mark.parametrize("method", ["cg", "mg"])
def test_solution_matches_sparse_direct(d, boundary, random_mass, method):
    ham = _ham(d, boundary, random_mass, seed=d)
    rhs = np.random.default_rng(3).uniform(0.5, 1.5, ham.shape)
    ref = spla.spsolve(ham.matrix("csc"), rhs.ravel()).reshape(ham.shape)
    # A tiny coarsest size forces a real hierarchy (odd sizes, semi-coarsening) on small grids.
    mg = Multigrid(ham, coarse_size=4) if method == "mg" else None
    res = solve_stencil(ham, rhs, method=method, tol=1e-10, multigrid=mg)
    assert res.converged and res.method == method
    true = np.linalg.norm(rhs - (ham.matrix() @ res.u.ravel()).reshape(ham.shape))
    assert true / np.linalg.norm(rhs) <= 1e-10
    assert res.residual == pytest.approx(true / np.linalg.norm(rhs), rel=1e-3, abs=1e-15)
    np.testing.assert_allclose(res.u, ref, rtol=1e-8)
    if method == "mg":
        assert len(mg.levels) >= 2
        assert res.iterations <= 15


def test_default_rhs_is_ones_and_x0_is_used():
    ham = _ham(2, "dirichlet", True)
    ref = spla.spsolve(ham.matrix("csc"), np.ones(ham.size)).reshape(ham.shape)
    for method in ("cg", "mg"):
        res = solve_stencil(ham, method=method)
        np.testing.assert_allclose(res.u, ref, rtol=1e-8)
        again = solve_stencil(ham, method=method, x0=ref)
        assert again.iterations == 0 and again.converged


# --------------------------------------------------------------------- closed form in 1D
def _box_exact(n, h, V0, K=1.0):
    """Exact solution of the discrete 1D Dirichlet problem with constant V0 (ghost cells at 0).

    The homogeneous solutions are lambda^j with cosh(kappa) = 1 + V0 h^2 / (2K); with the
    ghost cells at j = 0 and n + 1 the solution is symmetric about (n + 1) / 2.
    """
    kappa = math.acosh(1.0 + V0 * h * h / (2.0 * K))
    j = np.arange(1, n + 1)
    return (1.0 - np.cosh(kappa * (j - (n + 1) / 2)) / np.cosh(kappa * (n + 1) / 2)) / V0


@pytest.mark.parametrize("method", ["cg", "mg"])
def test_constant_potential_box_closed_form(method):
    V0, L = 3.0, 4.0
    errors = []
    for n in (199, 399):
        h = L / (n + 1)  # ghost centres at x = 0 and x = L: the continuum box is [0, L]
        ham = build_hamiltonian(np.full(n, V0), spacing=h)
        mg = Multigrid(ham, coarse_size=8) if method == "mg" else None
        res = solve_stencil(ham, method=method, tol=1e-11, multigrid=mg)
        assert res.converged
        np.testing.assert_allclose(res.u, _box_exact(n, h, V0), rtol=1e-8, atol=1e-12)
        x = h * np.arange(1, n + 1)
        k = math.sqrt(V0)
        cont = (1.0 - np.cosh(k * (x - L / 2)) / np.cosh(k * L / 2)) / V0
        errors.append(float(np.max(np.abs(res.u - cont))))
    # second order: halving h (nearly) divides the error by 4
    assert errors[0] < 1e-3
    assert 3.5 < errors[0] / errors[1] < 4.5


# --------------------------------------------------------------------- multigrid properties
def test_coarse_operators_are_spd_and_symmetric():
    ham = _ham(2, "dirichlet", True)
    mg = Multigrid(ham, coarse_size=4)
    assert len(mg.levels) >= 3
    for lev in mg.levels:
        A = _level_matrix(lev).toarray()
        np.testing.assert_allclose(A, A.T, rtol=0, atol=1e-12)
        assert np.linalg.eigvalsh(A).min() > 0


@pytest.mark.parametrize("d", [1, 2])
def test_coarse_operator_is_the_coarse_rediscretisation(d):
    """Uniform mass, periodic: level 1 = 2^d x H(2h, pairwise-mean V) (integrated form)."""
    rng = np.random.default_rng(5)
    shape = (16,) * d
    V = rng.uniform(0.5, 2.0, shape)
    ham = build_hamiltonian(V, spacing=0.3, mass=0.7, boundary="periodic")
    mg = Multigrid(ham, coarse_size=1)
    Vc = V.reshape(*[s for n in shape for s in (n // 2, 2)]).mean(axis=tuple(range(1, 2 * d, 2)))
    coarse = build_hamiltonian(Vc, spacing=0.6, mass=0.7, boundary="periodic")
    np.testing.assert_allclose(_level_matrix(mg.levels[1]).toarray(),
                               2**d * coarse.matrix().toarray(), rtol=1e-12, atol=1e-12)


def test_mg_iterations_flat_under_refinement_while_cg_grows():
    its, cg_its = [], []
    for n in (64, 128, 256):
        V, h = _smooth_on(n)
        ham = build_hamiltonian(V, spacing=h)
        res = solve_stencil(ham, method="mg", tol=1e-10)
        assert res.converged
        its.append(res.iterations)
        cg_its.append(solve_stencil(ham, method="cg", tol=1e-10).iterations)
    assert max(its) - min(its) <= 2, its
    assert max(its) <= 15
    assert cg_its[2] > 3 * cg_its[0] and cg_its[2] > 10 * its[2], cg_its


def test_galerkin_coarse_operator_would_not_be_h_uniform(monkeypatch):
    """The series (re-discretisation) rule matters: with the plain piecewise-constant
    Galerkin coupling (no internal half-links) the iteration count grows under refinement."""
    import mottscape.solvers as solvers

    def counts():
        out = []
        for n in (64, 128, 256):
            V, h = _smooth_on(n)
            out.append(solve_stencil(build_hamiltonian(V, spacing=h), method="mg",
                                     maxiter=300).iterations)
        return out

    ours = counts()
    real = solvers._half_internal
    monkeypatch.setattr(solvers, "_half_internal",
                        lambda W, axis, n: np.zeros_like(real(W, axis, n)))
    galerkin = counts()
    assert galerkin[2] >= galerkin[0] + 8 and galerkin[2] > 2 * ours[2], (ours, galerkin)


def test_mg_handles_mass_jumps_and_anisotropy():
    rng = np.random.default_rng(7)
    n = 96
    mass = np.where((np.arange(n)[:, None] // 12 + np.arange(n)[None, :] // 12) % 2, 10.0, 1.0)
    V = rng.uniform(0.0, 0.1, (n, n))
    ham = build_hamiltonian(V, spacing=(0.05, 0.2), mass=mass)
    mg = Multigrid(ham, coarse_size=16)
    # the weak axis (spacing 0.2: couplings 16x weaker) is not coarsened at first
    assert mg.shapes[1] == (1, n // 2, n)
    res = solve_stencil(ham, method="mg", multigrid=mg)
    assert res.converged and res.iterations <= 20
    ref = spla.spsolve(ham.matrix("csc"), np.ones(ham.size)).reshape(ham.shape)
    np.testing.assert_allclose(res.u, ref, rtol=1e-7)


def test_w_cycle_converges():
    V, h = _smooth_on(64)
    ham = build_hamiltonian(V, spacing=h)
    v = solve_stencil(ham, method="mg", multigrid=Multigrid(ham, coarse_size=16))
    w = solve_stencil(ham, method="mg", multigrid=Multigrid(ham, coarse_size=16, cycle="W"))
    assert w.converged and w.iterations <= v.iterations
    np.testing.assert_allclose(w.u, v.u, rtol=1e-8)


# --------------------------------------------------------------------- auto
def test_auto_picks_cg_for_anderson_and_mg_for_continuum():
    rng = np.random.default_rng(0)
    anderson = build_hamiltonian(rng.uniform(0.0, 4.0, (128, 128)))
    est = estimate_cg_iterations(anderson)
    res = solve_stencil(anderson, method="auto")
    assert choose_method(anderson) == "cg" and res.method == "cg"
    # the estimate is the right order of magnitude
    assert 0.5 * res.iterations < est < 2.0 * res.iterations
    V, h = _smooth_on(128)
    smooth = build_hamiltonian(V, spacing=h)
    assert choose_method(smooth) == "mg"
    assert solve_stencil(smooth, method="auto").method == "mg"


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("method", ["cg", "mg"])
@pytest.mark.parametrize("random_mass", [False, True])
def test_thread_count_does_not_change_a_single_bit(method, random_mass):
    # The kernels' reductions sum per-row partials in a fixed order: the same bits on any
    # number of threads (the ensemble engine's bit-for-bit contract rests on it).
    rng = np.random.default_rng(9)
    shape = (40, 30, 24)
    mass = rng.uniform(0.5, 2.0, shape) if random_mass else 1.0
    ham = build_hamiltonian(rng.uniform(0.0, 4.0, shape), spacing=(1.0, 0.9, 1.1), mass=mass)
    one = solve_stencil(ham, method=method, threads=1)
    assert one.info["threads"] == 1
    assert solve_stencil(ham, method=method).info["threads"] == 1  # small grid: serial default
    many = solve_stencil(ham, method=method, threads=numba.config.NUMBA_NUM_THREADS)
    assert many.info["threads"] == numba.config.NUMBA_NUM_THREADS
    np.testing.assert_array_equal(one.u, many.u)
    assert one.iterations == many.iterations


def test_invalid_arguments():
    ham = _ham(1, "dirichlet", False)
    with pytest.raises(InputError):
        solve_stencil(ham, method="gmres")
    with pytest.raises(InputError):
        solve_stencil(ham, tol=0.0)
    with pytest.raises(InputError):
        solve_stencil(ham, method="mg", multigrid=Multigrid(_ham(2, "dirichlet", False)))
    with pytest.raises(InputError):
        solve_stencil(ham, threads=0)
    with pytest.raises(InputError):
        stencil_matvec(ham, np.ones(ham.shape), out=np.empty(ham.size + 1))
