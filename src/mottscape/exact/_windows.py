"""Window solvers on a whole matrix: dense, tridiagonal and shift-invert spectrum slicing."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..hamiltonian import Hamiltonian
from ._common import SLICE_STATES, _blas_single_thread, _tridiagonal
from ._counts import superlu_order
from ._factor import ShiftedFactor


def _as_csc(ham) -> sp.csc_array:
    """The assembled matrix of a Hamiltonian, or a given sparse matrix (a box of H)."""
    return ham.matrix("csc") if isinstance(ham, Hamiltonian) else sp.csc_array(ham)


def _solve_dense(ham, lo: float, hi: float):
    """Eigenpairs in (lo, hi] by dense ``eigh`` (Hamiltonian or sparse matrix)."""
    Hd = _as_csc(ham).toarray()
    with _blas_single_thread():
        w, v = sla.eigh(Hd, subset_by_value=(lo, hi), driver="evr")
    return w, v


def _solve_tridiagonal(ham: Hamiltonian, lo: float, hi: float):
    d, e = _tridiagonal(ham)
    if d.size == 1:
        keep = (d > lo) & (d <= hi)
        return d[keep], np.ones((1, int(keep.sum())))
    w, v = sla.eigh_tridiagonal(d, e, select="v", select_range=(lo, hi), lapack_driver="stemr")
    return w, v


@dataclass
class Slice:
    """The eigenpairs one shift found: inside the window only, and what the shift covers.

    Attributes
    ----------
    energies, vectors
        The eigenpairs found with energies in the window ``[lo, hi]``.
    covered
        ``(sigma - rho, sigma + rho)``, shrunk by 1e-9: every eigenvalue in it was found.
    density
        States per energy the shift saw (``k / (2 rho)``), for the sizing of later shifts.
    """

    energies: np.ndarray
    vectors: np.ndarray
    covered: tuple[float, float]
    density: float


def first_shifts(lo: float, hi: float, expected: int, slice_states: int = SLICE_STATES,
                 profile: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> list[tuple[float, float, float]]:
    """The first shifts of a window, as ``(sigma, half width, density)``.

    One per ``slice_states`` expected states, at least one, each sized for its share of the
    window's states. Without ``profile`` they are evenly spaced (the mean density). With
    ``profile = (energies, counts)``, exact inertia counts at increasing energies from ``lo``
    to ``hi`` (the counts of eigenvalues below each), the shifts sit at equal expected counts
    of the piecewise-linear count between them: in a band tail the DOS rises across the
    window, and evenly spaced shifts sized by the mean leave gaps at its top.
    """
    nshift = max(1, math.ceil(expected / slice_states))
    share = np.arange(nshift + 1) / nshift
    if profile is None:
        edges = lo + (hi - lo) * share
    else:
        energies, counts = (np.asarray(x, dtype=float) for x in profile)
        rel = counts - counts[0]
        # strictly increasing abscissae for np.interp (a stretch without states is flat)
        rel = rel + 1e-9 * np.arange(rel.size)
        edges = np.interp(share * rel[-1], rel, energies)
        edges[0], edges[-1] = lo, hi
    per_shift = expected / nshift
    return [(0.5 * (a + b), 0.5 * (b - a), per_shift / (b - a))
            for a, b in itertools.pairwise(edges)]


def solve_shift(A: sp.csc_array, sigma: float, half: float, density: float,
                window: tuple[float, float], order=None) -> Slice:
    """The eigenpairs of ``A`` nearest ``sigma``: enough for ``sigma +- half`` at ``density``.

    One factorisation of ``A - sigma`` (:class:`~mottscape.exact._factor.ShiftedFactor`,
    ``order`` its SuperLU column order) used as ``OPinv`` of shift-invert Lanczos with a fixed
    start vector: a pure function of its arguments, so a shift solved on any worker gives the
    same bits.
    """
    n = A.shape[0]
    k = int(min(n - 2, max(16, math.ceil(1.25 * density * 2 * half) + 8)))
    with ShiftedFactor(A, sigma, order=order) as factor, _blas_single_thread():
        # a fixed v0: ARPACK's own depends on earlier calls
        w, v = spla.eigsh(A, k=k, sigma=sigma, which="LM", OPinv=factor.operator(),
                          v0=_start_vector(n))
    rho = float(np.max(np.abs(w - sigma)))
    # the k-th nearest may have an unfound twin at the same distance: cover strictly less
    rho_in = rho * (1.0 - 1e-9)
    inside = (w >= window[0]) & (w <= window[1])
    return Slice(w[inside], v[:, inside], (sigma - rho_in, sigma + rho_in), k / (2.0 * rho))


def complete_slices(A: sp.csc_array, lo: float, hi: float, expected: int,
                    slices: list[Slice], order=None, bar=None) -> tuple[np.ndarray, np.ndarray,
                                                                      int]:
    """Close the gaps the first shifts left in ``[lo, hi]``, then merge what every shift found.

    New shifts go to the middle of each uncovered gap, sized by the largest density any shift
    saw (the DOS of a band tail varies fast), until the window is covered. Returns the
    energies, the vectors (states found by several shifts merged) and the number of extra
    factorisations.
    """
    slices = list(slices)
    nfirst = len(slices)
    density = max([expected / (hi - lo)] + [s.density for s in slices])
    extra = 0
    todo = _gaps([s.covered for s in slices], lo, hi)
    while todo and extra <= 50 * nfirst + 100:
        for a, b in todo:
            s = solve_shift(A, (a + b) / 2, (b - a) / 2, density, (lo, hi), order)
            slices.append(s)
            density = max(density, s.density)
            extra += 1
            if bar is not None:
                bar.update(1)
        todo = _gaps([s.covered for s in slices], lo, hi)
    w = np.concatenate([s.energies for s in slices])
    v = np.concatenate([s.vectors for s in slices], axis=1)
    w, v = _merge_states(w, v)
    return w, v, extra


def _solve_shift_invert(ham, lo: float, hi: float, expected: int,
                        progress: bool = False, slice_states: int = SLICE_STATES):
    """Spectrum slicing by shift-invert Lanczos until the shifts' intervals cover [lo, hi].

    A shift sigma with ``k`` requested eigenpairs returns the k eigenvalues nearest to sigma,
    so every eigenvalue closer than the farthest one returned (radius rho) has been found:
    the shift covers ``(sigma - rho, sigma + rho)``. The first shifts are evenly spaced (one
    per ``slice_states`` expected states, :func:`first_shifts`; the whole-sample reference
    places them by a profile of inertia counts), each sized by the window's mean density and
    independent of the others (the pieces of the exact reference solve them
    on separate workers); new ones are then placed in the gaps left uncovered
    (:func:`complete_slices`). Each shift costs one sparse factorisation of ``H - sigma``.
    States found by several shifts are merged (same energy: the span of their vectors is
    kept). The caller checks the total against the inertia count. Returns ``(w, v, nfact)``.
    """
    A = _as_csc(ham)
    n = A.shape[0]
    if expected == 0:
        return np.zeros(0), np.zeros((n, 0)), 0
    if expected + 10 >= n - 1:
        w, v = _solve_dense(A, lo, hi)
        return w, v, 0
    # SuperLU: the grid's nested dissection (a box of H comes as a bare matrix: minimum degree)
    order = superlu_order(ham.grid, n) if isinstance(ham, Hamiltonian) else None
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="shift-invert shifts", unit="shift")
    slices = []
    for sigma, half, density in first_shifts(lo, hi, expected, slice_states):
        slices.append(solve_shift(A, sigma, half, density, (lo, hi), order))
        if bar is not None:
            bar.update(1)
    w, v, extra = complete_slices(A, lo, hi, expected, slices, order, bar)
    if bar is not None:
        bar.close()
    return w, v, len(slices) + extra


def _start_vector(n: int) -> np.ndarray:
    """The Lanczos start vector of a matrix of order n: fixed, so results repeat bit for bit.

    ARPACK's default start vector comes from a random generator whose state persists between
    calls in one process, so the same box solved after other boxes (or on another worker)
    would converge to slightly different vectors.
    """
    return np.random.default_rng(n).uniform(-1.0, 1.0, n)


def _gaps(intervals: list[tuple[float, float]], lo: float, hi: float
          ) -> list[tuple[float, float]]:
    """Parts of [lo, hi] not covered by the union of open intervals."""
    out = []
    x = lo
    for a, b in sorted(intervals):
        if a > x:
            out.append((x, min(a, hi)))
        x = max(x, b)
        if x >= hi:
            break
    if x < hi:
        out.append((x, hi))
    return [(a, b) for a, b in out if b > a]


def _merge_states(w: np.ndarray, v: np.ndarray, tol: float = 1e-9):
    """Merge eigenpairs found more than once.

    Within a cluster of equal energies keep an orthonormal basis of the span of the vectors
    (its rank is the multiplicity).
    """
    if w.size == 0:
        return w, v
    order = np.argsort(w, kind="stable")
    w, v = w[order], v[:, order]
    scale = max(1.0, float(np.abs(w).max()))
    breaks = np.nonzero(np.diff(w) > tol * scale)[0] + 1
    ws, vs = [], []
    for idx in np.split(np.arange(w.size), breaks):
        if idx.size == 1:
            ws.append(w[idx])
            vs.append(v[:, idx])
            continue
        vc = v[:, idx]
        g, u = np.linalg.eigh(vc.T @ vc)
        keep = g > 0.5
        basis = vc @ (u[:, keep] / np.sqrt(g[keep]))
        ws.append(np.full(int(keep.sum()), float(np.mean(w[idx]))))
        vs.append(basis)
    return np.concatenate(ws), np.concatenate(vs, axis=1)


