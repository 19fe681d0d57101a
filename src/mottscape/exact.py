"""Exact Kubo-Greenwood reference from the eigenstates of the finite sample (eqs. 4-5).

The LL formula of the paper is an asymptotic estimate of the Kubo-Greenwood (KG) conductivity
whose low-frequency form is eq. (4), built from the position matrix elements of eq. (5),

    X_ji^(alpha) = <psi_j | x_alpha | psi_i>,   |X_ji|^2 = sum_alpha |X_ji^(alpha)|^2 .

This module evaluates the KG formula itself, exactly for one finite sample:

    Re sigma(omega) = (2 pi e^2 omega / (d |Omega|))
                      * sum_{i,j} (f(E_i) - f(E_j)) |X_ji|^2 delta(E_j - E_i - hbar omega),

(spin factor 2 included, isotropic average over the d axes, f the Fermi function), averaged over
frequency bins so that no broadening is needed: a pair (i, j) with
``omega_ij = (E_j - E_i) / hbar`` in bin k contributes

    (2 pi e^2 omega_ij / (d |Omega|)) (f_i - f_j) |X_ji|^2 / hbar / (w_{k+1} - w_k)

to the bin average sigma_k. Inserting a constant DOS nu and an average |X|^2 gives back eq. (4).

Only the eigenstates inside the window ``[E_F - hbar w_max - 40 kT, E_F + hbar w_max + 40 kT]``
can contribute (a pair outside it has ``f_i - f_j < e^-40``, or a frequency beyond the last bin).
They are found by windowed eigensolvers:

``"dense"``
    ``scipy.linalg.eigh(subset_by_value=window)`` on the assembled matrix (small samples; the
    reference of the tests).
``"tridiagonal"``
    1D, Dirichlet: ``scipy.linalg.eigh_tridiagonal(select='v')`` on the whole chain.
``"segments"``
    1D, Dirichlet, long chains: the chain is cut into overlapping segments (a core plus
    ``padding`` cells on each side), each diagonalised only in the window; a state is kept by
    the segment whose core holds its centroid, and matrix elements are computed only between
    states whose segments overlap. Pairs farther apart than about ``2 * padding`` are skipped;
    their ``|X|^2 <~ r^2 exp(-2 r / xi)`` is negligible only relative to the pairs that
    carry sigma, which are at most the mean distance between window states apart (and the
    Mott length of the lowest bin), hence the default padding (see :func:`kubo_greenwood`).
    Measured on a 4000-site block chain (xi ~ 0.94 cells, 20 window states): the largest
    error per bin relative to the largest bin was 0.12, 4e-6, 6e-10, 5e-14 for paddings of
    16, 24, 32 and 48 cells (segment core 40), and < 1e-12 with the default padding.
``"shift-invert"``
    Any dimension: spectrum slicing with shift-invert Lanczos (``scipy.sparse.linalg.eigsh``
    with one sparse LU factorisation of ``H - sigma`` per shift, passed as ``OPinv``). Each
    shift asks for about ``SLICE_STATES`` states; the k states nearest a shift cover an
    interval around it, and shifts are added in the uncovered gaps until the window is
    covered; duplicates are merged.

Completeness is checked for every method with an exact eigenvalue count (Sylvester's law of
inertia): the number of eigenvalues below E is the number of negative pivots of an LDL^T
factorisation of ``H - E``. In 1D this is the Sturm sequence of the tridiagonal matrix; in 2D and
3D it is the sign count of the diagonal of a sparse LU factorisation made without off-diagonal
pivoting (``splu`` in symmetric mode, ``diag_pivot_thresh=0``), accepted only when SuperLU kept the
row and column permutations equal, so that the factorisation is a congruence. If the states found
differ from the count, a :class:`~mottscape.errors.ConvergenceError` is raised.

Eigenvectors are normalised on the grid, ``sum_cells |psi|^2 = 1``; then eq. (5) is
``X_ji = sum_cells psi_j x psi_i`` with x the cell centres. For exact eigenstates ``<j|i> = 0`` and
the origin of x is irrelevant; for approximate ones (segments, Lanczos) we evaluate
``<j|(x - c_ij)|i>`` with ``c_ij`` the midpoint of the two centroids, which removes the error
``c <j|i>`` that a far-away origin would amplify. With periodic boundaries the position operator is
not defined; there we use the velocity form ``X_ji = <j|[H, x]|i> / (E_j - E_i)``, where the
commutator is the lattice current (bond displacements by minimum image). For Dirichlet boundaries
the two forms agree identically (a test checks it), so the periodic result is the same KG
conductivity written with the current operator.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import xarray as xr

from .errors import ConvergenceError, InputError
from .grid import Grid, check_memory
from .hamiltonian import Hamiltonian, build_hamiltonian
from .units import UnitSystem

__all__ = [
    "count_eigenvalues_below",
    "exact_dos",
    "exact_eigenstates",
    "kubo_greenwood",
    "lowest_eigenvalues",
    "position_matrix",
]

METHODS = ("auto", "dense", "tridiagonal", "segments", "shift-invert")

#: ``method="auto"`` diagonalises densely up to this many cells (2D and 3D).
DENSE_MAX = 3000
#: ``method="auto"`` diagonalises a whole 1D chain up to this many cells, then cuts segments.
WHOLE_CHAIN_MAX = 4000
#: Half-width of the window beyond hbar*omega_max, in units of kT (weight < e^-40 outside).
KT_WINDOW = 40.0
#: Default padding of a 1D segment, in localization lengths (Thouless formula at the window top).
PADDING_XI = 30.0
#: Target number of states per shift in spectrum slicing.
SLICE_STATES = 60


# ============================================================================ small helpers
@dataclass
class _Block:
    """Eigenstates living on the contiguous flat index range ``[start, stop)`` of the grid."""

    start: int
    stop: int
    energies: np.ndarray  # (m,)
    vectors: np.ndarray  # (stop - start, m), normalised on the whole grid
    centroids: np.ndarray  # (m, d)


def _as_hamiltonian(V, spacing, mass, boundary, units) -> Hamiltonian:
    if isinstance(V, Hamiltonian):
        return V
    return build_hamiltonian(V, spacing=spacing, mass=mass, boundary=boundary, units=units)


def _flat_coordinates(grid: Grid) -> np.ndarray:
    """Cell-centre coordinates of the row-major flattened grid, shape ``(d, n_cells)``."""
    mesh = np.meshgrid(*[grid.coordinates(a) for a in range(grid.ndim)], indexing="ij")
    return np.stack([m.ravel() for m in mesh])


def _tridiagonal(ham: Hamiltonian) -> tuple[np.ndarray, np.ndarray]:
    n = ham.size
    off = -np.broadcast_to(np.asarray(ham.couplings[0], dtype=float), (n - 1,))
    return np.asarray(ham.diagonal, dtype=float).ravel(), np.ascontiguousarray(off)


def _gershgorin(ham: Hamiltonian) -> tuple[float, float]:
    A = ham.matrix("csr")
    offsum = np.asarray(abs(A).sum(axis=1)).ravel() - np.abs(A.diagonal())
    return float(np.min(A.diagonal() - offsum)), float(np.max(A.diagonal() + offsum))


@contextlib.contextmanager
def _blas_single_thread():
    """Run OpenBLAS single-threaded inside the block (best effort, Linux only).

    ARPACK's reverse communication issues many small BLAS-2 calls; with the OpenBLAS
    thread pool on the 2-core development machine they ran 2-3x slower than on one thread,
    and dense ``eigh`` of a few thousand rows 3-4x slower. We switch the
    loaded OpenBLAS libraries (numpy's and scipy's) to one thread and restore them after,
    through their exported ``*_set_num_threads`` symbols, as threadpoolctl would do.
    """
    handles = []
    try:
        import ctypes
        import re

        with open("/proc/self/maps") as fh:
            libs = sorted(set(re.findall(r"(/\S*openblas\S*\.so\S*)", fh.read())))
        for lib in libs:
            cdll = ctypes.CDLL(lib)
            for suffix in ("", "64_", "_64_"):
                get = getattr(cdll, f"scipy_openblas_get_num_threads{suffix}", None)
                put = getattr(cdll, f"scipy_openblas_set_num_threads{suffix}", None)
                if get is None or put is None:
                    get = getattr(cdll, f"openblas_get_num_threads{suffix}", None)
                    put = getattr(cdll, f"openblas_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    handles.append((put, int(get())))
                    put(1)
                    break
    except (OSError, AttributeError, ValueError):
        pass
    try:
        yield
    finally:
        for put, n in handles:
            put(n)


def _fermi(E: np.ndarray, fermi_energy: float, temperature: float) -> np.ndarray:
    """Fermi function; at T = 0 a step with f(E_F) = 1/2 (the T -> 0 limit)."""
    E = np.asarray(E, dtype=float)
    if temperature == 0.0:
        return np.where(E < fermi_energy, 1.0, np.where(E > fermi_energy, 0.0, 0.5))
    from scipy.special import expit

    return expit(-(E - fermi_energy) / temperature)


# ============================================================================ eigenvalue counts
def _sturm_counts(diag: np.ndarray, off: np.ndarray, energies, lyapunov: bool = False):
    """Sturm counts (number of eigenvalues < E) of a symmetric tridiagonal matrix.

    Also returns the Lyapunov exponent by the Thouless formula,
    ``gamma(E) = (1/n) sum_k (ln|d_k| - ln|b_k|)`` with d_k the LDL^T pivots of ``T - E`` and
    b_k the off-diagonal (the inverse localization length of the chain at E).
    """
    energies = np.atleast_1d(np.asarray(energies, dtype=float))
    b2 = (off * off).tolist()
    a = diag.tolist()
    pivmin = float(np.finfo(float).tiny) * max(1.0, float(np.max(off * off, initial=1.0)))
    counts = np.zeros(energies.size, dtype=np.int64)
    gammas = np.zeros(energies.size)
    n = len(a)
    for k, E in enumerate(energies.tolist()):
        d = a[0] - E
        if abs(d) < pivmin:
            d = -pivmin
        c = 1 if d < 0 else 0
        logsum = math.log(abs(d)) if lyapunov else 0.0
        for i in range(1, n):
            d = (a[i] - E) - b2[i - 1] / d
            if abs(d) < pivmin:
                d = -pivmin
            if d < 0:
                c += 1
            if lyapunov:
                logsum += math.log(abs(d))
        if lyapunov:
            gammas[k] = (logsum - 0.5 * float(np.sum(np.log(np.asarray(b2) + 1e-300)))) / n
        counts[k] = c
    return (counts, gammas) if lyapunov else counts


def _inertia_lu(A: sp.csc_array, shift: float) -> int | None:
    """Negative eigenvalues of ``A - shift`` from an unpivoted sparse LDL^T (None if pivoted)."""
    n = A.shape[0]
    M = (A - shift * sp.identity(n, format="csc")).tocsc()
    try:
        lu = spla.splu(M, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                       options={"SymmetricMode": True})
    except RuntimeError:  # exactly singular: nudge the shift
        return None
    if not np.array_equal(lu.perm_r, lu.perm_c):
        return None
    piv = lu.U.diagonal()
    if not np.all(np.isfinite(piv)):
        return None
    return int(np.count_nonzero(piv < 0))


def count_eigenvalues_below(ham: Hamiltonian, energies) -> np.ndarray:
    """Exact number of eigenvalues of H strictly below each energy (Sylvester inertia).

    Parameters
    ----------
    ham
        The Hamiltonian (eq. 3).
    energies
        Energy or energies (energy unit of the study).

    Returns
    -------
    numpy.ndarray of int
        Counts, same length as ``np.atleast_1d(energies)``.

    Notes
    -----
    1D Dirichlet chains use the Sturm sequence of the tridiagonal matrix; other samples the
    sign count of the pivots of an unpivoted sparse LDL^T (SuperLU in symmetric mode). If
    SuperLU had to pivot off the diagonal (a pivot that is exactly zero), the count is
    retried at an energy moved by 1e-12 relative; small samples fall back to dense eigenvalues.
    """
    energies = np.atleast_1d(np.asarray(energies, dtype=float))
    if ham.grid.ndim == 1 and not ham.grid.periodic:
        d, e = _tridiagonal(ham)
        return _sturm_counts(d, e, energies)
    A = ham.matrix("csc")
    out = np.zeros(energies.size, dtype=np.int64)
    dense_vals = None
    for k, E in enumerate(energies):
        c = None
        for nudge in (0.0, 1e-12, -1e-12, 1e-9):
            c = _inertia_lu(A, E + nudge * max(1.0, abs(E)))
            if c is not None:
                break
        if c is None:
            if ham.size > 4 * DENSE_MAX:
                raise ConvergenceError(
                    f"could not count the eigenvalues below E={E:g}: the sparse LDL^T needed "
                    "off-diagonal pivoting; move the energy slightly")
            if dense_vals is None:
                with _blas_single_thread():
                    dense_vals = sla.eigvalsh(A.toarray())
            c = int(np.searchsorted(dense_vals, E, side="left"))
        out[k] = c
    return out


# ============================================================================ windowed solvers
def _centroids(vectors: np.ndarray, coords: np.ndarray) -> np.ndarray:
    w = vectors * vectors
    return (coords @ w / np.maximum(w.sum(axis=0), 1e-300)).T


def _solve_dense(ham: Hamiltonian, lo: float, hi: float):
    Hd = ham.matrix("csr").toarray()
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


def _solve_shift_invert(ham: Hamiltonian, lo: float, hi: float, expected: int,
                        progress: bool = False, slice_states: int = SLICE_STATES):
    """Spectrum slicing by shift-invert Lanczos until the shifts' intervals cover [lo, hi].

    A shift sigma with ``k`` requested eigenpairs returns the k eigenvalues nearest to sigma,
    so every eigenvalue closer than the farthest one returned (radius rho) has been found:
    the shift covers ``(sigma - rho, sigma + rho)``. Shifts start evenly spaced (one per
    ``slice_states`` expected states) and new ones are placed in the gaps left uncovered (the
    DOS of a band tail varies fast). Each shift costs one sparse LU of ``H - sigma``, used as
    ``OPinv``. States found by several shifts are merged (same energy: the span of their
    vectors is kept). The caller checks the total against the inertia count.
    """
    A = ham.matrix("csc")
    n = A.shape[0]
    if expected == 0:
        return np.zeros(0), np.zeros((n, 0)), 0
    if expected + 10 >= n - 1:
        w, v = _solve_dense(ham, lo, hi)
        return w, v, 0
    identity = sp.identity(n, format="csc")
    nshift = max(1, math.ceil(expected / slice_states))
    width = (hi - lo) / nshift
    todo = [(lo + (i + 0.5) * width, 0.5 * width) for i in range(nshift)]
    covered: list[tuple[float, float]] = []
    found_w, found_v = [], []
    nfact = 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="shift-invert shifts", unit="shift")
    density = expected / (hi - lo)  # states per energy, updated as shifts report
    while todo:
        sigma, half = todo.pop(0)
        k = int(min(n - 2, max(16, math.ceil(1.25 * density * 2 * half) + 8)))
        # Symmetric fill-reducing ordering, diagonal pivots preferred: ~2x sparser than COLAMD.
        lu = spla.splu((A - sigma * identity).tocsc(), permc_spec="MMD_AT_PLUS_A",
                       diag_pivot_thresh=0.1, options={"SymmetricMode": True})
        nfact += 1
        op = spla.LinearOperator(A.shape, matvec=lu.solve, dtype=float)
        with _blas_single_thread():
            w, v = spla.eigsh(A, k=k, sigma=sigma, which="LM", OPinv=op)
        rho = float(np.max(np.abs(w - sigma)))
        # the k-th nearest may have an unfound twin at the same distance: cover strictly less
        rho_in = rho * (1.0 - 1e-9)
        covered.append((sigma - rho_in, sigma + rho_in))
        found_w.append(w)
        found_v.append(v)
        density = max(density, k / (2.0 * rho))
        if bar is not None:
            bar.update(1)
        if not todo:
            todo = [((a + b) / 2, (b - a) / 2) for a, b in _gaps(covered, lo, hi)]
            if len(found_w) > 50 * nshift + 100:
                break
    if bar is not None:
        bar.close()
    w = np.concatenate(found_w)
    v = np.concatenate(found_v, axis=1)
    inside = (w >= lo) & (w <= hi)
    w, v = _merge_states(w[inside], v[:, inside])
    return w, v, nfact


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
    """Merge eigenpairs found more than once: within a cluster of equal energies keep an
    orthonormal basis of the span of the vectors (its rank is the multiplicity).
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


