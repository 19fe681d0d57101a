"""Reading potential maps and writing results as NetCDF.

Potential (and mass) maps are read from ``.npy``, ``.npz`` or NetCDF files without ever
unpickling anything: a file that would need pickle is refused with an explanation.

Results are :class:`xarray.Dataset` objects written to NetCDF by :func:`write_netcdf`, which
writes to a temporary file beside the target and renames it into place, so a crash never
leaves a truncated file under the final name. NetCDF-4 (HDF5) files are written with the
``h5netcdf`` engine when it is usable (it needs ``h5py``); otherwise the ``scipy`` engine writes
NetCDF-3 (64-bit offset) files. Both are read back by :func:`read_netcdf`, which picks the engine
from the file's signature.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import numbers
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .errors import InputError
from .grid import _available_memory, as_potential, check_memory

__all__ = [
    "NETCDF_SUFFIXES",
    "load_array",
    "load_potential",
    "netcdf_engines",
    "netcdf_safe_attrs",
    "read_netcdf",
    "write_netcdf",
]

NETCDF_SUFFIXES = (".nc", ".nc4", ".cdf", ".netcdf")
_ARRAY_SUFFIXES = (".npy", ".npz", *NETCDF_SUFFIXES)
#: Relative tolerance on the steps of a coordinate for it to count as uniformly spaced.
_UNIFORM_RTOL = 1e-6

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NC3_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")


# ---------------------------------------------------------------------- loading maps
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
        single array; a NetCDF file must hold a variable ``"V"`` or a single data variable.

    Returns
    -------
    V : numpy.ndarray
        The potential as float64, 1 to 3 axes, finite.
    meta : dict
        ``source`` (the path), ``format`` (``"npy"``, ``"npz"`` or ``"netcdf"``),
        ``variable`` (the name read, if any), and from NetCDF files ``dims``, ``units`` (the
        variable's ``units`` attribute, if any), ``spacing`` (a tuple per axis, if every axis
        has a uniformly spaced coordinate) and ``length_units`` (the coordinates' ``units``).

    Raises
    ------
    InputError
        If the file is missing, unreadable, needs pickle, does not hold the variable, has a
        non-uniform coordinate, or the array is not a valid potential.
    """
    arr, meta = load_array(path, variable, what="potential")
    V = as_potential(arr, name=f"the potential in {meta['source']}")
    return V, meta


