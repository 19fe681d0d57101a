"""``[conductivity] exact = true``: the exact Kubo-Greenwood reference of every realization of
a run, on bins centred on the study's frequencies, aggregated like sigma_LL (issue 9 item 5)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import mottscape as ms
from mottscape import ensemble
from mottscape.cli import main
from mottscape.config import StudyError
from mottscape.exact import _boxes, _tasks, make_boxes
from mottscape.plot import plot_conductivity
from mottscape.summary import conductivity_table

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


# ----------------------------------------------------------------------------- by pieces
#: 2D Anderson W = 20 in the band tail, exact reference by overlapping boxes (9 boxes).
BOXES = {
    "potential": {"model": "anderson", "shape": [36, 36], "seed": 5, "width": 20.0},
    "conductivity": {"fermi_energy": 3.4, "omega_min": 0.02, "omega_max": 0.4, "n_omega": 4,
                     "exact": True, "exact_method": "boxes", "exact_padding": 6,
                     "exact_core": 12},
}


def test_boxes_study_runs_piece_by_piece_with_the_bits_of_kubo_greenwood():
    st = ms.study_from_dict(BOXES)
    assert ensemble.splits_exact(st)
    ds = ms.run_ensemble(st, 2)
    for r in range(2):
        ref = ms.kubo_greenwood(st.make_sample(r), 3.4, st.omega_edges(), method="boxes",
                                padding=6, core=12)
        assert ref.attrs["n_boxes"] == 9
        np.testing.assert_array_equal(ds.sigma_exact.isel(realization=r), ref.sigma)
        np.testing.assert_array_equal(ds.n_pairs_exact.isel(realization=r), ref.n_pairs)
        np.testing.assert_array_equal(ds.sigma_exact_beyond_padding.isel(realization=r),
                                      ref.sigma_beyond_padding)
    assert np.count_nonzero(ds.sigma_exact.values) >= 4
    np.testing.assert_allclose(ds.sigma_exact_beyond_padding_mean,
                               ds.sigma_exact_beyond_padding.mean("realization"))
    # the table names the bins whose pairs lie mostly beyond the padding (padding 6 here), and
    # only those: in the top bin they carry < 1e-3 of sigma_exact
    share = ds.sigma_exact_beyond_padding.sum("realization") / ds.sigma_exact.sum("realization")
    partial = share.values >= ms.exact.RESOLVED_FAR
    assert partial[0] and not partial[-1]
    note = conductivity_table(ds).splitlines()[-1]
    assert note.startswith("exact reference (boxes): not resolved at omega = 0.02 (100 %)")
    assert "exact_padding" in note and note.count("%") == int(partial.sum())
    # and the figure draws those bins apart, hollow triangles
    lines = {line.get_label(): line for line in plot_conductivity(ds).axes[0].get_lines()}
    far = lines["exact, pairs beyond the boxes' padding"]
    np.testing.assert_array_equal(far.get_xdata(), ds.omega.values[partial])
    assert far.get_marker() == "^" and far.get_markerfacecolor() == "none"


def test_boxes_on_two_workers_equal_one_worker_bit_for_bit():
    st = ms.study_from_dict(BOXES)
    one = ms.run_ensemble(st, 2, workers=1)
    two = ms.run_ensemble(st, 2, workers=2)
    np.testing.assert_array_equal(one.sigma_exact.values, two.sigma_exact.values)
    np.testing.assert_array_equal(one.sigma_ll.values, two.sigma_ll.values)


def _counted_box_solves(monkeypatch) -> list:
    """The boxes solved from now on (``solve_box`` wrapped)."""
    calls = []
    real = _boxes.solve_box

    def counted(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(_boxes, "solve_box", counted)
    return calls


def test_a_missing_piece_record_is_the_only_one_recomputed(tmp_path, monkeypatch):
    """A run killed among the boxes resumes: only the box whose record is missing is solved
    again, and the result is the same."""
    st = ms.study_from_dict(BOXES)
    store = tmp_path / "store"
    first = ensemble.exact_references(st, [0], store=store)[0]
    records = sorted((store / "exact-pieces").glob("realization_*.nc"))
    assert len(records) == 9
    records[4].unlink()
    calls = _counted_box_solves(monkeypatch)
    again = ensemble.exact_references(st, [0], store=store)[0]
    assert len(calls) == 1 and calls[0] == make_boxes(st.make_sample(0).grid, 12, 6)[4]
    np.testing.assert_array_equal(first.sigma.values, again.sigma.values)
    # a full run reuses the plan and the pieces, then removes the pieces (scratch records)
    ds = ms.run_ensemble(st, 1, store=store)
    assert len(calls) == 1
    np.testing.assert_array_equal(ds.sigma_exact.isel(realization=0), first.sigma)
    assert not list((store / "exact-pieces").glob("realization_*.nc"))


def _losing_boxes(monkeypatch, padding: int | None):
    """Boxes of ``padding`` (None: every box) drop their lowest kept state and spares."""
    real = _boxes.solve_box

    def losing(ham, box, *args, **kwargs):
        res = real(ham, box, *args, **kwargs)
        if (padding is None or box.padding == padding) and res.block is not None:
            b, res.spares = res.block, None
            res.block = type(b)(b.start, b.stop, b.energies[1:], b.vectors[:, 1:],
                                b.centroids[1:], index=b.index)
        return res

    monkeypatch.setattr(_boxes, "solve_box", losing)


def test_boxes_that_miss_a_state_are_solved_again_wider_as_pieces(tmp_path, monkeypatch):
    """As in kubo_greenwood: boxes that lose states at padding 6 fail the inertia count; the
    study's engine plans the boxes at padding 12 (same counts), runs them as pieces (records
    of ``exact-pieces-wide``) and gets kubo_greenwood's bits. A resumed run solves nothing
    again; the full run removes both piece directories' records."""
    st = ms.study_from_dict(BOXES)
    _losing_boxes(monkeypatch, 6)
    with pytest.warns(RuntimeWarning, match="inertia count.*padding=12"):
        ref = ms.kubo_greenwood(st.make_sample(0), 3.4, st.omega_edges(), method="boxes",
                                padding=6, core=12)
    assert ref.attrs["box_widened_from"] == 6
    store, lines = tmp_path / "store", []
    first = ensemble.exact_references(st, [0], store=store, log=lines.append)[0]
    assert isinstance(first, xr.Dataset) and first.attrs["box_widened_from"] == 6
    np.testing.assert_array_equal(first.sigma.values, ref.sigma.values)
    np.testing.assert_array_equal(first.n_pairs.values, ref.n_pairs.values)
    assert any("inertia count" in m and "padding=12" in m for m in lines)
    grid = st.make_sample(0).grid
    wide = list((store / "exact-pieces-wide").glob("realization_*.nc"))
    assert len(wide) == len(make_boxes(grid, 12, 12)) > 0

    calls = []
    monkeypatch.setattr(_boxes, "solve_box", lambda *a, **k: calls.append(a[1]))
    again = ensemble.exact_references(st, [0], store=store)[0]
    assert calls == []
    np.testing.assert_array_equal(again.sigma.values, first.sigma.values)
    ds = ms.run_ensemble(st, 1, store=store)
    np.testing.assert_array_equal(ds.sigma_exact.isel(realization=0), ref.sigma)
    assert not list(store.glob("exact-pieces*/realization_*.nc"))


