"""A second corpus of bad inputs: every one is answered by an InputError whose message names
the argument (or file) and says what to do.

Covers the functions of grid.py (as_potential, as_mass, make_grid), disorder.py, io.py
(load_potential, load_array, map_in_units, reconcile_spacing, write_netcdf, check_output_dir,
cf_dataset) and units.py. ``CLI_CASES`` at the end lists command-line expectations.
"""

from __future__ import annotations

import datetime
import io as pyio
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mottscape import disorder, io
from mottscape.errors import InputError
from mottscape.grid import as_mass, as_potential, make_grid
from mottscape.units import LATTICE, SEMICONDUCTOR, energy_factor, length_factor


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Path], object]  # receives a fresh temporary directory
    fragments: tuple[str, ...]


CASES: list[Case] = []


def case(id: str, call: Callable[[Path], object], *fragments: str) -> None:
    CASES.append(Case(id, call, fragments))


def const(f: Callable[[], object]) -> Callable[[Path], object]:
    return lambda _tmp: f()


# ---------------------------------------------------------------------- as_potential
masked = np.ma.masked_array([[1.0, 2.0], [3.0, 4.0]], mask=[[0, 1], [0, 0]])
for cid, V, frags in [
    ("masked", masked, ("V is a masked array with 1 masked cells", "V.filled(value)")),
    ("all-masked", np.ma.masked_all((3, 3)), ("9 masked cells", "fill them")),
    ("bool-array", np.array([True, False]), ("V holds booleans", "np.where(mask")),
    ("bool-list", [[True, False], [False, True]], ("V holds booleans", "np.where")),
    ("bool-xarray", xr.DataArray(np.ones((2, 2), bool)), ("V holds booleans",)),
    ("numeral-strings", np.array(["1", "2"]), ("V holds strings", "dtype=float")),
    ("word-strings", np.array(["a", "b"]), ("V holds strings", "convert them")),
    ("bytes-array", np.array([b"1", b"2"]), ("V holds byte strings", "convert")),
    ("datetime", np.array(["2020-01-01"], dtype="datetime64[D]"), ("V holds dates",
                                                                    "real energies")),
    ("timedelta", np.array([1, 2], dtype="timedelta64[s]"), ("V holds time differences",)),
    ("structured", np.zeros(3, dtype=[("a", float)]), ("V holds structured records",
                                                       "one numeric field")),
    ("object-str", np.array([1.0, "1.5"], dtype=object), ("V holds Python objects",
                                                          "str '1.5'")),
    ("object-none", np.array([None, 1.0], dtype=object), ("V holds Python objects",
                                                          "NoneType")),
    ("object-bool", np.array([True, 1.0], dtype=object), ("V holds Python objects",)),
    ("dict", {"V": [1, 2]}, ("V must be a numeric array", "got dict", "numpy array")),
    ("set", {1.0, 2.0}, ("V must be a numeric array", "got set")),
    ("callable", lambda: 1, ("V must be a numeric array", "got function")),
    ("none", None, ("V must be a numeric array", "load_potential")),
    ("file-name", "map.npy", ("V must be a numeric array", "load_potential")),
    ("bytes", b"\x00\x01", ("V must be a numeric array",)),
    ("complex", np.ones(3) + 1j, ("V is complex", "V.real")),
    ("ragged", [[1.0, 2.0], [3.0]], ("V must be a numeric array",)),
    ("scalar", 3.0, ("V has 0 dimensions", "1D, 2D or 3D")),
    ("4d", np.zeros((2, 2, 2, 2)), ("V has 4 dimensions", "1D, 2D or 3D")),
    ("empty", np.zeros((2, 0)), ("V is empty", "at least one cell")),
    ("nan", np.array([0.0, np.nan]), ("V contains 1 NaN", "finite energies")),
    ("inf", np.array([[0.0, -np.inf]]), ("V contains 1 NaN or infinite", "index (0, 1)")),
    ("huge", np.array([0.0, 1e200]), ("above the accepted 1e+150", "larger energy unit")),
    ("huge-negative", np.array([-1e151, 0.0]), ("|V| = 1e+151", "larger energy unit")),
]:
    case(f"as_potential-{cid}", const(lambda V=V: as_potential(V)), *frags)

