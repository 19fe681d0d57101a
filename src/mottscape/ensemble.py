"""Ensembles over disorder realizations: tasks on the runner, stacked, with error bars.

Realization r of a study always uses the seed ``SeedSequence(seed, spawn_key=(r,))``
(:meth:`mottscape.config.Study.realization_seed`), BLAS runs one thread in every task and
the compiled kernels sum in a fixed order, so the numbers are bit-identical whatever the
engine, the number of workers or of threads (see :mod:`mottscape.runner`). A ``[sweep]``
makes the tasks (parameter point, realization), with the same seeds at every point.
With a ``store`` each finished realization is written at once and
reused by a rerun of the same study (:mod:`mottscape.store`).

A study whose exact reference is split (``[conductivity] exact_method = "boxes"``, or the 1D
segments) runs it piece by piece first (:func:`exact_references`): a plan per realization,
then one task per box or run of segments, merged in this process, every piece a record of the
store's ``exact-pieces`` directory (see ``docs/architecture.md``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .config import Study
from .errors import ConvergenceError, InputError
from .options import Options
from .regime import ensemble_diagnosis
from .runner import Failure, RunReport, engine, run_tasks
from .store import Store

__all__ = ["aggregate", "combine", "combine_points", "realization_task", "run_ensemble",
           "study_description", "sweep_task"]

#: The estimators whose ensemble mean and standard error are reported when present.
ESTIMATORS = ("sigma_ll", "sigma_eq17", "sigma_mb", "sigma_pairs", "sigma_exact")


def study_description(study: Study, kind: str, extra: Mapping[str, Any] | None = None
                      ) -> dict[str, Any]:
    """What identifies the numbers of a study's tasks (the key of its store).

    Everything that changes the numbers: the study without its output section and number of
    realizations, the bytes of a potential or mass map file, the kind of run and its extra
    parameters, and the package version.
    """
    from . import __version__

    d = study.to_dict()
    d.pop("output", None)
    d.get("ensemble", {}).pop("realizations", None)
    files = {}
    for key, path in (("potential", study.potential.file), ("mass", study.grid.mass)):
        if isinstance(path, Path):
            files[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"study": d, "files": files, "kind": kind, "extra": dict(extra or {}),
            "version": __version__}


#: Task id of (parameter point p, realization r) of a sweep: ``p * POINT_STRIDE + r``; a
#: study without a sweep has one point and its task ids are its realization indices.
POINT_STRIDE = 1_000_000


def realization_task(study: Study, realization: int, exact: xr.Dataset | None = None
                     ) -> xr.Dataset:
    """The LL workflow on one realization of a study, as a Dataset (one runner task).

    ``exact``: the realization's exact KG result when it was computed piece by piece
    (:func:`exact_references`); otherwise, when the study asks for it, it is computed here.
    """
    from .pipeline import run

    c = study.conductivity
    sample = study.make_sample(realization)
    ds = run(sample, c.fermi_energy, study.omegas(), study.options).to_dataset()
    if c.exact:
        ds = with_exact(ds, sample, c.fermi_energy, study.omega_edges(), kg=exact,
                        **exact_arguments(study))
    return ds


def exact_arguments(study: Study) -> dict[str, Any]:
    """The ``method``, ``padding`` and ``core`` of the study's exact reference (those set)."""
    c = study.conductivity
    how = {"method": c.exact_method, "padding": c.exact_padding, "core": c.exact_core}
    return {k: v for k, v in how.items() if v is not None}


