"""The Agmon shell: pair distances of the states used and the moments of f (eqs. 12-16).

Two steps of the workflow, Sigma_omega -> f(r, rho_omega) -> E_omega(X^2):

* :func:`pair_sample` runs the bounded Agmon searches (eq. 9) between the basins of the
  states used, each only as far as the Mott scale it serves needs (rho_omega + 1, eq. 12), and
  adds the Euclidean distance r_ij of every pair found (minimum image when periodic);
* :func:`shell_moments` counts, at each omega, the pairs in the shell
  [rho_omega, rho_omega + 1] and forms the second moment E_omega(X^2) (eqs. 14-16).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

import numpy as np

from .agmon import PairDistances, basin_distances
from .basins import Basins
from .landscape import Landscape
from .mott import shell_moment
from .options import Options
from .statistics import LevelStatistics

__all__ = ["PairSample", "ShellMoments", "pair_sample", "shell_moments"]


@dataclass(frozen=True)
class PairSample:
    """The basin pairs whose distances estimate f(r, rho) (eq. 14).

    Attributes
    ----------
    distances
        The bounded Agmon distances rho_ij (pairs farther than their bound are not listed).
    r
        Euclidean distance r_ij of each listed pair (minimum image when periodic).
    """

    distances: PairDistances
    r: np.ndarray

    @property
    def size(self) -> int:
        """Number of listed pairs."""
        return int(self.r.size)


@dataclass(frozen=True)
class ShellMoments:
    """The Agmon shell at each omega and the second moment of f (eqs. 12, 14-16).

    Attributes
    ----------
    rho_omega
        The Mott scale of ``options.mott_scale`` (eq. 12 or ref. [38]).
    rho_omega_log
        ln(2 Delta_xi / hbar omega) (eq. 12), whatever the option.
    moment
        E_omega(X^2) (eq. 16), length^(d+2).
    n_states
        |Sigma_omega|, the states with |E_i - E_F| <= hbar omega.
    n_states_used
        The states whose pairs estimate f (Sigma_omega, or the fixed pair window).
    n_pairs
        Pairs in the shell [rho_omega, rho_omega + 1].
    """

    rho_omega: np.ndarray
    rho_omega_log: np.ndarray
    moment: np.ndarray
    n_states: np.ndarray
    n_states_used: np.ndarray
    n_pairs: np.ndarray


def pair_sample(metric_land: Landscape, basins: Basins, stats: LevelStatistics,
                hbar_omega: np.ndarray, rho_omega: np.ndarray, options: Options, *,
                progress: bool = False) -> PairSample:
    """Bounded Agmon distances between the basins of the states used (eqs. 9, 12).

    A source i belongs to Sigma_omega for every omega >= |E_i - E_F| / hbar, so its search
    needs to reach rho_omega + 1 at the smallest such omega (rho_omega decreases with omega);
    with ``pair_set="window"`` every pair may serve every omega, so the bound is that of the
    smallest omega.

    Parameters
    ----------
    metric_land
        The landscape whose metric defines the distances (V_u, or W_u with
        ``effective="scaled"``).
    basins
        The basins at E_F.
    stats
        The level statistics (its ``sources`` are searched).
    hbar_omega, rho_omega
        The photon energies and their Mott scales.
    options
        ``pair_set`` is used.
    progress
        Show a progress bar over the searches.

    Returns
    -------
    PairSample
    """
    sources = stats.sources
    usable = np.isfinite(rho_omega) & (rho_omega > 0)
    ef = stats.fermi_energy
    if sources.size < 2 or not usable.any():
        empty = PairDistances(i=np.zeros(0, int), j=np.zeros(0, int), rho=np.zeros(0),
                              n=basins.n, bound=0.0, sources=sources, energy=ef)
        return PairSample(distances=empty, r=np.zeros(0))
    hw_ok, rho_ok = hbar_omega[usable], rho_omega[usable]
    if options.pair_set == "window":
        need = np.full(sources.size, hw_ok.min())
    else:
        need = np.maximum(stats.distance[sources], hw_ok.min())
    k = np.clip(np.searchsorted(hw_ok, need, side="left"), 0, hw_ok.size - 1)
    # a worker process of the ensemble engine (a daemon) has one core: one search thread
    workers = 1 if multiprocessing.current_process().daemon else None
    pd = basin_distances(metric_land, basins, energy=ef, sources=sources,
                         bound=rho_ok[k] + 1.0, progress=progress, workers=workers)
    c = basins.centers
    delta = metric_land.grid.displacement(c[pd.i], c[pd.j])
    return PairSample(distances=pd, r=np.sqrt(np.sum(delta**2, axis=1)))


def shell_moments(pairs: PairSample, stats: LevelStatistics, hbar_omega: np.ndarray,
                  rho_omega: np.ndarray, rho_omega_log: np.ndarray, volume: float,
                  options: Options) -> ShellMoments:
    """E_omega(X^2) and the shell counts at every omega (eqs. 14-16).

    Parameters
    ----------
    pairs
        The pair sample (:func:`pair_sample`).
    stats
        The level statistics.
    hbar_omega, rho_omega, rho_omega_log
        Photon energies and Mott scales (chosen, and eq. 12).
    volume
        |Omega|.
    options
        ``pair_set`` is used: the pairs of Sigma_omega at each omega (eq. 14 literally) or
        the pairs of the fixed window at every omega.

    Returns
    -------
    ShellMoments
    """
    pd = pairs.distances
    near = stats.distance
    n = hbar_omega.size
    n_states = np.zeros(n, dtype=int)
    n_used = np.zeros(n, dtype=int)
    n_pairs = np.zeros(n, dtype=int)
    moment = np.zeros(n)
    window = options.pair_set == "window"
    # a pair belongs to Sigma_omega when the farther of its two states does
    pair_near = np.maximum(near[pd.i], near[pd.j])
    in_sources = np.isin(pd.i, stats.sources) & np.isin(pd.j, stats.sources)
    for k in range(n):
        n_states[k] = int(np.count_nonzero(near <= hbar_omega[k]))
        n_used[k] = stats.sources.size if window else n_states[k]
        if not np.isfinite(rho_omega[k]) or n_used[k] < 2:
            continue
        sel = in_sources if window else pair_near <= hbar_omega[k]
        moment[k], n_pairs[k] = shell_moment(pairs.r[sel], pd.rho[sel], rho_omega[k],
                                             int(n_used[k]), volume)
    return ShellMoments(rho_omega=rho_omega, rho_omega_log=rho_omega_log, moment=moment,
                        n_states=n_states, n_states_used=n_used, n_pairs=n_pairs)
