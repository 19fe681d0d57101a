"""Validation: the LL estimators and sigma_MB against the exact Kubo-Greenwood conductivity.

On every realization of a study, on the same omega bins:

* the exact reference sigma_exact (eqs. 4-5, :func:`mottscape.kubo_greenwood`), bin-averaged;
* sigma_ll, the study's estimator (the recommended pair model by default);
* the paper's formula, eq. 17, at the geometric bin centres (``sigma_eq17``), for each variant
  of the choices the paper leaves open (Mott scale ln vs Lambert-W, nu from the landscape law
  vs from the basins, basin centres, the pair set that estimates f(r, rho_omega));
* sigma_MB (eq. 1) and the pair-resolved model (Appendices A-B, :mod:`mottscape.pairs`),
  with its LL tunnelling part alone (``sigma_pairs_tunnelling``);
* the landscape eigenvalue estimates against the lowest exact eigenvalues, and the landscape
  DOS at E_F against the exact one.

The ensemble summary gives, per omega, the ratio of ensemble means sigma_X / sigma_exact with a
bootstrap spread over realizations (16th-84th percentiles), and the log-log slope of each curve.
Nothing is fitted to the exact result: the O(1) factors are measured, not tuned away.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .config import Study, load_study, study_from_dict
from .ensemble import run_study_tasks
from .errors import InputError
from .exact import exact_dos, kubo_greenwood, lowest_eigenvalues
from .landscape import landscape_of
from .netcdf import write_netcdf
from .pairs import pair_model_on, recoupled
from .pipeline import run
from .summary import beyond_padding_share
from .units import get_units

__all__ = ["DEFAULT_VARIANTS", "default_validation_study", "effective_realizations",
           "resolved_bins", "summarize", "validate", "validation_table"]

#: The variants of eq. 17 compared on every realization (keyword arguments of
#: :func:`mottscape.run_pipeline`). The first is the package's default eq. 17.
DEFAULT_VARIANTS: dict[str, dict] = {
    "default": {},
    "mott_lambertw": {"mott_scale": "lambertw"},
    "mott_log": {"mott_scale": "log"},
    "dos_basins": {"dos": "basins"},
    "center_centroid": {"center": "centroid"},
    "center_minimum": {"center": "minimum"},
    "pairs_sigma_omega": {"pair_set": "sigma_omega"},
    "effective_scaled": {"effective": "scaled"},
    "scaled_lambertw": {"effective": "scaled", "mott_scale": "lambertw"},
}

#: Number of lowest eigenvalues compared with the landscape estimates.
N_EIGENVALUES = 20


def default_validation_study() -> Study:
    """The built-in validation study: a 1D block potential in the band tail (see docs)."""
    import tomllib
    from importlib import resources

    text = resources.files("mottscape").joinpath("data/validation_1d.toml").read_text()
    return study_from_dict(tomllib.loads(text), source="<validation-1d>")


def _edges(study: Study) -> np.ndarray:
    c = study.conductivity
    if c.omega is not None:
        w = np.asarray(c.omega, dtype=float)
        if w.size < 2:
            raise InputError("validation needs at least two omega values (they are bin edges)")
        return w
    assert c.omega_min is not None and c.omega_max is not None and c.n_omega is not None
    return np.geomspace(c.omega_min, c.omega_max, c.n_omega + 1)


#: The exact parts of a realization's result, reusable across validation runs of one study.
EXACT_FIELDS = ("sigma_exact", "n_pairs_exact", "nu_exact", "eig_exact")


_Vars = dict[str, tuple[Any, Any]]


def validation_task(study: Study, edges: np.ndarray, variants: dict,
                    previous: xr.Dataset | None, r: int,
                    pieces: dict | None = None) -> xr.Dataset:
    """One realization of the validation (a runner task): exact, eq. 17 variants, MB, pairs.

    ``pieces``: exact KG results already computed piece by piece on the engine, by
    realization (:func:`mottscape.ensemble.exact_references`).
    """
    exact_prev = None if previous is None else previous.isel(realization=r)
    centres = np.sqrt(edges[:-1] * edges[1:])
    sample = study.make_sample(r)
    land = landscape_of(sample, study.options)
    ef = study.conductivity.fermi_energy
    out = (_exact_sigma(sample, ef, edges, (pieces or {}).get(r), r) if exact_prev is None
           else _saved_exact(exact_prev))
    base, eq17 = _eq17_variants(study, sample, land, ef, centres, variants)
    out.update(eq17)
    out.update(_pair_variables(study, base, edges, eq17["sigma_eq17"][1][0]))
    out.update(_pipeline_variables(base))
    if exact_prev is None:
        out.update(_exact_spectrum(sample, ef, float(edges[-1]) * land.units.hbar))
    est = land.eigenvalue_estimates()[:N_EIGENVALUES]
    out["eig_estimate"] = ("level", np.pad(est, (0, N_EIGENVALUES - est.size),
                                           constant_values=np.nan))
    return xr.Dataset(out, coords={"omega": centres, "variant": list(variants),
                                   "level": np.arange(N_EIGENVALUES)})


def _exact_sigma(sample, ef: float, edges: np.ndarray, done, r: int) -> _Vars:
    """The exact Kubo-Greenwood sigma on the bins (eqs. 4-5), or the piece computed before."""
    if isinstance(done, tuple):
        raise InputError(f"the exact reference of realization {r} failed: {done[1]}")
    exact = kubo_greenwood(sample, ef, edges) if done is None else done
    out: _Vars = {"sigma_exact": ("omega", exact["sigma"].values),
                  "n_pairs_exact": ("omega", exact["n_pairs"].values)}
    if "sigma_beyond_padding" in exact:  # the boxes' partly resolved part
        out["sigma_exact_beyond_padding"] = ("omega", exact["sigma_beyond_padding"].values)
    return out


def _saved_exact(exact_prev: xr.Dataset) -> _Vars:
    """The exact parts of a saved realization (:data:`EXACT_FIELDS`)."""
    kept = [*EXACT_FIELDS, *(["sigma_exact_beyond_padding"]
                             if "sigma_exact_beyond_padding" in exact_prev else [])]
    return {name: (exact_prev[name].dims, exact_prev[name].values) for name in kept}


def _eq17_variants(study: Study, sample, land, ef: float, centres: np.ndarray,
                   variants: dict) -> tuple[Any, _Vars]:
    """eq. 17 under each variant of its open choices; the first variant's pipeline result."""
    names = list(variants)
    sig = np.zeros((len(names), centres.size))
    npairs = np.zeros((len(names), centres.size), dtype=int)
    valid = np.zeros((len(names), centres.size), dtype=bool)
    base = None
    for k, name in enumerate(names):
        # eq. 17 alone; the pair model runs once, on the bins (_pair_variables)
        opts = study.options.replace(**variants[name], estimator="eq17", pair_model=False)
        pipe = run(sample, ef, centres, opts, landscape=land)
        sig[k] = pipe.conductivity.sigma_eq17
        npairs[k] = pipe.moments.n_pairs
        valid[k] = pipe.conductivity.valid
        if base is None:
            base = pipe
    if base is None:
        raise InputError("variants must name at least one variant of eq. 17")
    return base, {"sigma_eq17": (("variant", "omega"), sig),
                  "n_pairs_eq17": (("variant", "omega"), npairs),
                  "valid_eq17": (("variant", "omega"), valid)}


