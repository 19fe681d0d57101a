"""The whole pipeline: eq. 17 and its Mott limit (eqs. 18-21), invariants of sigma_ll, units."""

import math

import numpy as np
import pytest

import mottscape as ms
from mottscape import mott


def point_wells(d, L, n, seed, V0=1.0, ef=0.5):
    """A flat barrier V_u = V0 with n one-cell wells: a uniform Agmon metric w = sqrt(V0 - E_F)
    between point-like basins whose states all sit at E_F ((1 + d/4) min V_u = E_F)."""
    rng = np.random.default_rng(seed)
    vu = np.full((L,) * d, V0)
    flat = rng.choice(vu.size, size=n, replace=False)
    vu.flat[flat] = (ef - 1e-9) / (1 + d / 4)
    return ms.Landscape.from_effective_potential(vu, boundary="periodic")


@pytest.mark.parametrize("d,L,n,V0", [(1, 10**6, 10000, 0.52), (2, 240, 350, 0.6)])
def test_uniform_metric_reproduces_mott_limit(d, L, n, V0):
    """With rho_ij = r_ij / xi the pipeline's E_omega(X^2) is the Mott shell (eqs. 20-21) and
    sigma_LL is eq. (17) with it.

    Point-like basins in a flat barrier: the Agmon distance is w = sqrt(V0 - E_F) times the
    distance between the basins' *boundaries*, so rho_ij = (r_ij - delta)/xi with xi = 1/w and
    an offset delta of about one cell (the basins' own size). The wells are sparse because a
    geodesic crosses the basins on its way at no cost: with dense wells rho_ij < r_ij / xi, a
    genuine departure of the LL picture from Mott's, not a numerical error."""
    ef = 0.5
    land = point_wells(d, L, n, seed=d, V0=V0, ef=ef)
    xi_true = 1 / math.sqrt(V0 - ef)
    probe = ms.run_pipeline(None, ef, [1e-3], landscape=land, estimator="eq17")
    delta = float(probe.dataset.delta_xi)
    rho_targets = np.array([12.0, 10.0, 8.0]) if d == 1 else np.array([9.0, 7.5, 6.0])
    hw = 2 * delta * np.exp(-rho_targets)  # eq. 12 inverted
    pipe = ms.run_pipeline(None, ef, hw, landscape=land, mott_scale_method="log",
                           estimator="eq17")
    ds = pipe.dataset
    np.testing.assert_allclose(ds.rho_omega, rho_targets, rtol=1e-12)
    assert np.all(ds.n_states == int(ds.n_basins)) and int(ds.n_basins) > 0.8 * n
    # The metric: r = xi rho + offset over the computed pairs.
    r = pipe.pair_euclidean()
    far = pipe.pairs.rho > 2
    xi_fit, offset = np.polyfit(pipe.pairs.rho[far], r[far], 1)
    assert xi_fit == pytest.approx(xi_true, rel=0.03)  # 2 % shortcuts through wells in 2D
    assert 0 <= offset < 1.5  # cells: half a cell at each end, plus wells crossed (1D)
    # E_omega(X^2): the Mott shell [R, R + xi] shifted by the offset (eq. 20).
    S = mott.unit_sphere_area(d)
    lo, hi = xi_true * rho_targets + offset, xi_true * (rho_targets + 1) + offset
    expected = S * (hi ** (d + 2) - lo ** (d + 2)) / (d + 2)
    npairs = ds.n_pairs.values
    assert np.all(npairs > 300)
    np.testing.assert_allclose(ds.moment, expected, rtol=3.5 / np.sqrt(npairs.min()))
    # ... which is eq. (21) when R >> xi, offset:
    eq21 = mott.mott_limit_moment(xi_true, rho_targets, d)
    np.testing.assert_allclose(ds.moment, eq21, rtol=(d + 3) / rho_targets.min())
    # eq. 17 exactly, and eq. 1 up to the documented prefactor S_d/(4d) and shell correction.
    nu = float(ds.nu)
    np.testing.assert_allclose(ds.sigma_ll, math.pi / (2 * d) * nu**2 * hw**2 * ds.moment)
    # eq. 1 is self-contained: its level spacing is 1/(nu xi^d) with its own xi (not the
    # landscape's 1/(nu V_F)), in the logarithm and in the Mott length R_omega (eq. 18).
    xi = float(ds.xi)
    delta_mb = float(ds.delta_xi_mb)
    assert delta_mb == pytest.approx(1.0 / (nu * xi**d), rel=1e-12)
    log_mb = np.log(2 * delta_mb / hw)
    np.testing.assert_allclose(ds.mott_length, xi * log_mb, rtol=1e-12)
    eq21_used = mott.mott_limit_moment(xi, log_mb, d)
    ratio = ds.sigma_ll / ds.sigma_mb / (S / (4 * d))
    np.testing.assert_allclose(ratio, ds.moment / eq21_used, rtol=1e-9)


