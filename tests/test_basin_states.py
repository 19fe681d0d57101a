"""The boxes of the pair model's states: merging, the whole-sample box, the 1D chain solver.

Merged boxes must find the states that one box per basin finds, the whole-sample box must be
the exact reference itself (it is reported as such), and the tridiagonal 1D segments must
equal the generic sparse box solve.
"""

from __future__ import annotations

import numpy as np
import pytest

import mottscape as ms
from mottscape import basin_states as bs
from mottscape.basins import find_basins
from mottscape.exact import exact_eigenstates, kubo_greenwood, lowest_eigenvalues
from mottscape.landscape import landscape_of
from mottscape.pairs import omega_edges
from mottscape.sample import make_sample


def _states(sample, ef, window, **kw):
    land = landscape_of(sample)
    b = find_basins(land, ef)
    return bs.basin_states(sample, b, land.agmon_metric(ef), ef, window, **kw)


@pytest.mark.parametrize("V, ef, window", [
    (ms.disorder.block((4096,), block=8, width=4.0, seed=1), 1.0, 0.15),
    (ms.disorder.block((96, 96), block=4, width=4.0, seed=3), 0.9, 0.2),
])
def test_merged_boxes_find_the_states_of_one_box_per_basin(V, ef, window):
    s = make_sample(V)
    one = _states(s, ef, window, merge=False)
    merged = _states(s, ef, window, merge=True)
    assert merged.n_boxes < one.n_boxes and not merged.whole_sample
    assert merged.n == one.n
    # every state that its own box holds well is found again, at the same energy
    held = one.energies[one.leakage < 1e-8]
    assert held.size >= 5
    assert np.abs(held[:, None] - merged.energies[None, :]).min(axis=1).max() < 1e-8
    # and the merged boxes are at least as close to the exact spectrum
    exact, _ = exact_eigenstates(s, ef - window, ef + window)
    err = {k: np.abs(st.energies[:, None] - exact[None, :]).min(axis=1)
           for k, st in (("one", one), ("merged", merged))}
    assert np.sum(err["merged"] > 1e-6) <= np.sum(err["one"] > 1e-6)


def test_merging_only_joins_boxes_that_barely_grow():
    lo = np.array([[0, 0], [2, 1], [30, 30]])
    hi = np.array([[20, 20], [21, 21], [50, 50]])
    got_lo, got_hi, members = bs._merged_boxes(lo, hi, [[0], [1], [2]], (64, 64), False)
    assert members == [[0, 1], [2]]
    np.testing.assert_array_equal(got_lo, [[0, 0], [30, 30]])
    np.testing.assert_array_equal(got_hi, [[21, 21], [50, 50]])
    # 20x20 and 20x20 overlapping by half: the union (20x30) is 1.5x, not merged
    lo2, _, members2 = bs._merged_boxes(np.array([[0, 0], [0, 10]]), np.array([[20, 20],
                                        [20, 30]]), [[0], [1]], (64, 64), False)
    assert members2 == [[0], [1]] and lo2.shape == (2, 2)