def test_boxes_that_miss_a_state_at_every_padding_fail_their_realization(monkeypatch):
    """The wider boxes are tried once: a loss there too is the realization's failure, named
    with the count and exact_padding, and the other realization is unaffected."""
    st = ms.study_from_dict(BOXES)
    _losing_boxes(monkeypatch, None)
    out = ensemble.exact_references(st, [0], log=None)
    kind, message = out[0]
    assert kind == "ConvergenceError"
    assert "inertia count" in message and "now 12 cells; exact_padding" in message


def test_the_wider_plan_keeps_the_counts_and_refuses_boxes_larger_than_a_ring():
    s = ms.disorder.anderson((36, 36), width=20.0, seed=5)
    plan = ms.exact.plan_exact(s, 3.4, [0.02, 0.4], method="boxes", padding=6)
    ham = ms.build_hamiltonian(s)
    wide = ms.exact.widen_boxes(ham, plan, None)
    assert (wide.padding, wide.core) == (12, 36)  # the default core, 3 x padding
    assert (wide.count_lo, wide.count_hi, wide.lo, wide.hi, wide.scale) == \
        (plan.count_lo, plan.count_hi, plan.lo, plan.hi, plan.scale)
    assert wide.n_pieces == len(make_boxes(ham.grid, 36, 12)) == 1
    ring = ms.build_hamiltonian(s, boundary="periodic")
    plan = ms.exact.plan_exact(ring, 3.4, [0.02, 0.4], method="boxes", padding=6, core=12)
    with pytest.raises(ms.InputError, match="smaller than the sample"):
        ms.exact.widen_boxes(ring, plan, 12)


