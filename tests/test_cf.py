"""Results that other tools read: every kind of output file is CF-1.10 NetCDF.

Each file is opened with netCDF4-python (the reference reader, on the netCDF-C library), not
with xarray; every ``units`` is parsed by UDUNITS-2 through ``cf_units``; lattice units are
``"1"`` plus ``lattice_units``; attributes have only the types classic NetCDF knows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mottscape import exact, io
from mottscape.study import run_study
from mottscape.units import (
    CF_QUANTITIES,
    LATTICE,
    LATTICE_UNITS_ATTR,
    SEMICONDUCTOR,
    cf_unit_attrs,
    parse_unit,
)

netCDF4 = pytest.importorskip("netCDF4")
cf_units = pytest.importorskip("cf_units")

#: Attribute types every NetCDF reader knows (classic NetCDF: byte, short, int, float, double).
PORTABLE = {np.dtype(t) for t in ("int8", "int16", "int32", "float32", "float64")}

STUDY = """
[potential]
model = "block"
shape = [24, 24]
seed = 1
block = 3
width = {width}
[grid]
units = "{units}"
mass = {mass}
[conductivity]
fermi_energy = {ef}
omega_min = {wmin}
omega_max = {wmax}
n_omega = 3
[ensemble]
realizations = 2
[output]
figures = false
"""
SYSTEMS = {
    "lattice": dict(width=4.0, mass=1.0, ef=1.0, wmin=1e-2, wmax=1e-1),
    "semiconductor": dict(width=0.4, mass=0.2, ef=0.25, wmin=1e12, wmax=1e13),
}

#: Expected units of the main results: (lattice_units, UDUNITS unit the semiconductor unit
#: must convert to), for a 2D sample.
EXPECTED_2D = {
    "sigma_ll": ("e^2/hbar", "S"),
    "sigma_mb": ("e^2/hbar", "S"),
    "sigma_ll_mean": ("e^2/hbar", "S"),
    "omega": ("t/hbar", "rad s-1"),
    "hbar_omega": ("t", "J"),
    "fermi_energy": ("t", "J"),
    "delta_xi": ("t", "J"),
    "xi": ("a", "m"),
    "mott_length": ("a", "m"),
    "moment": ("a^4", "m4"),
    "localization_volume": ("a^2", "m2"),
    "nu": ("1/(t a^2)", "J-1 m-2"),
    "potential": ("t", "J"),
    "effective_potential": ("t", "J"),
    "u": ("1/t", "J-1"),
    "x": ("a", "m"),
    "y": ("a", "m"),
}


@pytest.fixture(scope="module", params=sorted(SYSTEMS))
def study_outputs(request, tmp_path_factory):
    """results.nc and the store files of a 2-realization study, in each unit system."""
    units = request.param
    tmp = tmp_path_factory.mktemp(f"cf-{units}")
    path = tmp / "study.toml"
    path.write_text(STUDY.format(units=units, **SYSTEMS[units]))
    result = run_study(path, out=tmp / "out", figures=False, store=tmp / "store")
    files = [tmp / "out" / "results.nc", *sorted((tmp / "store").rglob("*.nc"))]
    assert len(files) >= 2
    return units, files, result.dataset


def check_cf_file(path: Path, system: str | None) -> dict[str, dict]:
    """Open ``path`` with netCDF4 and check the CF rules; return the variables' attributes."""
    with netCDF4.Dataset(path) as nc:
        assert nc.getncattr("Conventions") == "CF-1.10"
        assert "units" not in nc.ncattrs()  # CF: units is a variable attribute
        if system is not None:
            assert nc.getncattr("units_system") == system
        check_attribute_types(nc, "global")
        if system == "lattice":
            assert "lattice_units" in nc.getncattr("lattice_units_convention")
        found = {}
        for name, var in nc.variables.items():
            attrs = {a: var.getncattr(a) for a in var.ncattrs()}
            check_attribute_types(var, name)
            assert isinstance(attrs.get("long_name"), str) and attrs["long_name"].strip(), name
            if var.dtype != str and np.dtype(var.dtype).kind in "iuf":
                unit = attrs.get("units")
                assert isinstance(unit, str), f"{path.name}: {name} has no units"
                cf_units.Unit(unit)  # UDUNITS-2 accepts it (raises ValueError otherwise)
                if LATTICE_UNITS_ATTR in attrs:
                    assert unit == "1", name
                    assert parse_unit(attrs[LATTICE_UNITS_ATTR]) is not None, name
            found[name] = attrs
        return found


