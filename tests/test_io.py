"""Tests of potential loading and atomic NetCDF writing (mottscape.io)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mottscape import files, io, netcdf
from mottscape.errors import InputError


def make_dataset(n: int = 6, m: int = 5) -> xr.Dataset:
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"V": (("x", "y"), rng.random((n, m)), {"units": "eV"}),
         "other": (("x",), np.arange(n, dtype=float))},
        coords={"x": ("x", 0.5 + 0.25 * np.arange(n), {"units": "nm"}),
                "y": ("y", 0.5 + 0.25 * np.arange(m), {"units": "nm"})},
        attrs={"flag": True, "nothing": None, "params": {"a": 1, "b": [1, 2]},
               "labels": ["u", "v"], "numbers": (1.0, 2.5), "path": Path("/tmp/x"),
               "name": "study", "count": np.int64(3)},
    )


# ---------------------------------------------------------------------- load_potential
def test_npy_round_trip(tmp_path):
    V = np.random.default_rng(1).random((7, 8)).astype(np.float32)
    np.save(tmp_path / "v.npy", V)
    out, meta = io.load_potential(tmp_path / "v.npy")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, V.astype(float))
    assert meta["format"] == "npy"
    assert meta["spacing"] is None
    assert meta["energy_unit"] is None and meta["length_unit"] is None


def test_npy_object_array_is_refused_without_unpickling(tmp_path, monkeypatch):
    np.save(tmp_path / "obj.npy", np.array([1.0, "a", None], dtype=object), allow_pickle=True)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("pickle must never be used")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    with pytest.raises(InputError, match="refuses it") as info:
        io.load_potential(tmp_path / "obj.npy")
    assert "np.asarray(V, dtype=float)" in str(info.value)


def test_plain_pickle_file_named_npy_is_refused(tmp_path):
    with open(tmp_path / "p.npy", "wb") as fh:
        pickle.dump([[1.0, 2.0]], fh)
    with pytest.raises(InputError, match="unpickling"):
        io.load_potential(tmp_path / "p.npy")


def test_npz_single_and_named(tmp_path):
    a = np.arange(12.0).reshape(3, 4)
    np.savez(tmp_path / "one.npz", V=a)
    out, meta = io.load_potential(tmp_path / "one.npz")
    np.testing.assert_array_equal(out, a)
    assert meta["variable"] == "V"
    np.savez(tmp_path / "two.npz", V=a, mass=np.ones(3))
    with pytest.raises(InputError, match=r"holds 2 arrays \(V, mass\)"):
        io.load_potential(tmp_path / "two.npz")
    out, _ = io.load_potential(tmp_path / "two.npz", variable="V")
    np.testing.assert_array_equal(out, a)
    with pytest.raises(InputError, match=r"variable='W' is not in .*available arrays: V, mass"):
        io.load_potential(tmp_path / "two.npz", variable="W")


def test_npz_object_array_refused(tmp_path):
    np.savez(tmp_path / "obj.npz", V=np.array([None, 1], dtype=object))
    with pytest.raises(InputError, match="unpickling"):
        io.load_potential(tmp_path / "obj.npz")


def test_netcdf_round_trip_with_spacing_and_units(tmp_path):
    ds = make_dataset()
    path = io.write_netcdf(ds, tmp_path / "map.nc")
    V, meta = io.load_potential(path)
    np.testing.assert_array_equal(V, ds["V"].values)
    assert meta["variable"] == "V"
    assert meta["units"] == "eV"
    assert meta["spacing"] == pytest.approx((0.25, 0.25))
    assert meta["length_units"] == "nm"
    assert meta["energy_unit"] == "eV" and meta["length_unit"] == "nm"
    assert meta["dims"] == ("x", "y")


def test_netcdf_single_variable_and_choice(tmp_path):
    ds = xr.Dataset({"W": (("i",), np.arange(5.0))})
    io.write_netcdf(ds, tmp_path / "w.nc")
    V, meta = io.load_potential(tmp_path / "w.nc")
    assert meta["variable"] == "W"
    assert meta["spacing"] is None  # no coordinates
    np.testing.assert_array_equal(V, np.arange(5.0))


def test_netcdf_ambiguous_and_missing_variable(tmp_path):
    ds = xr.Dataset({"a": (("i",), np.zeros(3)), "b": (("i",), np.ones(3))})
    io.write_netcdf(ds, tmp_path / "ab.nc")
    with pytest.raises(InputError, match=r"2 data variables \(a, b\) and none is named 'V'"):
        io.load_potential(tmp_path / "ab.nc")
    with pytest.raises(InputError, match=r"variable='V' is not in .*variables: a, b"):
        io.load_potential(tmp_path / "ab.nc", variable="V")
    V, _ = io.load_potential(tmp_path / "ab.nc", variable="b")
    np.testing.assert_array_equal(V, np.ones(3))


def test_netcdf_non_uniform_coordinate_rejected(tmp_path):
    ds = xr.Dataset({"V": (("x",), np.zeros(4))}, coords={"x": [0.0, 1.0, 2.0, 3.5]})
    io.write_netcdf(ds, tmp_path / "nu.nc")
    with pytest.raises(InputError, match=r"'x' of 'V' .* is not uniformly spaced"):
        io.load_potential(tmp_path / "nu.nc")


def test_netcdf_nearly_uniform_coordinate_accepted(tmp_path):
    x = 0.1 * np.arange(50)  # steps differ by rounding only
    ds = xr.Dataset({"V": (("x",), np.zeros(50))}, coords={"x": x})
    io.write_netcdf(ds, tmp_path / "u.nc")
    _, meta = io.load_potential(tmp_path / "u.nc")
    assert meta["spacing"] == pytest.approx((0.1,))


def test_potential_with_nan_rejected(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([0.0, np.nan, 1.0]))
    with pytest.raises(InputError, match="NaN"):
        io.load_potential(tmp_path / "nan.npy")


@pytest.mark.parametrize("name,fragment", [("missing.npy", "does not exist"),
                                           ("map.txt", "suffix '.txt' is not supported")])
def test_bad_paths(tmp_path, name, fragment):
    (tmp_path / "map.txt").write_text("1 2 3")
    with pytest.raises(InputError, match=fragment):
        io.load_potential(tmp_path / name)


def test_not_a_netcdf_file(tmp_path):
    (tmp_path / "junk.nc").write_bytes(b"this is not netcdf")
    with pytest.raises(InputError, match="not a NetCDF file"):
        io.read_netcdf(tmp_path / "junk.nc")


def test_string_array_rejected(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(InputError, match="real numeric array"):
        io.load_potential(tmp_path / "s.npy")


# ---------------------------------------------------------------------- attributes
def test_netcdf_safe_attrs():
    safe = io.netcdf_safe_attrs({"b": True, "nb": np.bool_(False), "n": None,
                                 "d": {"x": 1, "y": np.float64(2.5)}, "s": ["a", "b"],
                                 "f": (1, 2), "p": Path("/a/b"), "i": 3,
                                 "mask": np.array([True, False])})
    assert safe["b"] == 1 and safe["b"].dtype == np.int8
    assert safe["nb"] == 0
    assert safe["n"] == "none"
    assert json.loads(safe["d"]) == {"x": 1, "y": 2.5}
    assert json.loads(safe["s"]) == ["a", "b"]
    np.testing.assert_array_equal(safe["f"], [1, 2])
    assert safe["p"] == "/a/b"
    assert safe["i"] == 3 and safe["i"].dtype == np.int32
    assert safe["mask"].dtype == np.int8


def test_write_read_round_trip_attrs(tmp_path):
    ds = make_dataset()
    out = io.write_netcdf(ds, tmp_path / "deep" / "er" / "res.nc")
    assert out == tmp_path / "deep" / "er" / "res.nc"
    back = io.read_netcdf(out)
    xr.testing.assert_allclose(back[["V", "other"]], ds[["V", "other"]])
    assert back.attrs["flag"] == 1
    assert back.attrs["nothing"] == "none"
    assert json.loads(back.attrs["params"]) == {"a": 1, "b": [1, 2]}
    assert back["V"].attrs["units"] == "eV"
    assert ds.attrs["flag"] is True  # the input is not modified
    # read_netcdf closed the file: it can be removed and the data are still there.
    os.remove(out)
    assert float(back["V"].sum()) == pytest.approx(float(ds["V"].sum()))


def test_no_temporary_files_left(tmp_path):
    io.write_netcdf(make_dataset(), tmp_path / "a.nc")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc"]


def test_overwrite(tmp_path):
    io.write_netcdf(make_dataset(), tmp_path / "a.nc")
    ds2 = xr.Dataset({"V": (("x",), np.full(3, 7.0))})
    io.write_netcdf(ds2, tmp_path / "a.nc")
    np.testing.assert_array_equal(io.read_netcdf(tmp_path / "a.nc")["V"].values, 7.0)


def _failing_write(written: list):
    """An os.write that writes a partial block to the temporary file, then crashes."""
    real_write = os.write

    def fail(fd, data):
        written.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_write(fd, bytes(data)[:10])
        raise RuntimeError("simulated crash while writing")

    return fail


def test_atomic_write_new_file(tmp_path, monkeypatch):
    written: list[str] = []
    monkeypatch.setattr(files.os, "write", _failing_write(written))
    target = tmp_path / "out.nc"
    with pytest.raises(RuntimeError, match="simulated crash"):
        io.write_netcdf(make_dataset(), target)
    assert written and Path(written[0]) != target and Path(written[0]).parent == tmp_path
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []  # the partial temporary file was removed


def test_atomic_write_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.nc"
    io.write_netcdf(make_dataset(), target)
    before = target.read_bytes()
    monkeypatch.setattr(files.os, "write", _failing_write([]))
    with pytest.raises(RuntimeError):
        io.write_netcdf(xr.Dataset({"V": (("x",), np.zeros(2))}), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


def test_engine_selection(tmp_path, monkeypatch):
    monkeypatch.setattr(netcdf, "netcdf_engines", lambda: ("scipy",))
    with pytest.raises(InputError, match="h5netcdf needs the h5py package"):
        io.write_netcdf(make_dataset(), tmp_path / "a.nc", engine="h5netcdf")
    with pytest.raises(InputError, match="engine='netcdf4' is not supported"):
        io.write_netcdf(make_dataset(), tmp_path / "a.nc", engine="netcdf4")
    io.write_netcdf(make_dataset(), tmp_path / "a.nc")
    assert (tmp_path / "a.nc").read_bytes()[:3] == b"CDF"  # NetCDF-3 from scipy
    monkeypatch.setattr(netcdf, "netcdf_engines", lambda: ())
    with pytest.raises(InputError, match="no NetCDF engine"):
        io.write_netcdf(make_dataset(), tmp_path / "b.nc")


@pytest.mark.skipif("h5netcdf" not in io.netcdf_engines(), reason="h5netcdf/h5py not usable")
def test_h5netcdf_round_trip(tmp_path):
    ds = make_dataset()
    path = io.write_netcdf(ds, tmp_path / "h5.nc", engine="h5netcdf")
    assert path.read_bytes()[:4] == b"\x89HDF"
    back = io.read_netcdf(path)
    xr.testing.assert_allclose(back[["V", "other"]], ds[["V", "other"]])
    assert back.attrs["flag"] == 1


def test_hdf5_file_without_h5py_gives_clear_error(tmp_path, monkeypatch):
    (tmp_path / "h.nc").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    monkeypatch.setattr(netcdf, "netcdf_engines", lambda: ("scipy",))
    with pytest.raises(InputError, match="install h5py"):
        io.read_netcdf(tmp_path / "h.nc")


def test_write_requires_dataset(tmp_path):
    with pytest.raises(InputError, match=r"needs an xarray\.Dataset"):
        io.write_netcdf(np.zeros(3), tmp_path / "a.nc")


# ---------------------------------------------------------------------- units of map files
def map_file(tmp_path, name="m.nc", *, units="meV", length="angstrom", step=2.5,
             extra=None, lattice=False):
    V = np.arange(12.0).reshape(3, 4) * 10.0
    vattrs = {"units": "1", "lattice_units": "t"} if lattice else {"units": units}
    cattrs = {"units": "1", "lattice_units": "a"} if lattice else {"units": length}
    data = {"V": (("x", "y"), V, vattrs), **(extra or {})}
    ds = xr.Dataset(data, coords={"x": ("x", step * np.arange(3), cattrs),
                                  "y": ("y", step * np.arange(4), cattrs)})
    return io.write_netcdf(ds, tmp_path / name), V


def test_netcdf_map_in_mev_and_angstrom_converts_to_semiconductor_units(tmp_path):
    path, V0 = map_file(tmp_path)
    V, info = io.load_potential(path)
    assert info["energy_unit"] == "meV" and info["length_unit"] == "angstrom"
    assert info["spacing"] == pytest.approx((2.5, 2.5))
    np.testing.assert_array_equal(V, V0)  # as stored
    Vs, spacing = io.map_in_units(V, info, "semiconductor")
    np.testing.assert_allclose(Vs, V0 * 1e-3)
    assert spacing == pytest.approx((0.25, 0.25))


@pytest.mark.parametrize("length,factor", [("nm", 1.0), ("m", 1e9), ("um", 1e3),
                                           ("\u00c5", 0.1), ("angstrom", 0.1)])
def test_length_units_of_coordinates(tmp_path, length, factor):
    path, _ = map_file(tmp_path, units="eV", length=length, step=2.0)
    V, info = io.load_potential(path)
    _, spacing = io.map_in_units(V, info, "semiconductor")
    assert spacing == pytest.approx((2.0 * factor,) * 2)


def test_lattice_map_written_by_mottscape_reads_back_in_lattice_units(tmp_path):
    path, V0 = map_file(tmp_path, lattice=True, step=1.0)
    V, info = io.load_potential(path)
    assert info["energy_unit"] == "t" and info["length_unit"] == "a"
    Vl, spacing = io.map_in_units(V, info, "lattice")
    np.testing.assert_array_equal(Vl, V0)
    assert spacing == (1.0, 1.0)
    with pytest.raises(InputError, match=r"lattice energy unit 't' but the study uses "
                                         r"semiconductor units"):
        io.map_in_units(V, info, "semiconductor")


def test_physical_map_in_a_lattice_study_is_refused(tmp_path):
    path, _ = map_file(tmp_path, units="eV", length="nm")
    V, info = io.load_potential(path)
    with pytest.raises(InputError, match=r"energy unit 'eV', a physical unit, but the study "
                                         r"uses lattice units.*\[grid\] units"):
        io.map_in_units(V, info, "lattice")


def test_map_without_units_is_in_the_study_units(tmp_path):
    ds = xr.Dataset({"V": (("x",), np.arange(4.0))}, coords={"x": ("x", 0.5 * np.arange(4))})
    path = io.write_netcdf(ds, tmp_path / "plain.nc")
    V, info = io.load_potential(path)
    assert info["energy_unit"] is None and info["length_unit"] is None
    for system in ("lattice", "semiconductor"):
        Vc, spacing = io.map_in_units(V, info, system)
        np.testing.assert_array_equal(Vc, V)
        assert spacing == (0.5,)


def test_reconcile_spacing():
    assert io.reconcile_spacing(None, None) == 1.0
    assert io.reconcile_spacing(None, 0.5) == 0.5
    assert io.reconcile_spacing((0.25, 0.5), None) == (0.25, 0.5)
    assert io.reconcile_spacing((0.25, 0.25), 0.25) == (0.25, 0.25)
    assert io.reconcile_spacing((0.25, 0.5), [0.25, 0.5 * (1 + 1e-9)]) == (0.25, 0.5)
    with pytest.raises(InputError) as info:
        io.reconcile_spacing((0.25, 0.25), 1.0, source="m.nc")
    message = str(info.value)
    assert "[grid] spacing = [1.0, 1.0]" in message and "m.nc" in message
    assert "drop [grid] spacing" in message


def test_mass_map_file_holding_V_and_mass_reads_mass(tmp_path):
    mass = np.full((3, 4), 0.2)
    path, _ = map_file(tmp_path, extra={"mass": (("x", "y"), mass, {"units": "1"})})
    arr, info = io.load_array(path, what="mass map")
    assert info["variable"] == "mass"
    np.testing.assert_array_equal(arr, mass)
    _, info = io.load_potential(path)  # and the potential is still V
    assert info["variable"] == "V"


def test_mottscape_results_read_as_a_potential_map(tmp_path):
    """A results file holds 'potential' among other maps: it is the one read."""
    ds = xr.Dataset({"u": (("x",), np.ones(4)), "potential": (("x",), np.arange(4.0)),
                     "effective_potential": (("x",), np.ones(4))})
    path = io.write_netcdf(ds, tmp_path / "results.nc")
    V, info = io.load_potential(path)
    assert info["variable"] == "potential"
    np.testing.assert_array_equal(V, np.arange(4.0))


def test_load_potential_in_units(tmp_path):
    path, V0 = map_file(tmp_path)  # meV, angstrom, step 2.5
    V, spacing, info = io.load_potential_in_units(path, units="semiconductor")
    np.testing.assert_allclose(V, V0 * 1e-3)
    assert spacing == pytest.approx((0.25, 0.25)) and info["energy_unit"] == "meV"
    V, spacing, _ = io.load_potential_in_units(path, units="semiconductor", spacing=0.25)
    assert spacing == pytest.approx((0.25, 0.25))
    with pytest.raises(InputError, match=r"\[grid\] spacing = \[0.5, 0.5\]"):
        io.load_potential_in_units(path, units="semiconductor", spacing=0.5)
    np.save(tmp_path / "plain.npy", V0)
    V, spacing, _ = io.load_potential_in_units(tmp_path / "plain.npy", units="lattice")
    assert spacing == 1.0
    np.testing.assert_array_equal(V, V0)


@pytest.mark.parametrize("engine", io.netcdf_engines())
def test_large_file_path_writes_the_same_file(tmp_path, monkeypatch, engine):
    """Files too large for memory go through a file object; the result reads back the same."""
    ds = make_dataset()
    small = io.read_netcdf(io.write_netcdf(ds, tmp_path / "mem.nc", engine=engine))
    monkeypatch.setattr(netcdf, "_available_memory", lambda: 1)
    path = io.write_netcdf(ds, tmp_path / "direct.nc", engine=engine)
    monkeypatch.undo()
    xr.testing.assert_identical(io.read_netcdf(path), small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["direct.nc", "mem.nc"]
