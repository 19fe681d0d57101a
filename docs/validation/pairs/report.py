"""Print the pair-model validation tables of docs/validation.md from the saved runs.

Usage: .venv/bin/python docs/validation/pairs/report.py  (after regenerate.py)
"""

from __future__ import annotations

import math
from pathlib import Path

import mottscape as ms
from mottscape.validation import effective_realizations, resolved_bins, summarize

HERE = Path(__file__).parent
MODELS = {"block_1d": ("1D block", "held out"), "gaussian_1d": ("1D Gaussian", "held out"),
          "block_2d": ("2D block", "training model, other samples"),
          "gaussian_2d": ("2D Gaussian field", "held out"),
          "alloy_2d": ("2D binary alloy", "held out")}
SHOWN = [("eq17_default", "σ_LL (eq. 17, paper)"), ("eq17_effective_scaled", "σ_LL scaled W_u"),
         ("mb", "σ_MB (eq. 1)"), ("pairs", "σ_pairs (default)"),
         ("pairs_tunnelling", "σ_pairs, all t_ab")]


def fmt(res, name, k):
    r, lo, hi = (float(res[f"ratio_{name}{s}"][k]) for s in ("", "_lo", "_hi"))
    return f"{r:.2g} [{lo:.2g}, {hi:.2g}]" if math.isfinite(r) else "n/a"


def table(res) -> str:
    dxi = float(res.delta_xi.mean())
    share = res["pairs_box_share"].mean("realization").values
    neff = effective_realizations(res)
    ok = resolved_bins(res)
    head = ("| ω | ω/Δ_ξ | σ_exact | exact pairs (eff. realizations) | "
            + " | ".join(label for _, label in SHOWN) + " | box share of σ_pairs |\n"
            + "|---" * (5 + len(SHOWN)) + "|\n")
    rows = []
    for k in range(res.sizes["omega"]):
        w = float(res.omega[k])
        mark = "" if ok[k] else " (unresolved)"
        rows.append(f"| {w:.3g}{mark} | {w / dxi:.2g} | {float(res.sigma_exact_mean[k]):.3g} | "
                    f"{int(res.n_pairs_exact.values.sum(axis=0)[k])} ({neff[k]:.1f}) | "
                    + " | ".join(fmt(res, n, k) for n, _ in SHOWN)
                    + f" | {share[k]:.2f} |")
    return head + "\n".join(rows) + "\n"


def main() -> None:
    for m, (label, role) in MODELS.items():
        path = HERE / m / "validation.nc"
        if not path.exists():
            continue
        res = summarize(ms.read_netcdf(path))
        print(f"### {label} ({role}; {res.sizes['realization']} realizations)\n")
        print(table(res))


if __name__ == "__main__":
    main()
