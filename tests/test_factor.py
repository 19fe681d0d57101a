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


@pardiso
def test_pardiso_refines_only_perturbed_factors(monkeypatch):
    # MKL's default: two steps of iterative refinement on every solve (3x a solve's work). An
    # unperturbed LDL^T solves to round-off without them; a factor with perturbed pivots keeps
    # them. The handles are pooled: a later factor starts again from MKL's defaults.
    import scipy.sparse as sp

    monkeypatch.setenv(ENV_VAR, "pardiso")
    A = build_hamiltonian(np.random.default_rng(3).uniform(0, 20, (14, 14, 14))).matrix("csr")
    b = np.random.default_rng(1).standard_normal(A.shape[0])
    # eliminating the first row of [[1, 1], [1, 1 + 1e-14]] leaves a pivot of 1e-14
    tiny = sp.block_diag([np.array([[1.0, 1.0], [1.0, 1.0 + 1e-14]]), sp.identity(98)],
                         format="csr")
    for _ in range(2):
        with ShiftedFactor(A, 4.5, pardiso_min_rows=0) as f:
            assert f.backend == "pardiso" and f.negative is not None
            x = f.solve(b)
            assert f._solver.iparm[6] == 0  # refinement steps of the last solve
            res = np.linalg.norm(A @ x - 4.5 * x - b) / np.linalg.norm(b)
            assert res < 1e-14
        with ShiftedFactor(tiny, 0.0, pardiso_min_rows=0) as g:
            assert g.negative is None  # the pivot was perturbed: no inertia
            g.solve(np.ones(100))
            assert g._solver.iparm[6] > 0


def test_boxes_stay_on_superlu_below_their_threshold(monkeypatch):
    from mottscape import box_solve

    monkeypatch.setattr(_factor, "_PARDISO_LOADS", True)  # the choice, not the solve
    monkeypatch.setenv(ENV_VAR, "auto")
    n = box_solve.BOX_PARDISO_MIN_ROWS
    assert PARDISO_MIN_ROWS < n
    assert factor_backend(n - 1, n) == "superlu" and factor_backend(n, n) == "pardiso"
    assert factor_backend(n - 1) == "pardiso"  # the exact reference's threshold


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


_HISTORY = """
import sys
import mottscape as ms
from mottscape import box_solve, ensemble
from mottscape.exact import kubo_greenwood
from mottscape.runner import one_blas_thread
if sys.argv[1] == "after":  # PARDISO used first on another matrix (48^2: 2304 rows)
    first = ms.study_from_dict({
        "potential": {"model": "block", "shape": [48, 48], "seed": 4, "block": 4, "width": 4.0},
        "conductivity": {"fermi_energy": 0.8, "omega_min": 0.03, "omega_max": 0.2,
                         "n_omega": 3}})
    kubo_greenwood(first.make_potential(0), 0.8, first.omega_edges())
study = ms.study_from_dict({
    "potential": {"model": "block", "shape": [256, 256], "seed": 3, "block": 4, "width": 4.0},
    "conductivity": {"fermi_energy": 0.6, "omega_min": 0.02, "omega_max": 0.1, "n_omega": 4}})
# its largest boxes (2000-2116 cells) on PARDISO: below the boxes' default threshold
box_solve.BOX_PARDISO_MIN_ROWS = 2000
with one_blas_thread():
    sys.stdout.write(ensemble.realization_task(study, 0)["sigma_ll"].values.tobytes().hex())
"""


@pardiso
def test_pardiso_bits_do_not_depend_on_what_the_process_solved_before():
    # the pair model's PARDISO box solves of a 256^2 sample (its three boxes of >= 2000 cells
    # put on PARDISO), in a fresh process and after an exact reference: with MKL's default
    # MKL_CBWR and threading layer they differed by 2e-14 (with or without iterative
    # refinement), and an in-process worker differed from fresh workers; the package loads
    # MKL with MKL_CBWR and a sequential layer. Fresh processes: no earlier test's MKL state.
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MKL_")}
    runs = [subprocess.run([sys.executable, "-c", _HISTORY, which], capture_output=True,
                           text=True, env=env, timeout=600, check=True).stdout
            for which in ("fresh", "after")]
    assert len(runs[0]) == 4 * 16 and runs[0] == runs[1]
