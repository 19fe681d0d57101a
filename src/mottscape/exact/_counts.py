"""Exact eigenvalue counts (Sylvester's law of inertia): Sturm sequences and sparse LDL^T."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from numba import njit

from ..errors import ConvergenceError
from ..grid import Grid
from ..hamiltonian import Hamiltonian
from ..sample import Sample
from ._common import DENSE_MAX, _blas_single_thread, _tridiagonal
from ._factor import ShiftedFactor, factor_backend


# ============================================================================ eigenvalue counts
@njit(cache=True, nogil=True)
def _sturm_kernel(diag, b2, energies, pivmin, lyapunov):  # pragma: no cover - compiled
    """The Sturm sequence of T - E for each E: sign count and sum of ln|pivot| (one loop).

    Compiled because it runs once per cell of a chain of up to 2^20 sites for every energy
    (no library gives the LDL^T pivots of a tridiagonal matrix); the arithmetic is that of
    the LAPACK dstebz count, in the same order for every E.
    """
    n = diag.size
    counts = np.zeros(energies.size, np.int64)
    logsums = np.zeros(energies.size)
    for k in range(energies.size):
        E = energies[k]
        d = diag[0] - E
        if abs(d) < pivmin:
            d = -pivmin
        c = 1 if d < 0 else 0
        logsum = math.log(abs(d)) if lyapunov else 0.0
        for i in range(1, n):
            d = (diag[i] - E) - b2[i - 1] / d
            if abs(d) < pivmin:
                d = -pivmin
            if d < 0:
                c += 1
            if lyapunov:
                logsum += math.log(abs(d))
        counts[k] = c
        logsums[k] = logsum
    return counts, logsums


def _sturm_counts(diag: np.ndarray, off: np.ndarray, energies, lyapunov: bool = False):
    """Sturm counts (number of eigenvalues < E) of a symmetric tridiagonal matrix.

    With ``lyapunov``, also the Lyapunov exponent by the Thouless formula,
    ``gamma(E) = (1/n) sum_k (ln|d_k| - ln|b_k|)`` with d_k the LDL^T pivots of ``T - E`` and
    b_k the off-diagonal (the inverse localization length of the chain at E).
    """
    energies = np.atleast_1d(np.asarray(energies, dtype=float))
    off = np.asarray(off, dtype=float)
    b2 = off * off
    pivmin = float(np.finfo(float).tiny) * max(1.0, float(np.max(b2, initial=1.0)))
    counts, logsums = _sturm_kernel(np.ascontiguousarray(diag, dtype=float), b2, energies,
                                    pivmin, bool(lyapunov))
    if not lyapunov:
        return counts
    n = len(diag)
    return counts, (logsums - 0.5 * float(np.sum(np.log(b2 + 1e-300)))) / n


#: Sub-blocks of at most this many cells per axis end the nested dissection.
ND_LEAF = 3


def nested_dissection(grid: Grid) -> np.ndarray:
    """A geometric nested-dissection ordering of the cells of a grid (flat indices).

    The block is cut in two by the middle plane across its longest axis; the two halves are
    ordered first (recursively) and the plane, which separates them for the nearest-neighbour
    stencil of H, last. On a periodic grid the planes at index 0 of the periodic axes come
    last of all (they cut the rings open). Eliminating in this order keeps the fill of a
    sparse LDL^T of a 3D grid near ``n^(4/3)``: at 48^3 it factorised in 18 s against 27 s
    with SuperLU's minimum-degree ordering (``docs/performance.md``).
    """
    idx = np.arange(grid.size).reshape(grid.shape)
    out: list[np.ndarray] = []
    last = []
    if grid.periodic:
        inner = tuple(slice(1, None) if n > 2 else slice(None) for n in grid.shape)
        mask = np.ones(grid.shape, dtype=bool)
        mask[inner] = False
        last.append(idx[mask])
        idx = idx[inner]
    stack: list[tuple[np.ndarray, bool]] = [(idx, False)]
    while stack:  # depth first: left half, right half, then the separator
        block, done = stack.pop()
        if done or max(block.shape) <= ND_LEAF:
            out.append(block.ravel())
            continue
        a = int(np.argmax(block.shape))
        m = block.shape[a] // 2
        cut = [slice(None)] * block.ndim
        parts = []
        for sl in (slice(0, m), slice(m + 1, None), slice(m, m + 1)):
            cut[a] = sl
            parts.append(block[tuple(cut)])
        stack += [(parts[2], True), (parts[1], False), (parts[0], False)]
    return np.concatenate(out + last)


def superlu_order(grid: Grid, n_rows: int) -> np.ndarray | None:
    """The elimination order SuperLU gets for ``H - E`` on ``grid``.

    The grid's nested dissection in 2D and 3D when SuperLU is the back-end
    (:func:`~mottscape.exact._factor.factor_backend`), else None (1D, or PARDISO, which
    orders by itself).
    """
    if grid.ndim > 1 and factor_backend(n_rows) == "superlu":
        return nested_dissection(grid)
    return None


def _inertia_lu(A: sp.csc_array, shift: float, order: np.ndarray | None = None) -> int | None:
    """Negative eigenvalues of ``A - shift`` from a sparse LDL^T (None if not reliable).

    ``order`` is the elimination order SuperLU uses (a congruence, which keeps the inertia;
    None lets SuperLU choose); PARDISO orders by itself.
    """
    with ShiftedFactor(A, shift, purpose="inertia", order=order) as factor:
        return factor.negative


def count_eigenvalues_below(ham: Hamiltonian, energies) -> np.ndarray:
    """Exact number of eigenvalues of H strictly below each energy (Sylvester inertia).

    Parameters
    ----------
    ham
        The Hamiltonian (eq. 3), or a :class:`~mottscape.sample.Sample`.
    energies
        Energy or energies (energy unit of the study).

    Returns
    -------
    numpy.ndarray of int
        Counts, same length as ``np.atleast_1d(energies)``.

    Notes
    -----
    1D Dirichlet chains use the Sturm sequence of the tridiagonal matrix; other samples the
    inertia of a sparse LDL^T of ``H - E`` (:class:`~mottscape.exact._factor.ShiftedFactor`:
    MKL PARDISO's Bunch-Kaufman LDL^T where it is installed, else SuperLU in symmetric mode
    without off-diagonal pivoting on a nested-dissection order). Where the factorisation
    does not give the inertia reliably (SuperLU pivoted off the diagonal, PARDISO perturbed a
    tiny pivot, an exactly singular pivot), the count is retried at an energy moved by 1e-12
    relative; small samples fall back to dense eigenvalues.
    """
    if isinstance(ham, Sample):
        ham = ham.hamiltonian
    energies = np.atleast_1d(np.asarray(energies, dtype=float))
    if ham.grid.ndim == 1 and not ham.grid.periodic:
        d, e = _tridiagonal(ham)
        return _sturm_counts(d, e, energies)
    A = ham.matrix("csc")
    order = superlu_order(ham.grid, ham.size)
    out = np.zeros(energies.size, dtype=np.int64)
    dense_vals = None
    for k, E in enumerate(energies):
        c = None
        for nudge in (0.0, 1e-12, -1e-12, 1e-9):
            c = _inertia_lu(A, E + nudge * max(1.0, abs(E)), order)
            if c is not None:
                break
        if c is None:
            if ham.size > 4 * DENSE_MAX:
                raise ConvergenceError(
                    f"could not count the eigenvalues below E={E:g}: the sparse LDL^T gave no "
                    "reliable inertia there (a pivot at round-off); move the energy slightly")
            if dense_vals is None:
                with _blas_single_thread():
                    dense_vals = sla.eigvalsh(A.toarray())
            c = int(np.searchsorted(dense_vals, E, side="left"))
        out[k] = c
    return out