def with_exact(ds: xr.Dataset, sample, fermi_energy: float, edges: np.ndarray, *,
               kg: xr.Dataset | None = None, **kwargs: Any) -> xr.Dataset:
    """``ds`` with the exact Kubo-Greenwood sigma of the same sample (eqs. 4-5) beside it.

    ``sigma_exact`` and ``n_pairs_exact`` on ``omega``: bin-averaged over ``edges`` (one bin
    per frequency of ``ds``, see :meth:`mottscape.config.Study.omega_edges`), with the bin
    bounds as coordinates ``omega_lower`` and ``omega_upper``; with the boxes also
    ``sigma_exact_beyond_padding``, the part of ``sigma_exact`` that the boxes resolve only
    partly (a bin is resolved when it is below :data:`mottscape.exact.RESOLVED_FAR` of it).
    ``kg`` is the KG result if already computed (by pieces on the engine), else
    ``kubo_greenwood(sample, fermi_energy, edges, **kwargs)`` is called.
    """
    from .exact import kubo_greenwood

    if kg is None:
        kg = kubo_greenwood(sample, fermi_energy, edges, **kwargs)
    sigma = kg["sigma"]
    out = ds.assign(
        sigma_exact=("omega", sigma.values, {**sigma.attrs, "long_name": "exact Kubo-Greenwood "
                                              "conductivity, bin-averaged (eqs. 4-5)"}),
        n_pairs_exact=("omega", kg["n_pairs"].values,
                       {"long_name": "exact pairs in the bin", "units": "1"}))
    if "sigma_beyond_padding" in kg:  # the boxes: the part of sigma_exact they resolve only partly
        far = kg["sigma_beyond_padding"]
        out["sigma_exact_beyond_padding"] = ("omega", far.values, {
            **far.attrs, "long_name": "part of sigma_exact from pairs farther apart than the "
                                      "boxes' padding (partial matrix elements)"})
    unit = ds.omega.attrs.get("units")
    return out.assign_coords(
        omega_lower=("omega", edges[:-1], {"long_name": "lower bin edge", "units": unit}),
        omega_upper=("omega", edges[1:], {"long_name": "upper bin edge", "units": unit}))


def sweep_task(study: Study, task: int,
               exact: Mapping[int, xr.Dataset | tuple[str, str]] | None = None) -> xr.Dataset:
    """Task ``p * POINT_STRIDE + r``: realization r at parameter point p of a sweep.

    ``exact`` maps tasks to their exact KG results computed by pieces (or to the
    ``(kind, message)`` of the failure that stopped them, raised again here).
    """
    point, realization = divmod(task, POINT_STRIDE)
    kg = None if exact is None else exact.get(task)
    if isinstance(kg, tuple):
        raise ConvergenceError(f"exact reference ({kg[0]}): {kg[1]}")
    return realization_task(study.points[point] if study.points else study, realization, kg)


def task_ids(study: Study, index: list[int]) -> list[int]:
    """The runner's task ids of the realizations ``index`` at every parameter point."""
    if max(index) >= POINT_STRIDE:
        raise InputError(f"realization indices must be below {POINT_STRIDE}")
    return [p * POINT_STRIDE + r for p in range(max(len(study.points), 1)) for r in index]


def run_ensemble(
    study: Study,
    realizations: Iterable[int] | int | None = None,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    store: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    precomputed: dict[int, xr.Dataset] | None = None,
    **option_values: Any,
) -> xr.Dataset:
    """Run the LL workflow over realizations of a study; stack them, with error bars.

    Parameters
    ----------
    study
        The study (potential model, grid, E_F, frequencies, options).
    realizations
        A count n (realizations 0..n-1), an iterable of realization indices, or None for the
        study's ``ensemble.realizations``. A string is refused (``"3"`` is not 3).
    workers
        Worker processes of a local dask cluster (1: this process).
    scheduler
        Address of an existing dask scheduler (``tcp://host:port``).
    store
        Directory of a resumable store keyed to this study (see :mod:`mottscape.store`).
    log
        Called with one line per event.
    progress
        Progress bar over the finished realizations.
    precomputed
        Results already at hand, by realization (not recomputed).
    **option_values
        Options that override the study's ``[options]`` (e.g. ``effective="scaled"``).

    Returns
    -------
    xarray.Dataset
        The per-realization results along ``realization`` and the aggregates of
        :func:`aggregate`.
    """
    index = realization_indices(study, realizations)
    if option_values:
        study = _with_options(study, study.options.replace(**option_values))
    ids = task_ids(study, index)
    say = log or (lambda _m: None)
    opened = contextlib.nullcontext(None) if store is None \
        else Store(store, study_description(study, "pipeline"), log=log)
    with opened as st, engine(workers, scheduler, say) as client:
        todo = [t for t in ids if splits_exact(_point_study(study, t))
                and not (precomputed and t in precomputed) and (st is None or st.load(t) is None)]
        exact = exact_references(study, todo, client=client, store=store, log=log,
                                 progress=progress)
        report = run_tasks(functools.partial(sweep_task, study, exact=exact or None), ids,
                           store=st, client=client, log=log, progress=progress,
                           precomputed=precomputed)
    if store is not None and todo:
        _prune_pieces(Path(store), set(report.results))
    return combine_points(report, index, study.point_labels())


