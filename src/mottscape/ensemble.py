"""Ensembles over disorder realizations: parallel, reproducible and resumable.

Realization r of a study always uses the seed ``SeedSequence(seed, spawn_key=(r,))``
(:meth:`mottscape.config.Study.realization_seed`), so the numbers do not depend on the number
of workers or on the order in which realizations finish. With a ``store`` directory each
finished realization is written to ``store/realization_XXXXX.nc`` (atomically) and skipped when
the ensemble is run again: an interrupted ensemble resumes where it stopped.

Workers are processes of :class:`concurrent.futures.ProcessPoolExecutor` by default, or the
workers of a ``dask.distributed.Client`` passed as ``executor`` (any object with the
``concurrent.futures.Executor`` interface works: ``Client.submit`` returns futures with
``.result()``).
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Iterable
from pathlib import Path

import xarray as xr

from .config import Study
from .errors import InputError
from .io import read_netcdf, write_netcdf

__all__ = ["realization_path", "run_ensemble"]


def realization_path(store: str | Path, realization: int) -> Path:
    """File of one realization in a resumable store."""
    return Path(store) / f"realization_{realization:05d}.nc"


def _run_one(study: Study, realization: int, kwargs: dict) -> xr.Dataset:
    from .conductivity import run_pipeline

    V = study.make_potential(realization)
    c = study.conductivity
    pipe = run_pipeline(V, c.fermi_energy, study.omegas(), study.grid.spacing,
                        study.make_mass(V.shape), study.grid.boundary, study.grid.units,
                        mott_scale_method=c.mott_scale, **kwargs)
    ds = pipe.dataset
    ds.attrs["realization"] = realization
    return ds


def run_ensemble(
    study: Study,
    realizations: Iterable[int] | int | None = None,
    *,
    workers: int = 1,
    executor: cf.Executor | None = None,
    store: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    precomputed: dict[int, xr.Dataset] | None = None,
    **pipeline_kwargs,
) -> xr.Dataset:
    """Run :func:`mottscape.run_pipeline` over realizations of a study and stack the results.

    Parameters
    ----------
    study
        The study (potential model, grid, E_F, frequencies).
    realizations
        An int n (realizations 0..n-1), an iterable of realization indices, or None for the
        study's ``ensemble.realizations``.
    workers
        Number of worker processes (1: run in this process).
    executor
        An executor to use instead (e.g. a ``dask.distributed.Client``).
    store
        Directory of a resumable store (see the module docstring).
    log
        Called with one line per finished realization.
    precomputed
        Results already at hand, by realization index (not recomputed).
    **pipeline_kwargs
        Passed to :func:`mottscape.run_pipeline` (e.g. ``pairs``, ``pair_window``).

    Returns
    -------
    xarray.Dataset
        The per-realization results stacked along ``realization``, with ``sigma_ll_mean``,
        ``sigma_mb_mean`` and their standard deviations over realizations.
    """
    if realizations is None:
        realizations = study.ensemble.realizations
    index = list(range(realizations)) if isinstance(realizations, int) else \
        [int(r) for r in realizations]
    if not index or min(index) < 0 or len(set(index)) != len(index):
        raise InputError(f"realizations={realizations!r} must be a positive count or distinct "
                         "indices >= 0")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers={workers!r} must be an integer >= 1")
    say = log or (lambda _m: None)
    results: dict[int, xr.Dataset] = dict(precomputed or {})
    todo = []
    for r in index:
        if r in results:
            continue
        path = realization_path(store, r) if store is not None else None
        if path is not None and path.exists():
            results[r] = read_netcdf(path)
            say(f"realization {r}: loaded from {path}")
        else:
            todo.append(r)

    def done(r: int, ds: xr.Dataset) -> None:
        if store is not None:
            write_netcdf(ds, realization_path(store, r))
        results[r] = ds
        say(f"realization {r}: done ({len(results)}/{len(index)})")

    if todo and executor is None and workers == 1:
        for r in todo:
            done(r, _run_one(study, r, pipeline_kwargs))
    elif todo:
        own = executor is None
        pool = executor or cf.ProcessPoolExecutor(max_workers=workers)
        try:
            futures = {pool.submit(_run_one, study, r, pipeline_kwargs): r for r in todo}
            for fut in _as_completed(futures):
                done(futures[fut], fut.result())
        finally:
            if own:
                pool.shutdown(cancel_futures=True)
    stacked = xr.concat([results[r] for r in index], dim="realization", data_vars="all",
                        coords="minimal", compat="override", combine_attrs="drop_conflicts")
    stacked = stacked.assign_coords(realization=index)
    for name in ("sigma_ll", "sigma_mb"):
        stacked[f"{name}_mean"] = stacked[name].mean("realization")
        stacked[f"{name}_mean"].attrs = dict(stacked[name].attrs)
        stacked[f"{name}_std"] = stacked[name].std("realization")
        stacked[f"{name}_std"].attrs = dict(stacked[name].attrs)
    return stacked


def _as_completed(futures):
    """Futures in completion order, for concurrent.futures or dask futures alike."""
    try:
        yield from cf.as_completed(futures)
    except TypeError:  # dask futures are not concurrent.futures.Future
        from distributed import as_completed

        yield from as_completed(list(futures))
