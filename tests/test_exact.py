"""Tests of the exact Kubo-Greenwood reference (eqs. 4-5), mottscape.exact."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla

from mottscape.errors import InputError
from mottscape.exact import (
    _blas_single_thread,
    _fermi,
    _velocity_x2,
    count_eigenvalues_below,
    exact_dos,
    exact_eigenstates,
    kubo_greenwood,
    lowest_eigenvalues,
    position_matrix,
)
from mottscape.hamiltonian import build_hamiltonian
from mottscape.units import get_units


# ----------------------------------------------------------------------------- reference
def brute_force(V, fermi_energy, energy_edges, temperature=0.0, spacing=1.0, mass=1.0,
                boundary="dirichlet", units="lattice"):
    """Full dense diagonalisation and an explicit double loop over all pairs of the formula.

    Works in energies: bin edges ``energy_edges = hbar * omega_edges``; returns the internal
    sigma (units e^2/hbar * length^(2-d)) and the pair counts at T = 0.
    """
    ham = build_hamiltonian(V, spacing=spacing, mass=mass, boundary=boundary, units=units)
    g = ham.grid
    d = g.ndim
    with _blas_single_thread():
        E, P = sla.eigh(ham.matrix().toarray())
    if boundary == "dirichlet":
        mesh = np.meshgrid(*[g.coordinates(a) for a in range(d)], indexing="ij")
        X = [P.T @ (m.ravel()[:, None] * P) for m in mesh]
        X2 = sum(x * x for x in X)
    else:  # velocity form, from its definition with the dense commutator
        X2 = np.zeros((E.size, E.size))
        Hd = ham.matrix().toarray()
        idx = np.indices(g.shape).reshape(d, -1)
        for a in range(d):
            disp = idx[a][None, :] - idx[a][:, None]  # x_q - x_p in cells
            n = g.shape[a]
            disp = disp - n * np.round(disp / n)  # minimum image
            C = Hd * disp * g.spacing[a]
            J = P.T @ C @ P
            dE = E[:, None] - E[None, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                X2 += np.where(dE != 0, (J / dE) ** 2, 0.0)
    f = _fermi(E, fermi_energy, temperature)
    out = np.zeros(len(energy_edges) - 1)
    npairs = np.zeros(len(energy_edges) - 1, dtype=int)
    for i in range(E.size):
        for j in range(E.size):
            w = E[j] - E[i]
            if w < energy_edges[0] or w >= energy_edges[-1] or f[i] - f[j] <= 0:
                continue
            k = np.searchsorted(energy_edges, w, side="right") - 1
            out[k] += (2 * np.pi * w / (d * g.volume) * (f[i] - f[j]) * X2[j, i]
                       / (energy_edges[k + 1] - energy_edges[k]))
            npairs[k] += 1
    return out, npairs


def block(shape, size, rng, vmax=4.0):
    V = rng.uniform(0.0, vmax, tuple(-(-n // size) for n in shape))
    for ax in range(len(shape)):
        V = np.repeat(V, size, axis=ax)
    return V[tuple(slice(0, n) for n in shape)]


SYSTEMS = {
    "1d": (lambda rng: block((160,), 4, rng), 0.1, ("dense", "tridiagonal", "segments")),
    "2d": (lambda rng: rng.uniform(0, 4, (13, 11)), 0.1, ("dense", "shift-invert")),
    "3d": (lambda rng: rng.uniform(0, 6, (6, 5, 5)), 0.1, ("dense", "shift-invert")),
}


def _cases():
    for name, (_, _, methods) in SYSTEMS.items():
        for m in methods:
            for T in (0.0, 0.05):
                yield name, m, T


@pytest.mark.parametrize(("name", "method", "temperature"), list(_cases()))
def test_agrees_with_brute_force_to_round_off(name, method, temperature):
    make, frac, _ = SYSTEMS[name]
    V = make(np.random.default_rng(3))
    w = np.linalg.eigvalsh(build_hamiltonian(V).matrix().toarray())
    ef = float(w[int(frac * V.size)]) + 1e-3  # in the lower part of the spectrum
    edges = np.geomspace(2e-3, 0.6, 11)
    kw = {"segment": 20, "padding": 60} if method == "segments" else {}
    ds = kubo_greenwood(V, ef, edges, temperature=temperature, method=method, **kw)
    ref, npairs = brute_force(V, ef, edges, temperature)
    assert ref.max() > 0
    np.testing.assert_allclose(ds.sigma.values, ref, rtol=1e-10, atol=1e-12 * ref.max())
    assert ds.attrs["method"] == method
    if temperature == 0.0:
        np.testing.assert_array_equal(ds.n_pairs.values, npairs)
    assert np.all(ds.sigma.values >= 0)


def test_dataset_layout_and_units():
    V = block((120,), 4, np.random.default_rng(0))
    edges = np.geomspace(1e-3, 0.5, 6)
    ds = kubo_greenwood(V, 0.6, edges)
    np.testing.assert_allclose(ds.omega.values, np.sqrt(edges[:-1] * edges[1:]))
    np.testing.assert_array_equal(ds.omega_lower.values, edges[:-1])
    assert ds.sigma.attrs["units"] == get_units("lattice").sigma_unit(1)
    assert ds.attrs["temperature"] == 0.0
    lo, hi = ds.attrs["window"]
    assert lo == pytest.approx(0.6 - 0.5) and hi == pytest.approx(0.6 + 0.5)
    n = int(ds.n_states)
    w = np.linalg.eigvalsh(build_hamiltonian(V).matrix().toarray())
    assert n == np.count_nonzero((w >= lo) & (w <= hi))
    assert float(ds.dos) == pytest.approx(n / (120 * (hi - lo)))


def test_semiconductor_units_convert_with_hbar_and_sigma_factor():
    rng = np.random.default_rng(5)
    V = 0.05 * rng.uniform(0, 4, (10, 9))  # eV
    u = get_units("semiconductor")
    ham = build_hamiltonian(V, spacing=2.0, mass=0.2, units=u)
    w = np.linalg.eigvalsh(ham.matrix().toarray())
    ef = float(w[6] + w[7]) / 2
    e_edges = np.geomspace(1e-4, 0.05, 7)  # eV
    omega_edges = e_edges / u.hbar  # rad/s
    ds = kubo_greenwood(V, ef, omega_edges, spacing=2.0, mass=0.2, units="semiconductor")
    ref, _ = brute_force(V, ef, e_edges, spacing=2.0, mass=0.2, units="semiconductor")
    np.testing.assert_allclose(ds.sigma.values, ref * u.sigma_factor(2), rtol=1e-10,
                               atol=1e-14 * ref.max() * u.sigma_factor(2))
    assert ds.sigma.attrs["units"] == "S"


def test_segments_match_whole_chain():
    V = block((3000,), 8, np.random.default_rng(11))
    edges = np.geomspace(1e-5, 0.08, 15)
    whole = kubo_greenwood(V, 0.25, edges, method="tridiagonal")
    seg = kubo_greenwood(V, 0.25, edges, method="segments")
    assert int(seg.n_states) == int(whole.n_states) > 20
    assert seg.attrs["n_segments"] > 5
    np.testing.assert_allclose(seg.sigma.values, whole.sigma.values, rtol=1e-9,
                               atol=1e-12 * whole.sigma.values.max())
    np.testing.assert_array_equal(seg.n_pairs.values, whole.n_pairs.values)


def test_segment_padding_sets_the_pair_cutoff():
    """Sparse window states: a short padding drops the pairs that carry sigma; the default
    padding (>= twice the mean distance between window states) recovers round-off."""
    V = block((4000,), 8, np.random.default_rng(13))
    edges = np.geomspace(1e-6, 0.08, 15)
    whole = kubo_greenwood(V, 0.3, edges, method="tridiagonal")
    scale = whole.sigma.values.max()
    assert scale > 0

    def err(**kw):
        seg = kubo_greenwood(V, 0.3, edges, method="segments", **kw)
        return np.abs(seg.sigma.values - whole.sigma.values).max() / scale

    assert err(segment=40, padding=12) > 1e-2
    assert err(segment=40, padding=32) < 1e-7
    assert err() < 1e-12


def test_shift_invert_slices_match_dense_2d():
    V = block((40, 40), 4, np.random.default_rng(2))
    ham = build_hamiltonian(V)
    with _blas_single_thread():
        w = np.linalg.eigvalsh(ham.matrix().toarray())
    lo, hi = float(w[40] + w[41]) / 2, float(w[200] + w[201]) / 2
    Ed, Pd = exact_eigenstates(ham, lo, hi, method="dense")
    Es, Ps = exact_eigenstates(ham, lo, hi, method="shift-invert")
    assert Ed.size == 160  # several slices of SLICE_STATES
    np.testing.assert_allclose(Es, Ed, atol=1e-11)
    # the same states: |<dense|shift-invert>| = 1 (non-degenerate levels)
    np.testing.assert_allclose(np.abs(np.sum(Pd * Ps, axis=0)), 1.0, atol=1e-8)
    ef = 0.5 * (lo + hi)
    edges = np.geomspace(1e-3, 0.45 * (hi - lo), 9)
    a = kubo_greenwood(V, ef, edges, method="dense")
    b = kubo_greenwood(V, ef, edges, method="shift-invert")
    assert b.attrs["factorisations"] >= 2
    np.testing.assert_allclose(b.sigma.values, a.sigma.values, rtol=1e-8,
                               atol=1e-12 * a.sigma.values.max())


def test_gaps_left_by_the_first_shifts_are_closed_when_the_slices_are_merged():
    """The first shifts are independent pieces; a gap between them (here: one shift's states
    withheld, as if that piece had covered nothing) is closed by new shifts at the merge, and
    the states are those of dense diagonalisation."""
    from mottscape.exact._windows import Slice, complete_slices, first_shifts, solve_shift

    V = block((40, 40), 4, np.random.default_rng(2))
    ham = build_hamiltonian(V)
    A = ham.matrix("csc")
    with _blas_single_thread():
        w = np.linalg.eigvalsh(A.toarray())
    lo, hi = float(w[40] + w[41]) / 2, float(w[200] + w[201]) / 2
    shifts = first_shifts(lo, hi, 160)
    assert len(shifts) == 3
    slices = [solve_shift(A, s, h, density, (lo, hi)) for s, h, density in shifts]
    for s in slices:  # a shift holds every level of the window inside what it covers
        a, b = s.covered
        want = w[(w > a) & (w < b) & (w >= lo) & (w <= hi)]
        assert want.size > 0 and np.all((s.energies >= lo) & (s.energies <= hi))
        assert np.abs(s.energies[:, None] - want[None, :]).min(axis=0).max() < 1e-10
    empty = Slice(np.zeros(0), np.zeros((A.shape[0], 0)), (shifts[1][0], shifts[1][0]), 0.0)
    got, vec, extra = complete_slices(A, lo, hi, 160, [slices[0], empty, slices[2]])
    assert extra >= 1
    np.testing.assert_allclose(got, w[41:201], atol=1e-10)
    np.testing.assert_allclose(vec.T @ vec, np.eye(160), atol=1e-8)  # duplicates merged


def test_sigma_nonnegative_and_bins_additive():
    V = block((400,), 5, np.random.default_rng(4))
    edges = np.geomspace(1e-3, 0.4, 9)
    fine = np.sort(np.concatenate([edges, np.sqrt(edges[:-1] * edges[1:])]))
    for T in (0.0, 0.03):
        a = kubo_greenwood(V, 0.7, edges, temperature=T)
        b = kubo_greenwood(V, 0.7, fine, temperature=T)
        assert np.all(a.sigma.values >= 0) and np.all(b.sigma.values >= 0)
        integral_a = a.sigma.values * np.diff(edges)
        integral_b = (b.sigma.values * np.diff(fine)).reshape(-1, 2).sum(axis=1)
        np.testing.assert_allclose(integral_a, integral_b, rtol=1e-12,
                                   atol=1e-14 * integral_a.max())
        np.testing.assert_array_equal(a.n_pairs.values,
                                      b.n_pairs.values.reshape(-1, 2).sum(axis=1))


def test_low_temperature_tends_to_zero_temperature():
    V = block((300,), 5, np.random.default_rng(6))
    edges = np.geomspace(1e-3, 0.4, 7)
    w = np.linalg.eigvalsh(build_hamiltonian(V).matrix().toarray())
    ef = float(w[10] + w[11]) / 2  # midway in a gap: T -> 0 converges exponentially
    gap = float(w[11] - w[10]) / 2
    zero = kubo_greenwood(V, ef, edges).sigma.values
    diffs = []
    for T in (gap / 2, gap / 5, gap / 20):
        s = kubo_greenwood(V, ef, edges, temperature=T).sigma.values
        diffs.append(np.abs(s - zero).max() / zero.max())
    assert diffs[0] > diffs[1] > diffs[2]
    assert diffs[2] < 1e-6


def test_clean_chain_parity_selection_rule():
    """V = 0, Dirichlet: <j|x|i> vanishes between states of equal parity."""
    n = 40
    E, P = exact_eigenstates(np.zeros(n), -1.0, 5.0)
    assert E.size == n
    X = position_matrix(P, build_hamiltonian(np.zeros(n)).grid)[0]
    parity = np.arange(n) % 2  # state k (from 0) has parity (-1)^k about the chain centre
    same = parity[:, None] == parity[None, :]
    np.fill_diagonal(same, False)
    assert np.abs(X[same]).max() < 1e-12
    assert np.abs(X[~same & ~np.eye(n, dtype=bool)]).min() > 1e-6
    # Hence a bin holding only same-parity transitions (2 levels apart) carries no weight.
    ef = float(E[19] + E[20]) / 2
    k = 19
    e2 = float(E[k + 2] - E[k])  # transition 19 -> 21, same parity
    e1 = float(E[k + 1] - E[k])
    lo, hi = 0.5 * (e1 + e2), 1.5 * e2
    others = [E[j] - E[i] for i in range(20) for j in range(20, n)
              if lo <= E[j] - E[i] < hi and (j - i) % 2 == 1]
    if not others:
        ds = kubo_greenwood(np.zeros(n), ef, [lo, hi])
        assert int(ds.n_pairs[0]) > 0
        assert float(ds.sigma[0]) < 1e-14


def test_velocity_form_equals_position_form_dirichlet():
    rng = np.random.default_rng(8)
    V = rng.uniform(0, 3, (9, 8))
    mass = rng.uniform(0.5, 2.0, (9, 8))
    ham = build_hamiltonian(V, spacing=(1.0, 0.7), mass=mass)
    E, P = np.linalg.eigh(ham.matrix().toarray())
    X = position_matrix(P, ham.grid, origin="grid")
    x2 = (X * X).sum(axis=0)
    v2 = _velocity_x2(ham, P, P, E[None, :] - E[:, None])
    off = ~np.eye(E.size, dtype=bool)
    np.testing.assert_allclose(v2[off], x2[off], rtol=1e-7, atol=1e-9 * x2.max())


def test_periodic_uses_velocity_form():
    rng = np.random.default_rng(9)
    V = rng.uniform(0, 4, (8, 9))
    edges = np.geomspace(1e-3, 0.8, 8)
    ds = kubo_greenwood(V, 2.0, edges, boundary="periodic")
    ref, _ = brute_force(V, 2.0, edges, boundary="periodic")
    assert ref.max() > 0
    np.testing.assert_allclose(ds.sigma.values, ref, rtol=1e-8, atol=1e-12 * ref.max())
    assert "velocity" in ds.attrs["matrix_elements"]
    # 1D ring: the tridiagonal methods do not apply, dense does
    ds1 = kubo_greenwood(rng.uniform(0, 4, 50), 1.5, edges, boundary="periodic")
    assert ds1.attrs["method"] == "dense"


@pytest.mark.parametrize("shape", [(200,), (12, 10), (5, 6, 4)])
def test_inertia_counts_match_dense(shape):
    rng = np.random.default_rng(1)
    V = rng.uniform(0, 4, shape)
    for boundary in ("dirichlet", "periodic"):
        ham = build_hamiltonian(V, boundary=boundary)
        w = np.linalg.eigvalsh(ham.matrix().toarray())
        energies = np.linspace(w[0] - 0.1, w[-1] + 0.1, 13)
        expect = np.searchsorted(w, energies)
        np.testing.assert_array_equal(count_eigenvalues_below(ham, energies), expect)


def _separable_spectrum(vs):
    """Eigenvalues of H for V = sum_a v_a(x_a): all sums of the 1D chain eigenvalues."""
    total = np.zeros(1)
    for v in vs:
        w = np.linalg.eigvalsh(build_hamiltonian(v).matrix().toarray())
        total = (total[:, None] + w[None, :]).ravel()
    return np.sort(total)


def test_lowest_eigenvalues_and_dos():
    rng = np.random.default_rng(2)
    v1, v2 = rng.uniform(0, 2, 70), rng.uniform(0, 2, 64)  # 4480 cells > DENSE_MAX
    cases = [
        (rng.uniform(0, 4, 300), None),
        (rng.uniform(0, 4, (15, 14)), None),
        (v1[:, None] + v2[None, :], _separable_spectrum([v1, v2])),
    ]
    for V, w in cases:
        if w is None:
            w = np.linalg.eigvalsh(build_hamiltonian(V).matrix().toarray())
        np.testing.assert_allclose(lowest_eigenvalues(V, 7), w[:7], atol=1e-10)
        edges = np.linspace(w[0] - 0.01, (w[40] + w[41]) / 2, 6)
        ds = exact_dos(V, edges)
        counts = np.diff(np.searchsorted(w, edges))
        np.testing.assert_array_equal(ds["count"].values, counts)
        np.testing.assert_allclose(ds.dos.values, counts / (V.size * np.diff(edges)))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"omega_edges": [0.1, 0.05, 0.2]}, "omega_edges"),
        ({"omega_edges": [0.0, 0.1]}, "omega_edges"),
        ({"omega_edges": [-0.1, 0.1]}, "omega_edges"),
        ({"omega_edges": [0.1]}, "omega_edges"),
        ({"omega_edges": [[0.1, 0.2]]}, "omega_edges"),
        ({"omega_edges": [0.1, np.nan]}, "omega_edges"),
        ({"fermi_energy": -5.0}, "fermi_energy"),
        ({"fermi_energy": 50.0}, "fermi_energy"),
        ({"fermi_energy": float("nan")}, "fermi_energy"),
        ({"temperature": -0.1}, "temperature"),
        ({"method": "lanczos"}, "method"),
    ],
)
def test_bad_input_names_the_argument(kwargs, name):
    args = {"V": block((100,), 4, np.random.default_rng(0)), "fermi_energy": 0.6,
            "omega_edges": [0.01, 0.1]}
    args.update(kwargs)
    with pytest.raises(InputError, match=name):
        kubo_greenwood(**args)


def test_one_dimensional_methods_rejected_in_2d():
    with pytest.raises(InputError, match="method"):
        kubo_greenwood(np.ones((5, 5)), 2.0, [0.1, 0.2], method="tridiagonal")
    with pytest.raises(InputError, match="emax"):
        exact_eigenstates(np.ones(5), 1.0, 0.5)
    with pytest.raises(InputError, match="k="):
        lowest_eigenvalues(np.ones(5), 0)


@pytest.mark.slow
def test_segments_match_whole_chain_long():
    V = block((20_000,), 8, np.random.default_rng(1))
    edges = np.geomspace(5e-6, 0.05, 17)
    whole = kubo_greenwood(V, 0.2, edges, method="tridiagonal")
    seg = kubo_greenwood(V, 0.2, edges, method="segments")
    np.testing.assert_allclose(seg.sigma.values, whole.sigma.values, rtol=1e-9,
                               atol=1e-12 * whole.sigma.values.max())


def test_shift_invert_degenerate_levels_and_progress():
    """Clean square lattice: two-fold degenerate levels found once each, with multiplicity."""
    V = np.zeros((14, 14))
    ham = build_hamiltonian(V)
    w = np.linalg.eigvalsh(ham.matrix().toarray())
    gaps = np.nonzero(np.diff(w) > 1e-6)[0]  # i with w[i] < w[i + 1]
    i, j = gaps[gaps >= 30][0], gaps[gaps >= 110][0]
    assert np.sum(np.diff(w[i + 1:j + 1]) < 1e-9) > 5  # degenerate levels inside
    lo, hi = float(w[i] + w[i + 1]) / 2, float(w[j] + w[j + 1]) / 2
    Es, Ps = exact_eigenstates(ham, lo, hi, method="shift-invert", progress=True)
    np.testing.assert_allclose(Es, w[i + 1:j + 1], atol=1e-10)
    np.testing.assert_allclose(Ps.T @ Ps, np.eye(Es.size), atol=1e-8)
    res = ham.matrix() @ Ps - Ps * Es
    assert np.abs(res).max() < 1e-8


def test_shift_invert_refuses_a_window_whose_vectors_do_not_fit(monkeypatch):
    # the whole-sample slicing holds every window state at once: too little memory for them is
    # refused after the inertia counts, before any slice is solved, with the fix named
    from mottscape import grid
    from mottscape.exact import _tasks
    from mottscape.exact._common import SLICE_STATES

    V = block((40, 40), 4, np.random.default_rng(2))
    ham = build_hamiltonian(V)
    w = lowest_eigenvalues(ham, 202)
    lo, hi = float(w[40] + w[41]) / 2, float(w[200] + w[201]) / 2  # 160 states
    need = V.size * 8 * (2 * 160 + 2 * SLICE_STATES + 1)
    monkeypatch.setattr(grid, "_available_memory", lambda: need - 1)

    def unreachable(*args, **kwargs):
        raise AssertionError("a slice was solved")
    with monkeypatch.context() as m:
        m.setattr(_tasks, "solve_shift", unreachable)
        with pytest.raises(InputError, match=r"160 window eigenstates.*method='boxes'"):
            exact_eigenstates(ham, lo, hi, method="shift-invert")
    monkeypatch.setattr(grid, "_available_memory", lambda: need)
    E, _ = exact_eigenstates(ham, lo, hi, method="shift-invert")
    assert E.size == 160
