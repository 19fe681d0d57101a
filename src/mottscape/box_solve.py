"""Window eigenpairs of one box of the pair model (issue 11, App. A).

The states of a box are the eigenpairs of H restricted to its cells (Dirichlet on the box
faces) with energies in the window (lo, hi] around E_F: dense for small boxes, shift-invert
Lanczos sized by the landscape-law count of the box's states (refs. [28, 30]) for larger ones,
LAPACK's tridiagonal solver for the segments of a 1D Dirichlet chain, and the exact
reference's solvers (:mod:`mottscape.exact`) when the whole sample is one box.
:func:`box_solver` picks among them; the boxes come from :mod:`mottscape.state_boxes`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .sample import Sample

__all__ = ["BOX_LANCZOS_TOL", "BOX_PARDISO_MIN_ROWS", "DENSE_BOX_MAX", "GUESS_FACTOR",
           "box_eigenpairs", "box_solver", "chain_eigenpairs", "landscape_cell_counts",
           "whole_sample_eigenpairs"]

#: Boxes with at most this many cells are diagonalised densely (``eigh(subset_by_value)``);
#: larger ones by shift-invert Lanczos around E_F.
DENSE_BOX_MAX = 300


def box_eigenpairs(A: sp.csr_array, lo: float, hi: float, guess: float | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a box in (lo, hi]: dense for small boxes, else shift-invert Lanczos.

    Shift-invert at the window centre returns the k eigenvalues nearest to it; k is doubled
    until the farthest one returned lies outside the window, so the window is complete. The
    first k comes from ``guess``, the landscape-law count of the box's states in the window
    (:func:`landscape_cell_counts`; 16 without one): on the 2D benchmark's boxes it was
    enough for every box, and asking for fewer pairs than a fixed 16 halved the Lanczos work.
    The factorisation of ``A - centre`` is made once (the fill-reducing ordering of the exact
    reference's slices) and reused if k is doubled; the Ritz values converge to
    ``BOX_LANCZOS_TOL``.
    """
    from .exact._windows import _solve_dense, _start_vector

    n = A.shape[0]
    if n <= DENSE_BOX_MAX:
        return _solve_dense(A, lo, hi)
    import scipy.sparse.linalg as spla

    from .exact._factor import ShiftedFactor

    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    k = 16 if guess is None else max(4, math.ceil(GUESS_FACTOR * guess) + 3)
    with ShiftedFactor(A, centre, pardiso_min_rows=BOX_PARDISO_MIN_ROWS) as factor:
        op = factor.operator()
        while True:
            w, v = spla.eigsh(A, k=min(k, n - 2), sigma=centre, which="LM", OPinv=op,
                              v0=_start_vector(n),  # fixed: the numbers repeat bit for bit
                              tol=BOX_LANCZOS_TOL)
            if np.abs(w - centre).max() > half or k >= n - 2:
                break
            k *= 2
    order = np.argsort(w)
    w, v = w[order], v[:, order]
    keep = (w > lo) & (w <= hi)
    return w[keep], v[:, keep]


#: Shift-invert boxes ask first for this many times their landscape-law count, plus 3.
GUESS_FACTOR = 1.3


#: Boxes with fewer cells are factorised by SuperLU even where PARDISO loads (the exact
#: reference switches at ``exact._factor.PARDISO_MIN_ROWS`` = 2000). A box's Lanczos run makes
#: dozens of solves per factorisation, and a PARDISO solve of a box of a few thousand cells
#: cost more than SuperLU's (call overhead) while its faster factorisation only pays off on
#: larger 3D boxes. The pair model with the refinement of ``exact._factor`` off, this
#: threshold against 2000, alternated in one process (benchmarks/bench_box_factor.py,
#: docs/performance.md): 2D 512^2 0.76x, 3D 20^3 with a box per basin 0.76x; SuperLU for
#: every box instead: 1.16x and 1.05x of this one (a single threshold for 2D and 3D).
BOX_PARDISO_MIN_ROWS = 5000


