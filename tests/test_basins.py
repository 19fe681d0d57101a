"""Basins of V_u at an energy (sec. II) and Sigma_omega."""

import numpy as np
import pytest

import mottscape as ms


def two_wells_1d():
    V = np.full(300, 3.0)
    V[50:70] = 0.0
    V[200:230] = 0.0
    return ms.solve_landscape(V, spacing=0.5)


def test_two_wells_give_two_basins_with_positions_and_volumes():
    land = two_wells_1d()
    E = 0.5 * (land.effective_potential.min() + 3.0)
    b = ms.find_basins(land, E)
    assert b.n == 2
    order = np.argsort(b.centers[:, 0])
    # Centres sit at the middle of each well (positions in length units).
    np.testing.assert_allclose(b.centers[order, 0], [60 * 0.5, 215 * 0.5], atol=0.5)
    # The wider well has the lower state and the larger basin.
    assert b.energies[order[1]] < b.energies[order[0]]
    assert b.volumes[order[1]] > b.volumes[order[0]]
    # Volumes are the number of cells below the level times the cell volume.
    assert b.volumes.sum() == pytest.approx(np.count_nonzero(land.effective_potential <= E) * 0.5)
    # Labels: 0 outside, i + 1 inside basin i.
    assert set(np.unique(b.labels)) == {0, 1, 2}
    assert not b.percolating


def test_energies_follow_landscape_rule():
    land = two_wells_1d()
    b = ms.find_basins(land, 1.0)
    np.testing.assert_allclose(b.energies, 1.25 * b.minima)


def test_sigma_omega_selects_states_near_fermi_energy():
    land = two_wells_1d()
    b = ms.find_basins(land, 2.0)
    ef = b.energies[0]
    assert list(b.sigma_omega(ef, 1e-9)) == [0]
    gap = abs(b.energies[1] - ef)
    assert sorted(b.sigma_omega(ef, gap * 1.01)) == [0, 1]


@pytest.mark.parametrize("shape", [(400,), (60, 60), (20, 20, 20)])
def test_percolation_flag(shape):
    """A low channel that crosses the sample makes its basin percolate (ref. [35])."""
    V = np.full(shape, 4.0)
    channel = tuple([slice(None)] + [slice(8, 12)] * (len(shape) - 1))
    V[channel] = 0.0
    land = ms.solve_landscape(V)
    b = ms.find_basins(land, 0.6)
    assert b.percolating
    V[channel] = 4.0
    V[tuple([slice(2, 8)] * len(shape))] = 0.0
    b = ms.find_basins(ms.solve_landscape(V), 1.5)
    assert b.n == 1 and not b.percolating


def test_periodic_merges_basins_across_the_boundary():
    V = np.full((40, 30), 4.0)
    V[:3, 10:15] = 0.0
    V[-3:, 10:15] = 0.0
    land = ms.solve_landscape(V, boundary="periodic")
    b = ms.find_basins(land, 1.0)
    assert b.n == 1
    # The weighted centre lies on the boundary (minimum image), not in the middle.
    assert min(b.centers[0, 0], 40 - b.centers[0, 0]) < 1.0


def test_watershed_split_separates_minima_of_one_component():
    V = np.full(200, 4.0)
    V[40:80] = 0.0
    V[58:62] = 1.0  # a low saddle inside one well
    land = ms.solve_landscape(V)
    level = 0.9 * land.effective_potential[58:62].max() + 0.1 * 4.0
    assert ms.find_basins(land, level).n == 1
    assert ms.find_basins(land, level, split="watershed").n == 2


@pytest.mark.parametrize("center", ["weighted", "centroid", "minimum"])
def test_center_options_agree_for_symmetric_well(center):
    V = np.full((31, 31), 4.0)
    V[10:21, 10:21] = 0.0
    b = ms.find_basins(ms.solve_landscape(V), 1.0, center=center)
    np.testing.assert_allclose(b.centers[0], [15.5, 15.5], atol=1e-6)


def test_energy_below_spectrum_gives_no_basins():
    land = two_wells_1d()
    b = ms.find_basins(land, land.effective_potential.min() - 1.0)
    assert b.n == 0 and b.centers.shape == (0, 1)


def test_bad_options_raise_input_error():
    land = two_wells_1d()
    with pytest.raises(ms.InputError, match="split"):
        ms.find_basins(land, 1.0, split="nope")
    with pytest.raises(ms.InputError, match="center"):
        ms.find_basins(land, 1.0, center="nope")
    with pytest.raises(ms.InputError, match="energy"):
        ms.find_basins(land, float("nan"))


def _periodic_landscape(vu):
    return ms.Landscape.from_effective_potential(vu, boundary="periodic")


@pytest.mark.parametrize("roll", [0, 5, 17, 31])
def test_periodic_percolation_does_not_depend_on_where_the_faces_cut(roll):
    """A cluster is judged on its unwrapped extent, wherever it crosses the faces."""
    n = 40
    short = np.full((n, n), 2.0)
    short[10:12, 0:24] = 0.5  # spans 60 % of the length: not percolating
    wrap = np.full((n, n), 2.0)
    wrap[20:22, :] = 0.5  # a band around the torus: percolating
    span = np.full((n, n), 2.0)
    span[5:7, 0:36] = 0.5  # 90 % of the length, not wrapping: percolating
    for vu, expected in ((short, False), (wrap, True), (span, True)):
        rolled = np.roll(np.roll(vu, roll, axis=1), 3 * roll, axis=0)
        b = ms.find_basins(_periodic_landscape(rolled), 1.0)
        assert b.percolating is expected, (roll, expected)
        assert b.n == 1  # the pieces cut by the faces are one basin
