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

A state whose centroid lands in two cores (it sits on a core face and its two box copies differ
by their leakage) is detected by its overlap with the other copy and kept once
(:func:`merge_duplicates`), before the inertia check. Two ways a state escaped every box on
smooth fields (docs/performance.md, "The exact boxes at their default padding"), now closed:
its owner box's copy was pushed across a window edge (up by the box walls, or down where the
walls cut off a partner that repelled it), so each box is solved in the window widened by
:data:`EDGE_BAND` and grows for such a copy too; or only a neighbour converged it, its
centroid just outside that neighbour's core, so each box also returns its converged states
within :data:`NEAR_CORE` cells of its core as *spares*, kept only where no box owns them.

Pairs of states enter the Kubo-Greenwood sum (eq. 4) with matrix elements (eq. 5) computed on
the common cells of their two boxes (each state is zero outside its box). For a pair whose
centroids are at most ``padding`` apart, each partner's centroid lies inside the other's box
(boxes are convex), so the cells that carry ``psi_a x psi_b`` are common to both boxes and the
matrix element is exact up to the leakage; farther pairs get a partial sum over the common
cells. Their share of each bin is reported (``sigma_beyond_padding``): a bin is resolved when
that share is small, i.e. when the padding exceeds the distances of the pairs that carry it
(in the Mott regime, the Mott length R_omega of eq. 12 at the bin's frequency). An optional
``pair_cutoff`` leaves pairs farther apart out altogether. Measured accuracy and cost:
``docs/performance.md``.
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
from ._common import _Block, box_submatrix, face_layers
from ._kg import _Accumulator
from ._windows import _merge_states, _solve_dense, _solve_shift_invert

#: A box with at most this many cells is diagonalised densely (``eigh(subset_by_value)``).
BOX_DENSE_MAX = 1500
#: Default padding of a box, in cells per side (enlarged per box while the residual is large).
BOX_PADDING = 8
#: Default residual tolerance, in units of the largest hopping energy of H.
BOX_TOL = 1e-5
#: Box states whose centroid lies within this many cells of the core have their residual
#: checked too (kept as spares when converged), see :func:`solve_box`.
NEAR_CORE = 2.0
#: Half-width of the band added to the window on each side, in hopping energies: a box copy
#: within its residual of the window counts. Chosen with NEAR_CORE on Gaussian fields
#: (correlation 3 cells, 64^2 and 96^2, 6 seeds, paddings 3, 4, 6 and 8: 48 runs), counting
#: the runs whose inertia check failed (spares kept in all), NEAR_CORE 1 and 2: band 0: 9
#: and 6; band 0.005: 6 and 2; band 0.02: 2 and 0; band 0.05: 1 and 0. Cost on the 512^2
#: Gaussian field at padding 8: 6 % more box growth, time within the noise.
EDGE_BAND = 0.02
#: A bin of the boxes' sigma is *resolved* when pairs farther apart than the padding carry
#: less than this share of it (``sigma_beyond_padding``: their matrix elements are partial
#: sums); there the boxes agree with the full diagonalisation to 1e-6 relative
#: (tests/test_exact_boxes.py).
RESOLVED_FAR = 1e-3
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
    grow
        Extra cells per axis and side, ``((lo_0, hi_0), (lo_1, hi_1), ...)``, added to
        ``padding`` on the faces through which the box's states leaked (see
        :func:`solve_box`); None for none.
    """

    core_lo: tuple[int, ...]
    core_hi: tuple[int, ...]
    padding: int
    grow: tuple[tuple[int, int], ...] | None = None

    def side_padding(self, axis: int) -> tuple[int, int]:
        """Padding below and above the core along ``axis`` (before clipping)."""
        g = (0, 0) if self.grow is None else self.grow[axis]
        return self.padding + g[0], self.padding + g[1]

    @property
    def max_padding(self) -> int:
        """The largest padding on any side."""
        return max(max(self.side_padding(a)) for a in range(len(self.core_lo)))

    def support(self, grid: Grid) -> list[np.ndarray]:
        """Per axis, the cell indices of the box, unwrapped (may leave ``[0, n)`` if periodic)."""
        out = []
        for a, n in enumerate(grid.shape):
            p_lo, p_hi = self.side_padding(a)
            lo, hi = self.core_lo[a] - p_lo, self.core_hi[a] + p_hi
            if grid.periodic:
                if hi - lo >= n:  # the whole axis: no padding needed, no wrap in the box
                    lo, hi = 0, n
            else:
                lo, hi = max(lo, 0), min(hi, n)
            out.append(np.arange(lo, hi))
        return out

    def enlarged(self, step: int) -> Box:
        """The same core with ``step`` more cells of padding on every side."""
        return Box(self.core_lo, self.core_hi, self.padding + step, self.grow)

    def grown(self, extra: np.ndarray) -> Box:
        """The same box with ``extra[a, side]`` more cells on each side (side 0 below)."""
        base = np.zeros((len(self.core_lo), 2), dtype=int) if self.grow is None \
            else np.asarray(self.grow, dtype=int)
        total = base + np.asarray(extra, dtype=int)
        return Box(self.core_lo, self.core_hi, self.padding,
                   tuple((int(a), int(b)) for a, b in total))


@dataclass
class BoxResult:
    """What :func:`solve_box` returns: the kept states and diagnostics of one box."""

    box: Box
    block: _Block | None
    n_box_states: int
    residual: float  # largest ||H psi - E psi|| (full H) of a state checked: kept or near the core
    retries: int
    seconds: float
    factorisations: int
    diagnostics: dict = field(default_factory=dict)
    #: Converged states whose centroid lies within NEAR_CORE cells outside the core, kept by
    #: the caller only when no box owns them (:func:`merge_duplicates`).
    spares: _Block | None = None


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
    scale: float | None = None,
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
    scale
        The largest hopping energy of H if already read (shared by the boxes of one sample;
        with a position-dependent mass reading it is a pass over the couplings).

    Returns
    -------
    BoxResult
        ``block`` holds the kept states (rows on the box's cells, ``index`` their flat grid
        indices, centroids in the grid's coordinates), or None when the box owns none.
    """
    t0 = time.perf_counter()
    grid = ham.grid
    A = ham.matrix("csr") if matrix is None else matrix
    scale = _hopping_scale(ham) if scale is None else scale
    retries = 0
    nfact = 0
    while True:
        res = _solve_one(ham, A, box, lo, hi, density, scale, tol * scale)
        nfact += res.factorisations
        if res.residual <= tol * scale or retries >= BOX_MAX_RETRIES \
                or box.max_padding >= max(grid.shape) or _is_whole(grid, box):
            break
        extra = _limit_growth(grid, box, res.diagnostics["growth"])
        if not extra.any():
            break
        box = box.grown(extra)
        retries += 1
    res.retries = retries
    res.factorisations = nfact
    res.seconds = time.perf_counter() - t0
    return res


