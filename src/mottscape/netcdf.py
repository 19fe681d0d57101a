"""Results as CF-1.10 NetCDF files: conversion, atomic writing, reading back.

Results are :class:`xarray.Dataset` objects written by :func:`write_netcdf` as CF-1.10 files
(:func:`cf_dataset`: ``Conventions``, ``units`` that UDUNITS parses and a ``long_name`` on
every variable, attributes of types every NetCDF reader knows). The file is serialised in
memory and written atomically (:func:`mottscape.files.atomic_write`), so a crash or a full
disk never leaves a truncated file under the final name. NetCDF-4 (HDF5) files are written
with the ``h5netcdf`` engine when it is usable (it needs ``h5py``); otherwise the ``scipy``
engine writes NetCDF-3 (64-bit offset) files. Both are read back by :func:`read_netcdf`, which
picks the engine from the file's signature.
"""

from __future__ import annotations

import importlib.util
import json
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import xarray as xr

from .errors import InputError
from .files import atomic_write, write_bytes
from .grid import _available_memory
from .units import LATTICE_UNITS_ATTR, UnitSystem, cf_unit_attrs, get_units

__all__ = [
    "CF_CONVENTIONS",
    "NETCDF_SUFFIXES",
    "cf_dataset",
    "netcdf_engines",
    "netcdf_safe_attrs",
    "read_netcdf",
    "write_netcdf",
]

#: The value of the global ``Conventions`` attribute of every file mottscape writes.
CF_CONVENTIONS = "CF-1.10"
#: File name suffixes read as NetCDF.
NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NC3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")


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


def _json_default(obj: object) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _json(v: object) -> str:
    return json.dumps(v, default=_json_default)


def _safe_array(arr: np.ndarray, original: Any) -> Any:
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


def _safe_value(v: object) -> Any:
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

    def stream(fh: BinaryIO) -> None:
        # Through a Python file object, so that a write error (a full disk) is raised here:
        # HDF5 writing to a path by itself can fail silently and crash later.
        _serialise(prepared, engine, fh)
        fh.flush()

    return atomic_write(target, n_bytes, stream, check_space=True)


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


def _serialise(ds: xr.Dataset, engine: str, target: Any = None) -> Any:
    """The file's bytes (``target`` None) or the file written to the file object ``target``.

    ``target`` is ``Any``: xarray's overloads of ``to_netcdf`` accept an ``io.IOBase`` but not
    the ``BinaryIO`` protocol of the open temporary file.
    """
    if engine == "h5netcdf":
        return ds.to_netcdf(target, engine="h5netcdf", invalid_netcdf=False)
    return ds.to_netcdf(target, engine="scipy", format="NETCDF3_64BIT")


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
