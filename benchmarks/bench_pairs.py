"""Cost of the pair model (pair_model=True) against the LL pipeline and the exact reference.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_pairs.py [1d] [2d] [2d512] [2d1024] [3d]

One sample per case, the three timed in one run (ratios cancel the machine's load): the LL
pipeline alone (``estimator="eq17"``: the default estimator is the pair model), the same
with the pair model, and ``kubo_greenwood`` on the pair model's bins (in 2D also by overlapping
boxes, ``method="boxes"``; at 1024^2 only that way: see :data:`EXACT`).
Cases: 1D block chain of 2^17 sites (E_F = 1), 2D block 256^2 (E_F = 0.9), 2D 512^2
(realization 0 of the validation model ``docs/validation/gaussian_2d_512.toml``, its E_F and
frequencies), 2D 1024^2 (the same model and seed at twice the side, its E_F and
frequencies), 3D Anderson box [0, 20] 20^3 (E_F between the 40th and 41st eigenvalues).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import mottscape as ms
from mottscape.exact import kubo_greenwood, lowest_eigenvalues
from mottscape.pairs import omega_edges
from mottscape.sample import make_sample


def case(name: str):
    if name == "1d":
        V = ms.disorder.block((1 << 17,), block=8, width=4.0, seed=1)
        return make_sample(V), 1.0, np.geomspace(1.5e-3, 0.15, 8)
    if name == "2d":
        V = ms.disorder.block((256, 256), block=4, width=4.0, seed=3)
        return make_sample(V), 0.9, np.geomspace(5e-3, 0.2, 6)
    if name in ("2d512", "2d1024"):
        st = ms.load_study(Path(__file__).resolve().parents[1]
                           / "docs/validation/gaussian_2d_512.toml")
        if name == "2d1024":
            st = dataclasses.replace(
                st, potential=dataclasses.replace(st.potential, shape=(1024, 1024)))
        return st.make_sample(0), st.conductivity.fermi_energy, st.omegas()
    V = ms.disorder.anderson((20, 20, 20), width=20.0, seed=1)
    s = make_sample(V)
    ev = lowest_eigenvalues(s, 41)
    return s, float(0.5 * (ev[39] + ev[40])), np.geomspace(0.02, 0.5, 6)


def timed(f, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    f(*args, **kwargs)
    return time.perf_counter() - t0


def alternated(runs: dict[str, Callable[[], Any]], repeats: int
               ) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Every run ``repeats`` times, the runs alternated so that a drift of the machine's load
    falls on all of them alike (A/B scripts: bench_box_tol, bench_padding, bench_box_factor).

    Returns the wall times of each run and its last result.
    """
    times: dict[str, list[float]] = {k: [] for k in runs}
    last: dict[str, Any] = {}
    for _ in range(repeats):
        for k, f in runs.items():
            t0 = time.perf_counter()
            last[k] = f()
            times[k].append(time.perf_counter() - t0)
    return times, last


def largest_change(ref: np.ndarray, other: np.ndarray) -> float:
    """max |other - ref| / |ref| (absolute where ref is 0)."""
    return float(np.max(np.abs(other - ref) / np.where(ref != 0, np.abs(ref), 1.0),
                        initial=0.0))


#: Exact references timed per case: the default (``method="auto"``) and, in 2D, the exact
#: boxes (``method="boxes"``). On the Gaussian field the boxes are padded by 16 cells, as in
#: the table of docs/performance.md: at the default 8 their inertia check found 652 of 654
#: states (512^2) and 2,703 of 2,710 (1024^2) until the fourteenth session; now 8 holds at
#: 512^2 and 1024^2 loses one state and is redone at 16 by kubo_greenwood itself.
#: At 1024^2 only the boxes: the whole-sample slicing's vectors need ~43 GiB there.
EXACT: dict[str, dict[str, dict[str, Any]]] = {
    "2d": {"auto": {}, "boxes": {"method": "boxes"}},
    "2d512": {"auto": {}, "boxes": {"method": "boxes", "padding": 16}},
    "2d1024": {"boxes": {"method": "boxes", "padding": 16}}}


def main(names) -> None:
    print("| case | LL pipeline (s) | with pair model (s) | exact, auto (s) | exact, boxes (s) "
          "| exact / pair model |")
    print("|---|---|---|---|---|---|")
    for name in names:
        s, ef, w = case(name)
        ms.run_pipeline(s, ef, w[:2], pair_model=True)  # compile the kernels
        t_ll = timed(ms.run_pipeline, s, ef, w, estimator="eq17")  # the LL pipeline alone
        t_pm = timed(ms.run_pipeline, s, ef, w, pair_model=True)
        # the exact reference can take an hour: the pair model's times first
        print(f"[{name}] LL pipeline {t_ll:.2f} s, with pair model {t_pm:.1f} s; "
              "exact reference running", file=sys.stderr, flush=True)
        t_ex, sigma = {}, {}
        for method, kw in EXACT.get(name, {"auto": {}}).items():
            t0 = time.perf_counter()
            sigma[method] = kubo_greenwood(s, ef, omega_edges(w), **kw)["sigma"].values
            t_ex[method] = time.perf_counter() - t0
        if len(sigma) == 2:
            rel = [largest_change(a[None], b[None]) for a, b in zip(sigma["auto"],
                                                                     sigma["boxes"],
                                                                     strict=True)]
            print(f"[{name}] exact boxes against auto, relative difference per bin: "
                  + ", ".join(f"{x:.2g}" for x in rel), file=sys.stderr)
        shown = {m: f"{t_ex[m]:.1f}" if m in t_ex else "-" for m in ("auto", "boxes")}
        ratios = ", ".join(f"{t / t_pm:.2g} ({m})" for m, t in t_ex.items())
        print(f"| {name} {s.shape} | {t_ll:.2f} | {t_pm:.1f} | {shown['auto']} | "
              f"{shown['boxes']} | {ratios} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["1d", "2d"])
