"""The pair model's time with its boxes padded by 10 and by 15 Agmon lengths (state_padding).

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_padding.py [2d] [2d512] [--repeats 2]

For each case of ``bench_pairs.py``, the whole pipeline with the pair model at padding 10
(the default until 2026-12-06) and 15 (the default since), alternated ``--repeats`` times in
one process after a warm-up run; prints each time and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import numpy as np

import mottscape as ms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pairs import alternated, case  # the same samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", default=["2d", "2d512"])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print("| case | padding 10 (s) | padding 15 (s) | ratio of medians |")
    print("|---|---|---|---|")
    for name in args.cases:
        sample, ef, omega = case(name)
        ms.run_pipeline(sample, ef, omega[:2], pair_model=True)  # compile the kernels
        runs = {f"{pad:g}": functools.partial(ms.run_pipeline, sample, ef, omega,
                                              pair_model=True, state_padding=pad)
                for pad in (10.0, 15.0)}
        times, _ = alternated(runs, args.repeats)
        a, b = (", ".join(f"{t:.2f}" for t in times[p]) for p in times)
        ratio = np.median(times["15"]) / np.median(times["10"])
        print(f"| {name} {sample.shape} | {a} | {b} | {ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
