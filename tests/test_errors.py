"""Bad input, input outside the theory and failures: a corpus of clear answers (issue 5).

Every case asserts the exception type and fragments of the message: the argument's name and
what would be accepted. Then the command line (one line per error, exit codes, ``--debug``)
and the validity flags of the results. See ``docs/errors.md``.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import mottscape as ms
from mottscape import disorder, landscape, mott, units
from mottscape.cli import EXIT_CONVERGENCE, EXIT_INPUT, EXIT_INTERNAL, main

try:
    from mottscape import exact
except ImportError:  # pragma: no cover - exact.py is optional in this tree
    exact = None

#: Far beyond the memory of any machine (10^10 points: 1.8 TiB for the pipeline, 10^11 points
#: for the cheaper steps) yet never allocated: the estimate must fail first.
HUGE_2D = (10**5, 10**5)
HUGE_3D = (5000, 5000, 5000)
OMEGA = [0.02, 0.05]


# ---------------------------------------------------------------------- fixtures (cached)
@functools.cache
def sample() -> np.ndarray:
    return disorder.block((16, 16), block=4, width=4.0, seed=1)


@functools.cache
def land() -> ms.Landscape:
    return ms.solve_landscape(sample())


@functools.cache
def basins() -> ms.Basins:
    b = ms.find_basins(land(), 1.5)
    assert b.n >= 3
    return b


@functools.cache
def pipeline() -> ms.Pipeline:
    return ms.run_pipeline(disorder.block((32, 32), block=4, width=4.0, seed=1), 0.6, OMEGA,
                           estimator="eq17")


def with_nan(V, value=np.nan):
    V = V.copy()
    V[3, 5] = value
    return V


# ---------------------------------------------------------------------- API corpus
@dataclass(frozen=True)
class Case:
    id: str
    call: object  # zero-argument callable
    exc: type
    fragments: tuple[str, ...]


def C(id_, call, exc, *fragments):
    return Case(id_, call, exc, fragments)


IE = ms.InputError
ac = ms.ac_conductivity
solve = ms.solve_landscape

API_CASES = [
    # ---- the potential V
    C("V-nan", lambda: ac(with_nan(sample()), 0.6, OMEGA), IE,
      "V contains 1 NaN or infinite", "index (3, 5)", "finite energies"),
    C("V-inf", lambda: solve(with_nan(sample(), np.inf)), IE, "V contains 1 NaN or infinite"),
    C("V-minus-inf", lambda: ms.build_hamiltonian(with_nan(sample(), -np.inf)), IE,
      "NaN or infinite"),
    C("V-complex", lambda: solve(sample() + 1e-3j), IE, "V is complex", "V.real"),
    C("V-none", lambda: ac(None, 0.6, OMEGA), IE, "V must be a numeric array", "1 to 3 axes"),
    C("V-path-string", lambda: solve("map.npy"), IE, "V must be a numeric array",
      "load_potential"),
    C("V-ragged", lambda: solve([[1.0, 2.0], [3.0]]), IE, "V must be a numeric array"),
    C("V-0d", lambda: solve(3.0), IE, "V has 0 dimensions", "1D, 2D or 3D"),
    C("V-4d", lambda: solve(np.zeros((2, 2, 2, 2))), IE, "V has 4 dimensions", "1D, 2D or 3D"),
    C("V-empty", lambda: solve(np.zeros((0, 4))), IE, "V is empty", "at least one cell"),
    # ---- the mass
    C("mass-nan", lambda: solve(sample(), mass=with_nan(np.ones((16, 16)))), IE,
      "mass contains NaN or infinite", "finite"),
    C("mass-inf", lambda: solve(sample(), mass=np.inf), IE, "mass contains NaN or infinite"),
    C("mass-negative", lambda: solve(sample(), mass=-1.0), IE, "mass must be > 0",
      "minimum given: -1"),
    C("mass-zero-somewhere", lambda: solve(sample(), mass=with_nan(np.ones((16, 16)), 0.0)),
      IE, "mass must be > 0", "minimum given: 0"),
    C("mass-shape", lambda: solve(sample(), mass=np.ones((3, 3))), IE,
      "mass has shape (3, 3)", "V has shape (16, 16)", "same shape as V"),
    C("mass-string", lambda: solve(sample(), mass="heavy"), IE, "mass='heavy'",
      "positive number"),
    # ---- spacing and grid
    C("spacing-zero", lambda: solve(sample(), spacing=0.0), IE, "spacing=0.0", "> 0"),
    C("spacing-negative-axis", lambda: solve(sample(), spacing=[1.0, -1.0]), IE,
      "spacing=[1.0, -1.0]", "> 0 along every axis"),
    C("spacing-nan", lambda: solve(sample(), spacing=np.nan), IE, "spacing=nan", "finite"),
    C("spacing-length", lambda: solve(sample(), spacing=[1.0, 1.0, 1.0]), IE,
      "spacing=[1.0, 1.0, 1.0]", "sequence of 2 values"),
    C("spacing-string", lambda: solve(sample(), spacing="one"), IE, "spacing='one'",
      "positive number"),
    C("grid-4-axes", lambda: ms.make_grid((2, 2, 2, 2)), IE, "4 dimensions", "1D, 2D and 3D"),
    C("grid-zero-axis", lambda: ms.make_grid((0, 3)), IE, "shape (0, 3)", "at least one cell"),
    C("grid-float-shape", lambda: ms.make_grid((2.5, 3)), IE, "shape=(2.5, 3)", "integers"),
    C("boundary-name", lambda: solve(sample(), boundary="open"), IE, "boundary='open'",
      "'dirichlet', 'periodic'"),
    C("boundary-type", lambda: solve(sample(), boundary=3), IE, "boundary=3", "'dirichlet'"),
    C("units-name", lambda: solve(sample(), units="SI"), IE, "units='SI'",
      "'lattice', 'semiconductor'"),
    C("grid-mismatch", lambda: ms.build_hamiltonian(sample(), grid=ms.make_grid((4, 4))), IE,
      "grid has shape (4, 4)", "V has shape (16, 16)"),
    # ---- landscape solver options
    C("solver-name", lambda: solve(sample(), solver="magic"), IE, "solver='magic'", "'mg'"),
    C("solver-name-pipeline", lambda: ac(sample(), 0.6, OMEGA, solver="magic"), IE,
      "solver='magic'", "'direct'"),
    C("solver-banded-2d", lambda: solve(sample(), solver="banded"), IE, "solver='banded'",
      "1D sample with Dirichlet"),
    C("dispersion-name", lambda: solve(sample(), dispersion="free"), IE, "dispersion='free'",
      "'continuum'"),
    C("on-failure-name", lambda: solve(sample(), on_failure="ignore"), IE,
      "on_failure='ignore'", "'raise' or 'flag'"),
    C("tol-negative", lambda: solve(sample(), tol=-1.0), IE, "tol=-1.0", "> 0 and < 1"),
    C("tol-string", lambda: solve(sample(), tol="tight"), IE, "tol='tight'", "between 0 and 1"),
    C("maxiter-zero", lambda: solve(sample(), solver="cg", maxiter=0), IE, "maxiter=0",
      "positive int"),
    C("shift-too-low", lambda: solve(sample(), shift=-10.0), IE, "shift=-10.0",
      "use shift >= "),
    C("shift-nan", lambda: solve(sample(), shift=np.nan), IE, "shift=nan must be finite"),
    C("shift-bool", lambda: solve(sample(), shift=True), IE, "shift=True must be a real number",
      "or None"),
    C("periodic-constant-V", lambda: solve(np.full((8, 8), 0.7), boundary="periodic"), IE,
      "periodic boundaries", "boundary='dirichlet' or pass shift > 0"),
    C("given-landscape-shapes", lambda: ms.Landscape.from_effective_potential(
        np.ones((4, 4)), potential=np.zeros((3, 3))), IE, "potential has shape (3, 3)",
      "effective_potential has shape (4, 4)"),
    C("given-landscape-below-V", lambda: ms.Landscape.from_effective_potential(
        -np.ones((4, 4))), IE, "effective_potential must lie above min(potential)"),
    # ---- memory: estimated before allocating anything of the grid's size
    C("memory-ac-conductivity", lambda: ac(np.broadcast_to(0.0, HUGE_2D), 0.6, OMEGA), IE,
      "10,000,000,000 points needs about", "GiB", "smaller sample"),
    C("memory-solve-landscape", lambda: solve(np.broadcast_to(0.0, HUGE_2D)), IE,
      "landscape solve", "needs about", "GiB"),
    C("memory-hamiltonian-3d", lambda: ms.build_hamiltonian(np.broadcast_to(1.0, HUGE_3D)), IE,
      "125,000,000,000 points needs about", "GiB"),
    C("memory-generator", lambda: disorder.block(HUGE_3D, block=4, seed=1), IE,
      "disorder.block", "needs about", "GiB"),
    C("memory-generate-3d", lambda: ms.generate("anderson", shape=HUGE_3D, width=1.0, seed=1),
      IE, "needs about", "GiB"),
    # ---- frequencies
    C("omega-zero", lambda: ac(sample(), 0.6, [0.0, 0.1]), IE, "omega must be finite and > 0",
      "got 0"),
    C("omega-negative", lambda: ac(sample(), 0.6, [-0.1]), IE, "omega must be finite and > 0"),
    C("omega-decreasing", lambda: ac(sample(), 0.6, [0.1, 0.05]), IE,
      "omega must be strictly increasing"),
    C("omega-repeated", lambda: ac(sample(), 0.6, [0.1, 0.1]), IE, "strictly increasing",
      "remove duplicates"),
    C("omega-empty", lambda: ac(sample(), 0.6, []), IE, "omega must be a non-empty 1D array"),
    C("omega-nan", lambda: ac(sample(), 0.6, [0.01, np.nan]), IE, "omega must be finite",
      "got nan"),
    C("omega-inf", lambda: ac(sample(), 0.6, [0.01, np.inf]), IE, "omega must be finite"),
    C("omega-string", lambda: ac(sample(), 0.6, "fast"), IE,
      "omega must be a number or an array of numbers"),
    C("omega-2d", lambda: ac(sample(), 0.6, [[0.01, 0.02]]), IE, "1D array", "shape (1, 2)"),
    # ---- the Fermi energy
    C("EF-below-spectrum", lambda: ac(sample(), -5.0, OMEGA), IE, "fermi_energy=-5",
      "below the bottom of the landscape spectrum", "choose E_F above min V_u"),
    C("EF-string", lambda: ac(sample(), "high", OMEGA), IE,
      "fermi_energy='high' must be a real number"),
    # a number as text or a bool would be float()-able, and a silently wrong (or unchecked)
    # energy: refused like any other non-number (study files give numbers as TOML numbers)
    C("EF-numeric-string", lambda: ac(sample(), "0.6", OMEGA), IE,
      "fermi_energy='0.6' must be a real number"),
    C("EF-bool", lambda: ac(sample(), True, OMEGA), IE, "fermi_energy=True must be a real number"),
    C("EF-none", lambda: ac(sample(), None, OMEGA), IE, "fermi_energy=None must be a real number"),
    C("EF-array", lambda: ac(sample(), [0.5, 0.6], OMEGA), IE,
      "fermi_energy=[0.5, 0.6] must be a real number"),
    C("EF-nan", lambda: ac(sample(), np.nan, OMEGA), IE, "fermi_energy=nan must be finite"),
    C("EF-inf", lambda: ac(sample(), np.inf, OMEGA), IE, "fermi_energy=inf must be finite"),
    # ---- the theory's open choices
    C("mott-scale-name", lambda: ac(sample(), 0.6, OMEGA, mott_scale="exp"), IE,
      "mott_scale='exp'", "'lambertw', 'log'"),
    C("mott-scale-function", lambda: mott.mott_scale([0.1], 1.0, "exp"), IE,
      "mott_scale='exp'"),
    C("dos-name", lambda: ac(sample(), 0.6, OMEGA, dos="exact"), IE, "dos='exact'",
      "'landscape', 'basins'"),
    C("pairs-name", lambda: ac(sample(), 0.6, OMEGA, pairs="all"), IE, "pairs='all'",
      "'sigma_omega', 'window'"),
    C("xi-name", lambda: ac(sample(), 0.6, OMEGA, xi="guess"), IE, "xi='guess'",
      "'fit', 'metric'"),
    C("center-name", lambda: ac(sample(), 0.6, OMEGA, center="middle"), IE,
      "center='middle'", "'weighted'"),
    C("split-name", lambda: ac(sample(), 0.6, OMEGA, split="voronoi"), IE,
      "split='voronoi'", "'watershed'"),
    C("units-lookup", lambda: units.get_units("cgs"), IE, "units='cgs'", "'semiconductor'"),
    # ---- basins
    C("basins-energy-string", lambda: ms.find_basins(land(), "E_F"), IE,
      "energy='E_F' must be a real number", "(the level E, e.g. E_F)"),
    C("basins-energy-nan", lambda: ms.find_basins(land(), np.nan), IE,
      "energy=nan must be finite", "(the level E, e.g. E_F)"),
    C("basins-energy-bool", lambda: ms.find_basins(land(), False), IE,
      "energy=False must be a real number"),
    C("basins-not-a-landscape", lambda: ms.find_basins(sample(), 0.6), IE,
      "land must be a Landscape", "solve_landscape"),
    # ---- Agmon distances
    C("agmon-source-shape", lambda: ms.agmon_distance(land(), 0.6, np.ones((3, 3), bool)), IE,
      "source has shape (3, 3)", "boolean mask of the grid's shape"),
    C("agmon-source-dtype", lambda: ms.agmon_distance(land(), 0.6, np.ones((16, 16), int)), IE,
      "source must be a boolean mask", "basins.mask(i)"),
    C("agmon-source-empty", lambda: ms.agmon_distance(land(), 0.6, np.zeros((16, 16), bool)),
      IE, "source is empty", "at least one cell"),
    C("agmon-bound-negative", lambda: ms.agmon_distance(land(), 0.6, basins().mask(0),
                                                        bound=-1.0), IE,
      "bound=-1.0", ">= 0"),
    C("agmon-bound-nan", lambda: ms.agmon_distance(land(), 0.6, basins().mask(0),
                                                   bound=np.nan), IE, "bound=nan"),
    C("agmon-bound-string", lambda: ms.agmon_distance(land(), 0.6, basins().mask(0),
                                                      bound="far"), IE,
      "bound='far' must be a real number", "np.inf or None for no bound"),
    C("pairs-bound-bool", lambda: ms.basin_distances(land(), basins(), bound=True), IE,
      "bound=True must be a real number"),
    C("pairs-bound-text", lambda: ms.basin_distances(land(), basins(), bound="3"), IE,
      "bound='3' must be a real number"),
    C("pairs-bound-bools", lambda: ms.basin_distances(land(), basins(), sources=[0, 1],
                                                      bound=[True, False]), IE,
      "bound must be numbers >= 0, one per source", "dtype bool"),
    C("agmon-order", lambda: ms.agmon_distance(land(), 0.6, basins().mask(0), order=3), IE,
      "order=3", "use 1 or 2"),
    C("agmon-energy-nan", lambda: ms.agmon_distance(land(), np.nan, basins().mask(0)), IE,
      "energy=nan must be finite"),
    C("agmon-not-a-landscape", lambda: ms.agmon_distance(sample(), 0.6, basins().mask(0)), IE,
      "land must be a Landscape"),
    C("pairs-bound-shape", lambda: ms.basin_distances(land(), basins(), sources=[0, 1],
                                                      bound=[1.0, 2.0, 3.0]), IE,
      "bound has shape (3,)", "one value per source (2 sources)"),
    C("pairs-bound-negative", lambda: ms.basin_distances(land(), basins(), sources=[0, 1],
                                                         bound=[1.0, -2.0]), IE, ">= 0"),
    C("pairs-source-range", lambda: ms.basin_distances(land(), basins(), sources=[0, 999]), IE,
      "basin index 999, out of range", "valid indices are 0 to"),
    C("pairs-source-float", lambda: ms.basin_distances(land(), basins(), sources=[0.5]), IE,
      "sources must be integer basin indices"),
    C("pairs-source-repeated", lambda: ms.basin_distances(land(), basins(), sources=[1, 1]),
      IE, "repeated basin indices", "each basin once"),
    C("pairs-basins-type", lambda: ms.basin_distances(land(), [0, 1]), IE,
      "basins must be a Basins", "find_basins"),
    C("geodesic-outside", lambda: ms.geodesic(land(), 0.6, (0, 0), (100, 100)), IE,
      "end=(100, 100) lies outside the grid (16, 16)"),
    C("geodesic-spec", lambda: ms.geodesic(land(), 0.6, (0,), (1, 1)), IE,
      "start=(0,)", "a tuple of 2 ints", "boolean mask"),
    C("metric-negative", lambda: ms.distance_field(-np.ones((16, 16)), land().grid,
                                                   basins().mask(0)), IE,
      "metric must be finite and >= 0"),
    C("metric-shape", lambda: ms.distance_field(np.ones((4, 4)), land().grid, basins().mask(0)),
      IE, "metric has shape (4, 4)", "grid has shape (16, 16)"),
    C("idos-energy-string", lambda: land().idos("E_F"), IE, "energy='E_F'",
      "a number or an array of numbers"),
    C("metric-energy-nan", lambda: land().agmon_metric(np.nan), IE, "energy=nan",
      "finite number"),
    # ---- conduction network and pair model
    C("network-not-a-pipeline", lambda: ms.conduction_network(sample(), 0), IE,
      "pipeline must be a Pipeline", "run_pipeline"),
    C("pair-model-not-a-pipeline", lambda: ms.pair_conductivity(sample(), [0.01, 0.1]), IE,
      "pipeline must be a Pipeline"),
    C("network-index-range", lambda: ms.conduction_network(pipeline(), 5), IE,
      "omega_index=5 is out of range", "0 to 1"),
    C("network-index-type", lambda: ms.conduction_network(pipeline(), "last"), IE,
      "omega_index='last'", "must be an int"),
    C("pair-prefactor-negative", lambda: ms.pair_conductivity(pipeline(), [0.01, 0.1],
                                                              prefactor=-1.0), IE,
      "prefactor=-1.0", "> 0"),
    C("pair-prefactor-string", lambda: ms.pair_conductivity(pipeline(), [0.01, 0.1],
                                                            prefactor="one"), IE,
      "prefactor='one'", "finite number > 0"),
    C("pair-edges-short", lambda: ms.pair_conductivity(pipeline(), [0.1]), IE,
      "omega_edges=[0.1]", "at least two"),
    C("pair-edges-nan", lambda: ms.pair_conductivity(pipeline(), [0.01, np.nan]), IE,
      "omega_edges=", "finite, positive"),
]

if exact is not None:
    kg = exact.kubo_greenwood
    API_CASES += [
        C("kg-edges-one", lambda: kg(sample()[:8, :8], 0.6, [0.1]), IE,
          "omega_edges must be a 1D array of at least 2 bin edges"),
        C("kg-edges-decreasing", lambda: kg(sample()[:8, :8], 0.6, [0.1, 0.01]), IE,
          "omega_edges must be strictly increasing"),
        C("kg-edges-zero", lambda: kg(sample()[:8, :8], 0.6, [0.0, 0.1]), IE,
          "omega_edges must be > 0"),
        C("kg-EF-below", lambda: kg(sample()[:8, :8], -10.0, [0.01, 0.1]), IE,
          "fermi_energy=-10", "below the lowest eigenvalue", "inside the spectrum"),
        C("kg-EF-string", lambda: kg(sample()[:8, :8], "x", [0.01, 0.1]), IE,
          "fermi_energy='x' must be a real number"),
        C("kg-EF-bool", lambda: kg(sample()[:8, :8], True, [0.01, 0.1]), IE,
          "fermi_energy=True must be a real number"),
        C("kg-temperature", lambda: kg(sample()[:8, :8], 0.6, [0.01, 0.1], temperature=-1.0),
          IE, "temperature=-1", ">= 0"),
        C("kg-method", lambda: kg(sample()[:8, :8], 0.6, [0.01, 0.1], method="lanczos"), IE,
          "method='lanczos'", "'shift-invert'"),
        C("kg-tridiagonal-2d", lambda: kg(sample()[:8, :8], 0.6, [0.01, 0.1],
                                          method="tridiagonal"), IE,
          "method='tridiagonal' needs a 1D sample"),
        C("kg-nan-V", lambda: kg(with_nan(sample()), 0.6, [0.01, 0.1]), IE,
          "V contains 1 NaN"),
        C("kg-memory", lambda: kg(np.broadcast_to(0.0, HUGE_3D), 0.6, [0.01, 0.1]), IE,
          "needs about", "GiB"),
        C("kg-memory-dense", lambda: kg(np.zeros((1000, 1000)), 0.6, [0.01, 0.1], method="dense"),
          IE, "method='dense'", "use 'shift-invert'", "needs about", "GiB"),
    ]


def check(case: Case) -> BaseException:
    with pytest.raises(case.exc) as info:
        case.call()
    message = str(info.value)
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "\n" not in message
    return info.value


@pytest.mark.parametrize("case", API_CASES, ids=[c.id for c in API_CASES])
def test_api_bad_input(case):
    err = check(case)
    assert isinstance(err, ms.MottscapeError)


@pytest.mark.parametrize("case", [c for c in API_CASES if c.id.startswith(("memory", "kg-memory"))],
                         ids=lambda c: c.id)
def test_memory_is_estimated_before_allocating(case):
    """A grid too large for the machine fails at once, before anything of its size exists."""
    t0 = time.perf_counter()
    check(case)
    assert time.perf_counter() - t0 < 2.0


def test_input_errors_are_value_errors_and_solver_errors_runtime_errors():
    assert issubclass(ms.InputError, ValueError) and issubclass(ms.ValidityError, ValueError)
    assert issubclass(ms.ConvergenceError, RuntimeError)
    assert issubclass(ms.StudyError, ms.InputError)
    for cls in (ms.InputError, ms.ValidityError, ms.ConvergenceError):
        assert issubclass(cls, ms.MottscapeError)


# ---------------------------------------------------------------------- solver failures
def test_unconverged_landscape_raises_with_the_residual():
    V = disorder.block((64, 64), block=4, width=4.0, seed=2)
    with pytest.raises(ms.ConvergenceError, match="relative residual") as info:
        solve(V, solver="stencil-cg", maxiter=2)
    assert info.value.residual is not None and info.value.residual > 1e-10
    assert f"{info.value.residual:.3g}" in str(info.value)
    flagged = solve(V, solver="stencil-cg", maxiter=2, on_failure="flag")
    assert not flagged.converged and flagged.residual == pytest.approx(info.value.residual)


def test_indefinite_operator_raises_with_the_residual(monkeypatch):
    """A solver returning a non-positive u (what an indefinite H gives) is an error."""
    monkeypatch.setattr(landscape, "_solve", lambda ham, *a: (-np.ones(ham.shape), 1))
    with pytest.raises(ms.ConvergenceError, match="non-positive u") as info:
        solve(sample())
    assert info.value.residual is not None and info.value.residual > 1.0


# ---------------------------------------------------------------------- files
def _pickle_npy(path):
    path.write_bytes(pickle.dumps({"V": [1, 2, 3]}))


FILE_CASES = [
    ("npy-object-array", "m.npy",
     lambda p: np.save(p, np.array([[1.0, "a"]], dtype=object), allow_pickle=True), {},
     ("unpickling", "refuses", "np.save(path, np.asarray(V, dtype=float))")),
    ("npy-is-a-pickle", "m.npy", _pickle_npy, {}, ("m.npy", "unpickling", "refuses")),
    ("npy-complex", "m.npy", lambda p: np.save(p, np.ones((4, 4)) + 1j), {},
     ("dtype complex128", "real numeric array")),
    ("npy-nan", "m.npy", lambda p: np.save(p, with_nan(np.ones((8, 8)))), {},
     ("NaN or infinite", "m.npy")),
    ("npy-4d", "m.npy", lambda p: np.save(p, np.ones((2, 2, 2, 2))), {},
     ("4 dimensions", "1D, 2D or 3D")),
    ("npy-truncated", "m.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00"), {},
     ("cannot read", "as a .npy file")),
    ("npy-variable-given", "m.npy", lambda p: np.save(p, np.ones(4)), {"variable": "V"},
     ("variable='V' was given", "drop the variable name")),
    ("npz-two-arrays", "m.npz", lambda p: np.savez(p, a=np.ones(3), b=np.ones(3)), {},
     ("holds 2 arrays (a, b)", "variable=<name>")),
    ("npz-missing-variable", "m.npz", lambda p: np.savez(p, a=np.ones(3)), {"variable": "V"},
     ("variable='V' is not in", "available arrays: a")),
    ("netcdf-missing-variable", "m.nc",
     lambda p: xr.Dataset({"W": (("x", "y"), np.ones((4, 4)))}).to_netcdf(p), {"variable": "V"},
     ("variable='V' is not in", "available data variables: W")),
    ("netcdf-ambiguous", "m.nc",
     lambda p: xr.Dataset({"W": ("x", np.ones(4)), "U": ("x", np.ones(4))}).to_netcdf(p), {},
     ("holds 2 data variables", "none is named 'V'", "variable=<name>")),
    ("netcdf-empty", "m.nc", lambda p: xr.Dataset().to_netcdf(p), {},
     ("holds 0 data variables", "variable=<name>")),
    ("netcdf-non-uniform", "m.nc",
     lambda p: xr.Dataset({"V": ("x", np.ones(4))},
                          coords={"x": [0.0, 1.0, 3.0, 4.0]}).to_netcdf(p), {},
     ("coordinate 'x'", "not uniformly spaced", "interp")),
    ("netcdf-not-netcdf", "m.nc", lambda p: p.write_text("hello"), {},
     ("is not a NetCDF file",)),
    ("suffix", "m.csv", lambda p: p.write_text("1,2\n"), {},
     ("suffix '.csv' is not supported", ".npy, .npz")),
    ("missing-file", "absent.npy", lambda p: None, {}, ("does not exist",)),
]


def test_write_netcdf_to_a_directory(tmp_path):
    ds = xr.Dataset({"a": ("x", [1.0])})
    check(Case("dir", lambda: ms.write_netcdf(ds, tmp_path), IE, ("is a directory",
                                                                   "results.nc")))
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


@pytest.mark.parametrize("name,make,kwargs,fragments", [c[1:] for c in FILE_CASES],
                         ids=[c[0] for c in FILE_CASES])
def test_bad_potential_file(tmp_path, name, make, kwargs, fragments):
    path = tmp_path / name
    make(path)
    check(Case(name, lambda: ms.load_potential(path, **kwargs), IE, fragments))


def test_huge_npy_is_refused_from_its_header(tmp_path):
    """The header says how large the array is: refuse before reading it."""
    path = tmp_path / "huge.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_2_0(
            fh, {"descr": "<f8", "fortran_order": False, "shape": HUGE_3D})
    t0 = time.perf_counter()
    check(Case("huge-npy", lambda: ms.load_potential(path), IE,
               ("potential in", "huge.npy", "needs about", "GiB")))
    assert time.perf_counter() - t0 < 2.0


# ---------------------------------------------------------------------- study files
STUDY_CASES = [
    # id, text, line (None: not located), fragments
    ("unknown-key", "[conductivity]\nfermi_energy = 0.5\nfermi_enrgy = 0.5\n", 3,
     ("unknown key 'fermi_enrgy' in [conductivity]", "did you mean 'fermi_energy'?")),
    ("unknown-section", "[solver]\nname = 'mg'\n[conductivity]\nfermi_energy = 0.5\n", 1,
     ("unknown section [solver]", "Valid sections: [potential]")),
    ("key-outside-section", "fermi_energy = 0.5\n", 1,
     ("key 'fermi_energy' is outside any section", "put it under [conductivity]")),
    ("unknown-grid-key", "[grid]\nsolver = 'mg'\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("unknown key 'solver' in [grid]", "Valid keys in [grid]: boundary, mass")),
    ("unknown-model-parameter", "[potential]\nwidht = 2.0\n[conductivity]\nfermi_energy = 0.5\n",
     2, ("unknown key 'widht' in [potential]", "did you mean 'width'?")),
    ("injected-parameter", "[potential]\nspacing = 2.0\n[conductivity]\nfermi_energy = 0.5\n",
     2, ("[potential] spacing", "taken from grid.spacing")),
    ("file-key-without-file-model",
     "[potential]\nfile = 'V.npy'\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[potential] file is only used with model = 'file'",)),
    ("fermi-energy-string", "[conductivity]\nfermi_energy = 'high'\n", 2,
     ("[conductivity] fermi_energy must be a number", "got string 'high'")),
    ("fermi-energy-quoted-number", "[conductivity]\nfermi_energy = '0.5'\n", 2,
     ("fermi_energy must be a number", "string '0.5'")),
    ("fermi-energy-missing", "[grid]\nspacing = 1.0\n", None,
     ("[conductivity] fermi_energy is required but missing", "fermi_energy = <E_F>")),
    ("fermi-energy-nan", "[conductivity]\nfermi_energy = nan\n", 2,
     ("[conductivity] fermi_energy must be finite",)),
    ("invalid-toml", "[conductivity]\nfermi_energy = = 0.5\n", 2,
     ("invalid TOML", "'key = value' syntax")),
    ("invalid-toml-unclosed", "[conductivity]\nfermi_energy = 0.5\nomega = [0.1, 0.2\n", 3,
     ("invalid TOML", "Unclosed array", "closing brackets")),
    ("boundary-name", "[grid]\nboundary = 'open'\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] boundary = 'open' is not known", "'dirichlet', 'periodic'")),
    ("boundary-type", "[grid]\nboundary = 1\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] boundary must be a string", "got integer 1")),
    ("units-name", "[grid]\nunits = 'SI'\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] units = 'SI' is not known", "'lattice', 'semiconductor'")),
    ("mott-scale-name", "[conductivity]\nfermi_energy = 0.5\nmott_scale = 'exp'\n", 3,
     ("[conductivity] mott_scale = 'exp' is not known", "'lambertw', 'log'")),
    ("model-name", "[potential]\nmodel = 'andersen'\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("model = 'andersen' is not known", "did you mean 'anderson'?")),
    ("huge-shape", "[potential]\nshape = [100000, 100000]\n[conductivity]\nfermi_energy = 0.5\n",
     2, ("[potential] shape = [100000, 100000]", "needs about", "GiB", "smaller sample")),
    ("huge-shape-3d", "[potential]\nshape = [5000, 5000, 5000]\n"
     "[conductivity]\nfermi_energy = 0.5\n", 2, ("needs about", "GiB")),
    ("shape-4-axes", "[potential]\nshape = [4, 4, 4, 4]\n[conductivity]\nfermi_energy = 0.5\n",
     2, ("[potential] shape must be an array of 1 to 3 positive integers",)),
    ("shape-zero", "[potential]\nshape = [0, 4]\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("shape must be an array of 1 to 3 positive integers", "got array [0, 4]")),
    ("shape-float", "[potential]\nshape = [64.0, 64]\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("positive integers",)),
    ("spacing-zero", "[grid]\nspacing = 0\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] spacing = 0.0 must be > 0",)),
    ("spacing-length", "[grid]\nspacing = [1.0, 1.0, 1.0]\n[conductivity]\nfermi_energy = 0.5\n",
     2, ("[grid] spacing has 3 values but the potential has 2 axes",
         "one value per axis")),
    ("spacing-nan", "[grid]\nspacing = nan\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] spacing must be finite",)),
    ("spacing-string", "[grid]\nspacing = 'fine'\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] spacing must be a number or an array of numbers",)),
    ("mass-negative", "[grid]\nmass = -1.0\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] mass = -1.0 must be > 0",)),
    ("mass-inf", "[grid]\nmass = inf\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] mass must be finite",)),
    ("mass-file-missing", "[grid]\nmass = 'm.npy'\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[grid] mass = 'm.npy'", "does not exist", "study file's directory")),
    ("omega-decreasing", "[conductivity]\nfermi_energy = 0.5\nomega = [0.2, 0.1]\n", 3,
     ("[conductivity] omega = [0.2, 0.1] must be > 0 and strictly increasing",)),
    ("omega-negative", "[conductivity]\nfermi_energy = 0.5\nomega = [-0.1, 0.2]\n", 3,
     ("must be > 0 and strictly increasing",)),
    ("omega-empty", "[conductivity]\nfermi_energy = 0.5\nomega = []\n", 3,
     ("[conductivity] omega must be a non-empty array of numbers",)),
    ("omega-nan", "[conductivity]\nfermi_energy = 0.5\nomega = [nan]\n", 3,
     ("[conductivity] omega must be finite",)),
    ("omega-min-zero", "[conductivity]\nfermi_energy = 0.5\nomega_min = 0.0\n", 3,
     ("[conductivity] omega_min = 0.0 must be > 0",)),
    ("omega-max-below-min", "[conductivity]\nfermi_energy = 0.5\nomega_min = 0.5\n"
     "omega_max = 0.1\n", 4, ("omega_max = 0.1 must be > omega_min = 0.5",)),
    ("n-omega-one", "[conductivity]\nfermi_energy = 0.5\nn_omega = 1\n", 3,
     ("n_omega = 1 must be >= 2", "omega = [value]")),
    ("n-omega-float", "[conductivity]\nfermi_energy = 0.5\nn_omega = 3.5\n", 3,
     ("[conductivity] n_omega must be an integer", "got float 3.5")),
    ("omega-and-grid", "[conductivity]\nfermi_energy = 0.5\nomega = [0.1]\nomega_min = 0.01\n",
     4, ("give either omega = [...] or omega_min/omega_max/n_omega",)),
    ("realizations-zero", "[ensemble]\nrealizations = 0\n[conductivity]\nfermi_energy = 0.5\n",
     2, ("[ensemble] realizations = 0 must be >= 1",)),
    ("seed-negative", "[potential]\nseed = -1\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[potential] seed = -1 must be >= 0",)),
    ("seed-float", "[potential]\nseed = 1.5\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[potential] seed must be an integer",)),
    ("model-parameter-value", "[potential]\nwidth = -1.0\n[conductivity]\nfermi_energy = 0.5\n",
     2, ("[potential]", "width=-1.0 must be >= 0")),
    ("model-parameter-type", "[potential]\nwidth = 'wide'\n[conductivity]\nfermi_energy = 0.5\n",
     2, ("[potential] width must be a number", "got string 'wide'")),
    ("model-parameter-missing", "[potential]\nmodel = 'white_noise'\nshape = [64]\n"
     "[conductivity]\nfermi_energy = 0.5\n", 1,
     ("model 'white_noise' needs strength", "see mottscape.disorder.white_noise")),
    ("file-missing", "[potential]\nmodel = 'file'\nfile = 'nope.npy'\n"
     "[conductivity]\nfermi_energy = 0.5\n", 3,
     ("[potential] file = 'nope.npy'", "does not exist")),
    ("file-not-given", "[potential]\nmodel = 'file'\n[conductivity]\nfermi_energy = 0.5\n", 1,
     ("model = 'file' needs file = '<path>'", ".npy, .npz or NetCDF")),
    ("figures-string", "[output]\nfigures = 'yes'\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[output] figures must be a boolean (true or false)", "got string 'yes'")),
    ("output-dir-empty", "[output]\ndir = ''\n[conductivity]\nfermi_energy = 0.5\n", 2,
     ("[output] dir must not be empty",)),
]


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("text,line,fragments", [c[1:] for c in STUDY_CASES],
                         ids=[c[0] for c in STUDY_CASES])
def test_bad_study_file(tmp_path, text, line, fragments):
    path = write(tmp_path, text)
    err = check(Case("study", lambda: ms.load_study(path), ms.StudyError, fragments))
    assert str(path) in str(err)
    assert err.line == line
    if line is not None:
        assert f"line {line}:" in str(err)


def test_study_from_dict_errors_name_the_key():
    with pytest.raises(ms.StudyError, match=r"\[grid\] mass = 0.0 must be > 0") as info:
        ms.study_from_dict({"grid": {"mass": 0.0}, "conductivity": {"fermi_energy": 0.5}})
    assert info.value.section == "grid" and info.value.key == "mass"


def test_study_fermi_energy_below_spectrum_fails_when_run(tmp_path):
    path = write(tmp_path, "[potential]\nshape = [16, 16]\n[conductivity]\nfermi_energy = -3.0\n")
    with pytest.raises(ms.InputError, match="fermi_energy=-3 is below the bottom"):
        ms.run_study(path, out="")


def test_study_file_map_with_pickle_fails_when_run(tmp_path):
    np.save(tmp_path / "V.npy", np.array([[1.0, "a"]], dtype=object), allow_pickle=True)
    path = write(tmp_path, "[potential]\nmodel = 'file'\nfile = 'V.npy'\n"
                           "[conductivity]\nfermi_energy = 0.5\n")
    with pytest.raises(ms.InputError, match="unpickling"):
        ms.run_study(path, out="")


@pytest.mark.parametrize("mass_map,fragments", [
    (np.ones((3, 3)), ("[grid] mass = ", "m.npy", "the map has shape [3, 3]",
                       "potential has shape [16, 16]")),
    (-np.ones((16, 16)), ("[grid] mass = ", "m.npy", "mass must be > 0")),
    (with_nan(np.ones((16, 16))), ("[grid] mass = ", "m.npy", "NaN or infinite")),
], ids=["shape", "negative", "nan"])
def test_bad_mass_map_names_the_file_and_key(tmp_path, mass_map, fragments):
    np.save(tmp_path / "m.npy", mass_map)
    path = write(tmp_path, "[potential]\nshape = [16, 16]\n[grid]\nmass = 'm.npy'\n"
                           "[conductivity]\nfermi_energy = 0.5\n")
    study = ms.load_study(path)
    err = check(Case("mass-map", study.make_mass, ms.StudyError, fragments))
    assert err.key == "mass" and err.section == "grid"
    with pytest.raises(ms.StudyError, match="mass"):
        ms.run_study(path, out="")


def test_huge_study_fails_fast(tmp_path):
    path = write(tmp_path, "[potential]\nshape = [100000, 100000]\n"
                           "[conductivity]\nfermi_energy = 0.5\n")
    t0 = time.perf_counter()
    with pytest.raises(ms.StudyError, match="needs about"):
        ms.run_study(path, out="")
    assert time.perf_counter() - t0 < 2.0


# ---------------------------------------------------------------------- command line
SMALL = """
[potential]
model = "block"
shape = [32, 32]
seed = 7
block = 4
width = 4.0