def _default_padding(ham: Hamiltonian, lo: float, hi: float, n_states: int
                     ) -> tuple[int, float]:
    """Default padding of 1D segments, in cells, and the localization length estimate.

    The padding must (i) hold a state's tail down to round-off, PADDING_XI localization
    lengths at the window top (Thouless formula), and (ii) cover the pairs that carry the
    conductivity: two states are paired only when their segments overlap, i.e. up to about
    ``2 * padding`` apart. When the window states are sparse (mean distance ``N / n_states``
    beyond 30 xi) even the nearest pairs are that far apart, so the padding is at least twice
    the mean distance between window states.
    """
    d, e = _tridiagonal(ham)
    _, gam = _sturm_counts(d, e, [hi], lyapunov=True)
    h = ham.grid.spacing[0]
    gamma = float(gam[0])  # per cell
    xi_cells = 1.0 / gamma if gamma > 1e-12 else float("inf")
    spacing = 2.0 * ham.size / max(n_states, 1)
    pad = max(PADDING_XI * xi_cells, spacing)
    pad = int(min(max(16.0, math.ceil(pad)), ham.size)) if math.isfinite(pad) else ham.size
    return pad, xi_cells * h


def _solve_segments(ham: Hamiltonian, lo: float, hi: float, segment: int, padding: int,
                    progress: bool = False) -> list[_Block]:
    d, e = _tridiagonal(ham)
    n = d.size
    x = ham.grid.coordinates(0)
    idx = np.arange(n, dtype=float)
    blocks: list[_Block] = []
    nseg = math.ceil(n / segment)
    iterator = range(nseg)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="segments")
    for s in iterator:
        c0, c1 = s * segment, min(n, (s + 1) * segment)
        a, b = max(0, c0 - padding), min(n, c1 + padding)
        if b - a == 1:
            keep_e = d[a:b][(d[a:b] > lo) & (d[a:b] <= hi)]
            w, v = keep_e, np.ones((1, keep_e.size))
        else:
            w, v = sla.eigh_tridiagonal(d[a:b], e[a:b - 1], select="v", select_range=(lo, hi),
                                        lapack_driver="stebz")
        if w.size == 0:
            continue
        wgt = v * v
        cen = (idx[a:b] @ wgt) / wgt.sum(axis=0)  # centroid as a cell index
        keep = (cen >= c0 - 0.5) & (cen < c1 - 0.5)
        if s == nseg - 1:
            keep = cen >= c0 - 0.5
        if not keep.any():
            continue
        vk = v[:, keep]
        blocks.append(_Block(a, b, w[keep], vk, _centroids(vk, x[None, a:b])))
    return blocks


