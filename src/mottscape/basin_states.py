"""Every state of every basin near E_F: one small eigenproblem per basin (issue 11, App. A).

The paper's pair picture (sec. III, App. A) attaches the states near E_F to the basins of V_u.
A basin holds its ground state and, if it is large, excited states too; the landscape estimate
(1 + d/4) min V_u (ref. [30]) only gives the ground state. Here each basin B_k gets the exact
states of H restricted to a box around it: the bounding box of B_k padded by ``padding`` Agmon
lengths (Dirichlet on the box faces, periodic samples wrapped), diagonalised in the window
[E_F - W, E_F + W]. A state is kept by the basin that holds the largest share of its weight
|psi|^2 (the label at its peak, else the basin with the largest weight in the box), so a
state seen by several overlapping boxes is kept once. The cost is linear in the number of
basins (each box has a few Agmon lengths of padding).

For each kept state: its energy E_a, centroid r_a, localization (participation) volume
V_a = 1 / int |psi|^4 (so c_a = V_a^{-1/2} of eq. 10 and App. A), and the weight left on the box
faces (its leakage, a check of the padding). Pairs of states of one basin are not tunnelling
pairs (they are already orthogonal eigenstates of the same well): their dipole matrix element
|X_ab|^2 (eq. 5) is computed on the box and they enter the Kubo-Greenwood sum directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.ndimage as ndi
import scipy.sparse as sp

from .basins import Basins
from .errors import InputError
from .sample import Sample

__all__ = ["BasinStates", "basin_states", "landscape_counts"]

#: Boxes with at most this many cells are diagonalised densely (``eigh(subset_by_value)``);
#: larger ones by shift-invert Lanczos around E_F.
DENSE_BOX_MAX = 2500
#: Agmon distances from the basin over which the tail amplitude of a state is measured.
TAIL_RANGE = (1.0, 3.0)
#: Default box padding, in Agmon lengths 1/<w> outside the basins (|psi|^2 ~ e^{-2 padding}
#: on the box faces).
PADDING_AGMON = 10.0


@dataclass(frozen=True)
class BasinStates:
    """The states near E_F found basin by basin.

    Attributes
    ----------
    basin
        Owner basin of each state (index into the :class:`~mottscape.basins.Basins`).
    energies
        E_a, in the frame of V.
    centroids
        |psi|^2-weighted centroids, shape ``(n, d)``, in length units (inside the sample).
    volumes
        Participation volumes V_a = 1 / int |psi_a|^4 (length^d).
    tails
        Tail amplitudes A_a: psi_a(r) ~ A_a exp(-rho(r, B_k)) outside the basin (eq. 10),
        the geometric mean of |psi_a| e^{rho} over the box cells with
        :data:`TAIL_RANGE[0] <= rho <= TAIL_RANGE[1]` (1/length^{d/2}); NaN if no such cell.
    leakage
        Weight of each state on the outer cell layer of its box (small when the padding holds
        the state).
    intra_a, intra_b, intra_x2
        The pairs of states of one basin (indices into the state arrays, ``a < b``) and their
        |X_ab|^2 (eq. 5, summed over axes, length^2).
    window
        The energy half-width W of the states kept (|E_a - E_F| <= W).
    padding_cells
        The box padding used, in cells per axis.
    """

    basin: np.ndarray
    energies: np.ndarray
    centroids: np.ndarray
    volumes: np.ndarray
    tails: np.ndarray
    leakage: np.ndarray
    intra_a: np.ndarray
    intra_b: np.ndarray
    intra_x2: np.ndarray
    window: float
    padding_cells: np.ndarray

    @property
    def n(self) -> int:
        """Number of states."""
        return int(self.energies.size)

    def counts(self, n_basins: int) -> np.ndarray:
        """Number of states found per basin."""
        return np.bincount(self.basin, minlength=n_basins)


def _padding_cells(sample: Sample, metric: np.ndarray, basins: Basins,
                   padding: float) -> np.ndarray:
    """Box padding per axis: ``padding`` Agmon lengths 1 / <w> over the cells outside basins."""
    outside = basins.labels == 0
    mean = float(metric[outside].mean()) if outside.any() else 0.0
    h = np.asarray(sample.grid.spacing)
    if mean <= 0:
        return np.asarray(sample.grid.shape)
    cells = np.ceil(padding / (mean * h)).astype(int) + 1
    return np.minimum(cells, np.asarray(sample.grid.shape))


def _box_axes(sample: Sample, slices: tuple[slice, ...], pad: np.ndarray) -> list[np.ndarray]:
    """Unwrapped cell indices of the padded box, per axis (clipped or wrapped at the faces)."""
    axes = []
    for a, (sl, n) in enumerate(zip(slices, sample.grid.shape, strict=True)):
        lo, hi = sl.start - int(pad[a]), sl.stop + int(pad[a])
        if sample.grid.periodic:
            if hi - lo >= n:
                lo, hi = 0, n
            axes.append(np.arange(lo, hi))
        else:
            axes.append(np.arange(max(lo, 0), min(hi, n)))
    return axes


def _eigenpairs(A: sp.csr_array, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of a box in (lo, hi]: dense for small boxes, else shift-invert Lanczos.

    Shift-invert at the window centre returns the k eigenvalues nearest to it; k is doubled
    until the farthest one returned lies outside the window, so the window is complete.
    """
    n = A.shape[0]
    if n <= DENSE_BOX_MAX:
        return sla.eigh(A.toarray(), subset_by_value=(lo, hi), driver="evr")
    from scipy.sparse.linalg import eigsh

    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    k = 16
    while True:
        w, v = eigsh(A.tocsc(), k=min(k, n - 2), sigma=centre, which="LM")
        if np.abs(w - centre).max() > half or k >= n - 2:
            break
        k *= 2
    order = np.argsort(w)
    w, v = w[order], v[:, order]
    keep = (w > lo) & (w <= hi)
    return w[keep], v[:, keep]


