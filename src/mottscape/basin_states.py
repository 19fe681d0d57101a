"""Every state of every basin near E_F: one small eigenproblem per basin (issue 11, App. A).

The paper's pair picture (sec. III, App. A) attaches the states near E_F to the basins of V_u.
A basin holds its ground state and, if it is large, excited states too; the landscape estimate
(1 + d/4) min V_u (ref. [30]) only gives the ground state. Here each basin B_k gets the exact
states of H restricted to a box around it: the bounding box of B_k padded by ``padding`` Agmon
lengths (Dirichlet on the box faces, periodic samples wrapped), diagonalised in the window
[E_F - W, E_F + W]. The cost is linear in the number of basins. The boxes are laid out by
:mod:`mottscape.state_boxes` (padding, merging, the whole sample as one box) and solved by
:mod:`mottscape.box_solve`; this module turns their eigenpairs into the states of the basins.

Overlapping boxes see the same state several times. The copies are merged after all boxes are
solved: two states of different boxes are one state when their energies and their centroids
agree; the copy with the least weight on its box faces (its *leakage*) is kept. Matching by
energy and place, not by which basin a box belongs to, keeps both hybrids of two strongly
coupled wells (a rule "a box keeps the states of its own basin" loses one and doubles the
other when the two wells are mirror images). See :func:`_distinct_states` for the rule and
its tolerances. A kept state belongs to the basin nearest to its peak |psi|^2.

For each state: its energy E_a, centroid r_a, localization (participation) volume
V_a = 1 / int |psi|^4 (c_a = V_a^{-1/2} of eq. 10 and App. A), its tail amplitude (psi_a ~ A_a
e^{-rho} outside its basin), its leakage and the shift of its energy by the box's faces
(:func:`_truncation_error`, an energy comparable across grid spacings). Two states resolved
in one box are eigenstates of the same local Hamiltonian: their hybridization is already in
their energies and shapes, and their dipole |X_ab|^2 (eq. 5) is computed on that box
(:class:`BoxPairs`); only pairs that no box holds need the tunnelling estimate of App. A
(:mod:`mottscape.pairs`).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

from ._checks import positive
from .basins import Basins
from .box_solve import box_solver, landscape_cell_counts
from .errors import InputError
from .sample import Sample
from .state_boxes import (
    PADDING_AGMON,
    BoxLayout,
    check_padding_scale,
    layout_boxes,
    padding_cells,
)

__all__ = ["BasinStates", "BoxPairs", "StateVectors", "basin_states", "landscape_counts",
           "nearest_basin"]

#: Agmon distances from the basin over which the tail amplitude of a state is measured.
TAIL_RANGE = (1.0, 3.0)
#: Candidates for copies of one state from two boxes: energies within this many hopping
#: energies (a copy's energy error is 0.1-30 times its leakage, measured on the 2D block
#: model)...
SAME_ENERGY = 0.02
#: ... and centroids within this many cells, or :data:`SAME_SIZE` times the sum of the two
#: states' radii if that is more; the overlap of the two decides. A box that cuts a state's
#: tail pulls its centroid: copies of one state in two boxes were 3-6 cells apart on the
#: training samples (128^2 block, seeds 3-5, and 96^2, seeds 3 and 6, E_F = 0.9), and at 3
#: (the value before 2026-12-07) such copies were kept as new states: 125 states where the
#: exact spectrum has 116 (a box per basin; merged boxes 122). At 10, 20 and 40 the same
#: states are kept (117; merged 117), so 10 is a pre-filter that no longer decides there.
SAME_PLACE = 10.0
#: The reach in units of the states' size: copies of one state lie up to 0.62 times the sum
#: of their radii (participation volume^(1/d)) apart on the training samples and up to 1.31
#: on a 192^2 InGaN-like alloy in nm (0.3 nm cells, states of 8-72 cells' radius), where 10
#: cells kept 1053 states for the 403 of the exact spectrum (2026-12-07).
SAME_SIZE = 2.0
#: A candidate held this well by its box may be a new state whatever box it comes from...
NEW_STATE_LEAKAGE = 1e-3
#: ... and no candidate leaking more than this is kept (a box artefact).
MAX_LEAKAGE = 0.05


@dataclass(frozen=True)
class BoxPairs:
    """Pairs of states resolved together in one box, with their box dipole.

    Attributes
    ----------
    a, b
        The two states (indices into the :class:`BasinStates` arrays), ``a < b``.
    energy_a, energy_b
        Their energies in that box (the box whose faces shift them least,
        :func:`_pairs_of_boxes`).
    x2
        |<a|x|b>|^2 on the box (eq. 5, summed over the axes, length^2).
    leakage
        The larger of the two states' weights on that box's faces.
    energy_error
        The sum of the two states' estimated energy errors in that box (their splitting is
        uncertain by up to this much; :func:`_truncation_error`).
    """

    a: np.ndarray
    b: np.ndarray
    energy_a: np.ndarray
    energy_b: np.ndarray
    x2: np.ndarray
    leakage: np.ndarray
    energy_error: np.ndarray


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
    energy_error
        Estimated shift of each state's energy by the faces of its box (energy unit,
        :func:`_truncation_error`): unlike the leakage, comparable across grid spacings.
    box_pairs
        The pairs of states resolved together in one box (:class:`BoxPairs`).
    unmatched
        Box states neither kept nor matched to a kept state (box artefacts, or copies cut by
        their box so much that their energy or place moved).
    window
        The energy half-width W of the states kept (|E_a - E_F| <= W).
    padding_cells
        The box padding used, in cells per axis.
    n_boxes
        Number of boxes diagonalised (fewer than the basins when neighbouring boxes merged).
    whole_sample
        The whole sample was solved as one box
        (:func:`mottscape.state_boxes.whole_sample_cheaper`): every state is an exact
        eigenstate of H and every pair of them is resolved in that box, so that the pair
        model's sigma is the exact Kubo-Greenwood sum, not an LL estimate.
    vectors
        The states' box eigenvectors (:class:`StateVectors`) when asked for
        (``basin_states(..., keep_vectors=True)``), else None.
    """

    basin: np.ndarray
    energies: np.ndarray
    centroids: np.ndarray
    volumes: np.ndarray
    tails: np.ndarray
    leakage: np.ndarray
    energy_error: np.ndarray
    box_pairs: BoxPairs
    unmatched: int
    window: float
    padding_cells: np.ndarray
    n_boxes: int = 0
    whole_sample: bool = False
    vectors: StateVectors | None = None

    @property
    def n(self) -> int:
        """Number of states."""
        return int(self.energies.size)

    def counts(self, n_basins: int) -> np.ndarray:
        """Number of states found per basin."""
        return np.bincount(self.basin, minlength=n_basins)


