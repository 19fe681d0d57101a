"""Which ingredient of sigma_LL is wrong in 2D? Each one against its exact counterpart.

    .venv/bin/python docs/investigation/ingredients.py [STUDY.toml] [--realizations N]

Issue 10, item 3. On the same realizations, with the exact eigenstates of H in the window
E_F +- hbar omega_max (``ms.exact_eigenstates``, complete by inertia counts):

* nu: the landscape-law DOS against the exact count of states in the window;
* V_F and Delta_xi: the mean basin volume of the states used against the exact participation
  volume 1/sum|psi|^4 of the states in the window;
* sigma_LL / sigma_exact = (nu_LL / nu_exact)^2 * (E_LL / E_exact), where E_exact is the moment
  eq. 17 would need to give sigma_exact with the exact DOS (sigma_ll of mottscape.mott
  inverted): the DOS part and the pair part of the error, per omega bin;
* the pair part split into *where* the pairs are and *how many*: the mean Euclidean distance
  of the pairs in the LL's Agmon shell [rho_omega, rho_omega + 1] against the |X_ab|^2-weighted
  mean centroid distance of the exact pairs that carry sigma_exact in the bin;
* the coupling: each exact state is attached to the basin holding its largest |psi|^2 (if
  any); for exact pairs of states in two different basins whose Agmon distance rho_ij was
  computed, the two-level estimate of the coupling t_ab = (hbar omega / 2) sin(2 theta) with
  sin(2 theta) = 2 |X_ab| / r_ab (r_ab their centroid distance), against Delta_xi rho_ij
  e^{-rho_ij} (eq. 11 / A16): the fitted slope of ln t against rho (1 if the Agmon distance
  sets the decay) and the prefactor.

Prints one table per quantity and writes ``docs/investigation/<study>.json``. Nothing here is
fitted to change a default: it measures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

import mottscape as ms
from mottscape.exact import position_matrix
from mottscape.mott import sigma_ll
from mottscape.pipeline import run

HERE = Path(__file__).resolve().parent
DEFAULT = HERE.parents[0] / "validation" / "block_2d.toml"


def exact_side(sample, ef: float, edges: np.ndarray) -> dict:
    """Exact states of the window, their participation volumes, pairs by bin."""
    hw_max = float(edges[-1])
    E, psi = ms.exact_eigenstates(sample.hamiltonian, ef - hw_max, ef + hw_max)
    grid = sample.grid
    cell = float(np.prod(grid.spacing))
    volume = grid.size * cell
    p2 = psi**2
    vpr = cell / np.sum(p2**2, axis=0)  # participation volume: cells 1/sum |psi|^4
    coords = np.stack([c.ravel() for c in np.meshgrid(
        *[grid.coordinates(a) for a in range(grid.ndim)], indexing="ij")], axis=1)
    centroids = p2.T @ coords
    X = position_matrix(psi, grid)
    w2 = np.sum(X**2, axis=0) / grid.ndim  # isotropic |X_ab|^2
    occ, emp = E < ef, E > ef
    a_idx, b_idx = np.nonzero(occ[:, None] & emp[None, :])
    dE = E[b_idx] - E[a_idx]
    r = np.linalg.norm(centroids[a_idx] - centroids[b_idx], axis=1)
    peak = np.argmax(p2, axis=0)
    return {"E": E, "vpr": vpr, "nu": E.size / (volume * 2 * hw_max), "volume": volume,
            "a": a_idx, "b": b_idx, "dE": dE, "r": r, "w2": w2[a_idx, b_idx], "peak": peak}


def ll_side(sample, ef: float, centres: np.ndarray, options) -> dict:
    res = run(sample, ef, centres, options)
    pairs = res.pairs
    r = res.pair_euclidean()
    shell_r = []
    for k in range(centres.size):
        lo = float(res.moments.rho_omega[k])
        sel = (pairs.rho >= lo) & (pairs.rho <= lo + 1.0)
        shell_r.append(float(np.mean(r[sel])) if sel.any() else math.nan)
    return {"res": res, "shell_r": np.array(shell_r)}


def coupling_fit(ex: dict, res) -> dict:
    """ln t_ab against rho_ij for exact pairs attached to two basins with a computed rho."""
    labels = res.basins.labels.ravel()
    basin_of = labels[ex["peak"]] - 1  # -1: not in a basin
    rho = {}
    for i, j, d in zip(res.pairs.i, res.pairs.j, res.pairs.rho, strict=True):
        rho[(int(i), int(j))] = float(d)
    t, rr, dxi = [], [], float(res.statistics.delta_xi)
    for a, b, dE, r, w2 in zip(ex["a"], ex["b"], ex["dE"], ex["r"], ex["w2"], strict=True):
        bi, bj = int(basin_of[a]), int(basin_of[b])
        if bi < 0 or bj < 0 or bi == bj or r <= 0:
            continue
        key = (min(bi, bj), max(bi, bj))
        if key not in rho:
            continue
        s2 = min(1.0, 2.0 * math.sqrt(w2) / r)
        if s2 < 1e-12:
            continue
        t.append(0.5 * dE * s2)
        rr.append(rho[key])
    t, rr = np.array(t), np.array(rr)
    out = {"n": int(t.size), "delta_xi": dxi}
    if t.size >= 10:
        slope, icpt = np.polyfit(rr, np.log(t / dxi), 1)
        # prefactor of Delta_xi rho e^{-rho} at the median rho of the pairs
        ratio = t / (dxi * rr * np.exp(-rr))
        out.update(slope=float(-slope), intercept=float(icpt),
                   prefactor_median=float(np.median(ratio)),
                   prefactor_iqr=[float(np.quantile(ratio, 0.25)),
                                  float(np.quantile(ratio, 0.75))],
                   rho_median=float(np.median(rr)))
    return out


def one_realization(study, r: int, edges: np.ndarray) -> dict:
    sample = study.make_sample(r)
    ef = study.conductivity.fermi_energy
    centres = np.sqrt(edges[:-1] * edges[1:])
    ex = exact_side(sample, ef, edges)
    ll = ll_side(sample, ef, centres, study.options)
    res = ll["res"]
    kg = ms.kubo_greenwood(sample.potential, ef, edges, spacing=study.grid.spacing,
                           boundary=study.grid.boundary)
    d = sample.ndim
    bins = np.digitize(ex["dE"], edges) - 1
    r_ex = np.full(centres.size, math.nan)
    for k in range(centres.size):
        sel = bins == k
        if sel.any() and ex["w2"][sel].sum() > 0:
            r_ex[k] = float(np.sum(ex["w2"][sel] * ex["r"][sel]) / ex["w2"][sel].sum())
    nu_ll = float(res.statistics.nu)
    e_ll = res.moments.moment
    e_ex = np.asarray(kg["sigma"].values) / sigma_ll(ex["nu"], centres, 1.0, d)
    # sigma_exact at the bin centre in the units of sigma_ll (lattice units: factor 1)
    return {
        "nu_ll": nu_ll, "nu_exact": ex["nu"],
        "vf_ll": float(res.statistics.localization_volume),
        "vpr_exact": float(np.mean(ex["vpr"])),
        "delta_xi_ll": float(res.statistics.delta_xi),
        "delta_xi_exact": 1.0 / (ex["nu"] * float(np.mean(ex["vpr"]))),
        "sigma_ll": res.conductivity.sigma_ll.tolist(),
        "sigma_exact": kg["sigma"].values.tolist(),
        "moment_ll": e_ll.tolist(), "moment_exact": e_ex.tolist(),
        "n_pairs_ll": res.moments.n_pairs.tolist(),
        "shell_r_ll": ll["shell_r"].tolist(), "r_exact": r_ex.tolist(),
        "rho_omega": res.moments.rho_omega.tolist(),
        "coupling": coupling_fit(ex, res),
    }


def _mean(rows, key):
    return np.nanmean(np.array([row[key] for row in rows], dtype=float), axis=0)


def report(rows, centres) -> str:
    out = []
    nu_ll, nu_ex = _mean(rows, "nu_ll"), _mean(rows, "nu_exact")
    out.append(f"nu: LL {nu_ll:.4g}, exact {nu_ex:.4g} (ratio {nu_ll / nu_ex:.2f}; squared "
               f"{(nu_ll / nu_ex) ** 2:.2f})")
    out.append(f"V_F: LL mean basin volume {_mean(rows, 'vf_ll'):.1f}, exact participation "
               f"volume {_mean(rows, 'vpr_exact'):.1f}")
    out.append(f"Delta_xi: LL {_mean(rows, 'delta_xi_ll'):.3g}, exact 1/(nu V_PR) "
               f"{_mean(rows, 'delta_xi_exact'):.3g}")
    s_ll, s_ex = _mean(rows, "sigma_ll"), _mean(rows, "sigma_exact")
    m_ll, m_ex = _mean(rows, "moment_ll"), _mean(rows, "moment_exact")
    out.append("")
    out.append("| omega | rho_omega | sigma_LL/exact | (nu_LL/nu_ex)^2 | E_LL/E_exact | "
               "pairs in shell | shell mean r (LL) | weighted r (exact) |")
    out.append("|---|---|---|---|---|---|---|---|")
    rho = _mean(rows, "rho_omega")
    npairs = np.sum([row["n_pairs_ll"] for row in rows], axis=0)
    r_ll, r_ex = _mean(rows, "shell_r_ll"), _mean(rows, "r_exact")
    for k, w in enumerate(centres):
        out.append(f"| {w:.3g} | {rho[k]:.2f} | {s_ll[k] / s_ex[k]:.3g} | "
                   f"{(nu_ll / nu_ex) ** 2:.2f} | {m_ll[k] / m_ex[k]:.3g} | {int(npairs[k])} | "
                   f"{r_ll[k]:.1f} | {r_ex[k]:.1f} |")
    out.append("")
    cp = [row["coupling"] for row in rows if row["coupling"].get("slope") is not None]
    if cp:
        out.append("coupling of exact pairs against rho_ij (per realization): " + "; ".join(
            f"n = {c['n']}, d ln t / d rho = -{c['slope']:.2f}, t / (Delta_xi rho e^-rho) "
            f"median {c['prefactor_median']:.3g} (IQR {c['prefactor_iqr'][0]:.2g}-"
            f"{c['prefactor_iqr'][1]:.2g}) at rho ~ {c['rho_median']:.1f}" for c in cp))
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", nargs="?", default=str(DEFAULT))
    p.add_argument("--realizations", type=int, default=3)
    args = p.parse_args(argv)
    study = ms.load_study(args.study)
    edges = study.omega_edges()
    centres = np.sqrt(edges[:-1] * edges[1:])
    rows = []
    for r in range(args.realizations):
        rows.append(one_realization(study, r, edges))
        print(f"realization {r} done", file=sys.stderr, flush=True)
    text = report(rows, centres)
    print(text)
    out = HERE / (Path(args.study).stem + ".json")
    out.write_text(json.dumps({"study": args.study, "omega": centres.tolist(), "rows": rows},
                              indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
