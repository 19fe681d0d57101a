"""The finite-difference Hamiltonian of eq. (3)."""

import numpy as np
import pytest

import mottscape as ms


@pytest.mark.parametrize("shape", [(9,), (5, 6), (3, 4, 5)])
@pytest.mark.parametrize("boundary", ["dirichlet", "periodic"])
def test_tight_binding_limit(shape, boundary):
    """mass = 1, spacing = 1, lattice units: hopping -1 and on-site 2d + V."""
    rng = np.random.default_rng(1)
    V = rng.uniform(0, 4, shape)
    H = ms.build_hamiltonian(V, boundary=boundary).matrix().toarray()
    d = len(shape)
    np.testing.assert_allclose(np.diag(H), 2 * d + V.ravel())
    off = H - np.diag(np.diag(H))
    # Each site has 2d neighbours with hopping -1 (periodic: all; Dirichlet: fewer at edges).
    assert set(np.unique(off)) <= {-2.0, -1.0, 0.0}
    idx = np.arange(V.size).reshape(shape)
    i, j = idx[(0,) * d], idx[(1,) + (0,) * (d - 1)]
    assert off[i, j] == -1.0
    if boundary == "periodic" and shape[0] > 2:
        assert off[idx[(0,) * d], idx[(-1,) + (0,) * (d - 1)]] == -1.0
    else:
        assert off[idx[(0,) * d], idx[(-1,) + (0,) * (d - 1)]] == 0.0


@pytest.mark.parametrize("shape", [(11,), (6, 7), (3, 4, 5)])
@pytest.mark.parametrize("boundary", ["dirichlet", "periodic"])
def test_matvec_matches_matrix_and_is_symmetric(shape, boundary):
    rng = np.random.default_rng(2)
    V = rng.uniform(-1, 3, shape)
    m = rng.uniform(0.3, 2.0, shape)
    H = ms.build_hamiltonian(V, spacing=[0.5, 0.7, 1.3][: len(shape)], mass=m,
                             boundary=boundary)
    A = H.matrix()
    assert abs(A - A.T).max() < 1e-14
    x = rng.normal(size=shape)
    np.testing.assert_allclose(H.matvec(x).ravel(), A @ x.ravel(), atol=1e-12)


def test_harmonic_mean_face_mass_and_boundary_faces():
    V = np.zeros(2)
    H = ms.build_hamiltonian(V, mass=[1.0, 3.0], spacing=2.0).matrix().toarray()
    m_face = 2 * 1 * 3 / (1 + 3)
    assert H[0, 1] == pytest.approx(-1 / (m_face * 4))
    # Dirichlet ghost faces use the cell's own mass.
    assert H[0, 0] == pytest.approx(1 / (m_face * 4) + 1 / (1 * 4))
    assert H[1, 1] == pytest.approx(1 / (m_face * 4) + 1 / (3 * 4))


def test_semiconductor_units_scale_kinetic_term():
    V = np.zeros(4)
    Hl = ms.build_hamiltonian(V, spacing=0.5, mass=0.2).matrix().toarray()
    Hs = ms.build_hamiltonian(V, spacing=0.5, mass=0.2, units="semiconductor").matrix().toarray()
    np.testing.assert_allclose(Hs, Hl * ms.SEMICONDUCTOR.kinetic)


def test_free_chain_spectrum_dirichlet():
    """Clean Dirichlet chain: E_n = 2 - 2 cos(n pi / (N + 1))."""
    N = 20
    E = np.linalg.eigvalsh(ms.build_hamiltonian(np.zeros(N)).matrix().toarray())
    n = np.arange(1, N + 1)
    np.testing.assert_allclose(E, np.sort(2 - 2 * np.cos(n * np.pi / (N + 1))), atol=1e-12)
