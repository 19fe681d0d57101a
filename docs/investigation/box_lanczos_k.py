"""How many Lanczos pairs the pair model's shift-invert boxes should ask for (issue 11).

A box asks ARPACK for the k eigenpairs nearest its window centre and asks again with 2 k when
all k fall inside the window (``box_solve.box_eigenpairs``); the first k is 1.3 times the box's
landscape-law count of window states, plus 3. On the 3D Anderson model at W = 20 the landscape
law counts about a quarter of a box's states, so every box runs Lanczos three times. The
alternative measured here, not adopted:

- **calibrated**: the count scaled by found / count of the last box whose first k fell short
  (the boxes are solved in a fixed order, so the numbers repeat), and a miss extrapolated from
  the k values found (the window holds about k half / reach of them) instead of doubled.

Both are timed on the whole pipeline with the pair model, alternated ``--repeats`` times in
one process (medians: the ratio cancels the machine's load), with the Lanczos runs and
operator applications (solves) of the last repeat and the largest relative change of
sigma_pairs::

    NUMBA_NUM_THREADS=1 .venv/bin/python docs/investigation/box_lanczos_k.py [2d512] [3d24]

``--boxes`` times instead, on 12 boxes spread over the ``3d24`` sample's list (padding 15),
one Lanczos run at k = 1.3 x the box's window count + 3 with ARPACK's default ``ncv`` = 2 k + 1,
with ``ncv`` = 1.5 k + 10 and 3 k, and the window cut into 2 and 3 energy slices (one
factorisation and run per slice)::

    NUMBA_NUM_THREADS=1 .venv/bin/python docs/investigation/box_lanczos_k.py --boxes

Cases: ``2d512`` of ``benchmarks/bench_pairs.py`` (merged boxes), and ``3d24``: realization 0
of the validation model ``docs/validation/anderson_3d.toml`` (24^3, W = 20, a box per basin,
as the validation runs it). Result (2026-12-07, docs/performance.md): 3D runs 2124 -> 710,
solves 514k -> 321k, wall time 0.99x; 2D unchanged (no box fell short). ARPACK's own work at
the last, largest k is the cost, not the shorter runs before it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla

import mottscape as ms
from mottscape import basin_states, box_solve, state_boxes

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_pairs import alternated, case, largest_change  # noqa: E402 - the same samples

PACKAGE = basin_states.box_solver


def calibrated_solver(sample, A, lo, hi, whole, guess=None):
    """``box_solve.box_solver`` with the first k scaled by the last shortfall (the
    alternative)."""
    if whole or guess is None or (sample.ndim == 1 and not sample.grid.periodic):
        return PACKAGE(sample, A, lo, hi, whole, guess)
    scale = [1.0]

    def solve(flat, axes):
        count = scale[0] * float(guess[flat].sum())
        w, v = extrapolated_eigenpairs(A[flat][:, flat], lo, hi, count)
        first = max(4, math.ceil(box_solve.GUESS_FACTOR * count) + 3)
        if count > 0 and first <= w.size:  # the first k fell short
            scale[0] *= w.size / count
        return w, v
    return solve


def extrapolated_eigenpairs(A, lo: float, hi: float, guess: float):
    """``box_solve.box_eigenpairs`` with a miss extrapolated instead of doubled."""
    from mottscape.exact._windows import _solve_dense

    if A.shape[0] <= box_solve.DENSE_BOX_MAX:
        return _solve_dense(A, lo, hi)
    k = max(4, math.ceil(box_solve.GUESS_FACTOR * guess) + 3)
    return _shift_invert(A, lo, hi, k, extrapolated)


def extrapolated(k: int, reach: float, half: float) -> int:
    """The next k after a miss: the window holds about k half / reach states, times 1.3, + 3."""
    return math.ceil(box_solve.GUESS_FACTOR * k * half / max(reach, 1e-6 * half)) + 3


def doubled(k: int, reach: float, half: float) -> int:
    """The next k after a miss, as ``box_solve.box_eigenpairs`` asks for it."""
    return 2 * k


def _shift_invert(A, lo: float, hi: float, k: int, grow, ncv=None):
    """Eigenpairs of A in (lo, hi] by shift-invert Lanczos from k pairs, ascending.

    ``grow(k, reach, half)`` gives the next k while all k values found lie in the window;
    ``ncv(k)`` the Lanczos basis size (ARPACK's default 2 k + 1 when None).
    """
    from mottscape.exact._factor import ShiftedFactor
    from mottscape.exact._windows import _start_vector

    n = A.shape[0]
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    with ShiftedFactor(A, centre, pardiso_min_rows=box_solve.BOX_PARDISO_MIN_ROWS) as f:
        op = f.operator()
        while True:
            k = min(k, n - 2)
            w, v = spla.eigsh(A, k=k, sigma=centre, which="LM", OPinv=op, v0=_start_vector(n),
                              tol=box_solve.BOX_LANCZOS_TOL,
                              ncv=None if ncv is None else min(n - 1, max(ncv(k), k + 2)))
            reach = float(np.abs(w - centre).max())
            if reach > half or k >= n - 2:
                break
            k = grow(k, reach, half)
    order = np.argsort(w)
    w, v = w[order], v[:, order]
    keep = (w > lo) & (w <= hi)
    return w[keep], v[:, keep]


@contextmanager
def counted():
    """Count eigsh calls and their operator applications (``OPinv.matvec``)."""
    tally = {"runs": 0, "solves": 0}
    eigsh = spla.eigsh

    def wrapped(A, *args, OPinv=None, **kwargs):
        tally["runs"] += 1
        inner = OPinv.matvec

        def matvec(x):
            tally["solves"] += 1
            return inner(x)
        op = spla.LinearOperator(OPinv.shape, matvec=matvec, dtype=OPinv.dtype)
        return eigsh(A, *args, OPinv=op, **kwargs)
    spla.eigsh = wrapped
    try:
        yield tally
    finally:
        spla.eigsh = eigsh


def setup(name: str):
    if name == "3d24":
        st = ms.load_study(ROOT / "docs/validation/anderson_3d.toml")
        return (st.make_sample(0), st.conductivity.fermi_energy, st.omegas(),
                {"state_boxes": "per_basin"})
    sample, ef, omega = case(name)
    return sample, ef, omega, {}


def pipeline(sample, ef, omega, opts, solver, tally: dict):
    def run() -> np.ndarray:
        basin_states.box_solver = solver
        with counted() as t:
            res = ms.run_pipeline(sample, ef, omega, pair_model=True, **opts)
        tally.update(t)
        assert res.pair_model is not None
        return np.asarray(res.pair_model.sigma)
    return run


def _window(A, lo: float, hi: float, k: int, ncv=None) -> np.ndarray:
    """Eigenvalues of A in (lo, hi] from k pairs, k doubled on a miss (``ncv(k)``)."""
    return _shift_invert(A, lo, hi, k, doubled, ncv)[0]


def per_box() -> None:
    """The ``--boxes`` table: ARPACK's ncv and energy slices on single 3D boxes."""
    import time

    from mottscape.basins import find_basins
    from mottscape.pairs import omega_edges

    sample, ef, omega, _ = setup("3d24")
    land = ms.solve_landscape(sample)
    basins = find_basins(land, ef)
    metric = land.agmon_metric(ef)
    layout = state_boxes.layout_boxes(sample, basins, metric, state_boxes.PADDING_AGMON,
                                      merge=False)  # a box per basin
    lo, hi = layout.lo, layout.hi
    A = sample.hamiltonian.matrix("csr")
    window = float(sample.units.omega_to_energy(omega_edges(omega)[-1]))
    e0, e1 = ef - window, ef + window

    def sliced(M, m: int, n_states: int) -> np.ndarray:
        cuts = np.linspace(e0, e1, m + 1)
        k = math.ceil(box_solve.GUESS_FACTOR * n_states / m) + 3
        return np.concatenate([_window(M, a, b, k) for a, b in itertools.pairwise(cuts)])
    totals: dict[str, float] = {}
    print("| box cells | window states | " + " | ".join(
        ["ncv 2k+1 (s)", "ncv 1.5k+10", "ncv 3k", "2 slices", "3 slices"]) + " |")
    print("|---|---|---|---|---|---|---|")
    for b in np.linspace(0, len(lo) - 1, 12).astype(int):
        axes = [np.arange(x, y) for x, y in zip(lo[b], hi[b], strict=True)]
        flat, _ = basin_states._box_cells(sample, axes)
        M = A[flat][:, flat]
        n_states = _window(M, e0, e1, 16).size
        k = math.ceil(box_solve.GUESS_FACTOR * n_states) + 3
        runs = {"2k+1": (M, e0, e1, k), "1.5k+10": (M, e0, e1, k, lambda j: int(1.5 * j) + 10),
                "3k": (M, e0, e1, k, lambda j: 3 * j)}
        row = []
        for name in ("2k+1", "1.5k+10", "3k", "2 slices", "3 slices"):
            t0 = time.perf_counter()
            found = (_window(*runs[name]) if name in runs
                     else sliced(M, int(name[0]), n_states)).size
            dt = time.perf_counter() - t0
            assert found == n_states, (name, found, n_states)
            totals[name] = totals.get(name, 0.0) + dt
            row.append(f"{dt:.3f}")
        print(f"| {M.shape[0]} | {n_states} | " + " | ".join(row) + " |", flush=True)
    print("| all | | " + " | ".join(f"{t:.2f}" for t in totals.values()) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cases", nargs="*", default=["2d512", "3d24"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--boxes", action="store_true", help="the per-box table instead")
    args = ap.parse_args()
    if args.boxes:
        per_box()
        return
    print("| case | package (s) | calibrated (s) | ratio | Lanczos runs | operator applications "
          "| max rel. change of sigma_pairs |")
    print("|---|---|---|---|---|---|---|")
    try:
        for name in args.cases:
            sample, ef, omega, opts = setup(name)
            ms.run_pipeline(sample, ef, omega[:2], estimator="eq17")  # compile the kernels
            old: dict = {}
            new: dict = {}
            times, sigma = alternated(
                {"package": pipeline(sample, ef, omega, opts, PACKAGE, old),
                 "calibrated": pipeline(sample, ef, omega, opts, calibrated_solver, new)},
                args.repeats)
            t0, t1 = np.median(times["package"]), np.median(times["calibrated"])
            change = largest_change(sigma["package"], sigma["calibrated"])
            print(f"| {name} {sample.shape} | {t0:.1f} | {t1:.1f} | {t1 / t0:.3f} "
                  f"| {old['runs']} -> {new['runs']} | {old['solves']} -> {new['solves']} "
                  f"| {change:.1e} |", flush=True)
    finally:
        basin_states.box_solver = PACKAGE


if __name__ == "__main__":
    main()
