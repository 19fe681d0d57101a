"""A resumable store of per-realization results, keyed to the study that made them.

Layout of a store directory::

    manifest.json            the study's content hash, the study, the kind of run, the version
    .lock                    held (flock) by the run writing the store
    realization_00003.nc     one record per finished task, written atomically

The content hash covers everything that changes the numbers: the potential model and its
parameters (the map file's bytes for ``model = "file"``), the grid, the seed, E_F, the
frequencies, the options, the kind of run (and its extra parameters) and the package version;
not the number of realizations or the output directory, so an ensemble can be extended. A
store made by another study is refused with a message naming the first difference. Each record
carries the hash and a checksum of its data: a record that does not match (a flipped bit, a
truncated file) is reported and recomputed, never mixed in.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .errors import InputError

__all__ = ["Store", "dataset_checksum", "study_hash"]

MANIFEST = "manifest.json"
LOCK = ".lock"


def study_hash(description: Mapping[str, Any]) -> str:
    """SHA-256 of a JSON description (sorted keys): the identity of a study's numbers."""
    text = json.dumps(description, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_checksum(ds: xr.Dataset) -> str:
    """SHA-256 over the names, shapes and values of every variable and coordinate.

    Values are put in a canonical dtype first (booleans and integers as int64, reals as
    float64), so the checksum survives a NetCDF round trip (which stores booleans as bytes).
    """
    h = hashlib.sha256()
    for name in sorted(map(str, ds.variables)):
        values = np.asarray(ds[name].values)
        if values.dtype.kind in "biu":
            values = values.astype(np.int64)
        elif values.dtype.kind == "f":
            values = values.astype(np.float64)
        else:
            values = np.asarray(values.astype(str), dtype=object)
            h.update(name.encode() + repr(values.tolist()).encode())
            continue
        h.update(name.encode() + repr(values.shape).encode())
        h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    """A one-line description of where two JSON-like values differ."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b or a[key] != b[key]:
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path
                                         else str(key))
        return path or "(nothing)"
    return f"{path or 'the study'}: store has {a!r}, this run has {b!r}"


class Store:
    """One store directory, opened for one run (a context manager that holds the lock).

    Parameters
    ----------
    path
        The store directory (created if missing).
    description
        What identifies the numbers (see the module docstring); its hash keys the store.
    log
        Called with one line for each record that is reused, refused or recomputed.
    """

    def __init__(self, path: str | os.PathLike, description: Mapping[str, Any],
                 log=None) -> None:
        self.path = Path(path)
        self.description = json.loads(json.dumps(description, sort_keys=True, default=str))
        self.hash = study_hash(self.description)
        self._log = log or (lambda _m: None)
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ opening
    def __enter__(self) -> Store:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"store={str(self.path)!r} cannot be created ({exc.strerror}); "
                             "choose a writable directory") from None
        if not os.access(self.path, os.W_OK):
            raise InputError(f"store={str(self.path)!r} is not writable; choose a writable "
                             "directory")
        self._lock()
        try:
            self._check_manifest()
            self._clean_stale()
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._unlock()

    def _lock(self) -> None:
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(f"store={str(self.path)!r} is being written by another run; wait "
                             "for it to finish or use another --store directory") from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
            self._lock_fd = None

    def _check_manifest(self) -> None:
        manifest = self.path / MANIFEST
        if manifest.exists():
            try:
                old = json.loads(manifest.read_text())
            except (OSError, ValueError):
                raise InputError(f"store={str(self.path)!r} has an unreadable {MANIFEST}; "
                                 "use another --store directory") from None
            if old.get("hash") != self.hash:
                where = _first_difference(old.get("description"), self.description)
                raise InputError(f"store={str(self.path)!r} holds results of another study "
                                 f"({where}); use another --store directory")
            return
        if any(self.path.glob("realization_*.nc")):
            raise InputError(f"store={str(self.path)!r} holds results without a manifest "
                             "(from an older mottscape); use another --store directory")
        text = json.dumps({"hash": self.hash, "description": self.description}, indent=1,
                          sort_keys=True)
        tmp = manifest.with_name(f".{MANIFEST}.tmp")
        tmp.write_text(text)
        os.replace(tmp, manifest)

    def _clean_stale(self) -> None:
        """Temporary files of a killed run (we hold the lock, so nobody is writing)."""
        for stale in self.path.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
                self._log(f"store: removed the stale temporary file {stale.name}")

    # ------------------------------------------------------------------ records
    def record_path(self, task: int) -> Path:
        """The file of one task's record."""
        return self.path / f"realization_{task:05d}.nc"

    def load(self, task: int) -> xr.Dataset | None:
        """The record of ``task`` if it exists and is intact, else None (a bad one is removed)."""
        from .netcdf import read_netcdf

        path = self.record_path(task)
        if not path.exists():
            return None
        try:
            ds = read_netcdf(path)
            ok = (ds.attrs.get("store_hash") == self.hash
                  and ds.attrs.get("checksum") == dataset_checksum(ds))
        except Exception:
            ok = False
        if not ok:
            self._log(f"store: record {path.name} is corrupt or of another study; recomputing")
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        return ds

    def save(self, task: int, ds: xr.Dataset) -> Path:
        """Write the record of ``task`` atomically, with the store's hash and a checksum."""
        from .netcdf import write_netcdf

        out = ds.copy()
        out.attrs["store_hash"] = self.hash
        out.attrs["checksum"] = dataset_checksum(out)
        return write_netcdf(out, self.record_path(task))
