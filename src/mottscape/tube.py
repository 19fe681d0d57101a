"""The tube around the Agmon geodesic between two basins (App. A, eqs. A3-A10, A19-A20).

The overlap of two LL-approximated states (eq. 10) outside their basins is
I_ij = int e^{-rho(B_i, r) - rho(B_j, r)} dr = e^{-rho_ij} V_ij (eqs. A3, A10), with the tube
volume by the Laplace method along the geodesic Gamma_ij (eq. A9):

    V_ij = int_{Gamma_1} (2 pi)^{(d-1)/2} / sqrt(det H_perp(s)) ds + sum_k |B~_k|,

Gamma_1 the part of the geodesic where the metric is non-degenerate (V_u > E_F) and B~_k the
basins it crosses (V_u <= E_F, where f = rho_ij on a whole region, eq. A6).

The geodesic is traced from B_j down the field rho(., B_i) by steepest descent over the
3^d - 1 neighbouring cells (:func:`mottscape.agmon.geodesic` does the same for one pair). The
transverse Hessian H_perp of f = rho(., B_i) + rho(., B_j) is estimated in one of two ways
(``cross_section``):

``"landscape"`` (eqs. A18-A20, the paper)
    det H_perp = -Delta u / u in 2D and (Delta u / u)^2 / 4 in 3D. On the lattice
    -Delta u / u = (2m / hbar^2)(V_u - V) exactly (from H u = 1), so no derivative is taken.
    Where this is <= 0 in 2D (cells where V > V_u: the tops of barriers) the Laplace method
    has no Gaussian to integrate; those points use the ``"fronts"`` value and are counted.
    Note that eq. A18 is the condition for e^{-rho} to solve the Schroedinger equation with
    the eikonal of eq. 9; it misses the spreading of the wave fronts, so that in a flat
    barrier it gives det H_perp = 0 (an infinite tube).
``"fronts"`` (our extension)
    The level sets of rho(., B_i) and rho(., B_j) taken as spheres centred on the basins
    (radius R = a + l, a the radius of the basin's volume-equivalent ball, l the path length
    from it): each contributes the curvature w / R in each transverse direction, so
    det H_perp = [w (1/R_i + 1/R_j)]^{d-1}. Exact for point basins in a flat barrier
    (f = kappa (|r - r_i| + |r - r_j|)), and tested against the direct integral of eq. A3.

In 1D there is no transverse direction: V_ij is the length of Gamma_1 plus the basins crossed.

Also returned, for the tunnelling amplitude of Herring's formula (see :mod:`mottscape.pairs`):
the metric w(s*) and the cross-section at the Agmon midpoint s* of Gamma_1 (where
rho(s*, B_i) = rho_ij / 2), and the tube's centre (the cross-section-weighted mean position of
Gamma_1, where the overlap of the two states sits, for the second term of eq. B3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _agmon_kernels as _kernels
from ._groups import expanded
from .agmon import PairDistances, chain_cumulative, chain_run_distance, neighbour_offsets
from .basins import Basins
from .landscape import Landscape
from .options import CrossSection

__all__ = ["PairTubes", "pair_tubes"]


@dataclass(frozen=True)
class PairTubes:
    """Tube geometry of the listed basin pairs (App. A), aligned with a :class:`PairDistances`.

    Attributes
    ----------
    volume
        V_ij of eq. A10 (length^d): the Gamma_1 integral plus the crossed basins' volumes.
    crossed
        The part of ``volume`` from the basins the geodesic crosses (sum_k |B~_k|, eq. A6).
    mid_metric, mid_section
        The metric w and the cross-section (2 pi)^{(d-1)/2} / sqrt(det H_perp) at the Agmon
        midpoint of Gamma_1 (0 and 0 if Gamma_1 is empty).
    mid_cell
        Flat grid index of the Agmon midpoint cell (the middle cell of the path when Gamma_1
        is empty), where the pair model reads its states' amplitudes
        (``state_amplitude="midpoint"``).
    path_cells, path_rho, path_start
        The traced geodesic of each pair: its flat grid cells from B_j to B_i, and
        rho(., B_i) on them, pair p at ``path_start[p]:path_start[p + 1]``.
    centre
        Cross-section-weighted mean position of Gamma_1, shape ``(n, d)`` (length units).
    fallback
        Per pair, the fraction of Gamma_1 whose ``"landscape"`` curvature was <= 0 (those
        points used ``"fronts"``).
    steps
        Number of cells on each traced geodesic.
    """

    volume: np.ndarray
    crossed: np.ndarray
    mid_metric: np.ndarray
    mid_section: np.ndarray
    mid_cell: np.ndarray
    centre: np.ndarray
    fallback: np.ndarray
    steps: np.ndarray
    path_cells: np.ndarray
    path_rho: np.ndarray
    path_start: np.ndarray

    def path_items(self, pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every cell of the listed pairs' paths, flattened.

        Returns, per cell, its pair (index into ``pair``) and its index into ``path_cells`` and
        ``path_rho``.
        """
        start = self.path_start[pair]
        q, k = expanded(self.path_start[pair + 1] - start)
        return q, k + start[q]


