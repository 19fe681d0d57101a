"""Run a study file end to end: potentials, the LL pipeline per realization, results, figures.

This is what ``mottscape run`` calls; it holds no physics of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from .config import Study, default_study, load_study
from .ensemble import exact_arguments, run_ensemble, splits_exact, with_exact
from .files import check_output_dir
from .netcdf import write_netcdf
from .pipeline import PipelineResult, run
from .results import maps_dataset
from .runner import one_blas_thread

__all__ = ["StudyResult", "maps_dataset", "run_study"]


@dataclass(frozen=True)
class StudyResult:
    """What a study produced: the Dataset, the first realization's pipeline and the files."""

    dataset: xr.Dataset
    pipeline: PipelineResult
    files: list = field(default_factory=list)


def run_study(
    study: Study | str | Path | None = None,
    out: str | Path | None = None,
    *,
    figures: bool | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    workers: int = 1,
    scheduler: str | None = None,
    store: str | Path | None = None,
) -> StudyResult:
    """Run a study: every realization through the staged pipeline, then results and figures.

    Parameters
    ----------
    study
        A :class:`~mottscape.config.Study`, the path of a TOML study file, or None for the
        built-in default study.
    out
        Output directory (default: the study's ``output.dir``); ``results.nc`` and the PNG
        figures are written there. ``""`` writes nothing.
    figures
        Override the study's ``output.figures``.
    log
        Called with one line per event, for progress displays.
    progress
        Progress bars (realizations, Agmon searches).
    workers, scheduler, store
        The engine and the resumable store (see :func:`mottscape.ensemble.run_ensemble`);
        ``scheduler`` defaults to the study's ``[cluster] scheduler``.

    Returns
    -------
    StudyResult
        ``dataset`` holds the results of every realization along ``realization`` (with the
        ensemble means and standard errors when there are several) and the maps of
        realization 0. A study with a ``[sweep]`` adds the dimension ``point`` (one per
        parameter point, with coordinates ``sweep_<name>``); the maps are those of the first
        point.
    """
    if study is None:
        study = default_study()
    elif not isinstance(study, Study):
        study = load_study(study)
    say = log or (lambda _msg: None)
    target = Path(study.output.dir) if out is None else (Path(out) if str(out) else None)
    if target is not None:
        check_output_dir(target)
    c = study.conductivity
    n = study.ensemble.realizations
    scheduler = scheduler if scheduler is not None else study.cluster.scheduler
    say(f"realization 0: potential {study.potential.model}")
    sample = study.make_sample(0)
    ensemble = n > 1 or store is not None or bool(study.points)
    # A split exact reference (boxes, 1D segments) of realization 0 runs on the engine too.
    exact_here = c.exact and not (ensemble and splits_exact(study))
    with one_blas_thread():  # the same numbers as on a worker (see mottscape.runner)
        first = run(sample, c.fermi_energy, study.omegas(), study.options,
                    progress=progress and n == 1)
        ds = first.to_dataset()
        if exact_here:
            say("realization 0: exact Kubo-Greenwood reference")
            ds = with_exact(ds, sample, c.fermi_energy, study.omega_edges(),
                            **exact_arguments(study))
    if ensemble:
        ds = run_ensemble(study, n, workers=workers, scheduler=scheduler, store=store, log=log,
                          progress=progress,
                          precomputed={0: ds} if exact_here or not c.exact else None)
    ds = xr.merge([ds, maps_dataset(first)], combine_attrs="override")
    ds.attrs.update(
        study_source=str(study.source).encode("utf-8", "backslashreplace").decode("utf-8"),
        realizations=n,
        seed=study.potential.seed,
        potential_model=study.potential.model,
        study=study.to_dict(),
    )
    files = []
    if target is not None:
        # Every figure is drawn before anything is written: a failure while drawing leaves no
        # output at all. Each file is written atomically; only a fault of the file system
        # between the writes (a full disk) can leave results.nc without the figures after it.
        images = {}
        if study.output.figures if figures is None else figures:
            from .plot import render_figures

            images = render_figures(first, results=ds)
        files.append(write_netcdf(ds, target / "results.nc"))
        say(f"wrote {files[-1]}")
        if images:
            from .plot import write_images

            paths = write_images(images, target)
            files += paths
            say("wrote figures " + ", ".join(p.name for p in paths))
    return StudyResult(dataset=ds, pipeline=first, files=files)