def check_attribute_types(obj, where: str) -> None:
    for key in obj.ncattrs():
        value = obj.getncattr(key)
        if isinstance(value, str):
            continue
        dtype = np.asarray(value).dtype
        assert dtype in PORTABLE, f"{where}: attribute {key!r} has type {dtype}"


def test_study_results_and_store_files_are_cf(study_outputs):
    units, files, _ = study_outputs
    for path in files:
        found = check_cf_file(path, units)
        assert "sigma_ll" in found


def test_study_results_have_the_right_units(study_outputs):
    units, files, _ = study_outputs
    found = check_cf_file(files[0], units)
    for name, (lattice, si) in EXPECTED_2D.items():
        attrs = found[name]
        if units == "lattice":
            assert attrs["units"] == "1", name
            assert parse_unit(attrs[LATTICE_UNITS_ATTR]) == parse_unit(lattice), name
        else:
            assert LATTICE_UNITS_ATTR not in attrs, name
            assert cf_units.Unit(attrs["units"]).is_convertible(cf_units.Unit(si)), \
                f"{name}: {attrs['units']!r} is not a {si!r}"
    # The flags are CF flag variables.
    valid = found["valid"]
    assert list(valid["flag_values"]) == [0, 1] and valid["flag_meanings"] == "false true"


def test_semiconductor_values_are_in_the_units_written(study_outputs):
    """The values are those computed, in the units written (UDUNITS counts rad as 1, so the
    angular frequency in rad/s reads as s-1 with the same numbers)."""
    units, files, ds = study_outputs
    if units != "semiconductor":
        pytest.skip("semiconductor only")
    with netCDF4.Dataset(files[0]) as nc:
        w = nc.variables["omega"]
        per_s = cf_units.Unit(w.units).convert(np.asarray(w[:]), cf_units.Unit("s-1"))
        np.testing.assert_allclose(per_s, ds.omega.values, rtol=1e-12)
        nm = cf_units.Unit(nc.variables["x"].units).convert(np.asarray(nc.variables["x"][:]),
                                                            cf_units.Unit("m"))
        np.testing.assert_allclose(nm, ds.x.values * 1e-9, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(nc.variables["sigma_mb"][:]),
                                   ds.sigma_mb.values, rtol=1e-12)


def test_files_round_trip_through_mottscape(study_outputs):
    """What write_netcdf writes, read_netcdf reads; the store's files are read back."""
    _, files, ds = study_outputs
    back = io.read_netcdf(files[0])
    np.testing.assert_allclose(back.sigma_mb.values, ds.sigma_mb.values, rtol=1e-12)
    assert json.loads(back.attrs["study"])["potential"]["model"] == "block"


@pytest.mark.parametrize("units", ["lattice", "semiconductor"])
@pytest.mark.parametrize("engine", io.netcdf_engines())
def test_exact_results_are_cf(tmp_path, units, engine):
    V = np.repeat(np.random.default_rng(3).random(8) * (4.0 if units == "lattice" else 0.4), 2)
    ef = 1.0 if units == "lattice" else 0.1
    hw = np.array([0.01, 0.1, 0.5]) * (1.0 if units == "lattice" else 0.1)
    edges = hw / (1.0 if units == "lattice" else SEMICONDUCTOR.hbar)
    kg = exact.kubo_greenwood(V, ef, edges, units=units)
    dos = exact.exact_dos(V, [0.5 * ef, ef, 2 * ef], units=units)
    for name, ds in (("kg", kg), ("dos", dos)):
        path = io.write_netcdf(ds, tmp_path / f"{name}.nc", engine=engine)
        found = check_cf_file(path, units)
        if name == "kg" and units == "lattice":
            assert found["sigma"][LATTICE_UNITS_ATTR] == "e^2 a/hbar"
            assert found["omega_lower"][LATTICE_UNITS_ATTR] == "t/hbar"
        if name == "kg" and units == "semiconductor":
            assert found["sigma"]["units"] == "S m"


