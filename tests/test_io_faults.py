"""Output faults: a full disk, a read-only file system, a directory without permission, a
path naming a file, file permissions from the umask, interrupted writes (mottscape.io).

The full-disk and read-only cases are tested for real on a tiny tmpfs when the tests run as
root (``mount -t tmpfs``); the same behaviour is also tested everywhere by making ``os.write``
fail with the errno the kernel would give.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from mottscape import files, io, netcdf
from mottscape.errors import InputError, MottscapeError

SRC = str(Path(__file__).resolve().parents[1] / "src")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def dataset(n: int = 20000) -> xr.Dataset:
    """About 2 * 8 * n bytes of data: 320 kB by default, five times the 64 kB tmpfs."""
    rng = np.random.default_rng(0)
    return xr.Dataset({"a": ("x", rng.random(n), {"units": "eV"}),
                       "b": ("x", rng.random(n))},
                      coords={"x": ("x", np.arange(n) + 0.5, {"units": "nm"})},
                      attrs={"units": "semiconductor"})


@contextlib.contextmanager
def tmpfs(options: str):
    """A fresh tmpfs mounted with ``options`` (root only; skips the test otherwise)."""
    if not IS_ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="mottscape-tmpfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def run_python(code: str, *, without_root_override: bool = False
               ) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with mottscape on the path (a segfault shows as a
    negative returncode). ``without_root_override`` drops root's right to ignore file
    permissions (CAP_DAC_OVERRIDE, with setpriv), so that permissions apply as to a user."""
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-c", textwrap.dedent(code)]
    if without_root_override:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot be tested")
        cmd = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


# ---------------------------------------------------------------------- full disk
def check_disk_full_error(exc: BaseException, target: Path) -> None:
    assert isinstance(exc, io.OutputError)
    assert isinstance(exc, OSError) and isinstance(exc, MottscapeError)
    assert exc.errno == errno.ENOSPC
    message = str(exc)
    assert str(target) in message
    assert "disk is full" in message and "write to another directory" in message
    assert "temporary file was removed" in message


def test_full_disk_on_a_real_tmpfs_in_process():
    with tmpfs("size=64k") as mnt:
        target = mnt / "results.nc"
        with pytest.raises(io.OutputError) as info:
            io.write_netcdf(dataset(), target)
        check_disk_full_error(info.value, target)
        assert list(mnt.iterdir()) == []  # no partial file, no temporary file


@pytest.mark.parametrize("direct", [False, True], ids=["in-memory", "direct"])
@pytest.mark.parametrize("n", [7000, 20000])
def test_full_disk_does_not_crash_the_process(n, direct):
    """Before: HDF5 lost the ENOSPC and the process died with SIGSEGV at exit (exit 139),
    leaving a corrupt results.nc. Now: OutputError, exit 0, nothing left."""
    with tmpfs("size=64k") as mnt:
        done = run_python(f"""
            import numpy as np, xarray as xr
            from mottscape import io, netcdf
            if {direct}:
                netcdf._available_memory = lambda: 1  # the path of files too large for memory
            ds = xr.Dataset({{"a": ("x", np.random.rand({n})), "b": ("x", np.random.rand({n}))}})
            try:
                io.write_netcdf(ds, {str(mnt / 'results.nc')!r})
            except io.OutputError as exc:
                print("OutputError", exc.errno)
            """)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["OutputError", str(errno.ENOSPC)]
        assert list(mnt.iterdir()) == []


def test_full_disk_keeps_the_old_file():
    with tmpfs("size=64k") as mnt:
        target = mnt / "results.nc"
        io.write_netcdf(dataset(100), target)
        before = target.read_bytes()
        with pytest.raises(io.OutputError, match="previous file there is unchanged"):
            io.write_netcdf(dataset(), target)
        assert target.read_bytes() == before
        assert [p.name for p in mnt.iterdir()] == ["results.nc"]


def _enospc_after(n_ok: int):
    """An os.write that accepts ``n_ok`` bytes, then fails as a full disk does."""
    real = os.write
    state = {"left": n_ok}

    def write(fd, data):
        data = memoryview(data).cast("B")
        if state["left"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        k = min(len(data), state["left"])
        state["left"] -= k
        return real(fd, data[:k])

    return write


@pytest.mark.parametrize("code,fragment", [(errno.ENOSPC, "disk is full"),
                                           (errno.EDQUOT, "quota"),
                                           (errno.EIO, "check the output directory")])
def test_write_errors_become_output_errors(tmp_path, monkeypatch, code, fragment):
    target = tmp_path / "out" / "results.nc"

    def failing(fd, data):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "write", failing)
    with pytest.raises(io.OutputError) as info:
        io.write_netcdf(dataset(50), target)
    assert info.value.errno == code
    assert fragment in str(info.value) and str(target) in str(info.value)
    assert list(target.parent.iterdir()) == []


def test_partial_write_then_full_disk_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "write", _enospc_after(4096))
    target = tmp_path / "results.nc"
    with pytest.raises(io.OutputError) as info:
        io.write_netcdf(dataset(), target)
    monkeypatch.undo()
    check_disk_full_error(info.value, target)
    assert list(tmp_path.iterdir()) == []


