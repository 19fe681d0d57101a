"""Benchmark runner (issue 4): ``python benchmarks/run.py [--quick] [--sizes ...] [--out DIR]``.

Sections, each measured in the same run as its baselines (the machine may be shared, so every
comparison is a ratio of times taken minutes apart, and the load average is recorded):

``landscape``
    The landscape solve H u = 1 (eq. 2) with :func:`mottscape.solve_landscape`'s default
    (matrix-free stencil solvers above 40 000 cells) against the baselines of the issue: scipy
    CSR assembly (sum of ``scipy.sparse.kron`` products), Jacobi-CG on that matrix
    (``scipy.sparse.linalg.cg``) and pyamg smoothed aggregation (setup + CG-accelerated solve),
    on Anderson disorder (box [0, 4], spacing 1) and on a smooth Gaussian-correlated field
    (spacing 0.1, correlation length 1, i.e. 10 cells per correlation length). Beside each
    mottscape time: the memory-bandwidth floor, bytes the solver streams / measured numpy copy
    bandwidth.
``agmon``
    :func:`mottscape.basin_distances` between the basins of Sigma_omega bounded at
    rho_omega + 1, exactly as :func:`mottscape.run_pipeline` calls it, against the number of
    cells N, with the log-log slope of time against N.
``pipeline``
    :func:`mottscape.run_pipeline` with ``estimator="eq17"`` (landscape, basins, Agmon, eq. 17
    at 32 frequencies; the pair model is timed by bench_pairs.py), one
    fresh subprocess per measurement, with the per-step durations of its ``log=`` callback and
    the peak resident memory of the process (interpreter, libraries and the input V included)
    per grid point (see :func:`peak_rss`).
``exact``
    The exact Kubo-Greenwood reference (:func:`mottscape.kubo_greenwood`) and the LL pipeline
    on the same samples (1D chain of 10^5 sites, 2D 256^2), so that the speed-up is measured.

Medians over ``--repeats`` (the slow baselines run ``--baseline-repeats`` times). A table is
printed; the results go to ``DIR/bench.json`` and a scaling plot to ``DIR/bench.png``
(``--out``, default ``benchmarks/results``). ``--quick`` runs tiny samples in well under a
minute, to check that the runner works (never to judge speed).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TARGETS", "main", "parse_shape"]

#: Relative residual of every solve (mottscape and baselines).
TOL = 1e-10

#: Issue 4 targets (seconds, bytes per grid point, log-log slope).
TARGETS = {
    "landscape_2d_2048_s": 1.0,
    "landscape_3d_256_s": 5.0,
    "landscape_floor_ratio": 3.0,
    "smooth_speedup_vs_pyamg": 2.0,
    "agmon_slope": 1.1,
    "pipeline_2d_2048_s": 10.0,
    "pipeline_3d_256_s": 60.0,
    "pipeline_bytes_per_point": 200.0,
}

FULL_SIZES = ["256x256", "512x512", "1024x1024", "2048x2048", "64x64x64", "128x128x128",
              "256x256x256"]
QUICK_SIZES = ["128x128", "256x256", "40x40x40"]
SECTIONS = ("landscape", "agmon", "pipeline", "exact")

#: pyamg's setup beyond this many cells takes minutes and several GiB (issue 4 has no
#: pyamg reading at 256^3); ``--pyamg-all`` lifts the limit.
PYAMG_MAX_POINTS = 2048 * 2048

#: Pipeline samples: Fermi energy at this quantile of V_u (band tail, basins separated), 32
#: frequencies geometrically spaced over OMEGA_RANGE (lattice units), the paper's V_u
#: (``effective="vu"``) and every other option at its default.
PIPELINE_QUANTILE = {1: 0.1, 2: 0.1, 3: 0.1}
#: Anderson box width of the pipeline samples. 2D: [0, 4] as for the landscape solve (every
#: state is localized in 2D). 3D: [0, 20], beyond the Anderson transition (W_c ~ 16.5): with
#: [0, 4] the basins of V_u percolate before E_F reaches any basin's energy estimate
#: (1 + d/4) min V_u, so Sigma_omega is empty wherever the basins are separated (see
#: docs/performance.md for the scaled-landscape alternative and its cost).
PIPELINE_WIDTH = {1: 4.0, 2: 4.0, 3: 20.0}
OMEGA_RANGE = (1e-3, 1e-1)
N_OMEGA = 32


# ============================================================================ helpers
def parse_shape(text: str) -> tuple[int, ...]:
    """``"256x256"`` -> (256, 256); a bare ``"256"`` means a 2D square sample (2D or 3D only)."""
    parts = [p for p in re.split(r"[x*,^]", text.strip().lower()) if p]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"size {text!r} must look like 256x256 or 64x64x64") from None
    if len(dims) == 1:
        dims = (dims[0], dims[0])
    if not 2 <= len(dims) <= 3 or min(dims) < 4:
        raise argparse.ArgumentTypeError(f"size {text!r}: 2 or 3 axes of at least 4 cells (the "
                                         "1D case is in the exact section)")
    return dims


def shape_name(shape: Sequence[int]) -> str:
    """``(256, 256)`` -> ``"2D 256^2"``."""
    n = shape[0]
    if all(s == n for s in shape) and len(shape) > 1:
        return f"{len(shape)}D {n}^{len(shape)}"
    return f"{len(shape)}D " + "x".join(str(s) for s in shape)


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where unknown)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def peak_rss() -> tuple[int, str]:
    """Peak resident memory of this process in bytes, and how it was read.

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of the current address
    space. ``getrusage(RUSAGE_SELF).ru_maxrss`` is the same number elsewhere, but on Linux it
    survives fork + exec, so a subprocess started by a big parent would report the parent's
    peak; it is the fallback where ``/proc`` is missing.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024, "VmHWM"
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale, "ru_maxrss"


