"""The command line and the study runner."""

import numpy as np
import pytest

import mottscape as ms
from mottscape.cli import EXIT_INPUT, main

SMALL = """
[potential]
model = "block"
shape = [64, 64]
seed = 7
block = 4
width = 4.0

[conductivity]
fermi_energy = 0.7
omega_min = 0.02
omega_max = 0.2
n_omega = 5
"""


def test_run_writes_results_and_figures(tmp_path, capsys):
    study = tmp_path / "study.toml"
    study.write_text(SMALL)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out)]) == 0
    ds = ms.read_netcdf(out / "results.nc")
    for name in ("sigma_ll", "sigma_mb", "rho_omega", "potential", "u", "effective_potential",
                 "basin_labels"):
        assert name in ds
    assert ds.sizes["omega"] == 5 and ds.potential.shape == (64, 64)
    np.testing.assert_allclose(ds.effective_potential, 1 / ds.u - ds.attrs["potential_shift"])
    # The saved potential is realization 0 of the study's seed.
    V = ms.load_study(study).make_potential(0)
    np.testing.assert_array_equal(ds.potential.values, V)
    for name in ("landscape.png", "agmon_shell.png", "conductivity.png", "network.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "sigma_LL" in printed and "Delta_xi" in printed


def test_same_study_same_numbers(tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(SMALL)
    a = ms.run_study(study, out="").dataset
    b = ms.run_study(study, out="").dataset
    np.testing.assert_array_equal(a.sigma_ll, b.sigma_ll)


def test_ensemble_means(tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(SMALL + "\n[ensemble]\nrealizations = 3\n")
    ds = ms.run_study(study, out="").dataset
    assert ds.sizes["realization"] == 3
    np.testing.assert_allclose(ds.sigma_ll_mean, ds.sigma_ll.mean("realization"))
    assert not np.array_equal(ds.sigma_ll[0], ds.sigma_ll[1])  # different realizations


def test_bad_study_is_one_line_and_exit_2(tmp_path, capsys):
    study = tmp_path / "bad.toml"
    study.write_text(SMALL.replace("seed = 7", "sed = 7"))
    assert main(["run", str(study), "--out", str(tmp_path / "o")]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sed" in err[0] and "seed" in err[0]
    assert "Traceback" not in err[0]


def test_debug_shows_traceback(tmp_path):
    study = tmp_path / "bad.toml"
    study.write_text(SMALL.replace("seed = 7", "sed = 7"))
    with pytest.raises(ms.InputError):
        main(["--debug", "run", str(study)])


def test_missing_study_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.toml")]) == EXIT_INPUT
    assert "nope.toml" in capsys.readouterr().err


def test_example_prints_a_loadable_study(tmp_path):
    path = tmp_path / "ex.toml"
    assert main(["example", "--out", str(path)]) == 0
    loaded = ms.load_study(path).conductivity.fermi_energy
    assert loaded == ms.default_study().conductivity.fermi_energy


@pytest.mark.parametrize("shape,ef", [((4000,), 0.8), ((24, 24, 24), 1.8)])
def test_figures_in_1d_and_3d(tmp_path, shape, ef):
    from mottscape.plot import save_figures

    V = np.random.default_rng(2).uniform(0, 4, shape)
    # 3D: a percolating sample (boxes = the whole sample), the paper's eq. 17 alone
    pipe = ms.run_pipeline(V, ef, np.geomspace(0.01, 0.3, 5),
                           estimator="pairs" if len(shape) == 1 else "eq17")
    paths = save_figures(pipe, tmp_path)
    assert len(paths) == 4
    for p in paths:
        assert p.read_bytes()[:4] == b"\x89PNG"


def test_shipped_study_files_load():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "docs"
    files = sorted(root.glob("examples/*.toml")) + sorted(root.glob("validation/*.toml"))
    assert len(files) >= 4
    for f in files:
        study = ms.load_study(f)
        assert study.conductivity.fermi_energy is not None
        assert study.omegas().size >= 2


_SWALLOWED = """
import gc, os, signal, sys, time
from mottscape import cli
# Python's own SIGINT handler, also when this process inherits SIGINT ignored (a test run
# started in the background by a non-interactive shell): the test is about that handler
signal.signal(signal.SIGINT, signal.default_int_handler)
cli._on_sigterm()
if sys.argv[1] == "hook":
    redeliver = cli._redeliver_interrupts(sys.unraisablehook)
    def hook(unraisable):
        print("Exception ignored (seen by the hook)", file=sys.stderr)
        redeliver(unraisable)
    sys.unraisablehook = hook
fired = []
signum = getattr(signal, sys.argv[2])
def callback(phase, info):  # as dask's GCDiagnosis: a signal handled in here is swallowed
    if phase == "start" and not fired:
        fired.append(1)
        os.kill(os.getpid(), signum)
        for _ in range(10000):
            pass
gc.callbacks.append(callback)
try:
    gc.collect()
    for _ in range(40):
        time.sleep(0.05)
    print("still running")
except (cli.Terminated, KeyboardInterrupt):
    print("interrupted")
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("mode, expected", [("plain", "still running"), ("hook", "interrupted")])
def test_a_signal_swallowed_in_a_gc_callback_is_delivered_again(mode, expected, sig):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _SWALLOWED, mode, sig], capture_output=True,
                         text=True, timeout=120)
    assert "Exception ignored" in out.stderr  # the handler's exception was lost in there
    assert out.stdout.strip() == expected
