"""Print the Markdown tables of docs/validation.md from the saved validation runs.

Usage: python docs/validation/report.py  (from the repository root)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

import mottscape as ms
from mottscape.validation import summarize

HERE = Path(__file__).parent
MODELS = {"block_1d": "1D block", "block_2d": "2D block", "gaussian_1d": "1D Gaussian"}
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


if __name__ == "__main__":
    main()