def test_the_tridiagonal_chain_solver_equals_the_generic_box_solver(monkeypatch):
    s = make_sample(ms.disorder.block((2048,), block=8, width=4.0, seed=5))
    chain = _states(s, 1.0, 0.15)
    # the generic path: the same boxes as submatrices of H (as on a periodic chain)
    monkeypatch.setattr(bs, "_box_solver", lambda sample, A, lo, hi, *rest:
                        lambda flat, axes: bs._eigenpairs(A[flat][:, flat], lo, hi))
    sparse = _states(s, 1.0, 0.15)
    assert chain.n == sparse.n and chain.n_boxes == sparse.n_boxes
    np.testing.assert_allclose(chain.energies, sparse.energies, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(chain.basin, sparse.basin)
    np.testing.assert_allclose(chain.tails, sparse.tails, rtol=1e-6)
    np.testing.assert_allclose(chain.box_pairs.x2, sparse.box_pairs.x2, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("shape, width, omega", [
    ((24, 24), 10.0, (0.05, 0.8)),
    ((10, 10, 10), 20.0, (0.05, 0.8)),
])
def test_the_whole_sample_box_is_the_exact_reference_and_says_so(shape, width, omega):
    s = make_sample(ms.disorder.anderson(shape, width=width, seed=1))
    ev = lowest_eigenvalues(s, 31)
    ef = float(0.5 * (ev[29] + ev[30]))
    w = np.geomspace(*omega, 5)
    pipe = ms.run_pipeline(s, ef, w)
    model = pipe.pair_model
    assert model.whole_sample and model.boxes == 1
    kg = kubo_greenwood(s, ef, omega_edges(w))
    np.testing.assert_array_equal(model.n_pairs, kg.n_pairs.values)
    assert np.all(kg.n_pairs.values[-2:] > 0)
    np.testing.assert_allclose(model.sigma, kg.sigma.values, rtol=1e-9, atol=0)
    ds = pipe.to_dataset()
    assert bool(ds.pair_model_whole_sample) and int(ds.pair_model_boxes) == 1
    from mottscape.summary import conductivity_table

    assert "exact Kubo-Greenwood" in conductivity_table(ds)
    # with merging off every basin keeps its own box (the LL estimate)
    one = _states(s, ef, model.states.window, merge=False)
    assert not one.whole_sample and one.n_boxes == pipe.basins.n


def test_a_small_2d_sample_keeps_its_boxes():
    s = make_sample(ms.disorder.block((128, 128), block=4, width=4.0, seed=3))
    st = _states(s, 0.9, 0.2)
    assert not st.whole_sample and st.n_boxes > 10



@pytest.mark.parametrize("periodic", [False, True])
def test_state_vectors_read_a_single_well_state_inside_its_box(periodic):
    # The pair model's midpoint amplitudes read each state on its box eigenvector. For one
    # well in a large sample the exact state IS the single-well state: inside the readable
    # part of the box (>= PROBE_MARGIN_AGMON Agmon lengths from a cut face) the box vector must
    # be it to a few %, and nearer to the cut faces it is not (the face pulls the tail down),
    # which is why those cells are not read.
    V = np.ones((72, 72))
    corner = 1 if periodic else 33  # a periodic sample's box wraps round the faces
    V[corner:corner + 6, corner:corner + 6] = 0.0
    sample = make_sample(V, boundary="periodic" if periodic else "dirichlet")
    E = lowest_eigenvalues(sample, 1)
    E, psi = exact_eigenstates(sample, float(E[0]) - 1e-3, float(E[0]) + 1e-3)
    psi = np.abs(psi[:, 0]) / np.sqrt(sample.grid.cell_volume)
    st = _states(sample, float(E[0]), 0.05, keep_vectors=True)
    assert st.n == 1 and st.vectors is not None
    assert _states(sample, float(E[0]), 0.05).vectors is None
    cells = np.arange(sample.grid.size)
    got = st.vectors.at(np.zeros(cells.size, int), cells)
    read = np.isfinite(got)
    assert 0.05 * cells.size < read.sum() < cells.size  # a box, not the whole sample
    # a face at Agmon distance D cuts the tail by about e^{-2 D}: 1.8 % at D = 2
    np.testing.assert_allclose(got[read], psi[read], rtol=0.02)
    # the box's cells next to its faces (not read) are cut by them
    boxed = np.zeros(cells.size, bool)
    boxed[np.unique(np.concatenate([g[0] for g in st.vectors._boxes]))] = True
    near_face = boxed & ~read
    assert near_face.any()
    box_vector = np.abs(st.vectors._boxes[0][2][np.argsort(st.vectors._boxes[0][1]), 0])
    cut = box_vector / np.sqrt(sample.grid.cell_volume) / psi[st.vectors._boxes[0][0]]
    assert cut.min() < 0.9  # nearest the faces the box vector is >10 % below the state
    assert np.isnan(st.vectors.at(np.zeros(1, int), np.array([-1]))[0])
