"""The pair model's time with and without the widening of boxes too small for their pairs.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_widen.py [--realizations 16] [--repeats 2]

The realizations of the built-in default study (2D blocks 192^2, E_F = 0.6, 12 frequencies),
each through ``ac_conductivity`` with ``mottscape.pairs.WIDEN_ROUNDS`` at 0 (no box solved
again) and at its default, alternated ``--repeats`` times in one process after a warm-up
run (one thread of the machine's load on each). Prints the total time of the realizations
per setting, the ratio of the medians, and the basins widened.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

import mottscape as ms
import mottscape.pairs as pairs
from mottscape.config import default_study


def _total(potentials: list[np.ndarray], rounds: int) -> tuple[float, int]:
    """Seconds for every realization at ``rounds`` widening rounds, and the basins widened."""
    pairs.WIDEN_ROUNDS = rounds
    widened = 0
    start = time.perf_counter()
    for V in potentials:
        ds = ms.ac_conductivity(V, 0.6, np.geomspace(1e-2, 1e-1, 12))
        widened += int(ds.pair_model_widened_basins)
    return time.perf_counter() - start, widened


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realizations", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # the regime notes are not timed
    study = default_study()
    potentials = [study.make_potential(r) for r in range(args.realizations)]
    default = pairs.WIDEN_ROUNDS
    _total(potentials[:1], default)  # compile the kernels
    times: dict[int, list[float]] = {0: [], default: []}
    widened = 0
    for _ in range(args.repeats):
        for rounds in times:
            t, w = _total(potentials, rounds)
            times[rounds].append(t)
            widened = max(widened, w)
    pairs.WIDEN_ROUNDS = default
    print("| realizations | no widening (s) | widening, default (s) | ratio of medians | "
          "basins widened |")
    print("|---|---|---|---|---|")
    t0, t1 = statistics.median(times[0]), statistics.median(times[default])
    print(f"| {args.realizations} | {', '.join(f'{t:.1f}' for t in times[0])} | "
          f"{', '.join(f'{t:.1f}' for t in times[default])} | {t1 / t0:.2f} | {widened} |")


if __name__ == "__main__":
    main()
