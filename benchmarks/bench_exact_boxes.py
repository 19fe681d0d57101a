"""Time the overlapping-box exact reference (method="boxes") against a whole-sample solver.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/bench_exact_boxes.py compare L W EF [padding core]
        # boxes and global shift-invert on one L^3 Anderson sample; agreement per bin
    PYTHONPATH=src python benchmarks/bench_exact_boxes.py boxes L W EF [padding core]
        # boxes alone on L^3 (the sizes global solvers cannot reach)

Both run with one BLAS thread (threadpoolctl), on the hbar*omega bins
``geomspace(1e-3, 0.5, 12)`` (lattice units), seed 1.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import mottscape as ms
from mottscape.exact import kubo_greenwood
from mottscape.sample import make_sample

EDGES = np.geomspace(1e-3, 0.5, 12)


def timed(sample, ef, **kw):
    t0 = time.perf_counter()
    ds = kubo_greenwood(sample, ef, EDGES, **kw)
    return ds, time.perf_counter() - t0


def report_boxes(ds, seconds):
    keys = ("n_boxes", "box_core", "box_padding", "box_max_padding", "box_retries",
            "box_max_residual", "box_duplicates", "box_unconverged", "count_seconds",
            "solve_seconds", "pairs_seconds", "box_seconds_max")
    print(f"boxes: {seconds:.1f} s, {int(ds.n_states)} window states")
    print("  " + ", ".join(f"{k}={ds.attrs.get(k)}" for k in keys))


def main(argv):
    mode, L, W, ef = argv[0], int(argv[1]), float(argv[2]), float(argv[3])
    padding = int(argv[4]) if len(argv) > 4 else 6
    core = int(argv[5]) if len(argv) > 5 else 8
    sample = make_sample(ms.disorder.anderson((L, L, L), width=W, seed=1))
    print(f"L={L} ({L ** 3} cells), W={W}, E_F={ef}, padding={padding}, core={core}")
    with threadpool_limits(1):
        b, tb = timed(sample, ef, method="boxes", padding=padding, core=core)
        report_boxes(b, tb)
        far = b.sigma_beyond_padding.values / np.maximum(b.sigma.values, 1e-300)
        if mode == "compare":
            f, tf = timed(sample, ef, method="shift-invert")
            print(f"shift-invert (whole sample): {tf:.1f} s; boxes speed-up {tf / tb:.2f}x")
            ref = f.sigma.values
            ok = (ref > 1e-5 * ref.max()) & (far < 1e-3)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.abs(b.sigma.values - ref) / ref
            print(f"  resolved bins {int(ok.sum())} of {int((ref > 0).sum())}, largest relative "
                  f"difference there {rel[ok].max() if ok.any() else float('nan'):.1e}")
    print("  hbar*omega   sigma      n_pairs  far share")
    for k in range(b.omega.size):
        print(f"  {float(b.omega[k]):.3e}  {float(b.sigma[k]):.3e}  {int(b.n_pairs[k]):7d}  "
              f"{far[k]:.1e}")


if __name__ == "__main__":
    main(sys.argv[1:])