def _window_blocks(ham: Hamiltonian, lo: float, hi: float, method: str, segment, padding,
                   progress: bool):
    """Eigenstates with energies in [lo, hi] and exact counts; returns (blocks, info)."""
    grid = ham.grid
    d1 = grid.ndim == 1 and not grid.periodic
    if method == "auto":
        if d1:
            method = "segments" if (segment is not None or ham.size > WHOLE_CHAIN_MAX) \
                else "tridiagonal"
        else:
            method = "dense" if ham.size <= DENSE_MAX else "shift-invert"
    if method in ("tridiagonal", "segments") and not d1:
        raise InputError(
            f"method={method!r} needs a 1D sample with Dirichlet boundaries (got shape "
            f"{grid.shape}, boundary={grid.boundary!r}); use 'dense' or 'shift-invert'")
    if method == "dense":
        # the dense matrix, its eigenvectors and LAPACK's workspace: ~3 n^2 doubles
        check_memory(ham.size, 24 * ham.size,
                     "method='dense' (use 'shift-invert' for large samples) on a grid")
    t0 = time.perf_counter()
    counts = count_eigenvalues_below(ham, [lo, hi])
    expected = int(counts[1] - counts[0])
    info: dict = {"method": method, "expected_states": expected,
                  "count_lo": int(counts[0]), "count_hi": int(counts[1])}
    coords = _flat_coordinates(grid)
    if method == "segments":
        if padding is None:
            padding, xi = _default_padding(ham, lo, hi, expected)
            info["xi_estimate"] = xi
        padding = int(padding)
        if segment is None:
            segment = max(2 * padding, 64)
        segment = int(segment)
        if padding < 0 or segment < 1:
            raise InputError(f"segment={segment} must be >= 1 and padding={padding} >= 0 cells")
        blocks = _solve_segments(ham, lo, hi, segment, padding, progress)
        found = sum(b.energies.size for b in blocks)
        if found != expected:
            # A state whose centroid sits on a core edge, or a padding too short: retry wider.
            padding2 = 2 * padding + 16
            blocks = _solve_segments(ham, lo, hi, max(segment, 2 * padding2), padding2, progress)
            found = sum(b.energies.size for b in blocks)
            if found != expected:
                raise ConvergenceError(
                    f"segments found {found} states in the window but the Sturm count is "
                    f"{expected}; pass a larger padding= (cells), or method='tridiagonal'")
            padding, segment = padding2, max(segment, 2 * padding2)
        info.update(segment=segment, padding=padding, n_segments=math.ceil(ham.size / segment))
    else:
        if method == "dense":
            w, v = _solve_dense(ham, lo, hi)
        elif method == "tridiagonal":
            w, v = _solve_tridiagonal(ham, lo, hi)
        elif method == "shift-invert":
            w, v, nfact = _solve_shift_invert(ham, lo, hi, expected, progress)
            info["factorisations"] = nfact
        else:
            raise InputError(f"method={method!r} is not known; use one of {METHODS}")
        if w.size != expected:
            raise ConvergenceError(
                f"method {method!r} found {w.size} states in [{lo:g}, {hi:g}] but the inertia "
                f"count is {expected}; try method='dense' on a small sample")
        blocks = [_Block(0, ham.size, w, v, _centroids(v, coords))] if w.size else []
    info["solve_seconds"] = time.perf_counter() - t0
    info["max_residual"] = _max_residual(ham, blocks)
    return blocks, info


