"""sigma(omega) from the moments of the Agmon shell (eq. 17), the classical curve (eq. 1).

The last step of the workflow, E_omega(X^2) -> sigma(omega): the LL-generalized
Mott-Berezinskii conductivity (eq. 17) beside the classical formula (eq. 1) with its
localization length and the Mott length (eq. 18), and the flags that say where the theory's
assumptions fail. :func:`ac_conductivity` and :func:`run_pipeline` are the array-first entry
points of the whole workflow, thin wrappers over :func:`mottscape.pipeline.run`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .mott import level_spacing, mott_length, mott_scale, sigma_ll, sigma_mott_berezinskii
from .options import Options

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import ArrayLike

    from .grid import Boundary, SpacingLike
    from .landscape import Landscape
    from .pipeline import PipelineResult
    from .sample import Sample
    from .shell import ShellMoments
    from .statistics import LevelStatistics
    from .units import UnitSystem

__all__ = ["Conductivity", "ac_conductivity", "conductivity_curves", "run_pipeline"]


@dataclass(frozen=True)
class Conductivity:
    """sigma(omega) of the LL formula and of the classical one, with the validity flags.

    Attributes
    ----------
    sigma_eq17
        eq. (17), the paper's formula, in the output unit of the sample's unit system (NaN
        where rho_omega is undefined).
    sigma_mb
        eq. (1) with ``xi`` (NaN where hbar omega >= 2 Delta_xi).
    xi
        The localization length used by eq. (1) (``options.xi``).
    xi_source
        Which estimate ``xi`` is: ``"transfer_matrix"``, ``"fit"`` or ``"metric"``.
    xi_estimates
        Every estimate computed, by name (the transfer matrix only when selected).
    delta_xi_mb
        The level spacing of eq. (1), Delta_xi = 1/(nu xi^d) with ``xi``.
    mott_length
        R_omega = xi ln(2 Delta_xi / hbar omega) (eq. 18) with ``xi`` and ``delta_xi_mb``:
        the classical Mott length (NaN where the logarithm is not positive).
    flag_rho_omega_small, flag_sigma_omega_tiny, flag_no_pairs
        Per omega: rho_omega <= 1 (omega not small against Delta_xi); fewer than two states
        to estimate f; no pair in the shell (sigma_eq17 = 0 is then a sampling limit).
    regime
        Per omega: rho_omega > 1 (hbar omega small against Delta_xi, the theory's
        low-frequency regime), basins not percolating, landscape converged.
    valid
        Per omega: ``regime`` and eq. 17's sampling flags clear.
    """

    sigma_eq17: np.ndarray
    sigma_mb: np.ndarray
    xi: float
    xi_source: str
    xi_estimates: dict[str, float]
    delta_xi_mb: float
    mott_length: np.ndarray
    flag_rho_omega_small: np.ndarray
    flag_sigma_omega_tiny: np.ndarray
    flag_no_pairs: np.ndarray
    regime: np.ndarray
    valid: np.ndarray


def conductivity_curves(stats: LevelStatistics, moments: ShellMoments, hbar_omega: np.ndarray,
                        xi: dict[str, float], units: UnitSystem, ndim: int,
                        options: Options, *, sample_ok: bool) -> Conductivity:
    """sigma_LL (eq. 17) and sigma_MB (eq. 1) with their flags.

    Parameters
    ----------
    stats
        nu and Delta_xi (eq. A14).
    moments
        E_omega(X^2) and the shell counts (eqs. 14-16).
    hbar_omega
        Photon energies.
    xi
        The estimates of the localization length by name (``"fit"``, ``"metric"`` and, when
        computed, ``"transfer_matrix"``).
    units, ndim
        Unit system and dimension (sigma's output unit).
    options
        ``xi`` picks the estimate used by eq. (1); an undefined fit falls back on the
        metric, a transfer-matrix xi not computed (a given landscape has no Hamiltonian of
        its own) or undefined (a map too short, or not localized) on the fit; ``xi_source``
        says which was used.
    sample_ok
        False when the basins percolate or the landscape did not converge: no bin is valid.

    Returns
    -------
    Conductivity
    """
    source = options.xi
    if source == "transfer_matrix" and not np.isfinite(xi.get("transfer_matrix", np.nan)):
        source = "fit"
    if source == "fit" and not np.isfinite(xi["fit"]):
        source = "metric"
    xi_val = xi[source]
    factor = units.sigma_factor(ndim)
    rho_w = moments.rho_omega
    s_ll = sigma_ll(stats.nu, hbar_omega, moments.moment, ndim) * factor
    s_ll = np.where(np.isfinite(rho_w), s_ll, np.nan)
    # The classical formula is self-contained: its level spacing is that of eq. 1,
    # Delta_xi = 1/(nu xi^d) with its own xi, not the landscape's 1/(nu V_F) (eq. A14).
    delta_mb = level_spacing(stats.nu, xi_val**ndim) if np.isfinite(xi_val) else math.nan
    s_mb = sigma_mott_berezinskii(stats.nu, xi_val, hbar_omega, delta_mb, ndim) * factor
    log_mb = mott_scale(hbar_omega, delta_mb, "log")  # ln(2 Delta_xi / hbar omega), eq. 18
    flag_rho = ~(np.isfinite(rho_w) & (rho_w > 1.0))
    flag_empty = moments.n_states_used < 2
    flag_pairs = moments.n_pairs == 0
    regime = ~flag_rho & sample_ok
    valid = regime & ~(flag_empty | flag_pairs)
    return Conductivity(sigma_eq17=s_ll, sigma_mb=s_mb, xi=xi_val, xi_source=source,
                        xi_estimates=dict(xi), delta_xi_mb=delta_mb,
                        mott_length=mott_length(xi_val, np.where(log_mb > 0, log_mb, np.nan)),
                        flag_rho_omega_small=flag_rho, flag_sigma_omega_tiny=flag_empty,
                        flag_no_pairs=flag_pairs, regime=regime, valid=valid)


# ---------------------------------------------------------------------- array-first API
def run_pipeline(
    V: ArrayLike | Sample,
    fermi_energy: float,
    omega: ArrayLike,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
    *,
    options: Options | None = None,
    landscape: Landscape | None = None,
    progress: bool = False,
    **option_values: Any,
) -> PipelineResult:
    """Run the LL workflow and keep every intermediate result (see :func:`ac_conductivity`).

    ``V`` may be a :class:`~mottscape.sample.Sample` (then ``spacing``, ``mass``,
    ``boundary`` and ``units`` are not used), an array, or None with ``landscape=`` (a solved
    landscape to reuse). Options are given as an :class:`~mottscape.options.Options` object
    or as keywords (``mott_scale="lambertw"``, ``effective="scaled"``, ...; the old spellings
    ``pairs=`` and ``mott_scale_method=`` are accepted).

    Returns
    -------
    mottscape.pipeline.PipelineResult
        Every step's typed result; ``.to_dataset()`` (or ``.dataset``) gives the xarray view.
    """
    from .errors import InputError
    from .landscape import Landscape
    from .pipeline import run
    from .sample import make_sample

    opts = _options(options, option_values)
    if landscape is not None:
        if not isinstance(landscape, Landscape):
            raise InputError(f"landscape must be a Landscape (from mottscape.solve_landscape), "
                             f"got {type(landscape).__name__}")
        vshape = getattr(V, "shape", None)
        if vshape is not None and tuple(vshape) != landscape.grid.shape:
            raise InputError(f"V has shape {tuple(vshape)} but the landscape's grid has shape "
                             f"{landscape.grid.shape}; pass V=None with landscape=")
        sample = landscape.sample
    else:
        sample = make_sample(V, spacing, mass, boundary, units)
    return run(sample, fermi_energy, omega, opts, landscape=landscape, progress=progress)


def ac_conductivity(
    V: ArrayLike | Sample,
    fermi_energy: float,
    omega: ArrayLike,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
    *,
    options: Options | None = None,
    progress: bool = False,
    **option_values: Any,
) -> xr.Dataset:
    """Low-frequency ac conductivity from the localization landscape, with eqs. (17) and (1).

    ``sigma_ll`` is the recommended estimator (``estimator="pairs"``, the default): the pair
    model of App. A-B, every state near E_F of every basin coupled pair by pair, averaged
    over a bin around each frequency (the geometric midpoints between neighbouring
    frequencies; a single frequency gets a quarter-decade bin), like the exact reference
    :func:`mottscape.kubo_greenwood`. The paper's formula as published, eq. (17), is always
    reported beside it as ``sigma_eq17`` (``estimator="eq17"`` makes it ``sigma_ll`` and
    skips the pair model, 10-100 times faster), and the classical formula eq. (1) as
    ``sigma_mb``. Evidence for the choice: ``docs/validation.md``.

    Parameters
    ----------
    V
        Potential map (1 to 3 axes, energy unit of ``units``) or a
        :class:`~mottscape.sample.Sample`.
    fermi_energy
        E_F, in the strongly localized part of the spectrum (basins of V_u separated).
    omega
        Increasing angular frequencies (> 0), in ``units.omega_unit``.
    spacing, mass, boundary, units
        Grid spacing (scalar or per axis), effective mass (scalar or map), boundary condition
        and unit system (see :mod:`mottscape.units`).
    options
        An :class:`~mottscape.options.Options`; or give the options as keywords:
        ``estimator``, ``mott_scale``, ``dos``, ``center``, ``split``, ``pair_set`` (old
        name ``pairs``), ``pair_window``, ``xi``, ``effective``, ``solver``, ``tol``,
        ``dispersion``, and the pair model's ``pair_model``, ``amplitude``,
        ``cross_section``, ``state_amplitude``, ``pair_coupling``, ``state_boxes``,
        ``crossed_basins`` (see
        :mod:`mottscape.options` for their meaning and values).
    progress
        Show a progress bar for the Agmon searches.

    Returns
    -------
    xarray.Dataset
        On coordinate ``omega``: ``sigma_ll`` (the estimator of ``estimator``),
        ``sigma_eq17`` (eq. 17), ``sigma_mb`` (eq. 1), ``rho_omega``, ``n_states`` =
        |Sigma_omega|, ``n_pairs`` (pairs in the Agmon shell), ``moment`` = E_omega(X^2),
        validity flags (``valid`` refers to ``sigma_ll``); scalars ``nu``, ``delta_xi``,
        ``xi``, ``localization_volume``, ``percolating``; when the pair model runs also
        ``sigma_pairs`` and its diagnostics, with the bins ``omega_lower``/``omega_upper``
        (App. A-B, :mod:`mottscape.pairs`); attributes with units, options, provenance
        and ``diagnosis`` (one line per failed assumption of the theory with its remedy,
        :func:`mottscape.regime.diagnosis`; also emitted as a
        :class:`~mottscape.errors.RegimeWarning`). sigma is per unit volume, spin included,
        in e^2/hbar * a^(2-d) (lattice) or S/m, S, S*m (semiconductor).
    """
    ds = run_pipeline(V, fermi_energy, omega, spacing, mass, boundary, units,
                      options=options, progress=progress, **option_values).to_dataset()
    if ds.attrs["diagnosis"]:
        import warnings

        from .errors import RegimeWarning

        warnings.warn("outside the theory's validity on this sample:\n" +
                      ds.attrs["diagnosis"], RegimeWarning, stacklevel=2)
    return ds


def _options(options: Options | None, values: dict[str, Any]) -> Options:
    """One Options object from an object and/or keywords (keywords override)."""
    from .errors import InputError

    if options is not None and not isinstance(options, Options):
        raise InputError(f"options must be a mottscape.Options, got {type(options).__name__}; "
                         "or pass the options as keywords")
    base = options or Options()
    return base.replace(**values) if values else base
