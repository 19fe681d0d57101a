"""The compiled Agmon kernel alone (``march_pairs``, one thread) on the pipeline's inputs.

For tuning the kernel: the pipeline table's samples (``run.py``: Anderson potentials, E_F at
the 10 % quantile of V_u, the 32 frequencies of the table) are built once and their kernel
inputs (floored metric, labels, sources, bounds) cached as ``.npz``; each repeat then times
only the searches, in batches of 64 sources as the pipeline runs them, and the md5 of the
pairs found tells whether a kernel change moved any distance. Alternate two trees (e.g. a
``git worktree`` of the base) in one session and compare the times of the same run: the
machine is shared and absolute times move 2-3x.

    .venv/bin/python benchmarks/bench_agmon_kernel.py 2048x2048 192x192x192 [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

from mottscape import _agmon_kernels as kernels
from mottscape.agmon import _kernel_labels, _Scratch, floored_metric
from mottscape.conductivity import run_pipeline
from mottscape.landscape import solve_landscape
from run import PIPELINE_QUANTILE, PIPELINE_WIDTH, anderson, fermi_energy_for, omegas, parse_shape

BATCH = 64


def kernel_inputs(shape: tuple[int, ...], cache: Path) -> dict[str, np.ndarray]:
    """The kernel's inputs on the pipeline sample of ``shape`` (seed 0), cached."""
    path = cache / f"kernel_inputs_{'x'.join(map(str, shape))}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    d = len(shape)
    land = solve_landscape(anderson(shape, 0, PIPELINE_WIDTH[d]))
    ef = fermi_energy_for(land, PIPELINE_QUANTILE[d])
    p = run_pipeline(land.potential, ef, omegas(), estimator="eq17", landscape=land)
    metric = land.agmon_metric(ef)
    src = np.asarray(p.sources)
    out = dict(w=np.ascontiguousarray(floored_metric(metric, land.grid, out=metric)).ravel(),
               labels=_kernel_labels(p.basins.labels, p.basins.n), sources=src,
               bounds=np.broadcast_to(np.asarray(p.pairs.bound, float), src.shape).copy(),
               n_basins=np.int64(p.basins.n))
    np.savez(path, **out)
    return out


def time_kernel(shape: tuple[int, ...], cache: Path, repeats: int) -> None:
    """Print the time of each repeat and the md5 of the pairs found."""
    z = kernel_inputs(shape, cache)
    nb = int(z["n_basins"])
    wanted = np.zeros(nb + 1, np.bool_)
    wanted[z["sources"] + 1] = True
    cells, start = kernels.basin_cells(z["labels"], nb)
    shape3 = np.ones(3, np.int64)
    shape3[3 - len(shape):] = shape
    scratch = _Scratch(z["w"].size)
    times, found = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        found = []
        for k in range(0, z["sources"].size, BATCH):
            *got, _low = kernels.march_pairs(
                z["w"], z["labels"], cells, start, z["sources"][k:k + BATCH],
                z["bounds"][k:k + BATCH], wanted, shape3, False, np.ones(3), 2,
                *scratch.arrays)
            found.append(got)
        times.append(time.perf_counter() - t0)
    digest = hashlib.md5(b"".join(np.concatenate([g[i] for g in found]).tobytes()
                                  for i in range(3))).hexdigest()
    print(f"{'x'.join(map(str, shape))}: {z['sources'].size} sources, "
          f"{sum(g[0].size for g in found)} pairs, times "
          f"{' '.join(f'{t:.3f}' for t in times)} s, md5 {digest}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shapes", nargs="+", type=parse_shape, help="e.g. 2048x2048 192x192x192")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cache", type=Path,
                    default=Path(tempfile.gettempdir()) / "mottscape_kernel_inputs")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    for shape in args.shapes:
        time_kernel(shape, args.cache, args.repeats)


if __name__ == "__main__":
    main()