[conductivity]
fermi_energy = 0.7
omega_min = 0.02
omega_max = 0.2
n_omega = 3

[output]
figures = false
"""


def run_cli(capsys, *argv):
    code = main([argv[0], "-q", *argv[1:]])  # -q: only errors on stderr
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def one_line(err_lines):
    assert len(err_lines) == 1, err_lines
    assert "Traceback" not in err_lines[0]
    assert err_lines[0].startswith("mottscape: ")
    return err_lines[0]


CLI_INPUT_CASES = [
    ("unknown-key", SMALL.replace("seed = 7", "sed = 7"), ("line 5", "'sed'", "'seed'")),
    ("invalid-toml", SMALL.replace("n_omega = 3", "n_omega = = 3"), ("invalid TOML", "line 13")),
    ("missing-fermi-energy", SMALL.replace("fermi_energy = 0.7", ""),
     ("fermi_energy is required",)),
    ("huge-shape", SMALL.replace("[32, 32]", "[100000, 100000]"), ("needs about", "GiB")),
    ("fermi-energy-below", SMALL.replace("0.7", "-2.0"), ("below the bottom",)),
]


@pytest.mark.parametrize("text,fragments", [c[1:] for c in CLI_INPUT_CASES],
                         ids=[c[0] for c in CLI_INPUT_CASES])
def test_cli_input_error_is_one_line_exit_2(tmp_path, capsys, text, fragments):
    path = write(tmp_path, text)
    code, err = run_cli(capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert code == EXIT_INPUT == 2
    line = one_line(err)
    assert line.startswith("mottscape: error: ")
    for fragment in fragments:
        assert fragment in line
    assert not (tmp_path / "out" / "results.nc").exists()


def test_cli_pickled_map_exit_2(tmp_path, capsys):
    np.save(tmp_path / "V.npy", np.array([[1.0, "a"]], dtype=object), allow_pickle=True)
    path = write(tmp_path, "[potential]\nmodel = 'file'\nfile = 'V.npy'\n"
                           "[conductivity]\nfermi_energy = 0.5\n")
    code, err = run_cli(capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert code == 2 and "unpickling" in one_line(err)


def test_cli_solver_failure_exit_3(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(landscape, "_solve", lambda ham, *a: (-np.ones(ham.shape), 1))
    path = write(tmp_path, SMALL)
    code, err = run_cli(capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert code == EXIT_CONVERGENCE == 3
    line = one_line(err)
    assert line.startswith("mottscape: solver failure: ") and "non-positive u" in line
    assert not (tmp_path / "out" / "results.nc").exists()


def test_cli_unconverged_landscape_is_flagged_not_hidden(tmp_path, capsys, monkeypatch):
    """In a run the landscape solve that stops short is reported in the results."""
    real = landscape._solve

    def sloppy(ham, solver, tol, maxiter):
        u, it = real(ham, solver, tol, maxiter)
        return u * (1 + 1e-3 * np.cos(np.arange(u.size)).reshape(u.shape)), it

    monkeypatch.setattr(landscape, "_solve", sloppy)
    path = write(tmp_path, SMALL)
    code, _ = run_cli(capsys, "run", str(path), "--out", str(tmp_path / "out"))
    assert code == 0
    ds = ms.read_netcdf(tmp_path / "out" / "results.nc")
    assert not bool(ds["landscape_converged"]) and float(ds["landscape_residual"]) > 1e-6
    assert not ds.valid.any()


def test_cli_internal_error_exit_1(tmp_path, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom in the pipeline")

    monkeypatch.setattr("mottscape.study.run", boom)
    path = write(tmp_path, SMALL)
    code, err = run_cli(capsys, "run", str(path))
    assert code == EXIT_INTERNAL == 1
    line = one_line(err)
    assert "internal error: RuntimeError: boom in the pipeline" in line and "--debug" in line


def test_cli_out_of_memory_exit_2(tmp_path, capsys, monkeypatch):
    def oom(*args, **kwargs):
        raise MemoryError("Unable to allocate 80 GiB")

    monkeypatch.setattr("mottscape.study.run", oom)
    code, err = run_cli(capsys, "run", str(write(tmp_path, SMALL)))
    assert code == 2 and "out of memory: Unable to allocate 80 GiB" in one_line(err)


def test_cli_multiline_message_is_one_line(tmp_path, capsys, monkeypatch):
    def two_lines(*args, **kwargs):
        raise ms.InputError("first line\nsecond line")

    monkeypatch.setattr("mottscape.study.run", two_lines)
    code, err = run_cli(capsys, "run", str(write(tmp_path, SMALL)))
    assert code == 2 and one_line(err).endswith("first line second line")


@pytest.mark.parametrize("where", ["before", "after"])
def test_cli_debug_reraises(tmp_path, monkeypatch, where):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("mottscape.study.run", boom)
    path = str(write(tmp_path, SMALL))
    argv = ["--debug", "run", path] if where == "before" else ["run", "--debug", path]
    with pytest.raises(RuntimeError, match="boom"):
        main(argv)


def test_cli_traceback_only_with_debug(tmp_path):
    """In a real process: no traceback by default, the full traceback with --debug."""
    path = write(tmp_path, SMALL.replace("seed = 7", "sed = 7"))
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "mottscape"]
    quiet = subprocess.run([*cmd, "run", str(path)], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=120)
    assert quiet.returncode == 2
    assert quiet.stderr.count("\n") == 1 and "Traceback" not in quiet.stderr
    loud = subprocess.run([*cmd, "--debug", "run", str(path)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert loud.returncode != 0
    assert "Traceback (most recent call last)" in loud.stderr
    assert "StudyError" in loud.stderr and "'sed'" in loud.stderr


# ---------------------------------------------------------------------- validity flags
@functools.cache
def flagged_dataset():
    V = disorder.block((64, 64), block=4, width=4.0, seed=3)
    omega = np.array([1e-6, 0.02, 0.2, 50.0])
    with pytest.warns(ms.RegimeWarning, match="not small against the level spacing"):
        return ms.ac_conductivity(V, 0.7, omega, pairs="sigma_omega", mott_scale="lambertw",
                                  estimator="eq17")


def test_flag_rho_omega_small_at_high_frequency():
    ds = flagged_dataset()
    hw = float(ds.hbar_omega[-1])
    assert hw > 2 * float(ds.delta_xi) / np.e  # omega not small compared with Delta_xi
    assert bool(ds.flag_rho_omega_small[-1]) and not bool(ds.valid[-1])
    assert not bool(ds.flag_rho_omega_small[1])


def test_flag_sigma_omega_tiny_at_low_frequency():
    ds = flagged_dataset()
    assert int(ds.n_states[0]) < 2
    assert bool(ds.flag_sigma_omega_tiny[0]) and not bool(ds.valid[0])
    assert float(ds.sigma_eq17[0]) == 0.0  # reported, but flagged


def test_flag_no_pairs_marks_zero_sigma_as_a_sampling_limit():
    ds = flagged_dataset()
    no_pairs = ds.flag_no_pairs.values
    np.testing.assert_array_equal(no_pairs, ds.n_pairs.values == 0)
    assert np.all(ds.sigma_ll.values[no_pairs & np.isfinite(ds.sigma_ll.values)] == 0)
    assert not np.any(ds.valid.values[no_pairs])


def test_valid_is_the_conjunction_of_the_flags():
    ds = flagged_dataset()
    clear = ~(ds.flag_rho_omega_small | ds.flag_sigma_omega_tiny | ds.flag_no_pairs)
    expected = clear & (not bool(ds["percolating"])) & bool(ds["landscape_converged"])
    np.testing.assert_array_equal(ds.valid, expected)
    assert ds.valid.any()  # the middle frequencies are inside the theory


def test_percolating_flag():
    V = disorder.block((64, 64), block=4, width=4.0, seed=3)
    with pytest.warns(ms.RegimeWarning, match="percolate"):
        ds = ms.ac_conductivity(V, 3.0, OMEGA)  # V_u <= E_F spans the sample
    assert bool(ds["percolating"]) and not ds.valid.any()
    assert not bool(flagged_dataset()["percolating"])


def test_landscape_converged_flag():
    V = disorder.block((64, 64), block=4, width=4.0, seed=3)
    land_ = solve(V, solver="stencil-cg", maxiter=3, on_failure="flag")
    ds = ms.run_pipeline(None, 0.7, OMEGA, landscape=land_, estimator="eq17").dataset
    assert not bool(ds["landscape_converged"]) and not ds.valid.any()