def _pair_variables(study: Study, base, edges: np.ndarray, first_eq17: np.ndarray) -> _Vars:
    """The pair model on the bins (App. A-B), its shares, and the study's sigma_ll."""
    model = pair_model_on(base, edges)
    return {
        "sigma_pairs": ("omega", model.sigma),
        # the study's estimator: the pair model, or eq. 17 with the study's own choices
        "sigma_ll": ("omega", model.sigma if study.options.estimator == "pairs"
                     else first_eq17),
        "pairs_box_share": ("omega", model.box_share),
        "pairs_flux_share": ("omega", model.flux_share),
        "pairs_uncertain_share": ("omega", model.uncertain_share),
        "pair_model_widened_basins": ((), model.widened),
        # the same states and amplitudes, every inter-basin pair through t_ab
        "sigma_pairs_tunnelling": ("omega", recoupled(model, "tunnelling", base).sigma)}


def _pipeline_variables(base) -> _Vars:
    """sigma_MB (eq. 1), the level statistics, rho_omega and percolation of the pipeline."""
    ds0 = base.to_dataset()
    out: _Vars = {"sigma_mb": ("omega", ds0["sigma_mb"].values)}
    for name in ("nu", "nu_landscape", "nu_basins", "delta_xi", "delta_xi_mb", "xi",
                 "localization_volume"):
        out[name] = ((), float(ds0[name]))
    out["rho_omega"] = ("omega", ds0["rho_omega"].values)
    out["percolating"] = ((), int(base.basins.percolating))
    return out


