"""Benchmark: one sample's whole-sample shift-invert exact reference, in one process and as
pieces (its first shifts) on the ensemble engine's workers.

Run with ``python benchmarks/bench_exact_slices.py [--study FILE] [--realization R]
[--workers 2]``. Default: realization 0 of ``docs/validation/anderson_3d_48.toml`` (3D
Anderson [0, 20], 48^3, E_F = 4.5), the sample of issue 10's "10 minutes per 48^3 sample",
on the bins its validation uses (``validation._edges``: the study's omega range as bin edges).
In one run, one after the other:

1. ``kubo_greenwood`` in this process (one core: the shifts in turn);
2. ``ensemble.exact_references`` on ``--workers`` local worker processes (the inertia
   counts as one task, then the first shifts as tasks, the merge and the pair sum here),
   engine start-up included;

and checks that both give the same sigma bit for bit. With ``--even`` it first runs (0.)
``kubo_greenwood`` in this process with the first shifts evenly spaced (the plan without its
profile of inertia counts), so that the profile's effect is measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import mottscape as ms
from mottscape import ensemble
from mottscape.exact import _tasks
from mottscape.runner import engine
from mottscape.validation import _edges

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "docs/validation/anderson_3d_48.toml"))
    ap.add_argument("--realization", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--even", action="store_true",
                    help="also time the evenly spaced first shifts (no count profile)")
    args = ap.parse_args()
    study = ms.load_study(args.study)
    r = args.realization
    sample = study.make_sample(r)
    ef, edges = study.conductivity.fermi_energy, _edges(study)
    plan = ms.exact.plan_exact(sample, ef, edges)
    print(f"{Path(args.study).name}, realization {r}: {sample.shape}, "
          f"{plan.expected if plan else '?'} window states, "
          f"{plan.n_pieces if plan else '-'} pieces ({plan.method if plan else 'not split'})",
          flush=True)

    if args.even:
        default = _tasks.PROFILE_INTERVALS
        _tasks.PROFILE_INTERVALS = 1  # counts at the window's ends only: even spacing
        t = time.perf_counter()
        even = ms.kubo_greenwood(sample, ef, edges)
        print(f"in one process, evenly spaced first shifts: {time.perf_counter() - t:.1f} s "
              f"(factorisations {even.attrs.get('factorisations')})", flush=True)
        _tasks.PROFILE_INTERVALS = default

    t = time.perf_counter()
    one = ms.kubo_greenwood(sample, ef, edges)
    t_one = time.perf_counter() - t
    print(f"in one process: {t_one:.1f} s (factorisations {one.attrs.get('factorisations')}, "
          f"pair sum {one.attrs.get('pairs_seconds', float('nan')):.1f} s)", flush=True)

    t = time.perf_counter()
    with engine(args.workers) as client:
        out = ensemble.exact_references(study, [r], client=client, edges=edges)[r]
    t_pieces = time.perf_counter() - t
    if isinstance(out, tuple):
        raise SystemExit(f"pieces failed: {out}")
    same = np.array_equal(out.sigma.values, one.sigma.values)
    print(f"as pieces on {args.workers} workers: {t_pieces:.1f} s; "
          f"speed-up {t_one / t_pieces:.2f}x; sigma identical: {same}")


if __name__ == "__main__":
    main()
