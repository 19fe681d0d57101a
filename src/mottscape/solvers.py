"""Matrix-free solvers of the landscape problem H u = f (eq. 2) on the grid of eq. (3).

Two methods share one stencil representation of :class:`~mottscape.hamiltonian.Hamiltonian`:

``"cg"``
    Jacobi-preconditioned conjugate gradients, written as plain CG on the symmetrically scaled
    operator ``S H S`` with ``S = diag(H)^(-1/2)`` (the same Krylov iterates as Jacobi-PCG, but the
    scaled operator has a unit diagonal, so the kernels need no divisions). Each iteration is two
    fused passes over memory (about 10 arrays streamed per iteration for a uniform mass), which
    is what makes it fast for strongly disordered lattice models, where Jacobi-CG converges in a
    few dozen iterations whatever the grid size.
``"mg"``
    Conjugate gradients preconditioned by one geometric multigrid V-cycle (MGCG) for the
    variable-coefficient cell-centred operator. The iteration count is independent of the grid
    size, which is what the continuum limit (smooth potentials on fine grids) needs, where the
    condition number of H grows like 1/h^2 and Jacobi-CG needs hundreds of iterations.
``"auto"``
    Estimates the Jacobi-CG iteration count from the condition number of the Jacobi-scaled
    operator and picks ``"cg"`` when it is small (see :func:`choose_method`).

Why hand-written kernels: scipy offers only assembled sparse matrices (assembling H costs more
than the whole stencil solve and triples the memory traffic per iteration), and pyamg builds an
algebraic hierarchy whose setup alone costs several Jacobi-CG solves; no library provides a
matrix-free, cell-centred, variable-coefficient geometric multigrid for this operator (harmonic
face masses, Dirichlet ghost cells or periodic wrap, per-axis spacing). The kernels are compiled
with numba (``parallel=True``, ``fastmath=False``, ``cache=True``) and live in the private
module :mod:`mottscape._stencil_kernels`; this module is the public layer over them.

Multigrid details
-----------------
Coarsening aggregates 2 cells per coarsened axis (the last aggregate holds one cell when the
axis length is odd); an axis whose couplings are much weaker than the strongest axis is not
coarsened (semi-coarsening for strongly anisotropic spacing). Transfers are piecewise constant:
restriction sums the fine residual over the aggregate (``R = P^T``) and prolongation copies the
coarse correction to every fine cell of the aggregate (``P``). Coarse operators are written in
integrated (volume-weighted) form, so they stay symmetric for aggregates of unequal size:

* potential: ``V_c = sum of V over the aggregate`` (exactly the Galerkin ``P^T diag(V) P``);
* kinetic: the conductance across a coarse face is the sum, over the fine "tubes" that cross
  it, of ``1 / R_tube``, where the tube's resistance runs in series from the coarse centre to
  the next coarse centre: ``R = 1/(2 c_in,I) + 1/c_cross + 1/(2 c_in,J)`` (``c_in`` is the fine
  coupling inside an aggregate of two cells, zero resistance for a one-cell aggregate). For a
  uniform coupling ``c`` this gives ``c/2`` per tube, i.e. half the piecewise-constant Galerkin
  coupling, which is the coarse re-discretisation ``K / (m (2h)^2)`` in integrated form (the
  Galerkin product over-weights the kinetic part by 2 with constant transfers, and a V-cycle
  built on it does not converge uniformly in h: on the smooth test field refined from 64^2 to
  512^2, MGCG took 16, 24, 34, 49 iterations with it and 8, 8, 9, 9 with this rule). Harmonic
  along the axis and arithmetic across
  it, the rule stays accurate for jumping masses;
* Dirichlet faces: the ghost coupling ``c_b`` of the fine boundary cell is combined in series
  with the half internal link, ``1/(1/(2 c_in) + 1/c_b)``, and added to the coarse diagonal.

The coarse diagonal is the coarse potential plus the sum of the coarse face conductances, so
every coarse operator is a symmetric, weakly diagonally dominant M-matrix, positive definite
whenever the fine one is (V >= 0 and not the periodic V = 0 case). Smoothing is red-black
Gauss-Seidel, red then black before the coarse correction and black then red after it, so the
V-cycle is a symmetric positive definite preconditioner and CG applies. The coarsest grid
(at most ``coarse_size`` cells) is solved by a sparse LU factorisation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ._stencil_kernels import (  # the numba kernels
    _apply_uniform,
    _apply_var,
    _apply_var_dot,
    _cg_direction_uniform,
    _cg_direction_var,
    _cg_step,
    _cg_update_uniform,
    _cg_update_var,
    _dot,
    _prolong_add,
    _rbgs,
    _rbgs_zero,
    _residual_restrict,
    _xpby,
)
from .errors import InputError
from .hamiltonian import Hamiltonian

__all__ = [
    "METHODS",
    "Multigrid",
    "SolveResult",
    "choose_method",
    "estimate_cg_iterations",
    "solve_stencil",
    "stencil_matvec",
]

METHODS = ("auto", "cg", "mg")

#: Multigrid levels with fewer cells than this run their kernels on one thread: a parallel
#: region ends in a barrier, and on a shared machine one descheduled thread stalls it for a
#: scheduler tick (~10 ms measured), far longer than the work on a small level.
SERIAL_BELOW = 1 << 16

#: Whole solves on grids smaller than this run on one thread unless ``threads`` is given: they
#: take milliseconds, and measured on a busy 2-core machine two threads were up to 10x slower
#: than one on 256^2 (barrier stalls), while on a quiet machine they gain at most 2x.
SERIAL_SOLVE_BELOW = 1 << 17

#: ``"auto"`` picks Jacobi-CG when it is predicted to converge in fewer iterations than this.
#: One MGCG iteration costs about as much memory traffic as 6-8 fused Jacobi-CG iterations and
#: MGCG needs about 8-12 iterations at tol = 1e-10, so the break-even is near 60-80.
AUTO_CG_MAX_ITERATIONS = 60


@dataclass(frozen=True)
class SolveResult:
    """Result of :func:`solve_stencil`.

    Attributes
    ----------
    u
        The solution, with the grid's shape.
    iterations
        Number of (preconditioned) CG iterations.
    residual
        Relative residual ``||f - H u|| / ||f||`` of the returned ``u`` (recomputed with the
        stencil, not the recursively updated one).
    converged
        ``residual <= tol``.
    method
        The method that ran: ``"cg"`` or ``"mg"`` (``"auto"`` is resolved).
    info
        Diagnostics: setup and solve times in seconds, multigrid levels, the auto estimate.
    """

    u: np.ndarray
    iterations: int
    residual: float
    converged: bool
    method: str
    info: dict = field(default_factory=dict, repr=False, compare=False)


# ============================================================================ operator views


def _as3(a: np.ndarray) -> np.ndarray:
    """View a 1D/2D/3D grid array in 3D form (leading axes of length 1)."""
    return a.reshape((1,) * (3 - a.ndim) + a.shape)


def _shape3(shape: tuple[int, ...]) -> tuple[int, int, int]:
    a, b, c = (1,) * (3 - len(shape)) + tuple(shape)
    return a, b, c


_DUMMY = np.zeros((1, 1, 1))


def _low_face_arrays(ham: Hamiltonian) -> list[np.ndarray]:
    """The low-face coupling arrays W_a in 3D form (``_DUMMY`` for axes of length 1)."""
    shape = ham.shape
    d = len(shape)
    out = [_DUMMY] * (3 - d)
    for a in range(d):
        if shape[a] == 1:
            out.append(_DUMMY)
            continue
        W = np.empty(shape)
        lo = [slice(None)] * d
        lo[a] = slice(1, None)
        W[tuple(lo)] = ham.couplings[a]
        first = [slice(None)] * d
        first[a] = slice(0, 1)
        cw = ham.wrap_couplings[a]
        W[tuple(first)] = 0.0 if cw is None else cw
        out.append(_as3(W))
    return out


def _uniform_coefficients(ham: Hamiltonian) -> tuple[np.ndarray, np.ndarray]:
    """Scalar interior and wrap couplings per axis in 3D form (zeros on missing axes)."""
    d = ham.grid.ndim
    c = np.zeros(3)
    cw = np.zeros(3)
    for a in range(d):
        if ham.shape[a] > 1:
            c[3 - d + a] = float(ham.couplings[a])
            if ham.wrap_couplings[a] is not None:
                cw[3 - d + a] = float(ham.wrap_couplings[a])
    return c, cw


def _is_uniform(ham: Hamiltonian) -> bool:
    return all(np.ndim(c) == 0 for c in ham.couplings)


def stencil_matvec(ham: Hamiltonian, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Apply H to a grid-shaped ``x`` with the compiled stencil kernels.

    Parameters
    ----------
    ham
        The Hamiltonian.
    x
        Array of the grid's shape (or flat with the grid's size).
    out
        Optional C-contiguous float64 output array of the grid's shape.

    Returns
    -------
    numpy.ndarray
        ``H x`` with the grid's shape.
    """
    x3 = _as3(np.ascontiguousarray(np.asarray(x, dtype=float).reshape(ham.shape)))
    if out is not None and (out.shape != ham.shape or not out.flags.c_contiguous
                            or out.dtype != np.float64):
        raise InputError("out must be a C-contiguous float64 array of the grid's shape")
    y = np.empty(ham.shape) if out is None else out
    y3 = _as3(y)
    D = _as3(np.ascontiguousarray(ham.diagonal, dtype=float))
    if _is_uniform(ham):
        c, cw = _uniform_coefficients(ham)
        _apply_uniform(D, c, cw, x3, y3)
    else:
        W = _low_face_arrays(ham)
        _apply_var(D, W[0], W[1], W[2], x3, y3)
    return y


