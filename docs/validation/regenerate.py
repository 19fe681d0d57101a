"""Regenerate every validation run and every generated table of docs/validation.md.

Usage (from the repository root)::

    .venv/bin/python docs/validation/regenerate.py [--models a,b] [--reuse-exact] [--tables-only]

For each run of :data:`RUNS` (a validation study, :func:`mottscape.validation.validate`):
the exact Kubo-Greenwood reference, eq. 17 with its variants, eq. 1 and the pair model on
every realization, saved as ``docs/validation/<run>/validation.nc`` and ``validation.png``.
Realizations are seeded by the study files, so a run is the same samples every time. With
``--reuse-exact`` the exact parts are taken from a saved run of the same study (same
potential, grid, seeds, Fermi energy and bins; :func:`reusable_exact`): the exact reference
is the expensive part and does not depend on the LL code. Each run prints its wall time.

Then every table of :data:`TABLES` is rewritten in docs/validation.md between its markers
``<!-- table:NAME -->`` and ``<!-- /table:NAME -->`` (:func:`replace_tables`), formatted by
``report.py`` (this directory). Everything outside the markers is
hand-written and left byte for byte. ``--tables-only`` rewrites the tables from the saved
runs without computing anything.

``python docs/validation/report.py`` prints the same tables without writing anything;
``python docs/validation/pairs/regenerate.py`` is this script restricted to the pair-model runs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import xarray as xr

import mottscape as ms
from mottscape.config import load_study
from mottscape.validation import _edges, summarize, validate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DOC = ROOT / "docs" / "validation.md"
INVESTIGATION = ROOT / "docs" / "investigation"


def _load(path: Path, name: str) -> ModuleType:
    """Import a script of this directory by path (docs/ is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


report = _load(HERE / "report.py", "validation_report")

#: The variants of eq. 17 of the pair-model runs (the per-model runs compare all of
#: :data:`mottscape.validation.DEFAULT_VARIANTS`).
PAIR_VARIANTS = {"default": {}, "effective_scaled": {"effective": "scaled"}}


@dataclass(frozen=True)
class Run:
    """One validation run: a study, saved under ``docs/validation/<name>/``.

    Attributes
    ----------
    name
        The run's directory relative to docs/validation (also its table's marker name).
    study
        The TOML study file; its seeds define the realizations.
    realizations
        Realizations to run (None: the study's ``ensemble.realizations``); the first ones of
        the study, so a smaller run is a subset of a larger one with the same samples.
    variants
        Variants of eq. 17 (None: ``DEFAULT_VARIANTS``).
    exact_from
        Other runs whose saved exact parts may be reused (same study, more realizations).
    """

    name: str
    study: Path
    realizations: int | None = None
    variants: dict | None = None
    exact_from: tuple[str, ...] = ()


def _pair_run(name: str, study: Path, realizations: int | None = None,
              exact_from: tuple[str, ...] = ()) -> Run:
    return Run(f"pairs/{name}", study, realizations, PAIR_VARIANTS, exact_from=exact_from)


#: Every validation run of docs/validation.md, in the order they are computed.
RUNS: dict[str, Run] = {r.name: r for r in [
    Run("block_1d", HERE / "block_1d.toml"),
    Run("block_2d", HERE / "block_2d.toml"),
    Run("gaussian_1d", HERE / "gaussian_1d.toml"),
    # the pair-model section (issue 11): 1D chains cost ~1 min per realization
    _pair_run("block_1d", HERE / "block_1d.toml", 6, ("block_1d",)),
    _pair_run("gaussian_1d", HERE / "gaussian_1d.toml", 6, ("gaussian_1d",)),
    _pair_run("block_2d", HERE / "block_2d.toml", None, ("block_2d",)),
    _pair_run("gaussian_2d", INVESTIGATION / "gaussian_2d.toml", 4),
    _pair_run("alloy_2d", INVESTIGATION / "alloy_2d.toml", 4),
    Run("gaussian_2d_512", HERE / "gaussian_2d_512.toml"),
    Run("gaussian_2d_periodic", HERE / "gaussian_2d_periodic.toml"),
    Run("anderson_2d", HERE / "anderson_2d.toml"),
    # the 3D studies set state_boxes = "per_basin": with the merged boxes (the default) these
    # small Dirichlet samples are one box and sigma_ll is the exact sum (docs/validation.md,
    # "Boxes")
    Run("anderson_3d", HERE / "anderson_3d.toml"),
    Run("gaussian_3d", HERE / "gaussian_3d.toml"),
    # 48^3: the exact reference needs MKL PARDISO (pip install mottscape[mkl])
    Run("anderson_3d_48", HERE / "anderson_3d_48.toml"),
    Run("gaussian_3d_48", HERE / "gaussian_3d_48.toml"),
]}


@dataclass(frozen=True)
class Table:
    """A generated table of docs/validation.md: the runs it reads and its formatter."""

    name: str
    runs: tuple[str, ...]
    render: Callable[[dict[str, xr.Dataset]], str]


def _one(name: str, formatter: Callable[[xr.Dataset], str]) -> Table:
    return Table(name, (name,), lambda res: formatter(res[name]))


#: Every generated table, by marker name.
TABLES: dict[str, Table] = {t.name: t for t in [
    *(_one(m, report.model_table) for m in ("block_1d", "block_2d", "gaussian_1d")),
    Table("scores", ("block_1d", "block_2d", "gaussian_1d"), report.score_table),
    *(_one(f"pairs/{m}", report.pairs_table)
      for m in ("block_1d", "gaussian_1d", "block_2d", "gaussian_2d", "alloy_2d")),
    *(_one(m, report.regime_table) for m in ("anderson_3d", "gaussian_3d", "gaussian_2d_512",
                                              "gaussian_2d_periodic", "anderson_2d",
                                              "anderson_3d_48",
                                              "gaussian_3d_48")),
]}


class MarkerError(ValueError):
    """A table's marker comments are missing, repeated or out of order in the document."""


def markers(name: str) -> tuple[str, str]:
    """The opening and closing marker comments of table ``name``."""
    return f"<!-- table:{name} -->", f"<!-- /table:{name} -->"


def replace_tables(text: str, tables: Mapping[str, str], source: str = "docs/validation.md"
                   ) -> str:
    """Put each table between its markers in ``text``; everything else is kept as it is.

    Parameters
    ----------
    text
        The Markdown document.
    tables
        Table text by marker name (:func:`markers`).
    source
        The document's name, for the error messages.

    Returns
    -------
    str
        The document with the content between each pair of markers replaced by a blank
        line, the table and a blank line.

    Raises
    ------
    MarkerError
        A marker of a table is missing or appears more than once, or the closing marker
        comes before the opening one; the message names the table and the marker.
    """
    for name, body in tables.items():
        start, end = markers(name)
        for marker in (start, end):
            count = text.count(marker)
            if count != 1:
                raise MarkerError(f"{source}: table {name!r}: marker {marker} "
                                  + ("not found" if count == 0 else f"found {count} times"))
        i, j = text.index(start) + len(start), text.index(end)
        if j < i:
            raise MarkerError(f"{source}: table {name!r}: {end} comes before {start}")
        text = text[:i] + "\n\n" + body.strip("\n") + "\n\n" + text[j:]
    return text


def _same_samples(saved: xr.Dataset, study) -> bool:
    """Whether a saved run is of the same samples, Fermi energy and bins as ``study``."""
    old = json.loads(saved.attrs["study"]) if "study" in saved.attrs else {}
    new = study.to_dict()
    same = all(old.get(k) == new.get(k) for k in ("potential", "grid"))
    ef = old.get("conductivity", {}).get("fermi_energy")
    edges = _edges(study)
    return (same and ef == new["conductivity"]["fermi_energy"]
            and saved.sizes.get("omega") == edges.size - 1
            and np.allclose(saved["omega_lower"].values, edges[:-1])
            and np.allclose(saved["omega_upper"].values, edges[1:]))


def reusable_exact(run: Run, dest: Path) -> tuple[xr.Dataset, Path] | None:
    """A saved run whose exact parts ``run`` can reuse, cut to ``run``'s realizations.

    Looked for in ``run``'s own saved result, then in those of ``run.exact_from``, under
    ``dest`` and then under docs/validation; reusable when it is the same study (potential
    and its seed, grid, Fermi energy, bins) with at least as many realizations.
    """
    study = load_study(run.study)
    n = run.realizations or study.ensemble.realizations
    for name in (run.name, *run.exact_from):
        for root in dict.fromkeys((dest, HERE)):
            path = root / name / "validation.nc"
            if not path.exists():
                continue
            saved = ms.read_netcdf(path)
            if saved.sizes["realization"] >= n and _same_samples(saved, study):
                return saved.isel(realization=slice(0, n)), path
    return None


def compute(run: Run, dest: Path, reuse_exact: bool) -> float:
    """Run one validation study into ``dest/<run.name>``; returns its wall time in seconds."""
    def say(message: str) -> None:
        print(f"[{run.name}] {message}", flush=True)

    reuse = reusable_exact(run, dest) if reuse_exact else None
    if reuse is not None:
        say(f"exact parts reused from {reuse[1]}")
    elif reuse_exact:
        say("no saved run of the same samples and bins: computing the exact reference")
    start = time.perf_counter()
    validate(run.study, realizations=run.realizations, variants=run.variants,
             reuse_exact=None if reuse is None else reuse[0], out=dest / run.name, log=say)
    wall = time.perf_counter() - start
    say(f"wall time {wall:.0f} s")
    return wall


def render(names: list[str], dest: Path = HERE) -> dict[str, str]:
    """The tables ``names`` from the saved runs under ``dest`` (a table whose runs are not all
    saved is left out, with a message)."""
    results: dict[str, xr.Dataset] = {}
    out = {}
    for name in names:
        table = TABLES[name]
        missing = [r for r in table.runs if not (dest / r / "validation.nc").exists()]
        if missing:
            print(f"[{name}] not rewritten: no saved run {', '.join(missing)}")
            continue
        for r in table.runs:
            if r not in results:
                results[r] = summarize(ms.read_netcdf(dest / r / "validation.nc"))
        # only the table's own runs, in its order (score_table has a column per run)
        out[name] = table.render({r: results[r] for r in table.runs})
    return out


def _selected(models: str | None) -> list[str]:
    if models is None:
        return list(RUNS)
    names = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in names if m not in RUNS]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(RUNS)}")
    return names


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", help="comma-separated runs (default: all): " + ", ".join(RUNS))
    p.add_argument("--reuse-exact", action="store_true",
                   help="reuse the exact parts of a saved run of the same samples and bins")
    p.add_argument("--tables-only", action="store_true",
                   help="rewrite the tables from the saved runs, compute nothing")
    p.add_argument("--dest", type=Path, default=HERE,
                   help="directory of the runs (default: docs/validation)")
    p.add_argument("--doc", type=Path, default=DOC,
                   help="document whose tables are rewritten (default: docs/validation.md)")
    args = p.parse_args(argv)
    runs = _selected(args.models)
    if not args.doc.is_file():  # checked first: the runs take up to hours, the doc is written last
        raise SystemExit(f"--doc {args.doc} is not a file: name an existing copy of "
                         "docs/validation.md (its tables are rewritten in place)")
    times = {}
    if not args.tables_only:
        for name in runs:
            times[name] = compute(RUNS[name], args.dest, args.reuse_exact)
    tables = [t for t, table in TABLES.items() if set(table.runs) & set(runs)]
    text = args.doc.read_text(encoding="utf-8")
    try:
        new = replace_tables(text, render(tables, args.dest), source=str(args.doc))
    except MarkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if new != text:
        args.doc.write_text(new, encoding="utf-8")
    print(f"{args.doc}: {len(tables)} table(s) " + ("rewritten" if new != text else "unchanged"))
    for name, wall in times.items():
        print(f"{name}: {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