def _limit_growth(grid: Grid, box: Box, growth: np.ndarray) -> np.ndarray:
    """The growth per axis and side, limited to ``max(4, padding // 2)`` cells a step.

    On a periodic sample the box stays smaller than the sample along every axis.
    """
    extra = np.minimum(growth, max(4, box.max_padding // 2))
    if grid.periodic:
        for a, n in enumerate(grid.shape):
            p_lo, p_hi = box.side_padding(a)
            room = max(0, n - 1 - (box.core_hi[a] - box.core_lo[a]) - p_lo - p_hi)
            while extra[a].sum() > room:
                extra[a, int(np.argmax(extra[a]))] -= 1
    return extra


def _is_whole(grid: Grid, box: Box) -> bool:
    return all(s.size == n for s, n in zip(box.support(grid), grid.shape, strict=True))


def _solve_one(ham: Hamiltonian, A: sp.csr_array, box: Box, lo: float, hi: float,
               density: float, scale: float, target: float) -> BoxResult:
    """The window states of one box; ``diagnostics["growth"]`` the cells to add per face.

    ``scale`` is the largest hopping energy (:func:`_hopping_scale`, read once per box by the
    caller: with a position-dependent mass it is a pass over the grid's couplings).
    """
    grid = ham.grid
    axes = box.support(grid)
    local = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")])  # (d, m) unwrapped
    shape = np.array(grid.shape)[:, None]
    idx = np.ravel_multi_index(tuple(local % shape), grid.shape)
    sub = box_submatrix(A, idx).tocsc()
    m = idx.size
    nfact = 0
    no_growth = np.zeros((grid.ndim, 2), dtype=int)
    # The box is solved in the window widened by a band: a state near a window edge may have
    # its box copy pushed across the edge (up by the box walls, or down where the walls cut
    # off a partner that repelled it); its residual then shows it and the box grows.
    band = EDGE_BAND * scale
    blo, bhi = lo - band, hi + band
    if m <= BOX_DENSE_MAX:
        w, v = _solve_dense(sub, blo, bhi)
    else:
        expected = max(1, round(density * m * (bhi - blo) / (hi - lo)))
        w, v, nfact = _solve_shift_invert(sub, blo, bhi, expected)
        inside = (w > blo) & (w <= bhi)
        w, v = _merge_states(w[inside], v[:, inside])
    in_window = (w > lo) & (w <= hi)
    n_box = int(np.count_nonzero(in_window))
    if w.size == 0:
        return BoxResult(box, None, 0, 0.0, 0, 0.0, nfact, {"growth": no_growth})
    wgt = v * v
    cen = (local @ wgt / wgt.sum(axis=0)).T  # (k, d) in unwrapped cell indices
    owned = _owned(grid, box, cen)
    # The residual is checked on every state whose centroid lies within NEAR_CORE cells of the
    # core, kept or not: a state of the full H cut by the box faces may have its centroid
    # pushed just out of the core (and be kept by no box) while its residual is large; growing
    # the box brings it back. A larger shift is caught by the inertia count of the caller.
    near = _near_core(grid, box, cen, NEAR_CORE)
    checked = owned | near
    res = np.zeros(w.size)
    res[checked] = _residuals(A, idx, w[checked], v[:, checked])
    # a state in the band counts when its residual could bring it into the window
    outside = np.maximum(lo - w, w - hi).clip(min=0.0)
    counts = checked & (outside <= res)
    residual = float(np.max(res[counts], initial=0.0))
    keep = owned & in_window
    # Converged states just outside the core are returned as spares: the box whose core holds
    # a state's centroid may not see it at all (its walls push the state's energy out of the
    # window) while a neighbour converges it. The caller keeps a spare only where no box owns
    # that state (merge_duplicates).
    spare = near & ~owned & in_window & (res <= target)
    bad = v[:, counts & (res > target)]
    growth = _face_growth(grid, axes, bad, scale, target) if bad.size \
        else no_growth
    diagnostics = {"kept": int(np.count_nonzero(keep)), "cells": int(m), "growth": growth}
    return BoxResult(box, _block(grid, idx, w, v, cen, keep), n_box, residual, 0, 0.0, nfact,
                     diagnostics, spares=_block(grid, idx, w, v, cen, spare))


def _block(grid: Grid, idx: np.ndarray, w: np.ndarray, v: np.ndarray, cen: np.ndarray,
           sel: np.ndarray) -> _Block | None:
    """The states ``sel`` of a box (centroids ``cen`` in cell indices) as a block, or None."""
    if not sel.any():
        return None
    centroids = (cen[sel] + 0.5) * np.asarray(grid.spacing)
    return _Block(int(idx.min()), int(idx.max()) + 1, w[sel],
                  np.ascontiguousarray(v[:, sel]), centroids, index=idx)


#: Smallest decay rate (per cell) assumed when the padding needed is estimated from the decay
#: of a leaking state at a box face (a weaker decay grows the box by the largest step).
KAPPA_MIN = 0.2


def _face_growth(grid: Grid, axes: list[np.ndarray], v: np.ndarray, hop: float,
                 target: float) -> np.ndarray:
    """Cells to add on each face so that the leaking states ``v`` fall below ``target``.

    A state cut by a Dirichlet box face leaks through it ``||H psi - E psi|| = t ||psi_f||``
    (7-point stencil: each halo cell touches one box cell), with ``psi_f`` its amplitude on
    the face layer. Near the wall the box state goes like ``sinh(kappa (w - x))``: the ratio
    ``q`` of its norms on the second and first layers gives the decay rate
    ``kappa = arccosh(q / 2)``, and ``ln(t ||psi_f|| / target) / kappa`` more cells bring the
    leak below ``target`` (split over the leaking faces). Faces on a Dirichlet face of the
    sample (clipped) or on a whole periodic axis do not leak.

    Returns
    -------
    numpy.ndarray of int, shape (d, 2)
        Cells to add below (column 0) and above (column 1) the box along each axis.
    """
    leak = np.zeros((grid.ndim, 2))
    growth = np.zeros((grid.ndim, 2), dtype=int)
    cells = np.zeros((grid.ndim, 2))
    for a, low, outer, inner in face_layers(grid, axes, v, min_cells=3):
        side = 0 if low else 1
        f1 = np.sqrt(np.sum(outer**2, axis=0))
        f2 = np.sqrt(np.sum(inner**2, axis=0))
        j = int(np.argmax(f1))
        leak[a, side] = hop * f1[j]
        q = f2[j] / max(f1[j], 1e-300)
        kappa = max(float(np.arccosh(max(q, 2.0) / 2.0)), KAPPA_MIN)
        cells[a, side] = kappa
    leaking = leak > target / np.sqrt(2 * grid.ndim)
    share = target / np.sqrt(max(int(leaking.sum()), 1))
    for a, side in zip(*np.nonzero(leaking), strict=True):
        need = np.log(leak[a, side] / (0.5 * share)) / cells[a, side]
        growth[a, side] = max(1, math.ceil(need))
    return growth


def _near_core(grid: Grid, box: Box, cen: np.ndarray, margin: float) -> np.ndarray:
    """States whose centroid (wrapped cell indices) lies within ``margin`` cells of the core."""
    near = np.ones(cen.shape[0], dtype=bool)
    for a, n in enumerate(grid.shape):
        lo, hi = box.core_lo[a] - 0.5 - margin, box.core_hi[a] - 0.5 + margin
        c = cen[:, a]
        if grid.periodic:  # distance to the core interval on the circle
            mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
            near &= np.abs(np.mod(c - mid + 0.5 * n, n) - 0.5 * n) <= half
        else:
            near &= (c >= lo) & (c < hi)
    return near


def _owned(grid: Grid, box: Box, cen: np.ndarray) -> np.ndarray:
    """States whose centroid (cell indices, wrapped in place if periodic) lies in the core.

    The cores tile the sample with faces at half-integer cell indices, so every centroid
    lies in exactly one core.
    """
    keep = np.ones(cen.shape[0], dtype=bool)
    for a, n in enumerate(grid.shape):
        c = cen[:, a]
        if grid.periodic:
            c = np.mod(c + 0.5, n) - 0.5
            cen[:, a] = c
        if box.core_lo[a] > 0:
            keep &= c >= box.core_lo[a] - 0.5
        if box.core_hi[a] < n:
            keep &= c < box.core_hi[a] - 0.5
    return keep


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


def box_pairs(acc: _Accumulator, blocks: list[_Block], grid: Grid, cutoff: float,
              near: float) -> int:
    """Add to ``acc`` the KG terms (eq. 4) of every pair of window states from the boxes.

    Parameters
    ----------
    acc
        The bin accumulator of the KG sum.
    blocks
        The kept states of each box (rows on the box's cells, ``index`` their flat indices).
    grid
        The sample grid.
    cutoff
        Pairs whose centroids are farther apart (length unit, minimum image if periodic) are
        left out (``inf``: every pair whose boxes share cells).
    near
        Pairs farther apart than this (the padding in length units) are summed also into
        ``acc.flagged``: beyond it the partner's centroid may lie outside the owner's box, and
        the matrix element is a partial sum over the common cells.

    Returns
    -------
    int
        The number of box pairs visited.

    Notes
    -----
    Matrix elements (eq. 5) are taken on the cells common to the two states' boxes (each
    state is zero outside its box), in the position form ``<a|x - c_ab|b>`` with coordinates
    unwrapped around the first state of A (minimum image) when the sample is periodic (a box is
    smaller than the sample, so the unwrapping is unique).
    """
    L = np.asarray(grid.shape, dtype=float) * np.asarray(grid.spacing)
    visited = 0
    for i, A in enumerate(blocks):
        for B in blocks[i:]:
            disp = B.centroids[None, :, :] - A.centroids[:, None, :]
            if grid.periodic:
                disp -= L * np.round(disp / L)
            dist = np.sqrt(np.sum(disp * disp, axis=-1))
            allowed = dist <= cutoff
            if not allowed.any():
                continue
            common, ia, ib = _common_rows(A, B)
            if common.size == 0:
                continue
            visited += 1
            pos = np.stack(np.unravel_index(common, grid.shape)).astype(float)
            pos = (pos + 0.5) * np.asarray(grid.spacing)[:, None]
            ca, cb = A.centroids, B.centroids
            if grid.periodic:
                r0 = A.centroids[0]
                pos = r0[:, None] + _wrap(pos - r0[:, None], L[:, None])
                ca, cb = r0 + _wrap(ca - r0, L), r0 + _wrap(cb - r0, L)
            acc.add(A.energies, A.vectors[ia], ca, B.energies, B.vectors[ib], cb, pos,
                    same=B is A, allowed=allowed, position=True, flag=dist > near)
    return visited


def _common_rows(A: _Block, B: _Block) -> tuple[np.ndarray, np.ndarray | slice, np.ndarray | slice]:
    """Flat indices of the cells of both blocks and the row positions in each."""
    if B is A:
        return A.rows(), slice(None), slice(None)
    common, ia, ib = np.intersect1d(A.rows(), B.rows(), assume_unique=True,
                                    return_indices=True)
    return common, ia, ib


def merge_duplicates(blocks: list[_Block], grid: Grid, scale: float, tol: float = BOX_TOL
                     ) -> tuple[list[_Block], np.ndarray]:
    """Keep once a state kept by several boxes.

    Two kept states are copies of one eigenstate when their energies agree within
    ``2 * tol * scale`` (each copy's energy is within its residual, at most ``tol * scale``,
    of the eigenvalue) and their overlap on the common cells of their boxes exceeds 1/2 (two
    distinct eigenstates are orthogonal). Every pair of states from different boxes within
    that energy distance is compared, so copies interleaved in energy with other states are
    found too. The copy from the earliest block is kept (the caller lists the boxes' spares
    after all the owned states, so an owned copy wins); the caller then checks the number
    left against the inertia count of the full H, so a state kept twice and another lost
    cannot cancel.

    Returns
    -------
    blocks, dropped
        The blocks without the duplicates (empty ones left out) and the number of states
        dropped from each block given.
    """
    if len(blocks) < 2:
        return blocks, np.zeros(len(blocks), dtype=int)
    E = np.concatenate([b.energies for b in blocks])
    owner = np.concatenate([np.full(b.energies.size, k) for k, b in enumerate(blocks)])
    col = np.concatenate([np.arange(b.energies.size) for b in blocks])
    order = np.lexsort((owner, E))
    close = max(1e-6, 2.0 * tol) * scale
    drop: set[tuple[int, int]] = set()
    for n, x in enumerate(order):
        for y in order[n + 1:]:
            if E[y] - E[x] > close:
                break
            if owner[x] == owner[y] or (int(owner[y]), int(col[y])) in drop:
                continue
            A, B = blocks[owner[x]], blocks[owner[y]]
            common, ia, ib = _common_rows(A, B)
            if common.size and abs(float(A.vectors[ia, col[x]] @ B.vectors[ib, col[y]])) > 0.5:
                later = (x, y) if owner[x] > owner[y] else (y, x)
                drop.add((int(owner[later[0]]), int(col[later[0]])))
    dropped = np.bincount(np.array([k for k, _ in drop], dtype=int), minlength=len(blocks))
    if not drop:
        return blocks, dropped
    out = []
    for k, b in enumerate(blocks):
        keep = np.array([(k, j) not in drop for j in range(b.energies.size)], dtype=bool)
        if keep.any():
            out.append(_Block(b.start, b.stop, b.energies[keep], b.vectors[:, keep],
                              b.centroids[keep], index=b.index))
    return out, dropped


def _wrap(x: np.ndarray, L: np.ndarray) -> np.ndarray:
    return x - L * np.round(x / L)
