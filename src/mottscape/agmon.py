"""Agmon distances on the effective potential (eqs. 9-10, sec. III).

The Agmon distance at energy E (eq. 9),

    rho_E(r1, r2) = min over paths gamma of  integral_gamma sqrt(2m/hbar^2 [V_u(r) - E]_+) ds,

is the geodesic distance of the local metric ``w(r) = land.agmon_metric(E)`` (units 1/length).
It sets the decay of a localized state outside its basin, psi_i ~ exp(-rho(r, B_i)) (eq. 10),
and the pair distance rho_ij = rho(B_i, B_j) that selects the pairs near the Mott scale
rho_omega (eqs. 11-12). The metric vanishes inside basins {V_u <= E}, so a geodesic between two
basins may cross other basins at no cost.

Method
------
Distance fields are solutions of the eikonal equation |grad rho| = w, computed by fast marching
(scikit-fmm, ``skfmm.travel_time`` with speed 1/w). One code path serves 1D, 2D and 3D; in 1D
an exact cumulative sum replaces the fast marching (a performance and accuracy kernel, tested
against the generic path).

Conventions
-----------
* **Source.** A source is a set of cells (a boolean mask). Its cells are at distance exactly 0.
  The zero level set handed to scikit-fmm passes through the *centres* of the source's boundary
  cells (phi = -1e-6 on source cells, +1 elsewhere), so a cell next to a one-cell source at
  spacing h is at distance ``h * w``, and the distance between two cells in a constant metric
  is ``w * |r2 - r1|``, as eq. 9 gives for points. For a basin (where w = 0) this is the same
  as measuring from the basin's faces.
* **Metric floor.** Fast marching needs a positive speed, so the metric is floored at
  ``FLOOR * max(w)`` (``FLOOR = 1e-6``; ``1/max(lengths)`` scales the floor if w = 0
  everywhere). This adds at most ``FLOOR * max(w) * L0`` to a distance, L0 being the length of
  the geodesic inside zero-metric regions: below 1e-3 for any path shorter than 1000 / max(w),
  far below the fast-marching error. Smaller floors make scikit-fmm's second-order scheme
  return NaN at the jump between basins and barriers (observed at 1e-9); if a NaN still occurs
  the field is recomputed with the first-order scheme.
* **Discretisation error.** Measured on a 2D one-cell source in a constant metric (201^2 grid,
  cells at least 10 h away): first-order fast marching overestimates by 1.3 % on average and
  7 % at most (the worst cells are near the diagonals at short range), second-order by 0.3 %
  on average and 2.6 % at most; along the diagonal at r = 100 h: 1.4 % (order 1) and 0.2 %
  (order 2). The error of a one-cell source is larger in 3D (41^3, cells at least 5 h away:
  mean 5.8 % / max 18 % at order 1, 2.4 % / 12 % at order 2; it comes from the first cells
  around the point and shrinks slowly with distance). Extended sources (basins) do better:
  on a smooth landscape resolved by the grid (h * max(w) ~ 0.2) the two directed estimates
  rho(B_i -> B_j) and rho(B_j -> B_i) agree within 0.02; on a lattice model (h = 1,
  max(w) ~ 2) they differ by 0.14 (median) to 0.7 (max), i.e. a fraction of one cell's
  h * w, which bounds the absolute accuracy of rho_ij there. On the smooth hyperbolic
  metric w = 1/y (exact geodesics are circle arcs) the mean relative error is
  1.2 % / 0.7 % / 0.44 % (order 1) and 0.43 % / 0.23 % / 0.12 % (order 2) at 100 / 200 / 400
  cells per unit length, i.e. first and second order
  convergence. On a lattice model (2D block potential, h = 1, max(w) ~ 2, rho_ij from 1 to
  31) against the distances of a cubic interpolant of V_u marched on a grid 8x finer, the
  lattice rho_ij is too large by 0.45 on average (3.5 % relative, max 15 %) at order 2 and by
  1.3 (8 %, max 28 %) at order 1 (with a 4x finer reference: 2.5 % and 7 %); the bias comes
  from the cells at the basin edges, where the metric rises like a square root within one
  cell. In 1D the result is exact for a piecewise-constant cell metric (order 2 uses the
  trapezoid rule, exact between basins; order 1 is the upwind sum of skfmm's first-order
  scheme). The second-order 2D/3D scheme assumes a continuous metric (as
  sqrt([V_u - E]_+) is); for a metric with jumps use ``order=1``.
* **Rounding-level changes of the input.** Fast marching is not continuous in its input: the
  order in which cells of (nearly) equal values freeze decides which neighbours enter each
  update, and at second order whether a cell gets the three-point or the two-point stencil
  (scikit-fmm's rule, which the kernel follows). A change of the metric by 1e-13 relative
  (E_F moved by 1e-15) therefore moves distances by far more than 1e-13 where values tie or
  nearly tie (symmetric samples; inside basins, whose floored metric makes all values nearly
  equal). Measured on two square wells 20 cells apart (2D, mirror-symmetric;
  ``tests/test_agmon_kernels.py::test_fields_follow_the_metric_at_ties``), largest change of
  the field from one well in units of one cell's h max(w): order 1, 4e-12 (piecewise-constant
  metric) and 5e-8 (landscape metric); order 2, 0.012 (landscape metric, at E = min V_u + 0.1)
  and 0.31 (piecewise-constant, behind the second well). At E_F between the two wells'
  hybrids (``tests/test_pairs.py::_two_wells``) rho_ij moves by 8e-6 relative (1.3e-4) and
  the pair model's t_ab by up to 2.5e-4 relative; with the ties broken (a 1e-3 random
  relative change of the metric), a 1e-13 random change moves the field by 4e-9 relative.
  Below the discretisation error above, but results are reproducible bit for bit only for
  the same inputs: compare runs at the same E_F, not at two estimates of it that differ by
  rounding.

Bounded searches
----------------
Pair distances are needed only up to about rho_omega + 1 (sec. III). :func:`basin_distances`
runs one bounded search per source basin in one compiled call
(:mod:`mottscape._agmon_kernels`): scikit-fmm's travel-time scheme (same initialisation, same
first- and second-order updates, same marching loop) reimplemented on the full grid, stopped at
the first value above the source's bound, with only the touched cells reset between sources.
Its values equal scikit-fmm's to rounding (tested at 1e-7 relative; all the errors above apply
unchanged), the work is proportional to the cells closer than the bound, and there is no
per-source Python or process overhead. Where every partial second-order update is undefined
(scikit-fmm returns NaN there), the kernel uses the first-order update for that cell only.
At second order a few cells just below a bound can depend on cells beyond it (the one-sided
second-order stencil is not causal); a bounded search leaves them unreached, as scikit-fmm's
``narrow`` option does.

:func:`distance_field` with a finite bound marches scikit-fmm on a cropped window: a box around
the source, padded by ``3 bound / (mean(w) h)`` cells, grown (x2 on the offending side) whenever
a cell closer than the bound lies on a window face that is not a face of the sample. Periodic
samples are cropped with wrapped indices.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import queue
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import skfmm

from . import _agmon_kernels as _kernels
from ._checks import real
from .basins import Basins
from .errors import InputError
from .grid import Grid
from .landscape import Landscape

__all__ = [
    "FLOOR",
    "PairDistances",
    "agmon_distance",
    "basin_distances",
    "chain_cumulative",
    "chain_run_distance",
    "distance_field",
    "floored_metric",
    "geodesic",
]

#: Relative floor of the metric (fraction of its maximum) that keeps the fast-marching speed
#: finite inside basins; see the module notes for the error it causes.
FLOOR = 1e-6

#: Value of phi on source cells: the zero contour sits at 1/(1 + _PHI_IN) ~ h from the first
#: outside cell, i.e. at the centres of the source's boundary cells.
_PHI_IN = 1e-6

#: Sources per compiled call of :func:`basin_distances` (a task of its threads).
_BATCH = 64

#: Most threads :func:`basin_distances` uses by default.
MAX_THREADS = 4

#: Bytes per cell of one thread's scratch arrays (:class:`_Scratch`) when a search reaches
#: every cell.
SCRATCH_BYTES_PER_CELL = 49

#: Default threads for unbounded searches only while their scratch arrays stay below this
#: many bytes in total.
THREAD_MEMORY = 2 << 30


def _search_threads(workers: int | None, n_sources: int, n_cells: int,
                    bounded: bool = True) -> int:
    """Threads for the searches: ``workers`` if given, else from the CPUs available.

    At most :data:`MAX_THREADS`, at least one batch of sources each. A thread's scratch is
    handed back after each batch, so bounded searches hold what one batch reaches, whatever
    the sample's size; unbounded ones reach every cell (:data:`SCRATCH_BYTES_PER_CELL`) and
    are kept within :data:`THREAD_MEMORY`.
    """
    if workers is not None:
        return int(workers)
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    by_work = -(-n_sources // _BATCH)
    by_memory = (by_work if bounded
                 else THREAD_MEMORY // max(SCRATCH_BYTES_PER_CELL * n_cells, 1))
    return int(max(1, min(cpus, MAX_THREADS, by_memory, by_work)))


#: First window of a bounded search: the source's box padded by _PAD_FACTOR * bound / mean(w).
_PAD_FACTOR = 3.0


# ---------------------------------------------------------------------- validation
def _check_order(order) -> int:
    if order not in (1, 2):
        raise InputError(f"order={order!r} is not supported; use 1 or 2 (fast-marching order)")
    return int(order)


def _check_bound(bound, name: str = "bound") -> float:
    return real(bound, name, minimum=0.0, allow_inf=True, hint=" (np.inf or None for no bound)")


def _check_source(source, shape: tuple[int, ...], name: str = "source") -> np.ndarray:
    arr = np.asarray(source)
    if arr.dtype != bool:
        raise InputError(
            f"{name} must be a boolean mask of the grid's shape {shape} (got dtype {arr.dtype}); "
            "e.g. basins.mask(i)"
        )
    if arr.shape != tuple(shape):
        raise InputError(
            f"{name} has shape {arr.shape} but the grid has shape {tuple(shape)}; pass a "
            "boolean mask of the grid's shape"
        )
    if not arr.any():
        raise InputError(f"{name} is empty (no True cell); the source needs at least one cell")
    return arr


def _check_landscape(land) -> None:
    if not isinstance(land, Landscape):
        raise InputError(
            f"land must be a Landscape (from mottscape.solve_landscape), got "
            f"{type(land).__name__}")


def _check_metric(metric, grid: Grid) -> np.ndarray:
    try:
        arr = np.asarray(metric, dtype=float)
    except (TypeError, ValueError):
        raise InputError("metric must be an array of numbers of the grid's shape (e.g. "
                         "land.agmon_metric(E))") from None
    if arr.shape != grid.shape:
        raise InputError(
            f"metric has shape {arr.shape} but the grid has shape {grid.shape}; pass "
            "land.agmon_metric(E) of the same sample"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise InputError("metric must be finite and >= 0 everywhere (e.g. land.agmon_metric(E))")
    return arr


def floored_metric(metric: np.ndarray, grid: Grid, out: np.ndarray | None = None) -> np.ndarray:
    """The metric with zeros raised to the floor ``FLOOR * max(metric)`` used by fast marching.

    ``out=metric`` floors a metric the caller owns in place (one array of the sample's size
    less; the values are the same).
    """
    top = float(metric.max()) if metric.size else 0.0
    if top <= 0.0:
        top = 1.0 / max(grid.lengths)
    return np.maximum(metric, FLOOR * top, out=out)


# ---------------------------------------------------------------------- kernels
def _march(wf: np.ndarray, source: np.ndarray, spacing, periodic, order: int,
           bound: float) -> np.ndarray:
    """Distance from ``source`` on one (window) array of floored metric ``wf``.

    Returns a float array with 0 on the source and np.inf beyond ``bound``.
    """
    if source.all():
        return np.zeros(source.shape)
    if wf.ndim == 1:
        out = _march_1d(wf, source, spacing[0], bool(periodic[0]), order)
    else:
        phi = np.where(source, -_PHI_IN, 1.0)
        speed = 1.0 / wf
        narrow = 0.0 if not np.isfinite(bound) else bound * (1 + 1e-9) + 1e-12
        kw = {"dx": list(spacing), "periodic": list(periodic), "narrow": narrow}
        t = skfmm.travel_time(phi, speed, order=order, **kw)
        out = np.ma.filled(np.ma.asarray(t, dtype=float), np.inf)
        if order == 2 and np.isnan(out).any():
            t = skfmm.travel_time(phi, speed, order=1, **kw)
            out = np.ma.filled(np.ma.asarray(t, dtype=float), np.inf)
    out[source] = 0.0
    out[out > bound] = np.inf
    return out


def _march_1d(wf: np.ndarray, source: np.ndarray, h: float, periodic: bool,
              order: int) -> np.ndarray:
    """Exact 1D kernel: forward and backward cumulative sums reset on source cells.

    The step from cell k-1 to k costs ``h * w_k`` (order 1, the upwind rule of first-order fast
    marching) or ``h * (w_{k-1} + w_k) / 2`` (order 2, the trapezoid rule: exact for a
    piecewise-constant cell metric).
    """
    if periodic:
        start = int(np.flatnonzero(source)[0])
        w = np.roll(wf, -start)
        s = np.roll(source, -start)
        fwd = _sweep(w, s, h, order)
        # backward: reverse, then rotate so that the source cell is first again
        bwd = _sweep(np.roll(w[::-1], 1), np.roll(s[::-1], 1), h, order)
        bwd = np.roll(bwd, -1)[::-1]
        return np.roll(np.minimum(fwd, bwd), start)
    fwd = _sweep(wf, source, h, order)
    bwd = _sweep(wf[::-1], source[::-1], h, order)[::-1]
    return np.minimum(fwd, bwd)


def chain_cumulative(wf: np.ndarray, h: float) -> np.ndarray:
    """Agmon length from the first cell of a chain to each cell (trapezoid rule, order 2).

    ``wf`` is the floored metric along the chain (:func:`floored_metric`), ``h`` its spacing.
    """
    return np.concatenate([[0.0], np.cumsum(0.5 * h * (wf[1:] + wf[:-1]))])


def chain_run_distance(cum: np.ndarray, first, last, cells: np.ndarray) -> np.ndarray:
    """rho of ``cells`` from a run of cells ``[first, last]`` of a Dirichlet chain.

    A basin of a chain is a run, so its Agmon distance is the cumulative length
    (:func:`chain_cumulative`) away from the run's ends and 0 inside: the values of
    :func:`distance_field` (order 2) in 1D, with no search. ``first`` and ``last`` may be
    arrays of shape ``(k, 1)`` (k runs at once, against ``cells`` of shape ``(n,)``).
    """
    return np.where(cells < first, cum[first] - cum[cells],
                    np.where(cells > last, cum[cells] - cum[last], 0.0))


def _sweep(w: np.ndarray, s: np.ndarray, h: float, order: int) -> np.ndarray:
    """Distance from the last source cell at or before each cell (inf if none)."""
    steps = h * w[1:] if order == 1 else 0.5 * h * (w[1:] + w[:-1])
    cum = np.concatenate([[0.0], np.cumsum(steps)])
    last = np.maximum.accumulate(np.where(s, np.arange(w.size), -1))
    out = np.full(w.size, np.inf)
    ok = last >= 0
    out[ok] = cum[ok] - cum[last[ok]]
    return out


# ---------------------------------------------------------------------- windows
def _extent(coords: np.ndarray, n: int, periodic: bool) -> tuple[int, int]:
    """Index range [lo, hi) covering ``coords`` along an axis; wraps (hi > n) if periodic."""
    c = np.unique(coords)
    if not periodic or c.size == n:
        return int(c[0]), int(c[-1]) + 1
    gaps = np.diff(np.concatenate([c, [c[0] + n]]))
    k = int(np.argmax(gaps))
    if k == c.size - 1:
        return int(c[0]), int(c[-1]) + 1
    return int(c[k + 1]), int(c[k]) + n + 1


class _Window:
    """A box of cells (possibly wrapped on periodic axes) and how to index it."""

    def __init__(self, grid: Grid, extent, pad_lo, pad_hi):
        self.axes = []  # per axis: (periodic, low side is a sample face, high side is one)
        index: list[slice | np.ndarray] = []
        contiguous = True
        for a, n in enumerate(grid.shape):
            lo, hi = extent[a][0] - pad_lo[a], extent[a][1] + pad_hi[a]
            idx: slice | np.ndarray
            if grid.periodic:
                if hi - lo >= n:
                    idx, per, flo, fhi = slice(0, n), True, True, True
                else:
                    if lo >= 0 and hi <= n:
                        idx = slice(lo, hi)
                    else:
                        idx = np.arange(lo, hi) % n
                        contiguous = False
                    per, flo, fhi = False, False, False
            else:
                lo, hi = max(lo, 0), min(hi, n)
                idx, per, flo, fhi = slice(lo, hi), False, lo == 0, hi == n
            self.axes.append((per, flo, fhi))
            index.append(idx)
        if contiguous:
            self.index: tuple = tuple(index)
        else:
            self.index = np.ix_(*[np.arange(i.start, i.stop) if isinstance(i, slice) else i
                                  for i in index])
        self.periodic = [p for p, _, _ in self.axes]
        self.full = all(f and g for _, f, g in self.axes)

    def touched(self, field: np.ndarray, bound: float) -> list[tuple[bool, bool]]:
        """Per axis, whether cells closer than ``bound`` lie on the low / high open faces."""
        out = []
        for a, (_, flo, fhi) in enumerate(self.axes):
            lo = (not flo) and bool(np.any(np.take(field, 0, axis=a) <= bound))
            hi = (not fhi) and bool(np.any(np.take(field, -1, axis=a) <= bound))
            out.append((lo, hi))
        return out


def _source_extent(grid: Grid, cells: np.ndarray) -> list[tuple[int, int]]:
    """Per-axis index range of source cells ``cells`` (shape (n, d))."""
    return [_extent(cells[:, a], grid.shape[a], grid.periodic) for a in range(grid.ndim)]


def _bounded_field(wf: np.ndarray, grid: Grid, extent, select, bound: float, order: int,
                   pad0: np.ndarray):
    """Run the windowed search; ``select(window_index)`` gives the source mask in the window.

    Returns ``(window, field)`` with ``field`` the distance on ``wf[window.index]``.
    """
    if not np.isfinite(bound):
        pad_lo = pad_hi = np.array(grid.shape)
    else:
        pad_lo, pad_hi = pad0.copy(), pad0.copy()
    while True:
        win = _Window(grid, extent, pad_lo, pad_hi)
        field = _march(wf[win.index], select(win.index), grid.spacing, win.periodic, order,
                       bound)
        if win.full or not np.isfinite(bound):
            return win, field
        grow = False
        for a, (lo, hi) in enumerate(win.touched(field, bound)):
            if lo:
                pad_lo[a] = 2 * pad_lo[a]
                grow = True
            if hi:
                pad_hi[a] = 2 * pad_hi[a]
                grow = True
        if not grow:
            return win, field


def _initial_pad(mean: float, grid: Grid, bound: float) -> np.ndarray:
    """Padding (cells per axis) of the first window: ``3 bound / (mean(w) h)`` plus 2 cells.

    Free paths through basins reach farther than ``bound / mean(w)``; the factor 3 was the
    fastest on the 2D block model (1.05 marches per source instead of 2.3 with factor 1: a
    larger window costs little because the march stops at the bound).
    """
    if not np.isfinite(bound) or mean <= 0:
        return np.array(grid.shape)
    reach = _PAD_FACTOR * bound / mean
    pad = [int(np.ceil(reach / h)) + 2 for h in grid.spacing]
    return np.minimum(np.array(pad), np.array(grid.shape))


# ---------------------------------------------------------------------- public API
def distance_field(
    metric: np.ndarray,
    grid: Grid,
    source: np.ndarray,
    *,
    bound: float | None = None,
    order: int = 2,
    window: bool = True,
) -> np.ndarray:
    """Geodesic distance from a set of cells in a local metric (eq. 9), by fast marching.

    Parameters
    ----------
    metric
        Local metric w(r) >= 0 on the grid (units 1/length), e.g. ``land.agmon_metric(E)``.
    grid
        The sample's :class:`~mottscape.grid.Grid` (spacing per axis, boundary condition).
    source
        Boolean mask of the source cells, of the grid's shape, with at least one True cell.
    bound
        Stop the search at this distance: cells farther than ``bound`` are ``np.inf``. None (or
        ``np.inf``) computes the whole field.
    order
        Fast-marching order, 1 or 2 (default). Order 2 assumes a continuous metric.
    window
        With a finite bound, march only on a window around the source that is grown until it
        holds every cell closer than ``bound`` (same result as the full grid, less work).

    Returns
    -------
    numpy.ndarray
        rho(r, source), 0 on source cells; see the module notes for the conventions (the zero
        level passes through the centres of the source's boundary cells) and the errors.
    """
    grid_shape = tuple(grid.shape)
    metric = _check_metric(metric, grid)
    source = _check_source(source, grid_shape)
    order = _check_order(order)
    bnd = np.inf if bound is None else _check_bound(bound)
    wf = floored_metric(metric, grid)
    if not window or not np.isfinite(bnd):
        return _march(wf, source, grid.spacing, [grid.periodic] * grid.ndim, order, bnd)
    extent = _source_extent(grid, np.argwhere(source))
    pad0 = _initial_pad(float(metric.mean()), grid, bnd)
    win, field = _bounded_field(wf, grid, extent, lambda ix: source[ix], bnd, order, pad0)
    out = np.full(grid_shape, np.inf)
    out[win.index] = field
    return out


def agmon_distance(
    land: Landscape,
    energy: float,
    source: np.ndarray,
    *,
    bound: float | None = None,
    order: int = 2,
) -> np.ndarray:
    """Agmon distance rho_E(r, source) from a set of cells (eq. 9), on the whole grid.

    This is the exponent of the decay of a state of energy E localized in ``source`` (eq. 10):
    psi(r) ~ exp(-rho_E(r, B)).

    Parameters
    ----------
    land
        The solved landscape (its V_u defines the metric).
    energy
        The energy E of eq. 9, in the frame of the unshifted potential.
    source
        Boolean mask of grid shape, e.g. ``basins.mask(i)``.
    bound
        Cells farther than ``bound`` are ``np.inf`` (the search stops there). None: no bound.
    order
        Fast-marching order (1 or 2).

    Returns
    -------
    numpy.ndarray
        Dimensionless distances, 0 on the source.
    """
    _check_landscape(land)
    energy = real(energy, "energy")
    return distance_field(land.agmon_metric(energy), land.grid, source, bound=bound, order=order)


@dataclass(frozen=True)
class PairDistances:
    """Agmon distances rho_ij between basins, for the pairs closer than a bound (eqs. 9, 12).

    Attributes
    ----------
    i, j
        Basin indices (into the :class:`~mottscape.basins.Basins` arrays), ``i < j``.
    rho
        rho_ij, the smaller of the two directed estimates min_{B_j} rho(., B_i) and
        min_{B_i} rho(., B_j) when both were computed (they differ by the discretisation error).
    n
        Number of basins (the size of the square matrix :meth:`to_sparse` returns).
    bound
        The search bound, a float or one value per entry of ``sources``.
    sources
        The basins searched from, sorted; only pairs of sources are listed.
    energy
        The energy E of the metric.
    """

    i: np.ndarray
    j: np.ndarray
    rho: np.ndarray
    n: int
    bound: float | np.ndarray
    sources: np.ndarray
    energy: float

    def __len__(self) -> int:
        return int(self.rho.size)

    def to_sparse(self) -> sp.csr_array:
        """Symmetric ``n x n`` sparse matrix of rho_ij (explicit zeros kept: absent = not found)."""
        rows = np.concatenate([self.i, self.j])
        cols = np.concatenate([self.j, self.i])
        vals = np.concatenate([self.rho, self.rho])
        mat = sp.coo_array((vals, (rows, cols)), shape=(self.n, self.n)).tocsr()
        return mat

    def lookup(self, i: int, j: int) -> float:
        """rho_ij for one pair: 0 if ``i == j``, np.inf if the pair is not listed."""
        i, j = int(i), int(j)
        if i == j:
            return 0.0
        a, b = min(i, j), max(i, j)
        hit = np.flatnonzero((self.i == a) & (self.j == b))
        return float(self.rho[hit[0]]) if hit.size else np.inf


def basin_distances(
    land: Landscape,
    basins: Basins,
    *,
    energy: float | None = None,
    sources: np.ndarray | None = None,
    bound: float | np.ndarray = np.inf,
    order: int = 2,
    progress: bool = False,
    workers: int | None = None,
) -> PairDistances:
    """Agmon distances rho_ij = rho(B_i, B_j) between basins (eqs. 9, 11-12), bounded searches.

    For each source basin B_i one bounded fast-marching search (the compiled kernel of
    :mod:`mottscape._agmon_kernels`, see the module notes) gives rho(r, B_i); rho_ij is its
    minimum over the cells of B_j. The metric vanishes
    in every basin, so paths through third basins are free.

    Parameters
    ----------
    land
        The solved landscape.
    basins
        Basins of the same landscape (:func:`~mottscape.basins.find_basins`).
    energy
        Energy E of the metric; default ``basins.level`` (E_F).
    sources
        Basin indices to search from and to (e.g. Sigma_omega from ``basins.sigma_omega``);
        default every basin.
    bound
        Stop each search at this distance (scalar, or one value per source in the order of
        ``sources``), typically rho_omega + 1. Pairs farther apart than the bounds are not
        listed.
    order
        Fast-marching order (1 or 2).
    progress
        Show a progress bar (tqdm, on stderr) over the searches.
    workers
        Threads that run the compiled searches side by side (batches of :data:`_BATCH`
        sources; the kernel releases the GIL; each thread holds the part of its scratch
        arrays that one batch reaches, up to :data:`SCRATCH_BYTES_PER_CELL` bytes per cell
        for unbounded searches). Default: the CPUs available, at most :data:`MAX_THREADS`,
        one per batch of sources, within :data:`THREAD_MEMORY` for unbounded searches. 1D
        samples use one thread. The result does not depend on it.

    Returns
    -------
    PairDistances
        A pair is listed if either directed search found it within its bound.
    """
    _check_landscape(land)
    if not isinstance(basins, Basins):
        raise InputError(
            f"basins must be a Basins (from mottscape.find_basins), got {type(basins).__name__}")
    if basins.grid.shape != land.grid.shape:
        raise InputError(
            f"basins are on a grid of shape {basins.grid.shape} but the landscape has shape "
            f"{land.grid.shape}; find the basins of this landscape"
        )
    energy = basins.level if energy is None else real(energy, "energy")
    order = _check_order(order)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise InputError(f"workers={workers!r} must be a positive int or None")
    nb = basins.n
    src, bounds, given_bound = _sources_and_bounds(sources, bound, nb)
    grid = land.grid
    metric = land.agmon_metric(energy)  # a new array: floored in place
    wf = np.ascontiguousarray(floored_metric(metric, grid, out=metric), dtype=np.float64).ravel()
    del metric
    labels = _kernel_labels(basins.labels, nb)
    wanted = np.zeros(nb + 1, np.bool_)
    wanted[src + 1] = True
    cells, start = _kernels.basin_cells(labels, nb)
    from tqdm import tqdm

    bar = tqdm(total=src.size, desc="Agmon searches", unit="basin", disable=not progress,
               file=sys.stderr, leave=False, mininterval=0.5)
    args = (wf, labels, cells, start, src, bounds, wanted, grid, order)
    try:
        found = (_walk_1d(*args, bar, progress) if grid.ndim == 1 else
                 _march_nd(*args, bar, _search_threads(workers, src.size, wf.size,
                                                        bool(np.all(np.isfinite(bounds))))))
    finally:
        bar.close()
    lo, hi, r = _unique_pairs(found, nb)
    out_bound = given_bound if given_bound is not None else bounds.copy()
    return PairDistances(i=lo, j=hi, rho=r, n=nb, bound=out_bound, sources=src, energy=energy)


def _kernel_labels(labels: np.ndarray, nb: int) -> np.ndarray:
    """The basin labels as the kernels take them: flat, contiguous, int32.

    int32 is what ``scipy.ndimage.label`` returns, so the labels of the pipeline pass without
    a copy (an int64 copy cost 8 bytes per cell for the whole search), and the kernels are
    compiled for one label type only. int64 only if the labels do not fit in int32.
    """
    dtype = np.int32 if nb < np.iinfo(np.int32).max else np.int64
    return np.ascontiguousarray(labels).astype(dtype, copy=False).ravel()


def _sources_and_bounds(sources, bound, nb: int
                        ) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Checked, sorted source basins, their bounds, and the scalar bound if one was given."""
    if sources is None:
        src = np.arange(nb)
    else:
        src = np.atleast_1d(np.asarray(sources))
        if src.size and not np.issubdtype(src.dtype, np.integer):
            raise InputError(f"sources must be integer basin indices, got dtype {src.dtype}")
        src = src.astype(int)
        if src.size and (src.min() < 0 or src.max() >= nb):
            bad = int(src[(src < 0) | (src >= nb)][0])
            raise InputError(
                f"sources contains basin index {bad}, out of range; valid indices are 0 to "
                f"{nb - 1} ({nb} basins)"
            )
    given = src
    src, first = np.unique(given, return_index=True)
    if src.size != given.size:
        raise InputError("sources contains repeated basin indices; pass each basin once")
    if np.ndim(bound) == 0:  # checked as given: a bool or text is not a bound
        value = _check_bound(bound)
        return src, np.full(src.size, value), value
    barr = np.asarray(bound)
    if barr.dtype.kind not in "iuf":
        raise InputError(f"bound must be numbers >= 0, one per source; got dtype {barr.dtype}")
    barr = barr.astype(float)
    if barr.shape != given.shape:
        raise InputError(
            f"bound has shape {barr.shape}; pass a scalar or one value per source "
            f"({given.size} sources)"
        )
    for b in barr:
        _check_bound(b)
    return src, barr[first], None  # bounds aligned with the sorted sources


def _walk_1d(wf, labels, cells, start, src, bounds, wanted, grid: Grid, order: int, bar,
             progress: bool) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """1D: exact cumulative sums along the line, one call (batches only feed the bar)."""
    step = _BATCH if progress else max(src.size, 1)
    found = []
    for k in range(0, src.size, step):
        found.append(_kernels.walk_pairs_1d(wf, labels, cells, start, src[k:k + step],
                                            bounds[k:k + step], wanted, bool(grid.periodic),
                                            float(grid.spacing[0]), order))
        bar.update(min(step, src.size - k))
    return found


def _march_nd(wf, labels, cells, start, src, bounds, wanted, grid: Grid, order: int, bar,
              threads: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """2D/3D: bounded multi-source fast marching, batches of sources on ``threads`` threads.

    The compiled kernel releases the GIL, so threads run batches side by side; each holds
    its own scratch arrays. Results are collected in batch order (deterministic).
    """
    shape3 = np.ones(3, np.int64)
    shape3[3 - grid.ndim:] = grid.shape
    h3 = np.ones(3)
    h3[3 - grid.ndim:] = grid.spacing
    periodic = bool(grid.periodic)
    pool: queue.SimpleQueue = queue.SimpleQueue()
    for _ in range(threads):
        pool.put(_Scratch(wf.size))

    def run(k: int):
        scratch = pool.get()
        lowest = None
        try:
            *got, lowest = _kernels.march_pairs(wf, labels, cells, start, src[k:k + _BATCH],
                                                bounds[k:k + _BATCH], wanted, shape3,
                                                periodic, h3, order, *scratch.arrays)
            return tuple(got)
        finally:
            scratch.release(below=lowest)
            pool.put(scratch)

    starts = range(0, src.size, _BATCH)
    found = []
    with contextlib.ExitStack() as stack:
        if threads > 1:
            results = stack.enter_context(ThreadPoolExecutor(threads)).map(run, starts)
        else:
            results = map(run, starts)
        for k, got in zip(starts, results, strict=True):
            found.append(got)
            bar.update(min(_BATCH, src.size - k))
    return found


class _Scratch:
    """One thread's work arrays for :func:`_kernels.march_pairs`, in anonymous memory maps.

    ``dist``, ``flag`` and ``pos`` are indexed by cell, so they have the sample's size, and
    ``touched``, ``hv``, ``hi``, ``batch`` may have to hold every cell of one search; but a
    batch of bounded searches writes only the pages near its sources. Fresh maps are untouched
    zero pages (only the written pages become resident), and :meth:`release` hands pages back
    to the OS after each batch: a thread then holds about what one batch reaches, not the union
    of all its batches, which covers the whole sample by the end of a run (17 bytes per cell
    and thread, measured on 256^3 before this class). The kernel returns with ``flag`` at 0
    everywhere and reads ``dist`` and ``pos`` only at cells flagged in the current search, so
    the contents after a release (zeros on Linux) never matter, and which pages are released
    changes no result, only memory and time.

    Sources come in label order, i.e. in scan order of their first cell, so the next batches
    reach about as low as this one and higher: the pages below the lowest cell a batch
    touched are released, the others kept for the next batch (releasing everything made the
    next batch fault the same pages in again; about 5 % of a one-thread 192^3 Agmon step).
    """

    #: dtypes of dist, flag, pos, touched, hv, hi, batch (the kernel's argument order)
    DTYPES = (np.float64, np.uint8, np.int64, np.int64, np.float64, np.int64, np.int64)
    #: the first BY_CELL arrays (dist, flag, pos) are indexed by cell
    BY_CELL = 3

    def __init__(self, n: int) -> None:
        # private: on a shared anonymous map (mmap's default) MADV_DONTNEED only unmaps the
        # pages, the memory stays allocated and the contents come back on the next touch
        kw = ({"flags": mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS}
              if hasattr(mmap, "MAP_PRIVATE") else {})
        self._maps = [mmap.mmap(-1, max(n * np.dtype(t).itemsize, 1), **kw)
                      for t in self.DTYPES]
        self.arrays = tuple(np.frombuffer(m, t, count=n)
                            for m, t in zip(self._maps, self.DTYPES, strict=True))

    def release(self, below: int | None = None) -> None:
        """Hand the pages of the cells before ``below`` (default: all) back to the OS.

        Where ``madvise`` exists; else the pages are kept.
        """
        if not hasattr(mmap, "MADV_DONTNEED"):
            return
        for k, (m, t) in enumerate(zip(self._maps, self.DTYPES, strict=True)):
            if below is None:
                m.madvise(mmap.MADV_DONTNEED)
            elif k < self.BY_CELL:  # the others are indexed by slot: their first pages serve
                nbytes = min(below * np.dtype(t).itemsize, len(m))  # every search
                nbytes = nbytes // mmap.PAGESIZE * mmap.PAGESIZE
                if nbytes > 0:
                    m.madvise(mmap.MADV_DONTNEED, 0, nbytes)


def _unique_pairs(found, nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undirected pairs i < j with the smaller of the two directed distances."""
    if not found or not sum(f[0].size for f in found):
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    a = np.concatenate([f[0] for f in found])
    b = np.concatenate([f[1] for f in found])
    r = np.concatenate([f[2] for f in found])
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo.astype(np.int64) * nb + hi
    srt = np.lexsort((r, key))
    key, lo, hi, r = key[srt], lo[srt], hi[srt], r[srt]
    first = np.concatenate([[True], key[1:] != key[:-1]])
    return lo[first].astype(int), hi[first].astype(int), r[first]


# ---------------------------------------------------------------------- geodesics
def _as_region(spec, grid: Grid, name: str) -> np.ndarray:
    arr = np.asarray(spec)
    if arr.dtype == bool:
        return _check_source(arr, grid.shape, name)
    if arr.shape != (grid.ndim,) or not np.issubdtype(arr.dtype, np.integer):
        raise InputError(
            f"{name}={spec!r} must be a cell index (a tuple of {grid.ndim} ints) or a boolean "
            f"mask of shape {grid.shape} (e.g. basins.mask(i))"
        )
    if np.any(arr < 0) or np.any(arr >= np.array(grid.shape)):
        raise InputError(f"{name}={tuple(int(x) for x in arr)} lies outside the grid {grid.shape}")
    mask = np.zeros(grid.shape, bool)
    mask[tuple(arr)] = True
    return mask


def geodesic(
    land: Landscape,
    energy: float,
    start: tuple[int, ...] | np.ndarray,
    end: tuple[int, ...] | np.ndarray,
    *,
    order: int = 2,
) -> np.ndarray:
    """A minimal path of the Agmon metric (eq. 9) between two cells or two regions.

    The field rho(r, start) is computed by fast marching on the whole grid; the path is then
    traced back from the point of ``end`` closest to ``start`` by discrete steepest descent of
    that field over the 3^d - 1 neighbouring cells (the neighbour with the steepest decrease
    ``(rho(nb) - rho(cur)) / |step|``) until a cell of ``start`` is reached. The path follows
    the fast-marching geodesic to within about two cells; as a chain of cell centres its
    Euclidean length overestimates a smooth path by up to 8 % (the 3^d - 1 neighbour
    directions, like an 8-connected grid graph in 2D), so integrate the metric along it only as
    a rough check; use :func:`agmon_distance` for the distance.

    Parameters
    ----------
    land
        The solved landscape.
    energy
        The energy E of the metric.
    start, end
        A cell (tuple of d grid indices) or a region (boolean mask, e.g. ``basins.mask(i)``).
    order
        Fast-marching order of the field (1 or 2).

    Returns
    -------
    numpy.ndarray
        Cell-centre positions along the path, shape ``(n, d)``, in length units, from start to
        end. On periodic samples the path is unwrapped (consecutive points are neighbours; the
        positions may lie outside the box: take them modulo ``grid.lengths`` to wrap).
    """
    _check_landscape(land)
    energy = real(energy, "energy")
    grid = land.grid
    a = _as_region(start, grid, "start")
    b = _as_region(end, grid, "end")
    field = distance_field(land.agmon_metric(energy), grid, a, order=order)
    cand = np.where(b, field, np.inf)
    first = int(np.argmin(cand))  # the end cell nearest to start: the walk begins there
    if not np.isfinite(cand.flat[first]):
        raise InputError("end cannot be reached from start")
    offsets, steplen = neighbour_offsets(grid)
    shape3 = np.array((1,) * (3 - grid.ndim) + tuple(grid.shape), np.int64)
    # the field decreases strictly along the walk: it visits each cell at most once
    _, taken = _kernels.descend(field.ravel(), a.ravel().astype(np.int64), shape3,
                                grid.periodic, offsets, steplen, first, 1, grid.size + 1)
    moves = offsets[taken[1:], 3 - grid.ndim:]
    walk = np.vstack([np.unravel_index(first, grid.shape), moves]).cumsum(axis=0)  # unwrapped
    shape = np.array(grid.shape)
    path = walk[::-1]
    path -= path[0] - path[0] % shape  # start cell inside the box (periodic unwrapping)
    return grid.positions(path)


def neighbour_offsets(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """The 3^d - 1 neighbour offsets (padded to 3 axes, leading zeros) and their lengths."""
    d = grid.ndim
    offs = np.array([o for o in itertools.product((-1, 0, 1), repeat=d) if any(o)], np.int64)
    steplen = np.sqrt(((offs * np.asarray(grid.spacing)) ** 2).sum(axis=1))
    padded = np.zeros((offs.shape[0], 3), np.int64)
    padded[:, 3 - d:] = offs
    return padded, steplen
