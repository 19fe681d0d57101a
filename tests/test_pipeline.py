"""The staged pipeline: each step alone, their composition, and every landscape solver."""

import numpy as np
import pytest

import mottscape as ms
from mottscape import disorder
from mottscape.basins import find_basins
from mottscape.conductivity import conductivity_curves
from mottscape.landscape import landscape_of, metric_landscape
from mottscape.mott import mott_scale, sigma_ll, sigma_mott_berezinskii
from mottscape.options import Options, allowed
from mottscape.pipeline import run
from mottscape.shell import pair_sample, shell_moments
from mottscape.statistics import level_statistics, xi_from_pairs

OMEGA = np.geomspace(0.02, 0.2, 5)


@pytest.fixture(scope="module")
def sample():
    return ms.make_sample(disorder.block((64, 64), block=4, width=4.0, seed=2))


@pytest.fixture(scope="module")
def result(sample):
    return run(sample, 0.8, OMEGA)


# ---------------------------------------------------------------------- Sample and Options
def test_sample_is_checked_once_and_frozen(sample):
    assert sample.potential.flags.writeable is False
    with pytest.raises(ValueError):
        sample.potential[0, 0] = 1.0
    # the frame: H + shift with shift = -min V, built once
    assert sample.shift == pytest.approx(-float(sample.potential.min()))
    assert sample.landscape_hamiltonian is sample.landscape_hamiltonian
    np.testing.assert_allclose(sample.landscape_hamiltonian.diagonal,
                               sample.hamiltonian.diagonal + sample.shift)
    assert ms.make_sample(sample) is sample


def test_sample_with_a_uniform_mass_map_is_the_uniform_operator():
    V = disorder.block((16, 16), block=4, width=4.0, seed=1)
    a = ms.make_sample(V, mass=0.5).hamiltonian.matrix().toarray()
    b = ms.make_sample(V, mass=np.full(V.shape, 0.5)).hamiltonian.matrix().toarray()
    np.testing.assert_allclose(a, b, rtol=1e-14)


def test_options_validate_in_one_place():
    o = Options(effective="scaled")
    assert o.replace(pairs="sigma_omega").pair_set == "sigma_omega"  # old spelling
    assert o.replace(solver="cg").solver == "scipy-cg"  # old name of scipy's CG
    with pytest.raises(ms.InputError, match=r"effective='scald'.*did you mean 'scaled'"):
        Options(effective="scald")
    with pytest.raises(ms.InputError, match=r"unknown option 'efective'.*'effective'"):
        Options.from_mapping({"efective": "vu"})
    with pytest.raises(ms.InputError, match="pair_window"):
        Options(pair_window=-1.0)
    attrs = o.to_attrs()
    assert attrs["option_effective"] == "scaled" and attrs["option_pair_window"] == "default"
    assert set(allowed("mott_scale")) == {"log", "lambertw"}


# ---------------------------------------------------------------------- each step alone
def test_landscape_step_solves_h_u_equals_one(sample):
    land = landscape_of(sample)
    r = 1.0 - sample.landscape_hamiltonian.matvec(land.u)
    assert np.linalg.norm(r) / np.sqrt(r.size) < 1e-9
    np.testing.assert_allclose(land.effective_potential, 1.0 / land.u - sample.shift)


def test_metric_step_scales_in_the_frame_of_the_solve(sample):
    land = landscape_of(sample)
    assert metric_landscape(land, "vu") is land
    w = metric_landscape(land, "scaled").effective_potential
    d = sample.ndim
    np.testing.assert_allclose(w + sample.shift,
                               (1 + d / 4) * (land.effective_potential + sample.shift))


def test_statistics_step(sample):
    land = landscape_of(sample)
    basins = find_basins(land, 0.8)
    hw = OMEGA.copy()
    stats = level_statistics(land, basins, 0.8, hw, Options())
    near = np.abs(basins.energies - 0.8)
    np.testing.assert_array_equal(stats.sources, np.flatnonzero(near <= hw.max()))
    assert stats.delta_xi == pytest.approx(1.0 / (stats.localization_volume * stats.nu))
    assert stats.nu == stats.nu_landscape
    basin_dos = level_statistics(land, basins, 0.8, hw, Options(dos="basins"))
    assert basin_dos.nu == pytest.approx(stats.sources.size / (64 * 64 * 2 * hw.max()))
    narrow = level_statistics(land, basins, 0.8, hw, Options(pair_window=0.05))
    assert narrow.window == 0.05 and narrow.sources.size <= stats.sources.size


def test_pair_and_moment_steps(sample):
    land = landscape_of(sample)
    basins = find_basins(land, 0.8)
    stats = level_statistics(land, basins, 0.8, OMEGA, Options())
    rho_w = mott_scale(OMEGA, stats.delta_xi, "log")
    pairs = pair_sample(land, basins, stats, OMEGA, rho_w, Options())
    c = basins.centers
    np.testing.assert_allclose(pairs.r, np.linalg.norm(c[pairs.distances.i]
                                                       - c[pairs.distances.j], axis=1))
    mom = shell_moments(pairs, stats, OMEGA, rho_w, rho_w, sample.grid.volume, Options())
    n = stats.sources.size
    for k in range(OMEGA.size):  # eq. 16 by hand
        shell = (pairs.distances.rho >= rho_w[k]) & (pairs.distances.rho <= rho_w[k] + 1)
        expected = sample.grid.volume * 2 * np.sum(pairs.r[shell] ** 2) / (n * (n - 1))
        assert mom.moment[k] == pytest.approx(expected)
        assert mom.n_pairs[k] == shell.sum()


