"""Reading potential maps and writing results as NetCDF.

Potential (and mass) maps are read from ``.npy``, ``.npz`` or NetCDF files without ever
unpickling anything: a file that would need pickle is refused with an explanation.

Results are :class:`xarray.Dataset` objects written to NetCDF by :func:`write_netcdf` as
CF-1.10 files (:func:`cf_dataset`: ``Conventions``, ``units`` that UDUNITS parses and a
``long_name`` on every variable, attributes of types every NetCDF reader knows). The file is
serialised in memory, written to a temporary file beside the target, flushed and renamed into
place, so a crash or a full disk never leaves a truncated file under the final name, and a
write error is an :class:`OutputError` (an :class:`OSError`). NetCDF-4 (HDF5) files are written
with the ``h5netcdf`` engine when it is usable (it needs ``h5py``); otherwise the ``scipy``
engine writes NetCDF-3 (64-bit offset) files. Both are read back by :func:`read_netcdf`, which
picks the engine from the file's signature. :func:`check_output_dir` checks an output
directory before a long computation.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import math
import numbers
import os
import stat
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .errors import InputError, MottscapeError, OutputError
from .grid import _available_memory, as_potential, check_memory
from .units import (
    LATTICE_UNITS_ATTR,
    UnitSystem,
    cf_unit_attrs,
    energy_factor,
    get_units,
    length_factor,
)

__all__ = [
    "CF_CONVENTIONS",
    "NETCDF_SUFFIXES",
    "OutputError",
    "cf_dataset",
    "check_output_dir",
    "load_array",
    "load_potential",
    "load_potential_in_units",
    "map_in_units",
    "netcdf_engines",
    "netcdf_safe_attrs",
    "read_netcdf",
    "reconcile_spacing",
    "write_bytes",
    "write_netcdf",
]

#: The value of the global ``Conventions`` attribute of every file mottscape writes.
CF_CONVENTIONS = "CF-1.10"



NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")
_ARRAY_SUFFIXES = (".npy", ".npz", *NETCDF_SUFFIXES)
#: Relative tolerance on the steps of a coordinate for it to count as uniformly spaced.
_UNIFORM_RTOL = 1e-6

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NC3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")


# ---------------------------------------------------------------------- loading maps
#: Variable names tried, in order, when no variable is named, by the kind of map.
_DEFAULT_NAMES = {"potential": ("V", "potential"), "mass map": ("mass", "m", "effective_mass")}
#: How to choose a variable, by the kind of map, for error messages.
_CHOOSE_HINT = {
    "potential": "say which one is the potential with variable=<name> (in a study file: "
                 "variable = \"<name>\" under [potential])",
    "mass map": "name the mass variable 'mass' or save the mass map in a file of its own "
                "([grid] mass names a file, not a variable)",
}


def load_potential(path: str | os.PathLike, variable: str | None = None
                   ) -> tuple[np.ndarray, dict[str, Any]]:
    """Load a potential map V from a ``.npy``, ``.npz`` or NetCDF file.

    Parameters
    ----------
    path
        File name; the format is chosen by its suffix (``.npy``, ``.npz``, ``.nc``, ``.nc4``,
        ``.cdf``, ``.netcdf``).
    variable
        Name of the array in a ``.npz`` or NetCDF file. By default a ``.npz`` file must hold a
        single array; a NetCDF file must hold a variable ``"V"`` (or ``"potential"``, the name
        in mottscape's own results) or a single data variable.

    Returns
    -------
    V : numpy.ndarray
        The potential as float64, 1 to 3 axes, finite, in the unit of the file (convert it
        with :func:`map_in_units`).
    info : dict
        ``source`` (the path), ``format`` (``"npy"``, ``"npz"`` or ``"netcdf"``),
        ``variable`` (the name read, if any), ``energy_unit`` and ``length_unit`` (the units
        found in the file, None when it gives none: then the study's units are meant) and
        ``spacing`` (a tuple per axis in ``length_unit``, None unless every axis has a
        uniformly spaced coordinate). From NetCDF files also ``dims``, ``units`` (the
        variable's ``units`` attribute as written) and ``length_units`` (the coordinates'
        ``units`` attribute as written).

    Raises
    ------
    InputError
        If the file is missing, unreadable, not of its format, needs pickle, does not hold the
        variable, has a non-uniform coordinate, or the array is not a valid potential.

    Notes
    -----
    A variable written by mottscape in lattice units has ``units = "1"`` and its unit in
    ``lattice_units``; that unit is what ``energy_unit``/``length_unit`` report.
    """
    arr, meta = load_array(path, variable, what="potential")
    V = as_potential(arr, name=f"the potential in {meta['source']}")
    return V, meta


def load_array(path: str | os.PathLike, variable: str | None = None, *,
               what: str = "array") -> tuple[np.ndarray, dict[str, Any]]:
    """Load a numeric array (a potential or mass map) and its metadata.

    Like :func:`load_potential` but without the checks specific to a potential; ``what``
    names the quantity in error messages and sets the default variable names of a NetCDF
    file (``"V"``, ``"potential"`` for ``what="potential"``; ``"mass"``, ``"m"``,
    ``"effective_mass"`` for ``what="mass map"``).

    Raises
    ------
    InputError
        As :func:`load_potential`; also for boolean, string, date, complex or object arrays.
    """
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise InputError(f"path={path!r} must be a file name (str or pathlib.Path) of the "
                         f"{what} file")
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in _ARRAY_SUFFIXES:
        raise InputError(
            f"cannot read a {what} from {str(p)!r}: the suffix {p.suffix!r} is not supported; "
            f"use one of {', '.join(_ARRAY_SUFFIXES)}"
        )
    if not p.is_file():
        raise InputError(f"{what} file {str(p)!r} does not exist (or is not a regular file)")
    if variable is not None and (not isinstance(variable, str) or not variable):
        raise InputError(f"variable={variable!r} must be the name (a non-empty string) of an "
                         f"array in {str(p)!r}")
    meta: dict[str, Any] = {"source": str(p), "energy_unit": None, "length_unit": None,
                            "spacing": None}
    try:
        if suffix == ".npy":
            meta["format"] = "npy"
            if variable is not None:
                raise InputError(
                    f"variable={variable!r} was given but {str(p)!r} is a .npy file holding a "
                    "single array; drop the variable name"
                )
            arr = _np_load(p, what)
        elif suffix == ".npz":
            meta["format"] = "npz"
            arr, meta["variable"] = _load_npz(p, variable, what)
        else:
            meta["format"] = "netcdf"
            arr = _load_netcdf_variable(p, variable, what, meta)
    except MemoryError:
        raise InputError(f"the {what} in {str(p)!r} does not fit in memory; use a smaller map "
                         "or a machine with more memory") from None
    _check_numeric(arr, f"the {what} in {str(p)!r}")
    return np.asarray(arr, dtype=float), meta


def _check_numeric(arr: np.ndarray, name: str) -> None:
    """InputError unless ``arr`` holds real numbers (not booleans, strings, dates, objects)."""
    kind = arr.dtype.kind
    if kind in "iuf":
        return
    why = {
        "b": "booleans, not energies or masses; convert a mask to values first, e.g. "
             "np.where(mask, v_high, v_low)",
        "c": "complex numbers; a potential and a mass are real: store the real part",
        "U": "strings; store numbers (e.g. np.asarray(values, dtype=float))",
        "S": "bytes strings; store numbers (e.g. np.asarray(values, dtype=float))",
        "M": "dates (datetime64); store numbers",
        "m": "time differences (timedelta64); store numbers",
        "O": "Python objects; store a plain numeric array",
        "V": "structured records; store a plain numeric array of one field",
    }.get(kind, "a non-numeric type; store a plain numeric array")
    raise InputError(f"{name} has dtype {arr.dtype}: {why} (a real numeric array is needed)")


def _pickle_error(p: Path, what: str) -> InputError:
    return InputError(
        f"{str(p)!r} holds Python objects (an object array or pickled data) and could only be "
        f"read by unpickling, which can run arbitrary code, so mottscape refuses it. Save the "
        f"{what} as a plain numeric array, e.g. np.save(path, np.asarray(V, dtype=float))"
    )


#: Bytes per point needed to load a map: the array as stored plus its float64 copy.
_LOAD_BYTES_PER_POINT = 16
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"
#: First byte of a pickle of protocol 2 or higher.
_PICKLE_START = b"\x80"
#: Largest .npy header numpy reads without ``allow_pickle`` (numpy's own limit).
_MAX_HEADER = 10000


def _not_npy(p: Path, head: bytes, what: str, kind: str) -> InputError:
    """The error for a file that lacks the signature of its format (``kind``)."""
    if head.startswith(_PICKLE_START):
        return _pickle_error(p, what)
    if kind == ".npy" and head.startswith(_ZIP_MAGIC):
        return InputError(f"{str(p)!r} is a zip archive (a .npz file?) named .npy; rename it "
                          "to .npz")
    if kind == ".npz" and head.startswith(_NPY_MAGIC):
        return InputError(f"{str(p)!r} is a single .npy array named .npz; rename it to .npy")
    return InputError(
        f"{str(p)!r} is not a valid {kind} file (it lacks the {kind} signature: damaged, "
        f"truncated or another format); write the {what} with "
        f"{'np.save' if kind == '.npy' else 'np.savez'}")


def _read_npy_header(fh, p: Path, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from the header of a .npy stream (nothing of the data is read)."""
    fmt = np.lib.format
    prefix = f"cannot read {where} in {str(p)!r} as a .npy file"
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fh, max_header_size=_MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            reader = fmt.read_array_header_2_0
            shape, _, dtype = reader(fh, max_header_size=_MAX_HEADER)
        else:
            raise InputError(f"{prefix}: format version {version} is not one numpy writes; "
                             "save the array again with np.save")
    except InputError:
        raise
    except ValueError as exc:
        if "header" in str(exc).lower() and "large" in str(exc).lower():
            raise InputError(
                f"{prefix}: its header is longer than {_MAX_HEADER} bytes, which numpy refuses "
                "as unsafe; the file is damaged or was not written by np.save: save the "
                "array again") from None
        raise InputError(f"{prefix}: its header is damaged ({exc}); save the array again "
                         "with np.save") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"{prefix}: its header is truncated ({exc}); save the array again "
                         "with np.save") from None
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _check_declared_size(shape, dtype, available: int, p: Path, where: str,
                         what: str) -> None:
    """Refuse a header that promises more data than the file holds, or than memory allows."""
    if dtype.hasobject:
        raise _pickle_error(p, what)
    n = math.prod(shape)
    check_memory(n, _LOAD_BYTES_PER_POINT, f"{where} in {str(p)!r}")
    need = n * dtype.itemsize
    if need > available:
        raise InputError(
            f"{where} in {str(p)!r} declares shape {tuple(shape)} ({need:,} bytes) but the "
            f"file holds only {available:,} bytes of data: it is truncated or damaged; save "
            "the array again")


def _np_load(p: Path, what: str) -> np.ndarray:
    with open(p, "rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
        if not head.startswith(_NPY_MAGIC):
            raise _not_npy(p, head, what, ".npy")
        fh.seek(0)
        shape, dtype = _read_npy_header(fh, p, f"the {what}")
        _check_declared_size(shape, dtype, os.fstat(fh.fileno()).st_size - fh.tell(), p,
                             f"the {what}", what)
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            raise _pickle_error(p, what) from None
        raise InputError(f"cannot read {str(p)!r} as a .npy file: {exc}; save the array again "
                         "with np.save") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {str(p)!r} as a .npy file: {exc}; save the array again "
                         "with np.save") from None
    return arr


def _load_npz(p: Path, variable: str | None, what: str) -> tuple[np.ndarray, str]:
    with open(p, "rb") as fh:
        head = fh.read(8)
    if not head.startswith(_ZIP_MAGIC) or not zipfile.is_zipfile(p):
        raise _not_npy(p, head, what, ".npz")
    try:
        with zipfile.ZipFile(p) as zf:
            members = {name[:-4]: info for name in zf.namelist()
                       if name.endswith(".npy") for info in [zf.getinfo(name)]}
            names = list(members)
            if variable is None:
                if len(names) != 1:
                    raise InputError(
                        f"{str(p)!r} holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                        f"{_CHOOSE_HINT.get(what, 'say which one with variable=<name>')}"
                    )
                variable = names[0]
            elif variable not in names:
                raise InputError(
                    f"variable={variable!r} is not in {str(p)!r}; available arrays: "
                    f"{', '.join(names) or 'none'}"
                )
            info = members[variable]
            where = f"array {variable!r}"
            with zf.open(info) as fh:
                if not fh.read(len(_NPY_MAGIC)).startswith(_NPY_MAGIC):
                    raise InputError(f"{where} in {str(p)!r} is not a .npy array; save the "
                                     "archive again with np.savez")
            with zf.open(info) as fh:
                shape, dtype = _read_npy_header(fh, p, where)
                header_len = fh.tell()
            _check_declared_size(shape, dtype, info.file_size - header_len, p, where, what)
            with zf.open(info) as fh:
                arr = np.lib.format.read_array(fh, allow_pickle=False,
                                               max_header_size=_MAX_HEADER)
    except InputError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            raise _pickle_error(p, what) from None
        raise InputError(f"cannot read array {variable!r} of {str(p)!r}: {exc}; save the "
                         "archive again with np.savez") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError,
            NotImplementedError) as exc:
        raise InputError(f"{str(p)!r} is a damaged .npz archive ({exc}); save it again with "
                         "np.savez") from None
    return arr, variable


