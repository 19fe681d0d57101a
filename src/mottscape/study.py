"""Run a study file end to end: potentials, the LL pipeline per realization, results, figures.

This is what ``mottscape run`` calls; it holds no physics of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from .conductivity import Pipeline, run_pipeline
from .config import Study, default_study, load_study
from .ensemble import run_ensemble
from .io import write_netcdf

__all__ = ["StudyResult", "maps_dataset", "run_study"]

_AXES = ("x", "y", "z")


@dataclass(frozen=True)
class StudyResult:
    """What a study produced: the Dataset, the first realization's pipeline and the files."""

    dataset: xr.Dataset
    pipeline: Pipeline
    files: list = field(default_factory=list)


def maps_dataset(pipeline: Pipeline) -> xr.Dataset:
    """The maps of one realization (V, u, V_u, basin labels) on coordinates x, y, z."""
    land = pipeline.landscape
    grid = land.grid
    dims = _AXES[: grid.ndim]
    unit = land.units
    coords = {ax: (ax, grid.coordinates(a), {"units": unit.length_unit})
              for a, ax in enumerate(dims)}
    return xr.Dataset(
        {
            "potential": (dims, land.potential, {"long_name": "V", "units": unit.energy_unit}),
            "u": (dims, land.u, {"long_name": "landscape function, H u = 1 (eq. 2)",
                                 "units": f"1/{unit.energy_unit}"}),
            "effective_potential": (dims, land.effective_potential,
                                    {"long_name": "V_u = 1/u", "units": unit.energy_unit}),
            "basin_labels": (dims, pipeline.basins.labels.astype(np.int32),
                             {"long_name": "basin index + 1 at E_F (0 = outside)"}),
        },
        coords=coords,
    )


def run_study(
    study: Study | str | Path | None = None,
    out: str | Path | None = None,
    *,
    figures: bool | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    workers: int = 1,
    store: str | Path | None = None,
) -> StudyResult:
    """Run a study: every realization through :func:`mottscape.run_pipeline`.

    Parameters
    ----------
    study
        A :class:`~mottscape.config.Study`, the path of a TOML study file, or None for the
        built-in default study.
    out
        Output directory (default: the study's ``output.dir``); ``results.nc`` and the PNG
        figures are written there. Pass ``out=False``-like ``""`` to write nothing.
    figures
        Override the study's ``output.figures``.
    log
        Called with one line per step, for progress displays.
    workers, store
        Parallel workers and resumable store for the realizations after the first (see
        :func:`mottscape.ensemble.run_ensemble`).

    Returns
    -------
    StudyResult
        ``dataset`` holds the results of every realization along ``realization`` (with the
        ensemble means ``*_mean`` when there are several) and the maps of realization 0.
    """
    if study is None:
        study = default_study()
    elif not isinstance(study, Study):
        study = load_study(study)
    say = log or (lambda _msg: None)
    c = study.conductivity
    n = study.ensemble.realizations
    V = study.make_potential(0)
    say(f"realization 1/{n}: potential {study.potential.model} {V.shape}")
    first = run_pipeline(
        V, c.fermi_energy, study.omegas(), study.grid.spacing, study.make_mass(V.shape),
        study.grid.boundary, study.grid.units, mott_scale_method=c.mott_scale, log=log,
        progress=progress)
    if n == 1:
        ds = first.dataset.copy()
    else:
        ds = run_ensemble(study, n, workers=workers, store=store, log=log,
                          precomputed={0: first.dataset})
    ds = xr.merge([ds, maps_dataset(first)], combine_attrs="override")
    ds.attrs.update(
        study_source=str(study.source),
        realizations=n,
        seed=study.potential.seed,
        potential_model=study.potential.model,
        study=study.to_dict(),
    )
    files = []
    target = Path(study.output.dir) if out is None else (Path(out) if str(out) else None)
    if target is not None:
        files.append(write_netcdf(ds, target / "results.nc"))
        say(f"wrote {files[-1]}")
        do_figures = study.output.figures if figures is None else figures
        if do_figures:
            from .plot import save_figures

            paths = save_figures(first, target)
            files += paths
            say("wrote figures " + ", ".join(p.name for p in paths))
    return StudyResult(dataset=ds, pipeline=first, files=files)