def odd_dataset() -> xr.Dataset:
    """Attributes and variables of every awkward type a caller may put in a Dataset."""
    return xr.Dataset(
        {"V": (("x",), np.arange(4.0), {"units": "hopping t", "nested": {"a": {"b": [1, 2]}},
                                        "flag": np.bool_(True), "big": 2**40,
                                        "u8": np.array([1, 2], dtype=np.uint8),
                                        "i64": np.array([1, 2**40], dtype=np.int64)}),
         "mask": (("x",), np.array([True, False, True, False])),
         "label": (("x",), np.array(["a", "bb", "ccc", "d"])),
         "count": (("x",), np.arange(4, dtype=np.int64))},
        coords={"x": ("x", np.arange(4) + 0.5, {"units": "a"})},
        attrs={"units": "lattice", "seed": 2**63 - 1, "npint": np.int64(5), "none": None,
               "empty": [], "mixed": [1, "a"], "bools": [True, False], "f32": np.float32(1.5),
               "matrix": np.eye(2), "text": "\u00c5 \u03c1_\u03c9", "path": Path("/tmp/x"),
               "u64": np.uint64(7), "c": 1 + 2j},
    )


@pytest.mark.parametrize("engine", io.netcdf_engines())
def test_awkward_attributes_become_portable(tmp_path, engine):
    path = io.write_netcdf(odd_dataset(), tmp_path / "odd.nc", engine=engine)
    found = check_cf_file(path, "lattice")
    with netCDF4.Dataset(path) as nc:
        g = {k: nc.getncattr(k) for k in nc.ncattrs()}
    assert g["seed"] == str(2**63 - 1)  # exact, as text
    assert g["npint"] == 5 and np.asarray(g["npint"]).dtype == np.int32
    assert g["none"] == "none" and g["empty"] == "[]" and json.loads(g["mixed"]) == [1, "a"]
    assert list(g["bools"]) == [1, 0] and np.asarray(g["bools"]).dtype == np.int8
    assert json.loads(g["matrix"]) == [[1.0, 0.0], [0.0, 1.0]]
    assert g["text"] == "\u00c5 \u03c1_\u03c9"
    assert g["u64"] == 7 and g["c"] == "(1+2j)"
    v = found["V"]
    assert v["units"] == "1" and v[LATTICE_UNITS_ATTR] == "t"
    assert json.loads(v["nested"]) == {"a": {"b": [1, 2]}}
    assert v["big"] == str(2**40)
    assert np.asarray(v["u8"]).dtype == np.int32
    assert np.asarray(v["i64"]).dtype == np.float64 and list(v["i64"]) == [1.0, 2.0**40]
    assert found["x"]["units"] == "1" and found["x"][LATTICE_UNITS_ATTR] == "a"
    assert found["mask"]["flag_meanings"] == "false true"
    assert found["count"]["long_name"] == "count" and found["count"]["units"] == "1"


@pytest.mark.parametrize("system", [LATTICE, SEMICONDUCTOR], ids=lambda s: s.name)
@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("quantity", CF_QUANTITIES)
def test_cf_units_of_every_quantity_parse(system, ndim, quantity):
    attrs = system.cf_units(quantity, ndim)
    unit = cf_units.Unit(attrs["units"])
    if system.name == "lattice":
        assert attrs["units"] == "1"
        if quantity != "dimensionless":
            assert parse_unit(attrs[LATTICE_UNITS_ATTR])
    else:
        si = {"dimensionless": "1", "energy": "J", "inverse_energy": "J-1", "length": "m",
              "volume": f"m{ndim}", "inverse_volume": f"m-{ndim}", "moment": f"m{ndim + 2}",
              "omega": "s-1", "sigma": f"S m{2 - ndim}", "dos": f"J-1 m-{ndim}",
              "mass": "kg"}[quantity]
        assert unit.is_convertible(cf_units.Unit(si)), (attrs, si)