def _units_of(attrs: Mapping[str, Any]) -> str | None:
    """The unit of a variable: its ``lattice_units`` if any, else ``units`` (None if absent)."""
    if LATTICE_UNITS_ATTR in attrs:
        return str(attrs[LATTICE_UNITS_ATTR]).strip() or None
    unit = attrs.get("units")
    if unit is None:
        return None
    unit = str(unit).strip()
    return None if unit in ("", "1") else unit


def _pick_variable(names: list[str], variable: str | None, what: str, p: Path) -> str:
    """The data variable to read: ``variable``, else ``what``'s default name, else the only one."""
    if variable is None:
        preferred = [n for n in _DEFAULT_NAMES.get(what, ("V",)) if n in names]
        if preferred:
            return preferred[0]
        if len(names) == 1:
            return names[0]
        defaults = " or ".join(repr(n) for n in _DEFAULT_NAMES.get(what, ("V",)))
        raise InputError(
            f"{str(p)!r} holds {len(names)} data variables ({', '.join(names) or 'none'}) "
            f"and none is named {defaults}; "
            f"{_CHOOSE_HINT.get(what, 'say which one with variable=<name>')}"
        )
    if variable not in names:
        raise InputError(
            f"variable={variable!r} is not in {str(p)!r}; available data variables: "
            f"{', '.join(names) or 'none'}"
        )
    return variable


