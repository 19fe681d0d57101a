"""Mott scale (eq. 12, ref. [38]) and the Mott-Berezinskii formulas (eqs. 1, 14-21)."""

import math

import numpy as np
import pytest

from mottscape import mott


def test_unit_sphere_areas():
    assert [mott.unit_sphere_area(d) for d in (1, 2, 3)] == pytest.approx(
        [2, 2 * math.pi, 4 * math.pi])


def test_log_mott_scale_is_eq12():
    hw = np.array([1e-4, 1e-2])
    np.testing.assert_allclose(mott.mott_scale(hw, 0.5, "log"), np.log(1.0 / hw))


def test_lambertw_mott_scale_inverts_eq11():
    """rho e^{-rho} Delta_xi = hbar omega / 2, on the branch rho > 1 (ref. [38])."""
    delta = 0.3
    hw = np.geomspace(1e-8, 0.2, 20)
    rho = mott.mott_scale(hw, delta, "lambertw")
    ok = np.isfinite(rho)
    np.testing.assert_allclose(delta * rho[ok] * np.exp(-rho[ok]), hw[ok] / 2, rtol=1e-10)
    assert np.all(rho[ok] >= 1.0)
    # Undefined above hbar omega = 2 Delta_xi / e.
    assert np.all(ok == (hw / (2 * delta) <= 1 / math.e))
    # Asymptotics: rho_W = rho_log + ln(rho_log) + o(1).
    small = hw < 1e-6
    rl = mott.mott_scale(hw[small], delta, "log")
    np.testing.assert_allclose(rho[small], rl + np.log(rl), rtol=0.02)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_shell_moment_reproduces_mott_limit_monte_carlo(d):
    """Random points with a uniform Agmon metric rho = r / xi: eq. (14-16) gives eq. (20-21)."""
    rng = np.random.default_rng(10 + d)
    L = {1: 4000.0, 2: 300.0, 3: 60.0}[d]
    n = {1: 2000, 2: 3000, 3: 3000}[d]
    xi, rho_w = 1.5, 6.0
    x = rng.uniform(0, L, (n, d))
    i, j = np.triu_indices(n, 1)
    delta = x[j] - x[i]
    delta -= L * np.round(delta / L)  # periodic: no boundary effects
    r = np.sqrt((delta**2).sum(1))
    moment, n_pairs = mott.shell_moment(r, r / xi, rho_w, n, L**d)
    exact = mott.mott_limit_moment(xi, rho_w, d, exact_shell=True)
    assert n_pairs > 400
    assert moment == pytest.approx(exact, rel=4 / math.sqrt(n_pairs))
    # Eq. (21) is the R >> xi limit of the exact shell integral.
    approx21 = mott.mott_limit_moment(xi, rho_w, d)
    assert approx21 == pytest.approx(exact, rel=(d + 2) / rho_w)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_sigma_ll_with_mott_moment_is_eq1_up_to_documented_prefactor(d):
    nu, xi, delta = 0.2, 2.0, 0.4
    hw = np.geomspace(1e-6, 1e-3, 5)
    rho = mott.mott_scale(hw, delta, "log")
    s17 = mott.sigma_ll(nu, hw, mott.mott_limit_moment(xi, rho, d), d)
    s1 = mott.sigma_mott_berezinskii(nu, xi, hw, delta, d)
    np.testing.assert_allclose(s17 / s1, mott.unit_sphere_area(d) / (4 * d))


def test_sigma_mb_undefined_when_log_not_positive():
    s = mott.sigma_mott_berezinskii(1.0, 1.0, np.array([0.1, 3.0]), 1.0, 2)
    assert np.isfinite(s[0]) and np.isnan(s[1])


def test_shell_moment_needs_two_states():
    assert mott.shell_moment(np.ones(1), np.ones(1), 1.0, 1, 10.0) == (0.0, 0)


def test_unknown_mott_scale():
    from mottscape import InputError

    with pytest.raises(InputError, match="lambertw"):
        mott.mott_scale(1e-3, 1.0, "sqrt")
