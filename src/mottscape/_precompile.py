"""Compile the numba kernels once, into numba's on-disk cache (``mottscape compile``).

Every kernel is ``@njit(cache=True)``: the first call compiles it (seconds per kernel, about
25 s in all for a 2D study on a laptop) and writes it to numba's cache, and every later process
loads it in milliseconds. Run after installing (``mottscape compile``), this takes the compile
time out of the user's first study. Where the cache goes is numba's choice: ``NUMBA_CACHE_DIR``
if set, else the ``__pycache__`` beside the sources if writable, else a user-wide directory
(``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``), which serves read-only installs. Entries
are keyed by the source file's time stamp, the argument types and the CPU, so a new version of
mottscape or numba, or another machine, compiles again (and this command may be re-run).

The kernels are compiled by running small studies that take the same code paths as large
ones (the matrix-free solvers need more than ``SERIAL``-size grids, hence 256^2), so the
compiled specializations are exactly those a study uses; no signature list to keep in sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["compile_kernels", "kernel_cache_dirs"]


def _studies() -> list[tuple[str, Callable[[], object]]]:
    import numpy as np

    from . import disorder
    from .conductivity import ac_conductivity

    V2 = disorder.block((256, 256), block=4, width=4.0, seed=3)  # stencil solvers: > 40 000 cells
    V1 = disorder.block((4096,), block=8, width=4.0, seed=1)
    w = np.geomspace(5e-3, 0.2, 4)
    return [
        ("2D study (landscape, basins, Agmon, eq. 17)",
         lambda: ac_conductivity(V2, 0.9, w, estimator="eq17")),
        ("2D pair model (the default estimator)", lambda: ac_conductivity(V2[:64, :64], 0.9, w)),
        ("1D study", lambda: ac_conductivity(V1, 1.0, w)),
    ]


def compile_kernels(log: Callable[[str], None] | None = None) -> float:
    """Compile (or load from the cache) the kernels a study uses; returns the seconds taken."""
    t0 = time.perf_counter()
    for name, run in _studies():
        t = time.perf_counter()
        run()
        if log is not None:
            log(f"{name}: {time.perf_counter() - t:.1f} s")
    return time.perf_counter() - t0


def kernel_cache_dirs() -> list[str]:
    """The directories numba's cache of the loaded mottscape kernels is in."""
    import sys

    from numba.core.registry import CPUDispatcher

    dirs = set()
    for name, mod in list(sys.modules.items()):
        if name.startswith("mottscape"):
            for f in vars(mod).values():
                cache = getattr(f, "_cache", None)
                if isinstance(f, CPUDispatcher) and cache is not None and f.signatures:
                    dirs.add(cache._cache_path)
    return sorted(dirs)
