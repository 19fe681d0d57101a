"""Peak memory of the pair model over the eq. 17 pipeline (``grid.BYTES_PER_POINT_PAIRS``).

The 2D case of ``bench_pairs.py`` (block disorder, 4x4 blocks of uniform [0, 4] values, seed
3, E_F = 0.9, 6 frequencies over 5e-3..0.2) at each side given. Every (side, estimator) runs
in a fresh process (a peak is a process's whole history): a small warm-up study compiles the
kernels, then the study is run once and ``VmHWM`` (Linux) read. Prints, per side, both peaks
and the pair model's extra bytes per point.

    .venv/bin/python benchmarks/bench_pairs_memory.py 256 512 1024
"""

from __future__ import annotations

import subprocess
import sys

# The child builds the sample itself rather than importing bench_pairs.case or
# bench_memory.status: those modules import the exact reference (MKL) and the benchmark
# runner, which the eq. 17 pipeline never loads, and would raise its baseline peak by ~40 MiB.
CHILD = """
import numpy as np
import mottscape as ms
from mottscape.sample import make_sample

def peak():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise KeyError("VmHWM")

side, estimator = {side}, "{estimator}"
w = np.geomspace(5e-3, 0.2, 6)
warm = make_sample(ms.disorder.block((64, 64), block=4, width=4.0, seed=1))
ms.run_pipeline(warm, 0.9, w[:2], estimator=estimator)
s = make_sample(ms.disorder.block((side, side), block=4, width=4.0, seed=3))
ms.run_pipeline(s, 0.9, w, estimator=estimator)
print(peak())
"""


def peak_bytes(side: int, estimator: str) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD.format(side=side, estimator=estimator)],
                         check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1])


def main(sides: list[int]) -> None:
    print("| 2D block sample | eq. 17 pipeline peak (MiB) | with the pair model (MiB) | "
          "pair model, bytes per point |")
    print("|---|---|---|---|")
    for side in sides:
        eq17, pairs = peak_bytes(side, "eq17"), peak_bytes(side, "pairs")
        print(f"| {side}² | {eq17 / 2**20:.0f} | {pairs / 2**20:.0f} | "
              f"{(pairs - eq17) / side**2:,.0f} |", flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [256, 512])