def _exact_spectrum(sample, ef: float, width: float) -> _Vars:
    """The exact DOS over [E_F - width, E_F + width] and the lowest exact eigenvalues."""
    k = N_EIGENVALUES
    dos = exact_dos(sample, [ef - width, ef + width])
    ex = lowest_eigenvalues(sample, k)
    return {"nu_exact": ((), float(np.asarray(dos["dos"]).ravel()[0])),
            "eig_exact": ("level", np.pad(ex, (0, k - ex.size), constant_values=np.nan))}


#: Bootstrap resamples of the realizations in :func:`summarize`.
N_BOOTSTRAP = 400


def _bootstrap_ratio(num: np.ndarray, den: np.ndarray, idx: np.ndarray):
    """16th/50th/84th percentiles of mean(num)/mean(den) over resampled realizations.

    ``idx`` (resamples x realizations) holds the realizations of each resample; every curve
    is resampled with the same ``idx`` (a paired bootstrap), so its band depends on neither
    the other curves nor their order.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = num[idx].mean(axis=1) / den[idx].mean(axis=1)
    ratios = np.where(np.isfinite(ratios), ratios, np.nan)
    out = np.full((3, *ratios.shape[1:]), np.nan)
    some = np.isfinite(ratios).any(axis=0)  # a bin with no exact sigma has no ratio (NaN)
    out[:, some] = np.nanpercentile(ratios[:, some], [16, 50, 84], axis=0)
    return out


def _slope(omega, sigma):
    ok = np.isfinite(sigma) & (sigma > 0)
    if ok.sum() < 3:
        return math.nan
    return float(np.polyfit(np.log(omega[ok]), np.log(sigma[ok]), 1)[0])


#: A bin is resolved when no few realizations dominate its exact mean: the effective number of
#: realizations (sum s_r)^2 / sum s_r^2 is at least this fraction of the realizations...
RESOLVED_SHARE = 0.5
#: ... and the exact sum has at least this many pairs per realization.
RESOLVED_PAIRS = 10


def effective_realizations(per: xr.Dataset) -> np.ndarray:
    """(sum_r s_r)^2 / sum_r s_r^2 of the realizations' exact sigma s_r, per bin."""
    s = per["sigma_exact"].values
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(s.sum(axis=0) ** 2 / (s**2).sum(axis=0))


def resolved_bins(per: xr.Dataset) -> np.ndarray:
    """The bins whose exact ensemble mean is resolved.

    At least :data:`RESOLVED_PAIRS` exact pairs per realization, and an effective number of
    realizations of at least :data:`RESOLVED_SHARE` of them: the low-frequency sigma of a
    finite sample is carried by rare resonant pairs, and a mean made of one or two
    realizations' pairs is sampling noise of the reference, not a value to compare with.
    With an exact reference by boxes, also less than
    :data:`~mottscape.exact.RESOLVED_FAR` of the exact mean from pairs farther apart than
    the boxes' padding (``sigma_exact_beyond_padding``; their matrix elements are partial).
    """
    from .exact import RESOLVED_FAR

    n = per.sizes["realization"]
    pairs = per["n_pairs_exact"].values.mean(axis=0)
    ok = (effective_realizations(per) >= RESOLVED_SHARE * n) & (pairs >= RESOLVED_PAIRS)
    share = beyond_padding_share(per)  # the share the printed table and the figure name
    if share is not None:
        ok &= share < RESOLVED_FAR
    return ok