def block_sample(shape, seed=3):
    return ms.disorder.block(shape, block=4, width=4.0, seed=seed)


OMEGA = np.geomspace(0.02, 0.2, 6)


def test_dataset_contents_and_units():
    V = block_sample((96, 96))
    ds = ms.ac_conductivity(V, fermi_energy=0.7, omega=OMEGA)
    for name in ("sigma_ll", "sigma_eq17", "sigma_pairs", "sigma_mb", "rho_omega", "nu",
                 "delta_xi", "xi", "n_states", "n_pairs", "valid", "moment", "omega_lower"):
        assert name in ds
    # the recommended estimator is the pair model, binned around each frequency
    np.testing.assert_array_equal(ds.sigma_ll, ds.sigma_pairs)
    assert ds.attrs["option_estimator"] == "pairs"
    assert np.all((ds.omega_lower < ds.omega) & (ds.omega < ds.omega_upper))
    assert ds.sigma_ll.attrs["units"] == "e^2/hbar"
    assert np.all(ds.sigma_ll >= 0)
    assert np.all(np.diff(ds.rho_omega) < 0)  # the Mott scale shrinks as omega grows
    assert np.all(np.diff(ds.n_states) >= 0)  # Sigma_omega grows with omega
    assert float(ds.nu) == pytest.approx(float(ds.nu_landscape))
    assert float(ds.delta_xi) == pytest.approx(1 / (float(ds.localization_volume) *
                                                    float(ds.nu)))


def close(b, a, factor=1.0, rtol=1e-6):
    """b == factor * a bin by bin, to rtol of the largest bin: the pair model's box solves
    are iterative (ARPACK), and a nearly degenerate pair's mixing angle amplifies their
    tolerance by 1/splitting, in bins a million times below the largest."""
    np.testing.assert_allclose(b, factor * a, rtol=rtol,
                               atol=rtol * float(np.nanmax(np.abs(factor * a))))


def test_constant_energy_shift_is_a_symmetry():
    V = block_sample((64, 64))
    a = ms.ac_conductivity(V, 0.7, OMEGA)
    b = ms.ac_conductivity(V + 2.5, 3.2, OMEGA)
    close(b.sigma_ll, a.sigma_ll, rtol=1e-7)
    close(b.sigma_eq17, a.sigma_eq17, rtol=1e-7)
    np.testing.assert_allclose(b.sigma_mb, a.sigma_mb, rtol=1e-7)


@pytest.mark.parametrize("lam", [0.5, 2.0])
def test_length_rescaling_follows_dimensional_analysis(lam):
    """spacing -> lam h, energies -> E / lam^2: H -> H / lam^2, sigma -> lam^(2-d) sigma."""
    V = block_sample((64, 64))
    a = ms.ac_conductivity(V, 0.7, OMEGA)
    b = ms.ac_conductivity(V / lam**2, 0.7 / lam**2, OMEGA / lam**2, spacing=lam)
    np.testing.assert_allclose(b.rho_omega, a.rho_omega, rtol=1e-8)
    close(b.sigma_ll, a.sigma_ll)  # d = 2: lam^0
    close(b.sigma_eq17, a.sigma_eq17)
    V1 = np.repeat(np.random.default_rng(1).uniform(0, 4, 3000), 6)
    a1 = ms.ac_conductivity(V1, 0.3, OMEGA / 10)
    b1 = ms.ac_conductivity(V1 / lam**2, 0.3 / lam**2, OMEGA / 10 / lam**2, spacing=lam)
    close(b1.sigma_ll, a1.sigma_ll, factor=lam)