def _owners(v: np.ndarray, labels_box: np.ndarray, nb: int) -> np.ndarray:
    """Owner basin of each box state: the label at its peak, else the largest basin weight."""
    weight = v**2
    peak = labels_box[np.argmax(weight, axis=0)]
    out = peak - 1
    missing = np.flatnonzero(peak == 0)
    if missing.size:
        inside = labels_box > 0
        for s in missing:
            share = np.bincount(labels_box[inside], weights=weight[inside, s], minlength=nb + 1)
            out[s] = int(np.argmax(share[1:])) if share[1:].max() > 0 else -1
    return out


def _tails(v: np.ndarray, metric_box: np.ndarray, source: np.ndarray, sample: Sample
           ) -> np.ndarray:
    """Tail amplitude A_a of each column of ``v`` (see :attr:`BasinStates.tails`)."""
    from .agmon import distance_field
    from .grid import make_grid

    grid = make_grid(metric_box.shape, sample.grid.spacing)
    rho = distance_field(metric_box, grid, source, bound=TAIL_RANGE[1] + 1.0).ravel()
    sel = (rho >= TAIL_RANGE[0]) & (rho <= TAIL_RANGE[1])
    if not sel.any() or v.shape[1] == 0:
        return np.full(v.shape[1], np.nan)
    psi = np.abs(v[sel]) / math.sqrt(sample.grid.cell_volume)
    with np.errstate(divide="ignore"):
        logs = np.log(psi) + rho[sel, None]
    return np.exp(np.median(logs, axis=0))


def _box_states(sample: Sample, A: sp.csr_array, basins: Basins, k: int, axes, lo: float,
                hi: float, metric: np.ndarray) -> dict[str, np.ndarray]:
    """The states of one basin's box that basin ``k`` owns, and its intra-basin dipoles."""
    shape = sample.grid.shape
    mesh = np.meshgrid(*axes, indexing="ij")
    wrapped = [m % n for m, n in zip(mesh, shape, strict=True)]
    flat = np.ravel_multi_index(wrapped, shape).ravel()
    w, v = _eigenpairs(A[flat][:, flat], lo, hi)
    owners = _owners(v, basins.labels.ravel()[flat], basins.n)
    keep = owners == k
    w, v = w[keep], v[:, keep]
    box_shape = tuple(len(x) for x in axes)
    tails = _tails(v, metric.ravel()[flat].reshape(box_shape),
                   (basins.labels.ravel()[flat] == k + 1).reshape(box_shape), sample)
    h = np.asarray(sample.grid.spacing)
    pos = np.stack([(m.ravel() + 0.5) * h[a] for a, m in enumerate(mesh)], axis=1)
    prob = v**2
    centroid = prob.T @ pos
    edge = np.zeros(box_shape, bool)
    for a, x in enumerate(axes):  # the box faces that are not faces of a Dirichlet sample
        n = sample.grid.shape[a]
        if (sample.grid.periodic and x.size < n) or x[0] > 0:
            edge[(slice(None),) * a + (0,)] = True
        if (sample.grid.periodic and x.size < n) or x[-1] < n - 1:
            edge[(slice(None),) * a + (-1,)] = True
    leak = prob[edge.ravel()].sum(axis=0)
    volume = sample.grid.cell_volume / np.sum(prob**2, axis=0)
    ia, ib = np.triu_indices(w.size, 1)
    x2 = np.zeros(ia.size)
    for a in range(pos.shape[1]):
        xa = v.T @ (pos[:, a:a + 1] * v)
        x2 += xa[ia, ib] ** 2
    lengths = np.asarray(sample.grid.lengths)
    return dict(energies=w, centroids=centroid % lengths if sample.grid.periodic else centroid,
                volumes=volume, tails=tails, leakage=leak, ia=ia, ib=ib, x2=x2)


