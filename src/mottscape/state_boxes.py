"""The boxes of the pair model's states: one padded box per basin, merged (issue 11, App. A).

Each basin B_k of V_u at E_F gets the bounding box of its cells padded by ``padding`` Agmon
lengths 1/<w> (<w> the mean Agmon metric of eq. 9 outside the basins), so that a state of B_k
has decayed by about e^{-padding} on the box faces; Dirichlet faces clip the box, a periodic
axis wraps it. The option ``state_boxes`` chooses the layout: ``"per_basin"`` keeps one box per
basin, ``"merged"`` (the default) merges overlapping boxes while the merged box stays small
(:data:`MERGE_RATIO`; on a 1D chain into segments of up to :data:`CHAIN_SEGMENT_MAX` cells) and
solves the whole sample as one box when that costs less (:func:`whole_sample_cheaper`).
:func:`layout_boxes` composes these steps; :mod:`mottscape.box_solve` solves each box and
:mod:`mottscape.basin_states` turns the boxes' eigenpairs into the states of the basins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage as ndi

from .basins import Basins
from .errors import InputError
from .sample import Sample

__all__ = ["CHAIN_SEGMENT_MAX", "MERGE_RATIO", "PADDING_AGMON", "WHOLE_SAMPLE_COST", "BoxLayout",
           "basin_boxes", "basin_padding", "check_padding_scale", "clipped", "layout_boxes",
           "mean_outside", "merged_boxes", "merged_segments", "padding_cells",
           "whole_sample_cheaper"]

#: Default box padding, in Agmon lengths 1/<w> outside the basins (|psi|^2 ~ e^{-2 padding}
#: on the box faces where the barriers are average; a state leaking along a low channel
#: keeps more). Chosen by self-convergence on the training samples (three 128^2 block
#: samples, seeds 3-5, E_F = 0.9): with 10, sigma_pairs moved by up to a factor 270 in a bin
#: against padding 20 (a copy leaking 1e-4 sits ~1e-3 off in energy: states cross E_F,
#: splittings cross bins); with 15 by at most 6 %, at about twice the box cost
#: (docs/validation.md, docs/performance.md).
PADDING_AGMON = 15.0


#: Two boxes are merged when the box around both has at most this many times the cells of the
#: largest basin box it holds (fewer, slightly larger solves; the same states).
MERGE_RATIO = 1.3


#: On a 1D chain (Dirichlet, or a ring since 2026-12-07) overlapping boxes are merged into
#: segments of up to this many cells
#: (a tridiagonal window solve costs O(n k): there the cost of a box is its Python overhead;
#: the 3018 boxes of the 1D benchmark become 1672 segments). Pairs of states in one segment
#: are then resolved there (exact), not by the LL tunnelling amplitude: on the 1D benchmark
#: every bin's sigma became box-resolved (``box_share`` 1).
CHAIN_SEGMENT_MAX = 256


def mean_outside(metric: np.ndarray, basins: Basins) -> float:
    """Mean Agmon metric <w> over the cells outside the basins (0 if there are none)."""
    outside = basins.labels == 0
    return float(metric[outside].mean()) if outside.any() else 0.0


def padding_cells(sample: Sample, padding: float, mean: float) -> np.ndarray:
    """Box padding per axis: ``padding`` Agmon lengths 1 / <w>.

    ``mean`` is <w> over the cells outside the basins (:func:`mean_outside`).
    """
    h = np.asarray(sample.grid.spacing)
    if mean <= 0:
        return np.asarray(sample.grid.shape)
    cells = np.ceil(padding / (mean * h)).astype(int) + 1
    return np.minimum(cells, np.asarray(sample.grid.shape))


def basin_padding(sample: Sample, basins: Basins, padding: float, mean: float,
                   scale: np.ndarray | None) -> np.ndarray:
    """Box padding of each basin in cells, ``(n_basins, d)``.

    ``padding`` Agmon lengths, times the basin's ``scale`` factor if given
    (:func:`padding_cells`).
    """
    if scale is None:
        return np.tile(padding_cells(sample, padding, mean), (basins.n, 1))
    out = np.empty((basins.n, sample.ndim), int)
    for f in np.unique(scale):
        out[scale == f] = padding_cells(sample, padding * float(f), mean)
    return out


def basin_boxes(sample: Sample, basins: Basins, pad: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Padded bounding box of each basin: unwrapped index ranges ``[lo, hi)`` per axis.

    ``pad``: cells per axis, one row per basin (:func:`basin_padding`). Clipped at
    Dirichlet faces; an axis of a periodic sample that the padded box covers
    whole becomes ``[0, n)``, otherwise the range may run past the faces (wrapped).
    Returns ``(lo, hi, members)``, ``lo`` and ``hi`` of shape ``(n_boxes, d)`` and the basins
    (0-based) of each box.
    """
    shape = np.asarray(sample.grid.shape)
    found = [(k, sl) for k, sl in enumerate(ndi.find_objects(basins.labels, basins.n))
             if sl is not None]
    pad = pad[[k for k, _ in found]]
    lo = np.array([[x.start for x in sl] for _, sl in found], int).reshape(-1, shape.size) - pad
    hi = np.array([[x.stop for x in sl] for _, sl in found], int).reshape(-1, shape.size) + pad
    lo, hi = clipped(lo, hi, shape, sample.grid.periodic)
    return lo, hi, [[k] for k, _ in found]


