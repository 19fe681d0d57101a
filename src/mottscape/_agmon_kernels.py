"""Compiled bounded multi-source fast marching (private kernels of :mod:`mottscape.agmon`).

Why hand-written: scikit-fmm (``skfmm.travel_time``) marches one zero level set on a whole
array per call; it has no bounded search over a sparse set of cells, no batch of sources per
call and it holds the GIL. The pair distances of eqs. 11-12 need one search per source basin,
each stopped at its own bound rho_omega + 1, and the searches touch a small part of the grid.
No library does bounded multi-source windowed marching (scipy.sparse.csgraph and scikit-image's
MCP are graph Dijkstra searches, whose metric error on a grid is a few percent and does not
shrink with the resolution), so the kernel below reimplements scikit-fmm's travel-time
marcher cell for cell and runs it on the full grid with work proportional to the cells it
reaches:

* the same initial frozen set (the cells next to the source, at ``w * d`` with
  ``1/d^2 = sum_a 1/d_a^2`` over the axes where a source cell is adjacent, ``d_a = h_a / (1 +
  PHI_IN)``, as ``skfmm`` obtains from phi = -PHI_IN on the source and +1 elsewhere);
* the same first-order update (upwind quadratic, ``-b / 2a`` if its discriminant is negative),
  the same second-order update (the one-sided three-point difference where the second
  neighbour is frozen and not larger, the recursion over fewer axes when the discriminant is
  negative);
* the same marching loop: all heap entries of equal value frozen together, second-order
  neighbours two cells away refreshed, and the search stopped at the first value above the
  bound.

The values agree with scikit-fmm's to rounding (tested). The source's boundary cells start,
as in scikit-fmm, at ``PHI_IN / (1 + PHI_IN) h w``; the returned fields are 0 there. One
difference: where every partial update of scikit-fmm's recursion is undefined, scikit-fmm
returns NaN (and :mod:`mottscape.agmon` used to re-march the whole window at first order); this
kernel falls back to the first-order update for that cell only.

Instead of a window per source, the kernel keeps one distance array and one state array of the
grid's size, and resets only the cells a search touched: the cost of a search is the number of
cells closer than its bound (times log of the narrow band), with no per-source Python work.
Arrays are handled as 3D (leading axes of length 1 for 1D and 2D grids); an axis of length 1
has no neighbours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

__all__ = ["basin_cells", "descend", "march_field", "march_field_into", "march_pairs",
           "reset_touched", "walk_pairs_1d"]

#: phi on source cells in the scikit-fmm convention (see the notes of mottscape.agmon).
PHI_IN = 1e-6

_FAR = np.uint8(0)
_NARROW = np.uint8(1)
_FROZEN = np.uint8(2)
#: Frozen cells of the source itself (every state test ``>= _FROZEN`` counts them frozen): the
#: second-order update reads the source from the flag, not from the labels array.
_SOURCE = np.uint8(3)

_JIT: dict[str, Any] = {"cache": True, "fastmath": False, "nogil": True, "error_model": "numpy",
                        "forceinline": False}
_INLINE: dict[str, Any] = {**_JIT, "forceinline": True}


# ---------------------------------------------------------------------- growable arrays
@njit(**_JIT)
def _grow_f(a):  # pragma: no cover - compiled
    b = np.empty(2 * a.size, a.dtype)
    for k in range(a.size):  # a loop, not b[:n] = a: slice assignment compiles for seconds
        b[k] = a[k]
    return b


@njit(**_JIT)
def _grow_i(a):  # pragma: no cover - compiled
    b = np.empty(2 * a.size, a.dtype)
    for k in range(a.size):  # a loop, not b[:n] = a: slice assignment compiles for seconds
        b[k] = a[k]
    return b


# ---------------------------------------------------------------------- binary heap
# An indexed min-heap (values hv, cells hi, pos[cell] = slot or -1), as skfmm's: a narrow-band
# cell has one entry whose value is changed in place when the cell is updated.
@njit(inline="always", **_JIT)
def _sift_up(hv, hi, pos, k):  # pragma: no cover - compiled
    value = hv[k]
    cell = hi[k]
    while k > 0:
        p = (k - 1) >> 1
        if hv[p] <= value:
            break
        hv[k] = hv[p]
        hi[k] = hi[p]
        pos[hi[k]] = k
        k = p
    hv[k] = value
    hi[k] = cell
    pos[cell] = k


@njit(inline="always", **_JIT)
def _sift_down(hv, hi, pos, size, k):  # pragma: no cover - compiled
    value = hv[k]
    cell = hi[k]
    while True:
        c = 2 * k + 1
        if c >= size:
            break
        if c + 1 < size and hv[c + 1] < hv[c]:
            c += 1
        if hv[c] >= value:
            break
        hv[k] = hv[c]
        hi[k] = hi[c]
        pos[hi[k]] = k
        k = c
    hv[k] = value
    hi[k] = cell
    pos[cell] = k


@njit(inline="always", **_JIT)
def _heap_push(hv, hi, pos, size, value, cell):  # pragma: no cover - compiled
    """Insert ``cell`` (not in the heap) with ``value``; the caller ensured ``size < hv.size``
    (returning grown arrays from here would cost reference counting on every push).
    """
    hv[size] = value
    hi[size] = cell
    _sift_up(hv, hi, pos, size)


@njit(inline="always", **_JIT)
def _heap_set(hv, hi, pos, size, cell, value):  # pragma: no cover - compiled
    """Change the value of ``cell`` (in the heap)."""
    k = pos[cell]
    old = hv[k]
    hv[k] = value
    if value < old:
        _sift_up(hv, hi, pos, k)
    else:
        _sift_down(hv, hi, pos, size, k)


@njit(inline="always", **_JIT)
def _heap_pop(hv, hi, pos, size):  # pragma: no cover - compiled
    """Remove the root of a heap of ``size`` >= 1 entries (the caller read it first)."""
    pos[hi[0]] = -1
    size -= 1
    if size > 0:
        hv[0] = hv[size]
        hi[0] = hi[size]
        _sift_down(hv, hi, pos, size, 0)


# ---------------------------------------------------------------------- neighbours
@njit(inline="always", **_JIT)
def _coords(cell, shape, strides):  # pragma: no cover - compiled
    """Grid coordinates of flat index ``cell`` (3D, C order)."""
    c0 = cell // strides[0]
    r = cell - c0 * strides[0]
    c1 = r // strides[1]
    return (c0, c1, r - c1 * strides[1])


@njit(inline="always", **_JIT)
def _target(cc, a, step, shape, periodic):  # pragma: no cover - compiled
    """Coordinate along axis ``a`` of the cell ``step`` (|step| <= 2) cells from coordinates
    ``cc``; -1 if outside the grid or if the axis has length 1. No integer division (a 64-bit
    division costs tens of cycles; the updates need hundreds of neighbours per cell).
    """
    n = shape[a]
    if n == 1:
        return -1
    t = cc[a] + step
    if t < 0 or t >= n:
        if not periodic:
            return -1
        t = t + n if t < 0 else t - n
    return t


@njit(inline="always", **_JIT)
def _nb(cell, cc, a, step, shape, strides, periodic):  # pragma: no cover - compiled
    """Flat index of the cell ``step`` cells from ``cell`` (coordinates ``cc``) along axis
    ``a``; -1 if outside the grid (or if the axis has length 1).
    """
    t = _target(cc, a, step, shape, periodic)
    if t < 0:
        return -1
    return cell + (t - cc[a]) * strides[a]


@njit(inline="always", **_JIT)
def _with(cc, a, t):  # pragma: no cover - compiled
    """Coordinates ``cc`` with axis ``a`` set to ``t``."""
    if a == 0:
        return (t, cc[1], cc[2])
    if a == 1:
        return (cc[0], t, cc[2])
    return (cc[0], cc[1], t)


@njit(inline="always", **_JIT)
def _as_tuples(shape, h):  # pragma: no cover - compiled
    """Shape, C-order strides and spacing of a 3D grid as tuples.

    The kernels index them in every neighbour lookup; as arrays, each of the (compiled, not
    inlined by numba) point updates took a reference on them per call, an atomic increment
    and decrement that cost about half the search time (measured: 2.1x, bit-identical).
    """
    return ((shape[0], shape[1], shape[2]), (shape[1] * shape[2], shape[2], np.int64(1)),
            (h[0], h[1], h[2]))


# ---------------------------------------------------------------------- point updates
# The updates take the frozen values around the cell as tuples (n1: the neighbours, n2: the
# cells two steps out, sign: -1 for source cells among those, axis-major, inf where not
# frozen), read in the marching loop of _search: numba takes an atomic reference on every
# array a compiled function receives (IR-inlined ones too), at every call.
@njit(inline="always", **_JIT)
def _update1(n1, wc, i2):  # pragma: no cover - compiled
    """First-order update (skfmm ``updatePointOrderOne`` with the travel-time quadratic)."""
    a = 0.0
    b = 0.0
    c = 0.0
    for ax in range(3):
        v = np.inf
        for s in range(2):
            if n1[2 * ax + s] < v:
                v = n1[2 * ax + s]
        if v < np.inf:
            a += i2[ax]
            b -= i2[ax] * 2.0 * v
            c += i2[ax] * v * v
    c -= wc * wc
    det = b * b - 4.0 * a * c
    if det >= 0.0:
        return (-b + np.sqrt(det)) / 2.0 / a
    return -b / (2.0 * a)


@njit(inline="always", **_JIT)
def _quad2(used, n1, n2, sign, wc, i2):  # pragma: no cover - compiled
    """Second-order quadratic over the axes in bit mask ``used``; NaN if no real root."""
    a = 0.0
    b = 0.0
    c = 0.0
    for ax in range(3):
        if not (used >> ax) & 1:
            continue
        v1 = np.inf
        v2 = np.inf
        for s in range(2):
            k = 2 * ax + s
            if n1[k] < v1:
                v1 = n1[k]
                # skfmm keeps value2 of an earlier direction unless this one provides its own
                if n2[k] <= v1:
                    v2 = sign[k] * n2[k]
        if v2 < np.inf:
            tp = (4.0 * v1 - v2) / 3.0
            a += i2[ax] * 2.25
            b -= i2[ax] * 4.5 * tp
            c += i2[ax] * 2.25 * tp * tp
        elif v1 < np.inf:
            a += i2[ax]
            b -= i2[ax] * 2.0 * v1
            c += i2[ax] * v1 * v1
    c -= wc * wc
    det = b * b - 4.0 * a * c
    if det >= 0.0 and a > 0.0:
        return (-b + np.sqrt(det)) / 2.0 / a
    return np.nan


@njit(**_JIT)
def _fallback2(n1, n2, sign, wc, i2):  # pragma: no cover - compiled
    """skfmm's recursion when the second-order quadratic over all axes has no real root.

    skfmm recurses over the sets of axes with one more axis left out and takes the minimum of
    the first solvable set along every branch; the loop over the 8 subsets (largest first,
    ``reach`` a bit mask of the subsets a branch reaches) visits the same sets. Not inlined:
    it is rare.
    """
    reach = 1 << 7
    best = np.inf
    for size in (3, 2, 1):
        for used in range(7, 0, -1):
            if not (reach >> used) & 1:
                continue
            bits = (used & 1) + ((used >> 1) & 1) + ((used >> 2) & 1)
            if bits != size:
                continue
            r = np.nan
            if used != 7:
                r = _quad2(used, n1, n2, sign, wc, i2)
            if r == r:
                if r < best:
                    best = r
            else:
                for ax in range(3):
                    if (used >> ax) & 1:
                        reach |= 1 << (used & ~(1 << ax))
    if best < np.inf:
        return best
    # every partial update undefined (skfmm: NaN): first order for this cell
    return _update1(n1, wc, i2)


@njit(**_INLINE)
def _update(order, n1, n2, sign, wc, i2):  # pragma: no cover - compiled
    """Travel time at a cell from the frozen values around it (order 1 or 2)."""
    if order == 2:
        r = _quad2(7, n1, n2, sign, wc, i2)
        if r == r:
            return r
        return _fallback2(n1, n2, sign, wc, i2)
    return _update1(n1, wc, i2)


# ---------------------------------------------------------------------- one search
@njit(**_JIT)
def _search(lab, cells, labels, w, shape, strides, periodic, h, order, narrow, dist, flag,
            pos, touched, hv, hi, batch):  # pragma: no cover - compiled
    """March from the cells ``cells`` (all of label ``lab``) until a value exceeds ``narrow``.

    ``dist`` / ``flag`` must be inf / far on entry except nowhere; on return the frozen cells
    hold their distances. ``touched``, ``hv``, ``hi`` and ``batch`` are work arrays of the
    grid's size (never grown: reassigning arrays in the loop would cost reference counting).
    Returns the number of cells touched, listed in ``touched``; the caller resets the
    touched cells.
    """
    nt = 0
    i2 = (1.0 / (h[0] * h[0]), 1.0 / (h[1] * h[1]), 1.0 / (h[2] * h[2]))
    # source cells at 0
    for k in range(cells.size):
        q = cells[k]
        dist[q] = 0.0
        flag[q] = _SOURCE
        touched[nt] = q
        nt += 1
    ns = nt
    # skfmm's zero level passes PHI_IN / (1 + PHI_IN) of a cell outside the source's boundary
    # cells, which start at that (tiny) distance; it enters the second-order stencils of the
    # cells two steps out, so it is kept for agreement with skfmm to rounding
    for k in range(ns):
        q = touched[k]
        cq = _coords(q, shape, strides)
        dsum = 0.0
        for ax in range(3):
            for step in (-1, 1):
                m = _nb(q, cq, ax, step, shape, strides, periodic)
                if m >= 0 and labels[m] != lab:
                    d = h[ax] * PHI_IN / (1.0 + PHI_IN)
                    dsum += 1.0 / (d * d)
                    break
        if dsum > 0.0:
            dist[q] = np.sqrt(1.0 / dsum) * w[q]
    # initial frozen set: the outside cells next to the source (skfmm initializeFrozen)
    for k in range(ns):
        q = touched[k]
        cq = _coords(q, shape, strides)
        for ax in range(3):
            for step in (-1, 1):
                m = _nb(q, cq, ax, step, shape, strides, periodic)
                if m < 0 or flag[m] != _FAR:
                    continue
                dsum = 0.0
                cm = _coords(m, shape, strides)
                for ax2 in range(3):
                    for step2 in (-1, 1):
                        m2 = _nb(m, cm, ax2, step2, shape, strides, periodic)
                        if m2 >= 0 and labels[m2] == lab:
                            d = h[ax2] / (1.0 + PHI_IN)
                            dsum += 1.0 / (d * d)
                            break  # skfmm keeps the smaller d of the two sides (equal here)
                dist[m] = np.sqrt(1.0 / dsum) * w[m]
                flag[m] = _FROZEN
                touched[nt] = m
                nt += 1
    # The neighbours of the cells just frozen are updated at one place (the loop below):
    # first the initial frozen set (skfmm initalizeNarrow: far neighbours only, each updated
    # once), then every batch of equal values popped from the heap (skfmm baseMarcher::solve:
    # far and narrow neighbours, and at order 2 the narrow cells two steps out). The update
    # reads the frozen values around the cell here, into ``near``: passed to a compiled
    # function, dist and flag would take atomic references at every update.
    near = np.empty(18)
    size = 0
    nb_ = nt
    for k in range(nt):
        batch[k] = touched[k]
    seeding = True
    while True:
        for k in range(nb_):
            q = batch[k]
            cq = _coords(q, shape, strides)
            for ax in range(3):
                for step in (-1, 1):
                    t = _target(cq, ax, step, shape, periodic)
                    if t < 0:
                        continue
                    m = q + (t - cq[ax]) * strides[ax]
                    if flag[m] == _FAR or (flag[m] == _NARROW and not seeding):
                        cm = _with(cq, ax, t)
                    elif order == 2 and not seeding and flag[m] >= _FROZEN:
                        t = _target(cq, ax, 2 * step, shape, periodic)
                        if t < 0:
                            continue
                        m = q + (t - cq[ax]) * strides[ax]
                        if flag[m] != _NARROW:
                            continue
                        cm = _with(cq, ax, t)
                    else:
                        continue
                    # the frozen values around m (see _update)
                    for ax2 in range(3):
                        for s in range(2):
                            j = 2 * ax2 + s
                            near[j] = np.inf
                            near[6 + j] = np.inf
                            near[12 + j] = 1.0
                            m1 = _nb(m, cm, ax2, 2 * s - 1, shape, strides, periodic)
                            if m1 < 0 or flag[m1] < _FROZEN:
                                continue
                            near[j] = dist[m1]
                            if order != 2:
                                continue
                            m1 = _nb(m, cm, ax2, 4 * s - 2, shape, strides, periodic)
                            if m1 >= 0 and flag[m1] >= _FROZEN:
                                near[6 + j] = dist[m1]
                                if flag[m1] == _SOURCE:
                                    near[12 + j] = -1.0
                    d = _update(order, (near[0], near[1], near[2], near[3], near[4], near[5]),
                                (near[6], near[7], near[8], near[9], near[10], near[11]),
                                (near[12], near[13], near[14], near[15], near[16], near[17]),
                                w[m], i2)
                    if d == 0.0 and not seeding:
                        continue
                    dist[m] = d
                    if flag[m] == _FAR:
                        flag[m] = _NARROW
                        touched[nt] = m
                        nt += 1
                        _heap_push(hv, hi, pos, size, d, m)
                        size += 1
                    else:
                        _heap_set(hv, hi, pos, size, m, d)
        seeding = False
        # the next batch: every heap entry of the smallest value, unless beyond the bound
        if size == 0 or hv[0] > narrow:
            break
        value = hv[0]
        nb_ = 0
        while size > 0 and hv[0] == value:
            q = hi[0]
            _heap_pop(hv, hi, pos, size)
            size -= 1
            flag[q] = _FROZEN
            batch[nb_] = q
            nb_ += 1
    # the cells still in the heap
    for k in range(size):
        pos[hi[k]] = -1
    # cells left in the band are beyond the bound
    for k in range(nt):
        q = touched[k]
        if flag[q] < _FROZEN:
            dist[q] = np.inf
    return nt


@njit(**_JIT)
def _reset(nt, touched, dist, flag):  # pragma: no cover - compiled
    for k in range(nt):
        q = touched[k]
        dist[q] = np.inf
        flag[q] = _FAR


@njit(**_JIT)
def _narrow_of(bound):  # pragma: no cover - compiled
    if bound == np.inf:
        return np.inf
    return bound * (1.0 + 1e-9) + 1e-12


# ---------------------------------------------------------------------- entry points
@njit(**_JIT)
def basin_cells(labels, n):  # pragma: no cover - compiled
    """Flat cell indices grouped by label (counting sort): cells of label b+1 are
    ``cells[start[b]:start[b + 1]]``, in increasing flat order.
    """
    start = np.zeros(n + 1, np.int64)
    for q in range(labels.size):
        lab = labels[q]
        if 0 < lab <= n:
            start[lab] += 1
    for b in range(n):
        start[b + 1] += start[b]
    fill = start[:-1].copy()
    cells = np.empty(start[n], np.int64)
    for q in range(labels.size):
        lab = labels[q]
        if 0 < lab <= n:
            cells[fill[lab - 1]] = q
            fill[lab - 1] += 1
    return cells, start


@njit(**_JIT)
def march_field(w, labels, lab, shape, periodic, h, order, bound):  # pragma: no cover
    """Distance field (flat, inf beyond ``bound``) from the cells of label ``lab``."""
    cells = np.flatnonzero(labels == lab).astype(np.int64)
    dist = np.full(w.size, np.inf)
    flag = np.zeros(w.size, np.uint8)
    n = w.size
    march_field_into(w, labels, cells, lab, shape, periodic, h, order, bound, dist, flag,
                     np.full(n, -1, np.int64), np.empty(n, np.int64), np.empty(n),
                     np.empty(n, np.int64), np.empty(n, np.int64))
    return dist


@njit(**_JIT)
def march_field_into(w, labels, cells, lab, shape, periodic, h, order, bound, dist, flag,
                     pos, touched, hv, hi, batch):  # pragma: no cover - compiled
    """:func:`march_field` from the cells ``cells`` of label ``lab``, into ``dist``.

    ``dist`` (inf) and ``flag`` (far) must be reset everywhere on entry; the other arrays
    are work arrays of the grid's size. On return ``dist`` is the field (inf beyond
    ``bound``) and the first ``nt`` entries of ``touched`` (returned) list the cells set:
    :func:`reset_touched` restores both arrays for the next call at that cost, not the
    grid's (a caller marching from many sources of a large grid).
    """
    shape, strides, h = _as_tuples(shape, h)
    nt = _search(lab, cells, labels, w, shape, strides, periodic, h, order,
                                  _narrow_of(bound), dist, flag, pos, touched, hv, hi, batch)
    for k in range(nt):
        if dist[touched[k]] > bound:
            dist[touched[k]] = np.inf
    for k in range(cells.size):
        dist[cells[k]] = 0.0
    return nt


@njit(**_JIT)
def reset_touched(nt, touched, dist, flag):  # pragma: no cover - compiled
    """Restore ``dist`` (inf) and ``flag`` (far) at the ``nt`` cells listed in ``touched``."""
    _reset(nt, touched, dist, flag)


@njit(**_JIT)
def march_pairs(w, labels, cells, start, sources, bounds, wanted, shape, periodic, h,
                order, dist, flag, pos, touched, hv, hi, batch):  # pragma: no cover - compiled
    """Bounded searches from every basin in ``sources`` (0-based); pairs closer than the bound.

    For source basin i (label i + 1) and every other labelled cell with ``wanted[label]``
    reached at a distance <= ``bounds[k]``, the minimum distance per basin j. Returns
    ``(i, j, rho)`` arrays, grouped by source, j in the order first reached, and the lowest
    flat index any search of the call touched (``w.size`` if none). ``flag`` (0 on
    entry, and again on return) and ``dist``, ``pos``, ``touched``, ``hv``, ``hi``, ``batch``
    are work arrays of the grid's size; only ``flag`` needs initial values: ``dist`` and
    ``pos`` are read only at cells whose flag says they were set in the current search, so
    they may come from np.empty and only the pages a search touches are ever written.
    """
    shape, strides, h = _as_tuples(shape, h)
    nl = wanted.size
    best = np.full(nl, np.inf)
    hits = np.empty(64, np.int64)
    oi = np.empty(256, np.int64)
    oj = np.empty(256, np.int64)
    orho = np.empty(256)
    npair = 0
    lowest = w.size
    for s in range(sources.size):
        b = sources[s]
        lab = b + 1
        bound = bounds[s]
        cs = cells[start[b]:start[b + 1]]
        nt = _search(lab, cs, labels, w, shape, strides, periodic, h, order,
                                      _narrow_of(bound), dist, flag, pos, touched, hv, hi, batch)
        nh = 0
        for k in range(nt):
            q = touched[k]
            if q < lowest:
                lowest = q
            d = dist[q]
            if d > bound:
                continue
            lq = labels[q]
            if lq <= 0 or lq == lab or not wanted[lq]:
                continue
            if best[lq] == np.inf:
                if nh == hits.size:
                    hits = _grow_i(hits)
                hits[nh] = lq
                nh += 1
            if d < best[lq]:
                best[lq] = d
        for k in range(nh):
            lq = hits[k]
            if npair == oi.size:
                oi = _grow_i(oi)
                oj = _grow_i(oj)
                orho = _grow_f(orho)
            oi[npair] = b
            oj[npair] = lq - 1
            orho[npair] = best[lq]
            npair += 1
            best[lq] = np.inf
        _reset(nt, touched, dist, flag)
    return oi[:npair].copy(), oj[:npair].copy(), orho[:npair].copy(), lowest


@njit(**_JIT)
def walk_pairs_1d(w, labels, cells, start, sources, bounds, wanted, periodic, h,
                  order):  # pragma: no cover - compiled
    """1D bounded walks: the exact cumulative sums of ``agmon._march_1d`` from each source.

    The step from cell k-1 to k costs ``h w_k`` (order 1) or ``h (w_{k-1} + w_k) / 2`` (order
    2); a walk leaves the source at each of its end cells and stops beyond the bound.
    """
    n = w.size
    nl = wanted.size
    best = np.full(nl, np.inf)
    hits = np.empty(64, np.int64)
    oi = np.empty(256, np.int64)
    oj = np.empty(256, np.int64)
    orho = np.empty(256)
    npair = 0
    for s in range(sources.size):
        b = sources[s]
        lab = b + 1
        bound = bounds[s]
        nh = 0
        for k in range(start[b], start[b + 1]):
            q0 = cells[k]
            for step in (-1, 1):
                nxt = q0 + step
                if periodic:
                    nxt %= n
                elif nxt < 0 or nxt >= n:
                    continue
                if labels[nxt] == lab:
                    continue  # not an end cell on this side
                cost = 0.0
                prev = q0
                q = nxt
                for _ in range(n):
                    if order == 1:
                        cost += h * w[q]
                    else:
                        cost += 0.5 * h * (w[prev] + w[q])
                    if cost > bound or labels[q] == lab:
                        break
                    lq = labels[q]
                    if lq > 0 and wanted[lq]:
                        if best[lq] == np.inf:
                            if nh == hits.size:
                                hits = _grow_i(hits)
                            hits[nh] = lq
                            nh += 1
                        if cost < best[lq]:
                            best[lq] = cost
                    prev = q
                    q = q + step
                    if periodic:
                        q %= n
                    elif q < 0 or q >= n:
                        break
        for k in range(nh):
            lq = hits[k]
            if npair == oi.size:
                oi = _grow_i(oi)
                oj = _grow_i(oj)
                orho = _grow_f(orho)
            oi[npair] = b
            oj[npair] = lq - 1
            orho[npair] = best[lq]
            npair += 1
            best[lq] = np.inf
    return oi[:npair].copy(), oj[:npair].copy(), orho[:npair].copy()


# Hand-written: a steepest-descent walk over a few hundred cells per pair, run for every pair
# of every sample; in Python it costs ~20 us per step and per neighbour. No library traces
# minimal paths on a precomputed fast-marching field (scikit-image's MCP recomputes a Dijkstra
# field, whose metric error does not shrink with the resolution).
@njit(**_JIT)
def descend(field, labels, shape, periodic, offsets, steplen, start, target, maxlen
             ):  # pragma: no cover - compiled
    """Cells from ``start`` down ``field`` to the first cell labelled ``target``.

    Also returns the neighbour offset taken at each step (-1 for the start).
    """
    path = np.empty(maxlen, np.int64)
    taken = np.empty(maxlen, np.int64)
    path[0] = start
    taken[0] = -1
    n = 1
    cur = start
    s1 = shape[1] * shape[2]
    s2 = shape[2]
    while labels[cur] != target and n < maxlen:
        c0 = cur // s1
        c1 = (cur - c0 * s1) // s2
        c2 = cur - c0 * s1 - c1 * s2
        best = 0.0
        nxt = -1
        here = field[cur]
        for k in range(offsets.shape[0]):
            t0, t1, t2 = c0 + offsets[k, 0], c1 + offsets[k, 1], c2 + offsets[k, 2]
            ok = True
            tt = (t0, t1, t2)
            out = [0, 0, 0]
            for a in range(3):
                t = tt[a]
                if t < 0 or t >= shape[a]:
                    if not periodic or shape[a] == 1:
                        ok = False
                        break
                    t = t % shape[a]
                out[a] = t
            if not ok:
                continue
            cell = out[0] * s1 + out[1] * s2 + out[2]
            slope = (field[cell] - here) / steplen[k]
            if slope < best:
                best = slope
                nxt = k
                nbc = cell
        if nxt < 0:
            break
        path[n] = nbc
        taken[n] = nxt
        n += 1
        cur = nbc
    return path[:n], taken[:n]
