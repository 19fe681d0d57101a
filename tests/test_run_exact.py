"""``[conductivity] exact = true``: the exact Kubo-Greenwood reference of every realization of
a run, on bins centred on the study's frequencies, aggregated like sigma_LL (issue 9 item 5)."""

from __future__ import annotations

import numpy as np
import pytest

import mottscape as ms
from mottscape.cli import main
from mottscape.config import StudyError

STUDY = {
    "potential": {"model": "block", "shape": [48, 48], "seed": 4, "block": 4, "width": 4.0},
    "conductivity": {"fermi_energy": 0.8, "omega_min": 0.03, "omega_max": 0.2, "n_omega": 3,
                     "exact": True},
}


def test_bins_are_centred_on_the_frequencies():
    st = ms.study_from_dict(STUDY)
    edges = st.omega_edges()
    assert edges.size == st.omegas().size + 1
    np.testing.assert_allclose(np.sqrt(edges[:-1] * edges[1:]), st.omegas(), rtol=1e-12)


def test_each_realization_carries_the_exact_sigma_of_its_own_sample():
    st = ms.study_from_dict(STUDY)
    ds = ms.run_ensemble(st, 2)
    assert ds.sigma_exact.dims == ("realization", "omega")
    for r in range(2):
        ref = ms.kubo_greenwood(st.make_potential(r), 0.8, st.omega_edges())
        np.testing.assert_allclose(ds.sigma_exact.isel(realization=r), ref.sigma, rtol=1e-10)
    np.testing.assert_allclose(ds.sigma_exact_mean, ds.sigma_exact.mean("realization"))
    np.testing.assert_array_equal(ds.omega_lower.values, st.omega_edges()[:-1])
    assert np.any(ds.sigma_exact_mean.values > 0)


def test_the_cli_prints_the_exact_column(tmp_path, capsys):
    path = tmp_path / "s.toml"
    path.write_text("[potential]\nmodel = 'block'\nshape = [48, 48]\nblock = 4\nwidth = 4.0\n"
                    "[conductivity]\nfermi_energy = 0.8\nomega_min = 0.03\nomega_max = 0.2\n"
                    "n_omega = 3\nexact = true\n[output]\nfigures = false\n")
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 0
    assert "sigma_exact" in capsys.readouterr().out
    assert "sigma_exact" in ms.read_netcdf(tmp_path / "o" / "results.nc")


def test_one_frequency_cannot_have_exact_bins():
    bad = {**STUDY, "conductivity": {"fermi_energy": 0.8, "omega": [0.1], "exact": True}}
    with pytest.raises(StudyError, match="at least two frequencies"):
        ms.study_from_dict(bad)
