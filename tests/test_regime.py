"""The results say where the theory's assumptions fail, and what to do (mottscape.regime)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import mottscape as ms
from mottscape import disorder
from mottscape.regime import MOTT_LENGTH_SHARE

OMEGA = np.geomspace(0.01, 0.1, 4)


def test_percolating_sample_warns_and_says_what_to_do():
    V = disorder.block((64, 64), block=4, width=4.0, seed=3)
    with pytest.warns(ms.RegimeWarning, match="percolate") as record:
        ds = ms.ac_conductivity(V, 3.0, OMEGA, estimator="eq17")
    message = str(record[0].message)
    assert "lower E_F" in message and "kubo_greenwood" in message
    assert "percolate" in ds.attrs["diagnosis"] and not ds.valid.any()


def test_sample_inside_the_theory_is_silent():
    V = disorder.block((128, 128), block=4, width=4.0, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ms.RegimeWarning)
        ds = ms.ac_conductivity(V, 0.9, OMEGA, estimator="eq17")
    assert ds.attrs["diagnosis"] == ""
    assert not ds.flag_mott_length_sample.any() and not bool(ds["percolating"])


@pytest.mark.parametrize("side", [24, 160])
def test_mott_length_flag_follows_the_sample_size(side):
    """Same disorder statistics, two sample sizes: only the small one is flagged."""
    V = disorder.block((side, side), block=4, width=4.0, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ms.RegimeWarning)
        ds = ms.ac_conductivity(V, 0.9, np.geomspace(1e-3, 0.05, 5), estimator="eq17")
    R = ds.mott_length.values
    expected = np.isfinite(R) & (R >= MOTT_LENGTH_SHARE * side)
    np.testing.assert_array_equal(ds.flag_mott_length_sample.values, expected)
    if side == 24:  # R_omega ~ 10-20 cells here: the 24-cell sample cannot hold the pairs
        assert expected.any() and "Mott length" in ds.attrs["diagnosis"]
    else:
        assert not expected.any() and "Mott length" not in ds.attrs["diagnosis"]


def test_frequencies_not_small_are_named():
    V = disorder.block((64, 64), block=4, width=4.0, seed=3)
    omega = np.array([0.05, 50.0])
    with pytest.warns(ms.RegimeWarning, match="not small against the level spacing"):
        ds = ms.ac_conductivity(V, 0.7, omega, estimator="eq17")
    assert bool(ds.flag_rho_omega_small[1]) and "omega = 50" in ds.attrs["diagnosis"]


def test_summary_prints_the_diagnosis():
    from mottscape.summary import conductivity_table

    V = disorder.block((64, 64), block=4, width=4.0, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ms.RegimeWarning)
        ds = ms.ac_conductivity(V, 3.0, OMEGA, estimator="eq17")
    text = conductivity_table(ds)
    assert "outside the theory's validity" in text and "percolate" in text


def test_ensemble_collects_the_realizations_diagnoses():
    from mottscape import ensemble

    study = ms.study_from_dict({
        "potential": {"model": "block", "shape": [48, 48], "seed": 11, "block": 4,
                      "width": 4.0},
        "conductivity": {"fermi_energy": 3.0, "omega_min": 0.02, "omega_max": 0.2,
                         "n_omega": 3},
        "options": {"estimator": "eq17"},
    })
    ds = ensemble.run_ensemble(study, 2)
    assert bool(ds.percolating.all())
    lines = ds.attrs["diagnosis"].split("\n")
    assert lines[0].startswith("2 of 2 realizations")
    assert any(line.startswith("realization 1: the basins") for line in lines)


def test_ensemble_diagnosis_counts_beyond_the_quoted_realizations():
    from mottscape.regime import QUOTED_REALIZATIONS, ensemble_diagnosis

    notes = {r: f"note {r}" if r % 2 else "" for r in range(2 * QUOTED_REALIZATIONS + 4)}
    text = ensemble_diagnosis(notes)
    flagged = len([r for r in notes if notes[r]])
    assert text.startswith(f"{flagged} of {len(notes)} realizations")
    assert text.count("note ") == QUOTED_REALIZATIONS
    assert text.endswith(f"{flagged - QUOTED_REALIZATIONS} more realizations")
    assert ensemble_diagnosis({0: "", 1: ""}) == ""


def test_pair_model_valid_is_the_regime():
    V = disorder.block((64, 64), block=4, width=4.0, seed=3)
    omega = np.array([1e-6, 0.02, 0.2, 50.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ms.RegimeWarning)
        ds = ms.ac_conductivity(V, 0.7, omega)
    expected = (~ds.flag_rho_omega_small & (not bool(ds["percolating"]))
                & bool(ds["landscape_converged"]))
    np.testing.assert_array_equal(ds.valid, expected)
    assert ds.valid.any() and not ds.valid.all()


def test_pair_model_memory_is_checked_before_it_runs(monkeypatch):
    """A grid that fits for eq. 17 but not with the pair model is refused by name, with the fix."""
    from mottscape import grid

    V = disorder.block((64, 64), block=4, width=4.0, seed=3)
    n = V.size
    monkeypatch.setattr(grid, "_available_memory",
                        lambda: n * (grid.BYTES_PER_POINT_PIPELINE + grid.BYTES_PER_POINT_PAIRS)
                        - 1)
    with pytest.raises(ms.InputError, match=r"pair model.*use estimator='eq17'"):
        ms.ac_conductivity(V, 0.7, OMEGA)
    ds = ms.ac_conductivity(V, 0.7, OMEGA, estimator="eq17")  # 112 bytes per point: fits
    assert ds.attrs["option_estimator"] == "eq17"


def test_a_pair_model_without_states_near_e_f_says_so():
    """E_F between min V_u (the pipeline's own lower limit) and the sample's lowest
    eigenvalue: every window is empty, sigma_ll = 0 everywhere, and the warning names the
    cause. Above the lowest eigenvalue, with states in the window, no such note."""
    V = disorder.anderson((64, 64), width=12.0, seed=1)
    e0 = float(ms.exact.lowest_eigenvalues(V, 1, spacing=(1.0, 0.7))[0])
    omega = np.geomspace(0.01, 0.2, 5)
    ef = e0 - 0.35  # the window reaches ~0.25 above E_F
    with pytest.warns(ms.RegimeWarning, match="no eigenstate of H lies within"):
        ds = ms.ac_conductivity(V, ef, omega, spacing=(1.0, 0.7))
    assert ef + float(ds.omega_upper[-1]) < e0
    assert int(ds.n_states_basins) == 0 and not np.any(ds.sigma_ll.values)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ms.RegimeWarning)
        ds = ms.ac_conductivity(V, e0 + 0.05, omega, spacing=(1.0, 0.7))
    assert int(ds.n_states_basins) > 0 and "no eigenstate" not in ds.attrs["diagnosis"]