def basin_states(sample: Sample, basins: Basins, metric: np.ndarray, fermi_energy: float,
                 window: float, *, padding: float = PADDING_AGMON) -> BasinStates:
    """The eigenstates of H in |E - E_F| <= ``window``, found basin by basin.

    Parameters
    ----------
    sample
        The system (its Hamiltonian H of eq. 3).
    basins
        The basins of V_u at E_F (:func:`~mottscape.basins.find_basins`).
    metric
        The Agmon metric at E_F (eq. 9, ``land.agmon_metric(E_F)``), which sets the padding.
    fermi_energy
        E_F, in the frame of V.
    window
        Half-width W of the energy window (energy unit of the sample), typically hbar omega_max.
    padding
        Box padding around each basin, in Agmon lengths (the inverse mean metric outside the
        basins).

    Returns
    -------
    BasinStates
    """
    if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
        raise InputError(f"window={window!r} must be a finite energy > 0 (the half-width of "
                         "the window of states around E_F)")
    if not (isinstance(padding, int | float) and math.isfinite(padding) and padding > 0):
        raise InputError(f"padding={padding!r} must be a number of Agmon lengths > 0, e.g. 4")
    pad = _padding_cells(sample, metric, basins, float(padding))
    A = sample.hamiltonian.matrix("csr")
    lo, hi = fermi_energy - window, fermi_energy + window
    parts: dict[str, list] = {key: [] for key in ("basin", "energies", "centroids", "volumes",
                                                   "tails", "leakage", "ia", "ib", "x2")}
    offset = 0
    for k, sl in enumerate(ndi.find_objects(basins.labels, basins.n)):
        if sl is None:
            continue
        got = _box_states(sample, A, basins, k, _box_axes(sample, sl, pad), lo, hi, metric)
        n = got["energies"].size
        parts["basin"].append(np.full(n, k))
        parts["ia"].append(got.pop("ia") + offset)
        parts["ib"].append(got.pop("ib") + offset)
        for key, value in got.items():
            parts[key].append(value)
        offset += n
    d = sample.ndim

    def cat(key: str, empty: np.ndarray) -> np.ndarray:
        return np.concatenate(parts[key]) if parts[key] else empty

    return BasinStates(
        basin=cat("basin", np.zeros(0, int)), energies=cat("energies", np.zeros(0)),
        centroids=cat("centroids", np.zeros((0, d))), volumes=cat("volumes", np.zeros(0)),
        tails=cat("tails", np.zeros(0)),
        leakage=cat("leakage", np.zeros(0)), intra_a=cat("ia", np.zeros(0, int)),
        intra_b=cat("ib", np.zeros(0, int)), intra_x2=cat("x2", np.zeros(0)),
        window=float(window), padding_cells=pad)


def landscape_counts(land, basins: Basins, lo: float, hi: float) -> np.ndarray:
    """Landscape-law number of states per basin in (lo, hi] (refs. [28, 30]).

    The landscape law N(E) = sum_cells N_0(E - V_u) (free IDOS per cell) restricted to the
    cells of each basin, per spin: the LL's own count of the states a basin holds.
    """
    from .landscape import free_idos

    vu = land.effective_potential
    lab = basins.labels.ravel()
    inside = lab > 0
    counts = []
    mass = np.broadcast_to(land.mass, vu.shape).ravel()[inside]
    for e in (hi, lo):
        excess = np.maximum(e - vu.ravel()[inside], 0.0) * mass
        per_cell = free_idos(excess, land.grid, land.units,
                             land.dispersion) * land.grid.cell_volume
        counts.append(np.bincount(lab[inside] - 1, weights=per_cell, minlength=basins.n))
    return counts[0] - counts[1]
