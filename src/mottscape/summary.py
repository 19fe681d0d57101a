"""Tables and reports of results: what the command line prints and ``mottscape report`` writes.

Kept out of :mod:`mottscape.cli` so that the command line only parses, calls and reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from .errors import InputError
from .units import display_unit

__all__ = ["beyond_padding_share", "conductivity_table", "report_store", "sweep_label"]


def _mean(values) -> float:
    """Mean over the finite values; NaN (without numpy's empty-slice warning) if none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _scalar(ds: xr.Dataset, name: str) -> str:
    """A scalar, or the ensemble mean +- spread of a per-realization scalar."""
    values = np.asarray(ds[name].values, dtype=float)
    if values.ndim == 0:
        return f"{float(values):.4g}"
    finite = values[np.isfinite(values)]
    spread = float(finite.std()) if finite.size else float("nan")
    return f"{_mean(values):.4g} (+- {spread:.2g})"


def conductivity_table(ds: xr.Dataset) -> str:
    """sigma(omega) as a text table, for one realization or an ensemble (mean +- s.e.).

    A sweep (dimension ``point``) gives one table per parameter point, headed by its values.
    """
    if "point" in ds.dims:
        blocks = []
        for p in range(ds.sizes["point"]):
            one = ds.isel(point=p)
            blocks.append(f"--- point {p}: {sweep_label(one)}\n" + _point_table(one))
        return "\n\n".join(blocks)
    return _point_table(ds)


def sweep_label(point: xr.Dataset) -> str:
    """The swept values of one parameter point, ``"fermi_energy = 0.6, width = 4.0"``."""
    names = [str(c) for c in point.coords if str(c).startswith("sweep_")]
    return ", ".join(f"{n[len('sweep_'):]} = {point[n].item()}" for n in names)


def _point_table(ds: xr.Dataset) -> str:
    """The table of one parameter point."""
    n = ds.sizes.get("realization")
    perc = np.asarray(ds["percolating"].values, dtype=bool) if "percolating" in ds else \
        np.zeros(1, bool)
    head = (f"E_F = {_scalar(ds, 'fermi_energy')}   nu = {_scalar(ds, 'nu')}   "
            f"Delta_xi = {_scalar(ds, 'delta_xi')}   xi = {_scalar(ds, 'xi')}   "
            f"basins = {_scalar(ds, 'n_basins')}   percolating = "
            f"{int(perc.sum())}/{perc.size}")
    if n:
        head = f"ensemble of {n} realizations (n_failed = {int(ds.get('n_failed', 0))})\n" + head
    unit = display_unit(ds["sigma_ll"].attrs)
    pairs = ds.attrs.get("option_estimator", "pairs") == "pairs"
    extra = [name for name in ("sigma_eq17" if pairs else "sigma_pairs", "sigma_exact")
             if name in ds]
    # the pairs behind sigma_ll: the pair model's state pairs in the bin, or eq. 17's shell
    count = "n_pairs_model" if pairs and "n_pairs_model" in ds else "n_pairs"
    names = ["sigma_ll", "sigma_mb", *extra]
    exact_head = "".join(f" {name:>11}" for name in extra)
    lines = [head, f"{'omega':>11} {'rho_omega':>9} {'states':>7} {'pairs':>7} "
                   f"{'sigma_LL':>11} {'+-':>9} {'sigma_MB':>11}{exact_head}  valid   "
                   f"[sigma in {unit}]"]
    for k in range(ds.sizes["omega"]):
        row = ds.isel(omega=k)
        mean = {name: float(row[f"{name}_mean"]) if f"{name}_mean" in row else
                _mean(row[name].values) for name in names}
        sem = float(row["sigma_ll_sem"]) if "sigma_ll_sem" in row else float("nan")
        n_pairs = row[count].values
        valid = np.asarray(row["valid"].values, dtype=bool)
        exact = "".join(f" {mean[name]:11.4g}" for name in extra)
        lines.append(
            f"{float(ds.omega[k]):11.4g} {_mean(row.rho_omega.values):9.3f} "
            f"{float(np.mean(row.n_states.values)):7.1f} "
            f"{int(np.sum(n_pairs)):7d} {mean['sigma_ll']:11.4g} {sem:9.2g} "
            f"{mean['sigma_mb']:11.4g}{exact}  {int(valid.sum())}/{valid.size}")
    lines += [note for note in (_whole_sample_note(ds), _partial_exact_note(ds)) if note]
    notes = ds.attrs.get("diagnosis", "")
    if notes:  # the failed assumptions of the theory with their remedies
        lines += ["outside the theory's validity:", *(f"  - {n}" for n in notes.split("\n"))]
    return "\n".join(lines)


def beyond_padding_share(ds: xr.Dataset) -> np.ndarray | None:
    """Per bin, the share of the exact sigma that the exact boxes resolve only partly.

    That is the part from pairs farther apart than the boxes' padding, summed over the
    realizations, over the exact sigma summed likewise; None without boxes. ``ds`` is a
    result with ``sigma_exact`` (a run or an ensemble) or a
    :func:`~mottscape.kubo_greenwood` result (``sigma``). A bin is resolved when the share
    is below :data:`mottscape.exact.RESOLVED_FAR`.
    """
    names = [("sigma_exact", "sigma_exact_beyond_padding"), ("sigma", "sigma_beyond_padding")]
    for total, part in names:
        if total in ds and part in ds:
            exact = np.atleast_2d(np.asarray(ds[total].values, dtype=float))
            far = np.atleast_2d(np.asarray(ds[part].values, dtype=float))
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.nansum(far, axis=0) / np.nansum(exact, axis=0)
    return None


def _partial_exact_note(ds: xr.Dataset) -> str:
    """A line naming the bins that the exact boxes resolve only partly (empty if none)."""
    from .exact import RESOLVED_FAR

    share = beyond_padding_share(ds)
    if share is None:
        return ""
    partial = np.flatnonzero(share >= RESOLVED_FAR)
    if partial.size == 0:
        return ""
    where = ", ".join(f"{float(ds.omega[k]):.4g} ({100 * share[k]:.3g} %)" for k in partial)
    return (f"exact reference (boxes): not resolved at omega = {where}: that share of "
            "sigma_exact comes from pairs farther apart than the boxes' padding, whose matrix "
            "elements the boxes sum only partly; raise exact_padding")


def _whole_sample_note(ds: xr.Dataset) -> str:
    """A line saying when the pair model solved the whole sample as one box (exact sigma)."""
    if "pair_model_whole_sample" not in ds:
        return ""
    whole = np.asarray(ds["pair_model_whole_sample"].values, dtype=bool).ravel()
    if not whole.any():
        return ""
    where = "" if whole.size == 1 else f" in {int(whole.sum())}/{whole.size} realizations"
    return (f"pair model: the whole sample was solved as one box{where} (cheaper than the "
            "basins' boxes): there sigma_pairs is the exact Kubo-Greenwood sum of the sample, "
            "not an LL estimate")


def report_store(store: str | Path, out: str | Path | None = None
                 ) -> tuple[xr.Dataset, list[Path]]:
    """Aggregate the records of a store: ``ensemble.nc`` and ``conductivity.png`` with bands.

    Parameters
    ----------
    store
        A store directory written by ``mottscape run --store`` (or ``run_ensemble``).
    out
        Output directory (default: the store itself).

    Returns
    -------
    (dataset, files)
    """
    from .config import sweep_points
    from .ensemble import POINT_STRIDE, combine_points
    from .netcdf import read_netcdf, write_netcdf
    from .plot import plot_conductivity
    from .runner import RunReport
    from .store import MANIFEST, dataset_checksum

    path = Path(store)
    if not (path / MANIFEST).is_file():
        raise InputError(f"store={str(path)!r} is not a mottscape store (no {MANIFEST}); give "
                         "the directory passed to --store")
    manifest = json.loads((path / MANIFEST).read_text())
    report = RunReport()
    for record in sorted(path.glob("realization_*.nc")):
        ds = read_netcdf(record)
        if ds.attrs.get("store_hash") != manifest.get("hash") or \
                ds.attrs.get("checksum") != dataset_checksum(ds):
            continue
        report.results[int(record.stem.split("_")[1])] = ds
    if not report.results:
        raise InputError(f"store={str(path)!r} holds no finished realization")
    if manifest.get("description", {}).get("kind") != "pipeline":
        raise InputError(f"store={str(path)!r} holds a validation run; its summary is "
                         "validation.nc, written by mottscape validate")
    description = manifest.get("description", {})
    labels = sweep_points(description.get("study", {}).get("sweep", {}))
    index = sorted({t % POINT_STRIDE for t in report.results})
    ds = combine_points(report, index, labels)
    target = Path(out) if out is not None else path
    files = [write_netcdf(ds, target / "ensemble.nc")]
    fig = plot_conductivity(ds)
    files.append(target / "conductivity.png")
    fig.savefig(files[-1], dpi=130)
    return ds, files
