"""Ensembles: reproducible whatever the number of workers, resumable from a store."""

import numpy as np
import pytest

import mottscape as ms
from mottscape import ensemble

STUDY = {
    "potential": {"model": "block", "shape": [48, 48], "seed": 11, "block": 4, "width": 4.0},
    "conductivity": {"fermi_energy": 0.8, "omega_min": 0.02, "omega_max": 0.2, "n_omega": 4},
}


def test_workers_do_not_change_the_numbers():
    study = ms.study_from_dict(STUDY)
    a = ensemble.run_ensemble(study, 3, workers=1)
    b = ensemble.run_ensemble(study, 3, workers=2)
    np.testing.assert_array_equal(a.sigma_ll, b.sigma_ll)
    np.testing.assert_allclose(a.sigma_ll_mean, a.sigma_ll.mean("realization"))
    assert list(a.realization.values) == [0, 1, 2]


def test_store_resumes(tmp_path, monkeypatch):
    study = ms.study_from_dict(STUDY)
    first = ensemble.run_ensemble(study, [0, 1], store=tmp_path)
    assert (tmp_path / "realization_00001.nc").exists()

    def boom(*args, **kwargs):
        raise AssertionError("a stored realization was recomputed")

    monkeypatch.setattr(ensemble, "realization_task", boom)
    again = ensemble.run_ensemble(study, [0, 1], store=tmp_path)
    np.testing.assert_array_equal(first.sigma_ll, again.sigma_ll)


def test_realization_seeds_are_independent_of_the_subset():
    study = ms.study_from_dict(STUDY)
    alone = ensemble.run_ensemble(study, [2])
    together = ensemble.run_ensemble(study, 3)
    np.testing.assert_array_equal(alone.sigma_ll.sel(realization=2),
                                  together.sigma_ll.sel(realization=2))


@pytest.mark.parametrize("bad", [0, [1, 1], [-1]])
def test_bad_realizations(bad):
    with pytest.raises(ms.InputError, match="realizations"):
        ensemble.run_ensemble(ms.study_from_dict(STUDY), bad)
