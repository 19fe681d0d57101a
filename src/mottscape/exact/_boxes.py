"""Overlapping boxes in d dimensions: the window states of a large sample, box by box.

The sample is tiled by *cores* of ``core`` cells per axis; each core is padded by ``padding``
cells on every side (clipped at a Dirichlet face of the sample, wrapped at a periodic one) and
the box Hamiltonian (H restricted to the box, Dirichlet on the box faces) is diagonalised only
in the energy window. A state is kept by the box whose core holds its centroid
(``|psi|^2``-weighted, in cell indices; wrapped into the sample when periodic). Because window
states are localized, a state kept this way is an eigenstate of the full H up to its leakage
through the box faces, which is measured: the residual ``||H psi - E psi||`` against the *full*
H (on the box and its one-cell halo). A box whose kept states leak more than ``tol`` times the
hopping energy is solved again with a larger padding, so a padding that is too small is
reported and enlarged, never silent. The caller checks the number of kept states against an
exact inertia count of the full H.

Every box is an independent task, :func:`solve_box` (a function of the Hamiltonian, the box
and the window), so an ensemble engine can run boxes as tasks.

Pairs of states from different boxes enter the Kubo-Greenwood sum (eq. 4) with matrix elements
(eq. 5) computed on the common cells of their two boxes (each state is zero outside its box);
only pairs whose centroids are closer than an explicit ``pair_cutoff`` are counted. See
``docs/exact.md`` for the accuracy this buys and its cost.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..grid import Grid
from ..hamiltonian import Hamiltonian
from ._common import _blas_single_thread, _Block
from ._windows import _merge_states, _solve_dense, _solve_shift_invert

#: A box with at most this many cells is diagonalised densely (``eigh(subset_by_value)``).
BOX_DENSE_MAX = 1500
#: Default padding of a box, in cells per side (enlarged per box while the residual is large).
BOX_PADDING = 8
#: Default residual tolerance, in units of the largest hopping energy of H.
BOX_TOL = 1e-5
#: At most this many enlargements of one box's padding.
BOX_MAX_RETRIES = 6


@dataclass(frozen=True)
class Box:
    """One box: a core of owned cells and its padded support, in cell indices per axis.

    Attributes
    ----------
    core_lo, core_hi
        The core is ``[core_lo[a], core_hi[a])`` along each axis.
    padding
        Cells added on each side of the core (clipped at Dirichlet faces).
    """

    core_lo: tuple[int, ...]
    core_hi: tuple[int, ...]
    padding: int

    def support(self, grid: Grid) -> list[np.ndarray]:
        """Per axis, the cell indices of the box, unwrapped (may leave ``[0, n)`` if periodic)."""
        out = []
        for a, n in enumerate(grid.shape):
            lo, hi = self.core_lo[a] - self.padding, self.core_hi[a] + self.padding
            if grid.periodic:
                if hi - lo >= n:  # the whole axis: no padding needed, no wrap in the box
                    lo, hi = 0, n
            else:
                lo, hi = max(lo, 0), min(hi, n)
            out.append(np.arange(lo, hi))
        return out

    def enlarged(self, step: int) -> Box:
        """The same core with ``step`` more cells of padding."""
        return Box(self.core_lo, self.core_hi, self.padding + step)


@dataclass
class BoxResult:
    """What :func:`solve_box` returns: the kept states and diagnostics of one box."""

    box: Box
    block: _Block | None
    n_box_states: int
    residual: float  # largest ||H psi - E psi|| of a kept state, against the full H
    retries: int
    seconds: float
    factorisations: int
    diagnostics: dict = field(default_factory=dict)


def make_boxes(grid: Grid, core: int, padding: int) -> list[Box]:
    """Tile the grid by cores of ``core`` cells per axis (the last one may be shorter)."""
    per_axis = []
    for n in grid.shape:
        c = min(core, n)
        per_axis.append([(k * c, min(n, (k + 1) * c)) for k in range(math.ceil(n / c))])
    boxes = []
    for combo in np.ndindex(*[len(p) for p in per_axis]):
        lo = tuple(per_axis[a][k][0] for a, k in enumerate(combo))
        hi = tuple(per_axis[a][k][1] for a, k in enumerate(combo))
        boxes.append(Box(lo, hi, padding))
    return boxes


def check_box_geometry(grid: Grid, core: int, padding: int) -> None:
    """Raise InputError for core/padding the box method cannot use on this grid."""
    if core < 1 or padding < 0:
        raise InputError(f"box core={core} must be >= 1 cell and padding={padding} >= 0 cells")
    if grid.periodic:
        for a, n in enumerate(grid.shape):
            if min(core, n) + 2 * padding >= n:
                raise InputError(
                    f"with periodic boundaries a box must be smaller than the sample (the "
                    f"position form of eq. 5 is unwrapped inside it): core + 2 * padding = "
                    f"{min(core, n) + 2 * padding} >= {n} cells along axis {a}; pass a smaller "
                    "core= or padding=, boundary='dirichlet', or method='shift-invert'")


def _hopping_scale(ham: Hamiltonian) -> float:
    return max(float(np.max(np.abs(c))) for c in ham.couplings)


def solve_box(
    ham: Hamiltonian,
    box: Box,
    lo: float,
    hi: float,
    *,
    density: float = 0.0,
    tol: float = BOX_TOL,
    matrix: sp.csr_array | None = None,
) -> BoxResult:
    """Window eigenstates of H owned by one box (an independent task).

    Parameters
    ----------
    ham
        The full Hamiltonian (eq. 3).
    box
        The box (core and starting padding).
    lo, hi
        The energy window.
    density
        Expected window states per cell (sets the first shifts of spectrum slicing).
    tol
        Largest accepted residual ``||H psi - E psi||_2`` of a kept state against the full H,
        in units of the largest hopping energy; the padding grows until it holds.
    matrix
        ``ham.matrix("csr")`` if already assembled (shared by the boxes of one sample).

    Returns
    -------
    BoxResult
        ``block`` holds the kept states (rows on the box's cells, ``index`` their flat grid
        indices, centroids in the grid's coordinates), or None when the box owns none.
    """
    t0 = time.perf_counter()
    grid = ham.grid
    A = ham.matrix("csr") if matrix is None else matrix
    scale = _hopping_scale(ham)
    retries = 0
    nfact = 0
    max_pad = max(grid.shape)
    while True:
        res = _solve_one(ham, A, box, lo, hi, density)
        nfact += res.factorisations
        if res.residual <= tol * scale or retries >= BOX_MAX_RETRIES \
                or box.padding >= max_pad or _is_whole(grid, box):
            break
        step = max(4, box.padding // 2)
        if grid.periodic:
            room = min((n - 1 - (box.core_hi[a] - box.core_lo[a])) // 2 - box.padding
                       for a, n in enumerate(grid.shape))
            if room <= 0:
                break
            step = min(step, room)
        box = box.enlarged(step)
        retries += 1
    res.retries = retries
    res.factorisations = nfact
    res.seconds = time.perf_counter() - t0
    return res


def _is_whole(grid: Grid, box: Box) -> bool:
    return all(s.size == n for s, n in zip(box.support(grid), grid.shape, strict=True))


def _solve_one(ham: Hamiltonian, A: sp.csr_array, box: Box, lo: float, hi: float,
               density: float) -> BoxResult:
    grid = ham.grid
    axes = box.support(grid)
    local = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")])  # (d, m) unwrapped
    shape = np.array(grid.shape)[:, None]
    idx = np.ravel_multi_index(tuple(local % shape), grid.shape)
    sub = A[idx][:, idx].tocsc()
    m = idx.size
    nfact = 0
    if m <= BOX_DENSE_MAX:
        w, v = _solve_dense(sub, lo, hi)
    else:
        expected = max(1, round(density * m))
        w, v, nfact = _solve_shift_invert(sub, lo, hi, expected)
        inside = (w > lo) & (w <= hi)
        w, v = _merge_states(w[inside], v[:, inside])
    n_box = int(w.size)
    if n_box == 0:
        return BoxResult(box, None, 0, 0.0, 0, 0.0, nfact)
    wgt = v * v
    cen = (local @ wgt / wgt.sum(axis=0)).T  # (k, d) in unwrapped cell indices
    keep = np.ones(n_box, dtype=bool)
    for a, n in enumerate(grid.shape):
        c = cen[:, a]
        if grid.periodic:
            c = np.mod(c + 0.5, n) - 0.5
            cen[:, a] = c
        if box.core_lo[a] > 0:
            keep &= c >= box.core_lo[a] - 0.5
        if box.core_hi[a] < n:
            keep &= c < box.core_hi[a] - 0.5
    if not keep.any():
        return BoxResult(box, None, n_box, 0.0, 0, 0.0, nfact)
    w, v, cen = w[keep], v[:, keep], cen[keep]
    residual = float(np.max(_residuals(A, idx, w, v)))
    centroids = (cen + 0.5) * np.asarray(grid.spacing)
    block = _Block(int(idx.min()), int(idx.max()) + 1, w, np.ascontiguousarray(v), centroids,
                   index=idx)
    return BoxResult(box, block, n_box, residual, 0, 0.0, nfact)


def _box_residual_rows(A: sp.csr_array, idx: np.ndarray, w: np.ndarray, v: np.ndarray
                      ) -> np.ndarray:
    """``H psi - E psi`` of the full H on the box and its one-cell halo (psi = 0 outside)."""
    rows = np.union1d(A[idx].indices, idx)
    R = A[rows][:, idx] @ v
    R[np.searchsorted(rows, idx)] -= v * w
    return R


def _residuals(A: sp.csr_array, idx: np.ndarray, w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``||H psi - E psi||_2`` per column against the full H (psi = 0 outside the box)."""
    R = _box_residual_rows(A, idx, w, v)
    return np.sqrt(np.sum(R * R, axis=0))


def box_pairs(acc, blocks: list[_Block], grid: Grid, cutoff: float) -> int:
    """Add to ``acc`` every pair of window states whose centroids are closer than ``cutoff``.

    Matrix elements are taken on the cells common to the two states' boxes (each state is
    zero outside its box), in the position form ``<a|x - c_ab|b>`` with coordinates unwrapped
    around the first box (minimum image) when the sample is periodic. Returns the number of
    box pairs visited.
    """
    L = np.asarray(grid.shape, dtype=float) * np.asarray(grid.spacing)
    visited = 0
    for i, A in enumerate(blocks):
        for B in blocks[i:]:
            disp = B.centroids[None, :, :] - A.centroids[:, None, :]
            if grid.periodic:
                disp -= L * np.round(disp / L)
            allowed = np.sqrt(np.sum(disp * disp, axis=-1)) <= cutoff
            if not allowed.any():
                continue
            if B is A:
                common, ia, ib = A.index, slice(None), slice(None)
            else:
                common, ia, ib = np.intersect1d(A.index, B.index, assume_unique=True,
                                                return_indices=True)
                if common.size == 0:
                    continue
            visited += 1
            pos = np.stack(np.unravel_index(common, grid.shape)).astype(float)
            pos = (pos + 0.5) * np.asarray(grid.spacing)[:, None]
            ca, cb = A.centroids, B.centroids
            if grid.periodic:  # unwrap around the first state of A (boxes < sample)
                r0 = A.centroids[0][:, None]
                pos = r0 + _wrap(pos - r0, L[:, None])
                ca = A.centroids[0] + _wrap(ca - A.centroids[0], L)
                cb = A.centroids[0] + _wrap(cb - A.centroids[0], L)
            acc.add(A.energies, A.vectors[ia], ca, B.energies, B.vectors[ib], cb, pos,
                    same=B is A, allowed=allowed, position=True)
    return visited


def _wrap(x: np.ndarray, L: np.ndarray) -> np.ndarray:
    return x - L * np.round(x / L)


def solve_boxes(ham: Hamiltonian, lo: float, hi: float, core: int, padding: int,
                expected: int, tol: float = BOX_TOL, progress: bool = False
                ) -> tuple[list[_Block], dict]:
    """Run :func:`solve_box` over the tiling; returns the blocks and diagnostics."""
    grid = ham.grid
    check_box_geometry(grid, core, padding)
    A = ham.matrix("csr")
    density = expected / ham.size
    boxes = make_boxes(grid, core, padding)
    iterator = boxes
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(boxes, desc="boxes")
    blocks, results = [], []
    with _blas_single_thread():
        for box in iterator:
            r = solve_box(ham, box, lo, hi, density=density, tol=tol, matrix=A)
            results.append(r)
            if r.block is not None:
                blocks.append(r.block)
    info = {
        "n_boxes": len(boxes),
        "box_core": core,
        "box_padding": padding,
        "box_max_padding": max(r.box.padding for r in results),
        "box_retries": int(sum(r.retries for r in results)),
        "box_max_residual": max((r.residual for r in results), default=0.0),
        "box_seconds_max": max((r.seconds for r in results), default=0.0),
        "factorisations": int(sum(r.factorisations for r in results)),
    }
    return blocks, info
