"""Basins of the effective potential V_u at an energy (sec. II) and the set Sigma_omega.

A basin B_i is a region around a minimum of V_u bounded by the level set V_u = E. By default
each connected component of {V_u <= E} (face connectivity, the hopping graph of the
Hamiltonian) is one basin; ``split="watershed"`` further splits components holding several
local minima along the watershed lines of V_u (scikit-image). Each basin carries one localized
state whose energy is estimated by the landscape rule E_i = (1 + d/4) min_{B_i} V_u (ref. [30]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from ._checks import real
from ._labels import label_stats, weighted_offsets
from ._watershed import watershed, watershed_minima
from .errors import InputError
from .grid import Grid
from .landscape import Landscape
from .options import allowed

__all__ = ["Basins", "find_basins", "watershed_minima"]  # watershed_minima: re-export

CENTERS = allowed("center")
SPLITS = allowed("split")


@dataclass(frozen=True)
class Basins:
    """The basins of V_u at one energy.

    Attributes
    ----------
    level
        The energy E defining the basins {V_u <= E}.
    labels
        Integer map on the grid: 0 outside every basin, i + 1 inside basin i.
    volumes
        |B_i|, physical volume of each basin.
    minima
        min of V_u over each basin.
    minimum_index
        Grid index of each basin's minimum, shape (n, d).
    centers
        Position r_i of each basin, shape (n, d), in length units (see ``center`` in
        :func:`find_basins`).
    energies
        Estimated energy of the state of each basin, (1 + d/4) min V_u (ref. [30]).
    percolating
        True when one basin spans the sample (80 % of its length along some axis, see
        ``PERCOLATION_SPAN``): the LL picture of the mobility edge (ref. [35]); the theory's
        assumption of separated basins fails.
    """

    grid: Grid
    level: float
    labels: np.ndarray
    volumes: np.ndarray
    minima: np.ndarray
    minimum_index: np.ndarray
    centers: np.ndarray
    energies: np.ndarray
    percolating: bool
    filling: float

    @property
    def n(self) -> int:
        """Number of basins."""
        return int(self.volumes.size)

    def __len__(self) -> int:
        return self.n

    def sigma_omega(self, fermi_energy: float, hbar_omega: float) -> np.ndarray:
        """Indices of Sigma_omega: the basins with |E_i - E_F| <= hbar*omega (sec. IV)."""
        return np.flatnonzero(np.abs(self.energies - fermi_energy) <= hbar_omega)

    def mask(self, index) -> np.ndarray:
        """Boolean map of the cells of basin(s) ``index``."""
        return np.isin(self.labels, np.atleast_1d(index) + 1)


def find_basins(
    land: Landscape,
    energy: float,
    *,
    split: str = "components",
    center: str = "weighted",
    energy_rule: str = "landscape",
) -> Basins:
    """Find the basins of V_u at ``energy`` (sec. II).

    Parameters
    ----------
    land
        A solved landscape.
    energy
        The level E (typically E_F), in the frame of the unshifted potential.
    split
        ``"components"`` (one basin per connected component of {V_u <= E}) or
        ``"watershed"`` (one per local minimum of V_u, split along watershed lines).
    center
        How the position r_i of a basin is placed: ``"weighted"`` (centroid weighted by u^2,
        a proxy of the state's |psi|^2, default), ``"centroid"`` (geometric centroid) or
        ``"minimum"`` (the cell of min V_u). Periodic samples use minimum-image offsets from
        the minimum.
    energy_rule
        ``"landscape"`` (default): E_i = (1 + d/4) min V_u (ref. [30]), formed in the frame
        of the solve. ``"minimum"``: E_i = min of the effective potential over the basin (for
        an effective potential that already estimates energies, e.g. the scaled landscape of
        ``run_pipeline(..., effective="scaled")``).

    Returns
    -------
    Basins
    """
    energy = _check_arguments(land, energy, split, center, energy_rule)
    grid = land.grid
    vu = land.effective_potential
    mask = vu <= energy
    structure = ndi.generate_binary_structure(grid.ndim, 1)
    comp, ncomp = ndi.label(mask, structure=structure)
    comp_stats = label_stats(comp, vu, ncomp)  # one compiled pass: counts, minima, boxes
    if grid.periodic:
        comp, ncomp, percolating = _merge_periodic(comp, grid.ndim, comp_stats[3],
                                                   comp_stats[4])
    else:
        percolating = _spans_boxes(comp_stats[3], comp_stats[4], comp.shape)
    if split == "watershed" and ncomp:
        labels = watershed(vu, mask)
        # A component whose minimum is shallower than the round-off depth (or perfectly flat)
        # gets no marker: keep its cells as one basin instead of losing them.
        missing = mask & (labels == 0)
        if missing.any():
            extra, _ = ndi.label(missing, structure=structure)
            labels = np.where(missing, extra + labels.max(), labels)
        labels, _, _ = _relabel(labels)
    else:
        labels = comp
    n = int(labels.max()) if labels.size else 0
    if n == 0:
        empty = np.zeros((0, grid.ndim))
        return Basins(grid, energy, labels, np.zeros(0), np.zeros(0), empty.astype(int), empty,
                      np.zeros(0), percolating, 0.0)
    same = labels is comp and not grid.periodic  # comp_stats describe these labels
    count, minima, argmin, _, _ = comp_stats if same else label_stats(labels, vu, n)
    counts = count.astype(float)
    argmin = argmin.astype(int)
    centers = _centers(land, labels, n, argmin, center)
    d = grid.ndim
    if energy_rule == "minimum":
        energies = minima.copy()
    else:
        energies = (1.0 + d / 4.0) * (minima + land.shift) - land.shift
    return Basins(
        grid=grid,
        level=energy,
        labels=labels,
        volumes=counts * grid.cell_volume,
        minima=minima,
        minimum_index=argmin,
        centers=centers,
        energies=energies,
        percolating=percolating,
        filling=float(mask.mean()),
    )


def _check_arguments(land, energy, split: str, center: str, energy_rule: str) -> float:
    """Check the arguments of :func:`find_basins`; return the level as a float."""
    if split not in SPLITS:
        raise InputError(f"split={split!r} is not known; use one of {SPLITS}")
    if energy_rule not in ("landscape", "minimum"):
        raise InputError(f"energy_rule={energy_rule!r} must be 'landscape' or 'minimum'")
    if center not in CENTERS:
        raise InputError(f"center={center!r} is not known; use one of {CENTERS}")
    if not isinstance(land, Landscape):
        raise InputError(
            f"land must be a Landscape (from mottscape.solve_landscape), got "
            f"{type(land).__name__}")
    return real(energy, "energy", hint=" (the level E, e.g. E_F)")


def _centers(land: Landscape, labels, n, argmin, center):
    grid = land.grid
    origin = grid.positions(argmin)
    if center == "minimum":
        return origin
    weight = land.u**2 if center == "weighted" else np.ones(grid.shape)
    if not grid.periodic:
        wsum, osum = weighted_offsets(labels, weight, n, origin, grid.spacing)
        return origin + osum / wsum[:, None]
    flat = labels.ravel()
    inside = flat > 0
    idx = np.indices(grid.shape).reshape(grid.ndim, -1)[:, inside].T
    lab = flat[inside] - 1
    w = weight.ravel()[inside]
    offset = grid.displacement(origin[lab], grid.positions(idx))
    wsum = np.bincount(lab, weights=w, minlength=n)
    shift = np.stack([np.bincount(lab, weights=w * offset[:, a], minlength=n)
                      for a in range(grid.ndim)], axis=1) / wsum[:, None]
    pos = origin + shift
    if grid.periodic:
        pos = np.mod(pos, np.asarray(grid.lengths))
    return pos


#: A basin percolates when it spans this fraction of the sample along some axis. Dirichlet
#: walls push V_u up near the faces, so a level set never touches them literally; spanning
#: 80 % of the length (between boundary layers of 10 %) is the working criterion.
PERCOLATION_SPAN = 0.8


def _spans_boxes(lo: np.ndarray, hi: np.ndarray, shape: tuple[int, ...]) -> bool:
    """:func:`_spans` from the inclusive bounding boxes of the components (shape (n, d))."""
    if lo.shape[0] == 0:
        return False
    n = np.asarray(shape)
    extent = hi - lo + 1
    return bool(np.any((n >= 2) & (extent >= PERCOLATION_SPAN * n)))


def _merge_periodic(comp: np.ndarray, ndim: int, lo: np.ndarray, hi: np.ndarray):
    """Merge components that touch across periodic faces; tell whether a cluster percolates.

    A union-find over the component labels that also carries, for each component, its
    translation (in periods, per axis) into the unwrapped frame of its cluster's root. Two
    components glued across a face of axis a sit one period apart along a; a glue between
    components already in one cluster with another translation means the cluster wraps
    around the torus (it percolates). Otherwise the cluster percolates when its unwrapped
    extent spans ``PERCOLATION_SPAN`` of the sample, so the verdict does not depend on where
    the cluster crosses the faces. Written by hand: scipy.ndimage and scikit-image label
    periodic images only by merging, without the translations.

    Parameters
    ----------
    comp
        Component labels (0 outside), labels 1..n.
    ndim
        Dimension.
    lo, hi
        Inclusive bounding boxes of the components, shape (n, d).

    Returns
    -------
    (labels, n, percolating)
    """
    n = int(comp.max())
    parent = np.arange(n + 1)
    offset = np.zeros((n + 1, ndim), dtype=np.int64)  # translation relative to the parent
    wraps = False

    def find(i: int) -> tuple[int, np.ndarray]:
        shift = np.zeros(ndim, dtype=np.int64)
        while parent[i] != i:
            shift += offset[i]
            i = parent[i]
        return i, shift

    for a in range(ndim):
        if comp.shape[a] < 2:
            continue
        low = np.take(comp, 0, axis=a).ravel()
        high = np.take(comp, -1, axis=a).ravel()
        both = (low > 0) & (high > 0)
        step = np.zeros(ndim, dtype=np.int64)
        step[a] = 1
        for x, y in sorted(set(zip(low[both].tolist(), high[both].tolist(), strict=True))):
            # cell of x at index 0 neighbours cell of y at index -1 when x is one period up
            rx, fx = find(x)
            ry, fy = find(y)
            if rx == ry:
                wraps |= bool(np.any(fx != fy + step))
            else:
                parent[rx] = ry
                offset[rx] = fy + step - fx
    roots = np.zeros(n + 1, dtype=np.int64)
    shifts = np.zeros((n + 1, ndim), dtype=np.int64)
    for i in range(1, n + 1):
        roots[i], shifts[i] = find(i)
    percolating = wraps
    if not percolating and n:
        size = np.asarray(comp.shape)
        ulo = lo + shifts[1:] * size
        uhi = hi + shifts[1:] * size
        r = roots[1:]
        for root in np.unique(r):
            sel = r == root
            extent = uhi[sel].max(axis=0) - ulo[sel].min(axis=0) + 1
            if np.any((size >= 2) & (extent >= PERCOLATION_SPAN * size)):
                percolating = True
                break
    merged = roots[comp]
    relabelled, _, _ = _relabel(merged)
    return relabelled, int(relabelled.max()), percolating


def _relabel(labels: np.ndarray):
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)