def _current_names(per: xr.Dataset) -> xr.Dataset:
    """A validation result saved before eq. 17 was renamed (sigma_ll along ``variant``)."""
    if "sigma_eq17" in per or "variant" not in per["sigma_ll"].dims:
        return per
    per = per.rename({k: k.replace("_ll", "_eq17") for k in
                      ("sigma_ll", "n_pairs_ll", "valid_ll") if k in per})
    per = per.drop_vars([k for k in per.variables if str(k).startswith(
        ("ratio_", "score_", "slope_"))])
    return per.assign(sigma_ll=per["sigma_pairs"])


def summarize(per: xr.Dataset, seed: int = 0) -> xr.Dataset:
    """Ensemble summary of per-realization validation results (see the module docstring).

    ``per`` may also be a saved validation result: its summary is recomputed. Adds, per
    bin, ``resolved`` (:func:`resolved_bins`), ``n_effective_realizations``, and for each
    curve X (``ll``, ``mb``, ``pairs``, ``pairs_tunnelling``, ``eq17_<variant>``) the ratio
    of ensemble means ``ratio_X`` with its bootstrap band, ``slope_X`` and ``score_X``.
    """
    per = _current_names(per)
    idx = np.random.default_rng(seed).integers(
        0, per.sizes["realization"], size=(N_BOOTSTRAP, per.sizes["realization"]))
    w = per.omega.values
    ex = per["sigma_exact"].values
    out = per.copy()
    out["sigma_exact_mean"] = ("omega", ex.mean(axis=0))
    out["n_effective_realizations"] = ("omega", effective_realizations(per))
    if "n_pairs_exact" in per:
        out["resolved"] = ("omega", resolved_bins(per))
    curves = {"ll": per["sigma_ll"].values, "mb": per["sigma_mb"].values,
              "pairs": per["sigma_pairs"].values}
    if "sigma_pairs_tunnelling" in per:
        curves["pairs_tunnelling"] = per["sigma_pairs_tunnelling"].values
    for v in per.variant.values:
        curves[f"eq17_{v}"] = per["sigma_eq17"].sel(variant=v).values
    stats = {}
    for name, arr in curves.items():
        lo, _median, hi = _bootstrap_ratio(arr, ex, idx)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = arr.mean(axis=0) / ex.mean(axis=0)
        out[f"ratio_{name}"] = ("omega", ratio)
        out[f"ratio_{name}_lo"] = ("omega", lo)
        out[f"ratio_{name}_hi"] = ("omega", hi)
        out[f"slope_{name}"] = ((), _slope(w, arr.mean(axis=0)))
        # Every bin where the exact result is non-zero counts; a curve that is zero (or
        # missing) there scores as a factor 1000 off, so a sparse estimator is not rewarded
        # for skipping the bins it cannot fill.
        bins = ex.mean(axis=0) > 0
        r = np.clip(np.nan_to_num(ratio, nan=0.0, posinf=1e3), 1e-3, 1e3)
        score = float(np.median(np.abs(np.log(r[bins])))) if bins.any() else math.nan
        out[f"score_{name}"] = ((), score)
        stats[name] = score
    out["slope_exact"] = ((), _slope(w, ex.mean(axis=0)))
    scores = {v: stats[f"eq17_{v}"] for v in per.variant.values}
    finite = {k: s for k, s in scores.items() if math.isfinite(s)}
    out.attrs["best_variant"] = str(min(finite, key=finite.__getitem__)) if finite else "none"
    out.attrs["score_definition"] = (
        "median over the omega bins with a non-zero exact result of |ln(mean sigma_X / mean "
        "sigma_exact)|, ratios clipped to [1e-3, 1e3] (a zero counts as 1e-3); 0 is perfect, "
        "ln 2 = 0.69 is a factor 2")
    return out