def _max_residual(ham: Hamiltonian, blocks: list[_Block]) -> float:
    """Largest ``|H psi - E psi|`` entry over the states found, psi = 0 outside its block."""
    res = 0.0
    if ham.grid.ndim == 1 and not ham.grid.periodic:
        d, e = _tridiagonal(ham)
        for blk in blocks:
            a, b = blk.start, blk.stop
            v = blk.vectors
            r = d[a:b, None] * v - blk.energies * v
            r[:-1] += e[a:b - 1, None] * v[1:]
            r[1:] += e[a:b - 1, None] * v[:-1]
            res = max(res, float(np.abs(r).max(initial=0.0)))
            # leakage into the cells just outside the block
            if a > 0:
                res = max(res, float(np.abs(e[a - 1] * v[0]).max(initial=0.0)))
            if b < d.size:
                res = max(res, float(np.abs(e[b - 1] * v[-1]).max(initial=0.0)))
        return res
    A = ham.matrix("csr")
    for blk in blocks:
        r = A @ blk.vectors - blk.vectors * blk.energies
        res = max(res, float(np.abs(r).max(initial=0.0)))
    return res


# ============================================================================ matrix elements
def position_matrix(vectors: np.ndarray, grid: Grid, vectors2: np.ndarray | None = None,
                    origin: str = "pair") -> np.ndarray:
    """Position matrix elements of eq. (5), ``X[alpha, i, j] = <psi_i | x_alpha | psi_j>``.

    Parameters
    ----------
    vectors
        Eigenvectors as columns, shape ``(n_cells, m)`` (row-major flattened grid), normalised
        so that ``sum_cells |psi|^2 = 1``.
    grid
        The sample grid (cell centres give x_alpha).
    vectors2
        Second set of columns (default: ``vectors``).
    origin
        ``"pair"`` (default) evaluates ``<i|(x - c_ij)|j>`` with ``c_ij`` the midpoint of the
        two centroids (identical for orthogonal states, more accurate for approximate ones);
        ``"grid"`` uses the grid coordinates as they are.

    Returns
    -------
    numpy.ndarray
        Shape ``(d, m, m2)``.
    """
    coords = _flat_coordinates(grid)
    v1 = np.asarray(vectors, dtype=float)
    v2 = v1 if vectors2 is None else np.asarray(vectors2, dtype=float)
    X = np.stack([v1.T @ (c[:, None] * v2) for c in coords])
    if origin == "pair":
        S = v1.T @ v2
        c1, c2 = _centroids(v1, coords), _centroids(v2, coords)
        for a in range(grid.ndim):
            X[a] -= 0.5 * (c1[:, a][:, None] + c2[:, a][None, :]) * S
    elif origin != "grid":
        raise InputError(f"origin={origin!r} must be 'pair' or 'grid'")
    return X