def test_semiconductor_conversions_are_exact():
    """The strings written mean what the semiconductor system computes in."""
    ev = cf_units.Unit(SEMICONDUCTOR.cf_units("energy")["units"])
    assert ev.convert(1.0, cf_units.Unit("J")) == pytest.approx(1.602176634e-19, rel=1e-9)
    me = cf_units.Unit(SEMICONDUCTOR.cf_units("mass")["units"])
    assert me.convert(1.0, cf_units.Unit("kg")) == pytest.approx(9.1093837015e-31, rel=1e-9)
    s3 = cf_units.Unit(SEMICONDUCTOR.cf_units("sigma", 1)["units"])
    assert s3.convert(1.0, cf_units.Unit("S m")) == 1.0


@pytest.mark.parametrize("text", ["a", "t", "hopping t", "a^2", "t/hbar", "e^2/hbar * a^-1",
                                  "1/(hopping t * a^3)"])
def test_lattice_units_are_never_written_as_udunits(text):
    """'a' parses as the are (100 m^2) and 't' as the tonne: never leave them in units."""
    attrs = cf_unit_attrs(text, "lattice")
    assert attrs["units"] == "1"
    assert parse_unit(attrs[LATTICE_UNITS_ATTR]) == parse_unit(text)


@pytest.mark.parametrize("text,expected", [("S*m", "S m"), ("1/(eV * nm^2)", "1/(eV nm^2)"),
                                           ("eV", "eV"), ("rad/s", "rad/s"),
                                           ("days since 2000-01-01", "days since 2000-01-01"),
                                           ("K", "K")])
def test_physical_units_are_normalised_for_udunits(text, expected):
    assert cf_unit_attrs(text, "semiconductor") == {"units": expected}
    cf_units.Unit(expected)


def test_netcdf3_file_is_read_by_netcdf4(tmp_path):
    path = io.write_netcdf(odd_dataset(), tmp_path / "n3.nc", engine="scipy")
    with netCDF4.Dataset(path) as nc:
        assert nc.data_model == "NETCDF3_64BIT_OFFSET"
        assert nc.getncattr("Conventions") == "CF-1.10"


VALIDATION = """
[potential]
model = "block"
shape = [2048]
seed = 2026
block = 8
width = 4.0
[conductivity]
fermi_energy = 1.0
omega_min = 1.5e-2
omega_max = 0.15
n_omega = 3
[ensemble]
realizations = 2
"""


def test_validation_file_is_cf(tmp_path):
    from mottscape.validation import validate

    path = tmp_path / "v.toml"
    path.write_text(VALIDATION)
    validate(path, out=tmp_path / "out")
    found = check_cf_file(tmp_path / "out" / "validation.nc", None)
    assert "omega" in found


def test_dimensional_variables_carry_their_units(tmp_path):
    from mottscape.validation import validate

    path = tmp_path / "v.toml"
    path.write_text(VALIDATION)
    validate(path, out=tmp_path / "out")
    found = check_cf_file(tmp_path / "out" / "validation.nc", None)
    for name in ("sigma_exact", "sigma_ll", "nu", "xi", "omega", "delta_xi"):
        assert LATTICE_UNITS_ATTR in found[name], name
    assert found["xi"][LATTICE_UNITS_ATTR] == "a"
    assert found["sigma_exact"][LATTICE_UNITS_ATTR] == "e^2 a/hbar"  # 1D: e^2/hbar L^(2-d)


def test_exact_dos_energy_carries_its_unit(tmp_path):
    V = np.repeat(np.random.default_rng(3).random(8) * 4.0, 2)
    dos = io.write_netcdf(exact.exact_dos(V, [0.5, 1.0, 2.0]), tmp_path / "dos.nc")
    assert check_cf_file(dos, "lattice")["energy"][LATTICE_UNITS_ATTR] == "t"


def test_display_unit_reads_both_conventions():
    from mottscape.units import display_unit

    assert display_unit(LATTICE.cf_units("sigma", 3)) == "e^2/(hbar a)"
    assert display_unit(SEMICONDUCTOR.cf_units("sigma", 3)) == "S/m"
    assert display_unit({"units": "hopping t"}) == "hopping t"
    assert display_unit({}) == ""
