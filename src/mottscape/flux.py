"""Herring's tunnelling amplitude as the lattice flux of the states' box eigenvectors.

Herring's formula gives the tunnelling amplitude of two single-well states as the flux of
their Wronskian through a surface S that separates the wells,

    t_ab = (hbar^2 / 2m) int_S (psi_a grad psi_b - psi_b grad psi_a) . dS,

and on the lattice of :mod:`mottscape.hamiltonian` (H = -kinetic div(grad / m) + V) the
same identity holds bond by bond: for the bonds (c0, c1) that S cuts along axis k, with the
hopping tau_k = kinetic / (m h_k^2) and psi normalized over the volume,

    t_ab = tau_k |Omega_cell| sum_bonds [psi_a(c1) psi_b(c0) - psi_a(c0) psi_b(c1)].

``amplitude="herring"`` evaluates the integral by the Laplace method at the Agmon midpoint s*
of the geodesic (the continuum metric w(s*) times psi_a psi_b(s*) times the tube's Gaussian
cross-section, :mod:`mottscape.tube`). ``amplitude="flux"`` (our extension) takes the sum
itself, on the states' own box eigenvectors (:class:`mottscape.basin_states.StateVectors`): S
is the lattice plane through s* across the axis along which the geodesic advances most there,
over a patch of the bonds within three transverse widths of the tube (the Gaussian width
sqrt(1 / lambda) of the midpoint cross-section (2 pi / lambda)^{(d-1)/2}, stretched by the
geodesic's slant to the plane), where both boxes hold all four values. No Laplace method and
no continuum metric are involved: on a lattice the states decay as acosh(1 + Delta/2) per
site, not sqrt(Delta), and the flux per bond is 2 sinh of that rate, which the continuum
formula misses at the large barriers of strongly disordered 3D samples
(docs/investigation/README.md, "3D Anderson model pair by pair").

A pair gets no flux (NaN, and the pair model keeps Herring's Laplace estimate) when the boxes
share no bond of the geodesic, or when either state is not a single-well state of its basin:
its box also holds the partner state (the two are then hybrids of one box Hamiltonian), or
it carries more than :data:`PARTNER_WEIGHT` of its weight on the partner's basin (a hybrid
that the box did not resolve as two states; the flux of such a vector is meaningless).

Written here rather than taken from a library: the Wronskian flux of two eigenvectors over a
patch of lattice bonds is a few array operations on the package's own box vectors; no sparse
or graph library offers it.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np

from ._groups import expanded

if TYPE_CHECKING:
    from .agmon import PairDistances
    from .basin_states import StateVectors
    from .grid import Grid
    from .tube import PairTubes

__all__ = ["PARTNER_WEIGHT", "PATCH_MAX_CELLS", "PATCH_WIDTHS", "flux_amplitude"]

#: The patch of S reaches this many transverse Gaussian widths of the tube from the geodesic
#: (e^{-9/2}: the flux outside is below 1 %).
PATCH_WIDTHS = 3.0
#: Largest half-width of the patch, in cells along each transverse axis.
PATCH_MAX_CELLS = 8
#: Largest weight of a state on its partner's basin for it to count as a single-well state
#: (a mixing amplitude of 0.1; the convention of ``pairs.RESOLVE_LEAK``).
PARTNER_WEIGHT = 1e-2
#: Cells of the geodesic on each side of the midpoint that give its direction there.
DIRECTION_STEPS = 2


def flux_amplitude(vectors: StateVectors, grid: Grid, labels: np.ndarray,
                   dist: PairDistances, tubes: PairTubes, a: np.ndarray, b: np.ndarray,
                   pair: np.ndarray, kinetic: float, mass: np.ndarray) -> np.ndarray:
    """t_ab of each state pair as the lattice Herring flux through the midpoint plane.

    Parameters
    ----------
    vectors
        The states' box eigenvectors.
    grid
        The sample's grid.
    labels
        The basins' labels on the grid (0 outside, i + 1 in basin i).
    dist, tubes
        The basin pairs (B_i, B_j, rho_ij) and their geodesics, midpoints and cross-sections.
    a, b
        The state pairs: ``a`` in basin i of its basin pair, ``b`` in basin j.
    pair
        Index of each state pair's basin pair in ``dist`` and ``tubes``.
    kinetic
        hbar^2 / (2 m_ref) of the unit system.
    mass
        Effective mass per basin pair (units of m_ref).

    Returns
    -------
    numpy.ndarray
        t_ab (energy), NaN where the flux could not be read (see the module docstring).
    """
    t = np.full(a.size, np.nan)
    if not a.size:
        return t
    rho = dist.rho[pair]
    k = np.flatnonzero(tubes.mid_cell[pair] >= 0)
    k = k[_single_well(vectors, labels, dist, a[k], b[k], pair[k], grid.cell_volume)]
    cell = tubes.mid_cell[pair[k]]
    for attempt in range(4):
        if attempt == 2:  # the boxes do not both hold the midpoint: the nearest cell they do
            cell = _shared_cell(vectors, a[k], b[k], pair[k], rho[k], tubes)
            k, cell = k[cell >= 0], cell[cell >= 0]
        # the plane just after the cell (towards B_i), then just before it
        t[k] = _flux_through(vectors, grid, a[k], b[k], pair[k], cell, attempt % 2, tubes,
                             kinetic, mass)
        left = ~np.isfinite(t[k])
        k, cell = k[left], cell[left]
    return t


def _single_well(vectors: StateVectors, labels: np.ndarray, dist: PairDistances,
                 a: np.ndarray, b: np.ndarray, pair: np.ndarray, cell_volume: float
                 ) -> np.ndarray:
    """Whether both states of each pair are single-well states (see the module docstring)."""
    ok = ~vectors.shares_box(a, b) & ~vectors.shares_box(b, a)
    basin_cells = _BasinCells(labels)
    for s, partner in ((a, dist.j[pair]), (b, dist.i[pair])):
        ok &= basin_cells.weight(vectors, s, partner, cell_volume) <= PARTNER_WEIGHT
    return ok


class _BasinCells:
    """The cells of every basin, grouped (flat indices)."""

    def __init__(self, labels: np.ndarray) -> None:
        flat = labels.ravel()
        inside = np.flatnonzero(flat > 0)
        order = np.argsort(flat[inside], kind="stable")
        self.cells = inside[order]
        self.start = np.searchsorted(flat[self.cells], np.arange(1, int(flat.max(initial=0)) + 2))

    def weight(self, vectors: StateVectors, states: np.ndarray, basins: np.ndarray,
               cell_volume: float) -> np.ndarray:
        """Weight of each state on the basin ``basins[k]`` (what its box holds of it)."""
        q, k = expanded(self.start[basins + 1] - self.start[basins])
        k += self.start[basins][q]
        vals = vectors.values(states[q], self.cells[k], anywhere=True)
        return np.bincount(q, weights=np.nan_to_num(vals) ** 2,
                           minlength=states.size) * cell_volume


def _flux_through(vectors: StateVectors, grid: Grid, a: np.ndarray, b: np.ndarray,
                  pair: np.ndarray, cell: np.ndarray, back: int, tubes: PairTubes,
                  kinetic: float, mass: np.ndarray) -> np.ndarray:
    """The flux through the plane at ``cell``, a cell of each pair's geodesic.

    The plane lies between ``cell`` and its neighbour towards B_i (``back=1``: towards B_j);
    NaN where the two boxes do not both hold that bond itself.
    """
    if not a.size:
        return np.zeros(0)
    axis, step, slant = _crossing(grid, tubes, pair, cell)
    half = _half_width(grid, tubes.mid_section[pair], slant)
    c0, c1, inside = _bonds(grid, cell, axis, step, half, back)
    m = c0.shape[1]
    sa, sb = np.repeat(a, m), np.repeat(b, m)
    cells0, cells1 = c0.ravel(), c1.ravel()
    va0, va1 = vectors.values(sa, cells0), vectors.values(sa, cells1)
    vb0, vb1 = vectors.values(sb, cells0), vectors.values(sb, cells1)
    wronski = (va1 * vb0 - va0 * vb1).reshape(c0.shape)
    held = np.isfinite(wronski) & inside
    tau = kinetic / (mass[pair] * np.asarray(grid.spacing)[axis] ** 2)
    total = np.abs(np.where(held, wronski, 0.0).sum(axis=1)) * tau * grid.cell_volume
    return np.where(held[:, m // 2], total, np.nan)  # offset 0 sits in the middle


def _shared_cell(vectors: StateVectors, a: np.ndarray, b: np.ndarray, pair: np.ndarray,
                 rho: np.ndarray, tubes: PairTubes) -> np.ndarray:
    """Per state pair, the cell of its geodesic nearest the midpoint that both boxes hold.

    Nearest in rho; -1 where the boxes hold no common cell of the geodesic.
    """
    q, k = tubes.path_items(pair)
    cells = tubes.path_cells[k]
    both = np.isfinite(vectors.values(a[q], cells)) & np.isfinite(vectors.values(b[q], cells))
    gap = np.where(both, np.abs(tubes.path_rho[k] - 0.5 * rho[q]), np.inf)
    out = np.full(pair.size, -1)
    if not q.size:
        return out
    order = np.lexsort((gap, q))
    first = order[np.r_[True, q[order][1:] != q[order][:-1]]]
    found = np.isfinite(gap[first])
    out[q[first][found]] = cells[first][found]
    return out


def _crossing(grid: Grid, tubes: PairTubes, pair: np.ndarray, cell: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The crossing axis of the plane at ``cell``, the step towards B_i, and the slant.

    The axis is the one the geodesic advances most along there; the slant is 1 / cos of the
    angle between them.
    """
    start, stop = tubes.path_start[pair], tubes.path_start[pair + 1]
    q, k = tubes.path_items(pair)
    hit = np.flatnonzero(tubes.path_cells[k] == cell[q])
    at = (start + stop) // 2  # (the cell is on the path; the middle is only a guard)
    at[q[hit][::-1]] = k[hit][::-1]  # the first hit of each pair wins
    back = np.maximum(at - DIRECTION_STEPS, start)  # the path runs from B_j to B_i
    ahead = np.minimum(at + DIRECTION_STEPS, stop - 1)
    idx = lambda cells: np.stack(np.unravel_index(cells, grid.shape), axis=1)  # noqa: E731
    delta = grid.displacement(grid.positions(idx(tubes.path_cells[back])),
                              grid.positions(idx(tubes.path_cells[ahead])))
    delta /= np.asarray(grid.spacing)  # in cells
    axis = np.argmax(np.abs(delta), axis=1)
    along = delta[np.arange(pair.size), axis]
    norm = np.linalg.norm(delta, axis=1)
    slant = np.where(np.abs(along) > 0, norm / np.maximum(np.abs(along), 1e-300), 1.0)
    return axis, np.where(along < 0, -1, 1), slant


