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

from ._labels import label_stats, weighted_offsets
from .errors import InputError
from .grid import Grid
from .landscape import Landscape

__all__ = ["Basins", "find_basins", "watershed_minima"]

CENTERS = ("weighted", "centroid", "minimum")
SPLITS = ("components", "watershed")


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
    try:
        energy = float(energy)
    except (TypeError, ValueError):
        raise InputError(f"energy={energy!r} must be a finite number (the level E, e.g. E_F)") \
            from None
    if not np.isfinite(energy):
        raise InputError(f"energy={energy!r} must be a finite number (the level E, e.g. E_F)")
    grid = land.grid
    vu = land.effective_potential
    mask = vu <= energy
    structure = ndi.generate_binary_structure(grid.ndim, 1)
    comp, ncomp = ndi.label(mask, structure=structure)
    comp_stats = label_stats(comp, vu, ncomp)  # one compiled pass: counts, minima, boxes
    percolating = _spans_boxes(comp_stats[3], comp_stats[4], comp.shape)
    if grid.periodic:
        comp, ncomp = _merge_periodic(comp, grid.ndim)
    if split == "watershed" and ncomp:
        labels = _watershed(vu, mask)
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


def watershed_minima(values: np.ndarray) -> np.ndarray:
    """Minimum of ``values`` over each watershed catchment basin (one per local minimum)."""
    values = np.asarray(values, dtype=float)
    labels = _watershed(values)
    index = np.unique(labels)
    index = index[index > 0]
    if index.size == 0:  # a flat map (scikit-image finds no minimum): one catchment basin
        return np.array([float(values.min())]) if values.size else np.zeros(0)
    return np.asarray(ndi.minimum(values, labels, index), dtype=float)


# ---------------------------------------------------------------------- helpers
#: Local minima shallower than this fraction of the scale of the values are round-off (e.g.
#: between cells that are equal by symmetry), not wells: they get no basin of their own.
ROUNDOFF_DEPTH = 1e-10


def _watershed(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Watershed labels of ``values`` (face connectivity), one per minimum deeper than
    round-off: the markers are the h-minima with h = ROUNDOFF_DEPTH * scale, so that the
    segmentation does not depend on the last bits of the values (without this, V and V + c
    could give different basins). 0 where no marker is reached (flat maps)."""
    from skimage.morphology import h_minima
    from skimage.segmentation import watershed

    face = ndi.generate_binary_structure(values.ndim, 1)
    h = ROUNDOFF_DEPTH * (1.0 + float(np.max(np.abs(values))))
    minima = h_minima(values, h, footprint=face).astype(bool)
    if mask is not None:
        minima &= mask
    markers, n = ndi.label(minima, structure=face)
    if n == 0:
        return np.zeros(values.shape, dtype=int)
    return watershed(values, markers=markers, mask=mask, connectivity=1)


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


def _spans(comp: np.ndarray, ndim: int) -> bool:
    """True if one component spans PERCOLATION_SPAN of the sample along some axis."""
    for sl in ndi.find_objects(comp):
        if sl is None:
            continue
        for a in range(ndim):
            n = comp.shape[a]
            if n >= 2 and (sl[a].stop - sl[a].start) >= PERCOLATION_SPAN * n:
                return True
    return False


def _merge_periodic(comp: np.ndarray, ndim: int):
    """Merge components that touch across periodic faces (union-find on the label pairs)."""
    parent = np.arange(int(comp.max()) + 1)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(ndim):
        if comp.shape[a] < 2:
            continue
        lo = np.take(comp, 0, axis=a).ravel()
        hi = np.take(comp, -1, axis=a).ravel()
        both = (lo > 0) & (hi > 0)
        for x, y in set(zip(lo[both].tolist(), hi[both].tolist(), strict=True)):
            rx, ry = find(x), find(y)
            if rx != ry:
                parent[max(rx, ry)] = min(rx, ry)
    roots = np.array([find(i) for i in range(parent.size)])
    merged = roots[comp]
    relabelled, _, _ = _relabel(merged)
    return relabelled, int(relabelled.max())


def _relabel(labels: np.ndarray):
    from skimage.segmentation import relabel_sequential

    return relabel_sequential(labels)