def _velocity_x2(ham: Hamiltonian, va: np.ndarray, vb: np.ndarray, dE: np.ndarray) -> np.ndarray:
    """|X|^2 from the current: X_ab = <a|[H, x]|b> / (E_a - E_b), bonds by minimum image."""
    grid = ham.grid
    d = grid.ndim
    A = va.reshape((*grid.shape, -1))
    B = vb.reshape((*grid.shape, -1))
    out = np.zeros((va.shape[1], vb.shape[1]))
    for ax in range(d):
        h = grid.spacing[ax]
        J = np.zeros_like(out)
        faces = [(slice(None, -1), slice(1, None), ham.couplings[ax])]
        if ham.wrap_couplings[ax] is not None:
            faces.append((slice(-1, None), slice(0, 1), ham.wrap_couplings[ax]))
        for slo, shi, c in faces:
            lo = tuple([slice(None)] * ax + [slo])
            hi = tuple([slice(None)] * ax + [shi])
            cc = np.asarray(c, dtype=float)
            cflat = cc.reshape(-1, 1) if cc.ndim else float(cc)
            Alo, Ahi = A[lo].reshape(-1, A.shape[-1]), A[hi].reshape(-1, A.shape[-1])
            Blo, Bhi = B[lo].reshape(-1, B.shape[-1]), B[hi].reshape(-1, B.shape[-1])
            # [H, x]_{lo,hi} = H_{lo,hi} (x_hi - x_lo) = -c h ; [H, x]_{hi,lo} = +c h
            J += -h * (Alo.T @ (cflat * Bhi) - Ahi.T @ (cflat * Blo))
        out += J * J
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dE != 0, out / (dE * dE), 0.0)


# ============================================================================ the KG sum
class _Accumulator:
    def __init__(self, ham, e_edges, fermi_energy, temperature):
        self.ham = ham
        self.grid = ham.grid
        self.d = ham.grid.ndim
        self.e_edges = e_edges
        self.ef = fermi_energy
        self.T = temperature
        nb = e_edges.size - 1
        self.sums = np.zeros(nb)
        self.pref = 2.0 * math.pi / (self.d * ham.grid.volume)
        self.velocity = ham.grid.periodic

    def add(self, Ea, va, ca, Eb, vb, cb, coords, same: bool):
        """Pairs between two state sets restricted to common cells (``coords``: (d, rows))."""
        dE = Eb[None, :] - Ea[:, None]
        w = np.abs(dE)
        fa, fb = _fermi(Ea, self.ef, self.T), _fermi(Eb, self.ef, self.T)
        weight = np.where(dE > 0, fa[:, None] - fb[None, :], fb[None, :] - fa[:, None])
        mask = (w >= self.e_edges[0]) & (w < self.e_edges[-1]) & (weight > 0)
        if same:
            mask &= np.triu(np.ones(mask.shape, dtype=bool), 1)
        if not mask.any():
            return
        ia = np.nonzero(mask.any(axis=1))[0]
        ib = np.nonzero(mask.any(axis=0))[0]
        mask = mask[np.ix_(ia, ib)]
        va_, vb_ = va[:, ia], vb[:, ib]
        if self.velocity:
            x2 = _velocity_x2(self.ham, va_, vb_, dE[np.ix_(ia, ib)])
        else:
            S = va_.T @ vb_
            x2 = np.zeros(S.shape)
            for a in range(self.d):
                X = va_.T @ (coords[a][:, None] * vb_)
                X -= 0.5 * (ca[ia, a][:, None] + cb[ib, a][None, :]) * S
                x2 += X * X
        wm, wt, xm = w[np.ix_(ia, ib)][mask], weight[np.ix_(ia, ib)][mask], x2[mask]
        k = np.searchsorted(self.e_edges, wm, side="right") - 1
        width = np.diff(self.e_edges)[k]
        self.sums += np.bincount(k, weights=self.pref * wm * wt * xm / width,
                                 minlength=self.sums.size)