# ============================================================================ method choice


def estimate_cg_iterations(ham: Hamiltonian, tol: float = 1e-10) -> float:
    """Predicted Jacobi-CG iterations from an estimate of the scaled condition number.

    ``kappa ~ max(D) / (mean(V) + lambda_box)``, with ``lambda_box`` the lowest eigenvalue of the
    kinetic operator alone in the box (zero for periodic axes) and the CG bound
    ``n ~ sqrt(kappa)/2 * ln(2/tol)``. At tol = 1e-10: for the Anderson model with box
    disorder [0, 4] at unit spacing this gives 24 (2D) and 27 (3D), measured 29-30; for the
    smooth benchmark field (spacing 0.1, 10 cells per correlation length, min V = 0) it gives
    124, measured 257. It is a rough, cheap predictor (one pass over V and the diagonal),
    good enough to separate the two regimes, which differ by an order of magnitude.
    """
    V = np.asarray(ham.potential, dtype=float)
    dmax = float(np.max(ham.diagonal))
    vtyp = max(float(np.mean(V)), 0.0)
    lam_box = 0.0
    if not ham.grid.periodic:
        for a, n in enumerate(ham.shape):
            cmin = float(np.min(ham.couplings[a])) if n > 1 else 0.0
            lam_box += cmin * (math.pi / (n + 1)) ** 2 if n > 1 else 0.0
    lam = vtyp + lam_box
    if lam <= 0.0:
        return math.inf
    kappa = max(dmax / lam, 1.0)
    return 0.5 * math.sqrt(kappa) * math.log(2.0 / max(tol, 1e-300))