def validate(
    study: Study | str | Path | None = None,
    *,
    realizations: int | None = None,
    variants: dict | None = None,
    out: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    reuse_exact: str | Path | xr.Dataset | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    store: str | Path | None = None,
    progress: bool = False,
) -> xr.Dataset:
    """Run the validation study: the LL estimators, MB and the exact reference.

    Parameters
    ----------
    study
        A :class:`~mottscape.config.Study`, a TOML study path, or None for the built-in 1D
        validation study. Its omega range defines the bin *edges*
        (``n_omega + 1`` log-spaced values from ``omega_min`` to ``omega_max``, or the explicit
        ``omega`` list).
    realizations
        Override the study's ``ensemble.realizations``.
    variants
        Variants of eq. 17 to compare (default :data:`DEFAULT_VARIANTS`).
    out
        Directory for ``validation.nc`` and ``validation.png`` (nothing written if None).
    log
        Called with one line per finished realization.
    reuse_exact
        A previous validation result (Dataset or NetCDF path) of the *same* study: its exact
        parts (sigma_exact, nu_exact, exact eigenvalues) are reused instead of recomputed,
        so that new variants of eq. 17 can be compared cheaply. The bins and the number of
        realizations must match (realizations are seeded, so they are the same samples).
    workers, scheduler, store, progress
        The engine, the resumable store and the progress bar, as for
        :func:`mottscape.ensemble.run_ensemble`: each realization is one task.

    Returns
    -------
    xarray.Dataset
        Per-realization results along ``realization`` and the summary of :func:`summarize`.
    """
    if study is None:
        study = default_validation_study()
    elif not isinstance(study, Study):
        study = load_study(study)
    if study.points:
        raise InputError(f"{study.source}: validate runs one parameter point; remove [sweep] "
                         "(or validate each point as its own study)")
    say = log or (lambda _m: None)
    n = realizations if realizations is not None else study.ensemble.realizations
    if not isinstance(n, int) or n < 1:
        raise InputError(f"realizations={n!r} must be a positive integer")
    edges = _edges(study)
    variants = dict(DEFAULT_VARIANTS if variants is None else variants)
    prev = None
    if reuse_exact is not None:
        from .netcdf import read_netcdf

        prev = reuse_exact if isinstance(reuse_exact, xr.Dataset) else read_netcdf(reuse_exact)
        if prev.sizes.get("realization") != n or prev.sizes.get("omega") != edges.size - 1 \
                or not np.allclose(prev["omega_lower"].values, edges[:-1]):
            raise InputError("reuse_exact: the previous result has other realizations or omega "
                             "bins than this study; rerun without reuse_exact")
    pieces = None
    from .ensemble import exact_splits

    if prev is None and exact_splits(study):
        from .ensemble import _prune_pieces, exact_references
        from .runner import engine

        with engine(workers, scheduler, say) as client:
            pieces = exact_references(study, list(range(n)), client=client, store=store,
                                      log=say, progress=progress, edges=edges,
                                      kind="validation")
    task = functools.partial(validation_task, study, edges, variants, prev, pieces=pieces)
    extra = {"edges": edges.tolist(), "variants": variants, "reuse_exact": prev is not None}
    report = run_study_tasks(study, "validation", task, list(range(n)), extra=extra,
                             store=store, workers=workers, scheduler=scheduler, log=say,
                             progress=progress)
    if report.failures:
        f = report.failures[0]
        raise InputError(f"validation of realization {f.task} failed: {f.message}")
    if pieces is not None and store is not None:
        _prune_pieces(Path(store), set(report.results), "validation")
    per = [report.results[r] for r in range(n)]
    ds = xr.concat(per, dim="realization").assign_coords(realization=np.arange(n))
    ds = ds.assign_coords(omega_lower=("omega", edges[:-1]), omega_upper=("omega", edges[1:]))
    res = _with_units(summarize(ds), study)
    res.attrs.update(study=study.to_dict(), study_source=str(study.source), realizations=n,
                     fermi_energy=study.conductivity.fermi_energy,
                     variants={k: str(v) for k, v in variants.items()})
    if out is not None:
        target = Path(out)
        write_netcdf(res, target / "validation.nc", units=study.grid.units)
        from .plot import plot_validation

        plot_validation(res).savefig(target / "validation.png", dpi=130)
    return res