#: Agmon lengths 1 / <w> kept between a cell and the faces of a box for the box's states to
#: be read at that cell (:meth:`StateVectors.at`): a Dirichlet face at Agmon distance D pulls
#: a state's tail down by about e^{-2 D}, 2 % at D = 2.
PROBE_MARGIN_AGMON = 2.0


class StateVectors:
    """The kept states' box eigenvectors, read cell by cell.

    Each state is the eigenvector of the box its kept copy comes from (the least leaking one).
    A cell is readable for a state when it lies in that box at least :data:`PROBE_MARGIN_AGMON`
    Agmon lengths (converted to cells per axis) from the box faces that are not faces of a
    Dirichlet sample; elsewhere the box's face has cut the state's tail.

    Parameters
    ----------
    boxes
        Per box holding kept states: its global cells (flat, row-major in the box), the
        vectors of its kept states (columns) and the readable-cell mask.
    slot, column
        Per state: its box (index into ``boxes``) and its column there.
    cell_volume
        Volume of one cell (the vectors are normalized over cells; psi = v / sqrt(cell volume)).
    copies
        Sorted keys ``slot * n_states + state`` of the states that have a copy (kept or not)
        among the eigenvectors of each box in ``boxes`` (:meth:`shares_box`).
    """

    def __init__(self, boxes: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                 slot: np.ndarray, column: np.ndarray, cell_volume: float,
                 copies: np.ndarray) -> None:
        self._boxes = []
        for cells, vectors, readable in boxes:
            order = np.argsort(cells, kind="stable")
            self._boxes.append((cells[order], order, vectors, readable))
        self._slot = np.asarray(slot, int)
        self._column = np.asarray(column, int)
        self._scale = 1.0 / math.sqrt(cell_volume)
        self._copies = np.asarray(copies)

    def shares_box(self, states: np.ndarray, others: np.ndarray) -> np.ndarray:
        """Whether the box of each ``states[k]`` also holds a copy of ``others[k]``.

        There the two are eigenvectors of one box Hamiltonian: each carries its hybridisation
        with the other, so it is not the single-well state of Herring's formula.
        """
        n = self._slot.size
        keys = self._slot[np.asarray(states, int)] * n + np.asarray(others, int)
        return np.isin(keys, self._copies)

    @property
    def nbytes(self) -> int:
        """Memory held by the vectors (with their boxes' cells, order and readable masks)."""
        return int(sum(sum(a.nbytes for a in g) for g in self._boxes))

    def at(self, states: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """|psi_a(r)| of each state ``states[k]`` at grid cell ``cells[k]`` (flat index).

        NaN where the cell is not readable for that state (outside its box, too close to the
        box's faces, or a negative cell index).
        """
        return np.abs(self.values(states, cells))

    def values(self, states: np.ndarray, cells: np.ndarray, anywhere: bool = False
               ) -> np.ndarray:
        """psi_a(r) with its sign (that of the box eigenvector), else as :meth:`at`.

        ``anywhere``: every cell of the box is read, also those near its cut faces.
        """
        states = np.asarray(states, int)
        cells = np.asarray(cells, int)
        out = np.full(states.size, np.nan)
        if not states.size:
            return out
        slot = self._slot[states]
        by_slot = np.argsort(slot, kind="stable")  # the reads grouped box by box
        for sel in np.split(by_slot, np.flatnonzero(np.diff(slot[by_slot])) + 1):
            sorted_cells, order, vectors, readable = self._boxes[int(slot[sel[0]])]
            pos = np.minimum(np.searchsorted(sorted_cells, cells[sel]), sorted_cells.size - 1)
            loc = order[pos]
            ok = (sorted_cells[pos] == cells[sel]) & (readable[loc] | anywhere)
            out[sel[ok]] = vectors[loc[ok], self._column[states[sel[ok]]]] * self._scale
        return out


def _state_vectors(boxes: list[dict], box: np.ndarray, local: np.ndarray, kept: np.ndarray,
                   index: np.ndarray, cell_volume: float) -> StateVectors:
    """The :class:`StateVectors` of the kept states (candidates ``kept``).

    ``index``: the kept state of every candidate (-1 if none), which gives the copies.
    """
    held, slot, column = [], np.zeros(kept.size, int), np.zeros(kept.size, int)
    used = np.unique(box[kept])
    for n, b in enumerate(used):
        sel = np.flatnonzero(box[kept] == b)
        g = boxes[int(b)]
        held.append((g["cells"], g["vectors"][:, local[kept[sel]]], g["readable"]))
        slot[sel], column[sel] = n, np.arange(sel.size)
    copy = (index >= 0) & np.isin(box, used)
    copies = np.unique(np.searchsorted(used, box[copy]) * kept.size + index[copy])
    return StateVectors(held, slot, column, cell_volume, copies)


def nearest_basin(labels: np.ndarray) -> np.ndarray:
    """Per cell, the label of the nearest basin cell (Euclidean, in cells; 0 if no basin).

    The owner of a state is the nearest basin to its peak: a rule that does not depend on the
    box the state was found in, so that overlapping boxes agree on it.
    """
    if not np.any(labels):
        return np.zeros_like(labels)
    _, index = ndi.distance_transform_edt(labels == 0, return_indices=True)
    return labels[tuple(index)]


def _tails(v: np.ndarray, metric_box: np.ndarray, source: np.ndarray, sample: Sample
           ) -> np.ndarray:
    """Tail amplitude of each column of ``v`` from ``source`` (see :attr:`BasinStates.tails`)."""
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


#: Cells whose |psi|^2 is within this relative margin of the maximum tie for the peak.
PEAK_TIE = 1e-3


def _peaks(v: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Global cell of each column's peak |psi|^2; near-ties go to the lowest global index.

    The tie rule does not depend on the box, so that the two hybrids of a symmetric pair of
    wells get the same owners in every box that holds both.
    """
    p = v**2
    tie = p >= (1.0 - PEAK_TIE) * p.max(axis=0)
    return np.where(tie, flat[:, None], np.iinfo(np.int64).max).min(axis=0)


def _edge_mask(sample: Sample, axes: list[np.ndarray], depth=1) -> np.ndarray:
    """Cells near the box faces that are not faces of a Dirichlet sample (flattened).

    ``depth``: cells per axis from the face (an int or one per axis; 1: the outer layer).
    """
    from .exact._common import cut_faces

    edge = np.zeros(tuple(len(x) for x in axes), bool)
    depths = np.broadcast_to(np.asarray(depth, int), (len(axes),))
    for a, low in cut_faces(sample.grid, axes):
        k = int(depths[a])
        part = slice(0, k) if low else slice(max(axes[a].size - k, 0), None)
        edge[(slice(None),) * a + (part,)] = True
    return edge.ravel()


def _truncation_error(sample: Sample, axes: list[np.ndarray], v: np.ndarray) -> np.ndarray:
    """Estimated shift of each box state's energy by the box's Dirichlet faces (energy unit).

    A decaying tail psi_n ~ e^{-q n} cut by a Dirichlet wall one cell past the box's outer
    layer N becomes psi_n ~ sinh(q (N + 1 - n)); the energy rises by
    dE = t psi_N^2 / (2 sinh q), the lattice form of (hbar^2 / 2m) |d psi / dn|^2 / (2 kappa)
    (move the wall in from infinity with Hadamard's formula), summed over the cut faces. q is
    read on the state itself: psi_{N-1} / psi_N = 2 cosh q, layer-weighted over each face.
    A face where the state oscillates (ratio 2 cos k < 2: the face cuts an allowed region)
    gets 1 / (2 sin k) in place of 1 / (2 sinh q), and a flat one (ratio ~ 2) at most half
    the box length along that axis.

    Unlike the leakage psi_N^2 itself, dE does not shrink with the grid spacing h: on fine
    grids t ~ 1/h^2 and q ~ kappa h (docs/validation.md, "Energy errors of cut box states").
    Against exact shifts: 0.95-1.8 of them on square wells in 1D (h = 1 to 0.02) and 2D;
    on the 2D block training sample the actual errors are a median 0.35-0.63 of it (a face
    that cuts a neighbouring well).
    """
    from .exact._common import face_layers

    err = np.zeros(v.shape[1])
    if not v.shape[1]:
        return err
    for a, _, outer, inner in face_layers(sample.grid, axes, v):
        hop = float(np.max(np.abs(sample.hamiltonian.couplings[a])))
        weight = np.sum(outer**2, axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.sum(np.abs(outer * inner), axis=0) / weight
        # 2 sinh q for a decaying layer (ratio > 2), 2 sin k for an oscillating one
        # (ratio = 2 cos k < 2), at least 2 / (the box length) for a flat one
        denom = np.sqrt(np.abs(4.0 - np.nan_to_num(ratio) ** 2))
        err += hop * weight / np.maximum(denom, 2.0 / len(axes[a]))
    return err


def _dipoles(v1: np.ndarray, v2: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """|<a|x|b>|^2 summed over the axes, origin at each pair's middle (eq. 5)."""
    overlap = v1.T @ v2
    c1, c2 = (v1**2).T @ pos, (v2**2).T @ pos
    x2 = np.zeros((v1.shape[1], v2.shape[1]))
    for a in range(pos.shape[1]):
        xa = v1.T @ (pos[:, a:a + 1] * v2) - 0.5 * (c1[:, a:a + 1] + c2[None, :, a]) * overlap
        x2 += xa**2
    return x2


def _box_cells(sample: Sample, axes: list[np.ndarray]) -> tuple[np.ndarray, list]:
    """Global flat index of every cell of a box (row-major in the box) and the index mesh."""
    shape = sample.grid.shape
    mesh = np.meshgrid(*axes, indexing="ij")
    flat = np.ravel_multi_index([m % n for m, n in zip(mesh, shape, strict=True)],
                                shape).ravel()
    return flat, list(mesh)


def _ring_axes(sample: Sample, mesh: list) -> list[int]:
    """The periodic axes that a box covers whole (rings, cell indices ``[0, n)``)."""
    if not sample.grid.periodic:
        return []
    return [a for a, m in enumerate(mesh) if m.shape[a] >= sample.grid.shape[a]]


def _centroids(sample: Sample, mesh: list, prob: np.ndarray, rings: list[int]) -> np.ndarray:
    """Each state's centroid, (k, d), from its weights ``prob`` (m, k) on the box's cells.

    A box's cell indices are unwrapped, so positions are continuous across the box, except
    along a ring, where they jump by the side length somewhere: there each state's positions
    are unwrapped from the cell layer where it has the least weight (a state localized within
    the ring then sees continuous positions; one centroid from the jump at layer 0 put states
    across it midway between their two halves, and their copies were not recognised).
    """
    h = np.asarray(sample.grid.spacing)
    cen = np.empty((prob.shape[1], len(mesh)))
    for a, m in enumerate(mesh):
        x = m.ravel()
        if a in rings:
            n = sample.grid.shape[a]
            layer = np.zeros((n, prob.shape[1]))  # each state's weight per layer
            np.add.at(layer, x % n, prob)
            cut = np.argmin(layer, axis=0)
            # layer ``cut`` last, ``cut + 1`` first: positions per (layer, state), (n, k)
            at = (np.arange(n)[:, None] - cut - 1) % n + cut + 1
            cen[:, a] = np.sum(layer * ((at + 0.5) * h[a]), axis=0)
        else:
            cen[:, a] = prob.T @ ((x + 0.5) * h[a])
    return cen


def _ring_dipoles(sample: Sample, sub: sp.csr_array, mesh: list, rings: list[int],
                  w: np.ndarray, v: np.ndarray) -> np.ndarray:
    """|<a|x|b>|^2 of a box with a ring, from the current: <a|[H, x]|b> / (E_a - E_b).

    The position form (:func:`_dipoles`) needs positions continuous over each pair, which a
    ring does not have for every pair at once; the commutator needs only each bond's
    displacement (by minimum image along a ring), as the exact reference does on periodic
    samples (``exact._kg._velocity_x2``). Same numbers for eigenstates of the box matrix
    ``sub`` (rows in the box's cell order; ``rings``: :func:`_ring_axes`); pairs of equal
    energies get 0.
    """
    coo = sub.tocoo()
    h = np.asarray(sample.grid.spacing)
    out = np.zeros((w.size, w.size))
    for a, m in enumerate(mesh):
        x = m.ravel()
        step = x[coo.col] - x[coo.row]
        n = sample.grid.shape[a]
        if a in rings and n == 2:
            step = 0 * step  # each entry sums two bonds of opposite displacement: no current
        elif a in rings:
            step = (step + n // 2) % n - n // 2  # the wrap bond: +-1, not -+(n - 1)
        current = sp.csr_array((coo.data * step * h[a], (coo.row, coo.col)), shape=sub.shape)
        j = v.T @ (current @ v)
        out += j * j
    de = w[:, None] - w[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(de != 0, out / (de * de), 0.0)


def _box_candidates(sample: Sample, w: np.ndarray, v: np.ndarray, axes, flat: np.ndarray,
                    mesh: list, members: list[int], nearest: np.ndarray,
                    matrix: sp.csr_array | None = None) -> dict[str, np.ndarray]:
    """Every window state of one box: energy, centroid, volume, leakage, owner, dipoles.

    ``home``: the owner basin is one of the box's ``members`` (tails are measured later, for
    the kept copies only: :func:`_kept_tails`). ``matrix``: H of the whole sample, needed
    for the dipoles of a box that covers a periodic axis whole (:func:`_ring_dipoles`).
    """
    h = np.asarray(sample.grid.spacing)
    rings = _ring_axes(sample, mesh)
    owner = nearest.ravel()[_peaks(v, flat)] - 1
    prob = v**2
    lengths = np.asarray(sample.grid.lengths)
    centroid = _centroids(sample, mesh, prob, rings)
    if rings:
        from .exact._common import box_submatrix

        if matrix is None:
            matrix = sample.hamiltonian.matrix("csr")
        x2 = _ring_dipoles(sample, box_submatrix(matrix, flat), mesh, rings, w, v)
    else:
        x2 = _dipoles(v, v, np.stack([(m.ravel() + 0.5) * h[a] for a, m in enumerate(mesh)],
                                     axis=1))
    return dict(energies=w, centroids=centroid % lengths if sample.grid.periodic else centroid,
                volumes=sample.grid.cell_volume / np.sum(prob**2, axis=0),
                leakage=prob[_edge_mask(sample, axes)].sum(axis=0),
                energy_error=_truncation_error(sample, axes, v), owner=owner,
                home=np.isin(owner, members), x2=x2, vectors=v, cells=flat,
                shape=np.array([len(x) for x in axes]),
                axes=[x % n for x, n in zip(axes, sample.grid.shape, strict=True)])


def _kept_tails(boxes: list[dict], box: np.ndarray, local: np.ndarray, owner: np.ndarray,
                kept: np.ndarray, sample: Sample, metric: np.ndarray, labels: np.ndarray
                ) -> np.ndarray:
    """Tail amplitude of each kept state, measured in the box its kept copy comes from.

    Only the kept copies are measured (a state is often found in several boxes); a 1D
    Dirichlet chain measures all the owners of a box at once (:func:`_chain_tails`).
    """
    tails = np.full(kept.size, np.nan)
    chain = sample.ndim == 1 and not sample.grid.periodic
    for b in np.unique(box[kept]):
        sel = np.flatnonzero(box[kept] == b)
        g = boxes[int(b)]
        cols, own = local[kept[sel]], owner[kept[sel]]
        if chain:
            tails[sel] = _chain_tails(g["vectors"][:, cols], own, metric.ravel()[g["cells"]],
                                      labels.ravel()[g["cells"]], sample)
            continue
        lab_box = labels.ravel()[g["cells"]].reshape(tuple(g["shape"]))
        met_box = metric.ravel()[g["cells"]].reshape(tuple(g["shape"]))
        for k in np.unique(own[own >= 0]):
            mine = own == k
            if np.any(lab_box == k + 1):
                tails[sel[mine]] = _tails(g["vectors"][:, cols[mine]], met_box,
                                          lab_box == k + 1, sample)
    return tails


def _chain_tails(v: np.ndarray, owner: np.ndarray, metric: np.ndarray, labels: np.ndarray,
                 sample: Sample) -> np.ndarray:
    """:func:`_tails` of the states of one segment of a Dirichlet chain, all owners at once.

    A basin of a chain is a run of cells, so its Agmon distance in the segment is the
    trapezoid cumulative sum of the metric away from the run's ends: the values of
    :func:`mottscape.agmon.distance_field` in 1D (same floor of the segment's metric), with
    no search per owner.
    """
    from .agmon import FLOOR, chain_cumulative, chain_run_distance

    h = float(sample.grid.spacing[0])
    # the floor of agmon.floored_metric on this segment (its max; a segment of zero metric
    # would use 1 / its length), without building a Grid for the segment
    top = float(metric.max()) if float(metric.max()) > 0 else 1.0 / (metric.size * h)
    wf = np.maximum(metric, FLOOR * top)
    cum = chain_cumulative(wf, h)
    runs, row = np.unique(owner, return_inverse=True)
    inside = labels[None, :] == runs[:, None] + 1  # (owners, cells)
    present = inside.any(axis=1) & (runs >= 0)
    first = np.argmax(inside, axis=1)
    last = labels.size - 1 - np.argmax(inside[:, ::-1], axis=1)
    rho = chain_run_distance(cum, first[:, None], last[:, None], np.arange(labels.size))[row]
    sel = (rho >= TAIL_RANGE[0]) & (rho <= TAIL_RANGE[1]) & present[row][:, None]
    with np.errstate(divide="ignore"):
        logs = np.log(np.abs(v.T) / math.sqrt(sample.grid.cell_volume)) + rho
    return np.exp(_row_medians(logs, sel))


def _row_medians(x: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Median of each row of ``x`` over its selected entries (NaN if none).

    Hand-written: ``np.nanmedian`` goes through masked arrays and cost 1.5 ms per segment.
    """
    count = sel.sum(axis=1)
    if x.shape[1] == 0:
        return np.full(x.shape[0], np.nan)
    ordered = np.sort(np.where(sel, x, np.inf), axis=1)
    rows = np.arange(x.shape[0])
    # the middle entry (odd count: both indices are it) or the mean of the two middle ones
    with np.errstate(invalid="ignore"):
        mid = 0.5 * (ordered[rows, np.maximum(count - 1, 0) // 2] + ordered[rows, count // 2])
    return np.where(count > 0, mid, np.nan)


def _shared_block(boxes: list[dict], b1: int, b2: int) -> tuple[tuple, tuple] | None:
    """The cells boxes ``b1`` and ``b2`` share, as an index block of each (None: disjoint).

    A box is the product of its axes' index ranges (wrapped on periodic samples), so the
    shared cells are the product of the per-axis intersections, in the same order in both.
    """
    i1, i2 = [], []
    for a1, a2 in zip(boxes[b1]["axes"], boxes[b2]["axes"], strict=True):
        _, p1, p2 = np.intersect1d(a1, a2, assume_unique=True, return_indices=True)
        if p1.size == 0:
            return None
        i1.append(p1)
        i2.append(p2)
    return np.ix_(*i1), np.ix_(*i2)


def _projection(boxes: list[dict], bc: int, jc: int, kb: np.ndarray, kj: np.ndarray
                ) -> np.ndarray:
    """|<c|s>|^2 of a candidate with kept states.

    The candidate is column ``jc`` of box ``bc``; the kept states are columns ``kj`` of boxes
    ``kb``.
    """
    vc = boxes[bc]["vectors"][:, jc].reshape(tuple(boxes[bc]["shape"]))
    out = np.zeros(kb.size)
    for bs in np.unique(kb):
        if bs == bc:
            continue  # eigenvectors of one box are orthogonal
        block = _shared_block(boxes, bc, int(bs))
        if block is None:
            continue
        sel = np.flatnonzero(kb == bs)
        vs = boxes[bs]["vectors"][:, kj[sel]].reshape(*boxes[bs]["shape"], sel.size)
        out[sel] = (vc[block[0]].ravel() @ vs[block[1]].reshape(-1, sel.size)) ** 2
    return out


def _distinct_states(boxes: list[dict], cand: dict[str, np.ndarray], box: np.ndarray,
                     grid, hopping: float) -> np.ndarray:
    """Kept state of each candidate (-1: neither kept nor a copy of a kept state).

    Candidates are taken by increasing leakage. A candidate is a copy of the kept states near
    it (energy within :data:`SAME_ENERGY` hopping energies, centroids within the larger of
    :data:`SAME_PLACE` cells and :data:`SAME_SIZE` times the sum of the two radii) when its
    squared projection on them exceeds 1/2 (copies of one state overlap to about 1 minus
    their leakage; distinct eigenstates are orthogonal, and a copy of a degenerate pair is a
    rotation inside their span); it is then attached to the one it overlaps most. Otherwise
    it is a new state if its box holds it well (leakage <= :data:`NEW_STATE_LEAKAGE`) or its
    box is one of its owner's own boxes (``home``; the states of a weakly bound basin leak a
    little in every box), and no leakier than :data:`MAX_LEAKAGE`.
    """
    index = np.full(box.size, -1)
    if box.size == 0:
        return index
    order = np.argsort(cand["leakage"], kind="stable")
    local = np.concatenate([np.arange(g["energies"].size) for g in boxes])
    kept: list[int] = []
    floor = SAME_PLACE * float(np.max(grid.spacing))
    # a pair's reach is max(floor, half_reach[a] + half_reach[b])
    half_reach = SAME_SIZE * cand["volumes"] ** (1.0 / len(grid.shape))
    # kept states hashed by centroid in cells of side `cell`, which covers most pairs' reach
    # in one ring of neighbours; a larger reach looks further out
    cell = max(floor, 2.0 * float(np.quantile(half_reach, 0.9)))
    shape = np.maximum(np.floor(np.asarray(grid.lengths) / cell).astype(int), 1)
    buckets: dict[tuple[int, ...], list[int]] = {}
    widest = 0.0  # largest half_reach among the kept states
    for c in order:
        leak = cand["leakage"][c]
        home = np.floor(cand["centroids"][c] / cell).astype(int)
        # bucket indices lie in [0, shape], so a ring of max(shape) reaches every bucket
        ring = min(math.ceil(max(floor, half_reach[c] + widest) / cell), int(shape.max()))
        if (2 * ring + 1) ** home.size >= len(kept):
            near_ids = kept  # a wide state in the ring: fewer kept states than buckets
        else:
            keys = {_bucket(home + np.asarray(off), shape, grid)
                    for off in itertools.product(range(-ring, ring + 1), repeat=home.size)}
            near_ids = [s for key in keys for s in buckets.get(key, [])]
        if near_ids:
            k = np.asarray(near_ids)
            dist = np.linalg.norm(grid.displacement(cand["centroids"][k], cand["centroids"][c]),
                                  axis=1)
            near = k[(np.abs(cand["energies"][k] - cand["energies"][c]) <= SAME_ENERGY * hopping)
                     & (dist <= np.maximum(floor, half_reach[k] + half_reach[c]))]
            if near.size:
                proj = _projection(boxes, int(box[c]), int(local[c]), box[near], local[near])
                if proj.sum() > 0.5:
                    index[c] = index[near[np.argmax(proj)]]
                    continue
        if leak <= MAX_LEAKAGE and (leak <= NEW_STATE_LEAKAGE or cand["home"][c]):
            index[c] = len(kept)
            kept.append(int(c))
            buckets.setdefault(_bucket(home, shape, grid), []).append(int(c))
            widest = max(widest, float(half_reach[c]))
    return index


def _bucket(cell: np.ndarray, shape: np.ndarray, grid) -> tuple[int, ...]:
    """Hash cell of a centroid (wrapped on periodic samples)."""
    return tuple(int(x) for x in (cell % shape if grid.periodic else cell))


def _pairs_of_boxes(boxes: list[dict], index: np.ndarray) -> BoxPairs:
    """One record per pair of kept states found together in a box.

    The record is the box whose faces shift the two states' energies least (the smallest
    sum of their :func:`_truncation_error`), then the least leaking: that box's splitting
    places the pair in its bin. The least leaking box alone could hold a copy cut by its
    faces: on a 2D block sample of the default study the least leaking box of a pair (face
    weights 1.5e-3) held one copy 0.0076 off its energy, splitting 0.0255 for 0.0331 and
    |X|^2 twice exact. (Not the box whose copies lie closest to the kept ones: the kept copy
    of each state of a resonant pair may come from a box that holds one of its two basins,
    and miss the hybridization.)
    ``index`` is each candidate's kept state (-1: dropped), candidates in box order.
    """
    recs: dict[str, list] = {k: [] for k in ("a", "b", "ea", "eb", "x2", "leak", "err")}
    start = 0
    for got in boxes:
        n = got["energies"].size
        ids = index[start:start + n]
        start += n
        p, q = np.triu_indices(n, 1)
        ok = (ids[p] >= 0) & (ids[q] >= 0) & (ids[p] != ids[q])
        p, q = p[ok], q[ok]
        swap = ids[p] > ids[q]
        p, q = np.where(swap, q, p), np.where(swap, p, q)
        recs["a"].append(ids[p])
        recs["b"].append(ids[q])
        recs["ea"].append(got["energies"][p])
        recs["eb"].append(got["energies"][q])
        recs["x2"].append(got["x2"][p, q])
        recs["leak"].append(np.maximum(got["leakage"][p], got["leakage"][q]))
        recs["err"].append(got["energy_error"][p] + got["energy_error"][q])
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in recs.items()}
    a, b = cat["a"].astype(int), cat["b"].astype(int)
    order = np.lexsort((cat["leak"], cat["err"], b, a))
    first = np.ones(order.size, bool)
    first[1:] = (a[order][1:] != a[order][:-1]) | (b[order][1:] != b[order][:-1])
    o = order[first]
    return BoxPairs(a=a[o], b=b[o], energy_a=cat["ea"][o], energy_b=cat["eb"][o],
                    x2=cat["x2"][o], leakage=cat["leak"][o], energy_error=cat["err"][o])


def basin_states(sample: Sample, basins: Basins, metric: np.ndarray, fermi_energy: float,
                 window: float, *, padding: float = PADDING_AGMON,
                 merge: bool = True, landscape=None,
                 keep_vectors: bool = False,
                 padding_scale: np.ndarray | None = None,
                 solved: dict | None = None) -> BasinStates:
    """The eigenstates of H in |E - E_F| <= ``window``, found basin by basin.

    Parameters
    ----------
    sample
        The system (its Hamiltonian H of eq. 3).
    basins
        The basins of V_u at E_F (:func:`~mottscape.basins.find_basins`).
    metric
        The Agmon metric at E_F (eq. 9, ``land.agmon_metric(E_F)``): it sets the padding and
        the distances of the tail amplitudes.
    fermi_energy
        E_F, in the frame of V.
    window
        Half-width W of the energy window (energy unit of the sample), typically hbar omega_max.
    padding
        Box padding around each basin, in Agmon lengths (the inverse mean metric outside the
        basins).
    merge
        Merge neighbouring basins' boxes and, in 2D and 3D, solve the whole sample as one
        box when the boxes would cost more (:func:`mottscape.state_boxes.layout_boxes`).
        With ``merge=False`` every basin has its own box (the option ``state_boxes``).
    landscape
        The solved landscape of ``sample``: its landscape-law count sizes the shift-invert
        solves of large boxes (the states found do not depend on it).
    keep_vectors
        Keep the states' box eigenvectors (:attr:`BasinStates.vectors`), for the pair model's
        amplitudes at the Agmon midpoints (``state_amplitude="midpoint"``). They take the
        memory of one eigenvector per state over its box.
    padding_scale
        A factor >= 1 on ``padding`` per basin (length ``basins.n``; default 1 for every
        basin): the pair model widens the boxes of the states whose face shifts could move
        the pairs that carry a bin (:func:`mottscape.pairs.pair_model`).
    solved
        A dict of the boxes already solved, read and refilled here (it keeps this call's
        boxes) for a later call on the same sample, E_F, window and ``keep_vectors`` (the
        pair model's widening rounds): a box with the same cell ranges and basins is not
        solved again.

    Returns
    -------
    BasinStates
        ``n_boxes`` and ``whole_sample`` record the boxes solved. When the whole sample is one
        box, every state is an exact eigenstate of H and every pair is resolved in that box:
        the pair model's sigma is then the exact Kubo-Greenwood sum, not an LL estimate.
    """
    window = positive(window, "window",
                      hint=" (the half-width of the window of states around E_F, an energy)")
    padding = positive(padding, "padding", hint=" (a number of Agmon lengths, e.g. 15)")
    if not isinstance(merge, bool | np.bool_):
        raise InputError(f"merge={merge!r} must be True or False")
    layout = layout_boxes(sample, basins, metric, padding, merge=bool(merge),
                          scale=check_padding_scale(padding_scale, basins.n))
    margin = padding_cells(sample, PROBE_MARGIN_AGMON, layout.mean_metric)
    boxes = _solved_boxes(sample, basins, layout, fermi_energy, window, landscape,
                          margin if keep_vectors else None, {} if solved is None else solved)
    from .exact._boxes import _hopping_scale

    d = sample.ndim
    fields = ("energies", "centroids", "volumes", "leakage", "energy_error", "owner", "home")
    cand = {k: (np.concatenate([g[k] for g in boxes]) if boxes else
                np.zeros((0, d) if k == "centroids" else 0)) for k in fields}
    box = np.concatenate([np.full(g["energies"].size, i) for i, g in enumerate(boxes)]
                         ) if boxes else np.zeros(0, int)
    index = _distinct_states(boxes, cand, box, sample.grid, _hopping_scale(sample.hamiltonian))
    n = int(index.max()) + 1 if index.size else 0
    kept = np.full(n, -1)
    for c in np.argsort(cand["leakage"], kind="stable")[::-1]:  # least leaking copy last
        if index[c] >= 0:
            kept[index[c]] = c
    local = np.concatenate([np.arange(g["energies"].size) for g in boxes]) if boxes else box
    tails = _kept_tails(boxes, box, local, cand["owner"], kept, sample, metric, basins.labels)
    return BasinStates(
        basin=cand["owner"][kept].astype(int), energies=cand["energies"][kept],
        centroids=cand["centroids"][kept], volumes=cand["volumes"][kept],
        tails=tails, leakage=cand["leakage"][kept], energy_error=cand["energy_error"][kept],
        box_pairs=_pairs_of_boxes(boxes, index), unmatched=int(np.count_nonzero(index < 0)),
        window=float(window), padding_cells=layout.padding_cells, n_boxes=len(boxes),
        whole_sample=layout.whole,
        vectors=(_state_vectors(boxes, box, local, kept, index, sample.grid.cell_volume)
                 if keep_vectors else None))


def _solved_boxes(sample: Sample, basins: Basins, layout: BoxLayout, fermi_energy: float,
                  window: float, landscape, margin: np.ndarray | None, solved: dict
                  ) -> list[dict]:
    """Every box's window states (:func:`_box_candidates`), in box order.

    ``margin``: cells kept from the faces where a box's vectors may be read (None: no
    vectors kept). ``solved`` maps (lo, hi, members) to a box solved before with the same
    settings; it is read, filled, and left holding this call's boxes only (their vectors
    are the memory the pair model's widening keeps between its rounds).
    """
    from .exact._common import _blas_single_thread

    A = sample.hamiltonian.matrix("csr")
    nearest = nearest_basin(basins.labels)
    guess = None if landscape is None else \
        landscape_cell_counts(landscape, fermi_energy - window, fermi_energy + window)
    solve = box_solver(sample, A, fermi_energy - window, fermi_energy + window, layout.whole,
                       guess)
    boxes = []
    used: set = set()
    # one BLAS thread, as for the exact reference's boxes: threaded BLAS on small boxes only
    # fights the other processes for the cores (ARPACK's eigenvector step 27x slower under load)
    with _blas_single_thread():
        for blo, bhi, mem in zip(layout.lo, layout.hi, layout.members, strict=True):
            key = (tuple(blo.tolist()), tuple(bhi.tolist()), tuple(mem))
            if key not in solved:
                axes = [np.arange(x, y) for x, y in zip(blo, bhi, strict=True)]
                flat, mesh = _box_cells(sample, axes)
                w, v = solve(flat, axes)
                solved[key] = _box_candidates(sample, w, v, axes, flat, mesh, mem, nearest, A)
                if margin is not None:
                    solved[key]["readable"] = ~_edge_mask(sample, axes, margin)
            boxes.append(solved[key])
            used.add(key)
    for key in set(solved) - used:  # boxes only grow: one left out is solved again if needed
        del solved[key]
    return boxes


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