def choose_method(ham: Hamiltonian, tol: float = 1e-10) -> str:
    """The ``"auto"`` rule: Jacobi-CG when it converges fast enough, else multigrid.

    ``"cg"`` if the Jacobi-CG estimate is below :data:`AUTO_CG_MAX_ITERATIONS` or the grid is
    tiny, else ``"mg"``.
    """
    if ham.size <= 4096:
        return "cg"
    est = estimate_cg_iterations(ham, tol)
    return "cg" if est <= AUTO_CG_MAX_ITERATIONS else "mg"


# ============================================================================ Jacobi-CG


def _rhs3(b: np.ndarray, shape3: tuple[int, int, int]) -> np.ndarray:
    """The right-hand side in 3D form: a broadcast view (all strides 0) stays a view."""
    if b.ndim and not any(b.strides):
        return b.reshape(shape3)
    return np.ascontiguousarray(b, dtype=float).reshape(shape3)


def _default_maxiter(ham: Hamiltonian) -> int:
    return 20 * round(ham.size ** (1.0 / ham.grid.ndim)) + 200


def _cg_operators(ham: Hamiltonian, D: np.ndarray, S: np.ndarray):
    """The fused kernels of Jacobi-CG for ``ham``: (direction, update, apply).

    Uniform couplings use the tiled scalar-coefficient kernels; otherwise the scaled couplings
    W~_a = S W_a S_{-e_a} are precomputed and the variable-coefficient kernels stream them.
    """
    if _is_uniform(ham):
        c, cw = _uniform_coefficients(ham)

        def direction(r, p_old, p_new, beta):
            return _cg_direction_uniform(S, c, cw, r, p_old, p_new, beta)

        def update(p, y, r, alpha):
            return _cg_update_uniform(S, c, cw, p, y, r, alpha)

        def apply(x, out):
            _apply_uniform(D, c, cw, x, out)
    else:
        W = _low_face_arrays(ham)
        T = []
        for a, Wa in enumerate(W):
            if Wa is _DUMMY:
                T.append(_DUMMY)
            else:
                Sm = np.roll(S, 1, axis=a)  # S at i - e_a (wrapped; W_a = 0 there if Dirichlet)
                T.append(np.ascontiguousarray(S * Wa * Sm))

        def direction(r, p_old, p_new, beta):
            return _cg_direction_var(T[0], T[1], T[2], r, p_old, p_new, beta)

        def update(p, y, r, alpha):
            return _cg_update_var(T[0], T[1], T[2], p, y, r, alpha)

        def apply(x, out):
            _apply_var(D, W[0], W[1], W[2], x, out)

    return direction, update, apply


