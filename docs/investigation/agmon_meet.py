"""Meet-in-the-middle Agmon pair distances against the one-sided searches (issue 13).

The pair distance of :func:`mottscape.agmon.basin_distances` is the smaller of the two directed
searches, each marched from one basin until it reaches the other (bound B). The alternative
looked at here: march from both basins only to B/2 and take rho_ij = min_x d_i(x) + d_j(x) over
the cells both reached (fewer cells per search: the balls have half the radius). This script
measures, on pairs of a 2D block-disorder sample, how far that estimate is from the one-sided
one at the same spacing and from a 4x finer march of the same piecewise-constant metric, and
how many cells the half balls hold against the full ones. Corrections tried: subtracting
h w(x) (the meeting cell's cost, counted by both searches: exact in 1D) and h w(x) / 2.

    .venv/bin/python docs/investigation/agmon_meet.py [--n 128] [--pairs 150]
"""

from __future__ import annotations

import argparse

import numpy as np

from mottscape import _agmon_kernels as kernels
from mottscape import find_basins, solve_landscape
from mottscape.agmon import _kernel_labels, basin_distances, floored_metric

NAMES = ("one-sided", "meet", "meet - h w", "meet - h w / 2")


def field(w: np.ndarray, labels: np.ndarray, label: int, h: float, bound: float) -> np.ndarray:
    """Second-order fast-marching distance from the cells of ``label`` (2D, Dirichlet)."""
    shape = np.array([1, *labels.shape], np.int64)
    return kernels.march_field(w.ravel(), labels.ravel(), label, shape, False,
                               np.array([1.0, h, h]), 2, bound)


def estimates(w, labels, i: int, j: int, h: float, bound: float) -> tuple[list[float], float]:
    """The four estimates of rho_ij, and the cells within bound/2 over those within bound."""
    fi = field(w, labels, i + 1, h, bound + 2)
    fj = field(w, labels, j + 1, h, bound + 2)
    flat = labels.ravel()
    one = min(fi[flat == j + 1].min(), fj[flat == i + 1].min())
    both = (fi <= bound / 2) & (fj <= bound / 2)
    s = fi + fj
    if not both.any():
        return [one, np.inf, np.inf, np.inf], np.nan
    cost = h * w.ravel()
    out = [one, s[both].min(), (s - cost)[both].min(), (s - cost / 2)[both].min()]
    share = (np.sum(fi <= bound / 2) + np.sum(fj <= bound / 2)) / (
        np.sum(fi <= bound) + np.sum(fj <= bound))
    return out, float(share)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--pairs", type=int, default=150)
    ap.add_argument("--bound", type=float, default=10.0)
    args = ap.parse_args()
    n, bound = args.n, args.bound
    rng = np.random.default_rng(0)
    V = np.repeat(np.repeat(rng.uniform(0, 4, (n // 4, n // 4)), 4, 0), 4, 1)
    land = solve_landscape(V)
    E = float(np.quantile(land.effective_potential, 0.05))
    basins = find_basins(land, E)
    pd = basin_distances(land, basins, bound=bound)
    w = floored_metric(land.agmon_metric(E), land.grid)
    lab = _kernel_labels(basins.labels, basins.n).reshape(n, n)
    pick = np.random.default_rng(1).choice(len(pd), min(args.pairs, len(pd)), replace=False)
    rows, shares = [], []
    for k in pick:
        row = []
        for r in (1, 2, 4):
            fine_w = np.repeat(np.repeat(w, r, 0), r, 1)
            fine_lab = np.repeat(np.repeat(lab, r, 0), r, 1)
            got, share = estimates(fine_w, fine_lab, int(pd.i[k]), int(pd.j[k]), 1 / r, bound)
            row += got
            if r == 1:
                shares.append(share)
        rows.append(row)
    a = np.array(rows)
    a = a[np.isfinite(a).all(axis=1)]
    print(f"{n}^2 block sample, E_F at the 0.05 quantile of V_u, bound {bound}: {len(a)} pairs "
          f"met by both half balls (of {len(pick)}); cells in the half balls / full balls: "
          f"median {np.nanmedian(shares):.2f}")
    ref = a[:, 8]
    for r, off in ((1, 0), (2, 4), (4, 8)):
        for m, name in enumerate(NAMES):
            d = a[:, off + m] - ref
            d1 = a[:, off + m] - a[:, off]
            print(f"h = 1/{r}  {name:15s} minus one-sided at h = 1/4: mean {d.mean():+.3f} "
                  f"rms {np.sqrt(np.mean(d**2)):.3f} | minus one-sided at the same h: mean "
                  f"{d1.mean():+.3f} rms {np.sqrt(np.mean(d1**2)):.3f} max {np.abs(d1).max():.3f}")


if __name__ == "__main__":
    main()