case("as_potential-named", const(lambda: as_potential(np.array([True]), name="the map")),
     "the map holds booleans")

# ---------------------------------------------------------------------- as_mass
S = (2, 2)
for cid, m, frags in [
    ("masked", np.ma.masked_array(np.ones(S), mask=[[1, 0], [0, 0]]),
     ("mass is a masked array", "mass.filled(value)")),
    ("bool", True, ("mass=True must be a positive number", "reference mass")),
    ("bool-array", np.ones(S, bool), ("mass holds booleans",)),
    ("strings", np.array([["1", "1"], ["1", "1"]]), ("mass holds strings", "numbers")),
    ("string", "0.2", ("mass='0.2' must be a positive number",)),
    ("dict", {"m": 1}, ("mass={'m': 1} must be a positive number",)),
    ("none", None, ("mass=None must be a positive number",)),
    ("complex", np.ones(S) * (1 + 1j), ("mass is complex", "mass.real")),
    ("ragged", [[1.0, 1.0], [1.0]], ("mass must be a number or an array",)),
    ("shape", np.ones((3, 3)), ("mass has shape (3, 3) but V has shape (2, 2)",
                                "same shape as V")),
    ("nan", np.array([[1.0, np.nan], [1.0, 1.0]]), ("mass contains NaN", "finite")),
    ("zero", 0.0, ("mass must be > 0 everywhere", "positive multiples")),
    ("negative", -np.ones(S), ("mass must be > 0", "minimum given: -1")),
    ("tiny", 1e-40, ("outside the accepted range [1e-30, 1e+30]", "check the map's unit")),
    ("huge", np.full(S, 1e40), ("outside the accepted range", "reference mass")),
    ("datetime", np.full(S, np.datetime64("2020-01-01")), ("mass holds dates",)),
    ("object", np.array([[1, "x"], [1, 1]], dtype=object), ("mass holds Python objects",)),
]:
    case(f"as_mass-{cid}", const(lambda m=m: as_mass(m, S)), *frags)

# ---------------------------------------------------------------------- make_grid
for cid, shape, spacing, frags in [
    ("spacing-1e-300", (4,), 1e-300, ("spacing=1e-300 is outside the accepted range",
                                      "express lengths in a unit")),
    ("spacing-1e300", (4,), 1e300, ("spacing=1e+300 is outside", "[1e-30, 1e+30]")),
    ("spacing-1e-31", (4, 4), 1e-31, ("spacing=1e-31", "e.g. nm instead of m")),
    ("spacing-per-axis-huge", (4, 4), [1.0, 1e31], ("spacing=[1.0, 1e+31] is outside",)),
    ("spacing-float32-tiny", (4,), np.float32(1e-40), ("is outside the accepted range",)),
    ("spacing-bool", (4,), True, ("spacing=True is not a number", "positive number")),
    ("spacing-string", (4,), "1.0", ("spacing='1.0' is not a number",)),
    ("spacing-bytes", (4,), b"1", ("spacing=b'1' is not a number",)),
    ("spacing-none", (4,), None, ("spacing=None is not a number",)),
    ("spacing-complex", (4,), 1j, ("spacing=1j is not a number",)),
    ("spacing-nested", (4,), [[1.0]], ("spacing=[[1.0]] is not a number",)),
    ("spacing-dict", (4,), {"x": 1.0}, ("is not a number", "cell size per axis")),
    ("spacing-nan", (4,), float("nan"), ("spacing=nan must be finite and > 0",)),
    ("spacing-negative", (4,), -1.0, ("spacing=-1.0 must be finite and > 0",)),
    ("spacing-zero", (4, 4), [1.0, 0.0], ("must be finite and > 0 along every axis",)),
    ("spacing-count", (4, 4), [1.0, 1.0, 1.0], ("sequence of 2 values", "one per axis")),
    ("shape-string", "44", 1.0, ("shape='44' must be a sequence of 1 to 3 ints",)),
    ("shape-int", 4, 1.0, ("shape=4 must be a sequence of 1 to 3 ints",)),
    ("shape-none", None, 1.0, ("shape=None must be a sequence",)),
    ("shape-float", (4.0,), 1.0, ("must hold integers",)),
    ("shape-bool", (True, 4), 1.0, ("must hold integers",)),
    ("shape-zero", (0, 4), 1.0, ("at least one cell",)),
    ("shape-astronomic", (10**20,) * 3, 1.0, ("more than any machine can hold",
                                             "smaller sample")),
    ("shape-4d", (1, 1, 1, 1), 1.0, ("4 dimensions", "1D, 2D and 3D")),
]:
    case(f"make_grid-{cid}", const(lambda sh=shape, sp=spacing: make_grid(sh, sp)), *frags)