#: Relative accuracy of the boxes' Ritz values of (A - centre)^-1 (ARPACK's ``tol``; 0, its
#: default, is machine precision). Energies then carry errors of ~1e-10 of their distance
#: to the window centre, far below any splitting or bin the pair model resolves; on the
#: 512^2 validation sample it saves a quarter of the Lanczos steps and moves sigma_pairs by
#: less than 1e-13 (docs/performance.md, the pair model).
BOX_LANCZOS_TOL = 1e-10


def chain_eigenpairs(diag: np.ndarray, off: np.ndarray, start: int, stop: int, lo: float,
                      hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs in (lo, hi] of the segment ``[start, stop)`` of a Dirichlet chain.

    The box matrix of a 1D Dirichlet chain is tridiagonal: LAPACK's ``stemr`` finds the
    window's eigenpairs in O(n k), without assembling and slicing a sparse matrix (which
    cost more than the solve on the chain's boxes of a few dozen cells).
    """
    d = diag[start:stop]
    if d.size == 1:
        keep = (d > lo) & (d <= hi)
        return d[keep], np.ones((1, int(keep.sum())))
    w, v = sla.eigh_tridiagonal(d, off[start:stop - 1], select="v", select_range=(lo, hi),
                                lapack_driver="stemr")
    return w, v


def whole_sample_eigenpairs(sample: Sample, lo: float, hi: float
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of H on the whole sample in the window, checked against an inertia count.

    The exact reference's solvers: dense up to ``DENSE_MAX`` cells, else shift-invert
    spectrum slicing (:mod:`mottscape.exact`), refused like the exact reference's slicing
    (:class:`~mottscape.errors.InputError`) when the window's vectors cannot be held.
    """
    from .errors import ConvergenceError
    from .exact._common import DENSE_MAX
    from .exact._counts import count_eigenvalues_below
    from .exact._tasks import check_vectors_memory
    from .exact._windows import _solve_dense, _solve_shift_invert

    ham = sample.hamiltonian
    counts = count_eigenvalues_below(ham, [lo, hi])
    expected = int(counts[1] - counts[0])
    if ham.size <= DENSE_MAX:
        w, v = _solve_dense(ham, lo, hi)
    else:
        check_vectors_memory(
            ham, expected, "the pair model's whole-sample box (state_boxes='merged')",
            "use state_boxes='per_basin' (each state held on its basin's box), narrow the "
            "window (a lower top frequency), or a smaller sample")
        w, v, _ = _solve_shift_invert(ham, lo, hi, expected)
    if w.size != expected:
        raise ConvergenceError(
            f"the pair model's whole-sample box found {w.size} states in [{lo:g}, {hi:g}] "
            f"but the inertia count is {expected}")
    return w, v


def box_solver(sample: Sample, A: sp.csr_array, lo: float, hi: float, whole: bool,
                guess: np.ndarray | None = None):
    """The eigensolver of the boxes: ``solve(flat, axes) -> (w, v)`` in (lo, hi].

    The whole sample by the exact reference's solvers; a box of a 1D Dirichlet chain as a
    tridiagonal segment; any other box as its submatrix of H (dense or shift-invert, sized
    by the per-cell landscape-law counts ``guess`` summed over the box).
    """
    if whole:
        return lambda flat, axes: whole_sample_eigenpairs(sample, lo, hi)
    if sample.ndim == 1 and not sample.grid.periodic:
        from .exact._common import _tridiagonal

        diag, off = _tridiagonal(sample.hamiltonian)
        return lambda flat, axes: chain_eigenpairs(diag, off, int(axes[0][0]),
                                                    int(axes[0][-1]) + 1, lo, hi)
    from .exact._common import box_submatrix

    return lambda flat, axes: box_eigenpairs(box_submatrix(A, flat), lo, hi,
                                          None if guess is None else float(guess[flat].sum()))


def landscape_cell_counts(land, lo: float, hi: float) -> np.ndarray:
    """Landscape-law number of states in (lo, hi] per cell (flat, per spin; refs. [28, 30])."""
    from .landscape import free_idos

    vu = land.effective_potential.ravel()
    mass = np.broadcast_to(land.mass, land.effective_potential.shape).ravel()
    n = [free_idos(np.maximum(e - vu, 0.0) * mass, land.grid, land.units, land.dispersion)
         for e in (hi, lo)]
    return (n[0] - n[1]) * land.grid.cell_volume
