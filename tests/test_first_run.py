"""First run after installing (issue 13, item 4): a light import and compiled kernels cached."""

import json
import subprocess
import sys

import numpy as np
import pytest
from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher

from mottscape.cli import main

HEAVY = ("numba", "xarray", "pandas", "matplotlib", "networkx", "dask", "distributed",
         "skimage", "pyamg", "h5py", "skfmm")


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return proc.stdout.strip().splitlines()[-1]


def test_import_loads_no_heavy_module():
    code = ("import sys, mottscape as ms\n"
            "from mottscape import Options, Study, ac_conductivity, run_pipeline\n"
            "ms.disorder; ms.load_study\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    assert _python(code) == "[]"


def _dispatchers():
    import importlib

    names = ["mottscape._agmon_kernels", "mottscape._stencil_kernels", "mottscape._labels",
             "mottscape.localization", "mottscape.exact._counts"]
    for name in names:
        mod = importlib.import_module(name)
        for attr, f in vars(mod).items():
            if isinstance(f, CPUDispatcher) and f.py_func.__module__ == name:
                yield f"{name}.{attr}", f


def test_every_kernel_is_cached_on_disk():
    found = dict(_dispatchers())
    assert len(found) > 30
    uncached = [name for name, f in found.items() if isinstance(f._cache, NullCache)]
    assert uncached == []


def test_a_study_compiles_one_specialization_per_kernel():
    # duplicates (int32 and int64 labels, C and A layouts, float32 inputs) would each compile
    code = (
        "import json, numpy as np, mottscape as ms\n"
        "from numba.core.registry import CPUDispatcher\n"
        "V = ms.disorder.block((256, 256), block=4, width=4.0, seed=3)\n"
        "ms.ac_conductivity(V.astype(np.float32), 0.9, np.geomspace(5e-3, 0.2, 4),\n"
        "                   estimator='eq17')\n"
        "ms.ac_conductivity(V, 0.9, np.geomspace(5e-3, 0.2, 4))\n"
        "import sys\n"
        "n = {f'{m}.{a}': len(f.signatures) for m, mod in list(sys.modules.items())\n"
        "     if m.startswith('mottscape') for a, f in vars(mod).items()\n"
        "     if isinstance(f, CPUDispatcher)}\n"
        "print(json.dumps(n))")
    counts = json.loads(_python(code))
    assert counts["mottscape._agmon_kernels.march_pairs"] == 1
    assert counts["mottscape._stencil_kernels._cg_update_uniform"] == 1
    assert {k: v for k, v in counts.items() if v > 1} == {}


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_grown_arrays_keep_their_values(dtype):
    from mottscape._agmon_kernels import _grow_f, _grow_i

    a = np.arange(37).astype(dtype)
    b = (_grow_i if dtype == np.int64 else _grow_f)(a)
    assert b.dtype == dtype and b.size == 74
    np.testing.assert_array_equal(b[:37], a)


def test_compile_command(capsys):
    assert main(["compile"]) == 0
    err = capsys.readouterr().err
    assert "kernels compiled or loaded" in err and "numba cache" in err
