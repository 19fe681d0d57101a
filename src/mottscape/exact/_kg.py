"""Matrix elements of eq. (5) and the Kubo-Greenwood pair sum of eq. (4)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..grid import Grid
from ..hamiltonian import Hamiltonian
from ..sample import Sample
from ._common import _centroids, _fermi, _flat_coordinates


# ============================================================================ matrix elements
def position_matrix(vectors: np.ndarray, grid: Grid, vectors2: np.ndarray | None = None,
                    origin: str = "pair") -> np.ndarray:
    """Position matrix elements of eq. (5), ``X[alpha, i, j] = <psi_i | x_alpha | psi_j>``.

    Parameters
    ----------
    vectors
        Eigenvectors as columns, shape ``(n_cells, m)`` (row-major flattened grid), normalised
        so that ``sum_cells |psi|^2 = 1``.
    grid
        The sample grid (cell centres give x_alpha), or a :class:`~mottscape.sample.Sample`.
    vectors2
        Second set of columns (default: ``vectors``).
    origin
        ``"pair"`` (default) evaluates ``<i|(x - c_ij)|j>`` with ``c_ij`` the midpoint of the
        two centroids (identical for orthogonal states, more accurate for approximate ones);
        ``"grid"`` uses the grid coordinates as they are.

    Returns
    -------
    numpy.ndarray
        Shape ``(d, m, m2)``.
    """
    if isinstance(grid, Sample):
        grid = grid.grid
    coords = _flat_coordinates(grid)
    v1 = np.asarray(vectors, dtype=float)
    v2 = v1 if vectors2 is None else np.asarray(vectors2, dtype=float)
    X = np.stack([v1.T @ (c[:, None] * v2) for c in coords])
    if origin == "pair":
        S = v1.T @ v2
        c1, c2 = _centroids(v1, coords), _centroids(v2, coords)
        for a in range(grid.ndim):
            X[a] -= 0.5 * (c1[:, a][:, None] + c2[:, a][None, :]) * S
    elif origin != "grid":
        raise InputError(f"origin={origin!r} must be 'pair' or 'grid'")
    return X


def _velocity_x2(ham: Hamiltonian, va: np.ndarray, vb: np.ndarray, dE: np.ndarray) -> np.ndarray:
    """|X|^2 from the current: X_ab = <a|[H, x]|b> / (E_a - E_b), bonds by minimum image."""
    grid = ham.grid
    d = grid.ndim
    A = va.reshape((*grid.shape, -1))
    B = vb.reshape((*grid.shape, -1))
    out = np.zeros((va.shape[1], vb.shape[1]))
    for ax in range(d):
        h = grid.spacing[ax]
        J = np.zeros_like(out)
        faces = [(slice(None, -1), slice(1, None), ham.couplings[ax])]
        if ham.wrap_couplings[ax] is not None:
            faces.append((slice(-1, None), slice(0, 1), ham.wrap_couplings[ax]))
        for slo, shi, c in faces:
            lo = tuple([slice(None)] * ax + [slo])
            hi = tuple([slice(None)] * ax + [shi])
            cc = np.asarray(c, dtype=float)
            cflat = cc.reshape(-1, 1) if cc.ndim else float(cc)
            Alo, Ahi = A[lo].reshape(-1, A.shape[-1]), A[hi].reshape(-1, A.shape[-1])
            Blo, Bhi = B[lo].reshape(-1, B.shape[-1]), B[hi].reshape(-1, B.shape[-1])
            # [H, x]_{lo,hi} = H_{lo,hi} (x_hi - x_lo) = -c h ; [H, x]_{hi,lo} = +c h
            J += -h * (Alo.T @ (cflat * Bhi) - Ahi.T @ (cflat * Blo))
        out += J * J
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dE != 0, out / (dE * dE), 0.0)


# ============================================================================ the KG sum
class _Accumulator:
    def __init__(self, ham, e_edges, fermi_energy, temperature):
        self.ham = ham
        self.grid = ham.grid
        self.d = ham.grid.ndim
        self.e_edges = e_edges
        self.ef = fermi_energy
        self.T = temperature
        nb = e_edges.size - 1
        self.sums = np.zeros(nb)
        self.counted = np.zeros(nb, dtype=np.int64)  # pairs added per bin
        self.flagged = np.zeros(nb)  # the part of sums from pairs marked by ``flag``
        self.pref = 2.0 * math.pi / (self.d * ham.grid.volume)
        self.velocity = ham.grid.periodic

    def add(self, Ea, va, ca, Eb, vb, cb, coords, same: bool, allowed=None,
            position: bool | None = None, flag=None):
        """Pairs between two state sets restricted to common cells (``coords``: (d, rows)).

        ``allowed`` (bool, shape (len(Ea), len(Eb))) excludes pairs (the boxes' pair cutoff);
        ``position=True`` forces the position form (coordinates already unwrapped locally);
        ``flag`` (bool, same shape) marks pairs whose share of each bin is also summed into
        ``flagged`` (the boxes' pairs farther apart than the padding).
        """
        dE = Eb[None, :] - Ea[:, None]
        w = np.abs(dE)
        fa, fb = _fermi(Ea, self.ef, self.T), _fermi(Eb, self.ef, self.T)
        weight = np.where(dE > 0, fa[:, None] - fb[None, :], fb[None, :] - fa[:, None])
        mask = (w >= self.e_edges[0]) & (w < self.e_edges[-1]) & (weight > 0)
        if allowed is not None:
            mask &= allowed
        if same:
            mask &= np.triu(np.ones(mask.shape, dtype=bool), 1)
        if not mask.any():
            return
        ia = np.nonzero(mask.any(axis=1))[0]
        ib = np.nonzero(mask.any(axis=0))[0]
        mask = mask[np.ix_(ia, ib)]
        va_, vb_ = va[:, ia], vb[:, ib]
        velocity = self.velocity if position is None else not position
        if velocity:
            x2 = _velocity_x2(self.ham, va_, vb_, dE[np.ix_(ia, ib)])
        else:
            S = va_.T @ vb_
            x2 = np.zeros(S.shape)
            for a in range(self.d):
                X = va_.T @ (coords[a][:, None] * vb_)
                X -= 0.5 * (ca[ia, a][:, None] + cb[ib, a][None, :]) * S
                x2 += X * X
        wm, wt, xm = w[np.ix_(ia, ib)][mask], weight[np.ix_(ia, ib)][mask], x2[mask]
        k = np.searchsorted(self.e_edges, wm, side="right") - 1
        width = np.diff(self.e_edges)[k]
        self.sums += np.bincount(k, weights=self.pref * wm * wt * xm / width,
                                 minlength=self.sums.size)
        self.counted += np.bincount(k, minlength=self.sums.size)
        if flag is not None:
            fm = flag[np.ix_(ia, ib)][mask]
            self.flagged += np.bincount(k[fm], weights=(self.pref * wm * wt * xm / width)[fm],
                                        minlength=self.sums.size)


def _count_pairs(E: np.ndarray, e_edges: np.ndarray, fermi_energy: float,
                 temperature: float) -> np.ndarray:
    """Pairs (i, j) of window states with E_j - E_i in each bin that can absorb (f_i > f_j).

    At T = 0 these are the pairs with E_i <= E_F <= E_j (not both at E_F); at T > 0 every
    pair with E_j > E_i. Counted from the energies alone, O(m log m) per bin edge.
    """
    E = np.sort(np.asarray(E, dtype=float))
    if temperature == 0.0:
        low = E[E <= fermi_energy]
        high = E[E >= fermi_energy]
        both = int(np.count_nonzero(E == fermi_energy))
    else:
        low = high = E
        both = 0
    # cum[k] = number of pairs with E_j - E_i >= e_k (E_j > E_i for k's with e_k > 0).
    cum = np.array([int(np.sum(high.size - np.searchsorted(high, low + e, side="left")))
                    for e in e_edges])
    del both  # pairs with both states at E_F have E_j - E_i = 0 < e_0: never counted
    return cum[:-1] - cum[1:]