def test_conductivity_step_flags_and_eq_17(result):
    stats, mom = result.statistics, result.moments
    cond = conductivity_curves(stats, mom, result.hbar_omega, {"fit": np.nan, "metric": 3.0},
                               result.sample.units, 2, Options(), sample_ok=True)
    assert cond.xi == 3.0  # no transfer matrix, the fit is undefined: the metric is used
    assert cond.xi_source == "metric"
    np.testing.assert_allclose(cond.sigma_eq17, sigma_ll(stats.nu, result.hbar_omega,
                                                       mom.moment, 2))
    np.testing.assert_array_equal(cond.flag_no_pairs, mom.n_pairs == 0)
    bad = conductivity_curves(stats, mom, result.hbar_omega, {"fit": 2.0, "metric": 3.0},
                              result.sample.units, 2, Options(xi="fit"), sample_ok=False)
    assert not bad.valid.any() and bad.xi == 2.0
    tm = conductivity_curves(stats, mom, result.hbar_omega, {"fit": 2.0, "metric": 3.0,
                                                             "transfer_matrix": 1.5},
                             result.sample.units, 2, Options(), sample_ok=True)
    assert tm.xi == 1.5 and tm.xi_source == "transfer_matrix"
    # eq. 1 with its own level spacing 1/(nu xi^d), whichever xi is used
    for c, xi in ((tm, 1.5), (bad, 2.0)):
        assert c.delta_xi_mb == pytest.approx(1.0 / (stats.nu * xi**2))
        np.testing.assert_allclose(c.sigma_mb, sigma_mott_berezinskii(
            stats.nu, xi, result.hbar_omega, 1.0 / (stats.nu * xi**2), 2))


def test_xi_from_pairs_recovers_a_uniform_metric():
    rho = np.linspace(2, 10, 50)
    assert xi_from_pairs(2.5 * rho, rho) == pytest.approx(2.5)
    assert np.isnan(xi_from_pairs(np.ones(2), np.ones(2) * 3))


# ---------------------------------------------------------------------- the composition
def test_composition_keeps_every_step_and_its_time(result):
    assert set(result.timings) == {"landscape", "basins", "statistics", "agmon", "moments",
                                   "conductivity", "pairs"}
    assert all(t >= 0 for t in result.timings.values())
    ds = result.to_dataset()
    np.testing.assert_array_equal(ds.sigma_eq17.values, result.conductivity.sigma_eq17)
    np.testing.assert_array_equal(ds.sigma_ll.values, result.pair_model.sigma)
    for name in ("percolating", "basin_filling", "landscape_converged", "landscape_residual"):
        assert name in ds.data_vars and "long_name" in ds[name].attrs
    assert ds.attrs["option_effective"] == "vu"


def test_array_first_wrappers_agree_with_the_staged_pipeline(sample, result):
    ds = ms.ac_conductivity(np.asarray(sample.potential), 0.8, OMEGA)
    np.testing.assert_array_equal(ds.sigma_ll.values, result.pair_model.sigma)
    old = ms.ac_conductivity(np.asarray(sample.potential), 0.8, OMEGA, pairs="sigma_omega",
                             mott_scale="lambertw", estimator="eq17")
    new = run(sample, 0.8, OMEGA, Options(pair_set="sigma_omega", mott_scale="lambertw",
                                          estimator="eq17"))
    np.testing.assert_array_equal(old.sigma_ll.values, new.conductivity.sigma_eq17)
    assert "sigma_pairs" not in old and new.pair_model is None


SOLVERS = [s for s in allowed("solver") if s != "banded"]


@pytest.mark.parametrize("solver", SOLVERS)
def test_pipeline_over_every_landscape_solver(sample, result, solver):
    """One suite over every backend (Kwant's solver fixture): the same sigma within tol."""
    other = run(sample, 0.8, OMEGA, Options(solver=solver, estimator="eq17"))
    assert other.landscape.converged
    np.testing.assert_allclose(other.landscape.u, result.landscape.u, rtol=1e-7)
    np.testing.assert_array_equal(other.moments.n_pairs, result.moments.n_pairs)
    np.testing.assert_allclose(other.conductivity.sigma_eq17, result.conductivity.sigma_eq17,
                               rtol=1e-6)


def test_banded_solver_in_1d():
    s = ms.make_sample(disorder.block((4096,), block=8, width=4.0, seed=1))
    a = run(s, 1.0, OMEGA, Options(solver="banded", estimator="eq17"))
    b = run(s, 1.0, OMEGA, Options(solver="direct", estimator="eq17"))
    np.testing.assert_allclose(a.landscape.u, b.landscape.u, rtol=1e-10)
    np.testing.assert_allclose(a.conductivity.sigma_eq17, b.conductivity.sigma_eq17, rtol=1e-8)