def _section(lam: np.ndarray, d: int) -> np.ndarray:
    """(2 pi)^{(d-1)/2} / sqrt(det H_perp) for det = lam^{d-1} (one curvature per direction)."""
    return (2.0 * math.pi / lam) ** ((d - 1) / 2.0)


def _radius(volume: float, d: int) -> float:
    """Radius of the d-ball of the given volume."""
    return (volume * math.gamma(d / 2 + 1) / math.pi ** (d / 2)) ** (1.0 / d)


@dataclass(frozen=True)
class _Fields:
    """Per-cell inputs of the tube integral, flattened."""

    metric: np.ndarray
    landscape_curvature: np.ndarray
    labels: np.ndarray
    positions: np.ndarray


def _fields(land: Landscape, metric_land: Landscape, basins: Basins, energy: float) -> _Fields:
    grid = land.grid
    # -Delta u / u = (2 m / hbar^2)(V_u - V) on the lattice (H u = 1), eq. A18
    vu = land.effective_potential
    curv = (vu - land.potential) * land.mass / land.units.kinetic
    idx = np.indices(grid.shape).reshape(grid.ndim, -1).T
    return _Fields(metric=metric_land.agmon_metric(energy).ravel(),
                   landscape_curvature=np.broadcast_to(curv, grid.shape).ravel(),
                   labels=basins.labels.ravel().astype(np.int64), positions=grid.positions(idx))


