"""Memory of the box eigenvectors the pair model keeps for ``state_amplitude="midpoint"``.

Usage (from the repository root)::

    .venv/bin/python benchmarks/bench_state_vectors.py

On the samples of ``bench_pairs.py`` (2D block 256^2 with merged and per-basin boxes, 3D
Anderson 20^3 with a box per basin): the states near E_F found with and without
``keep_vectors`` (time of each), and the bytes of the kept vectors
(``StateVectors.nbytes``: vectors, cells, order and readable masks of every box that holds a
kept state), per cell and per state.
"""

from __future__ import annotations

import time

import mottscape as ms
from bench_pairs import case
from mottscape.basin_states import basin_states
from mottscape.options import Options
from mottscape.pairs import omega_edges

CASES = (("2d", "merged"), ("2d", "per_basin"), ("3d", "per_basin"))


def main() -> None:
    for name, boxes in CASES:
        s, ef, w = case(name)
        p = ms.run_pipeline(s, ef, w, options=Options(estimator="eq17"))
        window = float(s.units.omega_to_energy(omega_edges(w))[-1])
        metric = p.metric_landscape.agmon_metric(ef)
        seconds = {}
        for keep in (False, True):
            t = time.perf_counter()
            st = basin_states(s, p.basins, metric, ef, window, merge=boxes == "merged",
                              landscape=p.landscape, keep_vectors=keep)
            seconds[keep] = time.perf_counter() - t
        assert st.vectors is not None
        nbytes = st.vectors.nbytes
        print(f"{name} {boxes}: {s.grid.size} cells, {st.n} states, {st.n_boxes} boxes; kept "
              f"vectors {nbytes / 2**20:.1f} MiB = {nbytes / s.grid.size:.0f} B/cell, "
              f"{nbytes / max(st.n, 1) / 1024:.0f} KiB/state; time without/with "
              f"{seconds[False]:.2f}/{seconds[True]:.2f} s")


if __name__ == "__main__":
    main()
