"""Slow: the recommended estimator against the exact reference on reduced studies, per dimension.

Issue 10 asks for one slow-marked test per dimension checking the ratio band on a reduced study
(the 1D one is ``test_validation.py::test_builtin_validation_study_lands_near_exact``). The
reduced studies below are *held-out* models or samples (never used to choose a default:
docs/validation.md), smaller than the documented runs; the band is issue 10's goal (within a
factor 3 of exact in every resolved bin with omega / Delta_xi <= 0.05), and in 2D the paper's
eq. 17 is checked to stay the farther of the two, as the documented runs show.
"""

from __future__ import annotations

import numpy as np
import pytest

import mottscape as ms
from mottscape.validation import validate

pytestmark = pytest.mark.slow

BAND = 3.0


def _study(potential: dict, ef: float, omega: tuple[float, float], realizations: int,
           options: dict | None = None):
    return ms.study_from_dict({
        "potential": potential,
        "conductivity": {"fermi_energy": ef, "omega_min": omega[0], "omega_max": omega[1],
                         "n_omega": 5},
        "ensemble": {"realizations": realizations},
        "options": options or {},
    })


def _checked_bins(res) -> np.ndarray:
    """Resolved bins inside the low-frequency regime (omega / Delta_xi <= 0.05)."""
    ratio = res.omega.values / float(res.delta_xi.mean())
    return res.resolved.values.astype(bool) & (ratio <= 0.05)


def test_2d_gaussian_field_within_the_band():
    """Held-out 2D Gaussian-correlated field (docs/investigation/gaussian_2d.toml) at 160^2."""
    study = _study({"model": "gaussian", "shape": [160, 160], "seed": 2051,
                    "correlation_length": 3.0, "amplitude": 1.0}, -1.186, (0.02, 0.2), 4)
    res = validate(study, variants={"default": {}})
    checked = _checked_bins(res)
    assert checked.sum() >= 2, res.resolved.values
    ll = res.ratio_ll.values[checked]
    eq17 = res.ratio_eq17_default.values[checked]
    assert np.all((ll > 1 / BAND) & (ll < BAND)), ll
    assert np.all(np.abs(np.log(ll)) <= np.abs(np.log(eq17))), (ll, eq17)


def test_3d_anderson_within_the_band():
    """Held-out 3D Anderson model, box [0, 20], at 20^3 (not the Mott regime at this size:
    the Mott lengths reach half the sample; a check of the estimator in 3D).

    At this size the default pair model solves the whole sample as one box (exact by
    construction); a box per basin, what larger samples get, is the estimator checked here.
    """
    study = _study({"model": "anderson", "shape": [20, 20, 20], "seed": 3011, "width": 20.0},
                   4.5, (0.05, 1.0), 4, {"state_boxes": "per_basin"})
    res = validate(study, variants={"default": {}})
    checked = _checked_bins(res)
    assert checked.sum() >= 2, res.resolved.values
    ll = res.ratio_ll.values[checked]
    assert np.all((ll > 1 / BAND) & (ll < BAND)), ll
