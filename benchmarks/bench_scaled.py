"""Agmon work of the scaled landscape against N (issue 13, item 2).

Anderson disorder [0, 4] in 3D (most states extended; the scaled landscape W_u = (1 + d/4) V_u
still gives separated basins at E_F), E_F at the 0.02 quantile of W_u, the 32 frequencies of
``benchmarks/run.py``, the eq. 17 pipeline with ``effective="scaled"``. One size per process
(each prints one JSON line: sources, pairs, per-step seconds, and a second landscape solve
timed in the same process for the ratio):

    .venv/bin/python benchmarks/bench_scaled.py 64x64x64
    .venv/bin/python benchmarks/bench_scaled.py 128x128x128
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # the benchmark runner: its samples and frequencies
from mottscape.conductivity import run_pipeline
from mottscape.landscape import metric_landscape, solve_landscape

#: E_F at this quantile of W_u (band tail of the scaled landscape)
QUANTILE = 0.02


def measure(shape: tuple[int, ...], seed: int = 0) -> dict:
    V = bench.anderson(shape, seed, 4.0)
    land = solve_landscape(V)
    ef = float(np.quantile(metric_landscape(land, "scaled").effective_potential, QUANTILE))
    p = run_pipeline(V, ef, bench.omegas(), landscape=land, estimator="eq17",
                     effective="scaled")
    t0 = time.perf_counter()
    solve_landscape(V)
    t_land = time.perf_counter() - t0
    return {"shape": list(shape), "cells": V.size, "fermi_energy": ef,
            "sources": int(p.pairs.sources.size), "pairs": int(p.pairs.i.size),
            "landscape_s": t_land, "steps_s": dict(p.timings),
            "agmon_over_landscape": p.timings["agmon"] / t_land,
            "load_average": bench.load_average()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shape", type=bench.parse_shape, help="e.g. 64x64x64")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(json.dumps(measure(args.shape, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