# ---------------------------------------------------------------------- exact reference by pieces
#: Record id of piece k of the exact reference of task t (store directory ``exact-pieces``).
PIECE_STRIDE = 1_000_000


def splits_exact(study: Study) -> bool:
    """Whether a study's exact reference runs piece by piece (see :func:`exact_splits`)."""
    return bool(study.conductivity.exact) and exact_splits(study)


def exact_splits(study: Study) -> bool:
    """Whether the study's exact reference, when computed, splits into pieces.

    It does when the study asks for boxes, segments or shift-invert, and with ``"auto"``
    whenever the sample is too large for one dense (2D, 3D, periodic) or tridiagonal (1D
    Dirichlet) solve: its segments, or its shifts.
    """
    from .exact import DENSE_MAX, WHOLE_CHAIN_MAX

    method = study.conductivity.exact_method or "auto"
    if method in ("boxes", "segments", "shift-invert"):
        return True
    if method != "auto":
        return False
    shape = study.potential.shape or study.make_potential(0).shape
    if len(shape) == 1 and study.grid.boundary == "dirichlet":
        return int(np.prod(shape)) > WHOLE_CHAIN_MAX
    return int(np.prod(shape)) > DENSE_MAX


def _point_study(study: Study, task: int) -> Study:
    point = task // POINT_STRIDE
    return study.points[point] if study.points else study


def plan_task(study: Study, task: int, edges: np.ndarray | None = None) -> xr.Dataset:
    """The plan of the exact reference of task ``task`` (its window counts and geometry).

    ``edges``: the bins (default the study's :meth:`~mottscape.config.Study.omega_edges`).
    """
    from .exact import plan_exact

    st = _point_study(study, task)
    plan = plan_exact(st.make_sample(task % POINT_STRIDE), st.conductivity.fermi_energy,
                      st.omega_edges() if edges is None else edges, **exact_arguments(st))
    if plan is None:
        raise InputError(f"task {task}: the exact reference of this study is not split")
    return plan.to_dataset()


def piece_task(study: Study, plan: xr.Dataset, piece: int) -> xr.Dataset:
    """Piece ``piece % PIECE_STRIDE`` of the exact reference of task ``piece // PIECE_STRIDE``."""
    from .exact import ExactPlan, piece_to_dataset, solve_piece

    task, k = divmod(piece, PIECE_STRIDE)
    sample = _point_study(study, task).make_sample(task % POINT_STRIDE)
    return piece_to_dataset(solve_piece(sample.hamiltonian, ExactPlan.from_dataset(plan), k))