#: A smooth field at padding 4 where one window state is converged only by a neighbour of
#: its owner box (kept from that box's spares: kubo_greenwood's box_recovered is 1).
SPARE = {
    "potential": {"model": "gaussian", "shape": [96, 96], "seed": 6,
                  "correlation_length": 3.0, "amplitude": 1.0},
    "conductivity": {"fermi_energy": -1.186, "omega_min": 0.007, "omega_max": 0.08,
                     "n_omega": 4, "exact": True, "exact_method": "boxes",
                     "exact_padding": 4},
}


def test_a_spare_state_survives_its_record_and_a_resumed_run(tmp_path, monkeypatch):
    """The spares travel in the piece records (flag ``spare``): the pieces give
    kubo_greenwood's bits; the box that holds the spare, its record removed as by a killed
    run, is the only box solved again, and the result is the same bits."""
    st = ms.study_from_dict(SPARE)
    ref = ms.kubo_greenwood(st.make_sample(0), -1.186, st.omega_edges(), method="boxes",
                            padding=4)
    assert ref.attrs["box_recovered"] == 1
    store = tmp_path / "store"
    first = ensemble.exact_references(st, [0], store=store)[0]
    np.testing.assert_array_equal(first.sigma.values, ref.sigma.values)
    with_spares = [p for p in sorted((store / "exact-pieces").glob("realization_*.nc"))
                   if ms.read_netcdf(p)["spare"].values.any()]
    assert with_spares
    with_spares[0].unlink()
    calls = _counted_box_solves(monkeypatch)
    again = ensemble.exact_references(st, [0], store=store)[0]
    assert len(calls) == 1
    np.testing.assert_array_equal(again.sigma.values, ref.sigma.values)


def test_a_piece_record_written_before_spares_reads_as_a_piece_without_them():
    st = ms.study_from_dict(BOXES)
    sample = st.make_sample(0)
    plan = ms.exact.plan_exact(sample, 3.4, st.omega_edges(), method="boxes", padding=6,
                               core=12)
    piece = ms.exact.solve_piece(sample.hamiltonian, plan, 4)
    assert piece.blocks
    piece.spares = []  # the boxes of then
    old = ms.exact.piece_from_dataset(ms.exact.piece_to_dataset(piece).drop_vars("spare"))
    assert not old.spares and len(old.blocks) == len(piece.blocks)
    for a, b in zip(old.blocks, piece.blocks, strict=True):
        np.testing.assert_array_equal(a.energies, b.energies)
        np.testing.assert_array_equal(a.vectors, b.vectors)
        np.testing.assert_array_equal(a.rows(), b.rows())


def test_1d_segments_run_as_pieces(monkeypatch):
    """A long chain (auto: segments) cut into pieces of a few segments gives the bits of
    kubo_greenwood (pieces of any size hold the same segments)."""
    study = ms.study_from_dict({
        "potential": {"model": "anderson", "shape": [6000], "seed": 2, "width": 3.0},
        "conductivity": {"fermi_energy": 0.8, "omega_min": 0.005, "omega_max": 0.1,
                         "n_omega": 4, "exact": True}})
    assert ensemble.splits_exact(study)
    ref = ms.kubo_greenwood(study.make_sample(0), 0.8, study.omega_edges())
    assert ref.attrs["method"] == "segments"
    monkeypatch.setattr(_tasks, "PIECE_CELLS", 1000)
    plan = ms.exact.plan_exact(study.make_sample(0), 0.8, study.omega_edges())
    assert plan is not None and plan.n_pieces > 3
    ds = ms.run_ensemble(study, 1)
    np.testing.assert_array_equal(ds.sigma_exact.isel(realization=0), ref.sigma)
    assert np.count_nonzero(ref.sigma.values) == 4


#: 2D Anderson W = 20 above the DENSE_MAX cells: "auto" is the shift-invert slicing, whose
#: ~200 window states take four first shifts.
SLICED = {
    "potential": {"model": "anderson", "shape": [64, 64], "seed": 7, "width": 20.0},
    "conductivity": {"fermi_energy": 10.0, "omega_min": 0.05, "omega_max": 0.3, "n_omega": 3,
                     "exact": True},
}