def load_array(path: str | os.PathLike, variable: str | None = None, *,
               what: str = "array") -> tuple[np.ndarray, dict[str, Any]]:
    """Load a numeric array (a potential or mass map) and its metadata.

    Like :func:`load_potential` but without the checks specific to a potential; ``what``
    names the quantity in error messages.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in _ARRAY_SUFFIXES:
        raise InputError(
            f"cannot read a {what} from {str(p)!r}: the suffix {p.suffix!r} is not supported; "
            f"use one of {', '.join(_ARRAY_SUFFIXES)}"
        )
    if not p.is_file():
        raise InputError(f"{what} file {str(p)!r} does not exist (or is not a regular file)")
    meta: dict[str, Any] = {"source": str(p)}
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
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"the {what} in {str(p)!r} has dtype {arr.dtype}; a real numeric array is needed"
        )
    return np.asarray(arr, dtype=float), meta


def _pickle_error(p: Path, what: str) -> InputError:
    return InputError(
        f"{str(p)!r} holds Python objects (an object array or pickled data) and could only be "
        f"read by unpickling, which can run arbitrary code, so mottscape refuses it. Save the "
        f"{what} as a plain numeric array, e.g. np.save(path, np.asarray(V, dtype=float))"
    )


#: Bytes per point needed to load a map: the array as stored plus its float64 copy.
_LOAD_BYTES_PER_POINT = 16


def _npy_header_shape(p: Path) -> tuple[int, ...] | None:
    """The shape in a .npy header (read without loading the data), or None if unreadable."""
    fmt = np.lib.format
    try:
        with open(p, "rb") as fh:
            version = fmt.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = fmt.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, _ = fmt.read_array_header_2_0(fh)
            else:
                return None
    except (OSError, ValueError, EOFError):
        return None  # np.load reports the problem
    return tuple(int(n) for n in shape)


def _np_load(p: Path, what: str) -> np.ndarray:
    shape = _npy_header_shape(p)
    if shape:
        check_memory(math.prod(shape), _LOAD_BYTES_PER_POINT, f"the {what} in {str(p)!r}")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
            raise _pickle_error(p, what) from None
        raise InputError(f"cannot read {str(p)!r} as a .npy file: {exc}") from None
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {str(p)!r} as a .npy file: {exc}") from None
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{str(p)!r} is an archive of several arrays, not a single .npy array")
    return arr


def _load_npz(p: Path, variable: str | None, what: str) -> tuple[np.ndarray, str]:
    try:
        archive = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {str(p)!r} as a .npz archive: {exc}") from None
    with archive:
        names = list(archive.files)
        if variable is None:
            if len(names) != 1:
                raise InputError(
                    f"{str(p)!r} holds {len(names)} arrays ({', '.join(names) or 'none'}); "
                    f"say which one is the {what} with variable=<name>"
                )
            variable = names[0]
        elif variable not in names:
            raise InputError(
                f"variable={variable!r} is not in {str(p)!r}; available arrays: "
                f"{', '.join(names) or 'none'}"
            )
        try:
            arr = archive[variable]
        except ValueError as exc:
            if "pickle" in str(exc).lower() or "object arrays" in str(exc).lower():
                raise _pickle_error(p, what) from None
            raise InputError(f"cannot read array {variable!r} of {str(p)!r}: {exc}") from None
    return arr, variable


def _load_netcdf_variable(p: Path, variable: str | None, what: str,
                          meta: dict[str, Any]) -> np.ndarray:
    ds = read_netcdf(p)
    names = [str(k) for k in ds.data_vars]
    if variable is None:
        if "V" in names:
            variable = "V"
        elif len(names) == 1:
            variable = names[0]
        else:
            raise InputError(
                f"{str(p)!r} holds {len(names)} data variables ({', '.join(names) or 'none'}) "
                f"and none is named 'V'; say which one is the {what} with variable=<name>"
            )
    elif variable not in names:
        raise InputError(
            f"variable={variable!r} is not in {str(p)!r}; available data variables: "
            f"{', '.join(names) or 'none'}"
        )
    da = ds[variable]
    meta["variable"] = variable
    meta["dims"] = tuple(str(d) for d in da.dims)
    if "units" in da.attrs:
        meta["units"] = str(da.attrs["units"])
    spacing = []
    length_units = set()
    for dim in da.dims:
        if dim not in da.coords or da.sizes[dim] < 2:
            spacing = None
            break
        coord = da.coords[dim]
        spacing.append(_uniform_step(np.asarray(coord.values), str(dim), variable, p))
        if "units" in coord.attrs:
            length_units.add(str(coord.attrs["units"]))
    if spacing:
        meta["spacing"] = tuple(spacing)
    if len(length_units) == 1:
        meta["length_units"] = length_units.pop()
    return np.asarray(da.values)


def _uniform_step(x: np.ndarray, dim: str, variable: str, p: Path) -> float:
    """The step of a uniformly spaced coordinate, or InputError."""
    if x.dtype.kind not in "iuf":
        raise InputError(
            f"coordinate {dim!r} of {variable!r} in {str(p)!r} has dtype {x.dtype}; numeric "
            "positions are needed to deduce the grid spacing (or drop the coordinate)"
        )
    steps = np.diff(x.astype(float))
    step = float(np.mean(steps))
    if not np.all(np.isfinite(steps)) or step == 0.0:
        raise InputError(
            f"coordinate {dim!r} of {variable!r} in {str(p)!r} is not strictly monotonic"
        )
    if np.max(np.abs(steps - step)) > _UNIFORM_RTOL * abs(step):
        raise InputError(
            f"coordinate {dim!r} of {variable!r} in {str(p)!r} is not uniformly spaced (steps "
            f"from {steps.min():.6g} to {steps.max():.6g}); mottscape works on a regular grid: "
            "interpolate the map onto uniformly spaced points (e.g. xarray's .interp) first"
        )
    return abs(step)


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
    """Return a copy of ``attrs`` that every NetCDF engine can store.

    ``bool`` -> ``int`` (0/1); ``None`` -> ``"none"``; ``dict`` -> a JSON string; a list or
    tuple of numbers -> a numeric array; any other list -> a JSON string; ``pathlib.Path`` and
    other objects -> ``str``; boolean arrays -> ``int8`` arrays. Non-string keys become strings.

    Examples
    --------
    >>> netcdf_safe_attrs({"flag": True, "x": None, "p": {"a": 1}, "v": [1, 2.5]})
    {'flag': 1, 'x': 'none', 'p': '{"a": 1}', 'v': array([1. , 2.5])}
    """
    return {str(k): _safe_value(v) for k, v in attrs.items()}


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _safe_value(v):
    if v is None:
        return "none"
    if isinstance(v, bool | np.bool_):
        return int(v)
    if isinstance(v, str):
        return str(v)  # numpy.str_ is a str that h5py cannot store
    if isinstance(v, numbers.Real):
        return v
    if isinstance(v, numbers.Complex):
        return str(v)
    if isinstance(v, np.ndarray):
        if v.dtype.kind == "b":
            return v.astype(np.int8)
        if v.dtype.kind in "iuf" and v.ndim <= 1:
            return v
        return json.dumps(v.tolist(), default=_json_default)
    if isinstance(v, Mapping):
        return json.dumps({str(k): x for k, x in v.items()}, sort_keys=True,
                          default=_json_default)
    if isinstance(v, list | tuple):
        if v and all(isinstance(x, numbers.Real) and not isinstance(x, bool | np.bool_)
                     for x in v):
            arr = np.asarray(v)
            if arr.dtype.kind in "iuf":
                return arr
        return json.dumps(list(v), default=_json_default)
    return str(v)


def _safe_dataset(ds: xr.Dataset) -> xr.Dataset:
    out = ds.copy(deep=False)
    out.attrs = netcdf_safe_attrs(ds.attrs)
    for name in list(out.variables):
        var = out[name]
        if var.dtype.kind == "U":  # h5py stores variable-length (object) strings only
            out[name] = var.astype(object)
        if var.dtype == bool:  # NetCDF has no boolean type
            out[name] = var.astype(np.int8)
        out[name].attrs = netcdf_safe_attrs(ds[name].attrs)
    return out


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, *,
                 engine: str | None = None) -> Path:
    """Write ``ds`` to ``path`` atomically, with NetCDF-safe attributes.

    The data go to a temporary file in the target's directory, which is flushed to disk and
    then renamed over ``path`` (``os.replace``): readers see either the old file or the complete
    new one, never a partial file. Parent directories are created.

    Parameters
    ----------
    ds
        The dataset. Its attributes (and those of its variables) are converted by
        :func:`netcdf_safe_attrs`; ``ds`` itself is not modified.
    path
        Target file name (conventionally ``*.nc``).
    engine
        ``"h5netcdf"`` (NetCDF-4) or ``"scipy"`` (NetCDF-3); by default the first of
        :func:`netcdf_engines`.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    if not isinstance(ds, xr.Dataset):
        raise InputError(f"write_netcdf needs an xarray.Dataset, got {type(ds).__name__}")
    available = netcdf_engines()
    if engine is None:
        if not available:
            raise InputError("no NetCDF engine is usable: install h5netcdf and h5py, or scipy")
        engine = available[0]
    elif engine not in ("h5netcdf", "scipy"):
        raise InputError(f"engine={engine!r} is not supported; use 'h5netcdf' or 'scipy'")
    elif engine not in available:
        raise InputError(
            f"engine={engine!r} is not usable here (available: {', '.join(available) or 'none'})"
            "; h5netcdf needs the h5py package"
        )
    target = Path(path)
    if target.is_dir():
        raise InputError(f"path={str(target)!r} is a directory; give a file name such as "
                         f"{str(target / 'results.nc')!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    safe = _safe_dataset(ds)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if engine == "h5netcdf":
            safe.to_netcdf(tmp, engine="h5netcdf", invalid_netcdf=False)
        else:
            safe.to_netcdf(tmp, engine="scipy", format="NETCDF3_64BIT")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(target.parent)
    return target


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