def test_mass_rescaling():
    """mass -> mu m with energies / mu gives H / mu: sigma unchanged."""
    V = block_sample((64, 64))
    mu = 3.0
    a = ms.ac_conductivity(V, 0.7, OMEGA)
    b = ms.ac_conductivity(V / mu, 0.7 / mu, OMEGA / mu, mass=mu)
    close(b.sigma_ll, a.sigma_ll)
    close(b.sigma_eq17, a.sigma_eq17)


def test_semiconductor_units_are_a_change_of_units():
    """1 nm cells, m = m_e: the lattice problem in units of K = hbar^2/(2 m_e nm^2)."""
    K = ms.SEMICONDUCTOR.kinetic
    V = block_sample((64, 64)) * K  # eV
    omega_rad = OMEGA * K / ms.SEMICONDUCTOR.hbar
    s = ms.ac_conductivity(V, 0.7 * K, omega_rad, spacing=1.0, units="semiconductor")
    lat = ms.ac_conductivity(V / K, 0.7, OMEGA)
    assert s.sigma_ll.attrs["units"] == "S"
    close(s.sigma_ll, lat.sigma_ll, factor=2.434134807e-4)


@pytest.mark.parametrize("shape", [(3000,), (64, 64), (24, 24, 24)])
def test_pipeline_runs_in_every_dimension(shape):
    rng = np.random.default_rng(5)
    V = rng.uniform(0, 4, shape)
    ef = {1: 0.8, 2: 0.9, 3: 1.8}[len(shape)]
    pipe = ms.run_pipeline(V, ef, np.geomspace(0.01, 0.3, 5), estimator="eq17")
    ds = pipe.dataset
    assert ds.attrs["ndim"] == len(shape)
    assert int(ds.n_basins) > 5
    assert np.all(np.isfinite(ds.rho_omega) | ds.flag_rho_omega_small)
    g = ms.conduction_network(pipe, ds.sizes["omega"] - 1)
    assert g.number_of_edges() == int(ds.n_pairs[-1])
    for _a, _b, data in g.edges(data=True):
        assert float(ds.rho_omega[-1]) <= data["rho"] <= float(ds.rho_omega[-1]) + 1


def test_percolating_sample_is_flagged_not_hidden():
    V = block_sample((64, 64))
    with pytest.warns(ms.RegimeWarning, match="percolate"):
        ds = ms.ac_conductivity(V, 2.5, OMEGA)  # far above the band tail: V_u <= E_F percolates
    assert bool(ds["percolating"])
    assert not ds.valid.any()


@pytest.mark.parametrize("omega,match", [([0.1, 0.05], "increasing"), ([-1.0], "> 0"),
                                         ([], "non-empty"), ([np.nan], "finite")])
def test_bad_omega(omega, match):
    with pytest.raises(ms.InputError, match=match):
        ms.ac_conductivity(np.ones(10), 0.5, omega)


def test_fermi_energy_below_spectrum():
    with pytest.raises(ms.InputError, match="below the bottom"):
        ms.ac_conductivity(block_sample((32, 32)), -1.0, OMEGA)