def _one_tube(path: np.ndarray, lens: np.ndarray, pos: np.ndarray, fields: _Fields,
              field_path: np.ndarray,
              rho: float, a_i: float, a_j: float, volumes: np.ndarray, ends: tuple[int, int],
              d: int, cross_section: str) -> tuple:
    """V_ij, crossed volume, midpoint metric, section and cell, centre and fallback of one path."""
    w = fields.metric[path]
    lab = fields.labels[path]
    crossed_labels = set(np.unique(lab[(w == 0) & (lab > 0)]).tolist()) - {ends[0] + 1,
                                                                             ends[1] + 1}
    crossed = float(sum(volumes[k - 1] for k in crossed_labels))
    # path runs from B_j to B_i: arc length from B_i end
    arc = np.cumsum(lens)
    l_j = arc
    l_i = arc[-1] - arc
    # each cell carries half of its two adjacent steps
    ds = 0.5 * (lens + np.append(lens[1:], 0.0))
    live = w > 0
    if not live.any():
        return (*_thin_barrier(rho, float(arc[-1]), a_i, a_j, crossed, pos, d),
                int(path[path.size // 2]))
    lam_f = w * (1.0 / (a_i + l_i) + 1.0 / (a_j + l_j))
    lam = lam_f.copy()
    bad = np.zeros(path.size, bool)
    if cross_section == "landscape" and d > 1:
        k = fields.landscape_curvature[path]
        lam_l = k if d == 2 else np.abs(k) / 2.0  # det = (Delta u/u)^2/4 -> lambda = |.|/2
        bad = lam_l <= 0
        lam = np.where(bad, lam_f, lam_l)
    section = _section(np.where(live, lam, 1.0), d) if d > 1 else np.ones(path.size)
    weight = np.where(live, section * ds, 0.0)
    vol = float(weight.sum()) + crossed
    mid = int(np.argmin(np.where(live, np.abs(field_path - 0.5 * rho), np.inf)))
    centre = (weight @ pos) / weight.sum() if weight.sum() > 0 else pos.mean(axis=0)
    frac = float(bad[live].mean()) if live.any() else 0.0
    return vol, crossed, float(w[mid]), float(section[mid]), centre, frac, int(path[mid])


def _thin_barrier(rho: float, length: float, a_i: float, a_j: float, crossed: float,
                  pos: np.ndarray, d: int) -> tuple:
    """The tube of a path with no cell of positive metric (basins one step apart).

    rho_ij > 0 then comes from the floored metric between the path's cells, and the Laplace
    method of eq. A9 has no non-degenerate part to integrate. For Herring's amplitude the
    barrier is taken as uniform over the path: w = rho_ij / length, with the fronts'
    cross-section at zero path length, det H_perp = [w (1/a_i + 1/a_j)]^{d-1}. Without it the
    midpoint flux, and t_ab, would be zero for the most strongly coupled pairs.
    """
    w_mid = rho / length if length > 0 else 0.0
    if w_mid <= 0:
        return crossed, crossed, 0.0, 0.0, pos.mean(axis=0), 0.0
    section = float(_section(np.array([w_mid * (1.0 / a_i + 1.0 / a_j)]), d)[0]) \
        if d > 1 else 1.0
    return crossed, crossed, w_mid, section, pos.mean(axis=0), 0.0


@dataclass(frozen=True)
class _Window:
    """The bounded field of one source basin on the cells it covers (flat, row-major).

    ``offset`` maps window cells to the grid's (``offset + k``; a 1D stretch), or None when
    the window is the whole grid.
    """

    field: np.ndarray
    labels: np.ndarray
    shape3: np.ndarray
    periodic: bool
    offset: int | None
    #: The grid's basins as ``(cells, start)`` (:func:`_kernels.basin_cells`) when the
    #: window is the whole grid: a basin's cells without a pass over the grid.
    basins: tuple[np.ndarray, np.ndarray] | None = None

    def cells_of(self, label: int) -> np.ndarray:
        """Window cells with this label."""
        if self.basins is not None:
            cells, start = self.basins
            return cells[start[label - 1]:start[label]]
        return np.flatnonzero(self.labels == label)

    def global_cells(self, cells: np.ndarray) -> np.ndarray:
        """Grid cells of window cells."""
        return cells if self.offset is None else cells + self.offset


class _SourceFields:
    """Bounded Agmon fields rho(., B_i) of the tube sources.

    2D and 3D: the compiled bounded fast marching of :mod:`mottscape._agmon_kernels` on the
    whole grid (the values of :func:`mottscape.agmon.distance_field`, without a scikit-fmm
    call and its window per source). A 1D Dirichlet chain: only the stretch within the bound,
    from one cumulative sum of the metric (a basin is a run of cells; the field is the
    trapezoid sum away from its ends, as :func:`mottscape.agmon.distance_field` in 1D).
    """

    def __init__(self, metric: np.ndarray, labels: np.ndarray, grid) -> None:
        from .agmon import _kernel_labels, floored_metric

        self.grid = grid
        self.labels = labels
        self.wf = np.ascontiguousarray(floored_metric(metric, grid), dtype=float).ravel()
        self.chain = grid.ndim == 1 and not grid.periodic
        nb = int(labels.max(initial=0))
        # the labels as the Agmon searches pass them (int32): one compiled basin_cells
        self.cells, self.start = _kernels.basin_cells(_kernel_labels(labels, nb), nb)
        if self.chain:
            self.cum = chain_cumulative(self.wf, float(grid.spacing[0]))
        else:
            # One set of the grid-sized arrays of the march for every source: a source's
            # field costs the cells its search touches, not the grid's (allocating them per
            # source made the tubes quadratic in the sample: 1,264 sources took 8.5 s at
            # 1024^2 against 0.5 s for all the tubes at 512^2).
            n = self.wf.size
            self.dist, self.flag = np.full(n, np.inf), np.zeros(n, np.uint8)
            self.work = (np.full(n, -1, np.int64), np.empty(n, np.int64), np.empty(n),
                         np.empty(n, np.int64), np.empty(n, np.int64))
            self.touched = 0
        self.shape3 = np.array((1,) * (3 - grid.ndim) + tuple(grid.shape), np.int64)
        self.h3 = np.array((1.0,) * (3 - grid.ndim) + tuple(grid.spacing))

    def field(self, i: int, bound: float) -> _Window:
        """rho(., B_i), inf beyond ``bound`` (or outside the returned stretch).

        2D and 3D: the window's field is a buffer shared by all sources, valid until the
        next call.
        """
        if not self.chain:
            _kernels.reset_touched(self.touched, self.work[1], self.dist, self.flag)
            cells = self.cells[self.start[i]:self.start[i + 1]]
            self.touched = _kernels.march_field_into(
                self.wf, self.labels, cells, i + 1, self.shape3, bool(self.grid.periodic),
                self.h3, 2, bound, self.dist, self.flag, *self.work)
            return _Window(self.dist, self.labels, self.shape3, bool(self.grid.periodic), None,
                           (self.cells, self.start))
        a, b = int(self.cells[self.start[i]]), int(self.cells[self.start[i + 1] - 1])
        lo = int(np.searchsorted(self.cum, self.cum[a] - bound, side="left")) - 1
        hi = int(np.searchsorted(self.cum, self.cum[b] + bound, side="right")) + 1
        lo, hi = max(lo, 0), min(hi, self.labels.size)
        f = chain_run_distance(self.cum, a, b, np.arange(lo, hi))
        f[f > bound] = np.inf
        return _Window(f, self.labels[lo:hi], np.array([1, 1, hi - lo], np.int64), False, lo)


def pair_tubes(land: Landscape, metric_land: Landscape, basins: Basins,
               pairs: PairDistances, cross_section: CrossSection = "fronts") -> PairTubes:
    """Tube volumes V_ij (eq. A9-A10) of the listed basin pairs.

    Parameters
    ----------
    land
        The solved landscape (its u gives the curvature of eqs. A19-A20).
    metric_land
        The landscape whose metric defines rho (V_u, or W_u with ``effective="scaled"``).
    basins
        The basins at E_F.
    pairs
        The basin pairs and their rho_ij (:func:`mottscape.agmon.basin_distances`).
    cross_section
        ``"fronts"`` or ``"landscape"`` (eqs. A19-A20), see the module notes.

    Returns
    -------
    PairTubes
        Aligned with ``pairs``.
    """
    grid = land.grid
    d = grid.ndim
    n = len(pairs)
    out = dict(volume=np.zeros(n), crossed=np.zeros(n), mid_metric=np.zeros(n),
               mid_section=np.zeros(n), mid_cell=np.full(n, -1), centre=np.zeros((n, d)),
               fallback=np.zeros(n),
               steps=np.zeros(n, int))
    paths: list[np.ndarray] = [np.zeros(0, np.int64)] * n
    path_rho: list[np.ndarray] = [np.zeros(0)] * n
    if n == 0:
        return PairTubes(**out, **_ragged(paths, path_rho))
    fields = _fields(land, metric_land, basins, pairs.energy)
    metric = metric_land.agmon_metric(pairs.energy)
    offsets, steplen = neighbour_offsets(grid)
    radius = np.array([_radius(v, d) for v in basins.volumes])
    h = np.asarray(grid.spacing)
    source_fields = _SourceFields(metric, fields.labels, grid)
    for i in np.unique(pairs.i):
        rows = np.flatnonzero(pairs.i == i)
        win = source_fields.field(int(i), float(pairs.rho[rows].max()) * 1.05 + 1.0)
        for p in rows:
            j = int(pairs.j[p])
            cells = win.cells_of(j + 1)
            start = int(cells[np.argmin(win.field[cells])])
            path, taken = _kernels.descend(win.field, win.labels, win.shape3, win.periodic,
                                           offsets, steplen, start, i + 1,
                                           4 * int(win.shape3.sum()) + 16)
            lens = np.where(taken >= 0, steplen[taken], 0.0)
            moves = np.where(taken[:, None] >= 0, offsets[taken, 3 - d:], 0) * h
            glob = win.global_cells(path)
            pos = fields.positions[glob[0]] + np.cumsum(moves, axis=0)  # unwrapped
            got = _one_tube(glob, lens, pos, fields, win.field[path], float(pairs.rho[p]),
                            radius[i], radius[j], basins.volumes, (int(i), j), d,
                            cross_section)
            (out["volume"][p], out["crossed"][p], out["mid_metric"][p], out["mid_section"][p],
             out["centre"][p], out["fallback"][p], out["mid_cell"][p]) = got
            out["steps"][p] = path.size
            paths[p], path_rho[p] = glob, win.field[path]
    return PairTubes(**out, **_ragged(paths, path_rho))


def _ragged(paths: list[np.ndarray], rho: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The geodesics as concatenated cells and rho(., B_i), with each pair's start."""
    start = np.concatenate([[0], np.cumsum([p.size for p in paths], dtype=np.int64)])
    return dict(path_cells=np.concatenate([np.zeros(0, np.int64), *paths]).astype(np.int64),
                path_rho=np.concatenate([np.zeros(0), *rho]), path_start=start)