def _cg(ham: Hamiltonian, b: np.ndarray, x0: np.ndarray | None, tol: float,
        maxiter: int) -> tuple[np.ndarray, int, float]:
    """Jacobi-CG as plain CG on S H S; returns (x, iterations, true relative residual)."""
    shape3 = _shape3(ham.shape)
    D = np.ascontiguousarray(ham.diagonal, dtype=float).reshape(shape3)
    if np.any(D <= 0):
        raise InputError("H has a non-positive diagonal; it is not positive definite")
    S = np.sqrt(D)
    np.divide(1.0, S, out=S)  # S = 1 / sqrt(D), without a temporary of the grid's size
    b3 = _rhs3(b, shape3)
    bnorm = float(np.linalg.norm(b3))
    if bnorm == 0.0:
        return np.zeros(ham.shape), 0, 0.0
    direction, update, apply = _cg_operators(ham, D, S)
    x = (b3 / D) if x0 is None else np.array(x0, dtype=float).reshape(shape3)
    # Four work arrays of the grid's size besides x, S and b, each written in place: the
    # same operations on the same operands as the textbook expressions noted beside them
    # (so the same iterates), without their temporaries (which cost 3 more arrays at peak).
    work = np.empty(shape3)
    r = np.empty(shape3)
    p = np.empty(shape3)
    iterations = 0
    target = tol
    previous = math.inf
    while True:
        apply(x, work)
        np.subtract(b3, work, out=r)  # b - H x
        true_res = float(np.linalg.norm(r)) / bnorm
        if true_res <= tol or iterations >= maxiter:
            return x.reshape(ham.shape), iterations, true_res
        r *= S  # the scaled residual S (b - H x)
        y = np.divide(x, S, out=x)  # y = x / S; x is formed again from y below
        # CG on A~ y = S b; stop when ||r~|| <= target * ||S b|| and check the true residual.
        stop = target * float(np.linalg.norm(np.multiply(S, b3, out=p)))
        rr = float(np.vdot(r, r))
        p.fill(0.0)
        p_new = work
        beta = 0.0
        while iterations < maxiter and math.sqrt(rr) > stop:
            pq = direction(r, p, p_new, beta)
            p, p_new = p_new, p
            if pq <= 0.0:
                break
            alpha = rr / pq
            rr_new = update(p, y, r, alpha)
            beta = rr_new / rr
            rr = rr_new
            iterations += 1
        work = p_new
        x = np.multiply(S, y, out=y)  # x = S y
        # The scaled and unscaled residual norms differ; tighten and restart if needed.
        apply(x, work)
        true_res = float(np.linalg.norm(np.subtract(b3, work, out=r))) / bnorm
        if true_res <= tol or iterations >= maxiter or true_res > 0.5 * previous:
            # converged, out of iterations, or stagnating at the rounding floor
            return x.reshape(ham.shape), iterations, true_res
        previous = true_res
        target *= 0.5 * tol / true_res


# ============================================================================ multigrid


@dataclass
class _Level:
    D: np.ndarray  # diagonal (3D form)
    W: list  # low-face couplings per axis (3D form, _DUMMY for axes of length 1)
    Vp: np.ndarray  # potential part (integrated)
    Blo: list  # Dirichlet ghost coupling of the first cell per axis (transverse arrays) or None
    Bhi: list
    f: tuple = (1, 1, 1)  # coarsening factors to the next level
    x: np.ndarray | None = None
    b: np.ndarray | None = None