def median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Median wall time of ``repeats`` calls, the times, and the last result."""
    times, out = [], None
    for _ in range(max(1, repeats)):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def copy_bandwidth(nbytes: int = 1 << 28, repeats: int = 7) -> dict[str, float]:
    """Memory bandwidth of numpy in bytes/s (medians): copy (read + write), add (2 r + 1 w)."""
    a = np.ones(nbytes // 8)
    b = np.ones_like(a)
    c = np.ones_like(a)
    t_copy, t_add = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        t_copy.append(time.perf_counter() - t)
        t = time.perf_counter()
        np.add(a, b, out=c)
        t_add.append(time.perf_counter() - t)
    return {"copy": 2 * nbytes / statistics.median(t_copy),
            "add": 3 * nbytes / statistics.median(t_add)}


def traffic_bytes(method: str, shape: Sequence[int], iterations: int, smooth: int = 2) -> float:
    """Bytes a stencil solve of :mod:`mottscape.solvers` must stream (float64 grid arrays).

    The model of ``benchmarks/bench_landscape.py``: ``"cg"`` (uniform mass) streams 10 arrays
    per iteration plus about 30 for the initial and final residuals; ``"mg"`` streams, per
    MGCG iteration, the red-black sweeps (``2 smooth * 2 - 1`` half-sweeps over x, b, D and d
    coupling arrays), the fused residual-restriction (3 + d arrays), the prolongation (2),
    coarse levels adding a factor 1 / (1 - 2^-d), and the CG part (23 + d arrays).
    """
    n = float(math.prod(shape))
    d = len(shape)
    if method == "cg":
        arrays = 10 * iterations + 30
    else:
        sweeps = 2 * smooth * 2 - 1
        mg = (sweeps * (4 + d) + 3 + (3 + d) + 2) / (1.0 - 2.0**-d)
        arrays = (mg + 23 + d) * (iterations + 1)
    return arrays * 8 * n


def loglog_slope(n: Sequence[float], t: Sequence[float]) -> float:
    """Least-squares slope of log t against log n (NaN with fewer than 2 points)."""
    x = np.log(np.asarray(n, dtype=float))
    y = np.log(np.asarray(t, dtype=float))
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(x[ok], y[ok], 1)[0])


# ============================================================================ samples
def anderson(shape: Sequence[int], seed: int = 0, width: float = 4.0) -> np.ndarray:
    """Anderson disorder: independent uniform on-site energies in [0, width]."""
    return np.random.default_rng(seed).uniform(0.0, width, tuple(shape))


def smooth(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Gaussian-correlated field, unit amplitude, correlation length 1 (10 cells at h = 0.1)."""
    from mottscape.disorder import gaussian

    return gaussian(tuple(shape), correlation_length=1.0, amplitude=1.0, spacing=0.1, seed=seed)


