"""Ensemble engine benchmark (issue 9): speed-up of 2 local dask workers over 1, and overhead.

    python benchmarks/bench_ensemble.py [--realizations 16] [--size 512] [--out FILE.json]

Runs the same study (2D block potential, wells of 4x4 sites, box [0, 4], E_F = 0.6) with
``workers=1`` (in this process: numba kernels on every core, BLAS on one thread),
``workers=2`` (a local cluster started by the run, start-up included) and on warm local
clusters of 1 and of 2 single-threaded workers (started and warmed beforehand, as a
long-lived cluster is: their ratio is the engine's scaling), checks that all give
bit-identical sigma, and reports the speed-ups as ratios measured in one run.
The engine's overhead per task is measured with a task that does nothing (a 0-d Dataset):
(wall time on the cluster) / (number of tasks), cluster start excluded.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

import mottscape as ms
from mottscape.runner import run_tasks


def _study(size: int, realizations: int):
    return ms.study_from_dict({
        "potential": {"model": "block", "shape": [size, size], "seed": 7, "block": 4,
                      "width": 4.0},
        "conductivity": {"fermi_energy": 0.6, "omega_min": 1e-2, "omega_max": 1e-1,
                         "n_omega": 12},
        "ensemble": {"realizations": realizations},
    })


def _nothing(r: int) -> xr.Dataset:
    return xr.Dataset({"r": ((), r)})


def overhead_per_task(n_tasks: int = 200) -> dict[str, float]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: None)  # workers up
        t0 = time.perf_counter()
        report = run_tasks(functools.partial(_nothing), list(range(n_tasks)),
                           scheduler=cluster.scheduler_address)
        wall = time.perf_counter() - t0
    assert len(report.results) == n_tasks
    return {"tasks": n_tasks, "seconds_per_task": wall / n_tasks}


def _on_warm_cluster(study, n: int, n_workers: int):
    """Wall time of the ensemble on a local cluster started and warmed beforehand."""
    from distributed import Client, LocalCluster

    from mottscape.runner import WORKER_ENV

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, env=dict(WORKER_ENV)) as cluster, \
            Client(cluster) as client:
        warm = _study(64, 2 * n_workers)  # imports and numba caches loaded in each worker
        ms.run_ensemble(warm, 2 * n_workers, scheduler=cluster.scheduler_address)
        client.run(lambda: None)
        t0 = time.perf_counter()
        result = ms.run_ensemble(study, n, scheduler=cluster.scheduler_address)
        return time.perf_counter() - t0, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--realizations", type=int, default=16)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    study = _study(args.size, args.realizations)
    n = args.realizations
    ms.ac_conductivity(ms.disorder.block((64, 64), block=4, width=4.0, seed=0), 0.6, [0.05])
    times, results = {}, {}
    t0 = time.perf_counter()
    results[1] = ms.run_ensemble(study, n, workers=1)
    times["1 (in-process)"] = time.perf_counter() - t0
    print(f"{n} realizations of {args.size}^2 in-process: {times['1 (in-process)']:.1f} s",
          flush=True)
    t0 = time.perf_counter()
    results[2] = ms.run_ensemble(study, n, workers=2)
    times["2 (cluster started by the run)"] = time.perf_counter() - t0
    print(f"... on 2 workers, cluster started by the run: "
          f"{times['2 (cluster started by the run)']:.1f} s", flush=True)
    warm_results = {}
    for n_workers in (1, 2):
        key = f"{n_workers} (warm cluster)"
        times[key], warm_results[n_workers] = _on_warm_cluster(study, n, n_workers)
        print(f"... on {n_workers} worker(s) of a warm cluster: {times[key]:.1f} s", flush=True)
    identical = all(bool(np.array_equal(results[1].sigma_ll.values, w.sigma_ll.values))
                    for w in warm_results.values())
    identical = identical and bool(np.array_equal(results[1].sigma_ll.values,
                                                  results[2].sigma_ll.values))
    over = overhead_per_task()
    res = {
        "command": " ".join([os.path.basename(sys.argv[0]), *(argv or sys.argv[1:])]),
        "realizations": n, "size": args.size, "seconds": times,
        "speedup_warm_2_over_1": times["1 (in-process)"] / times["2 (warm cluster)"],
        "engine_scaling_2_over_1_worker": times["1 (warm cluster)"] / times["2 (warm cluster)"],
        "speedup_cold_2_over_1": times["1 (in-process)"]
        / times["2 (cluster started by the run)"],
        "bit_identical": identical,
        "engine_overhead_seconds_per_task": over["seconds_per_task"],
        "load_average": os.getloadavg(),
    }
    print(json.dumps(res, indent=1))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