def _load_netcdf_variable(p: Path, variable: str | None, what: str,
                          meta: dict[str, Any]) -> np.ndarray:
    ds = read_netcdf(p)
    variable = _pick_variable([str(k) for k in ds.data_vars], variable, what, p)
    da = ds[variable]
    meta["variable"] = variable
    meta["dims"] = tuple(str(d) for d in da.dims)
    if "units" in da.attrs:
        meta["units"] = str(da.attrs["units"])
    meta["energy_unit"] = _units_of(da.attrs)
    steps: list[float] = []
    length_units: dict[str, str | None] = {}
    for dim in da.dims:
        if dim not in da.coords or da.sizes[dim] < 2:
            steps.clear()  # no spacing unless every axis has one
            break
        coord = da.coords[dim]
        steps.append(_uniform_step(np.asarray(coord.values), str(dim), variable, p))
        length_units[str(dim)] = _units_of(coord.attrs)
        if "units" in coord.attrs:
            meta["length_units"] = str(coord.attrs["units"])
    if steps:
        distinct = set(length_units.values())
        if len(distinct) > 1:
            listed = ", ".join(f"{d}: {u or 'none'}" for d, u in length_units.items())
            raise InputError(
                f"the coordinates of {variable!r} in {str(p)!r} have different units ({listed});"
                " give every coordinate the same length unit")
        meta["spacing"] = tuple(steps)
        meta["length_unit"] = distinct.pop()
    values = da.values
    if values.dtype.kind == "f":
        bad = ~np.isfinite(values)
        fill = [k for k in ("_FillValue", "missing_value") if k in da.encoding]
        if fill and bad.any():
            raise InputError(
                f"{variable!r} in {str(p)!r} has {int(bad.sum())} missing values (marked by "
                f"{' and '.join(fill)}); fill them with finite values before using it as a "
                f"{what}")
    return np.asarray(values)