def test_large_file_refused_before_writing_when_the_disk_lacks_room(tmp_path, monkeypatch):
    """The direct path (file larger than a third of memory) checks the free space first."""
    monkeypatch.setattr(netcdf, "_available_memory", lambda: 1)

    class Full:
        f_bavail, f_frsize, f_blocks = 1, 4096, 100

    monkeypatch.setattr(files.os, "statvfs", lambda _p: Full)
    with pytest.raises(io.OutputError, match="disk is full"):
        io.write_netcdf(dataset(), tmp_path / "r.nc")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_while_writing_removes_the_temporary_file(tmp_path, monkeypatch):
    def interrupted(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.write_netcdf(dataset(50), tmp_path / "r.nc")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- read-only, permission
def test_read_only_file_system():
    with tmpfs("size=1m,ro") as mnt:
        with pytest.raises(InputError) as info:
            io.check_output_dir(mnt / "run")
        message = str(info.value)
        assert str(mnt / "run") in message and "read-only" in message
        assert "writable disk" in message
        with pytest.raises(io.OutputError) as out:
            io.write_netcdf(dataset(10), mnt / "results.nc")
        assert out.value.errno == errno.EROFS and "read-only" in str(out.value)


def test_read_only_file_system_reported_by_the_probe(tmp_path, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    with pytest.raises(InputError, match=r"read-only; write to a directory on a writable disk"):
        io.check_output_dir(tmp_path / "out")


@pytest.fixture
def locked_dir():
    """A directory without write permission (root is checked without its override)."""
    base = Path(tempfile.mkdtemp(prefix="mottscape-perm-"))
    base.chmod(0o755)
    locked = base / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        yield locked
    finally:
        locked.chmod(0o755)
        shutil.rmtree(base)


def test_directory_without_permission(locked_dir):
    code = f"""
        from pathlib import Path
        from mottscape import io
        from mottscape.errors import InputError
        try:
            io.check_output_dir(Path({str(locked_dir)!r}) / "run")
        except InputError as exc:
            print(exc)
        """
    done = run_python(code, without_root_override=IS_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    message = done.stdout
    assert str(locked_dir / "run") in message and "permission denied" in message
    assert "write permission" in message


def test_permission_error_while_writing(tmp_path, monkeypatch):
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(files.tempfile, "mkstemp", denied)
    with pytest.raises(io.OutputError) as info:
        io.write_netcdf(dataset(10), tmp_path / "r.nc")
    assert info.value.errno == errno.EACCES
    assert "permission denied" in str(info.value) and "r.nc" in str(info.value)


# ---------------------------------------------------------------------- check_output_dir
def test_output_dir_is_an_existing_file(tmp_path):
    f = tmp_path / "results"
    f.write_text("not a directory")
    with pytest.raises(InputError) as info:
        io.check_output_dir(f)
    assert str(f) in str(info.value) and "existing file, not a directory" in str(info.value)
    assert "choose another name" in str(info.value)


def test_output_dir_below_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"is a file, not a directory; choose another"):
        io.check_output_dir(tmp_path / "f" / "sub" / "run")


@pytest.mark.parametrize("bad", [None, "", b"out", 3])
def test_output_dir_not_a_name(bad):
    with pytest.raises(InputError, match="must be a directory name"):
        io.check_output_dir(bad)


def test_output_dir_ok_is_not_created_and_leaves_nothing(tmp_path):
    out = io.check_output_dir(tmp_path / "a" / "b")
    assert out == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()
    assert list(tmp_path.iterdir()) == []  # the probe file is gone
    (tmp_path / "c").mkdir()
    assert io.check_output_dir(tmp_path / "c") == tmp_path / "c"
    assert list((tmp_path / "c").iterdir()) == []


def test_output_dir_on_a_full_disk():
    with tmpfs("size=4k") as mnt:
        (mnt / "filler").write_bytes(b"\0" * 4096)
        with pytest.raises(InputError, match="disk is full"):
            io.check_output_dir(mnt / "run")


# ---------------------------------------------------------------------- permissions (umask)
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664),
                                        (0o077, 0o600)])
def test_new_file_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = io.write_netcdf(dataset(10), tmp_path / "r.nc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_replaced_file_keeps_its_mode(tmp_path):
    path = io.write_netcdf(dataset(10), tmp_path / "r.nc")
    path.chmod(0o640)
    io.write_netcdf(dataset(12), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_store_file_follows_the_umask(tmp_path):
    """Realization files of a resumable store are written by write_netcdf too."""
    old = os.umask(0o022)
    try:
        path = io.write_netcdf(dataset(10), tmp_path / "store" / "realization-0000.nc")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_below_a_regular_file(tmp_path):
    (tmp_path / "out").write_text("a file")
    with pytest.raises(io.OutputError) as info:
        io.write_netcdf(dataset(10), tmp_path / "out" / "results.nc")
    assert "a file is in the way" in str(info.value) and "move the file away" in str(info.value)


def test_a_figure_that_fails_to_draw_leaves_no_output(tmp_path, monkeypatch):
    """Every figure is drawn before anything is written (results.nc included)."""
    import mottscape as ms
    from mottscape import plot

    def broken(*_args, **_kw):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(plot, "plot_network", broken)
    study = ms.study_from_dict({
        "potential": {"model": "block", "shape": [32, 32], "block": 4, "width": 4.0},
        "conductivity": {"fermi_energy": 0.8, "n_omega": 3},
        "output": {"figures": True},
    })
    with pytest.raises(RuntimeError, match="drawing failed"):
        ms.run_study(study, out=tmp_path / "out")
    assert not (tmp_path / "out" / "results.nc").exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))


def test_write_bytes_is_atomic_and_keeps_the_umask(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "a.png"
    assert io.write_bytes(b"new", target) == target
    assert target.read_bytes() == b"new"
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~old

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_write_all", full)
    with pytest.raises(io.OutputError, match="disk is full"):
        io.write_bytes(b"newer", target)
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]
