"""Reading potential and mass maps, in the units of a study; the package's file I/O in one place.

Potential (and mass) maps are read from ``.npy``, ``.npz`` or NetCDF files without ever
unpickling anything: a file that would need pickle is refused with an explanation
(:func:`load_potential`, :func:`load_array`), and converted to a study's units
(:func:`map_in_units`, :func:`load_potential_in_units`, :func:`reconcile_spacing`).

The writing side lives in :mod:`mottscape.netcdf` (CF-1.10 NetCDF results: :func:`write_netcdf`,
:func:`read_netcdf`, :func:`cf_dataset`) and :mod:`mottscape.files` (atomic writes,
:func:`check_output_dir`); their public names are available here too, so that
``mottscape.io`` remains the one namespace of file input and output.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import InputError, OutputError
from .files import check_output_dir, write_bytes
from .grid import as_potential, check_memory
from .netcdf import (
    CF_CONVENTIONS,
    NETCDF_SUFFIXES,
    cf_dataset,
    netcdf_engines,
    netcdf_safe_attrs,
    read_netcdf,
    write_netcdf,
)
from .units import LATTICE_UNITS_ATTR, UnitSystem, energy_factor, get_units, length_factor

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


def _read_npy_header(fh: IO[bytes], p: Path, where: str) -> tuple[tuple[int, ...], np.dtype]:
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


def _check_declared_size(shape: tuple[int, ...], dtype: np.dtype, available: int, p: Path,
                         where: str,
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
