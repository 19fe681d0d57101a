"""Table formatters of docs/validation.md.

Used by ``regenerate.py``, which writes the tables into docs/validation.md. Run as a script
(``python docs/validation/report.py``, from the repository root) it prints every generated
table of docs/validation.md from the saved runs, and writes nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from mottscape.validation import effective_realizations, resolved_bins

HERE = Path(__file__).parent
MODELS = {"block_1d": "1D block", "block_2d": "2D block", "gaussian_1d": "1D Gaussian"}
#: Models reported with their regime per bin (resolved bins, Mott length against the sample,
#: the LL tunnelling part alone): the 3D validation of 2026-12-05 and the 512^2 2D field.
REGIME_MODELS = {"anderson_3d": "3D Anderson box [0, 20], 24³",
                 "gaussian_3d": "3D Gaussian field, 32³",
                 "gaussian_2d_512": "2D Gaussian field, 512²",
                 "anderson_3d_48": "3D Anderson box [0, 20], 48³",
                 "gaussian_3d_48": "3D Gaussian field, 48³"}
SHOWN = [("eq17_default", "LL eq. 17 (paper)"), ("eq17_effective_scaled", "LL eq. 17, scaled W_u"),
         ("mb", "MB (eq. 1)"), ("pairs", "pair model")]
#: The columns of the pair-model section (runs ``pairs/<model>``, :func:`pairs_table`).
PAIR_SHOWN = [("eq17_default", "σ_LL (eq. 17, paper)"),
              ("eq17_effective_scaled", "σ_LL scaled W_u"), ("mb", "σ_MB (eq. 1)"),
              ("pairs", "σ_pairs (default)"), ("pairs_tunnelling", "σ_pairs, all t_ab")]


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


def pairs_table(res) -> str:
    """The pair-model section's table: exact pairs, ratios of :data:`PAIR_SHOWN`, box share."""
    dxi = float(res.delta_xi.mean())
    share = res["pairs_box_share"].mean("realization").values
    neff = effective_realizations(res)
    ok = resolved_bins(res)
    head = ("| ω | ω/Δ_ξ | σ_exact | exact pairs (eff. realizations) | "
            + " | ".join(label for _, label in PAIR_SHOWN) + " | box share of σ_pairs |\n"
            + "|---" * (5 + len(PAIR_SHOWN)) + "|\n")
    rows = []
    for k in range(res.sizes["omega"]):
        w = float(res.omega[k])
        mark = "" if ok[k] else " (unresolved)"
        rows.append(f"| {w:.3g}{mark} | {w / dxi:.2g} | {float(res.sigma_exact_mean[k]):.3g} | "
                    f"{int(res.n_pairs_exact.values.sum(axis=0)[k])} ({neff[k]:.1f}) | "
                    + " | ".join(fmt(res, n, k) for n, _ in PAIR_SHOWN)
                    + f" | {share[k]:.2f} |")
    return head + "\n".join(rows) + "\n"


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
    """Print every generated table of docs/validation.md (``regenerate.TABLES``)."""
    import runpy

    regenerate = runpy.run_path(str(HERE / "regenerate.py"), run_name="validation_regenerate")
    for name, text in regenerate["render"](list(regenerate["TABLES"])).items():
        print(f"<!-- table:{name} -->\n\n{text}")


if __name__ == "__main__":
    main()
