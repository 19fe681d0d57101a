"""Benchmark of the landscape solve H u = 1 (eq. 2): mottscape's matrix-free solvers against
scipy (CSR assembly + Jacobi-CG) and pyamg (smoothed aggregation), measured in the same run.

Run from the repository root::

    .venv/bin/python benchmarks/bench_landscape.py            # full sizes (minutes)
    .venv/bin/python benchmarks/bench_landscape.py --quick    # CI-sized check that it works

Cases (issue 4): Anderson box disorder [0, 4] at unit spacing on 2D 1024^2, 2048^2 and 3D
128^3, 256^3, and a smooth Gaussian-correlated field on 2D 1024^2 at spacing 0.1 with 10 cells
per correlation length (FFT-filtered white noise, shifted to min V = 0 as ``solve_landscape``
does). For each case the table gives the median of ``--repeats`` solves of mottscape's
``"auto"`` choice (numba compile time excluded by a warm-up, reported separately), the other
mottscape method, the baselines, the memory-traffic floor of the algorithm that ran
(bytes it streams per iteration x iterations / measured copy bandwidth), and the peak memory
of the mottscape solve (tracemalloc, bytes per grid point, inputs excluded). JSON goes to
``benchmarks/results/landscape.json`` (``--out`` to change).

The machine may be shared: every comparison is a ratio measured in the same run, and the load
average is recorded with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla

from mottscape.hamiltonian import build_hamiltonian
from mottscape.solvers import choose_method, estimate_cg_iterations, solve_stencil
from run import (  # one baseline and traffic model for both runners (benchmarks/run.py)
    copy_bandwidth,
    kron_csr,
    traffic_bytes,
)

ROOT = Path(__file__).resolve().parent
TOL = 1e-10

FULL_CASES = [
    ("anderson-2d-1024", "anderson", (1024, 1024), 1.0),
    ("anderson-2d-2048", "anderson", (2048, 2048), 1.0),
    ("anderson-3d-128", "anderson", (128, 128, 128), 1.0),
    ("anderson-3d-256", "anderson", (256, 256, 256), 1.0),
    ("smooth-2d-1024", "smooth", (1024, 1024), 0.1),
]
QUICK_CASES = [
    ("anderson-2d-256", "anderson", (256, 256), 1.0),
    ("anderson-3d-48", "anderson", (48, 48, 48), 1.0),
    ("smooth-2d-256", "smooth", (256, 256), 0.1),
]
#: pyamg's setup on 256^3 takes minutes and several GiB; run it only with --pyamg-all.
PYAMG_MAX_POINTS = 2048 * 2048


# ------------------------------------------------------------------------ inputs
def make_potential(kind: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Anderson box [0, 4], or a unit-variance Gaussian field (10 cells per correlation
    length, Gaussian spectral filter of FFT white noise) shifted to min 0."""
    rng = np.random.default_rng(seed)
    if kind == "anderson":
        return rng.uniform(0.0, 4.0, shape)
    noise = rng.normal(size=shape)
    corr_cells = 10.0
    k2 = sum(np.meshgrid(*[np.fft.fftfreq(n) ** 2 for n in shape], indexing="ij",
                         sparse=True))
    kernel = np.exp(-0.5 * k2[..., : shape[-1] // 2 + 1] * (2 * np.pi * corr_cells) ** 2)
    field = np.fft.irfftn(np.fft.rfftn(noise) * kernel, s=shape, axes=tuple(range(len(shape))))
    field /= field.std()
    return field - field.min()


# ------------------------------------------------------------------------ measurements
def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def peak_memory(fn) -> float:
    """Peak bytes allocated (tracemalloc: numpy buffers included) while ``fn`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return float(peak - base)


def compile_time_cold() -> float:
    """Wall time of a fresh interpreter that compiles every kernel into an empty numba cache."""
    code = (
        "import time; t=time.perf_counter();"
        f"import sys; sys.path.insert(0, {str(ROOT)!r});"
        "from bench_landscape import warm_up; warm_up();"
        "print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, NUMBA_CACHE_DIR=tmp)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        wall = time.perf_counter() - t0
    try:
        return float(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return wall


def warm_up() -> float:
    """Call every kernel once on tiny problems (compiles, or loads the numba cache)."""
    t = time.perf_counter()
    rng = np.random.default_rng(0)
    for shape in [(40, 40), (12, 12, 12)]:
        for mass in (1.0, rng.uniform(0.5, 2.0, shape)):
            ham = build_hamiltonian(rng.uniform(0.0, 4.0, shape), mass=mass)
            solve_stencil(ham, method="cg")
            solve_stencil(ham, method="mg")
    # a level big enough for the multi-threaded path of the multigrid kernels
    ham = build_hamiltonian(rng.uniform(0.0, 4.0, (300, 300)), spacing=0.1)
    solve_stencil(ham, method="mg")
    return time.perf_counter() - t


# ------------------------------------------------------------------------ one case
def run_case(name, kind, shape, spacing, args, bandwidth) -> dict:
    n = int(np.prod(shape))
    print(f"\n== {name}: {kind}, shape {shape}, spacing {spacing}, N = {n:,}", flush=True)
    V = make_potential(kind, shape, seed=args.seed)
    t = time.perf_counter()
    ham = build_hamiltonian(V, spacing=spacing)
    t_build = time.perf_counter() - t
    auto = choose_method(ham, TOL)
    other = "mg" if auto == "cg" else "cg"
    row: dict = {"case": name, "kind": kind, "shape": list(shape), "spacing": spacing,
                 "points": n, "build_hamiltonian_s": t_build, "auto_method": auto,
                 "cg_estimate": estimate_cg_iterations(ham, TOL)}

    # Both thread counts: on a shared machine one thread can beat two (see solve_stencil).
    by_threads = {}
    for nt in sorted({args.threads, 1}, reverse=True):
        med, times, res = timed(lambda nt=nt: solve_stencil(ham, method=auto, tol=TOL,
                                                            threads=nt), args.repeats)
        by_threads[nt] = {"median_s": med, "times_s": times}
        print(f"  mottscape {auto} ({nt} thread{'s' if nt > 1 else ''}): {med:.3f} s "
              f"(runs {', '.join(f'{x:.3f}' for x in times)}), {res.iterations} it, "
              f"residual {res.residual:.1e}", flush=True)
    best = min(by_threads, key=lambda k: by_threads[k]["median_s"])
    med = by_threads[best]["median_s"]
    row["ours"] = {"method": auto, "median_s": med, "threads": best, "by_threads": by_threads,
                   "iterations": res.iterations, "residual": res.residual,
                   "converged": res.converged, "setup_s": res.info.get("setup_time", 0.0)}
    traffic = traffic_bytes(auto, shape, res.iterations)
    row["ours"]["traffic_bytes"] = traffic
    row["ours"]["floor_s"] = traffic / bandwidth["copy"]
    row["ours"]["floor_ratio"] = med / row["ours"]["floor_s"]
    print(f"  floor {row['ours']['floor_s']:.3f} s ({traffic / 1e9:.1f} GB streamed)", flush=True)
    u_ref = res.u
    if not args.no_other:
        med_o, _, res_o = timed(lambda: solve_stencil(ham, method=other, tol=TOL, threads=best),
                                1)
        row["other"] = {"method": other, "time_s": med_o, "iterations": res_o.iterations,
                        "residual": res_o.residual, "threads": best}
        print(f"  mottscape {other}: {med_o:.3f} s, {res_o.iterations} it", flush=True)
    row["ours"]["peak_bytes_per_point"] = peak_memory(
        lambda: solve_stencil(ham, method=auto, tol=TOL, threads=best)) / n

    if not args.no_baselines:
        t = time.perf_counter()
        A = kron_csr(V, spacing)
        t_asm = time.perf_counter() - t
        b = np.ones(n)
        dinv = 1.0 / A.diagonal()
        M = spla.LinearOperator(A.shape, matvec=lambda x: dinv * x, dtype=float)
        count = [0]

        def cb(_):
            count[0] += 1

        t = time.perf_counter()
        u, _info = spla.cg(A, b, x0=dinv.copy(), rtol=TOL, atol=0.0, M=M, callback=cb,
                           maxiter=100_000)
        t_cg = time.perf_counter() - t
        err = float(np.max(np.abs(u.reshape(shape) - u_ref)) / np.max(np.abs(u_ref)))
        row["scipy"] = {"assemble_s": t_asm, "cg_s": t_cg, "iterations": count[0],
                        "rel_diff_vs_ours": err}
        print(f"  scipy: kron assembly {t_asm:.2f} s + Jacobi-CG {t_cg:.2f} s "
              f"({count[0]} it); max rel. difference to ours {err:.1e}", flush=True)
        if n <= PYAMG_MAX_POINTS or args.pyamg_all:
            import pyamg

            t = time.perf_counter()
            ml = pyamg.smoothed_aggregation_solver(A, symmetry="symmetric", max_coarse=500)
            t_setup = time.perf_counter() - t
            resid: list = []
            t = time.perf_counter()
            ml.solve(b, tol=TOL, accel="cg", residuals=resid, maxiter=500)
            t_solve = time.perf_counter() - t
            row["pyamg"] = {"setup_s": t_setup, "solve_s": t_solve,
                            "iterations": len(resid) - 1}
            print(f"  pyamg SA: setup {t_setup:.2f} s + solve {t_solve:.2f} s "
                  f"({len(resid) - 1} it)", flush=True)
        del A
    return row


def print_table(rows, bandwidth) -> None:
    import numba

    head = (f"{'case':18s} {'auto':4s} {'2thr s':>7s} {'1thr s':>7s} {'it':>4s} {'floor s':>7s} "
            f"{'x floor':>7s} {'other s':>8s} {'csr s':>6s} {'cg s':>6s} {'cg it':>5s} "
            f"{'amg s':>11s} {'vs amg':>6s} {'vs csr+cg':>9s} {'B/pt':>5s}")
    print("\n" + head)
    print("-" * len(head))
    for r in rows:
        o = r["ours"]
        sc = r.get("scipy", {})
        am = r.get("pyamg")
        amg = f"{am['setup_s']:.2f}+{am['solve_s']:.2f}" if am else "-"
        vs_amg = f"{(am['setup_s'] + am['solve_s']) / o['median_s']:.1f}x" if am else "-"
        vs_cg = (f"{(sc['assemble_s'] + sc['cg_s']) / o['median_s']:.1f}x" if sc else "-")
        other = f"{r['other']['time_s']:.3f}" if "other" in r else "-"
        bt = o["by_threads"]
        multi = max(bt)
        t_multi = f"{bt[multi]['median_s']:7.3f}" if multi > 1 else "      -"
        print(f"{r['case']:18s} {o['method']:4s} {t_multi} {bt[1]['median_s']:7.3f} "
              f"{o['iterations']:4d} "
              f"{o['floor_s']:7.3f} {o['floor_ratio']:7.2f} {other:>8s} "
              f"{sc.get('assemble_s', float('nan')):6.2f} {sc.get('cg_s', float('nan')):6.2f} "
              f"{sc.get('iterations', 0):5d} {amg:>11s} {vs_amg:>6s} {vs_cg:>9s} "
              f"{o['peak_bytes_per_point']:5.0f}")
    print(f"numba threading layer: {numba.threading_layer()}")
    print(f"copy bandwidth {bandwidth['copy'] / 1e9:.1f} GB/s, add {bandwidth['add'] / 1e9:.1f} "
          "GB/s (numpy, one thread); floor = streamed bytes / copy bandwidth; 'x floor', "
          "'vs amg' and 'vs csr+cg' use the faster of the two thread counts")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small CI-sized cases")
    p.add_argument("--repeats", type=int, default=3, help="timed solves per case (median)")
    p.add_argument("--cases", nargs="*", help="run only these case names")
    p.add_argument("--no-baselines", action="store_true", help="skip scipy and pyamg")
    p.add_argument("--no-other", action="store_true", help="skip the non-auto mottscape method")
    p.add_argument("--pyamg-all", action="store_true", help="run pyamg on every size")
    p.add_argument("--no-cold-compile", action="store_true",
                   help="skip measuring numba compile time in a fresh cache")
    p.add_argument("--threading-layer", choices=["default", "omp", "workqueue", "tbb"],
                   default="default",
                   help="numba threading layer (on a busy shared machine 'workqueue' "
                        "measured up to 2x faster than 'omp' with 2 threads)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None,
                   help="numba threads for the multi-threaded timing (default: all)")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "landscape.json")
    args = p.parse_args(argv)

    import numba

    if args.threading_layer != "default":
        numba.config.THREADING_LAYER = args.threading_layer
    if args.threads is None:
        args.threads = numba.config.NUMBA_NUM_THREADS
    cases = QUICK_CASES if args.quick else FULL_CASES
    if args.cases:
        cases = [c for c in cases if c[0] in args.cases]
    meta = {"command": " ".join([Path(sys.executable).name, *sys.argv]),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
            "numba": numba.__version__, "numpy": np.__version__,
            "load_average_start": os.getloadavg(), "tol": TOL}
    meta["compile_cold_s"] = None if args.no_cold_compile else compile_time_cold()
    meta["warm_up_s"] = warm_up()
    meta["threading_layer"] = numba.threading_layer()
    print(f"numba compile (empty cache, fresh process): {meta['compile_cold_s']} s; "
          f"warm-up with cache: {meta['warm_up_s']:.2f} s")
    bandwidth = copy_bandwidth()
    meta["bandwidth_Bps"] = bandwidth
    rows = [run_case(*c, args=args, bandwidth=bandwidth) for c in cases]
    meta["load_average_end"] = os.getloadavg()
    meta["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print_table(rows, bandwidth)
    print(f"process peak RSS {meta['peak_rss_bytes'] / 2**30:.2f} GiB (includes baselines); "
          f"load average {meta['load_average_start']} -> {meta['load_average_end']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "cases": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
