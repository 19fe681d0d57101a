"""The realization engine (issue 9): dask clusters, stores keyed to their study, faults."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import mottscape as ms
from mottscape import ensemble
from mottscape.cli import main
from mottscape.runner import run_tasks
from mottscape.store import Store

STUDY = """
[potential]
model = "block"
shape = [64, 64]
seed = 5
block = 4
width = 4.0
[conductivity]
fermi_energy = 0.8
omega_min = 0.02
omega_max = 0.2
n_omega = 4
[ensemble]
realizations = 3
[output]
figures = false
"""


def write_study(tmp_path, text=STUDY, name="s.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_cli_ensemble_exits_0_with_its_summary(tmp_path, capsys):
    study = write_study(tmp_path)
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "-q"]) == 0
    assert main(["run", str(study), "--out", str(tmp_path / "out2")]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 3 realizations" in out
    ds = ms.read_netcdf(tmp_path / "out2" / "results.nc")
    assert ds.sizes["realization"] == 3
    mean = ds.sigma_ll.mean("realization").values
    np.testing.assert_allclose(ds.sigma_ll_mean.values, mean)
    # the standard error is the spread over realizations / sqrt(n)
    sem = ds.sigma_ll.std("realization", ddof=1).values / np.sqrt(3)
    np.testing.assert_allclose(ds.sigma_ll_sem.values, sem)
    # per-realization diagnostics survive the combination as variables
    assert ds.percolating.dims == ("realization",)
    assert ds.landscape_residual.dims == ("realization",)


def test_two_local_workers_equal_one_bit_for_bit():
    study = ms.study_from_dict({
        "potential": {"model": "block", "shape": [256, 256], "seed": 3, "block": 4,
                      "width": 4.0},
        "conductivity": {"fermi_energy": 0.6, "omega_min": 0.02, "omega_max": 0.1,
                         "n_omega": 4},
    })
    one = ensemble.run_ensemble(study, 2, workers=1)
    two = ensemble.run_ensemble(study, 2, workers=2)
    for name in ("sigma_ll", "sigma_mb", "rho_omega", "n_pairs", "delta_xi"):
        np.testing.assert_array_equal(one[name].values, two[name].values)
    assert np.any(one.sigma_ll.values > 0)


def test_a_store_of_another_study_is_refused(tmp_path):
    a = ms.load_study(write_study(tmp_path))
    ensemble.run_ensemble(a, 1, store=tmp_path / "store")
    b = ms.load_study(write_study(tmp_path, STUDY.replace("fermi_energy = 0.8",
                                                          "fermi_energy = 0.7"), "b.toml"))
    with pytest.raises(ms.InputError, match=r"another study .*fermi_energy.*0\.8.*0\.7"):
        ensemble.run_ensemble(b, 1, store=tmp_path / "store")
    # options change the numbers too
    c = ms.load_study(write_study(tmp_path, STUDY + '[options]\neffective = "scaled"\n',
                                  "c.toml"))
    with pytest.raises(ms.InputError, match="effective"):
        ensemble.run_ensemble(c, 1, store=tmp_path / "store")


def test_a_locked_store_is_refused(tmp_path):
    with Store(tmp_path, {"x": 1}), pytest.raises(ms.InputError, match="another run"):
        Store(tmp_path, {"x": 1}).__enter__()


def test_a_corrupt_record_is_recomputed_not_mixed(tmp_path):
    study = ms.load_study(write_study(tmp_path))
    store = tmp_path / "store"
    first = ensemble.run_ensemble(study, 2, store=store)
    record = store / "realization_00001.nc"
    data = bytearray(record.read_bytes())
    # flip bits in the last quarter of the file (HDF5 data and metadata)
    for k in range(len(data) * 3 // 4, len(data), 97):
        data[k] ^= 0xFF
    record.write_bytes(bytes(data))
    (store / ".realization_00002.nc.abc.tmp").write_bytes(b"partial")  # a killed run's
    lines = []
    again = ensemble.run_ensemble(study, 2, store=store, log=lines.append)
    np.testing.assert_array_equal(first.sigma_ll.values, again.sigma_ll.values)
    assert any("corrupt" in line for line in lines)
    assert not list(store.glob(".*.tmp"))


def _die_once(marker: str, r: int):
    """A task whose first attempt kills its worker process."""
    path = Path(marker)
    if r == 1 and not path.exists():
        path.write_text("died")
        os._exit(1)
    import xarray as xr

    return xr.Dataset({"value": ((), float(r) ** 2)})


def test_a_killed_worker_is_survived(tmp_path):
    import functools

    task = functools.partial(_die_once, str(tmp_path / "marker"))
    report = run_tasks(task, [0, 1, 2], workers=2)
    assert sorted(report.results) == [0, 1, 2]
    assert float(report.results[1].value) == 1.0
    assert (tmp_path / "marker").exists()  # the first attempt did die
    assert not report.failures


def test_a_physics_failure_is_recorded_not_retried(tmp_path):
    study = ms.load_study(write_study(tmp_path, STUDY.replace("fermi_energy = 0.8",
                                                              "fermi_energy = -5.0")))
    with pytest.raises(ms.InputError, match=r"every realization failed.*below the bottom"):
        ensemble.run_ensemble(study, 2)


def test_an_external_scheduler_on_loopback_runs_a_study(tmp_path):
    from distributed import LocalCluster

    study_path = write_study(tmp_path, STUDY.replace("realizations = 3", "realizations = 2"))
    with LocalCluster(n_workers=1, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, processes=True) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        res = ms.run_study(study_path, out="", scheduler=cluster.scheduler_address)
    local = ms.run_study(study_path, out="")
    np.testing.assert_array_equal(res.dataset.sigma_ll.values, local.dataset.sigma_ll.values)


def _run_cli(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "mottscape", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_kill_and_resume_leaves_every_realization_once(tmp_path, sig, code):
    text = STUDY.replace("shape = [64, 64]", "shape = [160, 160]").replace(
        "realizations = 3", "realizations = 6")
    study = write_study(tmp_path, text)
    store = tmp_path / "store"
    proc = _run_cli(["run", str(study), "--store", str(store), "--out", str(tmp_path / "o"),
                     "-q"])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(store.glob("realization_*.nc"))) < 2:
        time.sleep(0.1)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert "Traceback" not in err
    done = sorted(store.glob("realization_*.nc"))
    assert 2 <= len(done)
    resumed = _run_cli(["run", str(study), "--store", str(store), "--out", str(tmp_path / "o"),
                        "-q"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    ds = ms.read_netcdf(tmp_path / "o" / "results.nc")
    assert list(ds.realization.values) == list(range(6))
    fresh = ms.run_study(study, out="")
    np.testing.assert_array_equal(ds.sigma_ll.values, fresh.dataset.sigma_ll.values)
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["description"]["study"]["conductivity"]["fermi_energy"] == 0.8


def test_report_writes_the_aggregate_with_error_bands(tmp_path):
    study = ms.load_study(write_study(tmp_path))
    ensemble.run_ensemble(study, 3, store=tmp_path / "store")
    assert main(["report", str(tmp_path / "store"), "--out", str(tmp_path / "r"), "-q"]) == 0
    ds = ms.read_netcdf(tmp_path / "r" / "ensemble.nc")
    assert ds.sizes["realization"] == 3 and "sigma_ll_sem" in ds
    assert (tmp_path / "r" / "conductivity.png").stat().st_size > 1000
    assert main(["report", str(tmp_path), "-q"]) == 2  # not a store


def test_realizations_given_as_a_string_are_refused():
    with pytest.raises(ms.InputError, match="realizations='3'"):
        ensemble.run_ensemble(ms.study_from_dict({"conductivity": {"fermi_energy": 0.6}}),
                              "3")


def test_workers_zero_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--workers", "0"])
    assert exc.value.code == 2
    assert "must be >= 1" in capsys.readouterr().err