def clipped(lo: np.ndarray, hi: np.ndarray, shape: np.ndarray, periodic: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """Box ranges clipped at Dirichlet faces, or a periodic axis covered whole as ``[0, n)``."""
    if periodic:
        whole = hi - lo >= shape
        return np.where(whole, 0, lo), np.where(whole, shape, hi)
    return np.maximum(lo, 0), np.minimum(hi, shape)


def merged_boxes(lo: np.ndarray, hi: np.ndarray, members: list[list[int]], shape,
                  periodic: bool, ratio: float = MERGE_RATIO
                  ) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Neighbouring boxes merged while the merged box stays small (:data:`MERGE_RATIO`).

    Greedy: the boxes are visited from the largest; a box absorbs, one at a time, the
    overlapping box whose union with it is smallest, as long as that union has at most
    ``ratio`` times the cells of the largest original box in it. On periodic samples two
    boxes are merged only when they overlap without wrapping.
    """
    shape = np.asarray(shape)
    lo, hi = lo.copy(), hi.copy()
    big = np.prod(hi - lo, axis=1).astype(float)  # largest original box in each group
    alive = np.ones(len(members), bool)
    groups = [list(m) for m in members]
    for a in np.argsort(-big, kind="stable"):
        while alive[a]:
            ulo, uhi = clipped(np.minimum(lo, lo[a]), np.maximum(hi, hi[a]), shape, periodic)
            cells = np.prod(uhi - ulo, axis=1).astype(float)
            overlap = np.all((lo < hi[a]) & (lo[a] < hi), axis=1)
            ok = alive & overlap & (cells <= ratio * np.maximum(big, big[a]))
            ok[a] = False
            if not ok.any():
                break
            b = int(np.flatnonzero(ok)[np.argmin(cells[ok])])
            lo[a], hi[a] = ulo[b], uhi[b]
            big[a] = max(big[a], big[b])
            groups[a] += groups[b]
            alive[b] = False
    keep = np.flatnonzero(alive)
    return lo[keep], hi[keep], [sorted(groups[k]) for k in keep]


def merged_segments(lo: np.ndarray, hi: np.ndarray, members: list[list[int]],
                     max_cells: int = CHAIN_SEGMENT_MAX
                     ) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
    """Overlapping boxes of a chain merged, left to right, into segments.

    A box joins the current segment when it overlaps it and the segment stays within
    ``max_cells`` cells (a longer box stays alone). Boxes apart are not joined: a segment
    across a gap would also find the states of the gap, which no basin's box holds. On a
    ring the ranges are unwrapped: boxes across the seam are merged with their neighbours on
    the unwrapped line (a segment may then cover the ring whole; the caller clips it).
    """
    order = np.argsort(lo[:, 0], kind="stable")
    out_lo: list[int] = []
    out_hi: list[int] = []
    groups: list[list[int]] = []
    for k in order:
        a, b = int(lo[k, 0]), int(hi[k, 0])
        if groups and a < out_hi[-1] and max(b, out_hi[-1]) - out_lo[-1] <= max_cells:
            out_hi[-1] = max(b, out_hi[-1])
            groups[-1] += members[k]
            continue
        out_lo.append(a)
        out_hi.append(b)
        groups.append(list(members[k]))
    return (np.asarray(out_lo, int).reshape(-1, 1), np.asarray(out_hi, int).reshape(-1, 1),
            [sorted(g) for g in groups])


#: The whole sample is solved as one box when the boxes' cost, modelled as the sum of their
#: squared cell counts, exceeds this many times the squared cells of the sample (see
#: :func:`whole_sample_cheaper`).
WHOLE_SAMPLE_COST = 1.0


def whole_sample_cheaper(lo: np.ndarray, hi: np.ndarray, size: int) -> bool:
    """Whether one solve of the whole sample should cost less than the boxes (2D and 3D).

    On a periodic sample the whole-sample box is a ring along every axis: its dipoles are
    the current form (:func:`mottscape.basin_states._ring_dipoles`), the exact reference's on
    periodic samples, so it is the exact Kubo-Greenwood sum there too (it was not asked on
    periodic samples before the rings' dipoles of 2026-12-07, when their position form jumped
    at the seams).

    Cost model: a box of n cells costs ~n^2. A shift-invert solve of a box costs its sparse
    LU (n^1.5 in 2D, n^2 in 3D) and its Lanczos vectors (n times its states, which grow like
    n); both window solves scale about as n^2 over the sizes met here, for the boxes and for
    the sample alike. On the benchmark samples the ratio sum(n_box^2) / n_sample^2 is 0.06
    for the 2D block model at 256^2 (404 boxes of ~750 cells: boxes win) and 15 for the 3D
    Anderson model at 20^3 (441 boxes of ~1400 cells, 76 sample volumes in all: the sample
    wins), so the choice does not hinge on the constant.
    """
    cells = np.prod(hi - lo, axis=1).astype(float)
    return bool(np.sum(cells**2) > WHOLE_SAMPLE_COST * float(size) ** 2)


def check_padding_scale(scale, n: int) -> np.ndarray | None:
    """``padding_scale`` of :func:`mottscape.basin_states.basin_states`: ``n`` floats >= 1."""
    if scale is None:
        return None
    try:
        arr = np.asarray(scale, dtype=float)
    except (TypeError, ValueError):
        arr = np.full(0, np.nan)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)) or np.any(arr < 1):
        raise InputError(f"padding_scale must hold one finite factor >= 1 per basin ({n} "
                         f"basins), got an array of shape {arr.shape}")
    return arr


@dataclass(frozen=True)
class BoxLayout:
    """The boxes to solve: unwrapped index ranges ``[lo, hi)`` per axis and their basins.

    Attributes
    ----------
    lo, hi
        ``(n_boxes, d)`` cell ranges (on periodic axes ``hi`` may exceed the side: wrapped).
    members
        The basins (0-based) of each box.
    whole
        The one box is the whole sample (its eigenstates are exact eigenstates of H).
    padding_cells
        The padding per axis of an unscaled box, in cells (:func:`padding_cells`).
    mean_metric
        <w>, the mean Agmon metric outside the basins (:func:`mean_outside`).
    """

    lo: np.ndarray
    hi: np.ndarray
    members: list[list[int]]
    whole: bool
    padding_cells: np.ndarray
    mean_metric: float


def layout_boxes(sample: Sample, basins: Basins, metric: np.ndarray, padding: float, *,
                 merge: bool = True, scale: np.ndarray | None = None) -> BoxLayout:
    """The boxes of :func:`mottscape.basin_states.basin_states`: padded, merged, or whole.

    Parameters
    ----------
    sample, basins
        The system and the basins of V_u at E_F.
    metric
        The Agmon metric at E_F (eq. 9): its mean outside the basins sets the Agmon length.
    padding
        Box padding around each basin, in Agmon lengths.
    merge
        Merge overlapping boxes (:func:`merged_boxes`, on a 1D chain :func:`merged_segments`)
        and, in 2D and 3D, take the whole sample as one box when the boxes would cost more
        (:func:`whole_sample_cheaper`) or one of them covers it; ``False``: one box per basin.
    scale
        A factor >= 1 on ``padding`` per basin (:func:`check_padding_scale`), or None.
    """
    mean = mean_outside(metric, basins)
    lo, hi, members = basin_boxes(sample, basins,
                                  basin_padding(sample, basins, float(padding), mean, scale))
    if merge and sample.ndim == 1:
        lo, hi, members = merged_segments(lo, hi, members)
        lo, hi = clipped(lo, hi, np.asarray(sample.grid.shape), sample.grid.periodic)
    elif merge:
        lo, hi, members = merged_boxes(lo, hi, members, sample.grid.shape, sample.grid.periodic)
    # a box that covers the sample is the whole-sample solve already: say so
    whole = merge and sample.ndim > 1 and (
        whole_sample_cheaper(lo, hi, sample.grid.size)
        or bool(np.any(np.prod(hi - lo, axis=1) == sample.grid.size)))
    if whole:
        lo, hi = np.zeros((1, sample.ndim), int), np.asarray([sample.grid.shape])
        members = [sorted(k for m in members for k in m)]
    return BoxLayout(lo, hi, members, whole, padding_cells(sample, float(padding), mean), mean)
