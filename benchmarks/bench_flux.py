"""Cost of the flux amplitude (``amplitude="flux"``) against Herring's Laplace estimate.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_flux.py

The whole pipeline with the pair model, ``amplitude="herring"`` and ``"flux"`` alternated on
the same sample, best of three each, in one process (the machine's load cancels in the
ratio), on the samples of ``bench_pairs.py``: 2D block 256^2 with merged and per-basin boxes,
3D Anderson 20^3 with a box per basin.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import mottscape as ms
from bench_pairs import case

CASES = (("2d", "merged"), ("2d", "per_basin"), ("3d", "per_basin"))


def main() -> None:
    warnings.simplefilter("ignore")
    print("| sample | herring (s) | flux (s) | flux / herring |\n|---|---|---|---|")
    for name, boxes in CASES:
        sample, ef, w = case(name)
        best: dict[str, float] = {}
        for _ in range(3):
            for amp in ("herring", "flux"):
                t0 = time.perf_counter()
                ms.run_pipeline(sample, ef, w, pair_model=True, amplitude=amp, state_boxes=boxes)
                best[amp] = min(best.get(amp, np.inf), time.perf_counter() - t0)
        print(f"| {name}, {boxes} | {best['herring']:.2f} | {best['flux']:.2f} | "
              f"{best['flux'] / best['herring']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
