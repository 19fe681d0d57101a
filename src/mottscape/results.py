"""Typed results -> :class:`xarray.Dataset`, at the output edge only.

Every variable carries ``units`` and ``long_name``; flags and per-sample diagnostics
(percolation, basin filling, the landscape solver's residual) are *variables*, so they survive
when realizations are combined (attributes are dropped then). Attributes hold the sample's
description, the options and the provenance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .regime import diagnosis, mott_length_flag

if TYPE_CHECKING:
    from .pipeline import PipelineResult

__all__ = ["maps_dataset", "pipeline_dataset"]

_AXES = ("x", "y", "z")


def _var(dims, values, long_name: str, units: str | None = None) -> tuple:
    attrs = {"long_name": long_name}
    if units is not None:
        attrs["units"] = units
    return (dims, values, attrs)


def _omega_variables(result: PipelineResult) -> dict:
    """Variables along omega: sigma_ll, sigma_eq17, sigma_mb, rho_omega, moments, flags."""
    opts, units, d = result.options, result.sample.units, result.sample.ndim
    mom, cond = result.moments, result.conductivity
    e_unit, l_unit = units.energy_unit, units.length_unit
    sigma_unit = units.sigma_unit(d)
    w = ("omega",)
    pairs = opts.estimator == "pairs"
    model = result.pair_model
    if pairs and model is None:  # pipeline.run always builds it for this estimator
        raise ValueError("estimator='pairs' needs the pair model's result")
    chosen = model.sigma if pairs and model is not None else cond.sigma_eq17
    return {
        "sigma_ll": _var(w, chosen, "LL conductivity, recommended estimator: the pair model "
                         "(App. A-B), averaged over the bin omega_lower..omega_upper" if pairs
                         else "LL-generalized Mott-Berezinskii conductivity (eq. 17)",
                         sigma_unit),
        "sigma_eq17": _var(w, cond.sigma_eq17, "LL-generalized Mott-Berezinskii conductivity "
                           "(eq. 17, the paper's formula)", sigma_unit),
        "sigma_mb": _var(w, cond.sigma_mb, "classical Mott-Berezinskii conductivity (eq. 1)",
                         sigma_unit),
        "rho_omega": _var(w, mom.rho_omega, f"LL-generalized Mott scale ({opts.mott_scale})",
                          "1"),
        "rho_omega_log": _var(w, mom.rho_omega_log, "ln(2 Delta_xi / hbar omega) (eq. 12)", "1"),
        "mott_length": _var(w, cond.mott_length, "classical Mott length R_omega = xi ln(2 "
                            "Delta_xi/hbar omega) (eq. 18, with xi and delta_xi_mb)", l_unit),
        "hbar_omega": _var(w, result.hbar_omega, "photon energy", e_unit),
        "moment": _var(w, mom.moment, "E_omega(X^2) (eq. 16)", f"{l_unit}^{d + 2}"),
        "n_states": _var(w, mom.n_states, "|Sigma_omega| (states with |E_i - E_F| <= hbar "
                         "omega)", "1"),
        "n_states_used": _var(w, mom.n_states_used, "states whose pairs estimate f "
                              "(Sigma_omega, or the pair window)", "1"),
        "n_pairs": _var(w, mom.n_pairs, "pairs in the Agmon shell [rho_omega, rho_omega + 1]",
                        "1"),
        "valid": _var(w, cond.regime if pairs else cond.valid, "sigma_ll inside the theory's "
                      "validity (rho_omega > 1, basins separated, landscape converged" +
                      (")" if pairs else ", eq. 17's sampling flags clear)")),
        "flag_rho_omega_small": _var(w, cond.flag_rho_omega_small, "rho_omega <= 1 or "
                                     "undefined: omega not small compared with Delta_xi"),
        "flag_sigma_omega_tiny": _var(w, cond.flag_sigma_omega_tiny, "fewer than 2 states to "
                                      "estimate f from (Sigma_omega, or the pair window)"),
        "flag_no_pairs": _var(w, cond.flag_no_pairs, "no pair in the Agmon shell (sigma_eq17 "
                              "= 0 is a sampling limit, not a result)"),
        "flag_mott_length_sample": _var(w, mott_length_flag(cond.mott_length,
                                                            result.sample.grid),
                                        "Mott length R_omega >= half the smallest sample side: "
                                        "sigma is that of this finite sample, not the bulk's"),
    }


def _pair_variables(result: PipelineResult) -> dict:
    """The pair model's sigma per bin, its counts and its diagnostics (App. A-B)."""
    from .pairs import SHARES

    model = result.pair_model
    if model is None:
        return {}
    units, d = result.sample.units, result.sample.ndim
    st = model.states
    w, s = ("omega",), ()
    return {
        "sigma_pairs": _var(w, model.sigma, f"pair model (App. A-B; amplitude "
                            f"{model.amplitude}, cross-section {model.cross_section}), "
                            "averaged over the bin omega_lower..omega_upper",
                            units.sigma_unit(d)),
        "n_pairs_model": _var(w, model.n_pairs, "state pairs of the pair model in the bin",
                              "1"),
        **{f"pairs_{name}": _var(w, getattr(model, name), text, "1")
           for name, text in SHARES.items()},
        "max_state_energy_error": _var(s, float(st.energy_error.max()) if st.n else 0.0,
                                       "largest estimated shift of a basin state's energy by "
                                       "its box faces", units.energy_unit),
        "n_states_basins": _var(s, st.n, "states near E_F found basin by basin (window of "
                                "the pair model)", "1"),
        "n_states_landscape_law": _var(s, float(model.landscape_count.sum()), "landscape-law "
                                       "count of states in the same window, in the basins "
                                       "(refs. 28, 30)", "1"),
        "max_state_leakage": _var(s, float(st.leakage.max()) if st.n else 0.0, "largest "
                                  "weight of a basin state on its box faces", "1"),
        "pair_energy_frame": _var(s, model.energy_frame, "E_F measured from min V (the frame "
                                  "of eq. A13)", units.energy_unit),
        "pairs_truncated": _var(s, model.truncated, "a pair at the Agmon search bound still "
                                "had 2 t >= hbar omega_min"),
        "pair_model_boxes": _var(s, model.boxes, "boxes diagonalised for the pair model's "
                                 "states (one per basin unless neighbouring boxes merged)",
                                 "1"),
        "pair_model_whole_sample": _var(s, model.whole_sample, "the whole sample was solved as "
                                        "one box (cheaper than the basins' boxes): sigma_pairs "
                                        "is then the exact Kubo-Greenwood sum, not an LL "
                                        "estimate"),
        "pair_model_widened_basins": _var(s, model.widened, "basins whose boxes were solved "
                                          "again with a wider padding: their states' face "
                                          "shifts could move pairs to another bin "
                                          "(mottscape.pairs, 'Boxes widened')", "1"),
    }


