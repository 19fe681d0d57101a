"""Time and resident memory per step of one eq. 17 pipeline run (issue 13, item 3).

Runs the case of ``benchmarks/run.py --sections pipeline`` (Anderson disorder, [0, 4] in 2D
and [0, 20] in 3D, E_F at the 0.1 quantile of V_u from a first landscape solve, after a
warm-up study in the same process) once, while a thread samples the resident set
(``VmRSS`` of ``/proc/self/status``, Linux) every 5 ms and records the step running, read
from the step boundaries of :class:`mottscape.pipeline._Timer`. Prints one JSON line: seconds
per step, peak resident set per step, ``VmHWM``, and the run's counts.

    .venv/bin/python benchmarks/bench_memory.py 512x512x512 --omegas 8

Run one size per process (the peak of a process is its whole history).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # the benchmark runner: its samples, frequencies and E_F rule


def status(key: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


class StepSampler:
    """Peak resident set per pipeline step, sampled by a thread."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.step = "setup"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            step, rss = self.step, status("VmRSS")
            self.peaks[step] = max(self.peaks.get(step, 0), rss)
            time.sleep(self.period)

    def install(self) -> None:
        """Record the step names of the pipeline's timer, and start sampling."""
        import mottscape.pipeline as pipeline

        timed = pipeline._Timer.step
        sampler = self

        @contextmanager
        def step(timer, name):
            sampler.step = name
            with timed(timer, name):
                yield
            sampler.step = "between steps"

        pipeline._Timer.step = step
        self._thread.start()

    def stop(self) -> None:
        time.sleep(2 * self.period)
        self._stop.set()
        self._thread.join()


def measure(shape: tuple[int, ...], n_omega: int, seed: int = 0) -> dict:
    """One timed and sampled run of the eq. 17 pipeline on an Anderson sample of ``shape``."""
    from mottscape.conductivity import run_pipeline
    from mottscape.landscape import solve_landscape

    d = len(shape)
    width, quantile = bench.PIPELINE_WIDTH[d], bench.PIPELINE_QUANTILE[d]
    omega = np.geomspace(*bench.OMEGA_RANGE, n_omega)
    warm = bench.anderson((256,) * d if d < 3 else (40,) * 3, seed, width)
    lw = solve_landscape(warm)
    run_pipeline(warm, bench.fermi_energy_for(lw, quantile), omega, landscape=lw,
                 estimator="eq17")
    del warm, lw
    gc.collect()
    interpreter = status("VmRSS")
    V = bench.anderson(shape, seed, width)
    t = time.perf_counter()
    land = solve_landscape(V)
    ef_solve = time.perf_counter() - t
    ef = bench.fermi_energy_for(land, quantile)
    del land
    gc.collect()
    start = status("VmRSS")
    sampler = StepSampler()
    sampler.step = "sample"  # make_sample, before the first timed step
    sampler.install()
    t = time.perf_counter()
    p = run_pipeline(V, ef, omega, estimator="eq17")
    total = time.perf_counter() - t
    sampler.step = "after"
    sampler.stop()
    n = V.size
    return {"shape": list(shape), "cells": n, "omegas": n_omega, "fermi_energy": ef,
            "total_s": total, "steps_s": dict(p.timings), "ef_solve_s": ef_solve,
            "interpreter_bytes": interpreter, "start_bytes": start,
            "peak_bytes": max(sampler.peaks.values()), "vmhwm_bytes": status("VmHWM"),
            "step_bytes_per_cell_over_start": {k: (v - start) / n
                                              for k, v in sampler.peaks.items()},
            "bytes_per_cell": max(sampler.peaks.values()) / n,
            "basins": int(p.basins.n), "sources": int(p.sources.size),
            "pairs": int(p.pairs.i.size), "percolating": bool(p.basins.percolating),
            "solver_iterations": int(p.landscape.iterations)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", help="e.g. 256x256x256 or 2048x2048")
    parser.add_argument("--omegas", type=int, default=8, help="frequencies over 1e-3..1e-1")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(bench.parse_shape(args.shape), args.omegas, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
