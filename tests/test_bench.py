"""The benchmark runner works (``--quick``); it checks the output, never the speed."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

_RUNNER = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
_spec = importlib.util.spec_from_file_location("bench_runner", _RUNNER)
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_quick_run_writes_every_section(tmp_path):
    """``python benchmarks/run.py --quick --out DIR`` writes JSON with every section, a plot."""
    assert bench.main(["--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 0
    assert set(bench.SECTIONS) <= set(res)
    meta = res["meta"]
    assert meta["quick"] is True
    assert meta["bandwidth_Bps"]["copy"] > 0

    cases = {r["case"]: r for r in res["landscape"]}
    assert any(c.startswith("anderson-2d") for c in cases)
    assert any(c.startswith("anderson-3d") for c in cases)
    assert any(c.startswith("smooth-2d") for c in cases)
    for r in res["landscape"]:
        assert r["ours"]["median_s"] > 0
        assert r["ours"]["residual"] < 1e-8
        assert r["assemble_csr"]["median_s"] > 0
        assert r["cg_csr"]["iterations"] > 0
        assert r["pyamg"]["setup_s"] > 0
        if r["ours"]["method"] in ("cg", "mg"):
            assert r["ours"]["floor_s"] > 0

    ag = res["agmon"]
    assert len(ag["cases"]) >= 2
    assert all(c["median_s"] > 0 and c["default_median_s"] > 0 for c in ag["cases"])
    assert math.isfinite(ag["slope"])

    dims = sorted(len(r["shape"]) for r in res["pipeline"])
    assert dims == [2, 3]
    for r in res["pipeline"]:
        assert r["median_s"] > 0
        assert r["bytes_per_point"] > 0
        assert {"landscape", "basins", "agmon"} <= set(r["steps_s"])
        assert not r["percolating"]

    assert [len(r["shape"]) for r in res["exact"]] == [1, 2]
    for r in res["exact"]:
        assert r["exact_s"] > 0 and r["ll_s"] > 0
        assert r["speedup"] == pytest.approx(r["exact_s"] / r["ll_s"])
    assert isinstance(res["targets"], list)


def test_json_file_path_and_sections(tmp_path):
    """``--out x.json`` names the file; ``--sections`` runs a subset."""
    out = tmp_path / "sub" / "agmon.json"
    assert bench.main(["--quick", "--sections", "agmon", "--sizes", "64", "96",
                       "--no-plot", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "agmon" in res and "landscape" not in res
    assert [c["shape"] for c in res["agmon"]["cases"]] == [[64, 64], [96, 96]]


def test_helpers():
    assert bench.parse_shape("256") == (256, 256)
    assert bench.parse_shape("64x64x64") == (64, 64, 64)
    assert bench.loglog_slope([1, 10, 100], [2, 20, 200]) == pytest.approx(1.0)
    n = 1 << 20
    assert bench.traffic_bytes("cg", (1024, 1024), 10) == (10 * 10 + 30) * 8 * n
    V = bench.block_potential((10, 10), 4, seed=1)
    assert V.shape == (10, 10) and np.all((V >= 0) & (V <= 4))