def _sample_variables(result: PipelineResult) -> dict:
    """Scalars of the sample: E_F, the DOS, Delta_xi, xi and its estimates, diagnostics."""
    opts, units, d = result.options, result.sample.units, result.sample.ndim
    stats, cond = result.statistics, result.conductivity
    land, basins = result.landscape, result.basins
    e_unit, l_unit = units.energy_unit, units.length_unit
    nu_unit = f"1/({e_unit} {l_unit}^{d})"
    s = ()
    return {
        "fermi_energy": _var(s, result.fermi_energy, "Fermi energy E_F", e_unit),
        "nu": _var(s, stats.nu, f"density of states at E_F per volume and spin ({opts.dos})",
                   nu_unit),
        "nu_landscape": _var(s, stats.nu_landscape, "landscape-law DOS at E_F (refs. 28, 30)",
                             nu_unit),
        "nu_basins": _var(s, stats.nu_basins, "DOS from basin energy estimates", nu_unit),
        "delta_xi": _var(s, stats.delta_xi, "mean level spacing 1/(V_F nu) (eq. A14)", e_unit),
        "delta_xi_mb": _var(s, cond.delta_xi_mb, "level spacing of the classical formula "
                            "1/(nu xi^d) (eq. 1)", e_unit),
        "localization_volume": _var(s, stats.localization_volume, "V_F, mean basin volume "
                                    "near E_F", f"{l_unit}^{d}"),
        "xi": _var(s, cond.xi, f"localization length used by eq. 1 ({cond.xi_source})",
                   l_unit),
        "xi_fit": _var(s, cond.xi_estimates["fit"], "xi fitted to r_ij = xi rho_ij over the "
                       "Agmon pairs", l_unit),
        "xi_metric": _var(s, cond.xi_estimates["metric"], "1 / mean Agmon metric outside the "
                          "basins", l_unit),
        "xi_transfer_matrix": _var(s, cond.xi_estimates.get("transfer_matrix", np.nan),
                                   "xi of the sample's own transfer matrix (NaN: not "
                                   "computed)", l_unit),
        "xi_transfer_matrix_error": _var(s, cond.xi_estimates.get("transfer_matrix_error",
                                                                  np.nan),
                                         "statistical error of xi_transfer_matrix", l_unit),
        "n_basins": _var(s, basins.n, "basins of the effective potential at E_F", "1"),
        "n_sources": _var(s, stats.sources.size, "states whose pairs estimate f (Sigma_omega "
                          "at the largest omega, or the pair window)", "1"),
        "pair_window": _var(s, stats.window, "half-width of the window of states used for V_F "
                            "and the pair statistics", e_unit),
        "n_pair_distances": _var(s, result.pairs.i.size, "basin pairs whose Agmon distance "
                                 "was computed", "1"),
        "percolating": _var(s, bool(basins.percolating), "a basin spans the sample: the "
                            "theory's separated-basin assumption fails (mobility edge)"),
        "basin_filling": _var(s, basins.filling, "fraction of the sample inside the basins",
                              "1"),
        "landscape_converged": _var(s, bool(land.converged), "the landscape solve reached its "
                                    "tolerance"),
        "landscape_residual": _var(s, land.residual, "relative residual of the landscape "
                                   "solve", "1"),
    }