def block_potential(shape: Sequence[int], block: int, seed: int) -> np.ndarray:
    """Wells of ``block`` cells per axis with uniform depths in [0, 4] (``bench_exact.py``)."""
    rng = np.random.default_rng(seed)
    V = rng.uniform(0.0, 4.0, tuple(-(-n // block) for n in shape))
    for ax in range(len(shape)):
        V = np.repeat(V, block, axis=ax)
    return np.ascontiguousarray(V[tuple(slice(0, n) for n in shape)])


def kron_csr(V: np.ndarray, spacing: float):
    """The issue's baseline assembly of H (uniform mass, Dirichlet): sums of Kronecker products."""
    import scipy.sparse as sp

    d = V.ndim
    c = 1.0 / spacing**2
    A = sp.diags(V.ravel())
    for a in range(d):
        n = V.shape[a]
        T = sp.diags([-c * np.ones(n - 1), 2 * c * np.ones(n), -c * np.ones(n - 1)], [-1, 0, 1])
        ops = [sp.identity(V.shape[b]) if b != a else T for b in range(d)]
        K = ops[0]
        for op in ops[1:]:
            K = sp.kron(K, op)
        A = A + K
    return sp.csr_matrix(A)


# ============================================================================ landscape
def _warm_up() -> None:
    """Compile (or load from numba's cache) the solver kernels on tiny problems."""
    from mottscape.hamiltonian import build_hamiltonian
    from mottscape.landscape import solve_landscape
    from mottscape.solvers import solve_stencil

    rng = np.random.default_rng(0)
    for shape in [(40, 40), (12, 12, 12)]:
        ham = build_hamiltonian(rng.uniform(0.0, 4.0, shape))
        solve_stencil(ham, method="cg")
        solve_stencil(ham, method="mg")
    solve_landscape(rng.uniform(0.0, 4.0, (256, 256)))


def bench_landscape_case(name: str, V: np.ndarray, spacing: float, args,
                         bandwidth: dict[str, float]) -> dict:
    """One landscape case: mottscape's default solve, the floor, and the three baselines."""
    import scipy.sparse.linalg as spla

    from mottscape.landscape import solve_landscape
    from mottscape.solvers import choose_method

    shape = V.shape
    n = V.size
    row: dict[str, Any] = {"case": name, "shape": list(shape), "spacing": spacing, "points": n,
                           "load_average": load_average()}
    print(f"  {name}: {shape_name(shape)}, spacing {spacing} ...", flush=True)
    med, times, land = median_time(lambda: solve_landscape(V, spacing=spacing), args.repeats)
    method = choose_method(land.hamiltonian, TOL) if land.solver == "stencil" else land.solver
    floor = traffic_bytes(method, shape, land.iterations) / bandwidth["copy"] \
        if method in ("cg", "mg") else math.nan
    row["ours"] = {"median_s": med, "times_s": times, "solver": land.solver, "method": method,
                   "iterations": land.iterations, "residual": land.residual,
                   "traffic_bytes": traffic_bytes(method, shape, land.iterations)
                   if method in ("cg", "mg") else math.nan,
                   "floor_s": floor, "floor_ratio": med / floor if floor > 0 else math.nan}
    shift = -float(V.min())
    del land
    gc.collect()
    if args.no_baselines:
        return row
    # ---- baselines: the matrix of V - min V (the operator solve_landscape inverts)
    Vs = V + shift
    med_a, times_a, mat = median_time(lambda: kron_csr(Vs, spacing), args.baseline_repeats)
    row["assemble_csr"] = {"median_s": med_a, "times_s": times_a, "nnz": int(mat.nnz)}
    b = np.ones(n)
    diag = mat.diagonal()

    def jacobi_cg(A=mat):
        it = [0]

        def count(_):
            it[0] += 1

        M = spla.LinearOperator(A.shape, matvec=lambda x: x / diag, dtype=float)
        x, _ = spla.cg(A, b, x0=b / diag, rtol=TOL, atol=0.0, maxiter=20000, M=M,
                       callback=count)
        res = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
        return it[0], res

    med_c, times_c, (it_c, res_c) = median_time(jacobi_cg, args.baseline_repeats)
    row["cg_csr"] = {"median_s": med_c, "times_s": times_c, "iterations": it_c,
                     "residual": res_c}
    if n <= PYAMG_MAX_POINTS or args.pyamg_all:
        import pyamg

        setups, solves, its = [], [], []
        for _ in range(max(1, args.baseline_repeats)):
            gc.collect()
            t = time.perf_counter()
            ml = pyamg.smoothed_aggregation_solver(mat, symmetry="symmetric", max_coarse=500)
            t1 = time.perf_counter()
            residuals: list[float] = []
            ml.solve(b, tol=TOL, accel="cg", maxiter=500, residuals=residuals)
            t2 = time.perf_counter()
            setups.append(t1 - t)
            solves.append(t2 - t1)
            its.append(len(residuals) - 1)
            del ml
        row["pyamg"] = {"setup_s": statistics.median(setups), "solve_s": statistics.median(solves),
                        "median_s": statistics.median([s + v for s, v in zip(setups, solves,
                                                                             strict=True)]),
                        "iterations": int(statistics.median(its))}
    del mat
    gc.collect()
    return row


def run_landscape(args, bandwidth: dict[str, float]) -> list[dict]:
    """Anderson cases at every size, then the smooth case."""
    _warm_up()
    rows = []
    for shape in args.sizes:
        rows.append(bench_landscape_case(f"anderson-{len(shape)}d-{shape[0]}",
                                         anderson(shape, args.seed), 1.0, args, bandwidth))
    sm = (256, 256) if args.quick else (1024, 1024)
    rows.append(bench_landscape_case(f"smooth-2d-{sm[0]}", smooth(sm, args.seed), 0.1, args,
                                     bandwidth))
    return rows


# ============================================================================ Agmon
def fermi_energy_for(land, quantile: float) -> float:
    """E_F at ``quantile`` of V_u (the band tail for a small quantile)."""
    return float(np.quantile(land.effective_potential, quantile))


def omegas() -> np.ndarray:
    """The 32 frequencies of every pipeline run."""
    return np.geomspace(OMEGA_RANGE[0], OMEGA_RANGE[1], N_OMEGA)


def run_agmon(args) -> dict:
    """Time of the bounded basin-to-basin searches of the pipeline against N (2D sizes)."""
    from mottscape.agmon import _search_threads, basin_distances
    from mottscape.conductivity import run_pipeline
    from mottscape.landscape import solve_landscape

    rows = []
    for shape in [s for s in args.sizes if len(s) == 2]:
        V = anderson(shape, args.seed)
        land = solve_landscape(V)
        ef = fermi_energy_for(land, PIPELINE_QUANTILE[2])
        p = run_pipeline(V, ef, omegas(), landscape=land, estimator="eq17")
        pd = p.pairs
        print(f"  Agmon {shape_name(shape)}: {pd.sources.size} sources ...", flush=True)
        # one process: the total work, whose growth with N is the target; then the default
        # (worker processes when there are many sources), as run_pipeline runs it
        med, times, out = median_time(
            lambda p=p, pd=pd, land=land, ef=ef: basin_distances(
                land, p.basins, energy=ef, sources=pd.sources, bound=pd.bound, workers=1),
            args.repeats)
        med_d, times_d, _ = median_time(
            lambda p=p, pd=pd, land=land, ef=ef: basin_distances(
                land, p.basins, energy=ef, sources=pd.sources, bound=pd.bound),
            args.repeats)
        bound = np.atleast_1d(pd.bound)
        rows.append({"shape": list(shape), "points": V.size, "fermi_energy": ef,
                     "basins": p.basins.n, "sources": int(pd.sources.size),
                     "pairs": int(out.i.size),
                     "bound_max": float(bound.max()) if bound.size else math.nan,
                     "median_s": med, "times_s": times,
                     "us_per_cell": med / V.size * 1e6,
                     "default_threads": _search_threads(None, int(pd.sources.size), V.size),
                     "default_median_s": med_d, "default_times_s": times_d,
                     "load_average": load_average()})
        del V, land, p, pd, out
        gc.collect()
    slope = loglog_slope([r["points"] for r in rows], [r["median_s"] for r in rows])
    return {"cases": rows, "slope": slope}


# ============================================================================ pipeline
def _child_pipeline(shape: tuple[int, ...], seed: int, kind: str) -> dict:
    """One pipeline measurement in this (fresh) process: time, steps, peak RSS."""
    from mottscape.conductivity import run_pipeline
    from mottscape.landscape import solve_landscape

    d = len(shape)
    width = PIPELINE_WIDTH[d]
    # warm-up on a small sample of the same dimension (numba cache, imports)
    small = (256,) * d if d < 3 else (40,) * 3
    Vw = anderson(small, seed, width)
    lw = solve_landscape(Vw)
    run_pipeline(Vw, fermi_energy_for(lw, PIPELINE_QUANTILE[d]), omegas(), landscape=lw,
                 estimator="eq17")
    del Vw, lw
    V = anderson(shape, seed, width) if kind == "anderson" else block_potential(shape, 4, seed)
    land = solve_landscape(V)
    ef = fermi_energy_for(land, PIPELINE_QUANTILE[d])
    del land
    gc.collect()
    rss_before, _ = peak_rss()
    t = time.perf_counter()
    p = run_pipeline(V, ef, omegas(), estimator="eq17")
    total = time.perf_counter() - t
    peak, how = peak_rss()
    steps = dict(p.timings)  # the staged pipeline's per-step durations
    steps["results"] = max(0.0, total - sum(steps.values()))
    ds = p.dataset
    return {"total_s": total, "steps_s": steps, "fermi_energy": ef,
            "width": width, "peak_rss_bytes": peak, "peak_rss_source": how,
            "rss_before_bytes": rss_before, "basins": int(p.basins.n),
            "percolating": bool(p.basins.percolating), "sources": int(p.sources.size),
            "pair_distances": int(p.pairs.i.size), "valid_omegas": int(ds["valid"].sum()),
            "n_pairs_max": int(ds["n_pairs"].max())}


def _spawn(args_list: list[str], timeout: float | None = None) -> dict:
    """Run ``python benchmarks/run.py --child ...`` and parse its last output line (JSON)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *args_list]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark subprocess {' '.join(args_list)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_pipeline_section(args) -> list[dict]:
    """The whole pipeline on the largest 2D and 3D sizes, one subprocess per repeat."""
    rows = []
    targets = {}
    for shape in args.sizes:
        targets[len(shape)] = max(targets.get(len(shape), shape), shape, key=math.prod)
    for d in sorted(targets):
        if d == 1:
            continue
        shape = targets[d]
        n = math.prod(shape)
        print(f"  pipeline {shape_name(shape)} ...", flush=True)
        runs = []
        for _ in range(max(1, args.repeats)):
            runs.append(_spawn(["--child", "anderson", "x".join(map(str, shape)),
                                "--seed", str(args.seed)]))
        keys = sorted({k for r in runs for k in r["steps_s"]})
        steps = {k: statistics.median([r["steps_s"].get(k, 0.0) for r in runs]) for k in keys}
        peak = max(r["peak_rss_bytes"] for r in runs)
        first = runs[0]
        rows.append({"shape": list(shape), "points": n,
                     "median_s": statistics.median([r["total_s"] for r in runs]),
                     "times_s": [r["total_s"] for r in runs], "steps_s": steps,
                     "peak_rss_bytes": peak, "bytes_per_point": peak / n,
                     "rss_before_bytes": first["rss_before_bytes"],
                     "peak_rss_source": first["peak_rss_source"],
                     "fermi_energy": first["fermi_energy"], "width": first["width"],
                     "omega": [OMEGA_RANGE[0], OMEGA_RANGE[1], N_OMEGA],
                     "quantile": PIPELINE_QUANTILE[d],
                     "basins": first["basins"], "percolating": first["percolating"],
                     "sources": first["sources"], "pair_distances": first["pair_distances"],
                     "valid_omegas": first["valid_omegas"], "n_pairs_max": first["n_pairs_max"],
                     "load_average": load_average()})
    return rows


# ============================================================================ exact
def _exact_cases(quick: bool) -> list[dict]:
    """The samples of ``benchmarks/bench_exact.py``: 1D 10^5 sites and 2D 256^2."""
    if quick:
        return [dict(name="1d-20000", shape=(20_000,), block=8, ef=0.2, wmax=0.05,
                     method="segments"),
                dict(name="2d-48", shape=(48, 48), block=4, ef=0.9, wmax=0.1,
                     method="shift-invert")]
    return [dict(name="1d-100000", shape=(100_000,), block=8, ef=0.2, wmax=0.05,
                 method="segments"),
            dict(name="2d-256", shape=(256, 256), block=4, ef=0.8, wmax=0.1,
                 method="shift-invert")]


def run_exact(args) -> list[dict]:
    """Exact Kubo-Greenwood and the LL pipeline on the same samples and frequency range."""
    from mottscape.conductivity import run_pipeline
    from mottscape.exact import kubo_greenwood

    rows = []
    for case in _exact_cases(args.quick):
        V = block_potential(case["shape"], case["block"], args.seed + 1)
        w = np.geomspace(case["wmax"] * 1e-3, case["wmax"], N_OMEGA)
        edges = np.geomspace(case["wmax"] * 1e-3, case["wmax"], N_OMEGA + 1)
        print(f"  exact vs LL {shape_name(case['shape'])} ...", flush=True)
        t_ll, times_ll, p = median_time(lambda V=V, w=w, case=case: run_pipeline(
            V, case["ef"], w, estimator="eq17"), args.repeats)
        t_ex, times_ex, ds = median_time(lambda V=V, edges=edges, case=case: kubo_greenwood(
            V, case["ef"], edges, method=case["method"]), args.baseline_repeats)
        rows.append({"case": case["name"], "shape": list(case["shape"]),
                     "fermi_energy": case["ef"], "hbar_omega_max": case["wmax"],
                     "method": case["method"], "exact_s": t_ex, "exact_times_s": times_ex,
                     "ll_s": t_ll, "ll_times_s": times_ll, "speedup": t_ex / t_ll,
                     "exact_states": int(ds["n_states"]),
                     "ll_sources": int(p.sources.size), "load_average": load_average()})
    return rows


# ============================================================================ output
def _fmt(x: float | None, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def format_tables(res: dict) -> str:
    """Markdown tables of the results (printed, and pasted into docs/performance.md)."""
    out: list[str] = []
    bw = res["meta"]["bandwidth_Bps"]
    out.append(f"numpy bandwidth: copy {bw['copy'] / 1e9:.1f} GB/s, add {bw['add'] / 1e9:.1f} "
               f"GB/s; load average at start {res['meta']['load_average_start']}")
    if res.get("landscape"):
        out += ["", "Landscape solve H u = 1 (median s; tol 1e-10)", "",
                "| case | mottscape (method, its) | floor | ratio to floor | assemble CSR | "
                "Jacobi-CG on CSR (its) | pyamg setup + solve (its) | CG+CSR / ours | "
                "pyamg / ours |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in res["landscape"]:
            o = r["ours"]
            a = r.get("assemble_csr", {}).get("median_s")
            c = r.get("cg_csr", {})
            g = r.get("pyamg", {})
            cg_total = (a + c["median_s"]) if (a is not None and c) else None
            out.append(
                f"| {r['case']} | {_fmt(o['median_s'], '.3f')} ({o['method']}, "
                f"{o['iterations']}) | {_fmt(o['floor_s'], '.3f')} | "
                f"{_fmt(o['floor_ratio'], '.1f')} | {_fmt(a)} | "
                f"{_fmt(c.get('median_s'))} ({c.get('iterations', '-')}) | "
                + (f"{g['setup_s']:.2f} + {g['solve_s']:.2f} ({g['iterations']})" if g else "-")
                + f" | {_fmt(cg_total / o['median_s'] if cg_total else None, '.1f')}x | "
                f"{_fmt(g['median_s'] / o['median_s'] if g else None, '.1f')}x |")
    if res.get("agmon"):
        ag = res["agmon"]
        out += ["", f"Agmon distances between the basins of Sigma_omega, bounded at "
                f"rho_omega + 1 (log-log slope of the 1-thread time {ag['slope']:.2f})", "",
                "| sample | N | basins | sources | pairs | 1 thread (s) | us per cell | "
                "default (s, threads) |",
                "|---|---|---|---|---|---|---|---|"]
        for r in ag["cases"]:
            out.append(f"| {shape_name(r['shape'])} | {r['points']:,} | {r['basins']:,} | "
                       f"{r['sources']:,} | {r['pairs']:,} | {r['median_s']:.3f} | "
                       f"{r['us_per_cell']:.3f} | {r['default_median_s']:.3f} "
                       f"({r['default_threads']}) |")
    if res.get("pipeline"):
        order = ["landscape", "basins", "statistics", "agmon", "moments", "conductivity",
                 "results"]  # the pipeline's steps; others (none today) after them by name
        keys = sorted({k for r in res["pipeline"] for k in r["steps_s"]},
                      key=lambda k: (order.index(k) if k in order else len(order), k))
        out += ["", f"Whole pipeline, {N_OMEGA} frequencies (median s, fresh process per run)",
                "", "| sample | disorder box | E_F (V_u quantile) | sources | valid omegas | "
                "total | "
                + " | ".join(keys) + " | peak RSS | bytes per point |",
                "|---|---|---|---|---|---|" + "---|" * len(keys) + "---|---|"]
        for r in res["pipeline"]:
            out.append(f"| {shape_name(r['shape'])} | [0, {r['width']:g}] | "
                       f"{r['fermi_energy']:.3f} ({r['quantile']}) | {r['sources']:,} | "
                       f"{r['valid_omegas']} | {r['median_s']:.2f} | "
                       + " | ".join(_fmt(r["steps_s"].get(k)) for k in keys)
                       + f" | {r['peak_rss_bytes'] / 2**30:.2f} GiB | "
                       f"{r['bytes_per_point']:.0f} |")
    if res.get("exact"):
        out += ["", "Exact Kubo-Greenwood against the LL pipeline on the same sample", "",
                "| sample | exact method | states in window | exact (s) | LL pipeline (s) | "
                "speed-up |", "|---|---|---|---|---|---|"]
        for r in res["exact"]:
            out.append(f"| {shape_name(r['shape'])} | {r['method']} | {r['exact_states']:,} | "
                       f"{r['exact_s']:.2f} | {r['ll_s']:.3f} | {r['speedup']:.0f}x |")
    if res.get("targets"):
        out += ["", "| target | goal | measured | met |", "|---|---|---|---|"]
        for t in res["targets"]:
            out.append(f"| {t['name']} | {t['goal']} | {t['measured']} | "
                       f"{'yes' if t['met'] else 'NO'} |")
    return "\n".join(out)


def evaluate_targets(res: dict) -> list[dict]:
    """The issue's targets against the measured values present in ``res``."""
    rows = []

    def add(name, goal, value, ok, fmt=".2f"):
        rows.append({"name": name, "goal": goal, "measured": _fmt(value, fmt),
                     "value": value, "met": bool(ok)})

    for r in res.get("landscape", []):
        o = r["ours"]
        if r["case"] == "anderson-2d-2048":
            add("landscape 2D 2048^2", "<= 1 s", o["median_s"], o["median_s"] <= 1.0)
        if r["case"] == "anderson-3d-256":
            add("landscape 3D 256^3", "<= 5 s", o["median_s"], o["median_s"] <= 5.0)
        if r["case"] in ("anderson-2d-2048", "anderson-3d-256") and math.isfinite(
                o["floor_ratio"]):
            add(f"{r['case']} time / bandwidth floor", "<= 3", o["floor_ratio"],
                o["floor_ratio"] <= 3.0, ".1f")
        if r["case"].startswith("smooth") and "pyamg" in r:
            s = r["pyamg"]["median_s"] / o["median_s"]
            add(f"{r['case']} speed-up over pyamg", ">= 2x", s, s >= 2.0, ".1f")
    ag = res.get("agmon")
    if ag and len(ag["cases"]) >= 2:
        add("Agmon log-log slope", "<= 1.1", ag["slope"], ag["slope"] <= 1.1)
    for r in res.get("pipeline", []):
        d = len(r["shape"])
        goal = {2: 10.0, 3: 60.0}.get(d)
        if goal and r["points"] >= (2048**2 if d == 2 else 256**3):
            add(f"pipeline {shape_name(r['shape'])}", f"<= {goal:g} s", r["median_s"],
                r["median_s"] <= goal)
            add(f"pipeline {shape_name(r['shape'])} peak memory", "<= 200 B/point",
                r["bytes_per_point"], r["bytes_per_point"] <= 200, ".0f")
        if d == 3 and r["points"] >= 512**3:  # issue 13: 512^3 whole at <= 100 bytes per cell
            add(f"pipeline {shape_name(r['shape'])} peak memory (issue 13)", "<= 100 B/point",
                r["bytes_per_point"], r["bytes_per_point"] <= 100, ".0f")
    return rows


def plot(res: dict, path: Path) -> None:
    """Scaling plot (matplotlib Figure API, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    rows = [r for r in res.get("landscape", []) if r["case"].startswith("anderson")]
    for d, marker in ((2, "o"), (3, "s")):
        sel = [r for r in rows if len(r["shape"]) == d]
        if not sel:
            continue
        n = [r["points"] for r in sel]
        ax1.loglog(n, [r["ours"]["median_s"] for r in sel], marker + "-", color="C0",
                   label=f"mottscape {d}D")
        ax1.loglog(n, [r["ours"]["floor_s"] for r in sel], marker + ":", color="C0", alpha=0.5,
                   label=f"bandwidth floor {d}D")
        if all("cg_csr" in r for r in sel):
            ax1.loglog(n, [r["cg_csr"]["median_s"] + r["assemble_csr"]["median_s"]
                           for r in sel], marker + "-", color="C1",
                       label=f"CSR assembly + Jacobi-CG {d}D")
        pa = [r for r in sel if "pyamg" in r]
        if pa:
            ax1.loglog([r["points"] for r in pa], [r["pyamg"]["median_s"] for r in pa],
                       marker + "-", color="C2", label=f"pyamg setup + solve {d}D")
    ax1.set(xlabel="grid points N", ylabel="time (s)", title="landscape solve H u = 1")
    ax1.legend(fontsize=7)
    ag = res.get("agmon")
    if ag and ag["cases"]:
        n = np.array([r["points"] for r in ag["cases"]], dtype=float)
        t = np.array([r["median_s"] for r in ag["cases"]])
        ax2.loglog(n, t, "o-", label=f"1 process (slope {ag['slope']:.2f})")
        ax2.loglog(n, [r["default_median_s"] for r in ag["cases"]], "s--",
                   label="default (worker processes)")
        ax2.loglog(n, t[0] * n / n[0], "k:", label="linear")
        ax2.legend(fontsize=8)
    ax2.set(xlabel="grid points N", ylabel="time (s)", title="bounded Agmon distances (2D)")
    pipe = res.get("pipeline", [])
    if pipe:
        keys = sorted({k for r in pipe for k in r["steps_s"]})
        labels = [shape_name(r["shape"]) for r in pipe]
        bottom = np.zeros(len(pipe))
        for k in keys:
            vals = np.array([r["steps_s"].get(k, 0.0) for r in pipe])
            ax3.bar(labels, vals, bottom=bottom, label=k)
            bottom += vals
        ax3.legend(fontsize=8)
    ax3.set(ylabel="time (s)", title=f"pipeline, {N_OMEGA} frequencies")
    fig.savefig(path, dpi=110)


# ============================================================================ main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Benchmarks of issue 4: landscape solve against scipy and pyamg, bounded "
                    "Agmon distances, the whole pipeline (time, steps, peak memory), and the "
                    "exact reference. Medians over repeats; JSON and a plot go to --out.")
    p.add_argument("--quick", action="store_true",
                   help="tiny samples (< 60 s): checks that the runner works, not the speed")
    p.add_argument("--sizes", nargs="+", type=parse_shape, default=None, metavar="SIZE",
                   help="2D or 3D samples for the landscape and Agmon sections, e.g. 256x256 "
                        "64x64x64 (a bare 256 means 256x256); the pipeline runs on the largest "
                        "2D and 3D")
    p.add_argument("--repeats", type=int, default=None,
                   help="repeats of every mottscape measurement (default 3, 1 with --quick)")
    p.add_argument("--baseline-repeats", type=int, default=None,
                   help="repeats of the slow baselines and the exact reference (default 1)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="sections to run (default: all)")
    p.add_argument("--out", default="benchmarks/results",
                   help="directory for bench.json and bench.png (or a .json file path)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random samples")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip scipy and pyamg in the landscape section")
    p.add_argument("--pyamg-all", action="store_true",
                   help=f"run pyamg above {PYAMG_MAX_POINTS:,} points too (minutes, GiBs)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")
    p.add_argument("--child", nargs=2, metavar=("KIND", "SHAPE"), help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; see the module docstring. Returns a process exit code."""
    args = build_parser().parse_args(argv)
    if args.child:
        kind, shape = args.child
        res = _child_pipeline(parse_shape(shape), args.seed, kind)
        print(json.dumps(res))
        return 0
    if args.sizes is None:
        args.sizes = [parse_shape(s) for s in (QUICK_SIZES if args.quick else FULL_SIZES)]
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.baseline_repeats is None:
        args.baseline_repeats = 1
    out = Path(args.out)
    json_path = out if out.suffix == ".json" else out / "bench.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    import numba

    from mottscape import __version__

    t0 = time.perf_counter()
    command = "python benchmarks/run.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    bandwidth = copy_bandwidth(1 << 25 if args.quick else 1 << 28)
    res: dict[str, Any] = {"meta": {
        "command": command.strip(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": bool(args.quick), "repeats": args.repeats,
        "baseline_repeats": args.baseline_repeats, "seed": args.seed,
        "machine": platform.machine(), "processor": platform.processor(),
        "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
        "mottscape": __version__, "numpy": np.__version__, "python": platform.python_version(),
        "load_average_start": load_average(), "bandwidth_Bps": bandwidth, "tol": TOL,
        "sizes": [list(s) for s in args.sizes], "targets": TARGETS}}
    sections = {"landscape": lambda: run_landscape(args, bandwidth),
                "agmon": lambda: run_agmon(args),
                "pipeline": lambda: run_pipeline_section(args),
                "exact": lambda: run_exact(args)}
    for name in SECTIONS:
        if name in args.sections:
            print(f"== {name}", flush=True)
            t = time.perf_counter()
            res[name] = sections[name]()
            res["meta"][f"{name}_wall_s"] = time.perf_counter() - t
    res["targets"] = evaluate_targets(res)
    res["meta"]["load_average_end"] = load_average()
    res["meta"]["wall_s"] = time.perf_counter() - t0
    json_path.write_text(json.dumps(res, indent=1, default=float))
    if not args.no_plot:
        plot(res, json_path.with_suffix(".png"))
    print()
    print(format_tables(res))
    print(f"\nwrote {json_path}" + ("" if args.no_plot else
                                     f" and {json_path.with_suffix('.png')}")
          + f" ({res['meta']['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
