"""The pair model in 3D on a small sample: Anderson box [0, 20], 4 x 20^3 (docs/validation.md).

Usage: .venv/bin/python docs/validation/pairs/anderson_3d.py   (~10 min on 2 shared cores)

E_F between the 40th and 41st levels of realization 1 (the band tail), 6 log-spaced
frequencies from 0.02 to 0.5, bins around them; prints the ratios of ensemble means to the
exact Kubo-Greenwood sigma for sigma_pairs (default), sigma_pairs with every inter-basin
pair through t_ab, the paper's eq. 17 ("ll") and sigma_MB (eq. 1). At 20^3 the Mott
lengths are comparable to the sample: this is a check of the pair model's pieces in 3D, not
of the Mott regime.
"""

from __future__ import annotations

import numpy as np

import mottscape as ms
from mottscape.exact import kubo_greenwood, lowest_eigenvalues
from mottscape.pairs import omega_edges
from mottscape.sample import make_sample


def main() -> None:
    w = np.geomspace(0.02, 0.5, 6)
    curves: dict[str, list] = {k: [] for k in ("exact", "pairs", "tunnelling", "ll", "mb",
                                                "share", "n_exact")}
    ef = None
    for seed in (1, 2, 3, 4):
        s = make_sample(ms.disorder.anderson((20, 20, 20), width=20.0, seed=seed))
        if ef is None:
            ev = lowest_eigenvalues(s, 41)
            ef = float(0.5 * (ev[39] + ev[40]))
        ds = ms.ac_conductivity(s, ef, w, pair_model=True)
        tun = ms.ac_conductivity(s, ef, w, pair_model=True, pair_coupling="tunnelling")
        kg = kubo_greenwood(s, ef, omega_edges(w))
        for key, value in (("exact", kg.sigma), ("pairs", ds.sigma_pairs),
                           ("tunnelling", tun.sigma_pairs), ("ll", ds.sigma_eq17),
                           ("mb", ds.sigma_mb), ("share", ds.pairs_box_share),
                           ("n_exact", kg.n_pairs)):
            curves[key].append(np.asarray(value.values, float))
    arr = {k: np.array(v) for k, v in curves.items()}
    ex = arr["exact"]
    np.set_printoptions(precision=3)
    print(f"E_F = {ef:.4f}, omega/Delta_xi = {w / float(ds.delta_xi)}")
    print("exact pairs per bin", arr["n_exact"].sum(axis=0).astype(int))
    print("effective realizations", ex.sum(axis=0) ** 2 / (ex**2).sum(axis=0))
    for key in ("pairs", "tunnelling", "ll", "mb"):
        print(f"{key:>10} / exact", arr[key].mean(axis=0) / ex.mean(axis=0))
    print("box share", np.nanmean(arr["share"], axis=0))


if __name__ == "__main__":
    main()
