"""First run after installing (issue 13, item 4): import cost and the first study's compile cost.

Usage (from the repository root)::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_first_run.py [--size 1024] [--repeats 5]

Everything runs in fresh subprocesses of this interpreter, in one run, so that the ratios cancel
the load of a shared machine:

``import``
    Seconds and peak RSS of ``import mottscape`` against ``import numpy, scipy`` (medians over
    ``--repeats`` alternating runs; the interpreter's own start-up excluded), and of the first
    public name a study touches (``mottscape.ac_conductivity``), which is where the lazy names
    load their modules.
``study``
    ``mottscape.ac_conductivity`` on a 2D block sample (``--size``², E_F = 0.9, 16 frequencies,
    the LL pipeline, ``pair_model=False``) in three processes sharing one numba cache directory:
    *cold* (``NUMBA_CACHE_DIR`` a new empty directory and the package's in-tree ``*.nbi`` /
    ``*.nbc`` removed: numba compiles every kernel, as after a fresh install), *warm cache* (a new
    process loading the kernels that the cold one cached: every later run of a user) and, in
    that same process, the study a second time (*hot*: nothing loaded). Last, with another
    empty cache: ``mottscape compile`` (the step after installing), then the study in a new
    process.
    ``NUMBA_CACHE_DIR`` takes precedence over the in-tree ``__pycache__`` in numba's search, so
    the in-tree files are removed only for good measure.

Pass ``--signatures`` to print the specializations each dispatcher compiled during the cold
study (to find duplicates).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

IMPORT_SNIPPET = """
import resource, sys, time
t0 = time.perf_counter()
{stmt}
t1 = time.perf_counter()
{after}
t2 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
heavy = sorted(m for m in ("numba", "xarray", "pandas", "matplotlib", "networkx", "dask")
               if m in sys.modules)
print(repr((t1 - t0, t2 - t1, rss, heavy)))
"""

STUDY_SNIPPET = """
import json, resource, time
t0 = time.perf_counter()
import numpy as np
import mottscape as ms
t_import = time.perf_counter() - t0
V = ms.disorder.block(({n}, {n}), block=4, width=4.0, seed=3)
w = np.geomspace(5e-3, 0.2, 16)
times = []
for _ in range({runs}):
    t = time.perf_counter()
    ds = ms.ac_conductivity(V, 0.9, w, pair_model=False)
    times.append(time.perf_counter() - t)
out = {{"import": t_import, "studies": times, "sigma": [float(x) for x in ds.sigma_ll.values],
       "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
if {signatures}:
    import sys
    from numba.core.registry import CPUDispatcher
    sigs = {{}}
    for name, mod in list(sys.modules.items()):
        if not name.startswith("mottscape"):
            continue
        for attr, f in vars(mod).items():
            if isinstance(f, CPUDispatcher) and f.signatures:
                sigs[f"{{name}}.{{attr}}"] = [str(s) for s in f.signatures]
    out["signatures"] = sigs
print("RESULT " + json.dumps(out))
"""


def _run(code: str, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        raise RuntimeError(f"subprocess failed:\n{proc.stderr}")
    return proc.stdout


def _import_case(stmt: str, after: str, env: dict[str, str]) -> tuple:
    code = IMPORT_SNIPPET.format(stmt=stmt, after=after)
    return ast.literal_eval(_run(code, env).strip().splitlines()[-1])


def _clear_tree_cache() -> int:
    import importlib.util

    spec = importlib.util.find_spec("mottscape")
    assert spec is not None and spec.origin is not None
    removed = 0
    for f in Path(spec.origin).parent.rglob("__pycache__/*.nb[ic]"):
        f.unlink(missing_ok=True)
        removed += 1
    return removed


def _study(n: int, runs: int, env: dict[str, str], signatures: bool) -> dict:
    code = STUDY_SNIPPET.format(n=n, runs=runs, signatures=signatures)
    line = [x for x in _run(code, env).splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--signatures", action="store_true")
    p.add_argument("--skip-study", action="store_true")
    args = p.parse_args(argv)
    env = dict(os.environ)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")

    cases = {
        "import numpy, scipy": ("import numpy, scipy", "pass"),
        "import mottscape": ("import mottscape", "pass"),
        "import mottscape; mottscape.ac_conductivity": ("import mottscape",
                                                         "mottscape.ac_conductivity"),
    }
    got: dict[str, list] = {k: [] for k in cases}
    for _ in range(args.repeats):  # alternate, so that load changes hit all cases alike
        for k, (stmt, after) in cases.items():
            got[k].append(_import_case(stmt, after, env))
    base = statistics.median(r[0] + r[1] for r in got["import numpy, scipy"])
    base_rss = statistics.median(r[2] for r in got["import numpy, scipy"])
    print("\n| import | time (s) | / numpy+scipy | peak RSS (MiB) | / numpy+scipy "
          "| heavy modules loaded |")
    print("|---|---|---|---|---|---|")
    for k, rows in got.items():
        t = statistics.median(r[0] + r[1] for r in rows)
        rss = statistics.median(r[2] for r in rows)
        print(f"| `{k}` | {t:.3f} | {t / base:.2f} | {rss:.0f} | {rss / base_rss:.2f} "
              f"| {', '.join(rows[-1][3]) or '-'} |")

    if args.skip_study:
        return
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env_cache = {**env, "NUMBA_CACHE_DIR": cache}
        removed = _clear_tree_cache()
        cold = _study(args.size, 1, env_cache, args.signatures)
        warm = _study(args.size, 2, env_cache, False)
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env_cache = {**env, "NUMBA_CACHE_DIR": cache}
        t = time.perf_counter()
        _run("from mottscape.cli import main; main(['compile', '-q'])", env_cache)
        t_compile = time.perf_counter() - t
        after = _study(args.size, 1, env_cache, False)
    if not all(a == b for a, b in zip(cold["sigma"], warm["sigma"], strict=True)):
        print("WARNING: cold and warm sigma differ")
    hot = warm["studies"][1]
    print(f"\nstudy: 2D block {args.size}^2, E_F = 0.9, 16 frequencies, pair_model=False "
          f"(in-tree cache files removed: {removed})")
    print("\n| run | import (s) | study (s) | study / hot | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    print(f"| cold (empty numba cache) | {cold['import']:.2f} | {cold['studies'][0]:.2f} "
          f"| {cold['studies'][0] / hot:.2f} | {cold['rss_mib']:.0f} |")
    print(f"| warm cache (new process) | {warm['import']:.2f} | {warm['studies'][0]:.2f} "
          f"| {warm['studies'][0] / hot:.2f} | {warm['rss_mib']:.0f} |")
    print(f"| hot (same process, again) | - | {hot:.2f} | 1.00 | - |")
    print(f"| first study after `mottscape compile` ({t_compile:.1f} s, a new empty cache) "
          f"| {after['import']:.2f} | {after['studies'][0]:.2f} "
          f"| {after['studies'][0] / hot:.2f} | {after['rss_mib']:.0f} |")
    if args.signatures:
        print("\ncompiled specializations in the cold study:")
        for name, sigs in sorted(cold["signatures"].items()):
            print(f"  {name}: {len(sigs)}")
            for s in sigs:
                print("     ", textwrap.shorten(s, 200))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