def exact_references(study: Study, tasks: list[int], *, client: Any = None,
                     store: str | Path | None = None,
                     log: Callable[[str], None] | None = None, progress: bool = False,
                     edges: np.ndarray | None = None, kind: str = "exact"
                     ) -> dict[int, xr.Dataset | tuple[str, str]]:
    """The exact KG results of ``tasks``, each split into pieces that run as engine tasks.

    First the plans of every task (one round: the inertia counts of each sample), then, task
    by task, its pieces (one round each: boxes or runs of 1D segments on the workers), merged
    here by :func:`mottscape.exact.finish_exact`. A task whose boxes miss a window state (the
    inertia count disagrees) has its boxes solved once more at twice the padding, as
    :func:`~mottscape.exact.kubo_greenwood` does (logged; attribute ``box_widened_from``).
    With a ``store``, plans and pieces are records of its sub-directories ``exact-plans``,
    ``exact-pieces`` and, for the wider boxes, ``exact-pieces-wide``: a killed run recomputes
    only the missing ones. Numbers are those of ``kubo_greenwood`` bit for bit. ``edges``
    gives other bins than the study's (the validation's), and ``kind`` prefixes the store
    sub-directories (``<kind>-plans``, ...) so that runs with other bins keep their own
    records.

    Returns
    -------
    dict
        By task: the KG Dataset (``sigma``, ``n_pairs``), or ``(kind, message)`` of the
        error that stopped it.
    """
    if not tasks:
        return {}
    out: dict[int, xr.Dataset | tuple[str, str]] = {}
    with _sub_store(study, store, f"{kind}-plans", log) as plan_store:
        plans = run_tasks(functools.partial(plan_task, study, edges=edges), tasks,
                          store=plan_store, client=client, log=log, progress=progress)
    for f in plans.failures:
        out[f.task] = (f.kind, f.message)
    wide: dict[int, xr.Dataset] = {}
    run = functools.partial(_exact_from_pieces, study, client=client, log=log,
                            progress=progress, edges=edges)
    with _sub_store(study, store, f"{kind}-pieces", log) as piece_store:
        for t in tasks:
            if t not in plans.results:
                continue
            try:
                out[t] = run(t, plans.results[t], piece_store)
            except ConvergenceError as exc:  # the boxes missed a state: once more, wider
                out[t] = _failure(exc)
                plan = _widened(study, t, plans.results[t])
                if plan is not None:
                    wide[t] = plan
                    if log is not None:
                        log(f"task {t}: {out[t][1]} -- solving the boxes again with "
                            f"padding={int(plan['padding'])}")
    if wide:
        with _sub_store(study, store, f"{kind}-pieces-wide", log) as wide_store:
            for t, plan in wide.items():
                try:
                    kg = run(t, plan, wide_store)
                except ConvergenceError as exc:
                    kg = _failure(exc)
                if isinstance(kg, xr.Dataset):
                    kg.attrs["box_widened_from"] = int(plans.results[t]["padding"])
                out[t] = kg
    return out


def _failure(exc: Exception) -> tuple[str, str]:
    return type(exc).__name__, " ".join(str(exc).split())


def _widened(study: Study, task: int, plan_ds: xr.Dataset) -> xr.Dataset | None:
    """The plan of the task's boxes at twice the padding (None if they do not fit)."""
    from .exact import ExactPlan, widen_boxes

    st = _point_study(study, task)
    try:
        return widen_boxes(st.make_sample(task % POINT_STRIDE).hamiltonian,
                           ExactPlan.from_dataset(plan_ds),
                           exact_arguments(st).get("core")).to_dataset()
    except InputError:
        return None


def _exact_from_pieces(study: Study, task: int, plan_ds: xr.Dataset, store: Store | None, *,
                       client: Any, log: Callable[[str], None] | None, progress: bool,
                       edges: np.ndarray | None = None) -> xr.Dataset | tuple[str, str]:
    """Run the pieces of one task's plan on the engine and merge them.

    Returns the KG Dataset, or the ``(kind, message)`` of the failure that stopped it.

    Raises
    ------
    ConvergenceError
        If the plan's boxes kept a number of states other than the inertia count.
    """
    from .errors import MottscapeError
    from .exact import ExactPlan, finish_exact, piece_from_dataset

    plan = ExactPlan.from_dataset(plan_ds)
    ids = [task * PIECE_STRIDE + k for k in range(plan.n_pieces)]
    report = run_tasks(functools.partial(piece_task, study, plan_ds), ids, store=store,
                       client=client, log=log, progress=progress)
    if report.failures:
        return report.failures[0].kind, report.failures[0].message
    st = _point_study(study, task)
    try:
        kg = finish_exact(st.make_sample(task % POINT_STRIDE), plan,
                          [piece_from_dataset(report.results[i]) for i in ids],
                          st.conductivity.fermi_energy,
                          st.omega_edges() if edges is None else edges)
    except MottscapeError as exc:
        if isinstance(exc, ConvergenceError) and plan.method == "boxes":
            raise
        return _failure(exc)
    return kg[[v for v in ("sigma", "n_pairs", "sigma_beyond_padding") if v in kg]]