#: The physical quantity of each validation variable (by name, else by prefix), for its unit.
_QUANTITY = {"sigma": "sigma", "nu": "dos", "delta_xi": "energy", "eig": "energy",
             "xi": "length", "localization_volume": "volume", "omega": "omega"}


def _with_units(res: xr.Dataset, study: Study) -> xr.Dataset:
    """Give every numeric variable its unit in the study's system (dimensionless ones "1")."""
    system = get_units(study.grid.units)
    shape = study.potential.shape
    ndim = len(shape) if shape is not None else study.make_potential(0).ndim
    for name in res.variables:
        if res[name].dtype.kind not in "biuf":
            continue
        key = str(name)
        quantity = _QUANTITY.get(key) or next(
            (q for prefix, q in _QUANTITY.items() if key.startswith(prefix + "_")),
            "dimensionless")
        if key.startswith(("ratio_", "score_", "slope_", "n_", "rho_")):
            quantity = "dimensionless"
        res[name].attrs["units"] = system.unit_of(quantity, ndim)
    return res


def validation_table(res) -> str:
    """The validation summary as a Markdown table (ratios of ensemble means to exact).

    Columns: the exact mean, the recommended estimator ``sigma_ll``, the paper's formula
    (eq. 17, default variant), the classical formula (eq. 1) and the pair model's LL
    tunnelling part; bins not resolved (:func:`resolved_bins`) are marked.
    """
    ok = res["resolved"].values if "resolved" in res else np.ones(res.sizes["omega"], bool)
    lines = [
        f"E_F = {res.attrs.get('fermi_energy')}, realizations = {res.sizes['realization']}, "
        f"Delta_xi = {float(res.delta_xi.mean()):.3g}, xi = {float(res.xi.mean()):.3g}, "
        f"nu_LL / nu_exact = {float(res.nu_landscape.mean() / res.nu_exact.mean()):.3f}",
        "",
        "| omega | omega/Delta_xi | sigma_exact | sigma_ll/exact | eq. 17/exact | MB/exact "
        "| LL tunnelling/exact |",
        "|---|---|---|---|---|---|---|",
    ]
    dxi = float(res.delta_xi.mean())
    shown = ["ll", f"eq17_{res.variant.values[0]}", "mb", "pairs_tunnelling"]
    for k in range(res.sizes["omega"]):
        def cell(name, k=k):
            if f"ratio_{name}" not in res:
                return "n/a"
            r, lo, hi = (float(res[f"ratio_{name}{s}"][k]) for s in ("", "_lo", "_hi"))
            return f"{r:.3g} [{lo:.2g}, {hi:.2g}]" if math.isfinite(r) else "n/a"
        w = float(res.omega[k])
        mark = "" if ok[k] else " (unresolved)"
        lines.append(f"| {w:.3g}{mark} | {w / dxi:.2g} | {float(res.sigma_exact_mean[k]):.3g} "
                     "| " + " | ".join(cell(n) for n in shown) + " |")
    lines += ["", "| curve | log-log slope | score |", "|---|---|---|",
              f"| exact | {float(res.slope_exact):.2f} | - |"]
    for name in ["ll"] + [f"eq17_{v}" for v in res.variant.values] + ["mb", "pairs"]:
        lines.append(f"| {name} | {float(res[f'slope_{name}']):.2f} | "
                     f"{float(res[f'score_{name}']):.2f} |")
    est, ex = res.eig_estimate.mean("realization"), res.eig_exact.mean("realization")
    rel = np.nanmean(np.abs(est - ex) / np.abs(ex))
    lines += ["", f"landscape eigenvalue estimates vs the {res.sizes['level']} lowest exact "
              f"eigenvalues: mean relative deviation {float(rel):.3f}",
              f"best variant of eq. 17 (lowest score): {res.attrs.get('best_variant')}"]
    return "\n".join(lines)
