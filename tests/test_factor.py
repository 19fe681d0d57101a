"""The sparse factorisations of the exact reference: MKL PARDISO and SuperLU (exact._factor)."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mottscape.errors import InputError
from mottscape.exact import _factor, count_eigenvalues_below, exact_eigenstates, kubo_greenwood
from mottscape.exact._factor import ENV_VAR, PARDISO_MIN_ROWS, ShiftedFactor, factor_backend
from mottscape.hamiltonian import build_hamiltonian

pardiso = pytest.mark.skipif(not _factor._pardiso_loads(),
                             reason="MKL PARDISO not installed (pip install mottscape[mkl])")
BACKENDS = ["superlu", pytest.param("pardiso", marks=pardiso)]


@functools.cache
def _spectrum(shape: tuple[int, ...], boundary: str):
    V = np.random.default_rng(4).uniform(0, 12, shape)
    ham = build_hamiltonian(V, boundary=boundary)
    return ham, np.linalg.eigvalsh(ham.matrix().toarray())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("shape", "boundary"), [((46, 46), "dirichlet"),
                                                 ((13, 13, 13), "periodic")])
def test_inertia_counts_match_dense(backend, shape, boundary, monkeypatch):
    # Sylvester's law of inertia: the negative pivots of H - E count the levels below E
    monkeypatch.setenv(ENV_VAR, backend)
    ham, w = _spectrum(shape, boundary)
    assert ham.size >= PARDISO_MIN_ROWS and factor_backend(ham.size) == backend
    energies = np.concatenate([[w[0] - 0.1], 0.5 * (w[[3, 50, 400, 1500]]
                                                     + w[[4, 51, 401, 1501]])])
    np.testing.assert_array_equal(count_eigenvalues_below(ham, energies),
                                  np.searchsorted(w, energies))


@pytest.mark.parametrize("backend", BACKENDS)
def test_shift_invert_window_matches_dense(backend, monkeypatch):
    monkeypatch.setenv(ENV_VAR, backend)
    V = np.random.default_rng(2).uniform(0, 4, (46, 46))
    ham = build_hamiltonian(V)
    w = np.linalg.eigvalsh(ham.matrix().toarray())
    lo, hi = float(w[30] + w[31]) / 2, float(w[160] + w[161]) / 2
    Ed, Pd = exact_eigenstates(ham, lo, hi, method="dense")
    Es, Ps = exact_eigenstates(ham, lo, hi, method="shift-invert")
    np.testing.assert_allclose(Es, Ed, atol=1e-11)
    np.testing.assert_allclose(np.abs(np.sum(Pd * Ps, axis=0)), 1.0, atol=1e-8)
    edges = np.geomspace(1e-3, 0.45 * (hi - lo), 7)
    a = kubo_greenwood(V, 0.5 * (lo + hi), edges, method="dense")
    b = kubo_greenwood(V, 0.5 * (lo + hi), edges, method="shift-invert")
    assert b.attrs["sparse_factorisation"] == backend
    np.testing.assert_allclose(b.sigma.values, a.sigma.values, rtol=1e-8,
                               atol=1e-12 * a.sigma.values.max())


@pardiso
def test_pardiso_solves_and_repeats_bit_for_bit(monkeypatch):
    # one MKL thread: the same bits in any thread (the workers of an ensemble)
    monkeypatch.setenv(ENV_VAR, "pardiso")
    ham = build_hamiltonian(np.random.default_rng(7).uniform(0, 20, (16, 16, 16)))
    A = ham.matrix("csr")
    b = np.random.default_rng(0).standard_normal((A.shape[0], 3))

    def solve():
        with ShiftedFactor(A, 4.5) as f:
            return f.solve(b), f.solve(b[:, 0]), f.negative

    x, x0, neg = solve()
    np.testing.assert_allclose(A @ x - 4.5 * x, b, atol=1e-9)  # (A - shift) x = b
    assert x0.shape == (A.shape[0],)
    np.testing.assert_allclose(x0, x[:, 0], rtol=1e-9, atol=1e-15)
    assert neg == count_eigenvalues_below(ham, [4.5])[0]
    with ThreadPoolExecutor(2) as pool:
        for y, y0, _ in pool.map(lambda _: solve(), range(3)):
            assert y.tobytes() == x.tobytes() and y0.tobytes() == x0.tobytes()


def test_released_factor_refuses_to_solve(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "auto")
    A = build_hamiltonian(np.random.default_rng(1).uniform(0, 4, (50, 50))).matrix("csr")
    f = ShiftedFactor(A, 1.0)
    f.close()
    with pytest.raises(RuntimeError, match="released"):
        f.solve(np.ones(A.shape[0]))


def test_backend_choice_and_errors(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "umfpack")
    with pytest.raises(InputError, match=ENV_VAR):
        factor_backend(10**5)
    monkeypatch.setenv(ENV_VAR, "superlu")
    assert factor_backend(10**5) == "superlu"
    monkeypatch.setenv(ENV_VAR, "auto")
    assert factor_backend(PARDISO_MIN_ROWS - 1) == "superlu"  # small: SuperLU always
    monkeypatch.setattr(_factor, "_PARDISO_LOADS", False)
    assert factor_backend(10**5) == "superlu"
    monkeypatch.setenv(ENV_VAR, "pardiso")
    with pytest.raises(InputError, match=r"mottscape\[mkl\]"):
        factor_backend(10**5)
