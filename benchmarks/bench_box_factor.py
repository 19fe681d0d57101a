"""The pair model's box factorisations: MKL's iterative refinement and the PARDISO threshold.

Usage (from the repository root)::

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_box_factor.py [2d512] [3d] \
        [exact2d] [--repeats 2]

Settings, alternated ``--repeats`` times in one process after a warm-up (medians; ratios to
the first cancel the machine's load):

``before``
    MKL's default two steps of iterative refinement per PARDISO solve, boxes of >= 2000
    cells on PARDISO (the tree before 2026-12-06, ninth session);
``no-refinement``
    no refinement on an unperturbed factor (``exact._factor._without_refinement``);
``now``
    that, and boxes of >= ``box_solve.BOX_PARDISO_MIN_ROWS`` cells on PARDISO;
``superlu-boxes``
    that, and SuperLU for every box.

Cases: ``2d512`` and ``3d`` run the whole pipeline with the pair model on the samples of
``bench_pairs.py`` (``3d``: the 20^3 Anderson sample with a box per basin, whose boxes of
2-10 thousand cells straddle the thresholds); ``exact2d`` runs ``kubo_greenwood`` on the
256^2 block sample of ``bench_pairs.py`` (only the refinement applies to it). Prints the
times, their ratios and the largest relative change of sigma against ``before``. Needs
PARDISO (``pip install mottscape[mkl]``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import mottscape as ms
from mottscape import box_solve
from mottscape.exact import _factor, kubo_greenwood
from mottscape.pairs import omega_edges

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pairs import alternated, case, largest_change  # the same samples

_NO_REFINEMENT = _factor._without_refinement
_NOW = box_solve.BOX_PARDISO_MIN_ROWS
SETTINGS = {  # name: (refinement, smallest box on PARDISO)
    "before": (True, 2000),
    "no-refinement": (False, 2000),
    "now": (False, _NOW),
    "superlu-boxes": (False, 1 << 62),
}


def computation(name: str):
    """The computation of one case: a function returning sigma."""
    if name == "exact2d":
        s, ef, w = case("2d")
        return lambda: np.asarray(kubo_greenwood(s, ef, omega_edges(w)).sigma)
    s, ef, w = case(name)
    boxes = "per_basin" if name == "3d" else "merged"
    return lambda: np.asarray(ms.run_pipeline(s, ef, w, pair_model=True,
                                              state_boxes=boxes).pair_model.sigma)


def under(f, setting: str):
    """``f`` run under one of :data:`SETTINGS` (a function returning sigma)."""
    refine, rows = SETTINGS[setting]

    def run() -> np.ndarray:
        _factor._without_refinement = (lambda iparm: None) if refine else _NO_REFINEMENT
        box_solve.BOX_PARDISO_MIN_ROWS = rows
        try:
            return f()
        finally:
            _factor._without_refinement = _NO_REFINEMENT
            box_solve.BOX_PARDISO_MIN_ROWS = _NOW
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", default=["2d512", "3d", "exact2d"])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    if _factor.factor_backend() != "pardiso":
        sys.exit("PARDISO does not load here: pip install mottscape[mkl]")
    print("| case | setting | times (s) | median / before | largest relative change of sigma |")
    print("|---|---|---|---|---|")
    for name in args.cases:
        f = computation(name)
        f()  # warm-up: numba kernels, PARDISO handles
        settings = ["before", "no-refinement"] if name == "exact2d" else list(SETTINGS)
        times, sig = alternated({k: under(f, k) for k in settings}, args.repeats)
        for k in settings:
            change = largest_change(sig["before"], sig[k])
            ratio = np.median(times[k]) / np.median(times["before"])
            print(f"| {name} | {k} | {', '.join(f'{t:.2f}' for t in times[k])} | "
                  f"{ratio:.2f} | {change:.1e} |", flush=True)


if __name__ == "__main__":
    main()