def _sub_store(study: Study, store: str | Path | None, name: str,
               log: Callable[[str], None] | None) -> contextlib.AbstractContextManager:
    if store is None:
        return contextlib.nullcontext(None)
    return Store(Path(store) / name, study_description(study, name), log=log)


def _prune_pieces(store: Path, done: set[int], kind: str = "exact") -> None:
    """Remove the piece records of tasks whose realization record is written (scratch)."""
    for path in (*(store / f"{kind}-pieces").glob("realization_*.nc"),
                 *(store / f"{kind}-pieces-wide").glob("realization_*.nc")):
        with contextlib.suppress(ValueError, OSError):
            if int(path.stem.partition("_")[2]) // PIECE_STRIDE in done:
                path.unlink()


def combine_points(report: RunReport, index: list[int],
                   labels: list[dict[str, Any]]) -> xr.Dataset:
    """:func:`combine` per parameter point, stacked along ``point`` for a sweep.

    Each swept parameter becomes a coordinate ``sweep_<name>`` along ``point`` (a shape as
    text, e.g. ``"256x256"``). Without a sweep (one point and no label) this is
    :func:`combine`.
    """
    if labels == [{}]:
        return combine(report, index)
    parts = []
    for p in range(len(labels)):
        sub = RunReport()
        for r in index:
            if p * POINT_STRIDE + r in report.results:
                sub.results[r] = report.results[p * POINT_STRIDE + r]
        sub.failures = [dataclasses.replace(f, task=f.task - p * POINT_STRIDE)
                        for f in report.failures if f.task // POINT_STRIDE == p]
        parts.append(combine(sub, index) if sub.results else None)
    if all(part is None for part in parts):
        why = "; ".join(f"{f.task}: {f.message}" for f in report.failures[:3])
        raise InputError(f"every task failed ({why})")
    template = next(part for part in parts if part is not None)
    filled = [part if part is not None else xr.full_like(template, np.nan)
              for part in parts]
    out = xr.concat(filled, dim="point", data_vars="all", coords="minimal",
                    compat="override", combine_attrs="drop_conflicts", join="outer")
    for key in labels[0]:
        name = "sweep_" + key.partition(".")[2]
        values = [_label(lab[key]) for lab in labels]
        out = out.assign_coords({name: ("point", values, {"long_name": f"swept {key}"})})
    out = out.assign_coords(point=("point", np.arange(len(labels)),
                                   {"long_name": "parameter point of the sweep", "units": "1"}))
    out.attrs["failures"] = json.dumps([_failure_dict(f) for f in report.failures])
    return out


def _label(value: Any) -> Any:
    """A swept value as a coordinate value: numbers stay numbers, a shape becomes text."""
    if isinstance(value, tuple | list):
        return "x".join(str(v) for v in value)
    return value


def run_study_tasks(study: Study, kind: str, task: Callable[[int], xr.Dataset],
                    index: list[int], *, extra: Mapping[str, Any] | None = None,
                    store: str | Path | None = None, **engine: Any) -> RunReport:
    """:func:`mottscape.runner.run_tasks` with the study's store opened (and locked)."""
    if store is None:
        return run_tasks(task, index, **engine)
    with Store(store, study_description(study, kind, extra), log=engine.get("log")) as st:
        return run_tasks(task, index, store=st, **engine)


def realization_indices(study: Study, realizations: Iterable[int] | int | None) -> list[int]:
    """The realization indices of a run: a count, an iterable, or the study's number."""
    if realizations is None:
        realizations = study.ensemble.realizations
    if isinstance(realizations, str | bytes | bool):
        raise InputError(f"realizations={realizations!r} must be a count (int >= 1) or a list "
                         "of realization indices")
    if isinstance(realizations, int):
        if realizations < 1:
            raise InputError(f"realizations={realizations!r} must be >= 1")
        return list(range(realizations))
    try:
        index = [int(r) for r in realizations]
    except (TypeError, ValueError):
        raise InputError(f"realizations={realizations!r} must be a count or a list of "
                         "realization indices") from None
    if not index or min(index) < 0 or len(set(index)) != len(index):
        raise InputError(f"realizations={realizations!r} must be distinct indices >= 0")
    return index


def combine(report: RunReport, index: list[int]) -> xr.Dataset:
    """Stack the finished realizations along ``realization`` and add the aggregates.

    Raises
    ------
    InputError
        When every realization failed (the messages say why).
    """
    done = [r for r in index if r in report.results]
    if not done:
        why = "; ".join(f"{f.task}: {f.message}" for f in report.failures[:3])
        raise InputError(f"every realization failed ({why})")
    stacked = xr.concat([report.results[r] for r in done], dim="realization",
                        data_vars="all", coords="minimal", compat="override",
                        combine_attrs="drop_conflicts")
    stacked = stacked.assign_coords(realization=("realization", np.asarray(done),
                                                 {"long_name": "disorder realization index",
                                                  "units": "1"}))
    for name in ("realization", "store_hash", "checksum"):
        stacked.attrs.pop(name, None)
    out = aggregate(stacked)
    out.attrs["diagnosis"] = ensemble_diagnosis(
        {r: str(report.results[r].attrs.get("diagnosis", "")) for r in done})
    out["n_failed"] = ((), len(report.failures), {"long_name": "realizations that failed "
                                                 "(see the attribute failures)", "units": "1"})
    out.attrs["failures"] = json.dumps([_failure_dict(f) for f in report.failures])
    return out


def aggregate(stacked: xr.Dataset) -> xr.Dataset:
    """Ensemble mean and standard error of every estimator present, per frequency.

    For each of ``sigma_ll``, ``sigma_eq17``, ``sigma_mb``, ``sigma_pairs``, ``sigma_exact``
    (and the boxes' ``sigma_exact_beyond_padding``) in ``stacked`` (dimension
    ``realization``): ``<name>_mean`` (over the realizations where it is finite),
    ``<name>_sem`` (standard error of that mean, NaN with fewer than two) and
    ``<name>_count``; and ``n_pairs_total`` when ``n_pairs`` is present.
    """
    out = stacked.copy()
    for name in (*ESTIMATORS, "sigma_exact_beyond_padding"):
        if name not in stacked or "realization" not in stacked[name].dims:
            continue
        arr = stacked[name]
        count = arr.notnull().sum("realization")
        mean = arr.mean("realization", skipna=True)
        std = arr.std("realization", ddof=1, skipna=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            sem = std / np.sqrt(count.where(count > 1))
        attrs = dict(arr.attrs)
        long = attrs.get("long_name", name)
        out[f"{name}_mean"] = mean.assign_attrs({**attrs, "long_name": f"ensemble mean of {long}"})
        out[f"{name}_sem"] = sem.assign_attrs({**attrs, "long_name": f"standard error of the "
                                               f"ensemble mean of {long}"})
        out[f"{name}_count"] = count.assign_attrs({"long_name": f"realizations with a finite "
                                                  f"{name}", "units": "1"})
    if "n_pairs" in stacked and "realization" in stacked["n_pairs"].dims:
        out["n_pairs_total"] = stacked["n_pairs"].sum("realization").assign_attrs(
            {"long_name": "pairs in the Agmon shell, summed over realizations", "units": "1"})
    return out


def _failure_dict(f: Failure) -> dict[str, Any]:
    return {"realization": f.task, "kind": f.kind, "message": f.message}


def _with_options(study: Study, options: Options) -> Study:
    points = tuple(dataclasses.replace(p, options=options) for p in study.points)
    return dataclasses.replace(study, options=options, points=points)
