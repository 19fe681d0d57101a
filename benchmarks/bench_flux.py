"""Cost of the flux amplitude (``amplitude="flux"``) against Herring's Laplace estimate.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_flux.py

The whole pipeline with the pair model, ``amplitude="herring"`` and ``"flux"`` alternated on
the same sample, best of three each, in one process (the machine's load cancels in the
ratio): 2D block 256^2 with merged and per-basin boxes, 3D Anderson 20^3 with a box per basin.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import mottscape as ms

CASES = (
    ("2D block 256^2, merged boxes", lambda: ms.disorder.block((256, 256), block=4, width=4.0,
                                                                seed=3), 0.9,
     np.geomspace(5e-3, 0.27, 6), "merged"),
    ("2D block 256^2, a box per basin", lambda: ms.disorder.block((256, 256), block=4,
                                                                   width=4.0, seed=3), 0.9,
     np.geomspace(5e-3, 0.27, 6), "per_basin"),
    ("3D Anderson [0, 20] 20^3, a box per basin", lambda: ms.disorder.anderson(
        (20, 20, 20), width=20.0, seed=511), 4.5, np.geomspace(0.05, 1.0, 6), "per_basin"),
)


def main() -> None:
    warnings.simplefilter("ignore")
    print("| sample | herring (s) | flux (s) | flux / herring |\n|---|---|---|---|")
    for name, make, ef, w, boxes in CASES:
        V, best = make(), {}
        for _ in range(3):
            for amp in ("herring", "flux"):
                t0 = time.perf_counter()
                ms.run_pipeline(V, ef, w, pair_model=True, amplitude=amp, state_boxes=boxes)
                best[amp] = min(best.get(amp, np.inf), time.perf_counter() - t0)
        print(f"| {name} | {best['herring']:.2f} | {best['flux']:.2f} | "
              f"{best['flux'] / best['herring']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
