"""Benchmark of the exact Kubo-Greenwood reference (issue 3 targets).

Run with ``python benchmarks/bench_exact.py [--quick] [--check] [--big]``. Prints wall and
CPU times (the CPU time of this process, all threads: a fairer number on a shared machine) for

* a 1D chain of 10^5 sites (block potential, wells of 8 sites, box [0, 4]) with a window of a
  few hundred states, by the segmented tridiagonal method;
* a 2D lattice of 256 x 256 (blocks of 4 x 4 sites, box [0, 4]) with a window of a few hundred
  states, by shift-invert spectrum slicing.

``--check`` also compares the 1D segments with the whole-chain tridiagonal solve on a shorter
chain and prints the largest relative difference per bin.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mottscape.exact import count_eigenvalues_below, kubo_greenwood
from mottscape.hamiltonian import build_hamiltonian


def block_potential(shape, block, rng, vmax=4.0):
    coarse = rng.uniform(0.0, vmax, tuple(-(-n // block) for n in shape))
    V = coarse
    for ax in range(len(shape)):
        V = np.repeat(V, block, axis=ax)
    return V[tuple(slice(0, n) for n in shape)]


def bench_1d(n=100_000, ef=0.2, wmax=0.05, seed=1, check=False):
    rng = np.random.default_rng(seed)
    V = block_potential((n,), 8, rng)
    ham = build_hamiltonian(V)
    lo, hi = count_eigenvalues_below(ham, [ef - wmax, ef + wmax])
    edges = np.geomspace(wmax * 1e-4, wmax, 17)
    t, c = time.perf_counter(), time.process_time()
    ds = kubo_greenwood(V, ef, edges, method="segments")
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(f"1D n={n}: E_F={ef} hbar*w_max={wmax}: {hi - lo} window states, "
          f"{int(ds.n_states)} found, padding={ds.attrs['padding']} core={ds.attrs['segment']} "
          f"(xi ~ {ds.attrs['xi_estimate']:.2f}): {dt:.2f} s wall, {dc:.2f} s CPU "
          f"(solve {ds.attrs['solve_seconds']:.2f} s, pairs {ds.attrs['pairs_seconds']:.2f} s)")
    if check:
        m = 20_000
        Vs = V[:m]
        t = time.perf_counter()
        whole = kubo_greenwood(Vs, ef, edges, method="tridiagonal")
        tw = time.perf_counter() - t
        scale = whole.sigma.values.max()
        ok = whole.sigma.values > 1e-8 * scale
        print(f"  check n={m}: whole chain (eigh_tridiagonal, stemr) {tw:.2f} s, "
              f"{int(whole.n_states)} states, {ok.sum()} bins above 1e-8 of the largest")
        for pad in (None, 16, 24, 32, 48):
            t = time.perf_counter()
            seg = kubo_greenwood(Vs, ef, edges, method="segments", padding=pad)
            ts = time.perf_counter() - t
            diff = np.abs(seg.sigma.values - whole.sigma.values)
            rel = diff[ok] / whole.sigma.values[ok]
            print(f"    segments padding={seg.attrs['padding']} core={seg.attrs['segment']} "
                  f"({ts:.2f} s): max |diff|/max(sigma) {diff.max() / scale:.1e}, "
                  f"max relative diff per bin {rel.max():.1e}")
    return dt


def bench_2d(n=256, ef=0.8, wmax=0.1, seed=1):
    rng = np.random.default_rng(seed)
    V = block_potential((n, n), 4, rng)
    ham = build_hamiltonian(V)
    lo, hi = count_eigenvalues_below(ham, [ef - wmax, ef + wmax])
    edges = np.geomspace(wmax * 1e-3, wmax, 13)
    t, c = time.perf_counter(), time.process_time()
    ds = kubo_greenwood(V, ef, edges, method="shift-invert")
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(f"2D {n}x{n}: E_F={ef} hbar*w_max={wmax}: {hi - lo} window states, "
          f"{int(ds.n_states)} found, {ds.attrs['factorisations']} shifts: {dt:.2f} s wall, "
          f"{dc:.2f} s CPU "
          f"(solve {ds.attrs['solve_seconds']:.2f} s, pairs {ds.attrs['pairs_seconds']:.2f} s, "
          f"max residual {ds.attrs['max_residual']:.1e})")
    return dt


def bench_3d(n=40, ef=1.5, wmax=0.1, seed=1):
    rng = np.random.default_rng(seed)
    V = block_potential((n, n, n), 2, rng)
    ham = build_hamiltonian(V)
    lo, hi = count_eigenvalues_below(ham, [ef - wmax, ef + wmax])
    edges = np.geomspace(wmax * 1e-3, wmax, 13)
    t, c = time.perf_counter(), time.process_time()
    ds = kubo_greenwood(V, ef, edges, method="shift-invert")
    dt, dc = time.perf_counter() - t, time.process_time() - c
    print(f"3D {n}^3: E_F={ef} hbar*w_max={wmax}: {hi - lo} window states, "
          f"{int(ds.n_states)} found, {ds.attrs['factorisations']} shifts: {dt:.2f} s wall, "
          f"{dc:.2f} s CPU "
          f"(solve {ds.attrs['solve_seconds']:.2f} s, pairs {ds.attrs['pairs_seconds']:.2f} s)")
    return dt


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller samples (smoke run)")
    p.add_argument("--check", action="store_true", help="segments vs whole chain")
    p.add_argument("--big", action="store_true", help="also 10^6 sites in 1D and a 3D case")
    args = p.parse_args()
    if args.quick:
        bench_1d(n=20_000, check=args.check)
        bench_2d(n=96, ef=0.9)
    else:
        bench_1d(check=args.check)
        bench_2d()
    if args.big:
        bench_1d(n=1_000_000, ef=0.3, wmax=0.1)
        bench_3d()


if __name__ == "__main__":
    main()
