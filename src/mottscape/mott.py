"""The LL-generalized Mott scale and the Mott-Berezinskii formulas.

Implements, in the internal units of a study (e = 1, frequencies carried as hbar*omega):

* the mean level spacing in a localization volume, Delta_xi = 1/(V_F nu)          (eq. A14)
* the LL-generalized Mott scale rho_omega = ln(2 Delta_xi / hbar omega)            (eq. 12)
  and its Lambert-W refinement rho_omega = -W_{-1}(-hbar omega / 2 Delta_xi)      (ref. [38])
* the Mott length R_omega = xi rho_omega                                           (eq. 18)
* the second moment E_omega(X^2) of the pair distribution f(r, rho_omega)          (eqs. 14-16)
* the LL-generalized Mott-Berezinskii conductivity sigma_LL                         (eq. 17)
* the classical Mott-Berezinskii conductivity sigma_MB                              (eq. 1)
* the Mott limit of E_omega(X^2) for a uniform Agmon metric                         (eqs. 20-21)

Internal sigma is in units of e^2/hbar * length^(2 - d); multiply by
``UnitSystem.sigma_factor(d)`` for the output unit.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import lambertw

from .errors import InputError
from .options import MottScale, allowed

__all__ = [
    "MOTT_SCALES",
    "level_spacing",
    "mott_length",
    "mott_limit_moment",
    "mott_scale",
    "shell_moment",
    "sigma_ll",
    "sigma_mott_berezinskii",
    "unit_sphere_area",
]

MOTT_SCALES = allowed("mott_scale")


def unit_sphere_area(d: int) -> float:
    """Area S_d of the unit (d-1)-sphere in d dimensions: 2, 2 pi, 4 pi for d = 1, 2, 3."""
    return 2.0 * math.pi ** (d / 2) / math.gamma(d / 2)


def level_spacing(nu: float, localization_volume: float) -> float:
    """Mean level spacing within the localization volume, Delta_xi = 1/(V_F nu) (eq. A14)."""
    if not (nu > 0 and localization_volume > 0):
        return math.nan
    return 1.0 / (localization_volume * nu)


def mott_scale(hbar_omega: ArrayLike, delta_xi: float, method: MottScale = "log") -> np.ndarray:
    """LL-generalized Mott scale rho_omega (eq. 12, ref. [38]).

    Parameters
    ----------
    hbar_omega
        Photon energies hbar*omega (> 0).
    delta_xi
        Mean level spacing Delta_xi in a localization volume (eq. A14).
    method
        ``"log"`` (default, as in :class:`~mottscape.options.Options`): rho_omega =
        ln(2 Delta_xi / hbar omega) (eq. 12).
        ``"lambertw"``: invert the resonance condition 2 t_ij = hbar omega with
        t_ij = Delta_xi rho e^{-rho} (eq. 11), giving rho_omega = -W_{-1}(-hbar omega / 2 Delta_xi)
        (ref. [38]); defined for hbar omega <= 2 Delta_xi / e, NaN above.

    Returns
    -------
    numpy.ndarray
        rho_omega (may be <= 0 or NaN when omega is not small compared with Delta_xi: the
        theory does not apply there, and callers flag it).
    """
    if method not in MOTT_SCALES:
        raise InputError(f"mott_scale={method!r} is not known; use one of {MOTT_SCALES}")
    x = np.asarray(hbar_omega, dtype=float) / (2.0 * delta_xi)
    if method == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.log(x)
    out = np.full(x.shape, np.nan)
    ok = (x > 0) & (x <= 1.0 / math.e)
    out[ok] = -np.real(lambertw(-x[ok], k=-1))
    return out


def mott_length(xi: float, rho_omega: ArrayLike) -> np.ndarray:
    """Classical Mott length R_omega = xi * ln(2 Delta_xi / hbar omega) (eq. 18)."""
    return xi * np.asarray(rho_omega, dtype=float)


def shell_moment(r: np.ndarray, rho: np.ndarray, rho_omega: float, n_states: int,
                 volume: float, width: float = 1.0) -> tuple[float, int]:
    """Second moment E_omega(X^2) of the pair distribution f(r, rho_omega) (eqs. 14-16).

    ``f(r, rho) dr drho / |Omega|`` is the fraction of ordered pairs (i, j), i != j, of
    Sigma_omega with r_ij in [r, r + dr] and rho_ij in [rho, rho + drho] (eq. 14); integrating
    r^2 over the Agmon shell rho in [rho_omega, rho_omega + width] gives (eq. 16)

        E_omega(X^2) = |Omega| * sum_{i != j, rho_ij in shell} r_ij^2 / (N (N - 1)).

    Parameters
    ----------
    r, rho
        Euclidean and Agmon distances of the unordered pairs i < j of Sigma_omega whose Agmon
        distance was computed (pairs not listed are farther than the shell).
    rho_omega
        The Mott scale.
    n_states
        N = |Sigma_omega|.
    volume
        |Omega|.
    width
        Width of the Agmon shell (1 in the paper).

    Returns
    -------
    (moment, n_pairs)
        E_omega(X^2) (length^(d+2)) and the number of unordered pairs in the shell.
    """
    if n_states < 2 or not np.isfinite(rho_omega):
        return 0.0, 0
    rho = np.asarray(rho, dtype=float)
    r = np.asarray(r, dtype=float)
    inside = (rho >= rho_omega) & (rho <= rho_omega + width)
    n_pairs = int(inside.sum())
    moment = volume * 2.0 * float(np.sum(r[inside] ** 2)) / (n_states * (n_states - 1))
    return moment, n_pairs


def sigma_ll(nu: float, hbar_omega: ArrayLike, moment: ArrayLike, ndim: int) -> np.ndarray:
    """LL-generalized Mott-Berezinskii conductivity (eq. 17), spin included.

    sigma = (pi e^2 hbar / 2d) nu^2 omega^2 E_omega(X^2)
          = (pi / 2d) (e^2/hbar) nu^2 (hbar omega)^2 E_omega(X^2),
    returned in units of e^2/hbar * length^(2-d).
    """
    hw = np.asarray(hbar_omega, dtype=float)
    return math.pi / (2.0 * ndim) * nu**2 * hw**2 * np.asarray(moment, dtype=float)


def sigma_mott_berezinskii(nu: float, xi: float, hbar_omega: ArrayLike, delta_xi: float,
                           ndim: int) -> np.ndarray:
    """Classical Mott-Berezinskii formula (eq. 1), spin included.

    sigma = 2 pi e^2 hbar nu^2 xi^(d+2) omega^2 ln(2 Delta_xi / hbar omega)^(d+1), in units of
    e^2/hbar * length^(2-d). NaN where hbar omega >= 2 Delta_xi (the logarithm is not positive
    and the formula does not apply).

    Notes
    -----
    Eq. (17) with the Mott-limit moment of eq. (21) gives (pi S_d / 2d) nu^2 xi^(d+2) omega^2
    ln(...)^(d+1): the same law as eq. (1) with a prefactor smaller by S_d/(4d) = 1/2, pi/4,
    pi/3 in d = 1, 2, 3. Both prefactors are O(1) conventions of the asymptotic theory; we
    report eq. (1) as published.
    """
    hw = np.asarray(hbar_omega, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(2.0 * delta_xi / hw)
    log = np.where(log > 0, log, np.nan)
    return 2.0 * math.pi * nu**2 * xi ** (ndim + 2) * hw**2 * log ** (ndim + 1)


def mott_limit_moment(xi: float, rho_omega: ArrayLike, ndim: int,
                      exact_shell: bool = False) -> np.ndarray:
    """E_omega(X^2) for a uniform Agmon metric rho = r / xi (eqs. 20-21).

    With ``exact_shell=False`` this is eq. (21), S_d R_omega^(d+1) xi (valid for R >> xi).
    With ``exact_shell=True`` it is the exact integral of eq. (20) over [R, R + xi]:
    S_d ((R + xi)^(d+2) - R^(d+2)) / (d + 2).
    """
    R = mott_length(xi, rho_omega)
    S = unit_sphere_area(ndim)
    if exact_shell:
        return S * ((R + xi) ** (ndim + 2) - R ** (ndim + 2)) / (ndim + 2)
    return S * R ** (ndim + 1) * xi
