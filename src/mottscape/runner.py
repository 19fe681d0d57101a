"""The one realization loop, shared by ``run``, ``ensemble`` and ``validate``.

A run is a list of tasks, one per disorder realization; a task is a pure function of the study
and its realization index (the potential's seed is ``SeedSequence(seed, spawn_key=(r,))``), so
its numbers do not depend on the engine, the number of workers or the order of completion.

Engines
-------
``workers=1`` and no scheduler
    In this process, one task after the other.
``workers=N``
    A local dask.distributed cluster of N single-threaded worker processes listening on
    127.0.0.1 only (its dashboard too, on a free port).
``scheduler="tcp://host:port"``
    An existing dask cluster (``dask scheduler`` / ``dask worker``, dask-jobqueue on
    SLURM/PBS): the same study runs unchanged.

Every task sees the same numerical environment (one numba/BLAS thread per task in worker
processes, and in this process while the loop runs), so results are bit-identical whatever the
engine. With a :class:`~mottscape.store.Store` each finished task is written at once and a
rerun skips it: a killed or interrupted run resumes where it stopped. A task that raises a
mottscape error (a physics reason: no states near E_F, a sample too small) is recorded as
failed with its message and not retried; a worker that dies is replaced by dask and its task
rerun elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import xarray as xr
from threadpoolctl import threadpool_limits

from .errors import InputError, MottscapeError
from .store import Store

__all__ = ["Failure", "RunReport", "engine", "run_tasks"]

Task = Callable[[int], xr.Dataset]

#: Environment of every worker process: one thread per library. N workers then share N cores
#: without oversubscription. The numbers do not depend on numba's thread count (its kernels
#: sum in a fixed order, see mottscape._stencil_kernels) but they do on BLAS's (a threaded
#: dot product adds in thread-count-dependent order), so BLAS runs one thread everywhere.
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Failure:
    """A task that failed for a reason of its own (not retried)."""

    task: int
    kind: str
    message: str


@dataclass
class RunReport:
    """What a run produced: records by task, failures, and where they came from."""

    results: dict[int, xr.Dataset] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    reused: list[int] = field(default_factory=list)
    dashboard: str | None = None


def run_tasks(
    task: Task,
    tasks: Sequence[int],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    store: Store | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = False,
    precomputed: dict[int, xr.Dataset] | None = None,
    client: Any = None,
) -> RunReport:
    """Run ``task(r)`` for every ``r`` in ``tasks`` on the chosen engine.

    Parameters
    ----------
    task
        A picklable callable of the realization index returning a Dataset (e.g. a
        ``functools.partial`` of a module-level function over the study).
    tasks
        Distinct realization indices >= 0.
    workers
        Local worker processes (1: this process).
    scheduler
        Address of an existing dask scheduler (overrides ``workers``).
    store
        An opened :class:`~mottscape.store.Store`: finished records are reused and new ones
        written as they finish.
    log
        Called with one line per event (dashboard address, reused records, failures).
    progress
        Show a progress bar over the finished tasks (elapsed and remaining time).
    precomputed
        Results already at hand, by task (not recomputed, written to the store).
    client
        A dask client already opened by :func:`engine` (then ``workers`` and ``scheduler``
        are not used): several rounds of tasks share one cluster.

    Returns
    -------
    RunReport
    """
    index = _check_tasks(tasks)
    workers = _check_workers(workers)
    say = log or (lambda _m: None)
    report = RunReport()
    todo = []
    for r in index:
        if precomputed and r in precomputed:
            _finish(report, store, r, precomputed[r])
            continue
        old = store.load(r) if store is not None else None
        if old is not None:
            report.results[r] = old
            report.reused.append(r)
        else:
            todo.append(r)
    if report.reused:
        say(f"reused {len(report.reused)} finished task(s) from the store")
    if not todo:
        return report
    with _progress(len(todo), progress) as bar:
        if client is not None:
            report.dashboard = client.dashboard_link if _has_dashboard() else None
            _run_on_dask(client, task, todo, report, store, say, bar)
        elif scheduler is None and workers == 1:
            with one_blas_thread():
                for r in todo:
                    _collect(report, store, r, _call(task, r), say)
                    bar.update()
        else:
            with _client(workers, scheduler, say) as client:
                report.dashboard = client.dashboard_link if _has_dashboard() else None
                _run_on_dask(client, task, todo, report, store, say, bar)
    return report


# ---------------------------------------------------------------------- engines
def _call(task: Task, r: int) -> tuple[str, Any]:
    """Run one task, turning a mottscape error into a recorded failure."""
    try:
        return "ok", task(r)
    except MottscapeError as exc:
        return type(exc).__name__, " ".join(str(exc).split())


def _worker_call(task: Task, r: int) -> tuple[str, Any]:
    return _call(task, r)


def _collect(report: RunReport, store: Store | None, r: int, outcome: tuple[str, Any],
             say: Callable[[str], None]) -> None:
    kind, value = outcome
    if kind == "ok":
        _finish(report, store, r, value)
    else:
        report.failures.append(Failure(task=r, kind=kind, message=value))
        say(f"realization {r} failed ({kind}): {value}")


def _finish(report: RunReport, store: Store | None, r: int, ds: xr.Dataset) -> None:
    if store is not None:
        store.save(r, ds)
    report.results[r] = ds


def _run_on_dask(client, task: Task, todo: list[int], report: RunReport, store: Store | None,
                 say: Callable[[str], None], bar) -> None:
    from distributed import as_completed

    # A fresh tag per round: id(task) of a freed task object can come back in a later round on
    # the same client while the cancelled futures of the earlier one still hold the key.
    tag = uuid.uuid4().hex
    futures = {client.submit(_worker_call, task, r, key=f"mottscape-task-{r}-{tag}",
                             pure=False): r for r in todo}
    try:
        for fut in as_completed(list(futures)):
            r = futures[fut]
            _collect(report, store, r, fut.result(), say)
            bar.update()
    finally:
        for fut in futures:
            fut.cancel()


@contextlib.contextmanager
def engine(workers: int = 1, scheduler: str | None = None,
           log: Callable[[str], None] | None = None) -> Iterator[Any]:
    """The dask client of ``workers`` local processes or of ``scheduler``, for several rounds.

    Yields None for the in-process engine (``workers=1`` and no scheduler); pass what it
    yields as ``client`` to :func:`run_tasks`.
    """
    workers = _check_workers(workers)
    if scheduler is None and workers == 1:
        yield None
        return
    with _client(workers, scheduler, log or (lambda _m: None)) as client:
        yield client


@contextlib.contextmanager
def _client(workers: int, scheduler: str | None, say: Callable[[str], None]) -> Iterator:
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(f"scheduler={scheduler!r} cannot be reached ({exc}); start it "
                             "with 'dask scheduler' or check the address") from None
        say(f"connected to the dask scheduler {scheduler}")
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1",
                           dashboard_address="127.0.0.1:0" if _has_dashboard() else None,
                           silence_logs=logging.ERROR, env=dict(WORKER_ENV))
    client = Client(cluster)
    if _has_dashboard():
        say(f"dask dashboard: {client.dashboard_link}")
    say(f"local dask cluster: {workers} worker processes on 127.0.0.1")
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _has_dashboard() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """One BLAS thread in this process while the block runs, as in a worker (see WORKER_ENV).

    numba keeps its threads: its kernels give the same bits on any number of threads.
    """
    with threadpool_limits(1):
        yield


@contextlib.contextmanager
def _progress(total: int, show: bool) -> Iterator:
    from tqdm import tqdm

    bar = tqdm(total=total, desc="realizations", unit="task", disable=not show,
               file=sys.stderr, leave=False, mininterval=0.5)
    try:
        yield bar
    finally:
        bar.close()


def _check_tasks(tasks: Sequence[int]) -> list[int]:
    try:
        index = [int(r) for r in tasks]
    except (TypeError, ValueError):
        raise InputError(f"realizations={tasks!r} must be distinct integers >= 0") from None
    if not index or min(index) < 0 or len(set(index)) != len(index):
        raise InputError(f"realizations={list(tasks)!r} must be distinct integers >= 0")
    return index


def _check_workers(workers: int) -> int:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers={workers!r} must be an integer >= 1 (worker processes; 1 "
                         "runs in this process)")
    if workers > 4 * (os.cpu_count() or 1):
        raise InputError(f"workers={workers} is more than 4 x the {os.cpu_count()} CPUs of "
                         "this machine; use at most the number of cores")
    return workers
