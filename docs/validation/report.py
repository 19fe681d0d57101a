"""Print the Markdown tables of docs/validation.md from the saved validation runs.

Usage: python docs/validation/report.py  (from the repository root)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

import mottscape as ms
from mottscape.validation import summarize

HERE = Path(__file__).parent
MODELS = {"block_1d": "1D block", "block_2d": "2D block", "gaussian_1d": "1D Gaussian"}
#: Models reported with their regime per bin (resolved bins, Mott length against the sample,
#: the LL tunnelling part alone): the 3D validation of 2026-12-05 and the 512^2 2D field.
REGIME_MODELS = {"anderson_3d": "3D Anderson box [0, 20], 24³",
                 "gaussian_3d": "3D Gaussian field, 32³",
                 "gaussian_2d_512": "2D Gaussian field, 512²"}
SHOWN = [("eq17_default", "LL eq. 17 (paper)"), ("eq17_effective_scaled", "LL eq. 17, scaled W_u"),
         ("mb", "MB (eq. 1)"), ("pairs", "pair model (sigma_ll since 2026-12)")]


def fmt(res, name, k):
    r, lo, hi = (float(res[f"ratio_{name}{s}"][k]) for s in ("", "_lo", "_hi"))
    return f"{r:.2g} [{lo:.2g}, {hi:.2g}]" if math.isfinite(r) else "n/a"


def model_table(res) -> str:
    dxi = float(res.delta_xi.mean())
    head = ("| ω | ω/Δ_ξ | σ_exact | " + " | ".join(label for _, label in SHOWN) + " |\n"
            + "|---" * (3 + len(SHOWN)) + "|\n")
    rows = []
    for k in range(res.sizes["omega"]):
        w = float(res.omega[k])
        rows.append(f"| {w:.3g} | {w / dxi:.2g} | {float(res.sigma_exact_mean[k]):.3g} | "
                    + " | ".join(fmt(res, n, k) for n, _ in SHOWN) + " |")
    slopes = ", ".join(f"{label} {float(res[f'slope_{n}']):.2f}" for n, label in SHOWN)
    est, ex = res.eig_estimate, res.eig_exact
    eig = float(np.nanmean(np.abs(est - ex) / np.abs(ex)))
    facts = (f"Δ_ξ = {dxi:.3g}, ξ (fit) = {float(res.xi.mean()):.3g}, "
             f"ν_LL/ν_exact = {float(res.nu_landscape.mean() / res.nu_exact.mean()):.3f}, "
             f"ν_basins/ν_LL = {float(res.nu_basins.mean() / res.nu_landscape.mean()):.2f}, "
             f"(1 + d/4) min V_u vs the 20 lowest exact eigenvalues: mean |relative "
             f"deviation| {eig:.3f}, percolating realizations: {int(res.percolating.sum())}")
    return (head + "\n".join(rows) + f"\n\nLog-log slopes: exact "
            f"{float(res.slope_exact):.2f}, {slopes}.\n\n{facts}.\n")


def regime_table(res) -> str:
    """Per bin: the regime (omega/Delta_xi, Mott length against the sample, exact pairs and
    effective realizations) beside sigma_ll, eq. 17, eq. 1 and the LL tunnelling part."""
    n = res.sizes["realization"]
    study = json.loads(res.attrs["study"])
    side = min(study["potential"]["shape"]) * float(np.min(study["grid"]["spacing"]))
    dxi = float(res.delta_xi.mean())
    mott = np.nanmean([float(x) * np.log(2 * float(d) / res.omega.values)
                       for x, d in zip(res.xi.values, res.delta_xi_mb.values, strict=True)],
                      axis=0)
    shown = [("ll", "σ_ll / exact"), ("eq17_default", "eq. 17 / exact"),
             ("mb", "eq. 1 / exact"), ("pairs_tunnelling", "LL tunnelling only / exact")]
    head = ("| ω | ω/Δ_ξ | Mott length R_ω | exact pairs per realization (eff. realizations) "
            "| σ_exact | " + " | ".join(label for _, label in shown) + " | box share |\n"
            + "|---" * (6 + len(shown)) + "|\n")
    rows = []
    pairs = res.n_pairs_exact.values.mean(axis=0)
    share = np.nanmean(res.pairs_box_share.values, axis=0)
    for k in range(res.sizes["omega"]):
        w = float(res.omega[k])
        mark = "" if bool(res.resolved[k]) else " (unresolved)"
        rows.append(f"| {w:.3g}{mark} | {w / dxi:.2g} | {mott[k]:.1f} | {pairs[k]:.0f} "
                    f"({float(res.n_effective_realizations[k]):.1f} of {n}) | "
                    f"{float(res.sigma_exact_mean[k]):.3g} | "
                    + " | ".join(fmt(res, name, k) for name, _ in shown)
                    + f" | {share[k]:.2f} |")
    facts = (f"Δ_ξ (landscape, eq. A14) = {dxi:.3g}, ξ (transfer matrix) = "
             f"{float(res.xi.mean()):.3g}, ν_LL/ν_exact = "
             f"{float(res.nu_landscape.mean() / res.nu_exact.mean()):.3f}, percolating "
             f"realizations: {int(res.percolating.sum())}; side {side:.3g}")
    return head + "\n".join(rows) + f"\n\n{facts}.\n"


def score_table(results) -> str:
    names = [f"eq17_{v}" for v in next(iter(results.values())).variant.values] + ["mb", "pairs"]
    head = "| curve | " + " | ".join(MODELS[m] for m in results) + " | mean |\n"
    head += "|---" * (len(results) + 2) + "|\n"
    rows = []
    for n in names:
        s = [float(r[f"score_{n}"]) for r in results.values()]
        rows.append(f"| {n} | " + " | ".join(f"{x:.2f}" for x in s)
                    + f" | {np.mean(s):.2f} |")
    return head + "\n".join(rows) + "\n"


def main() -> None:
    results = {}
    for m in MODELS:
        path = HERE / m / "validation.nc"
        if path.exists():
            results[m] = summarize(ms.read_netcdf(path))
    for m, res in results.items():
        print(f"### {MODELS[m]} ({res.sizes['realization']} realizations)\n")
        print(model_table(res))
    print("### Scores\n")
    print(score_table(results))
    for m, label in REGIME_MODELS.items():
        path = HERE / m / "validation.nc"
        if path.exists():
            res = summarize(ms.read_netcdf(path))
            print(f"### {label} ({res.sizes['realization']} realizations)\n")
            print(regime_table(res))


if __name__ == "__main__":
    main()