def _agg_sum(a: np.ndarray, axis: int, f: int) -> np.ndarray:
    """Sum consecutive pairs along ``axis`` (odd length: the last element stays alone)."""
    if f == 1:
        return a
    n = a.shape[axis]
    if n % 2:
        pad = [(0, 0)] * a.ndim
        pad[axis] = (0, 1)
        a = np.pad(a, pad)
    shp = (*a.shape[:axis], a.shape[axis] // 2, 2, *a.shape[axis + 1:])
    return a.reshape(shp).sum(axis=axis + 1)


def _take(a: np.ndarray, axis: int, idx) -> np.ndarray:
    sl = [slice(None)] * a.ndim
    sl[axis] = idx
    return a[tuple(sl)]


def _half_internal(W: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Half the internal resistance 1/(2 c_in) of each aggregate along ``axis`` (0 if one cell)."""
    nc = (n + 1) // 2
    shp = list(W.shape)
    shp[axis] = nc
    h = np.zeros(shp)
    npair = n // 2
    if npair:
        cin = _take(W, axis, slice(1, 2 * npair, 2))  # coupling between 2I and 2I+1
        _take(h, axis, slice(0, npair))[...] = 0.5 / cin
    return h


def _safe_inv(a: np.ndarray) -> np.ndarray:
    out = np.zeros_like(a)
    np.divide(1.0, a, out=out, where=a > 0)
    return out


def _coarsen(lev: _Level, f: tuple[int, int, int]) -> _Level:
    """Build the next coarser level (see the module docstring for the rules)."""
    shape = lev.D.shape
    cshape = tuple((n + fa - 1) // fa for n, fa in zip(shape, f, strict=True))
    Vp = lev.Vp
    for a in range(3):
        Vp = _agg_sum(Vp, a, f[a])
    Wc: list = []
    Blo: list = []
    Bhi: list = []
    for a in range(3):
        Wc.append(_coarse_coupling(lev, f, a, cshape[a]))
        glo, ghi = _coarse_ghosts(lev, f, a, cshape[a])
        Blo.append(glo)
        Bhi.append(ghi)
    D = _assemble_diagonal(Vp, Wc, Blo, Bhi)
    return _Level(D=D, W=Wc, Vp=Vp, Blo=Blo, Bhi=Bhi)


def _coarse_coupling(lev: _Level, f: tuple[int, int, int], a: int, nc: int):
    """Coarse couplings along axis ``a``: fine links in series across, summed along faces."""
    if nc == 1 or lev.W[a] is _DUMMY:
        return _DUMMY
    W = lev.W[a]
    if f[a] == 2:
        h = _half_internal(W, a, W.shape[a])  # shape with nc along a
        cross = _take(W, a, slice(0, None, 2))  # low face of fine cell 2I
        hprev = np.roll(h, 1, axis=a)  # aggregate I-1 (I=0 wraps to the last)
        R = hprev + _safe_inv(cross) + h
        G = np.where(cross > 0, 1.0 / np.where(cross > 0, R, 1.0), 0.0)
    else:
        G = W.copy()
    for b_ in range(3):
        if b_ != a:
            G = _agg_sum(G, b_, f[b_])
    return np.ascontiguousarray(G)


def _coarse_ghosts(lev: _Level, f: tuple[int, int, int], a: int, nc: int):
    """Dirichlet ghost couplings along axis ``a``, in series with the half internal link."""
    lo, hi = lev.Blo[a], lev.Bhi[a]
    if lo is None:
        return None, None
    if f[a] == 2:
        shape = lev.D.shape
        h = _half_internal(lev.W[a] if lev.W[a] is not _DUMMY else np.zeros(shape), a,
                           shape[a])
        h0 = _take(h, a, slice(0, 1))
        hl = _take(h, a, slice(nc - 1, nc))
        glo = 1.0 / (h0 + 1.0 / lo)
        ghi = 1.0 / (hl + 1.0 / hi)
    else:
        glo, ghi = lo, hi
    for b_ in range(3):
        if b_ != a:
            glo = _agg_sum(glo, b_, f[b_])
            ghi = _agg_sum(ghi, b_, f[b_])
    return glo, ghi


def _assemble_diagonal(Vp, W, Blo, Bhi) -> np.ndarray:
    D = np.array(Vp, dtype=float, copy=True)
    for a in range(3):
        if W[a] is not _DUMMY:
            D += W[a] + np.roll(W[a], -1, axis=a)
        if Blo[a] is not None:
            _take(D, a, slice(0, 1))[...] += Blo[a]
            _take(D, a, slice(D.shape[a] - 1, None))[...] += Bhi[a]
    return np.ascontiguousarray(D)


def _level_matrix(lev: _Level) -> sp.csr_matrix:
    """Assemble a level operator as a sparse matrix (coarsest solve and tests)."""
    shape = lev.D.shape
    n = lev.D.size
    idx = np.arange(n).reshape(shape)
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [lev.D.ravel()]
    for a in range(3):
        if lev.W[a] is _DUMMY:
            continue
        nb = np.roll(idx, 1, axis=a)  # i - e_a (wrapped)
        w = lev.W[a].ravel()
        keep = w != 0
        i, j = idx.ravel()[keep], nb.ravel()[keep]
        rows += [i, j]
        cols += [j, i]
        vals += [-w[keep], -w[keep]]
    return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, n)).tocsr()


class Multigrid:
    """Cell-centred geometric multigrid hierarchy for a :class:`Hamiltonian`.

    Parameters
    ----------
    ham
        The fine-grid operator.
    coarse_size
        Stop coarsening when a level has at most this many cells.
    smooth
        Red-black Gauss-Seidel sweeps before and after each coarse correction.
    cycle
        ``"V"`` or ``"W"``.

    Notes
    -----
    :meth:`precondition` applies one cycle from a zero initial guess; it is a symmetric
    positive definite approximation of ``H^-1`` and is used as the CG preconditioner by
    :func:`solve_stencil` (method ``"mg"``).
    """

    def __init__(self, ham: Hamiltonian, coarse_size: int = 512, smooth: int = 2,
                 cycle: str = "V") -> None:
        if cycle not in ("V", "W"):
            raise InputError(f"cycle={cycle!r} must be 'V' or 'W'")
        self.smooth = int(smooth)
        self.cycle = cycle
        shape3 = _shape3(ham.shape)
        d = ham.grid.ndim
        D = np.ascontiguousarray(ham.diagonal, dtype=float).reshape(shape3)
        W = _low_face_arrays(ham)
        Blo: list = [None] * 3
        Bhi: list = [None] * 3
        if not ham.grid.periodic:
            K = ham.units.kinetic
            m = np.asarray(ham.mass, dtype=float).reshape(shape3)
            for a in range(3 - d, 3):
                h2 = ham.grid.spacing[a - (3 - d)] ** 2
                Blo[a] = np.ascontiguousarray(K / (_take(m, a, slice(0, 1)) * h2))
                Bhi[a] = np.ascontiguousarray(K / (_take(m, a, slice(shape3[a] - 1, None)) * h2))
        Vp = np.ascontiguousarray(ham.potential, dtype=float).reshape(shape3)
        self.levels: list[_Level] = [_Level(D=D, W=W, Vp=Vp, Blo=Blo, Bhi=Bhi)]
        while self.levels[-1].D.size > coarse_size:
            lev = self.levels[-1]
            f = self._factors(lev)
            if f == (1, 1, 1):
                break
            lev.f = f
            self.levels.append(_coarsen(lev, f))
        for lev in self.levels[1:]:
            lev.x = np.zeros(lev.D.shape)
            lev.b = np.zeros(lev.D.shape)
        self._coarse_lu = spla.splu(_level_matrix(self.levels[-1]).tocsc())

    @staticmethod
    def _factors(lev: _Level) -> tuple[int, int, int]:
        strength = [float(np.mean(w)) if (w is not _DUMMY and lev.D.shape[a] > 1) else 0.0
                    for a, w in enumerate(lev.W)]
        smax = max(strength)
        f = []
        for a in range(3):
            n = lev.D.shape[a]
            ok = n > 1 and (lev.W[a] is not _DUMMY or lev.Blo[a] is not None)
            # Semi-coarsening: leave an axis whose couplings are > 3x weaker than the strongest.
            f.append(2 if ok and strength[a] * 3.0 >= smax else 1)
        return f[0], f[1], f[2]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """Grid shapes (3D form) of the levels, fine to coarse."""
        return [lev.D.shape for lev in self.levels]

    def precondition(self, r: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = B r`` with B one cycle from a zero initial guess (3D-form arrays)."""
        threads = numba.get_num_threads()
        try:
            self._cycle(0, r, out, threads)
        finally:
            numba.set_num_threads(threads)
        return out

    def _cycle(self, k: int, b: np.ndarray, x: np.ndarray, threads: int) -> None:
        lev = self.levels[k]
        if k == len(self.levels) - 1:
            x[...] = self._coarse_lu.solve(b.ravel()).reshape(x.shape)
            return
        numba.set_num_threads(threads if lev.D.size >= SERIAL_BELOW else 1)
        D, W = lev.D, lev.W
        _rbgs_zero(D, x, b, 0)
        _rbgs(D, W[0], W[1], W[2], x, b, 1)
        for _ in range(self.smooth - 1):
            _rbgs(D, W[0], W[1], W[2], x, b, 0)
            _rbgs(D, W[0], W[1], W[2], x, b, 1)
        nxt = self.levels[k + 1]
        nb, nx = nxt.b, nxt.x
        assert nb is not None and nx is not None  # set for every level below the finest
        f0, f1, f2 = lev.f
        _residual_restrict(D, W[0], W[1], W[2], x, b, nb, f0, f1, f2)
        self._cycle(k + 1, nb, nx, threads)
        numba.set_num_threads(threads if lev.D.size >= SERIAL_BELOW else 1)
        if self.cycle == "W" and k + 1 < len(self.levels) - 1:
            # Second coarse visit: correct the coarse solution with its own residual.
            tmp_b = np.empty_like(nb)
            _apply_var(nxt.D, nxt.W[0], nxt.W[1], nxt.W[2], nx, tmp_b)
            tmp_b = nb - tmp_b
            save_x = nx.copy()
            self._cycle(k + 1, tmp_b, nx, threads)
            numba.set_num_threads(threads if lev.D.size >= SERIAL_BELOW else 1)
            nx += save_x
        _prolong_add(x, nx, f0, f1, f2)
        for _ in range(self.smooth):
            _rbgs(D, W[0], W[1], W[2], x, b, 1)
            _rbgs(D, W[0], W[1], W[2], x, b, 0)


def _mgcg(ham: Hamiltonian, b: np.ndarray, x0: np.ndarray | None, tol: float, maxiter: int,
          mg: Multigrid) -> tuple[np.ndarray, int, float]:
    shape3 = _shape3(ham.shape)
    lev = mg.levels[0]
    D, W = lev.D, lev.W
    b3 = _rhs3(b, shape3)
    bnorm = float(np.linalg.norm(b3))
    if bnorm == 0.0:
        return np.zeros(ham.shape), 0, 0.0
    x = np.zeros(shape3) if x0 is None else np.array(x0, dtype=float).reshape(shape3)
    q = np.empty(shape3)
    z = np.empty(shape3)
    if x0 is None:
        r = b3.copy()
    else:
        _apply_var(D, W[0], W[1], W[2], x, q)
        r = b3 - q
    res = math.sqrt(_dot(r, r)) / bnorm
    it = 0
    if res > tol:
        mg.precondition(r, z)
    p = z.copy()
    rz = _dot(r, z)
    while res > tol and it < maxiter:
        pq = _apply_var_dot(D, W[0], W[1], W[2], p, q)
        if pq <= 0.0:
            break
        alpha = rz / pq
        res = math.sqrt(max(_cg_step(x, r, p, q, alpha), 0.0)) / bnorm
        it += 1
        if res <= tol:
            break
        mg.precondition(r, z)
        rz_new = _dot(r, z)
        _xpby(z, p, rz_new / rz)
        rz = rz_new
    # Recompute the true residual (the recursive one drifts by rounding).
    _apply_var(D, W[0], W[1], W[2], x, q)
    res = float(np.linalg.norm(np.subtract(b3, q, out=q))) / bnorm  # b - H x, in place
    return x.reshape(ham.shape), it, res


# ============================================================================ public entry


def solve_stencil(
    ham: Hamiltonian,
    rhs: np.ndarray | None = None,
    *,
    method: str = "mg",
    tol: float = 1e-10,
    maxiter: int | None = None,
    x0: np.ndarray | None = None,
    multigrid: Multigrid | None = None,
    threads: int | None = None,
) -> SolveResult:
    """Solve ``H u = rhs`` (default ``rhs = 1``, the landscape problem of eq. 2) matrix-free.

    Parameters
    ----------
    ham
        The Hamiltonian; H must be symmetric positive definite (V >= 0 after any shift, and not
        V = 0 with periodic boundaries).
    rhs
        Right-hand side of the grid's shape (or flat); ones by default.
    method
        ``"mg"`` (multigrid-preconditioned CG), ``"cg"`` (Jacobi-preconditioned CG with fused
        stencil kernels) or ``"auto"`` (see :func:`choose_method`).
    tol
        Relative residual ``||rhs - H u|| / ||rhs||`` to reach.
    maxiter
        Iteration cap (default: ``20 * N^(1/d) + 200`` for ``"cg"``, 200 for ``"mg"``).
    x0
        Initial guess (default ``rhs / diag(H)`` for ``"cg"``, zero for ``"mg"``).
    multigrid
        A prebuilt :class:`Multigrid` of ``ham`` to reuse (method ``"mg"``), e.g. to solve for
        several right-hand sides or to choose the cycle, smoothing and coarsest size.
    threads
        Threads for the numba kernels (default: numba's current setting, ``NUMBA_NUM_THREADS``
        or :func:`numba.set_num_threads`; one thread below :data:`SERIAL_SOLVE_BELOW` cells).
        On a machine shared with other busy processes one thread can be faster: every kernel
        ends in a barrier that waits for the slowest thread, and a descheduled thread stalls
        it for a scheduler time slice.

    Returns
    -------
    SolveResult
        ``u`` with the grid's shape, iterations, the recomputed relative residual, whether it
        is below ``tol``, the method used, and timing diagnostics in ``info``.

    Examples
    --------
    >>> import numpy as np
    >>> from mottscape.hamiltonian import build_hamiltonian
    >>> ham = build_hamiltonian(np.random.default_rng(0).uniform(0, 4, (64, 64)))
    >>> res = solve_stencil(ham, method="cg")
    >>> bool(res.converged), res.u.shape
    (True, (64, 64))
    """
    if method not in METHODS:
        raise InputError(f"method={method!r} is not known; use one of {METHODS}")
    if not (tol > 0):
        raise InputError(f"tol={tol!r} must be > 0")
    # the default right-hand side is one number seen at every cell (a read-only view, no
    # array of the grid's size: the solvers only read it)
    b = (np.broadcast_to(np.float64(1.0), ham.shape) if rhs is None
         else np.asarray(rhs, dtype=float).reshape(ham.shape))
    previous_threads = numba.get_num_threads()
    if threads is not None:
        most = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at run time
        if not 1 <= int(threads) <= most:
            raise InputError(f"threads={threads!r} must be between 1 and {most}")
        numba.set_num_threads(int(threads))
    elif ham.size < SERIAL_SOLVE_BELOW:
        numba.set_num_threads(1)
    try:
        return _solve_stencil(ham, b, method, tol, maxiter, x0, multigrid)
    finally:
        numba.set_num_threads(previous_threads)


def _solve_stencil(ham, b, method, tol, maxiter, x0, multigrid) -> SolveResult:
    info: dict = {"threads": numba.get_num_threads()}
    if method == "auto":
        info["cg_estimate"] = estimate_cg_iterations(ham, tol)
        method = choose_method(ham, tol)
    t0 = time.perf_counter()
    if method == "cg":
        u, it, res = _cg(ham, b, x0, tol, maxiter or _default_maxiter(ham))
        info["setup_time"] = 0.0
    else:
        mg = Multigrid(ham) if multigrid is None else multigrid
        if mg.levels[0].D.shape != _shape3(ham.shape):
            raise InputError("multigrid was built for a grid of another shape")
        t1 = time.perf_counter()
        info["setup_time"] = t1 - t0
        info["levels"] = [tuple(s) for s in mg.shapes]
        u, it, res = _mgcg(ham, b, x0, tol, maxiter or 200, mg)
    info["solve_time"] = time.perf_counter() - t0 - info["setup_time"]
    return SolveResult(u=u, iterations=it, residual=res, converged=bool(res <= tol),
                       method=method, info=info)
