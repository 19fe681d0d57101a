"""Benchmark of the exact reference's sparse factorisations: MKL PARDISO against SuperLU.

Run with ``python benchmarks/bench_factor.py [--sizes 24 32 48] [--window 24]``. On 3D
Anderson samples (on-site energies uniform in [0, 20], seed 3001, Dirichlet) it times, in one
process and one after the other so that each ratio is measured in one run:

* one factorisation of ``H - 4.5`` (the lower band tail of the validation models) with each
  back-end, SuperLU as the shift-invert slices make it (diagonal pivots preferred; on the
  minimum-degree order they used until 2026-12-06 and on the grid's nested dissection they
  use now) and as the inertia counts make it (unpivoted, nested-dissection order);
* the inertia count below 4.5 with each back-end (they must agree);
* with ``--window L``, the whole exact reference ``kubo_greenwood`` on the L^3 sample with
  each back-end (E_F = 4.5, 6 bins up to hbar omega = 0.5), and its largest relative
  difference in sigma.

PARDISO runs on one thread (as the package runs it); SuperLU is single-threaded.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import mottscape as ms
from mottscape.exact import count_eigenvalues_below, kubo_greenwood
from mottscape.exact._counts import nested_dissection
from mottscape.exact._factor import ENV_VAR, ShiftedFactor, _pardiso_loads
from mottscape.hamiltonian import build_hamiltonian

SHIFT = 4.5


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def with_backend(backend: str, fn):
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = backend
    try:
        return timed(fn)
    finally:
        if old is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = old


def factor_once(A, purpose, order=None):
    with ShiftedFactor(A, SHIFT, purpose=purpose, order=order) as f:
        return f.negative


def bench_size(L: int, superlu_max: int) -> None:
    V = ms.disorder.anderson((L,) * 3, width=20.0, seed=3001)
    ham = build_hamiltonian(V)
    A = ham.matrix("csc")
    tp, neg_p = with_backend("pardiso", lambda: factor_once(A, "solve"))
    line = f"{L}^3 ({A.shape[0]} rows): PARDISO factor {tp:.2f} s (negative {neg_p})"
    tc, count = with_backend("pardiso", lambda: count_eigenvalues_below(ham, [SHIFT])[0])
    line += f", count {tc:.2f} s ({count})"
    if L <= superlu_max:
        ts, _ = with_backend("superlu", lambda: factor_once(A, "solve"))
        order = nested_dissection(ham.grid)
        tn, _ = with_backend("superlu", lambda: factor_once(A, "solve", order))
        ti, neg_s = with_backend("superlu", lambda: factor_once(A, "inertia", order))
        line += (f"; SuperLU slice factor, minimum degree {ts:.2f} s ({ts / tp:.1f}x), "
                 f"nested dissection {tn:.2f} s ({tn / tp:.1f}x); inertia factor "
                 f"{ti:.2f} s ({ti / tp:.1f}x, negative {neg_s})")
        assert neg_s == neg_p == count, "the back-ends disagree on the inertia"
    print(line, flush=True)


def bench_window(L: int) -> None:
    V = ms.disorder.anderson((L,) * 3, width=20.0, seed=3001)
    edges = np.geomspace(0.02, 0.5, 7)
    res = {}
    for backend in ("pardiso", "superlu"):
        t, ds = with_backend(backend, lambda: kubo_greenwood(V, SHIFT, edges,
                                                             method="shift-invert"))
        res[backend] = (t, ds)
        print(f"{L}^3 kubo_greenwood ({int(ds.n_states)} window states, "
              f"{ds.attrs['factorisations']} slices) with {backend}: {t:.1f} s", flush=True)
    a, b = (res[k][1].sigma.values for k in ("pardiso", "superlu"))
    print(f"  SuperLU / PARDISO time {res['superlu'][0] / res['pardiso'][0]:.1f}x; largest "
          f"relative difference in sigma {np.max(np.abs(a - b) / np.abs(b).max()):.1e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[24, 32, 48])
    p.add_argument("--superlu-max", type=int, default=48,
                   help="largest L timed with SuperLU too (it takes minutes at 48)")
    p.add_argument("--window", type=int, nargs="*", default=[],
                   help="sizes L on which to time the whole kubo_greenwood with each back-end")
    args = p.parse_args()
    if not _pardiso_loads():
        raise SystemExit("MKL PARDISO does not load: pip install mottscape[mkl]")
    warm = build_hamiltonian(np.ones((16, 16, 16))).matrix("csc")  # MKL's first load
    with_backend("pardiso", lambda: factor_once(warm, "solve"))
    for L in args.sizes:
        bench_size(L, args.superlu_max)
    for L in args.window:
        bench_window(L)


if __name__ == "__main__":
    main()
