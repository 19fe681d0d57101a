"""Writing result files atomically, and checking an output directory before a long run.

Every file mottscape writes (NetCDF results, figures, study records) goes through
:func:`atomic_write`: a temporary file beside the target, flushed to disk, renamed into place,
so that a crash, a signal or a full disk never leaves a truncated file under the final name;
a write error is an :class:`~mottscape.errors.OutputError` (an :class:`OSError`) naming the
path, the reason and the fix. :func:`check_output_dir` checks a directory before the
computation whose results go there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import InputError, MottscapeError, OutputError

__all__ = ["atomic_write", "check_output_dir", "write_bytes"]


def write_bytes(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`atomic_write`).

    A temporary file in the target's directory, flushed to disk, renamed over ``path``; the
    user's umask; parent directories created. Any :class:`OSError` becomes an
    :class:`OutputError` naming the path and the fix, and nothing partial is left.
    """
    target = Path(path)
    return atomic_write(target, len(data), lambda fh: _write_all(fh.fileno(), data))


def atomic_write(target: Path, n_bytes: int, fill: Callable[[BinaryIO], object],
                 check_space: bool = False) -> Path:
    """Write ``target`` through a temporary file, fsync and rename; ``fill(fh)`` writes it.

    ``n_bytes`` is the expected size (for the messages, and for the free-space check when
    ``check_space`` is set). New files get ``0o666 & ~umask``; a replaced file keeps its
    permissions. Any :class:`OSError` becomes an :class:`OutputError`; the temporary file is
    removed on every error, including a signal, and the target is then untouched.
    """
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


def _write_all(fd: int, data: bytes | memoryview) -> None:
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
