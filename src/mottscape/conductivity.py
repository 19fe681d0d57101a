"""The whole LL workflow, from a potential to sigma(omega) (sec. IV).

    V -> u -> V_u -> {B_i} -> Sigma_omega -> f(r, rho_omega) -> E_omega(X^2) -> sigma(omega)

:func:`ac_conductivity` returns the results as an :class:`xarray.Dataset`;
:func:`run_pipeline` also keeps every intermediate object (landscape, basins, pair distances)
for pictures and further analysis.

Choices the paper leaves open, and the defaults (see ``docs/validation.md`` for the evidence):

``dos``
    How nu = nu(E_F) is estimated: ``"landscape"`` (landscape law, refs. [28, 30]) or
    ``"basins"`` (count of basin energy estimates near E_F per unit volume and energy).
``mott_scale``
    ``"log"`` (eq. 12, default: closest to the exact result on all three validation models)
    or ``"lambertw"`` (ref. [38]).
``center``
    How a basin's position r_i is placed (see :func:`mottscape.basins.find_basins`).
``pairs``
    Which pairs estimate f(r, rho_omega): ``"sigma_omega"`` is eq. (14) literally (pairs of
    Sigma_omega at each omega); ``"window"`` uses every pair of states in a fixed window
    |E_i - E_F| <= ``pair_window`` (default hbar omega_max) at every omega: an estimator of the
    same distribution, under the paper's assumption that the positions of the states do not
    depend on their energy near E_F (nu constant), with (window / hbar omega)^2 times more pairs.
``effective``
    Which effective potential defines the basins and the Agmon metric: ``"vu"`` (V_u, the
    paper) or ``"scaled"`` (W_u = (1 + d/4) V_u in the frame of the solve). The paper's metric
    is free inside every region V_u <= E_F, including wells whose own ground state lies above
    E_F (a state at E_F tunnels through them); W_u makes a region free only where the
    landscape rule puts a state below E_F. An extension of ours, compared in the validation.
``xi``
    Localization length used by the classical formula: ``"fit"`` (least-squares slope of
    r_ij against rho_ij over the computed pairs, i.e. the xi for which rho = r / xi best holds)
    or ``"metric"`` (1 / mean Agmon metric outside the basins).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from .agmon import PairDistances, basin_distances
from .basins import CENTERS, SPLITS, Basins, find_basins
from .errors import InputError
from .grid import BYTES_PER_POINT_PIPELINE, check_shape_memory
from .landscape import Landscape, solve_landscape
from .mott import (
    MOTT_SCALES,
    level_spacing,
    mott_length,
    mott_scale,
    shell_moment,
    sigma_ll,
    sigma_mott_berezinskii,
)
from .units import UnitSystem, get_units

__all__ = ["Pipeline", "ac_conductivity", "run_pipeline"]

DOS_METHODS = ("landscape", "basins")
PAIR_SETS = ("sigma_omega", "window")
XI_METHODS = ("fit", "metric")
EFFECTIVE = ("vu", "scaled")
#: Minimum number of basins used to estimate the localization volume V_F.
_MIN_VF_BASINS = 5


@dataclass(frozen=True)
class Pipeline:
    """Every step of the workflow for one sample.

    Attributes
    ----------
    landscape, basins, pairs
        The landscape solve, the basins at E_F and the bounded basin-to-basin Agmon distances.
    dataset
        The results (see :func:`ac_conductivity`).
    sources
        Indices of the basins of Sigma_omega at the largest omega.
    """

    landscape: Landscape
    basins: Basins
    pairs: PairDistances
    sources: np.ndarray
    dataset: xr.Dataset
    options: dict = field(default_factory=dict)

    @property
    def fermi_energy(self) -> float:
        return float(self.dataset["fermi_energy"])

    def pair_euclidean(self) -> np.ndarray:
        """Euclidean distances r_ij of the listed pairs (minimum image when periodic)."""
        c = self.basins.centers
        delta = self.landscape.grid.displacement(c[self.pairs.i], c[self.pairs.j])
        return np.sqrt(np.sum(delta**2, axis=1))


def _as_omega(omega) -> np.ndarray:
    try:
        w = np.atleast_1d(np.asarray(omega, dtype=float))
    except (TypeError, ValueError):
        raise InputError(f"omega must be a number or an array of numbers, got {omega!r}") from None
    if w.ndim != 1 or w.size == 0:
        raise InputError(f"omega must be a non-empty 1D array of frequencies, got shape {w.shape}")
    bad = ~np.isfinite(w) | (w <= 0)
    if bad.any():
        raise InputError(
            f"omega must be finite and > 0 (got {w[bad][0]:g}); sigma(omega) is defined for "
            "positive angular frequencies")
    if np.any(np.diff(w) <= 0):
        raise InputError("omega must be strictly increasing; sort it and remove duplicates")
    return w


def run_pipeline(
    V,
    fermi_energy: float,
    omega,
    spacing=1.0,
    mass=1.0,
    boundary: str = "dirichlet",
    units: str | UnitSystem = "lattice",
    *,
    mott_scale_method: str = "log",
    dos: str = "landscape",
    center: str = "weighted",
    split: str = "components",
    pairs: str = "window",
    xi: str = "fit",
    pair_window: float | None = None,
    effective: str = "vu",
    landscape: Landscape | None = None,
    solver: str = "auto",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Pipeline:
    """Run the LL workflow and keep every intermediate result. See :func:`ac_conductivity`.

    ``log``, when given, is called with one line per finished step (with its duration), for
    progress displays.
    """
    clock = _Clock(log)
    for name, value, allowed in (("dos", dos, DOS_METHODS), ("pairs", pairs, PAIR_SETS),
                                 ("xi", xi, XI_METHODS), ("effective", effective, EFFECTIVE),
                                 ("mott_scale", mott_scale_method, MOTT_SCALES),
                                 ("center", center, CENTERS), ("split", split, SPLITS)):
        if value not in allowed:
            raise InputError(f"{name}={value!r} is not known; use one of {allowed}")
    units = get_units(units)
    w = _as_omega(omega)
    if pair_window is not None:
        try:
            pair_window = float(pair_window)
        except (TypeError, ValueError):
            pair_window = math.nan
        if not (math.isfinite(pair_window) and pair_window > 0):
            raise InputError(f"pair_window={pair_window!r} must be a finite energy > 0 (the "
                             "half-width of the window of states whose pairs estimate f)")
    try:
        ef = float(fermi_energy)
    except (TypeError, ValueError):
        raise InputError(f"fermi_energy must be a number, got {fermi_energy!r}") from None
    if not math.isfinite(ef):
        raise InputError(f"fermi_energy must be finite, got {fermi_energy!r}")
    if landscape is None:
        check_shape_memory(V, BYTES_PER_POINT_PIPELINE, "the pipeline on a grid")
        land = solve_landscape(V, spacing=spacing, mass=mass, boundary=boundary, units=units,
                               solver=solver, on_failure="flag")
    else:
        if not isinstance(landscape, Landscape):
            raise InputError(f"landscape must be a Landscape (from mottscape.solve_landscape), "
                             f"got {type(landscape).__name__}")
        vshape = getattr(V, "shape", None)
        if vshape is not None and tuple(vshape) != landscape.grid.shape:
            raise InputError(f"V has shape {tuple(vshape)} but the landscape's grid has shape "
                             f"{landscape.grid.shape}; pass V=None with landscape=")
        land = landscape
    clock.step(f"landscape solve H u = 1 ({land.solver}, residual {land.residual:.1e})")
    grid = land.grid
    d = grid.ndim
    vu_min = float(land.effective_potential.min())
    if ef <= vu_min:
        raise InputError(
            f"fermi_energy={ef:g} is below the bottom of the landscape spectrum (min V_u = "
            f"{vu_min:g}): there are no states and no basins; choose E_F above min V_u")
    hw = units.omega_to_energy(w)
    if effective == "scaled":
        # W_u = (1 + d/4) V_u (in the frame of the solve): the landscape eigenvalue rule
        # applied pointwise, so that a basin's state energy is min W_u and a region is free
        # for the Agmon metric only where a state at E_F could live.
        ws = (1.0 + d / 4.0) * (land.effective_potential + land.shift) - land.shift
        metric_land = Landscape.from_effective_potential(
            ws, spacing=grid.spacing, mass=land.mass, boundary=grid.boundary,
            units=land.units, potential=land.potential, dispersion=land.dispersion)
        basins = find_basins(metric_land, ef, split=split, center=center,
                             energy_rule="minimum")
    else:
        metric_land = land
        basins = find_basins(land, ef, split=split, center=center)
    clock.step(f"basins of V_u at E_F: {basins.n}")

    # ---------------------------------------------------------------- nu, V_F, Delta_xi
    # States used for the statistics (V_F, nu_basins, the pair distribution): Sigma_omega at
    # the largest omega, or the fixed window of the "window" estimator.
    window = float(hw.max()) if pairs != "window" or pair_window is None else pair_window
    near = np.abs(basins.energies - ef)
    order = np.argsort(near)
    in_window = np.flatnonzero(near <= window)
    vf_index = in_window if in_window.size >= _MIN_VF_BASINS else order[:_MIN_VF_BASINS]
    v_f = float(np.mean(basins.volumes[vf_index])) if vf_index.size else math.nan
    nu_landscape = float(land.dos(ef))
    nu_basins = (in_window.size / (grid.volume * 2.0 * window)) if window > 0 else math.nan
    nu = nu_landscape if dos == "landscape" else nu_basins
    delta_xi = level_spacing(nu, v_f)
    rho_w = mott_scale(hw, delta_xi, mott_scale_method)
    rho_log = mott_scale(hw, delta_xi, "log")

    # ---------------------------------------------------------------- Agmon distances
    sources = np.flatnonzero(near <= window)
    usable = np.isfinite(rho_w) & (rho_w > 0)
    if sources.size >= 2 and usable.any():
        # A source i belongs to Sigma_omega for every omega >= |E_i - E_F|/hbar; pairs are
        # needed up to rho_omega + 1 at the smallest such omega (rho_omega decreases with omega).
        # With the window estimator every pair may serve every omega.
        need = np.maximum(near[sources], hw[usable].min())
        if pairs == "window":
            need = np.full(sources.size, hw[usable].min())
        k = np.clip(np.searchsorted(hw[usable], need, side="left"), 0, usable.sum() - 1)
        bounds = rho_w[usable][k] + 1.0
        pd = basin_distances(metric_land, basins, energy=ef, sources=sources, bound=bounds,
                             progress=progress)
    else:
        pd = PairDistances(i=np.zeros(0, int), j=np.zeros(0, int), rho=np.zeros(0),
                           n=basins.n, bound=0.0, sources=sources, energy=ef)
    clock.step(f"Agmon distances from {sources.size} basins: {pd.i.size} pairs")
    c = basins.centers
    r = np.sqrt(np.sum(grid.displacement(c[pd.i], c[pd.j]) ** 2, axis=1)) if pd.i.size \
        else np.zeros(0)

    # ---------------------------------------------------------------- xi
    xi_fit = _xi_fit(r, pd.rho)
    xi_metric = _xi_metric(metric_land, basins, ef)
    xi_val = xi_fit if (xi == "fit" and math.isfinite(xi_fit)) else xi_metric

    # ---------------------------------------------------------------- E_omega(X^2), sigma
    n_states = np.zeros(w.size, dtype=int)
    n_stat = np.zeros(w.size, dtype=int)
    n_pairs = np.zeros(w.size, dtype=int)
    moment = np.zeros(w.size)
    # Pairs of Sigma_omega: both |E - E_F| <= hbar omega, i.e. the larger of the two; one
    # comparison per pair and omega (was np.isin over every pair at every omega).
    pair_near = np.maximum(near[pd.i], near[pd.j])
    in_sources = np.isin(pd.i, sources) & np.isin(pd.j, sources)
    for k_w in range(w.size):
        sigma_w = np.flatnonzero(near <= hw[k_w])
        n_states[k_w] = sigma_w.size
        members = sources if pairs == "window" else sigma_w
        n_stat[k_w] = members.size
        if not np.isfinite(rho_w[k_w]) or members.size < 2:
            moment[k_w] = 0.0
            continue
        sel = in_sources if pairs == "window" else pair_near <= hw[k_w]
        moment[k_w], n_pairs[k_w] = shell_moment(r[sel], pd.rho[sel], rho_w[k_w],
                                                 members.size, grid.volume)
    factor = units.sigma_factor(d)
    s_ll = sigma_ll(nu, hw, moment, d) * factor
    s_ll = np.where(np.isfinite(rho_w), s_ll, np.nan)
    s_mb = sigma_mott_berezinskii(nu, xi_val, hw, delta_xi, d) * factor

    flag_rho = ~(np.isfinite(rho_w) & (rho_w > 1.0))
    flag_empty = n_stat < 2
    flag_pairs = n_pairs == 0
    valid = ~(flag_rho | flag_empty | flag_pairs) & (not basins.percolating) & land.converged
    sigma_unit = units.sigma_unit(d)
    ds = xr.Dataset(
        data_vars={
            "sigma_ll": ("omega", s_ll, {"long_name": "LL-generalized Mott-Berezinskii "
                                         "conductivity (eq. 17)", "units": sigma_unit}),
            "sigma_mb": ("omega", s_mb, {"long_name": "classical Mott-Berezinskii "
                                         "conductivity (eq. 1)", "units": sigma_unit}),
            "rho_omega": ("omega", rho_w, {"long_name": f"LL-generalized Mott scale "
                                           f"({mott_scale_method})", "units": "1"}),
            "rho_omega_log": ("omega", rho_log, {"long_name": "ln(2 Delta_xi / hbar omega) "
                                                 "(eq. 12)", "units": "1"}),
            "mott_length": ("omega", mott_length(xi_val, rho_log),
                            {"long_name": "Mott length R_omega = xi ln(2 Delta_xi/hbar omega) "
                             "(eq. 18)", "units": units.length_unit}),
            "hbar_omega": ("omega", hw, {"long_name": "photon energy",
                                         "units": units.energy_unit}),
            "moment": ("omega", moment, {"long_name": "E_omega(X^2) (eq. 16)",
                                         "units": f"{units.length_unit}^{d + 2}"}),
            "n_states": ("omega", n_states, {"long_name": "|Sigma_omega| (states with "
                                             "|E_i - E_F| <= hbar omega)"}),
            "n_states_used": ("omega", n_stat, {"long_name": "states whose pairs estimate f "
                                                "(Sigma_omega, or the pair window)"}),
            "n_pairs": ("omega", n_pairs, {"long_name": "pairs in the Agmon shell "
                                           "[rho_omega, rho_omega + 1]"}),
            "valid": ("omega", valid, {"long_name": "inside the theory's validity (all flags "
                                       "clear)"}),
            "flag_rho_omega_small": ("omega", flag_rho,
                                     {"long_name": "rho_omega <= 1 or undefined: omega not "
                                      "small compared with Delta_xi"}),
            "flag_sigma_omega_tiny": ("omega", flag_empty,
                                      {"long_name": "fewer than 2 states to estimate f from "
                                                    "(Sigma_omega, or the pair window)"}),
            "flag_no_pairs": ("omega", flag_pairs,
                              {"long_name": "no pair in the Agmon shell (sigma_ll = 0 is a "
                                            "sampling limit, not a result)"}),
            "fermi_energy": ((), ef, {"units": units.energy_unit}),
            "nu": ((), nu, {"long_name": f"density of states at E_F per volume and spin "
                            f"({dos})", "units": f"1/({units.energy_unit} "
                            f"{units.length_unit}^{d})"}),
            "nu_landscape": ((), nu_landscape, {"long_name": "landscape-law DOS at E_F"}),
            "nu_basins": ((), nu_basins, {"long_name": "DOS from basin energy estimates"}),
            "delta_xi": ((), delta_xi, {"long_name": "mean level spacing 1/(V_F nu) (eq. A14)",
                                        "units": units.energy_unit}),
            "localization_volume": ((), v_f, {"long_name": "V_F, mean basin volume near E_F",
                                              "units": f"{units.length_unit}^{d}"}),
            "xi": ((), xi_val, {"long_name": f"localization length used by eq. 1 ({xi})",
                                "units": units.length_unit}),
            "xi_fit": ((), xi_fit, {"units": units.length_unit}),
            "xi_metric": ((), xi_metric, {"units": units.length_unit}),
            "n_basins": ((), basins.n),
            "n_sources": ((), sources.size,
                          {"long_name": "states whose pairs estimate f (Sigma_omega at the "
                                        "largest omega, or the pair window)"}),
            "pair_window": ((), window, {"units": units.energy_unit,
                                         "long_name": "half-width of the window of states "
                                                      "used for V_F and the pair statistics"}),
            "n_pair_distances": ((), pd.i.size),
        },
        coords={"omega": ("omega", w, {"long_name": "angular frequency",
                                       "units": units.omega_unit})},
        attrs={
            "title": "mottscape: LL-generalized Mott-Berezinskii ac conductivity",
            "units": units.name,
            "ndim": d,
            "shape": list(grid.shape),
            "spacing": list(grid.spacing),
            "boundary": grid.boundary,
            "volume": grid.volume,
            "potential_shift": land.shift,
            "landscape_solver": land.solver,
            "landscape_residual": land.residual,
            "landscape_converged": int(land.converged),
            "percolating": int(basins.percolating),
            "basin_filling": basins.filling,
            "mott_scale": mott_scale_method,
            "dos_method": dos,
            "center": center,
            "split": split,
            "pairs": pairs,
            "xi_method": xi,
            "effective_potential_used": effective,
            "spin_factor": 2,
            "mottscape_version": _version(),
        },
    )
    opts = dict(mott_scale=mott_scale_method, dos=dos, center=center, split=split, pairs=pairs,
                xi=xi, pair_window=window, effective=effective)
    return Pipeline(landscape=land, basins=basins, pairs=pd, sources=sources, dataset=ds,
                    options=opts)


def ac_conductivity(
    V,
    fermi_energy: float,
    omega,
    spacing=1.0,
    mass=1.0,
    boundary: str = "dirichlet",
    units: str | UnitSystem = "lattice",
    *,
    mott_scale: str = "log",
    dos: str = "landscape",
    center: str = "weighted",
    split: str = "components",
    pairs: str = "window",
    xi: str = "fit",
    pair_window: float | None = None,
    effective: str = "vu",
    solver: str = "auto",
    progress: bool = False,
) -> xr.Dataset:
    """Low-frequency ac conductivity from the localization landscape (eq. 17), with eq. (1).

    Parameters
    ----------
    V
        Potential map (1 to 3 axes), energy unit of ``units``.
    fermi_energy
        E_F, in the strongly localized part of the spectrum (basins of V_u separated).
    omega
        Increasing angular frequencies (> 0), in ``units.omega_unit``.
    spacing, mass, boundary, units
        Grid spacing (scalar or per axis), effective mass (scalar or map), boundary condition
        and unit system (see :mod:`mottscape.units`).
    mott_scale, dos, center, split, pairs, xi
        The open choices of the theory; see the module docstring.
    pair_window
        With ``pairs="window"``: half-width (energy) of the window of states |E_i - E_F| whose
        pairs estimate f(r, rho_omega) at every omega (default: the largest hbar omega).
    effective
        ``"vu"`` (default): basins and Agmon metric of V_u, as in the paper. ``"scaled"``:
        of W_u = (1 + d/4) V_u, the landscape eigenvalue rule applied pointwise (see the
        module docstring).
    solver
        Landscape solver (see :func:`mottscape.landscape.solve_landscape`).
    progress
        Show a progress bar for the Agmon searches.

    Returns
    -------
    xarray.Dataset
        On coordinate ``omega``: ``sigma_ll`` (eq. 17), ``sigma_mb`` (eq. 1), ``rho_omega``,
        ``n_states`` = |Sigma_omega|, ``n_pairs`` (pairs in the Agmon shell), ``moment`` =
        E_omega(X^2), validity flags; scalars ``nu``, ``delta_xi``, ``xi``,
        ``localization_volume``; attributes with units and provenance. sigma is per unit volume,
        spin included, in e^2/hbar * a^(2-d) (lattice) or S/m, S, S*m (semiconductor).
    """
    return run_pipeline(V, fermi_energy, omega, spacing, mass, boundary, units,
                        mott_scale_method=mott_scale, dos=dos, center=center, split=split,
                        pairs=pairs, xi=xi, pair_window=pair_window, effective=effective,
                        solver=solver,
                        progress=progress).dataset


class _Clock:
    """Report the duration of each step to a callback."""

    def __init__(self, log):
        self.log = log
        self.t = time.perf_counter()

    def step(self, message: str) -> None:
        now = time.perf_counter()
        if self.log is not None:
            self.log(f"{message} [{now - self.t:.2f} s]")
        self.t = now


def _xi_fit(r: np.ndarray, rho: np.ndarray) -> float:
    """Least-squares xi in r = xi * rho over pairs with rho > 1 (outside the near field)."""
    sel = rho > 1.0
    if sel.sum() < 3:
        return math.nan
    return float(np.sum(r[sel] * rho[sel]) / np.sum(rho[sel] ** 2))


def _xi_metric(land: Landscape, basins: Basins, energy: float) -> float:
    """xi = 1 / mean Agmon metric over the cells outside the basins."""
    metric = land.agmon_metric(energy)
    outside = basins.labels == 0
    if not outside.any():
        return math.nan
    mean = float(metric[outside].mean())
    return 1.0 / mean if mean > 0 else math.nan


def _version() -> str:
    from . import __version__

    return __version__
