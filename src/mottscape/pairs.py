"""The pair-resolved model: every basin pair as a two-level system (Appendices A and B).

Instead of keeping only the pairs of the Agmon shell with |X|^2 = r^2/4 (eqs. 13-17), each pair
(i, j) of basins near E_F is treated as the two-well Hamiltonian of sec. III:

* transition amplitude t_ij = C Delta_xi rho_ij exp(-rho_ij)                       (eq. A16)
  with an explicit O(1) prefactor C (the theory leaves it open; default 1),
* splitting Delta E = sqrt(4 t_ij^2 + (E_i - E_j)^2)                               (eq. 7)
* mixing-angle matrix element |X_ij|^2 = t_ij^2 / (t_ij^2 + delta^2) * r_ij^2 / 4,
  delta = (E_i - E_j)/2                                                             (eq. B3)
* Kubo-Greenwood with the bonding state occupied and the antibonding state empty
  (E_- < E_F < E_+ at T = 0), binned exactly like :func:`mottscape.kubo_greenwood`:
  each pair adds (2 pi e^2 omega_ij / (d |Omega|)) |X_ij|^2 / hbar / (bin width) to the bin
  of omega_ij = Delta E / hbar (eq. 4-5, spin included).

The resonance condition (eq. 8) is thus applied pair by pair instead of through the
rho_omega shell, and the (E_i - E_j) spread inside Sigma_omega is kept.

Pairs beyond the Agmon bound of the searches (not listed in ``pipeline.pairs``) have
t_ij < hbar omega_min / 2; they would add |X|^2 suppressed by (t/delta)^2 and are neglected.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import xarray as xr

from .errors import InputError

__all__ = ["pair_conductivity", "pair_parameters"]


def _check_pipeline(pipeline) -> None:
    from .pipeline import PipelineResult

    if not isinstance(pipeline, PipelineResult):
        raise InputError(f"pipeline must be a Pipeline (from mottscape.run_pipeline), got "
                         f"{type(pipeline).__name__}")


def _check_prefactor(prefactor) -> float:
    if isinstance(prefactor, bool) or not isinstance(prefactor, numbers.Real) \
            or not (math.isfinite(prefactor) and prefactor > 0):
        raise InputError(f"prefactor={prefactor!r} must be a finite number > 0 (the O(1) "
                         "constant C of eq. A16, default 1)")
    return float(prefactor)


def pair_parameters(pipeline, prefactor: float = 1.0) -> dict:
    """t_ij, splitting, |X_ij|^2 and occupations of the listed basin pairs (App. A, B).

    Returns a dict of arrays over the pairs of ``pipeline.pairs``: ``i``, ``j``, ``rho``,
    ``r``, ``t``, ``splitting`` (Delta E), ``x2`` (|X_ij|^2) and ``active`` (E_- < E_F < E_+).
    Energies are in the study's energy unit, lengths in its length unit.
    """
    _check_pipeline(pipeline)
    prefactor = _check_prefactor(prefactor)
    pd = pipeline.pairs
    basins = pipeline.basins
    delta_xi = pipeline.statistics.delta_xi
    ef = pipeline.fermi_energy
    t = prefactor * delta_xi * pd.rho * np.exp(-pd.rho)
    ei, ej = basins.energies[pd.i], basins.energies[pd.j]
    half = 0.5 * (ei - ej)
    split = np.sqrt(4.0 * t**2 + (ei - ej) ** 2)
    r = pipeline.pair_euclidean()
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(t > 0, t**2 / (t**2 + half**2), 0.0)
    x2 = weight * r**2 / 4.0
    mid = 0.5 * (ei + ej)
    active = (mid - split / 2 < ef) & (ef < mid + split / 2)
    return dict(i=pd.i, j=pd.j, rho=pd.rho, r=r, t=t, splitting=split, x2=x2, active=active)


def pair_conductivity(pipeline, omega_edges, prefactor: float = 1.0) -> xr.Dataset:
    """Bin-averaged conductivity of the pair-resolved model.

    Parameters
    ----------
    pipeline
        A :class:`mottscape.conductivity.Pipeline` whose frequencies cover ``omega_edges``
        (its largest hbar omega sets the energy window of the states considered).
    omega_edges
        Increasing bin edges of angular frequency (units of the study).
    prefactor
        The O(1) constant C of t_ij = C Delta_xi rho e^{-rho} (eq. A16).

    Returns
    -------
    xarray.Dataset
        ``sigma_pairs`` on coordinate ``omega`` (geometric bin centres) and ``n_pairs``.
    """
    try:
        edges = np.asarray(omega_edges, dtype=float)
    except (TypeError, ValueError):
        edges = np.zeros(0)
    if (edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges))
            or np.any(edges <= 0) or np.any(np.diff(edges) <= 0)):
        shown = (repr(omega_edges) if isinstance(omega_edges, list | tuple)
                 and len(omega_edges) <= 6 else f"<array of shape {edges.shape}>")
        raise InputError(f"omega_edges={shown} must be a strictly increasing 1D array of at "
                         "least two finite, positive frequencies")
    prefactor = _check_prefactor(prefactor)
    _check_pipeline(pipeline)
    land = pipeline.landscape
    units = land.units
    grid = land.grid
    d = grid.ndim
    p = pair_parameters(pipeline, prefactor)
    omega_p = p["splitting"] / units.hbar
    k = np.searchsorted(edges, omega_p, side="right") - 1
    use = p["active"] & (k >= 0) & (k < edges.size - 1)
    contrib = 2.0 * math.pi * (omega_p * units.hbar) * p["x2"] / (d * grid.volume)
    # Internal units (e = 1, energies for frequencies): sigma_k = 2 pi (omega_ij / bin width)
    # |X|^2 / (d |Omega|) in e^2/hbar * length^(2-d); the frequency ratio is dimensionless.
    widths = np.diff(edges) * units.hbar
    sigma = np.bincount(k[use], weights=contrib[use], minlength=edges.size - 1) / widths
    count = np.bincount(k[use], minlength=edges.size - 1)
    centres = np.sqrt(edges[:-1] * edges[1:])
    return xr.Dataset(
        {"sigma_pairs": ("omega", sigma * units.sigma_factor(d),
                         {"units": units.sigma_unit(d),
                          "long_name": "pair-resolved model (App. A-B)"}),
         "n_pairs": ("omega", count)},
        coords={"omega": ("omega", centres, {"units": units.omega_unit})},
        attrs={"prefactor": prefactor},
    )