def test_shift_invert_shifts_run_as_pieces_with_the_bits_of_kubo_greenwood():
    st = ms.study_from_dict(SLICED)
    assert ensemble.splits_exact(st)
    plan = ms.exact.plan_exact(st.make_sample(0), 10.0, st.omega_edges())
    assert plan is not None and plan.method == "shift-invert" and plan.n_pieces >= 2
    one = ms.run_ensemble(st, 2, workers=1)
    two = ms.run_ensemble(st, 2, workers=2)
    np.testing.assert_array_equal(one.sigma_exact.values, two.sigma_exact.values)
    for r in range(2):
        ref = ms.kubo_greenwood(st.make_sample(r), 10.0, st.omega_edges())
        assert ref.attrs["method"] == "shift-invert"
        np.testing.assert_array_equal(two.sigma_exact.isel(realization=r), ref.sigma)
        np.testing.assert_array_equal(two.n_pairs_exact.isel(realization=r), ref.n_pairs)
        dense = ms.kubo_greenwood(st.make_sample(r), 10.0, st.omega_edges(), method="dense")
        np.testing.assert_allclose(ref.sigma, dense.sigma, rtol=1e-8)
    assert np.count_nonzero(one.sigma_exact.values) >= 4


def test_the_slicing_plan_places_its_shifts_by_exact_counts():
    """The plan's profile holds the exact counts of eigenvalues below its energies, survives
    its record, and puts about the same number of states under every first shift."""
    from mottscape.exact._windows import first_shifts

    st = ms.study_from_dict(SLICED)
    sample = st.make_sample(0)
    plan = ms.exact.plan_exact(sample, 10.0, st.omega_edges())
    w = np.linalg.eigvalsh(sample.hamiltonian.matrix().toarray())
    energies, counts = plan.profile
    assert energies.size == plan.n_pieces + 1 == 5
    np.testing.assert_array_equal(counts, [np.count_nonzero(w < e) for e in energies])
    back = _tasks.ExactPlan.from_dataset(plan.to_dataset())
    assert (back.profile_energies, back.profile_counts) == (plan.profile_energies,
                                                            plan.profile_counts)
    assert back.n_pieces == plan.n_pieces and back.count_hi == plan.count_hi
    shifts = first_shifts(plan.lo, plan.hi, plan.expected, profile=plan.profile)
    held = [np.count_nonzero(np.abs(w - s) <= h) for s, h, _ in shifts]
    assert sum(held) == plan.expected
    assert min(held) >= 0.7 * plan.expected / len(shifts)
    assert max(held) <= 1.3 * plan.expected / len(shifts)


@pytest.mark.parametrize(("key", "value", "pattern"), [
    ("exact_method", "blocks", r"exact_method = 'blocks' is not known"),
    ("exact_padding", -1, r"exact_padding = -1 must be >= 0"),
    ("exact_core", 0, r"exact_core = 0 must be >= 1"),
])
def test_exact_method_keys_are_checked(key, value, pattern):
    bad = {**BOXES, "conductivity": {**BOXES["conductivity"], key: value}}
    with pytest.raises(StudyError, match=pattern):
        ms.study_from_dict(bad)


def test_cli_run_with_boxes_and_a_store(tmp_path, capsys):
    """``mottscape run`` of a boxes study with a store: realization 0's boxes run as tasks
    too (plans kept, piece records removed once the realizations are written), and the
    numbers equal kubo_greenwood's."""
    path = tmp_path / "s.toml"
    path.write_text("[potential]\nmodel = 'anderson'\nshape = [36, 36]\nseed = 5\n"
                    "width = 20.0\n[conductivity]\nfermi_energy = 3.4\nomega_min = 0.02\n"
                    "omega_max = 0.4\nn_omega = 4\nexact = true\nexact_method = 'boxes'\n"
                    "exact_padding = 6\nexact_core = 12\n[ensemble]\nrealizations = 2\n"
                    "[output]\nfigures = false\n")
    store = tmp_path / "store"
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--store", str(store)]) == 0
    assert "sigma_exact" in capsys.readouterr().out
    ds = ms.read_netcdf(tmp_path / "o" / "results.nc")
    st = ms.load_study(path)
    ref = ms.kubo_greenwood(st.make_sample(1), 3.4, st.omega_edges(), method="boxes",
                            padding=6, core=12)
    np.testing.assert_array_equal(ds.sigma_exact.isel(realization=1), ref.sigma)
    assert len(list((store / "exact-plans").glob("realization_*.nc"))) == 2
    assert not list((store / "exact-pieces").glob("realization_*.nc"))
