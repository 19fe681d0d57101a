"""Level statistics at the Fermi energy: the states used, nu, V_F and Delta_xi (eq. A14).

The step after the basins in the workflow: which basins' states enter the pair statistics
(Sigma_omega at the largest omega, or the fixed window of ``pair_set="window"``), the density
of states nu(E_F) (landscape law or basin count), the localization volume V_F (mean basin
volume of those states) and the mean level spacing Delta_xi = 1/(V_F nu) (eq. A14). The
localization length of the classical formula (eq. 1) is estimated here too, from the pairs or
from the metric.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .basins import Basins
from .errors import InputError
from .grid import Boundary
from .landscape import Landscape
from .mott import level_spacing
from .options import Options
from .sample import Sample, make_sample

__all__ = ["LevelStatistics", "TransferMatrixXi", "level_statistics", "xi_from_metric",
           "xi_from_pairs", "xi_transfer_matrix"]

#: Minimum number of basins used to estimate the localization volume V_F.
MIN_VF_BASINS = 5
#: Most transverse channels of the transfer-matrix bar cut from a sample (12 x 12 in 3D, a strip
#: of 144 in 2D): the cost grows like channels^2 per slice, and a bar much wider than xi
#: already gives the bulk xi.
TM_CHANNELS = 144


@dataclass(frozen=True)
class TransferMatrixXi:
    """The sample's own localization length from the transfer matrix (eq. 1's xi).

    Attributes
    ----------
    xi, xi_error
        xi and its statistical error (length unit).
    cross_section
        The cells of the bar across the transfer direction (the longest axis).
    flags
        Flags of :func:`mottscape.localization.localization_length` (e.g. ``short_sample``,
        ``not_localized``); empty when xi is trustworthy.
    """

    xi: float
    xi_error: float
    cross_section: tuple[int, ...]
    flags: tuple[str, ...]


@dataclass(frozen=True)
class LevelStatistics:
    """What the workflow knows about the states near E_F (eq. A14).

    Attributes
    ----------
    fermi_energy
        E_F, in the frame of V.
    window
        Half-width of the energy window of the states used (``pair_window`` or hbar omega_max).
    distance
        |E_i - E_F| for every basin.
    sources
        Indices of the basins whose states are used (|E_i - E_F| <= window).
    localization_volume
        V_F, the mean basin volume of the states used (at least ``MIN_VF_BASINS`` nearest).
    nu, nu_landscape, nu_basins
        nu(E_F) per volume, energy and spin: the one chosen by ``options.dos``, the
        landscape law (refs. [28, 30]) and the basin count.
    delta_xi
        Mean level spacing in the localization volume, 1/(V_F nu) (eq. A14).
    """

    fermi_energy: float
    window: float
    distance: np.ndarray
    sources: np.ndarray
    localization_volume: float
    nu: float
    nu_landscape: float
    nu_basins: float
    delta_xi: float


def level_statistics(land: Landscape, basins: Basins, fermi_energy: float,
                     hbar_omega: np.ndarray, options: Options) -> LevelStatistics:
    """The states used, nu, V_F and Delta_xi at E_F (eq. A14).

    Parameters
    ----------
    land
        The landscape of the sample (its law gives ``nu_landscape``).
    basins
        The basins at E_F.
    fermi_energy
        E_F.
    hbar_omega
        The photon energies of the run (the largest sets the default window).
    options
        ``pair_set``, ``pair_window`` and ``dos`` are used.

    Returns
    -------
    LevelStatistics
    """
    ef = float(fermi_energy)
    window = float(np.max(hbar_omega))
    if options.pair_set == "window" and options.pair_window is not None:
        window = options.pair_window
    near = np.abs(basins.energies - ef)
    sources = np.flatnonzero(near <= window)
    vf_index = sources if sources.size >= MIN_VF_BASINS else np.argsort(near)[:MIN_VF_BASINS]
    v_f = float(np.mean(basins.volumes[vf_index])) if vf_index.size else math.nan
    nu_landscape = float(land.dos(ef))
    nu_basins = sources.size / (land.grid.volume * 2.0 * window)
    nu = nu_landscape if options.dos == "landscape" else nu_basins
    return LevelStatistics(fermi_energy=ef, window=window, distance=near, sources=sources,
                           localization_volume=v_f, nu=nu, nu_landscape=nu_landscape,
                           nu_basins=nu_basins, delta_xi=level_spacing(nu, v_f))


def xi_from_pairs(r: np.ndarray, rho: np.ndarray) -> float:
    """Least-squares xi in r = xi * rho over the pairs with rho > 1 (outside the near field).

    The xi for which rho_ij = r_ij / xi (the Mott limit, eq. 19) best holds on the computed
    pairs; NaN with fewer than three such pairs. It depends on the pairs searched, i.e. on the
    frequency range; a transfer-matrix xi is independent of the landscape.
    """
    sel = rho > 1.0
    if sel.sum() < 3:
        return math.nan
    return float(np.sum(r[sel] * rho[sel]) / np.sum(rho[sel] ** 2))


def xi_transfer_matrix(sample: Sample, energy: float) -> TransferMatrixXi:
    """xi at ``energy`` from the transfer matrix of the sample's own Hamiltonian (eq. 3).

    Independent of the landscape (MacKinnon-Kramer, :mod:`mottscape.localization`): the bar
    runs along the longest axis of the map; across it, at most ``TM_CHANNELS`` cells are kept
    (a bar cut from the map, with hard walls where it is cut). The fair xi for the classical
    formula (eq. 1): the fitted one (:func:`xi_from_pairs`) comes from the Agmon pairs.
    """
    from .localization import localization_length

    V = np.moveaxis(np.asarray(sample.potential), int(np.argmax(sample.shape)), 0)
    axis = int(np.argmax(sample.shape))
    d = sample.ndim
    m = math.floor(TM_CHANNELS ** (1.0 / (d - 1)) + 1e-9) if d > 1 else 1
    cut = (slice(None), *((slice(0, m),) * (d - 1)))
    bar = np.ascontiguousarray(V[cut])
    mass = np.ascontiguousarray(np.moveaxis(np.asarray(sample.mass), axis, 0)[cut])
    spacing = (sample.grid.spacing[axis],
               *(h for a, h in enumerate(sample.grid.spacing) if a != axis))
    whole = bar.shape == V.shape
    boundary: Boundary = sample.grid.boundary if whole else "dirichlet"
    bar_sample = make_sample(bar, spacing, float(mass.flat[0]) if sample.uniform_mass else mass,
                             boundary, sample.units, solvable=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the flags say it
        try:
            res = localization_length(bar_sample, energy, axis=0,
                                      reorthogonalize=_short_bar_step(bar.shape[0]))
        except InputError:  # a map too short for one Lyapunov estimate
            return TransferMatrixXi(xi=math.nan, xi_error=math.nan,
                                    cross_section=bar.shape[1:], flags=("too_short",))
    return TransferMatrixXi(xi=float(res.xi), xi_error=float(res.xi_error),
                            cross_section=bar.shape[1:], flags=tuple(res.flags))


def _short_bar_step(length: int) -> int | None:
    """Slices between re-orthonormalisations for a short map (None: the adaptive default).

    The error of the Lyapunov exponent is estimated from at least 4 blocks between
    re-orthonormalisations; the adaptive step (about 10 slices in the localized regime) needs
    some 40 slices, so a shorter map (a 24^3 sample) re-orthonormalises more often, which only
    costs QR steps.
    """
    return None if length >= 64 else max(1, (length - max(1, length // 10)) // 6)


def xi_from_metric(land: Landscape, basins: Basins, energy: float) -> float:
    """xi = 1 / mean Agmon metric (eq. 9) over the cells outside the basins; NaN if none."""
    metric = land.agmon_metric(energy)
    outside = basins.labels == 0
    if not outside.any():
        return math.nan
    mean = float(metric[outside].mean())
    return 1.0 / mean if mean > 0 else math.nan