def _uniform_step(x: np.ndarray, dim: str, variable: str, p: Path) -> float:
    """The step of a uniformly spaced coordinate, or InputError."""
    if x.dtype.kind not in "iuf":
        raise InputError(
            f"coordinate {dim!r} of {variable!r} in {str(p)!r} has dtype {x.dtype}; numeric "
            "positions are needed to deduce the grid spacing (or drop the coordinate)"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        steps = np.diff(x.astype(float))
        step = float(np.mean(steps)) if np.all(np.isfinite(steps)) else math.nan
    if not math.isfinite(step) or step == 0.0 or np.any(np.sign(steps) != np.sign(step)):
        raise InputError(
            f"coordinate {dim!r} of {variable!r} in {str(p)!r} is not strictly monotonic "
            "(or not finite); give increasing, uniformly spaced cell positions"
        )
    if np.max(np.abs(steps - step)) > _UNIFORM_RTOL * abs(step):
        raise InputError(
            f"coordinate {dim!r} of {variable!r} in {str(p)!r} is not uniformly spaced (steps "
            f"from {steps.min():.6g} to {steps.max():.6g}); mottscape works on a regular grid: "
            "interpolate the map onto uniformly spaced points (e.g. xarray's .interp) first"
        )
    return abs(step)


def map_in_units(V: np.ndarray, info: Mapping[str, Any], units: str | UnitSystem
                 ) -> tuple[np.ndarray, tuple[float, ...] | None]:
    """Convert a map read by :func:`load_potential` to the study's unit system.

    Parameters
    ----------
    V
        The map as returned by :func:`load_potential`.
    info
        Its ``info`` dict (``energy_unit``, ``length_unit``, ``spacing``, ``source``).
    units
        The study's unit system (``"lattice"``, ``"semiconductor"`` or a
        :class:`~mottscape.units.UnitSystem`).

    Returns
    -------
    V : numpy.ndarray
        The potential in the study's energy unit (``V`` itself when no conversion is needed).
    spacing : tuple of float or None
        The grid spacing from the file's coordinates in the study's length unit, or None when
        the file gives none. Pass it to :func:`reconcile_spacing`.

    Raises
    ------
    InputError
        If a unit is unknown, belongs to the other unit system (eV in a lattice study), or the
        converted values leave the range of float64.

    Examples
    --------
    >>> V, sp = map_in_units(np.array([10.0, 20.0]), {"energy_unit": "meV",
    ...     "length_unit": "angstrom", "spacing": (5.0,), "source": "m.nc"}, "semiconductor")
    >>> V, sp
    (array([0.01, 0.02]), (0.5,))
    """
    system = get_units(units)
    where = f"the potential in {info.get('source', 'the map')!r}"
    fe = energy_factor(info.get("energy_unit"), system, where=where)
    fl = length_factor(info.get("length_unit"), system, where=f"the coordinates of {where}")
    out = np.asarray(V, dtype=float)
    if fe != 1.0:
        with np.errstate(over="ignore"):
            out = out * fe
        if not np.all(np.isfinite(out)):
            raise InputError(f"{where} overflows float64 when converted from "
                             f"{info.get('energy_unit')!r} to {system.energy_unit!r}")
    spacing = info.get("spacing")
    if spacing is not None:
        spacing = tuple(float(h) * fl for h in spacing)
    return out, spacing


def load_potential_in_units(path: str | os.PathLike, variable: str | None = None, *,
                            units: str | UnitSystem,
                            spacing: float | Sequence[float] | None = None
                            ) -> tuple[np.ndarray, float | tuple[float, ...], dict[str, Any]]:
    """Load a potential map for a study: read, convert to ``units``, settle the spacing.

    :func:`load_potential`, then :func:`map_in_units` and :func:`reconcile_spacing` in one
    call.

    Parameters
    ----------
    path, variable
        As for :func:`load_potential`.
    units
        The study's unit system.
    spacing
        The spacing the study sets explicitly (``[grid] spacing``), or None when it sets none.

    Returns
    -------
    V : numpy.ndarray
        The potential in the energy unit of ``units``.
    spacing : float or tuple of float
        The grid spacing to use, in the length unit of ``units`` (the file's when the study
        sets none; 1.0 when neither gives one).
    info : dict
        As returned by :func:`load_potential` (units as found in the file).

    Raises
    ------
    InputError
        As the three functions it calls; a spacing that conflicts with the file's coordinates.
    """
    V, info = load_potential(path, variable)
    V, file_spacing = map_in_units(V, info, units)
    return V, reconcile_spacing(file_spacing, spacing, source=info["source"]), info


def reconcile_spacing(file_spacing: Sequence[float] | None,
                      study_spacing: float | Sequence[float] | None, *,
                      source: str = "the map", rtol: float = 1e-6
                      ) -> float | tuple[float, ...]:
    """The grid spacing of a study whose potential comes from a file.

    Parameters
    ----------
    file_spacing
        The spacing from the file's coordinates, in the study's length unit (from
        :func:`map_in_units`), or None when the file has no coordinates.
    study_spacing
        The spacing the study sets explicitly (``[grid] spacing``), or None when it does not.
    source
        The file, for messages.
    rtol
        Relative tolerance of the comparison.

    Returns
    -------
    float or tuple of float
        The study's spacing when the file has none, the file's when the study has none, 1.0
        when neither has one.

    Raises
    ------
    InputError
        When both are given and differ along some axis by more than ``rtol``.
    """
    if file_spacing is None:
        if study_spacing is None:
            return 1.0
        return study_spacing if isinstance(study_spacing, float | int) else tuple(study_spacing)
    fs = tuple(float(h) for h in file_spacing)
    if study_spacing is None:
        return fs
    try:
        ss = np.broadcast_to(np.asarray(study_spacing, dtype=float), (len(fs),))
    except (TypeError, ValueError):
        raise InputError(
            f"[grid] spacing = {study_spacing!r} must be a number or {len(fs)} numbers (one per "
            f"axis of {source!r})") from None
    if not np.allclose(ss, fs, rtol=rtol, atol=0.0):
        raise InputError(
            f"[grid] spacing = {[float(h) for h in ss]} but the coordinates of {source!r} give "
            f"a spacing of {list(fs)} (in the study's length unit); drop [grid] spacing to use "
            "the file's, or fix one of them")
    return fs


# ---------------------------------------------------------------------- NetCDF
def netcdf_engines() -> tuple[str, ...]:
    """The usable xarray NetCDF engines, best first: ``h5netcdf`` (needs h5py), ``scipy``."""
    found = importlib.util.find_spec
    engines = []
    if found("h5netcdf") is not None and found("h5py") is not None:
        engines.append("h5netcdf")
    if found("scipy") is not None:
        engines.append("scipy")
    return tuple(engines)


def netcdf_safe_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``attrs`` whose values every NetCDF reader can store and read.

    Only the types of classic NetCDF are produced (text, 8- and 32-bit integers, 64-bit
    floats), so that NetCDF-3 writers accept them and older readers of NetCDF-4 files do not
    meet 64-bit or unsigned integer attributes:

    * ``bool`` -> ``int8`` 0/1; ``None`` -> ``"none"``;
    * integers -> ``int32``, or their decimal string when they do not fit (exact, unlike a
      float);
    * real numbers -> ``float64``; complex numbers -> a string;
    * a ``dict`` -> a JSON string; a list, tuple or 1-D array of numbers -> a numeric array
      (``int32`` if every value fits, else ``float64`` if that is exact, else a JSON string);
      boolean arrays -> ``int8`` arrays; empty, nested or mixed sequences -> a JSON string;
    * ``pathlib.Path`` and any other object -> ``str``. Non-string keys become strings.

    Examples
    --------
    >>> netcdf_safe_attrs({"flag": True, "x": None, "p": {"a": 1}, "v": [1, 2.5]})
    {'flag': np.int8(1), 'x': 'none', 'p': '{"a": 1}', 'v': array([1. , 2.5])}
    """
    return {str(k): _safe_value(v) for k, v in attrs.items()}


_INT32 = np.iinfo(np.int32)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _json(v) -> str:
    return json.dumps(v, default=_json_default)


def _safe_array(arr: np.ndarray, original) -> Any:
    if arr.size == 0 or arr.ndim > 1:
        return _json(arr.tolist() if isinstance(original, np.ndarray) else list(original))
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(np.int8)
    if kind in "iu":
        if arr.min() >= _INT32.min and arr.max() <= _INT32.max:
            return arr.astype(np.int32)
        if np.all(np.abs(arr.astype(float)) < 2.0**53):
            return arr.astype(np.float64)
        return _json(arr.tolist())
    if kind == "f":
        return arr.astype(np.float64)
    return _json(arr.tolist())


def _safe_value(v):
    if v is None:
        return "none"
    if isinstance(v, bool | np.bool_):
        return np.int8(bool(v))
    if isinstance(v, str):
        return str(v)  # numpy.str_ is a str that h5py cannot store
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, numbers.Integral):
        iv = int(v)
        return np.int32(iv) if _INT32.min <= iv <= _INT32.max else str(iv)
    if isinstance(v, numbers.Real):
        return np.float64(v)
    if isinstance(v, numbers.Complex):
        return str(v)
    if isinstance(v, np.ndarray):
        return _safe_array(v, v)
    if isinstance(v, Mapping):
        return json.dumps({str(k): x for k, x in v.items()}, sort_keys=True,
                          default=_json_default)
    if isinstance(v, list | tuple):
        if v and all(isinstance(x, numbers.Real) for x in v):
            return _safe_array(np.asarray(v), v)
        return _json(list(v))
    return str(v)


def _dataset_system(ds: xr.Dataset, units: str | UnitSystem | None) -> str | None:
    """The unit system of ``ds``: ``units`` if given, else its ``units_system``/``units``."""
    if units is not None:
        return get_units(units).name
    for key in ("units_system", "units"):
        value = ds.attrs.get(key)
        if isinstance(value, str) and value.lower() in ("lattice", "semiconductor"):
            return value.lower()
    return None


_LATTICE_NOTE = (
    "lattice units (hbar = e = a = 1, energies in units of the hopping t): variables carry "
    "units = '1' and their lattice unit in the attribute 'lattice_units', a product of t "
    "(hopping energy), a (lattice spacing), hbar, e and m_ref (reference mass, "
    "hbar^2/(2 m_ref a^2) = t)"
)


def cf_dataset(ds: xr.Dataset, units: str | UnitSystem | None = None) -> xr.Dataset:
    """A copy of ``ds`` that follows the CF-1.10 conventions, as :func:`write_netcdf` writes it.

    * the global attribute ``Conventions = "CF-1.10"``; for a dataset in lattice units also
      ``lattice_units_convention``, a sentence explaining the convention below. A global
      ``units`` naming the unit system becomes ``units_system`` (CF reserves ``units`` for
      variables);
    * every numeric variable and coordinate gets ``units``: its unit translated by
      :func:`mottscape.units.cf_unit_attrs` (lattice units become ``units = "1"`` plus
      ``lattice_units``; a variable without a unit gets ``"1"``). String and date variables
      keep what they have;
    * every variable gets a ``long_name`` (its name with spaces for underscores when it has
      none);
    * boolean variables become ``int8`` 0/1 with ``flag_values = [0, 1]`` and
      ``flag_meanings = "false true"``; text variables become variable-length strings;
    * every attribute becomes a portable type (:func:`netcdf_safe_attrs`);
    * dimension coordinates get no ``_FillValue`` (CF forbids missing coordinate values).

    Parameters
    ----------
    ds
        Any dataset; it is not modified (the copy shares the data).
    units
        The unit system of ``ds``; by default its attribute ``units_system`` or ``units``
        when that names a system, else each unit string is judged on its own (see
        :func:`mottscape.units.cf_unit_attrs`).

    Returns
    -------
    xarray.Dataset
    """
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"cf_dataset needs an xarray.Dataset, got {type(ds).__name__}")
    system = _dataset_system(ds, units)
    out = ds.copy(deep=False)
    attrs = netcdf_safe_attrs(ds.attrs)
    if system is not None and str(attrs.get("units", "")).lower() == system:
        # CF reserves 'units' for variables: the unit system goes under another name.
        del attrs["units"]
        attrs.setdefault("units_system", system)
    attrs["Conventions"] = CF_CONVENTIONS
    if system == "lattice":
        attrs["lattice_units_convention"] = _LATTICE_NOTE
    out.attrs = attrs
    for name in list(out.variables):
        var = out.variables[name]
        new_attrs = dict(ds.variables[name].attrs)
        kind = var.dtype.kind
        if kind == "U":  # h5py stores variable-length (object) strings only
            out[name] = out[name].astype(object)
        elif kind == "b":  # NetCDF has no boolean type
            out[name] = out[name].astype(np.int8)
            new_attrs.setdefault("flag_values", np.array([0, 1], dtype=np.int8))
            new_attrs.setdefault("flag_meanings", "false true")
        if kind in "biuf":
            if LATTICE_UNITS_ATTR in new_attrs:
                new_attrs["units"] = "1"
            else:
                new_attrs.update(cf_unit_attrs(new_attrs.get("units"), system))
        if not str(new_attrs.get("long_name", "")).strip():
            new_attrs["long_name"] = str(name).replace("_", " ")
        out.variables[name].attrs = netcdf_safe_attrs(new_attrs)
        if name in out.dims:
            out.variables[name].encoding["_FillValue"] = None
    return out


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, *,
                 engine: str | None = None, units: str | UnitSystem | None = None) -> Path:
    """Write ``ds`` to ``path`` atomically, as a CF-1.10 file with portable attributes.

    The dataset is converted by :func:`cf_dataset` and serialised in memory; the bytes go to a
    temporary file in the target's directory, which is flushed to disk and then renamed over
    ``path`` (``os.replace``): readers see either the old file or the complete new one, never
    a partial file. Parent directories are created. A new file gets the permissions of the
    user's umask (``0o666 & ~umask``); a file that is replaced keeps its permissions.

    Parameters
    ----------
    ds
        The dataset; ``ds`` itself is not modified.
    path
        Target file name (conventionally ``*.nc``).
    engine
        ``"h5netcdf"`` (NetCDF-4) or ``"scipy"`` (NetCDF-3); by default the first of
        :func:`netcdf_engines`.
    units
        The unit system of ``ds`` (see :func:`cf_dataset`).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    InputError
        For a ``ds`` that is not a Dataset, an unusable engine, or a ``path`` that is a
        directory.
    OutputError
        When the file cannot be written (full disk, read-only file system, no permission, ...).
        Nothing is left under ``path`` (an old file there is unchanged) and the temporary file
        is removed.

    Notes
    -----
    A file larger than a third of the available memory is not serialised in memory but
    written by the NetCDF library to the temporary file through a Python file object (so that
    a write error surfaces as an :class:`OutputError`; HDF5 writing to a path can lose it),
    after checking that the disk has room for it. Only if the disk fills up during such a
    write (another process taking the space) can the HDF5 library still crash the process
    when it exits; the target is not touched even then.
    """
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"write_netcdf needs an xarray.Dataset, got {type(ds).__name__}")
    engine = _write_engine(engine)
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike) or not str(path):
        raise InputError(f"path={path!r} must be a file name such as 'results.nc'")
    target = Path(path)
    if target.is_dir():
        raise InputError(f"path={str(target)!r} is a directory; give a file name such as "
                         f"{str(target / 'results.nc')!r}")
    prepared = cf_dataset(ds, units)
    n_bytes = sum(int(v.size) * int(v.dtype.itemsize) for v in prepared.variables.values())
    avail = _available_memory()
    data = None
    if avail is None or 3 * n_bytes < avail:
        data = _serialise(prepared, engine, None)
        n_bytes = len(data)
    if data is not None:
        return write_bytes(data, target)

    def stream(fh) -> None:
        # Through a Python file object, so that a write error (a full disk) is raised here:
        # HDF5 writing to a path by itself can fail silently and crash later.
        _serialise(prepared, engine, fh)
        fh.flush()

    return _atomic_write(target, n_bytes, stream, check_space=True)


def write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` atomically, as :func:`write_netcdf` writes its files.

    A temporary file in the target's directory, flushed to disk, renamed over ``path``; the
    user's umask; parent directories created. Any :class:`OSError` becomes an
    :class:`OutputError` naming the path and the fix, and nothing partial is left.
    """
    target = Path(path)
    return _atomic_write(target, len(data), lambda fh: _write_all(fh.fileno(), data))


def _atomic_write(target: Path, n_bytes: int, fill, check_space: bool = False) -> Path:
    """Temporary file + fsync + rename (see :func:`write_netcdf`); ``fill(fh)`` writes."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _output_error(exc, target, n_bytes) from exc
    mode = _file_mode(target)
    if check_space:
        _check_free_space(target, n_bytes)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as exc:
        raise _output_error(exc, target, n_bytes) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb+") as fh:
            fill(fh)
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, MottscapeError):
            raise _output_error(exc, target, n_bytes) from exc
        raise
    _fsync_dir(target.parent)
    return target


def _write_engine(engine: str | None) -> str:
    """The NetCDF engine to write with: ``engine`` checked, or the first usable one."""
    available = netcdf_engines()
    if engine is None:
        if not available:
            raise InputError("no NetCDF engine is usable: install h5netcdf and h5py, or scipy")
        return available[0]
    if engine not in ("h5netcdf", "scipy"):
        raise InputError(f"engine={engine!r} is not supported; use 'h5netcdf' or 'scipy'")
    if engine not in available:
        raise InputError(
            f"engine={engine!r} is not usable here (available: {', '.join(available) or 'none'})"
            "; h5netcdf needs the h5py package"
        )
    return engine


def _serialise(ds: xr.Dataset, engine: str, target=None):
    """The file's bytes (``target`` None) or the file written to the file object ``target``."""
    if engine == "h5netcdf":
        return ds.to_netcdf(target, engine="h5netcdf", invalid_netcdf=False)
    return ds.to_netcdf(target, engine="scipy", format="NETCDF3_64BIT")


def _check_free_space(target: Path, n_bytes: int) -> None:
    """OutputError (ENOSPC) if the target's file system lacks room for ``n_bytes`` + 5 %."""
    try:
        st = os.statvfs(target.parent)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    need = int(1.05 * n_bytes) + (16 << 20)
    if st.f_blocks and free < need:
        exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        raise _output_error(exc, target, n_bytes)


def _write_all(fd: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view[: 1 << 24])
        view = view[written:]


def _umask() -> int:
    """The process umask (read from /proc where possible, which does not change it)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(target: Path) -> int:
    """Permissions for ``target``: those of the file it replaces, else ``0o666 & ~umask``."""
    with contextlib.suppress(OSError):
        st = target.stat()
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    return 0o666 & ~_umask()


_OUTPUT_REASONS = {
    errno.ENOSPC: ("the disk is full (no space left on device)",
                   "free some space or write to another directory (e.g. --out /other/dir)"),
    errno.EDQUOT: ("the disk quota is exceeded",
                   "free some space or write to another directory"),
    errno.EROFS: ("the file system is read-only",
                  "write to a directory on a writable disk (e.g. --out /tmp/run)"),
    errno.EACCES: ("permission denied",
                   "write to a directory you own, or give yourself write permission on it"),
    errno.EPERM: ("operation not permitted",
                  "write to a directory you own, or give yourself write permission on it"),
    errno.EEXIST: ("a file is in the way of a directory on that path",
                   "choose another output directory or move the file away"),
    errno.ENOTDIR: ("a file is in the way of a directory on that path",
                    "choose another output directory or move the file away"),
}


def _output_error(exc: OSError, target: Path, n_bytes: int) -> OutputError:
    reason, fix = _OUTPUT_REASONS.get(
        exc.errno or 0, (exc.strerror or str(exc), "check the output directory and retry"))
    kept = ("the previous file there is unchanged" if target.exists()
            else "no file was created under that name")
    err = OutputError(
        f"cannot write {str(target)!r}: {reason} (writing {n_bytes:,} bytes); {fix}. "
        f"The temporary file was removed and {kept}")
    err.errno = exc.errno
    err.strerror = reason
    err.filename = str(target)
    return err


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check, before any computation, that results can be written into directory ``path``.

    The directory need not exist: then its nearest existing ancestor must be a directory in
    which it can be created. The check creates and removes a small probe file, so it detects a
    read-only file system, a missing write permission (also for root on a read-only mount) and
    a disk that is already full.

    Parameters
    ----------
    path
        The output directory (e.g. the study's ``[output] dir`` or ``--out``).

    Returns
    -------
    pathlib.Path
        ``path`` as a Path (not created).

    Raises
    ------
    InputError
        If ``path`` names an existing file that is not a directory, lies below a file, is on a
        read-only file system, is not writable, or its disk is full; the message names the
        path and the fix.
    """
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike) or not str(path):
        raise InputError(f"output directory {path!r} must be a directory name (e.g. 'results')")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise InputError(
            f"output directory {str(p)!r} is an existing file, not a directory; choose another "
            f"name (e.g. {str(p) + '_results'!r}) or move the file away")
    base = p
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise InputError(
            f"cannot create output directory {str(p)!r}: {str(base)!r} is a file, not a "
            "directory; choose another output directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".mottscape-write-test.", dir=base)
        try:
            os.write(fd, b"\0" * 512)
            os.fsync(fd)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
    except OSError as exc:
        reason, fix = _OUTPUT_REASONS.get(
            exc.errno or 0, (exc.strerror or str(exc), "choose another output directory"))
        where = "" if base == p else f" (its existing parent {str(base)!r})"
        raise InputError(
            f"cannot write results to output directory {str(p)!r}{where}: {reason}; "
            f"{fix}") from None
    return p


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry (best effort; not possible on every platform)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Read a NetCDF file fully into memory and close it.

    The engine is chosen from the file signature: NetCDF-3 files are read with ``scipy``,
    NetCDF-4/HDF5 files with ``h5netcdf``.

    Raises
    ------
    InputError
        If the file is missing, is not NetCDF, or needs an engine that is not installed.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"NetCDF file {str(p)!r} does not exist (or is not a regular file)")
    with open(p, "rb") as fh:
        head = fh.read(8)
    if head.startswith(_HDF5_MAGIC):
        engine = "h5netcdf"
        if engine not in netcdf_engines():
            raise InputError(
                f"{str(p)!r} is a NetCDF-4 (HDF5) file, which needs the h5netcdf and h5py "
                "packages; install h5py (pip install h5py)"
            )
    elif head[:4] in _NC3_MAGIC:
        engine = "scipy"
    else:
        raise InputError(
            f"{str(p)!r} is not a NetCDF file (neither the NetCDF-3 nor the HDF5 signature)"
        )
    try:
        with xr.open_dataset(p, engine=engine) as ds:
            n_bytes = sum(int(v.size) * (int(v.dtype.itemsize) + 8)
                          for v in ds.variables.values())
            avail = _available_memory()
            if avail is not None and n_bytes > avail:
                raise InputError(
                    f"reading {str(p)!r} needs about {n_bytes / 2**30:.1f} GiB but only "
                    f"{avail / 2**30:.1f} GiB is available; use a smaller map or a machine "
                    "with more memory")
            return ds.load()
    except InputError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read NetCDF file {str(p)!r}: {exc}") from None
