"""Benchmark of bounded basin-to-basin Agmon distances (mottscape.agmon.basin_distances).

2D Anderson-like block potentials (4x4 blocks of uniform [0, 4] values), E_F in the band tail
(the 5 % quantile of V_u), bound ~ 10. Prints the time per N and the log-log slope, and saves a
plot in benchmarks/results/.

    .venv/bin/python benchmarks/bench_agmon.py [--sizes 256 512 1024 2048]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mottscape import find_basins, solve_landscape
from mottscape.agmon import basin_distances


def run(n: int, bound: float, quantile: float, repeat: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    V = np.repeat(np.repeat(rng.uniform(0, 4, (n // 4, n // 4)), 4, 0), 4, 1)
    t0 = time.perf_counter()
    land = solve_landscape(V)
    t_land = time.perf_counter() - t0
    E = float(np.quantile(land.effective_potential, quantile))
    basins = find_basins(land, E)
    times = []
    for _ in range(repeat):  # best of `repeat`: the machine may be shared
        t0 = time.perf_counter()
        pairs = basin_distances(land, basins, bound=bound)
        times.append(time.perf_counter() - t0)
    t_agmon = min(times)
    return {"n": n, "N": n * n, "basins": basins.n, "pairs": len(pairs), "t_land": t_land,
            "t_agmon": t_agmon}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--bound", type=float, default=10.0)
    ap.add_argument("--quantile", type=float, default=0.05)
    ap.add_argument("--repeat", type=int, default=3, help="time basin_distances best of N")
    args = ap.parse_args()
    rows = []
    print(f"{'N':>10} {'basins':>7} {'pairs':>8} {'landscape s':>12} {'agmon s':>9} "
          f"{'us/cell':>8} {'ms/basin':>9}")
    for n in args.sizes:
        r = run(n, args.bound, args.quantile, args.repeat)
        rows.append(r)
        print(f"{r['N']:>10} {r['basins']:>7} {r['pairs']:>8} {r['t_land']:>12.2f} "
              f"{r['t_agmon']:>9.2f} {1e6 * r['t_agmon'] / r['N']:>8.2f} "
              f"{1e3 * r['t_agmon'] / max(r['basins'], 1):>9.2f}", flush=True)
    N = np.array([r["N"] for r in rows], float)
    T = np.array([r["t_agmon"] for r in rows])
    slope = np.polyfit(np.log(N), np.log(T), 1)[0] if len(rows) > 1 else float("nan")
    print(f"log-log slope of basin_distances time vs N: {slope:.2f}")
    out_txt = Path(__file__).parent / "results" / "bench_agmon.txt"
    out_txt.parent.mkdir(parents=True, exist_ok=True)
    with open(out_txt, "w") as fh:
        fh.write(f"# bound={args.bound} quantile={args.quantile} best of {args.repeat}\n")
        fh.write("N basins pairs t_landscape_s t_agmon_s\n")
        for r in rows:
            fh.write(f"{r['N']} {r['basins']} {r['pairs']} {r['t_land']:.3f} "
                     f"{r['t_agmon']:.3f}\n")
        fh.write(f"# slope {slope:.3f}\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.loglog(N, T, "o-", label=f"basin_distances (slope {slope:.2f})")
    ax.loglog(N, T[0] * N / N[0], "k--", lw=0.8, label="linear")
    ax.set_xlabel("N (cells)")
    ax.set_ylabel("time (s)")
    ax.set_title(f"2D block potential, bound={args.bound:g}, E at q={args.quantile:g}")
    ax.legend()
    out = Path(__file__).parent / "results" / "bench_agmon.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"plot saved to {out}")


if __name__ == "__main__":
    main()
