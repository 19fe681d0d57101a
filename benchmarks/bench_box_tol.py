"""The pair model's box solves at ARPACK's default accuracy against ``BOX_LANCZOS_TOL``.

Usage (from the repository root)::

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_box_tol.py [2d] [2d512] [--repeats 3]

For each case of ``bench_pairs.py``, times the whole pipeline with the pair model with the
boxes' Lanczos tolerance at 0 (machine precision, ARPACK's default) and at
``box_solve.BOX_LANCZOS_TOL``, alternated ``--repeats`` times in one process (medians; the
ratio cancels the machine's load), and prints the largest relative change of sigma_pairs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import mottscape as ms
from mottscape import box_solve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pairs import alternated, case, largest_change  # the same samples


def sigma_at(sample, ef, omega, tol: float):
    """sigma_pairs of one pipeline run with the box tolerance ``tol`` (a function)."""
    def run() -> np.ndarray:
        box_solve.BOX_LANCZOS_TOL = tol
        res = ms.run_pipeline(sample, ef, omega, pair_model=True)
        assert res.pair_model is not None
        return np.asarray(res.pair_model.sigma)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", default=["2d", "2d512"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    tuned = box_solve.BOX_LANCZOS_TOL
    print(f"| case | tol 0 (s) | tol {tuned:g} (s) | ratio | max rel. change of sigma_pairs |")
    print("|---|---|---|---|---|")
    for name in args.cases:
        sample, ef, omega = case(name)
        sigma_at(sample, ef, omega[:2], tuned)()  # compile the kernels
        times, sigma = alternated({"0": sigma_at(sample, ef, omega, 0.0),
                                   "tuned": sigma_at(sample, ef, omega, tuned)}, args.repeats)
        change = largest_change(sigma["0"], sigma["tuned"])
        t0, t1 = np.median(times["0"]), np.median(times["tuned"])
        print(f"| {name} {sample.shape} | {t0:.2f} | {t1:.2f} | {t1 / t0:.3f} | {change:.1e} |",
              flush=True)
    box_solve.BOX_LANCZOS_TOL = tuned


if __name__ == "__main__":
    main()
