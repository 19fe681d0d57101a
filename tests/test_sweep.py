"""Parameter sweeps in a study file (issue 9): every point a validated study, every
(point, realization) a task, results along ``point`` equal to separate runs bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import mottscape as ms
from mottscape import ensemble
from mottscape.cli import main
from mottscape.config import StudyError
from mottscape.summary import report_store

BASE = {
    "potential": {"model": "block", "shape": [48, 48], "seed": 5, "block": 4, "width": 4.0},
    "conductivity": {"omega_min": 0.02, "omega_max": 0.1, "n_omega": 3},
}


def _study(sweep, **extra):
    return ms.study_from_dict({**BASE, **extra, "sweep": sweep})


def test_points_are_the_product_of_the_lists_last_key_fastest():
    st = _study({"conductivity": {"fermi_energy": [0.6, 0.8]},
                 "potential": {"width": [3.0, 4.0, 5.0]}})
    assert len(st.points) == 6
    labels = st.point_labels()
    assert labels[1] == {"conductivity.fermi_energy": 0.6, "potential.width": 4.0}
    assert labels[3]["conductivity.fermi_energy"] == 0.8
    assert [p.conductivity.fermi_energy for p in st.points] == [0.6] * 3 + [0.8] * 3
    assert dict(st.points[2].potential.params)["width"] == 5.0
    assert st.conductivity.fermi_energy == 0.6  # the study itself is its first point
    assert st.to_dict()["sweep"] == {"conductivity.fermi_energy": [0.6, 0.8],
                                     "potential.width": [3.0, 4.0, 5.0]}


def test_a_sweep_of_shapes_gives_samples_of_each_shape():
    st = _study({"potential": {"shape": [[32, 32], [40, 48]]}},
                conductivity={**BASE["conductivity"], "fermi_energy": 0.7})
    assert [p.make_potential(0).shape for p in st.points] == [(32, 32), (40, 48)]


@pytest.mark.parametrize("sweep,fragment", [
    ({"potential": {"model": ["block", "anderson"]}}, "potential.model cannot be swept"),
    ({"conductivity": {"omega_min": [0.1]}}, "conductivity.omega_min cannot be swept"),
    ({"conductivity": {"fermi_energy": []}}, "must be a non-empty list"),
    ({"conductivity": {"fermi_energy": 0.5}}, "must be a non-empty list"),
    ({"conductivity": {"fermi_energy": [0.5, 0.5]}}, "lists a value twice"),
    ({"potential": {"width": [4.0, -1.0]}}, "sweep point potential.width = -1.0"),
    ([1, 2], "sweep must be a section"),
    ({}, "[sweep] must be a table"),
])
def test_bad_sweeps_are_study_errors(sweep, fragment):
    with pytest.raises(StudyError) as err:
        _study(sweep, conductivity={**BASE["conductivity"], "fermi_energy": 0.7})
    assert fragment in str(err.value)


def test_a_sweep_equals_separate_runs_bit_for_bit():
    st = _study({"conductivity": {"fermi_energy": [0.6, 0.9]},
                 "potential": {"width": [3.0, 4.0]}})
    ds = ms.run_ensemble(st, 2)
    assert ds.sigma_ll.dims == ("point", "realization", "omega")
    np.testing.assert_array_equal(ds.sweep_fermi_energy.values, [0.6, 0.6, 0.9, 0.9])
    np.testing.assert_array_equal(ds.sweep_width.values, [3.0, 4.0, 3.0, 4.0])
    for p, point in enumerate(st.points):
        alone = ms.run_ensemble(point, 2)
        for name in ("sigma_ll", "sigma_mb", "sigma_ll_mean", "sigma_ll_sem"):
            np.testing.assert_array_equal(ds[name].isel(point=p).values, alone[name].values)
    assert np.any(ds.sigma_ll_mean.values > 0)


def test_a_sweep_through_the_cli_with_a_store_and_report(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text(
        "[potential]\nmodel = 'block'\nshape = [48, 48]\nblock = 4\nwidth = 4.0\n"
        "[conductivity]\nomega_min = 0.02\nomega_max = 0.1\nn_omega = 3\n"
        "[ensemble]\nrealizations = 2\n[output]\nfigures = false\n"
        "[sweep]\nconductivity.fermi_energy = [0.6, 0.9]\n")
    store, out = tmp_path / "store", tmp_path / "out"
    assert main(["run", str(study), "--store", str(store), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "--- point 0: fermi_energy = 0.6" in printed
    assert "--- point 1: fermi_energy = 0.9" in printed
    results = xr.open_dataset(out / "results.nc")
    assert results.sizes["point"] == 2 and results.sizes["realization"] == 2
    assert len(list(store.glob("realization_*.nc"))) == 4
    reported, _ = report_store(store, tmp_path / "report")
    np.testing.assert_array_equal(reported.sigma_ll_mean.values, results.sigma_ll_mean.values)
    # a store is keyed to its sweep: another list of E_F is another study
    study.write_text(study.read_text().replace("[0.6, 0.9]", "[0.6, 0.8]"))
    assert main(["run", str(study), "--store", str(store), "--out", str(out), "-q"]) == 2
    assert "sweep" in capsys.readouterr().err


def test_validate_refuses_a_sweep():
    st = _study({"conductivity": {"fermi_energy": [0.6, 0.9]}})
    with pytest.raises(ms.InputError, match="remove \\[sweep\\]"):
        ms.validate(st)


def test_task_ids_keep_realization_seeds_at_every_point():
    st = _study({"conductivity": {"fermi_energy": [0.6, 0.9]}})
    ids = ensemble.task_ids(st, [0, 3])
    assert ids == [0, 3, ensemble.POINT_STRIDE, ensemble.POINT_STRIDE + 3]
    # the same realization has the same potential at every point of an E_F sweep
    np.testing.assert_array_equal(st.points[0].make_potential(3), st.points[1].make_potential(3))
