"""Validation: sigma_LL and sigma_MB against the exact Kubo-Greenwood conductivity.

On every realization of a study, on the same omega bins:

* the exact reference sigma_exact (eqs. 4-5, :func:`mottscape.kubo_greenwood`), bin-averaged;
* sigma_LL (eq. 17) at the geometric bin centres, for each variant of the choices the paper
  leaves open (Mott scale ln vs Lambert-W, nu from the landscape law vs from the basins, basin
  centres, the pair set that estimates f(r, rho_omega));
* sigma_MB (eq. 1) and the pair-resolved model (Appendices A-B, :mod:`mottscape.pairs`);
* the landscape eigenvalue estimates against the lowest exact eigenvalues, and the landscape
  DOS at E_F against the exact one.

The ensemble summary gives, per omega, the ratio of ensemble means sigma_X / sigma_exact with a
bootstrap spread over realizations (16th-84th percentiles), and the log-log slope of each curve.
Nothing is fitted to the exact result: the O(1) factors are measured, not tuned away.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from .conductivity import run_pipeline
from .config import Study, load_study, study_from_dict
from .errors import InputError
from .exact import exact_dos, kubo_greenwood, lowest_eigenvalues
from .io import write_netcdf
from .landscape import solve_landscape
from .pairs import pair_conductivity

__all__ = ["DEFAULT_VARIANTS", "default_validation_study", "summarize", "validate"]

#: The variants of sigma_LL compared on every realization (keyword arguments of
#: :func:`mottscape.run_pipeline`). The first is the package default.
DEFAULT_VARIANTS: dict[str, dict] = {
    "default": {},
    "mott_lambertw": {"mott_scale_method": "lambertw"},
    "mott_log": {"mott_scale_method": "log"},
    "dos_basins": {"dos": "basins"},
    "center_centroid": {"center": "centroid"},
    "center_minimum": {"center": "minimum"},
    "pairs_sigma_omega": {"pairs": "sigma_omega"},
    "effective_scaled": {"effective": "scaled"},
    "scaled_lambertw": {"effective": "scaled", "mott_scale_method": "lambertw"},
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
    return np.geomspace(c.omega_min, c.omega_max, c.n_omega + 1)


#: The exact parts of a realization's result, reusable across validation runs of one study.
EXACT_FIELDS = ("sigma_exact", "n_pairs_exact", "nu_exact", "eig_exact")


def _one_realization(study: Study, r: int, edges: np.ndarray, variants: dict,
                     log: Callable[[str], None], exact_prev: xr.Dataset | None = None
                     ) -> xr.Dataset:
    c = study.conductivity
    g = study.grid
    centres = np.sqrt(edges[:-1] * edges[1:])
    V = study.make_potential(r)
    mass = study.make_mass(V.shape)
    land = solve_landscape(V, spacing=g.spacing, mass=mass, boundary=g.boundary,
                           units=g.units)
    ef = c.fermi_energy
    if exact_prev is None:
        exact = kubo_greenwood(V, ef, edges, spacing=g.spacing, mass=mass,
                               boundary=g.boundary, units=g.units)
        out = {"sigma_exact": ("omega", exact["sigma"].values),
               "n_pairs_exact": ("omega", exact["n_pairs"].values)}
    else:
        out = {name: (exact_prev[name].dims, exact_prev[name].values)
               for name in EXACT_FIELDS}
    names = list(variants)
    sig = np.zeros((len(names), centres.size))
    npairs = np.zeros((len(names), centres.size), dtype=int)
    valid = np.zeros((len(names), centres.size), dtype=bool)
    base = None
    for k, name in enumerate(names):
        opts = dict(variants[name])
        opts.setdefault("mott_scale_method", c.mott_scale)
        pipe = run_pipeline(None, ef, centres, landscape=land, **opts)
        sig[k] = pipe.dataset["sigma_ll"].values
        npairs[k] = pipe.dataset["n_pairs"].values
        valid[k] = pipe.dataset["valid"].values
        if base is None:
            base = pipe
    assert base is not None
    ds0 = base.dataset
    out["sigma_ll"] = (("variant", "omega"), sig)
    out["n_pairs_ll"] = (("variant", "omega"), npairs)
    out["valid_ll"] = (("variant", "omega"), valid)
    out["sigma_mb"] = ("omega", ds0["sigma_mb"].values)
    out["sigma_pairs"] = ("omega", pair_conductivity(base, edges)["sigma_pairs"].values)
    for name in ("nu", "nu_landscape", "nu_basins", "delta_xi", "xi", "localization_volume"):
        out[name] = ((), float(ds0[name]))
    out["rho_omega"] = ("omega", ds0["rho_omega"].values)
    out["percolating"] = ((), int(ds0.attrs["percolating"]))
    k = N_EIGENVALUES
    if exact_prev is None:
        # Exact DOS over the window [E_F - hbar omega_max, E_F + hbar omega_max].
        width = float(edges[-1]) * land.units.hbar
        dos = exact_dos(V, [ef - width, ef + width], spacing=g.spacing, mass=mass,
                        boundary=g.boundary, units=g.units)
        out["nu_exact"] = ((), float(np.asarray(dos["dos"]).ravel()[0]))
        ex = lowest_eigenvalues(V, k, spacing=g.spacing, mass=mass, boundary=g.boundary,
                                units=g.units)
        out["eig_exact"] = ("level", np.pad(ex, (0, k - ex.size), constant_values=np.nan))
    est = land.eigenvalue_estimates()[:k]
    out["eig_estimate"] = ("level", np.pad(est, (0, k - est.size), constant_values=np.nan))
    log(f"realization {r}: nu_LL = {float(ds0.nu_landscape):.4g}, nu_exact = "
        f"{float(out['nu_exact'][1]):.4g}, Delta_xi = {float(ds0.delta_xi):.3g}"
        + (" (exact reused)" if exact_prev is not None else ""))
    return xr.Dataset(out, coords={"omega": centres, "variant": names,
                                   "level": np.arange(k)})


def _bootstrap_ratio(num: np.ndarray, den: np.ndarray, rng, n_boot: int = 400):
    """16th/50th/84th percentiles of mean(num)/mean(den) over resampled realizations."""
    R = num.shape[0]
    idx = rng.integers(0, R, size=(n_boot, R))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = num[idx].mean(axis=1) / den[idx].mean(axis=1)
        return np.nanpercentile(np.where(np.isfinite(ratios), ratios, np.nan), [16, 50, 84],
                                axis=0)


def _slope(omega, sigma):
    ok = np.isfinite(sigma) & (sigma > 0)
    if ok.sum() < 3:
        return math.nan
    return float(np.polyfit(np.log(omega[ok]), np.log(sigma[ok]), 1)[0])


def summarize(per: xr.Dataset, seed: int = 0) -> xr.Dataset:
    """Ensemble summary of per-realization validation results (see the module docstring).

    ``per`` may also be a saved validation result: its summary is recomputed.
    """
    rng = np.random.default_rng(seed)
    w = per.omega.values
    ex = per["sigma_exact"].values
    out = per.copy()
    out["sigma_exact_mean"] = ("omega", ex.mean(axis=0))
    curves = {"mb": per["sigma_mb"].values, "pairs": per["sigma_pairs"].values}
    for v in per.variant.values:
        curves[f"ll_{v}"] = per["sigma_ll"].sel(variant=v).values
    stats = {}
    for name, arr in curves.items():
        lo, _median, hi = _bootstrap_ratio(arr, ex, rng)
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
    scores = {v: stats[f"ll_{v}"] for v in per.variant.values}
    finite = {k: s for k, s in scores.items() if math.isfinite(s)}
    out.attrs["best_variant"] = str(min(finite, key=finite.get)) if finite else "none"
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
) -> xr.Dataset:
    """Run the validation study: LL, MB, the pair model and the exact reference.

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
        Variants of sigma_LL to compare (default :data:`DEFAULT_VARIANTS`).
    out
        Directory for ``validation.nc`` and ``validation.png`` (nothing written if None).
    log
        Called with one line per finished realization.
    reuse_exact
        A previous validation result (Dataset or NetCDF path) of the *same* study: its exact
        parts (sigma_exact, nu_exact, exact eigenvalues) are reused instead of recomputed,
        so that new variants of sigma_LL can be compared cheaply. The bins and the number of
        realizations must match (realizations are seeded, so they are the same samples).

    Returns
    -------
    xarray.Dataset
        Per-realization results along ``realization`` and the summary of :func:`summarize`.
    """
    if study is None:
        study = default_validation_study()
    elif not isinstance(study, Study):
        study = load_study(study)
    say = log or (lambda _m: None)
    n = realizations if realizations is not None else study.ensemble.realizations
    if not isinstance(n, int) or n < 1:
        raise InputError(f"realizations={n!r} must be a positive integer")
    edges = _edges(study)
    variants = dict(DEFAULT_VARIANTS if variants is None else variants)
    prev = None
    if reuse_exact is not None:
        from .io import read_netcdf

        prev = reuse_exact if isinstance(reuse_exact, xr.Dataset) else read_netcdf(reuse_exact)
        if prev.sizes.get("realization") != n or prev.sizes.get("omega") != edges.size - 1 \
                or not np.allclose(prev["omega_lower"].values, edges[:-1]):
            raise InputError("reuse_exact: the previous result has other realizations or omega "
                             "bins than this study; rerun without reuse_exact")
    per = [
        _one_realization(study, r, edges, variants, say,
                         None if prev is None else prev.isel(realization=r))
        for r in range(n)
    ]
    ds = xr.concat(per, dim="realization").assign_coords(realization=np.arange(n))
    ds = ds.assign_coords(omega_lower=("omega", edges[:-1]), omega_upper=("omega", edges[1:]))
    res = summarize(ds)
    res.attrs.update(study=study.to_dict(), study_source=str(study.source), realizations=n,
                     fermi_energy=study.conductivity.fermi_energy,
                     variants={k: str(v) for k, v in variants.items()})
    if out is not None:
        target = Path(out)
        write_netcdf(res, target / "validation.nc")
        from .plot import plot_validation

        plot_validation(res).savefig(target / "validation.png", dpi=130)
    return res