def test_network_views_agree():
    V = block_sample((96, 96))
    pipe = ms.run_pipeline(V, 0.7, OMEGA, estimator="eq17")
    k = len(OMEGA) - 1
    g = ms.conduction_network(pipe, k)
    m = ms.network_matrix(pipe, k)
    assert abs(m - m.T).max() == 0
    assert m.nnz == 2 * g.number_of_edges()
    # states="sigma_omega": the vertices are exactly Sigma_omega at that omega, and the graph
    # and the matrix views agree there too
    sizes = []
    for kk in range(len(OMEGA)):
        lit = ms.conduction_network(pipe, kk, states="sigma_omega")
        members = pipe.basins.sigma_omega(pipe.fermi_energy, float(pipe.hbar_omega[kk]))
        assert set(lit.nodes) == set(members.tolist())
        sizes.append(len(members))
        full = ms.conduction_network(pipe, kk)
        assert set(lit.nodes) <= set(full.nodes) and set(lit.edges) <= set(full.edges)
        lm = ms.network_matrix(pipe, kk, states="sigma_omega")
        assert lm.nnz == 2 * lit.number_of_edges()
    assert min(sizes) < g.number_of_nodes()  # the option changes the answer here
    with pytest.raises(ms.InputError, match="omega_index"):
        ms.conduction_network(pipe, 99)


# ---------------------------------------------------------------------- the estimator
def test_estimator_pairs_is_the_default_and_eq17_is_one_option_away():
    V = block_sample((64, 64))
    default = ms.ac_conductivity(V, 0.7, OMEGA)
    paper = ms.ac_conductivity(V, 0.7, OMEGA, estimator="eq17")
    both = ms.ac_conductivity(V, 0.7, OMEGA, estimator="eq17", pair_model=True)
    np.testing.assert_array_equal(default.sigma_ll, default.sigma_pairs)
    # eq. 17 is the same numbers whichever estimator is sigma_ll
    np.testing.assert_array_equal(default.sigma_eq17, paper.sigma_ll)
    np.testing.assert_array_equal(paper.sigma_ll, paper.sigma_eq17)
    assert "sigma_pairs" not in paper and "omega_lower" not in paper
    np.testing.assert_array_equal(both.sigma_ll, paper.sigma_ll)
    np.testing.assert_array_equal(both.sigma_pairs, default.sigma_pairs)
    # valid: eq. 17's sampling flags (no pair in its shell) do not invalidate the pair model
    assert paper.flag_no_pairs.any()
    np.testing.assert_array_equal(default.valid, ~default.flag_rho_omega_small)
    np.testing.assert_array_equal(paper.valid, ~(paper.flag_rho_omega_small
                                                 | paper.flag_sigma_omega_tiny
                                                 | paper.flag_no_pairs))
    with pytest.raises(ms.InputError, match="estimator='eq17'"):
        ms.ac_conductivity(V, 0.7, OMEGA, pair_model=False)
    with pytest.raises(ms.InputError, match=r"estimator='pair' is not known.*'pairs'"):
        ms.ac_conductivity(V, 0.7, OMEGA, estimator="pair")


def test_a_single_frequency_gets_a_quarter_decade_bin():
    from mottscape.pairs import pair_model_on

    V = block_sample((64, 64))
    w = 0.1
    pipe = ms.run_pipeline(V, 0.7, [w])
    ds = pipe.dataset.isel(omega=0)
    assert float(ds.omega_upper / ds.omega_lower) == pytest.approx(10**0.25)
    assert float(np.sqrt(ds.omega_upper * ds.omega_lower)) == pytest.approx(w)
    # the same pairs binned on an explicit bin give the same sigma
    edges = np.array([float(ds.omega_lower), float(ds.omega_upper)])
    again = pair_model_on(ms.run_pipeline(V, 0.7, [w], estimator="eq17"), edges)
    np.testing.assert_allclose(float(ds.sigma_ll), again.sigma[0], rtol=1e-12)
    assert float(ds.sigma_ll) > 0


def test_a_given_landscape_asks_for_eq17():
    land = point_wells(2, 32, 10, seed=1)
    with pytest.raises(ms.InputError, match="estimator='eq17'"):
        ms.run_pipeline(None, 0.5, OMEGA, landscape=land)
    assert "sigma_ll" in ms.run_pipeline(None, 0.5, OMEGA, landscape=land,
                                         estimator="eq17").dataset