def _half_width(grid: Grid, section: np.ndarray, slant: np.ndarray) -> np.ndarray:
    """Half-width of the patch in cells: PATCH_WIDTHS Gaussian widths of the tube."""
    d = grid.ndim
    if d == 1:
        return np.zeros(section.size, int)
    # section = (2 pi / lambda)^{(d-1)/2}, the Gaussian width is lambda^{-1/2}
    width = np.sqrt(np.maximum(section, 0.0) ** (2.0 / (d - 1)) / (2.0 * math.pi))
    cells = PATCH_WIDTHS * width * slant / min(grid.spacing)
    return np.clip(np.ceil(cells), 1, PATCH_MAX_CELLS).astype(int)


def _bonds(grid: Grid, mid: np.ndarray, axis: np.ndarray, step: np.ndarray,
           half: np.ndarray, back: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bonds (c0, c1) of each pair's patch, c1 = c0 + step along ``axis``, flat indices.

    c0 is ``mid`` (``back=1``: c1 is) plus the transverse offsets. Shape ``(pairs, patch)``:
    the same square of transverse offsets for every pair (offset 0 in the middle); ``inside``
    marks the offsets within each pair's ``half`` and on the grid (Dirichlet), elsewhere the
    indices are -1.
    """
    d = grid.ndim
    r = range(-PATCH_MAX_CELLS, PATCH_MAX_CELLS + 1)
    combos = list(itertools.product(r, repeat=d - 1))
    square = np.array(combos, int).reshape(len(combos), d - 1)
    n, m = mid.size, square.shape[0]
    offsets = np.zeros((n, m, d), int)
    for k in range(d):  # embed the transverse square around each pair's crossing axis
        sel = axis == k
        offsets[np.ix_(sel, np.arange(m), np.delete(np.arange(d), k))] = square[None]
    inside = np.abs(square).max(axis=1, initial=0)[None, :] <= half[:, None]
    base = np.stack(np.unravel_index(mid, grid.shape), axis=1)[:, None, :] + offsets
    shift = np.zeros((n, 1, d), int)
    shift[np.arange(n), 0, axis] = step
    base = base - back * shift
    flat = []
    for cells in (base, base + shift):
        shape = np.asarray(grid.shape)
        if grid.periodic:
            cells = cells % shape
        else:
            inside = inside & np.all((cells >= 0) & (cells < shape), axis=2)
            cells = np.clip(cells, 0, shape - 1)
        flat.append(np.ravel_multi_index(tuple(np.moveaxis(cells, 2, 0)), grid.shape))
    return np.where(inside, flat[0], -1), np.where(inside, flat[1], -1), inside