def _count_pairs(E: np.ndarray, e_edges: np.ndarray, fermi_energy: float,
                 temperature: float) -> np.ndarray:
    """Pairs (i, j) of window states with E_j - E_i in each bin that can absorb (f_i > f_j).

    At T = 0 these are the pairs with E_i <= E_F <= E_j (not both at E_F); at T > 0 every
    pair with E_j > E_i. Counted from the energies alone, O(m log m) per bin edge.
    """
    E = np.sort(np.asarray(E, dtype=float))
    if temperature == 0.0:
        low = E[E <= fermi_energy]
        high = E[E >= fermi_energy]
        both = int(np.count_nonzero(E == fermi_energy))
    else:
        low = high = E
        both = 0
    # cum[k] = number of pairs with E_j - E_i >= e_k (E_j > E_i for k's with e_k > 0).
    cum = np.array([int(np.sum(high.size - np.searchsorted(high, low + e, side="left")))
                    for e in e_edges])
    del both  # pairs with both states at E_F have E_j - E_i = 0 < e_0: never counted
    return cum[:-1] - cum[1:]


def _check_edges(omega_edges) -> np.ndarray:
    try:
        edges = np.asarray(omega_edges, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"omega_edges must be an array of numbers, got {omega_edges!r}") from None
    if edges.ndim != 1 or edges.size < 2:
        raise InputError(f"omega_edges must be a 1D array of at least 2 bin edges, got shape "
                         f"{edges.shape}")
    if not np.all(np.isfinite(edges)):
        raise InputError("omega_edges contains NaN or infinite values")
    if edges[0] <= 0:
        raise InputError(f"omega_edges must be > 0 (first edge is {edges[0]:g}); the bins are "
                         "angular frequencies of absorption")
    if np.any(np.diff(edges) <= 0):
        i = int(np.nonzero(np.diff(edges) <= 0)[0][0])
        raise InputError(f"omega_edges must be strictly increasing (edge {i + 1} = "
                         f"{edges[i + 1]:g} follows {edges[i]:g})")
    return edges


def _check_scalar(value, name: str, minimum: float | None = None) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{name}={value!r} must be finite")
    if minimum is not None and x < minimum:
        raise InputError(f"{name}={x:g} must be >= {minimum:g}")
    return x