for cid, boundary in [("open", "open"), ("none", None), ("int", 1)]:
    case(f"make_grid-boundary-{cid}", const(lambda b=boundary: make_grid((4,), 1.0, b)),
         f"boundary={boundary!r} is not supported", "dirichlet")

# ---------------------------------------------------------------------- disorder generators
G = disorder.generate
for cid, kwargs, frags in [
    ("gaussian-corr-1e300", dict(model="gaussian", shape=(8,), correlation_length=1e300),
     ("correlation_length=1e+300 is outside the accepted range", "unit")),
    ("gaussian-corr-1e-300", dict(model="gaussian", shape=(8,), correlation_length=1e-300),
     ("correlation_length=1e-300 is outside",)),
    ("gaussian-spacing-1e-300", dict(model="gaussian", shape=(8,), correlation_length=1.0,
                                     spacing=1e-300), ("spacing=1e-300 is outside",)),
    ("gaussian-too-many-cells", dict(model="gaussian", shape=(8,), correlation_length=1e7),
     ("correlation_length spans up to 1e+07 grid cells", "periodic=True")),
    ("gaussian-amplitude-huge", dict(model="gaussian", shape=(8,), correlation_length=1.0,
                                     amplitude=1e308), ("amplitude=1e+308", "larger unit")),
    ("gaussian-mean-inf", dict(model="gaussian", shape=(8,), correlation_length=1.0,
                               mean=float("inf")), ("mean=inf must be finite",)),
    ("gaussian-corr-string", dict(model="gaussian", shape=(8,), correlation_length="1"),
     ("correlation_length='1' must be a real number",)),
    ("gaussian-corr-count", dict(model="gaussian", shape=(8, 8), correlation_length=[1, 2, 3]),
     ("correlation_length=[1, 2, 3] must be a scalar or a sequence of 2 values",)),
    ("gaussian-periodic-string", dict(model="gaussian", shape=(8,), correlation_length=1.0,
                                      periodic="yes"), ("periodic='yes' must be True or False",)),
    ("alloy-spacing-1e-300", dict(model="binary_alloy", shape=(8,), concentration=0.5, v_a=0.0,
                                  v_b=1.0, spacing=1e-300), ("spacing=1e-300 is outside",)),
    ("alloy-smoothing-1e300", dict(model="binary_alloy", shape=(8,), concentration=0.5,
                                   v_a=0.0, v_b=1.0, smoothing_length=1e300),
     ("smoothing_length spans up to", "smaller smoothing_length")),
    ("alloy-concentration", dict(model="binary_alloy", shape=(8,), concentration=1.5, v_a=0.0,
                                 v_b=1.0), ("concentration=1.5 must be a fraction in [0, 1]",)),
    ("alloy-concentration-bool", dict(model="binary_alloy", shape=(8,), concentration=True,
                                      v_a=0.0, v_b=1.0),
     ("concentration=True must be a real number",)),
    ("alloy-v_a-huge", dict(model="binary_alloy", shape=(8,), concentration=0.5, v_a=1e308,
                            v_b=0.0), ("v_a=1e+308 is larger in magnitude",)),
    ("white-noise-spacing", dict(model="white_noise", shape=(8,), strength=1.0,
                                 spacing=1e-320), ("spacing=1e-320 is outside",)),
    ("white-noise-strength", dict(model="white_noise", shape=(8,), strength=1e300),
     ("strength/spacing = 1e+300", "smaller strength")),
    ("white-noise-2d", dict(model="white_noise", shape=(4, 4), strength=1.0),
     ("white_noise is one-dimensional", "number of cells")),
    ("anderson-width-huge", dict(model="anderson", shape=(8,), width=1e308),
     ("width=1e+308 is larger in magnitude", "larger unit")),
    ("anderson-offset-inf", dict(model="anderson", shape=(8,), offset=-float("inf")),
     ("offset=-inf must be finite",)),
    ("anderson-width-array", dict(model="anderson", shape=(8,), width=np.array([1.0, 2.0])),
     ("width=array([1., 2.]) must be a real number",)),
    ("anderson-width-negative", dict(model="anderson", shape=(8,), width=-1.0),
     ("width=-1.0 must be >= 0",)),
    ("anderson-seed-negative", dict(model="anderson", shape=(8,), seed=-1),
     ("seed=-1 is not valid", "non-negative int")),
    ("anderson-seed-float", dict(model="anderson", shape=(8,), seed=1.5),
     ("seed=1.5 is not valid",)),
    ("anderson-seed-none", dict(model="anderson", shape=(8,), seed=None),
     ("seed is required", "reproduced")),
    ("anderson-shape-zero", dict(model="anderson", shape=(0,)), ("every axis length",
                                                                  "int >= 1")),
    ("anderson-shape-4d", dict(model="anderson", shape=(2, 2, 2, 2)), ("has 4 axes",)),
    ("anderson-shape-huge", dict(model="anderson", shape=(10**6, 10**6, 10**6)),
     ("needs about", "smaller sample")),
    ("block-zero", dict(model="block", shape=(8,), block=0), ("block=0 is not valid",
                                                             "int >= 1")),
    ("block-bool", dict(model="block", shape=(8,), block=True), ("block=True is not valid",)),
    ("block-count", dict(model="block", shape=(8,), block=[2, 2]),
     ("block=[2, 2] is not valid", "1 values")),
    ("unknown-model", dict(model="andersen", shape=(8,)), ("model='andersen'",
                                                           "did you mean 'anderson'")),
    ("unknown-parameter", dict(model="anderson", shape=(8,), widht=1.0),
     ("does not take parameter(s) 'widht'", "did you mean 'width'")),
    ("missing-parameter", dict(model="binary_alloy", shape=(8,), v_a=0.0, v_b=1.0),
     ("needs parameter(s) concentration",)),
]:
    kwargs = {"seed": 0, **kwargs}
    case(f"disorder-{cid}", const(lambda kw=kwargs: G(**kw)), *frags)


