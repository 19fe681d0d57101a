"""Overlapping segments of a 1D Dirichlet chain, each diagonalised in the window."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import scipy.linalg as sla

from ..hamiltonian import Hamiltonian
from ._common import PADDING_XI, _Block, _centroids, _tridiagonal
from ._counts import _sturm_counts


def _default_padding(ham: Hamiltonian, lo: float, hi: float, n_states: int
                     ) -> tuple[int, float]:
    """Default padding of 1D segments, in cells, and the localization length estimate.

    The padding must (i) hold a state's tail down to round-off, PADDING_XI localization
    lengths at the window top (Thouless formula), and (ii) cover the pairs that carry the
    conductivity: two states are paired only when their segments overlap, i.e. up to about
    ``2 * padding`` apart. When the window states are sparse (mean distance ``N / n_states``
    beyond 30 xi) even the nearest pairs are that far apart, so the padding is at least twice
    the mean distance between window states.
    """
    d, e = _tridiagonal(ham)
    _, gam = _sturm_counts(d, e, [hi], lyapunov=True)
    h = ham.grid.spacing[0]
    gamma = float(gam[0])  # per cell
    xi_cells = 1.0 / gamma if gamma > 1e-12 else float("inf")
    spacing = 2.0 * ham.size / max(n_states, 1)
    pad = max(PADDING_XI * xi_cells, spacing)
    pad = int(min(max(16.0, math.ceil(pad)), ham.size)) if math.isfinite(pad) else ham.size
    return pad, xi_cells * h


def _solve_segments(ham: Hamiltonian, lo: float, hi: float, segment: int, padding: int,
                    progress: bool = False, segments: range | None = None) -> list[_Block]:
    """The window states kept by each segment (those of ``segments``, default all)."""
    d, e = _tridiagonal(ham)
    n = d.size
    x = ham.grid.coordinates(0)
    idx = np.arange(n, dtype=float)
    blocks: list[_Block] = []
    nseg = math.ceil(n / segment)
    iterator: Iterable[int] = range(nseg) if segments is None else segments
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="segments")
    for s in iterator:
        c0, c1 = s * segment, min(n, (s + 1) * segment)
        a, b = max(0, c0 - padding), min(n, c1 + padding)
        if b - a == 1:
            keep_e = d[a:b][(d[a:b] > lo) & (d[a:b] <= hi)]
            w, v = keep_e, np.ones((1, keep_e.size))
        else:
            w, v = sla.eigh_tridiagonal(d[a:b], e[a:b - 1], select="v", select_range=(lo, hi),
                                        lapack_driver="stebz")
        if w.size == 0:
            continue
        wgt = v * v
        cen = (idx[a:b] @ wgt) / wgt.sum(axis=0)  # centroid as a cell index
        keep = (cen >= c0 - 0.5) & (cen < c1 - 0.5)
        if s == nseg - 1:
            keep = cen >= c0 - 0.5
        if not keep.any():
            continue
        vk = v[:, keep]
        blocks.append(_Block(a, b, w[keep], vk, _centroids(vk, x[None, a:b])))
    return blocks