def kubo_greenwood(
    V,
    fermi_energy: float,
    omega_edges,
    spacing=1.0,
    mass=1.0,
    boundary: str = "dirichlet",
    units: str | UnitSystem = "lattice",
    temperature: float = 0.0,
    *,
    method: str = "auto",
    segment: int | None = None,
    padding: int | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Exact bin-averaged Kubo-Greenwood conductivity of one finite sample (eqs. 4-5).

    Parameters
    ----------
    V
        Potential map (1 to 3 axes, energy unit of ``units``), or a prebuilt
        :class:`~mottscape.hamiltonian.Hamiltonian` (then ``spacing``, ``mass``, ``boundary``
        and ``units`` are ignored).
    fermi_energy
        E_F, inside the spectrum of H.
    omega_edges
        Strictly increasing positive angular-frequency bin edges (``units.omega_unit``).
    spacing, mass, boundary, units
        As for :func:`~mottscape.hamiltonian.build_hamiltonian`. With ``boundary="periodic"``
        the velocity form of the matrix elements is used (see the module notes).
    temperature
        kT in energy units (0: step Fermi function, with f(E_F) = 1/2).
    method
        ``"auto"``, ``"dense"``, ``"tridiagonal"``, ``"segments"`` or ``"shift-invert"``.
        ``"auto"`` picks ``"tridiagonal"`` for 1D chains up to 4000 cells and ``"segments"``
        beyond (or whenever ``segment`` is given), ``"dense"`` for 2D/3D samples up to 3000
        cells and ``"shift-invert"`` beyond.
    segment
        Core length of a 1D segment in cells (default ``max(2 * padding, 64)``).
    padding
        Padding of a 1D segment on each side in cells (default: the larger of 30 localization
        lengths, estimated with the Thouless formula at the top of the window, and twice the
        mean distance between window states; at least 16 cells). States are paired only when
        their segments overlap, so the padding also sets the pair cutoff (about
        ``2 * padding``).
    progress
        Show a progress bar over segments or slices.

    Returns
    -------
    xarray.Dataset
        Coordinate ``omega`` (geometric bin centres ``sqrt(w_k w_{k+1})``, with ``omega_lower``
        and ``omega_upper``); variables ``sigma`` (bin-averaged Re sigma, unit in its attrs),
        ``n_pairs`` (pairs with ``f_i > f_j`` whose frequency falls in the bin), ``n_states``
        (eigenstates in the window) and ``dos`` (``n_states / (|Omega| * window width)``, per
        unit volume, energy and spin); attrs give the units, method, window, temperature and
        solver diagnostics.

    Raises
    ------
    InputError
        On invalid edges, a Fermi energy outside the spectrum, a negative temperature, or an
        unknown method.
    ConvergenceError
        If the windowed solver misses states (checked against an exact inertia count).

    Notes
    -----
    Each pair (i, j), ``E_j > E_i``, with ``omega_ij = (E_j - E_i)/hbar`` in bin k adds
    ``(2 pi e^2 omega_ij / (d |Omega|)) (f_i - f_j) |X_ji|^2 / hbar / (w_{k+1} - w_k)``
    (spin factor 2, isotropic average) with X from eq. (5); bins are half-open
    ``[w_k, w_{k+1})``. No broadening: the bin averages are exact for the finite sample.
    """
    ham = _as_hamiltonian(V, spacing, mass, boundary, units)
    u = ham.units
    grid = ham.grid
    edges = _check_edges(omega_edges)
    ef = _check_scalar(fermi_energy, "fermi_energy")
    T = _check_scalar(temperature, "temperature", minimum=0.0)
    if method not in METHODS:
        raise InputError(f"method={method!r} is not known; use one of {METHODS}")
    e_edges = np.asarray(u.omega_to_energy(edges), dtype=float)
    half = float(e_edges[-1]) + KT_WINDOW * T
    lo, hi = ef - half, ef + half
    blocks, info = _window_blocks(ham, lo, hi, method, segment, padding, progress)
    # Eigenvalues below E_F = those below the window plus the window states below E_F.
    n_below_ef = info["count_lo"] + sum(int(np.count_nonzero(b.energies < ef)) for b in blocks)
    n_above_ef = (ham.size - info["count_hi"]) + sum(
        int(np.count_nonzero(b.energies > ef)) for b in blocks)
    if n_below_ef == 0 or n_above_ef == 0:
        glo, ghi = _gershgorin(ham)
        where = "below the lowest" if n_below_ef == 0 else "above the highest"
        raise InputError(
            f"fermi_energy={ef:g} lies {where} eigenvalue of H (spectrum within "
            f"[{glo:.4g}, {ghi:.4g}]); choose E_F inside the spectrum, e.g. in the band tail")
    t0 = time.perf_counter()
    acc = _Accumulator(ham, e_edges, ef, T)
    coords = _flat_coordinates(grid)
    for bi, A in enumerate(blocks):
        for B in blocks[bi:]:
            s, t = max(A.start, B.start), min(A.stop, B.stop)
            if s >= t:
                if B.start >= A.stop:
                    break  # 1D segments are ordered: no later block overlaps A
                continue
            va = A.vectors[s - A.start:t - A.start]
            vb = B.vectors[s - B.start:t - B.start]
            acc.add(A.energies, va, A.centroids, B.energies, vb, B.centroids,
                    coords[:, s:t], same=B is A)
    info["pairs_seconds"] = time.perf_counter() - t0
    n_states = sum(b.energies.size for b in blocks)
    all_e = np.concatenate([b.energies for b in blocks]) if blocks else np.zeros(0)
    n_pairs = _count_pairs(all_e, e_edges, ef, T)
    factor = u.sigma_factor(grid.ndim)
    centres = np.sqrt(edges[:-1] * edges[1:])
    ds = xr.Dataset(
        {
            "sigma": ("omega", acc.sums * factor, {
                "units": u.sigma_unit(grid.ndim),
                "long_name": "exact bin-averaged Re sigma (Kubo-Greenwood, eqs. 4-5)"}),
            "n_pairs": ("omega", n_pairs, {
                "long_name": "pairs (i, j) of window states with omega_ij in the bin and "
                             "f_i > f_j (T = 0: E_i <= E_F <= E_j)"}),
            "n_states": ((), n_states, {"long_name": "eigenstates in the energy window"}),
            "dos": ((), n_states / (grid.volume * (hi - lo)), {
                "units": f"1/({u.energy_unit} * {u.length_unit}^{grid.ndim})",
                "long_name": "exact DOS per unit volume and spin, averaged over the window"}),
        },
        coords={
            "omega": ("omega", centres, {"units": u.omega_unit,
                                         "long_name": "geometric bin centre"}),
            "omega_lower": ("omega", edges[:-1], {"units": u.omega_unit}),
            "omega_upper": ("omega", edges[1:], {"units": u.omega_unit}),
        },
        attrs={
            "quantity": "exact Kubo-Greenwood conductivity (eqs. 4-5), spin factor 2",
            "units_system": u.name,
            "method": info["method"],
            "fermi_energy": ef,
            "temperature": T,
            "window": np.array([lo, hi]),
            "window_units": u.energy_unit,
            "matrix_elements": "velocity form <j|[H,x]|i>/(E_j-E_i)" if grid.periodic
            else "position form <j|x - c_ij|i>",
            "boundary": grid.boundary,
            "shape": np.array(grid.shape),
            "spacing": np.array(grid.spacing),
            "max_residual": info["max_residual"],
            "solve_seconds": info["solve_seconds"],
            "pairs_seconds": info["pairs_seconds"],
        },
    )
    for key in ("segment", "padding", "n_segments", "xi_estimate", "factorisations"):
        if key in info:
            ds.attrs[key] = info[key]
    return ds


# ============================================================================ helpers
def exact_eigenstates(
    ham_or_V,
    emin: float,
    emax: float,
    spacing=1.0,
    mass=1.0,
    boundary: str = "dirichlet",
    units: str | UnitSystem = "lattice",
    *,
    method: str = "auto",
    segment: int | None = None,
    padding: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """All eigenpairs of H with energies in ``[emin, emax]``, checked complete by inertia.

    Parameters
    ----------
    ham_or_V
        A :class:`~mottscape.hamiltonian.Hamiltonian` or a potential map (then built with
        ``spacing``, ``mass``, ``boundary``, ``units``).
    emin, emax
        The energy window.
    method, segment, padding, progress
        As for :func:`kubo_greenwood`.

    Returns
    -------
    energies : numpy.ndarray
        Sorted, shape ``(m,)``.
    vectors : numpy.ndarray
        Shape ``(n_cells, m)`` on the row-major flattened grid, ``sum |psi|^2 = 1`` per column
        (dense even for the segmented method: n_cells * m * 8 bytes).
    """
    ham = _as_hamiltonian(ham_or_V, spacing, mass, boundary, units)
    lo = _check_scalar(emin, "emin")
    hi = _check_scalar(emax, "emax")
    if hi <= lo:
        raise InputError(f"emax={hi:g} must be > emin={lo:g}")
    if method not in METHODS:
        raise InputError(f"method={method!r} is not known; use one of {METHODS}")
    blocks, _ = _window_blocks(ham, lo, hi, method, segment, padding, progress)
    m = sum(b.energies.size for b in blocks)
    E = np.zeros(m)
    vec = np.zeros((ham.size, m))
    j = 0
    for b in blocks:
        k = b.energies.size
        E[j:j + k] = b.energies
        vec[b.start:b.stop, j:j + k] = b.vectors
        j += k
    order = np.argsort(E, kind="stable")
    return E[order], vec[:, order]


def lowest_eigenvalues(
    V,
    k: int,
    spacing=1.0,
    mass=1.0,
    boundary: str = "dirichlet",
    units: str | UnitSystem = "lattice",
) -> np.ndarray:
    """The ``k`` lowest exact eigenvalues of H (eq. 3), sorted.

    1D Dirichlet chains use bisection on the tridiagonal matrix, samples up to
    ``DENSE_MAX`` cells dense ``eigvalsh``, larger ones shift-invert Lanczos with the shift
    below the Gershgorin bound (so the ``k`` nearest eigenvalues are the ``k`` lowest).
    """
    ham = _as_hamiltonian(V, spacing, mass, boundary, units)
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise InputError(f"k must be a positive integer, got {k!r}") from None
    if not 1 <= k <= ham.size:
        raise InputError(f"k={k} must be between 1 and the number of cells ({ham.size})")
    if ham.grid.ndim == 1 and not ham.grid.periodic and ham.size > 1:
        d, e = _tridiagonal(ham)
        return sla.eigh_tridiagonal(d, e, eigvals_only=True, select="i",
                                    select_range=(0, k - 1))
    with _blas_single_thread():
        if ham.size <= DENSE_MAX or k >= ham.size - 1:
            return sla.eigvalsh(ham.matrix().toarray(), subset_by_index=(0, k - 1))
        glo, _ = _gershgorin(ham)
        sigma = glo - 1e-3 * max(1.0, abs(glo))
        w = spla.eigsh(ham.matrix("csc"), k=k, sigma=sigma, which="LM",
                       return_eigenvectors=False)
    return np.sort(w)


def exact_dos(
    V,
    energy_edges,
    spacing=1.0,
    mass=1.0,
    boundary: str = "dirichlet",
    units: str | UnitSystem = "lattice",
) -> xr.Dataset:
    """Exact IDOS and bin-averaged DOS per unit volume and spin from eigenvalue counts.

    Parameters
    ----------
    V
        Potential map or :class:`~mottscape.hamiltonian.Hamiltonian`.
    energy_edges
        Strictly increasing energies.

    Returns
    -------
    xarray.Dataset
        ``idos`` on ``energy_edge`` (eigenvalues below each edge per unit volume), ``count``
        and ``dos`` (``count / (|Omega| dE)``) on ``energy`` (bin centres).

    Notes
    -----
    Uses only inertia counts (Sturm sequences in 1D, unpivoted sparse LDL^T otherwise), so no
    eigenvector is computed: comparable with the landscape-law IDOS and DOS.
    """
    ham = _as_hamiltonian(V, spacing, mass, boundary, units)
    try:
        edges = np.asarray(energy_edges, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"energy_edges must be numbers, got {energy_edges!r}") from None
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) \
            or np.any(np.diff(edges) <= 0):
        raise InputError("energy_edges must be a finite, strictly increasing 1D array of at "
                         "least 2 energies")
    if ham.grid.ndim == 1 and not ham.grid.periodic and edges.size > 4:
        counts = _sturm_counts_vec(*_tridiagonal(ham), edges)
    else:
        counts = count_eigenvalues_below(ham, edges)
    vol = ham.grid.volume
    u = ham.units
    nb = np.diff(counts)
    d = ham.grid.ndim
    return xr.Dataset(
        {
            "idos": ("energy_edge", counts / vol,
                     {"units": f"1/{u.length_unit}^{d}", "long_name": "exact IDOS per volume"}),
            "count": ("energy", nb),
            "dos": ("energy", nb / (vol * np.diff(edges)),
                    {"units": f"1/({u.energy_unit} * {u.length_unit}^{d})",
                     "long_name": "exact DOS per unit volume and spin (bin average)"}),
        },
        coords={"energy_edge": edges, "energy": 0.5 * (edges[:-1] + edges[1:])},
        attrs={"units_system": u.name, "energy_units": u.energy_unit},
    )


def _sturm_counts_vec(diag: np.ndarray, off: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Sturm counts for many energies at once (vectorised over the energies)."""
    E = np.asarray(energies, dtype=float)
    b2 = off * off
    pivmin = float(np.finfo(float).tiny) * max(1.0, float(np.max(b2, initial=1.0)))
    d = diag[0] - E
    d = np.where(np.abs(d) < pivmin, -pivmin, d)
    c = (d < 0).astype(np.int64)
    for i in range(1, diag.size):
        d = (diag[i] - E) - b2[i - 1] / d
        d = np.where(np.abs(d) < pivmin, -pivmin, d)
        c += d < 0
    return c