def pipeline_dataset(result: PipelineResult) -> xr.Dataset:
    """The results of one run of the workflow as a Dataset on coordinate ``omega``.

    Parameters
    ----------
    result
        A :class:`~mottscape.pipeline.PipelineResult`.

    Returns
    -------
    xarray.Dataset
        sigma_ll (the chosen estimator), sigma_eq17 (eq. 17), sigma_mb (eq. 1), rho_omega
        (eq. 12), the shell moments and counts, the flags, ``sigma_pairs`` with its bins when
        the pair model runs, and the scalars
        nu, delta_xi, xi, V_F with their diagnostics.
    """
    data = {**_omega_variables(result), **_pair_variables(result),
            **_sample_variables(result)}
    sample, opts, land = result.sample, result.options, result.landscape
    units, cond = sample.units, result.conductivity
    coords = {"omega": ("omega", result.omega, {"long_name": "angular frequency",
                                                "units": units.omega_unit})}
    if result.pair_model is not None:
        edges = result.pair_model.edges
        coords["omega_lower"] = ("omega", edges[:-1], {"long_name": "lower bin edge",
                                                       "units": units.omega_unit})
        coords["omega_upper"] = ("omega", edges[1:], {"long_name": "upper bin edge",
                                                      "units": units.omega_unit})
    attrs = {
        "title": "mottscape: LL-generalized Mott-Berezinskii ac conductivity",
        **sample.describe(),
        "landscape_solver": land.solver,
        "spin_factor": 2,
        "mottscape_version": _version(),
        "xi_source": cond.xi_source,
        # one sentence per failed assumption, with its remedy (empty: none fails)
        "diagnosis": "\n".join(diagnosis(result)),
        **opts.to_attrs(),
    }
    return xr.Dataset(data_vars=data, coords=coords, attrs=attrs)


def maps_dataset(result: PipelineResult) -> xr.Dataset:
    """The maps of one sample (V, u, V_u, basin labels) on coordinates x, y, z."""
    land = result.landscape
    grid = land.grid
    dims = _AXES[: grid.ndim]
    unit = land.units
    coords = {ax: (ax, grid.coordinates(a), {"long_name": f"cell centre along {ax}",
                                             "units": unit.length_unit})
              for a, ax in enumerate(dims)}
    return xr.Dataset(
        {
            "potential": _var(dims, land.potential, "potential V", unit.energy_unit),
            "u": _var(dims, land.u, "landscape function, H u = 1 (eq. 2)",
                      f"1/{unit.energy_unit}"),
            "effective_potential": _var(dims, land.effective_potential, "V_u = 1/u",
                                        unit.energy_unit),
            "basin_labels": _var(dims, result.basins.labels.astype(np.int32),
                                 "basin index + 1 at E_F (0 = outside)", "1"),
        },
        coords=coords,
    )


def _version() -> str:
    from . import __version__

    return __version__