# ---------------------------------------------------------------------- map files
def write_bytes(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        p = tmp / name
        p.write_bytes(data)
        return p
    return make


def npy_bytes(header: dict, data: bytes = b"") -> bytes:
    buf = pyio.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def npz_of(members: dict[str, bytes]) -> bytes:
    buf = pyio.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return buf.getvalue()


def npy_of(arr: np.ndarray) -> bytes:
    buf = pyio.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def long_header_npy() -> bytes:
    """A valid-looking .npy whose header is 20 kB long (numpy refuses > 10 kB)."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }"
    header = header + " " * 20000 + "\n"
    raw = header.encode("latin1")
    return b"\x93NUMPY\x02\x00" + len(raw).to_bytes(4, "little") + raw + b"\0" * 16


F8 = {"descr": "<f8", "fortran_order": False}
RANDOM = np.random.default_rng(7).bytes(4096)


def load(make: Callable[[Path], Path], **kwargs) -> Callable[[Path], object]:
    return lambda tmp: io.load_potential(make(tmp), **kwargs)


def load_mass(make: Callable[[Path], Path]) -> Callable[[Path], object]:
    return lambda tmp: io.load_array(make(tmp), what="mass map")


def netcdf(name: str, ds: xr.Dataset) -> Callable[[Path], Path]:
    return lambda tmp: io.write_netcdf(ds, tmp / name)


def netcdf_raw(name: str, ds: xr.Dataset) -> Callable[[Path], Path]:
    """Written by xarray itself (keeps _FillValue encodings and odd dtypes)."""
    def make(tmp: Path) -> Path:
        ds.to_netcdf(tmp / name, engine="h5netcdf")
        return tmp / name
    return make


x4 = {"x": ("x", np.arange(4.0), {"units": "nm"})}
for cid, call, frags in [
    ("npz-random-bytes", load(write_bytes("m.npz", RANDOM)),
     ("is not a valid .npz file", "np.savez")),
    ("npy-random-bytes", load(write_bytes("m.npy", RANDOM)),
     ("is not a valid .npy file", "np.save")),
    ("npz-empty-file", load(write_bytes("m.npz", b"")), ("is not a valid .npz file",)),
    ("npy-empty-file", load(write_bytes("m.npy", b"")), ("is not a valid .npy file",)),
    ("npz-long-header", load(write_bytes("m.npz", npz_of({"V": long_header_npy()}))),
     ("header is longer than 10000 bytes", "save the array again")),
    ("npy-long-header", load(write_bytes("m.npy", long_header_npy())),
     ("header is longer than 10000 bytes",)),
    ("npz-huge-shape", load(write_bytes("m.npz", npz_of(
        {"V": npy_bytes({**F8, "shape": (10**6, 10**6, 10**3)})}))),
     ("array 'V' in", "needs about", "GiB")),
    ("npz-header-lies", load(write_bytes("m.npz", npz_of(
        {"V": npy_bytes({**F8, "shape": (1000, 1000)}, b"\0" * 64)}))),
     ("declares shape (1000, 1000)", "truncated or damaged")),
    ("npy-header-lies", load(write_bytes("m.npy", npy_bytes({**F8, "shape": (1000, 1000)},
                                                             b"\0" * 64))),
     ("declares shape (1000, 1000) (8,000,000 bytes)", "holds only 64 bytes")),
    ("npz-member-not-npy", load(write_bytes("m.npz", npz_of({"V": b"hello world"}))),
     ("array 'V' in", "is not a .npy array", "np.savez")),
    ("npz-damaged-zip", load(write_bytes("m.npz", b"PK\x03\x04" + RANDOM)),
     ("is not a valid .npz file",)),
    ("npz-is-npy", load(write_bytes("m.npz", npy_of(np.ones(3)))),
     ("single .npy array named .npz", "rename it to .npy")),
    ("npy-is-npz", load(write_bytes("m.npy", npz_of({"V": npy_of(np.ones(3))}))),
     ("zip archive", "rename it to .npz")),
    ("npy-bool", load(write_bytes("m.npy", npy_of(np.ones(3, bool)))),
     ("potential in", "dtype bool", "np.where")),
    ("npy-datetime", load(write_bytes("m.npy", npy_of(np.array(["2020-01-01"], "M8[D]")))),
     ("dates (datetime64)",)),
    ("npy-strings", load(write_bytes("m.npy", npy_of(np.array(["1", "2"])))),
     ("strings", "dtype=float")),
    ("npy-complex", load(write_bytes("m.npy", npy_of(np.ones(3) * 1j))),
     ("complex numbers", "real part")),
    ("npz-bool", load(write_bytes("m.npz", npz_of({"V": npy_of(np.ones(3, bool))}))),
     ("dtype bool",)),
    ("npz-structured", load(write_bytes("m.npz", npz_of(
        {"V": npy_of(np.zeros(3, dtype=[("a", "<f8"), ("b", "<f8")]))}))),
     ("structured records", "one field")),
    ("netcdf-two-variables-hint", load(netcdf("m.nc", xr.Dataset(
        {"a": ("x", np.ones(4)), "b": ("x", np.ones(4))}))),
     ("none is named 'V' or 'potential'", 'variable = "<name>" under [potential]')),
    ("netcdf-mass-two-variables", load_mass(netcdf("m.nc", xr.Dataset(
        {"a": ("x", np.ones(4)), "b": ("x", np.ones(4))}))),
     ("none is named 'mass'", "name the mass variable 'mass'", "[grid] mass")),
    ("netcdf-fill-values", load(netcdf_raw("m.nc", xr.Dataset(
        {"V": ("x", np.array([1.0, np.nan, 2.0, 3.0]), {}, {"_FillValue": -999.0})}))),
     ("'V' in", "1 missing values", "_FillValue", "fill them")),
    ("netcdf-mixed-length-units", load(netcdf("m.nc", xr.Dataset(
        {"V": (("x", "y"), np.ones((3, 3)))},
        coords={"x": ("x", np.arange(3.0), {"units": "nm"}),
                "y": ("y", np.arange(3.0), {"units": "angstrom"})}))),
     ("different units (x: nm, y: angstrom)", "same length unit")),
    ("netcdf-zigzag-coordinate", load(netcdf("m.nc", xr.Dataset(
        {"V": ("x", np.ones(4))}, coords={"x": [0.0, 1.0, 0.5, 2.0]}))),
     ("coordinate 'x'", "not strictly monotonic", "uniformly spaced")),
    ("netcdf-bool-variable", load(netcdf_raw("m.nc", xr.Dataset(
        {"V": ("x", np.array([True, False, True]))}))),
     ("dtype bool",)),
    ("npy-variable-empty", load(write_bytes("m.npz", npz_of({"V": npy_of(np.ones(3))})),
                                variable=""), ("variable='' must be the name",)),
    ("npy-variable-int", load(write_bytes("m.npz", npz_of({"V": npy_of(np.ones(3))})),
                              variable=3), ("variable=3 must be the name",)),
    ("path-none", const(lambda: io.load_potential(None)), ("path=None must be a file name",)),
    ("path-int", const(lambda: io.load_potential(3)), ("path=3 must be a file name",)),
    ("path-bytes", const(lambda: io.load_potential(b"m.npy")),
     ("path=b'm.npy' must be a file name",)),
    ("path-directory", lambda tmp: io.load_potential(tmp / "d.npy"),
     ("does not exist (or is not a regular file)",)),
]:
    case(f"file-{cid}", call, *frags)


def units_case(info: dict, system: str) -> Callable[[Path], object]:
    return const(lambda: io.map_in_units(np.ones(3), {"source": "m.nc", "spacing": (1.0,),
                                                      **info}, system))


for cid, call, frags in [
    ("ev-in-lattice", units_case({"energy_unit": "eV"}, "lattice"),
     ("energy unit 'eV', a physical unit", "[grid] units = 'semiconductor'")),
    ("t-in-semiconductor", units_case({"energy_unit": "t"}, "semiconductor"),
     ("lattice energy unit 't'", "[grid] units = 'lattice'")),
    ("unknown-energy", units_case({"energy_unit": "furlong"}, "semiconductor"),
     ("energy unit 'furlong', which mottscape does not know", "meV",
      "remove the units attribute")),
    ("nm-in-lattice", units_case({"length_unit": "nm"}, "lattice"),
     ("coordinates of the potential", "length unit 'nm', a physical unit")),
    ("a-in-semiconductor", units_case({"length_unit": "a"}, "semiconductor"),
     ("lattice length unit 'a'",)),
    ("unknown-length", units_case({"length_unit": "parsec"}, "semiconductor"),
     ("length unit 'parsec'", "angstrom")),
    ("overflow", const(lambda: io.map_in_units(np.array([1e300]), {"energy_unit": "J"},
                                                "semiconductor")),
     ("overflows float64", "'J'")),
    ("bad-system", units_case({}, "imperial"), ("units='imperial' is not a known unit system",
                                                "lattice")),
    ("energy-factor-lattice", const(lambda: energy_factor("J", "lattice", where="V")),
     ("V is in energy unit 'J'",)),
    ("length-factor-unknown", const(lambda: length_factor("yard", SEMICONDUCTOR)),
     ("length unit 'yard'",)),
    ("spacing-conflict", const(lambda: io.reconcile_spacing((0.5,), 1.0, source="m.nc")),
     ("[grid] spacing = [1.0]", "'m.nc' give a spacing of [0.5]", "drop [grid] spacing")),
    ("spacing-conflict-per-axis", const(lambda: io.reconcile_spacing((1.0, 0.5), [1.0, 1.0])),
     ("give a spacing of [1.0, 0.5]",)),
    ("spacing-not-number", const(lambda: io.reconcile_spacing((1.0,), "x")),
     ("[grid] spacing = 'x' must be a number",)),
    ("cf-quantity", const(lambda: LATTICE.cf_units("speed")),
     ("quantity='speed' is not known", "energy")),
    ("cf-ndim", const(lambda: SEMICONDUCTOR.cf_units("dos", 4)), ("ndim=4 must be 1, 2 or 3",)),
]:
    case(f"units-{cid}", call, *frags)

# ---------------------------------------------------------------------- output
DS = xr.Dataset({"a": ("x", np.ones(3))})
for cid, call, frags in [
    ("write-path-none", const(lambda: io.write_netcdf(DS, None)),
     ("path=None must be a file name", "results.nc")),
    ("write-path-bytes", const(lambda: io.write_netcdf(DS, b"r.nc")), ("path=b'r.nc'",)),
    ("write-path-empty", const(lambda: io.write_netcdf(DS, "")), ("path='' must be",)),
    ("write-directory", lambda tmp: io.write_netcdf(DS, tmp),
     ("is a directory", "results.nc")),
    ("write-units", lambda tmp: io.write_netcdf(DS, tmp / "r.nc", units="imperial"),
     ("units='imperial' is not a known unit system",)),
    ("write-engine", lambda tmp: io.write_netcdf(DS, tmp / "r.nc", engine="netcdf4"),
     ("engine='netcdf4' is not supported", "h5netcdf")),
    ("write-not-dataset", lambda tmp: io.write_netcdf({"a": 1}, tmp / "r.nc"),
     ("write_netcdf needs an xarray.Dataset", "dict")),
    ("write-dataarray", lambda tmp: io.write_netcdf(DS.a, tmp / "r.nc"),
     ("needs an xarray.Dataset, got DataArray",)),
    ("cf-not-dataset", const(lambda: io.cf_dataset(np.zeros(3))),
     ("cf_dataset needs an xarray.Dataset",)),
    ("out-dir-is-file", lambda tmp: io.check_output_dir(write_bytes("out", b"x")(tmp)),
     ("is an existing file, not a directory", "choose another name")),
    ("out-dir-below-file", lambda tmp: io.check_output_dir(write_bytes("f", b"x")(tmp) / "o"),
     ("is a file, not a directory",)),
    ("out-dir-none", const(lambda: io.check_output_dir(None)), ("must be a directory name",)),
]:
    case(f"output-{cid}", call, *frags)


def test_corpus_size():
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case, tmp_path):
    with pytest.raises(InputError) as info:
        c.call(tmp_path)
    message = str(info.value)
    for fragment in c.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "allow_pickle" not in message  # numpy's advice is not ours
    assert "Traceback" not in message


# ---------------------------------------------------------------------- no crash, bounded time
@pytest.mark.parametrize("spacing", [1e-300, 1e300, 5e-324])
def test_extreme_spacing_never_reaches_the_solvers(spacing):
    """Before: ZeroDivisionError/OverflowError deep in the Hamiltonian; now the grid says no."""
    with pytest.raises(InputError, match="outside the accepted range"):
        make_grid((8, 8), spacing)


def test_random_bytes_npz_is_not_called_a_pickle(tmp_path):
    p = tmp_path / "m.npz"
    p.write_bytes(RANDOM)
    with pytest.raises(InputError) as info:
        io.load_potential(p)
    assert "pickle" not in str(info.value)


def test_the_datetime_module_values_are_refused():
    with pytest.raises(InputError, match="V holds Python objects"):
        as_potential(np.array([datetime.date(2020, 1, 1)], dtype=object))


# ---------------------------------------------------------------------- command line
#: Expectations for ``mottscape run`` (exit code 2 and fragments of the one stderr line): (id,
#: study text, extra argv, exit code, fragments). ``{tmp}`` in argv is the test's temporary
#: directory, which holds ``file`` (a regular file) and ``m.nc`` (a 4 x 4 map in meV with
#: coordinates in angstrom, step 2.5 A = 0.25 nm). The study file reads a map
#: through io.load_potential_in_units at load time; ``mottscape run`` checks ``--out`` first.
SMALL = ("[potential]\nmodel = 'block'\nshape = [16, 16]\n[conductivity]\nfermi_energy = 1.0\n"
         "n_omega = 2\n[output]\nfigures = false\n")
CLI_CASES = [
    ("out-is-a-file", SMALL, ["--out", "{tmp}/file"], 2,
     ("mottscape: error:", "is an existing file, not a directory")),
    ("spacing-conflict", "[potential]\nmodel = 'file'\nfile = 'm.nc'\n[grid]\nspacing = 1.0\n"
     "units = 'semiconductor'\n[conductivity]\nfermi_energy = 0.5\n", [], 2,
     ("[grid] spacing = [1.0, 1.0]", "give a spacing of", "drop [grid] spacing")),
    ("map-in-lattice-study", "[potential]\nmodel = 'file'\nfile = 'm.nc'\n"
     "[conductivity]\nfermi_energy = 0.5\n", [], 2,
     ("energy unit 'meV', a physical unit", "[grid] units = 'semiconductor'")),
]


def _cli_map(tmp: Path) -> None:
    (tmp / "file").write_text("a regular file")
    ds = xr.Dataset({"V": (("x", "y"), np.full((4, 4), 500.0), {"units": "meV"})},
                    coords={ax: (ax, 2.5 * np.arange(4), {"units": "angstrom"})
                            for ax in ("x", "y")})
    io.write_netcdf(ds, tmp / "m.nc")


@pytest.mark.parametrize("cid,study,argv,code,fragments", CLI_CASES,
                         ids=[c[0] for c in CLI_CASES])
def test_cli_expectations(tmp_path, capsys, cid, study, argv, code, fragments):
    from mottscape.cli import main

    _cli_map(tmp_path)
    path = tmp_path / "study.toml"
    path.write_text(study)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    assert main(["run", str(path), "-q", *args]) == code
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"


# ---------------------------------------------------------------------- properties
# Any array, any spacing: a valid result or an InputError naming the argument, nothing else.

ANY_DTYPE = st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
                      hnp.floating_dtypes(), hnp.complex_number_dtypes(),
                      hnp.unicode_string_dtypes(max_len=3), hnp.byte_string_dtypes(max_len=3),
                      hnp.datetime64_dtypes(), hnp.timedelta64_dtypes())
ANY_ARRAY = hnp.arrays(ANY_DTYPE, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                   max_side=3))
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(ANY_ARRAY)
def test_any_array_is_a_potential_or_an_input_error(V):
    try:
        out = as_potential(V)
    except InputError as exc:
        assert "V " in str(exc) or str(exc).startswith("V")
        return
    assert out.dtype == np.float64 and 1 <= out.ndim <= 3 and np.all(np.isfinite(out))
    assert V.dtype.kind in "iuf"


@SETTINGS
@given(ANY_ARRAY)
def test_any_array_is_a_mass_or_an_input_error(m):
    shape = m.shape if 1 <= m.ndim <= 3 and m.size else (2,)
    try:
        out = as_mass(m, shape)
    except InputError as exc:
        assert "mass" in str(exc)
        return
    assert out.shape == shape and np.all(out > 0) and m.dtype.kind in "iuf"


@SETTINGS
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                 st.booleans(), st.text(max_size=3), st.none(),
                 st.lists(st.floats(), max_size=4), st.complex_numbers()))
def test_any_spacing_is_a_grid_or_an_input_error(spacing):
    try:
        grid = make_grid((4, 4), spacing)
    except InputError as exc:
        assert "spacing" in str(exc)
        return
    assert all(1e-30 <= h <= 1e30 for h in grid.spacing)
