"""Per-label statistics of a label map in one compiled pass (performance kernels).

``scipy.ndimage.minimum``, ``minimum_position``, ``sum_labels`` and ``find_objects`` each sort
or scan the whole map again; ``minimum_position`` argsorts the values of every labelled cell
(17 s of the 24 s ``find_basins`` took on a 256^3 sample). :func:`label_stats` gives the same
numbers (counts, minima, the first flat position of each minimum, bounding boxes) in one
sequential pass, and :func:`weighted_offsets` the weighted offset sums of the basin centres in
a second one. Results are identical to the scipy/numpy formulas they replace (same operands,
same order of summation, ``fastmath`` off).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["label_box_arrays", "label_stats", "weighted_offsets"]


def _as3(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.reshape((1,) * (3 - a.ndim) + a.shape)


@njit(cache=True)
def _stats3(labels, values, n):  # pragma: no cover - compiled
    n0, n1, n2 = labels.shape
    count = np.zeros(n, np.int64)
    vmin = np.full(n, np.inf)
    arg = np.full((n, 3), -1, np.int64)
    lo = np.full((n, 3), np.iinfo(np.int64).max, np.int64)
    hi = np.full((n, 3), -1, np.int64)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                lab = labels[i, j, k]
                if lab <= 0 or lab > n:
                    continue
                b = lab - 1
                count[b] += 1
                v = values[i, j, k]
                if v < vmin[b] or arg[b, 0] < 0:
                    vmin[b] = v
                    arg[b, 0] = i
                    arg[b, 1] = j
                    arg[b, 2] = k
                if i < lo[b, 0]:
                    lo[b, 0] = i
                if i > hi[b, 0]:
                    hi[b, 0] = i
                if j < lo[b, 1]:
                    lo[b, 1] = j
                if j > hi[b, 1]:
                    hi[b, 1] = j
                if k < lo[b, 2]:
                    lo[b, 2] = k
                if k > hi[b, 2]:
                    hi[b, 2] = k
    return count, vmin, arg, lo, hi


@njit(cache=True)
def _boxes3(labels, n):  # pragma: no cover - compiled
    n0, n1, n2 = labels.shape
    lo = np.full((n, 3), np.iinfo(np.int64).max, np.int64)
    hi = np.full((n, 3), -1, np.int64)
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                lab = labels[i, j, k]
                if lab <= 0 or lab > n:
                    continue
                b = lab - 1
                if i < lo[b, 0]:
                    lo[b, 0] = i
                if i > hi[b, 0]:
                    hi[b, 0] = i
                if j < lo[b, 1]:
                    lo[b, 1] = j
                if j > hi[b, 1]:
                    hi[b, 1] = j
                if k < lo[b, 2]:
                    lo[b, 2] = k
                if k > hi[b, 2]:
                    hi[b, 2] = k
    return lo, hi


@njit(cache=True)
def _offsets3(labels, weight, n, origin, h):  # pragma: no cover - compiled
    n0, n1, n2 = labels.shape
    wsum = np.zeros(n)
    osum = np.zeros((n, 3))
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                lab = labels[i, j, k]
                if lab <= 0 or lab > n:
                    continue
                b = lab - 1
                w = weight[i, j, k]
                wsum[b] += w
                osum[b, 0] += w * ((i + 0.5) * h[0] - origin[b, 0])
                osum[b, 1] += w * ((j + 0.5) * h[1] - origin[b, 1])
                osum[b, 2] += w * ((k + 0.5) * h[2] - origin[b, 2])
    return wsum, osum


def label_stats(labels: np.ndarray, values: np.ndarray, n: int):
    """Counts, minima of ``values``, first position of each minimum, and bounding boxes.

    Parameters
    ----------
    labels
        Integer map (1 to 3 axes), 0 = background, 1..n = labels.
    values
        Float map of the same shape.
    n
        Number of labels.

    Returns
    -------
    tuple
        ``count`` (n,), ``minimum`` (n,), ``argmin`` (n, d) grid index of the first minimum in
        C order (as :func:`scipy.ndimage.minimum_position`), ``lo`` and ``hi`` (n, d),
        inclusive bounding-box corners.
    """
    d = labels.ndim
    count, vmin, arg, lo, hi = _stats3(_as3(labels), _as3(np.asarray(values, dtype=float)),
                                       int(n))
    return count, vmin, arg[:, 3 - d:], lo[:, 3 - d:], hi[:, 3 - d:]


def label_box_arrays(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Inclusive bounding-box corners ``lo``, ``hi`` (n, d) of labels 1..n (hi = -1 if absent).

    Cheaper than :func:`scipy.ndimage.find_objects` when only a few boxes are needed: no
    Python object per label.
    """
    d = labels.ndim
    lo, hi = _boxes3(_as3(labels), int(n))
    return lo[:, 3 - d:], hi[:, 3 - d:]


def weighted_offsets(labels: np.ndarray, weight: np.ndarray, n: int, origin: np.ndarray,
                     spacing) -> tuple[np.ndarray, np.ndarray]:
    """Per label: sum of ``weight`` and sum of ``weight * (position - origin[label])``.

    Positions are cell centres ``(index + 0.5) * spacing`` (no periodic wrap: callers use it
    for Dirichlet grids only). Returns ``(wsum (n,), offset_sum (n, d))``.
    """
    d = labels.ndim
    o3 = np.zeros((int(n), 3))
    o3[:, 3 - d:] = origin
    h3 = np.ones(3)
    h3[3 - d:] = np.asarray(spacing, dtype=float)
    wsum, osum = _offsets3(_as3(labels), _as3(np.asarray(weight, dtype=float)), int(n), o3, h3)
    return wsum, osum[:, 3 - d:]
