"""Study files: TOML descriptions of a computation, read into a frozen :class:`Study`.

A study file has up to five sections; every key is optional except
``conductivity.fermi_energy``, and omitted keys take the values of the packaged default study
(``mottscape/data/default_study.toml``, see :func:`default_study`)::

    [potential]
    model = "block"          # anderson | block | gaussian | binary_alloy | white_noise | file
    shape = [192, 192]
    seed = 1
    block = 4                # model parameters: those of the generator in mottscape.disorder
    width = 4.0
    # file = "map.npy"       # for model = "file", relative to the study file's directory
    # variable = "V"         # array name in a .npz or NetCDF file
    [grid]
    spacing = 1.0            # scalar or one value per axis
    boundary = "dirichlet"   # or "periodic"
    mass = 1.0               # scalar, or a map file (relative to the study file)
    units = "lattice"        # or "semiconductor"
    [conductivity]
    fermi_energy = 0.6       # required
    omega_min = 1e-2         # log-spaced angular frequencies ...
    omega_max = 1e-1
    n_omega = 12
    # omega = [1e-3, 1e-2]   # ... or an explicit list (then no omega_min/omega_max/n_omega)
    mott_scale = "log"       # or "lambertw"
    [options]                # every field of mottscape.Options (the open choices)
    effective = "scaled"     # e.g.; see mottscape.options for names and values
    [ensemble]
    realizations = 1
    [output]
    dir = "mottscape-results"
    figures = true

Model parameters of ``[potential]`` are checked against the signature of the generator (see
:data:`mottscape.disorder.MODELS`). The model's own defaults apply to parameters not given,
except when the model is the default study's model, whose parameters are inherited. The grid
spacing and, for periodic boundaries, ``periodic = true`` are passed to generators that take
them. Every problem is reported as a :class:`StudyError` (an
:class:`~mottscape.errors.InputError`) naming the file, the line, the section and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import itertools
import math
import numbers
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np

from . import disorder
from .errors import InputError
from .grid import BOUNDARIES, BYTES_PER_POINT_PIPELINE, Boundary, Grid, check_memory, make_grid
from .options import Options, allowed
from .sample import Sample, make_sample
from .study_checks import (
    SCHEMA,
    Context,
    StudyError,
    check_kind,
    checked,
    choice,
    param_kind,
    require,
    type_name,
    unknown_key,
)
from .units import UnitSystem, get_units

__all__ = [
    "ClusterSection",
    "ConductivitySection",
    "EnsembleSection",
    "GridSection",
    "OutputSection",
    "PotentialSection",
    "Study",
    "StudyError",
    "default_study",
    "load_study",
    "study_from_dict",
]

#: Potential models of study files: the disorder generators and ``"file"``.
POTENTIAL_MODELS = (*disorder.MODELS, "file")
UNIT_SYSTEMS = ("lattice", "semiconductor")
MOTT_SCALES = allowed("mott_scale")
#: Most frequencies a study may ask for (each costs a pass over the pairs).
MAX_OMEGAS = 10_000

# Generator parameters a study file may not set in [potential]: they come from elsewhere.
_INJECTED = {"shape": "potential.shape", "n": "potential.shape", "seed": "potential.seed",
             "spacing": "grid.spacing"}

# ---------------------------------------------------------------------- the Study
@dataclass(frozen=True)
class PotentialSection:
    """``[potential]``: how V is made.

    Attributes
    ----------
    model
        A key of :data:`mottscape.disorder.MODELS`, or ``"file"``.
    shape
        Sites per axis; ``None`` only for ``model = "file"`` without a ``shape`` (taken from
        the file).
    seed
        Base seed; realization r uses ``SeedSequence(seed, spawn_key=(r,))``.
    params
        Model parameters as sorted ``(name, value)`` pairs (lists become tuples).
    file, variable
        For ``model = "file"``: the resolved path of the map and the array name.
    """

    model: str
    shape: tuple[int, ...] | None
    seed: int
    params: tuple[tuple[str, Any], ...] = ()
    file: Path | None = None
    variable: str | None = None


@dataclass(frozen=True)
class GridSection:
    """``[grid]``: spacing (scalar or per axis), boundary, mass (number or map path), units."""

    spacing: float | tuple[float, ...]
    boundary: Boundary
    mass: float | Path
    units: str


@dataclass(frozen=True)
class ConductivitySection:
    """``[conductivity]``: E_F, the frequencies, the Mott-scale formula, the exact reference.

    Exactly one of ``omega`` (explicit, strictly increasing) and the triple
    ``omega_min, omega_max, n_omega`` (log-spaced) is set; the other is ``None``. ``exact``
    asks for the exact Kubo-Greenwood conductivity of every realization beside sigma_LL
    (bin-averaged over the bins of :meth:`Study.omega_edges`); ``exact_method``,
    ``exact_padding`` and ``exact_core`` are the ``method``, ``padding`` and ``core`` of
    :func:`mottscape.exact.kubo_greenwood` (None: its defaults). With the boxes (2D/3D) or
    the 1D segments, each box or run of segments is a task of the ensemble engine.
    """

    fermi_energy: float
    omega_min: float | None
    omega_max: float | None
    n_omega: int | None
    omega: tuple[float, ...] | None
    mott_scale: str
    exact: bool = False
    exact_method: str | None = None
    exact_padding: int | None = None
    exact_core: int | None = None


@dataclass(frozen=True)
class EnsembleSection:
    """``[ensemble]``: number of disorder realizations."""

    realizations: int


@dataclass(frozen=True)
class ClusterSection:
    """``[cluster]``: where the realizations run (see :mod:`mottscape.runner`).

    ``scheduler`` is the address of an existing dask scheduler (``tcp://host:port``), None
    for this machine; ``workers`` the local worker processes (None: the command line's).
    """

    scheduler: str | None = None
    workers: int | None = None


@dataclass(frozen=True)
class OutputSection:
    """``[output]``: result directory (resolved against the study file's directory), figures."""

    dir: Path
    figures: bool


@dataclass(frozen=True)
class Study:
    """A validated study: every section, where it came from, and builders for its inputs.

    Attributes
    ----------
    potential, grid, conductivity, ensemble, output
        The sections (see their classes). For a study with a ``[sweep]``, those of its first
        parameter point.
    options
        The ``[options]`` table as :class:`~mottscape.options.Options` (the conductivity
        section's ``mott_scale`` is folded in).
    source
        The study file's path, or ``"<dict>"``/``"<default>"``.
    base_dir
        Directory against which relative file names were resolved.
    sweep
        The ``[sweep]`` table: ``(("conductivity.fermi_energy", (0.5, 0.6)), ...)``, in file
        order; empty without a sweep.
    points
        One study per parameter point of the sweep (the Cartesian product of its lists, the
        last key varying fastest), each validated like a study file; empty without a sweep.
    """

    potential: PotentialSection
    grid: GridSection
    conductivity: ConductivitySection
    ensemble: EnsembleSection
    output: OutputSection
    source: str
    base_dir: Path
    options: Options = dataclasses.field(default_factory=Options)
    cluster: ClusterSection = dataclasses.field(default_factory=ClusterSection)
    sweep: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    points: tuple[Study, ...] = ()

    # -------------------------------------------------------------- derived values
    @property
    def unit_system(self) -> UnitSystem:
        """The :class:`~mottscape.units.UnitSystem` named by ``grid.units``."""
        return get_units(self.grid.units)

    @property
    def potential_params(self) -> dict[str, Any]:
        """Keyword arguments for :func:`mottscape.disorder.generate` (realization 0).

        Holds ``shape``, ``seed`` and the model parameters, with the grid spacing and
        ``periodic`` added for generators that take them. For ``model = "file"`` it holds the
        arguments of :func:`mottscape.io.load_potential` instead (``path``, ``variable``).
        """
        return self._params(self.realization_seed(0))

    def _params(self, seed: int | np.random.SeedSequence) -> dict[str, Any]:
        pot = self.potential
        if pot.model == "file":
            return {"path": pot.file, "variable": pot.variable}
        assert pot.shape is not None  # a generated model has a shape (checked at load)
        return _generator_kwargs(pot.model, pot.shape, seed, dict(pot.params), self.grid)

    def realization_seed(self, realization: int = 0) -> np.random.SeedSequence:
        """Seed of realization r: ``SeedSequence(seed, spawn_key=(r,))``.

        This is ``SeedSequence(seed).spawn(n)[r]`` for any n > r, so a realization's potential
        does not depend on how many realizations are run or on how they are distributed.
        """
        if isinstance(realization, bool) or not isinstance(realization, numbers.Integral) \
                or realization < 0:
            raise InputError(f"realization={realization!r} must be an int >= 0")
        return np.random.SeedSequence(self.potential.seed, spawn_key=(int(realization),))

    def make_potential(self, realization: int = 0) -> np.ndarray:
        """Build the potential of realization ``realization`` (a float64 array).

        Generated by :func:`mottscape.disorder.generate`, or read by
        :func:`mottscape.io.load_potential` for ``model = "file"`` (the same map for every
        realization; its shape must match ``potential.shape`` when that was given).
        """
        pot = self.potential
        if pot.model == "file":
            from .io import load_potential_in_units

            assert pot.file is not None  # set for every model = "file" (checked at load)
            V, _, _ = load_potential_in_units(pot.file, pot.variable, units=self.grid.units,
                                              spacing=self.grid.spacing)
            if pot.shape is not None and V.shape != pot.shape:
                raise StudyError(
                    f"{self.source}: [potential] shape = {list(pot.shape)} but the map in "
                    f"{str(pot.file)!r} has shape {list(V.shape)}; fix or drop shape",
                    path=self.source, section="potential", key="shape")
            return V
        return disorder.generate(pot.model, **self._params(self.realization_seed(realization)))

    def make_mass(self, shape: tuple[int, ...] | None = None) -> float | np.ndarray:
        """The effective mass: the number of ``grid.mass``, or the map read from its file.

        A map is checked (finite, > 0) and, against ``shape`` (default: ``potential.shape``
        when the study sets it), for its shape; problems are :class:`StudyError` naming the
        file and ``[grid] mass``.
        """
        if isinstance(self.grid.mass, Path):
            from .grid import as_mass
            from .io import load_array

            path = self.grid.mass
            arr, _ = load_array(path, what="mass map")
            shape = shape if shape is not None else self.potential.shape
            where = f"{self.source}: [grid] mass = {str(path)!r}"
            if shape is not None and arr.shape != tuple(shape):
                raise StudyError(
                    f"{where}: the map has shape {list(arr.shape)} but the potential has shape "
                    f"{list(shape)}; give a map of the potential's shape or a number",
                    path=self.source, section="grid", key="mass")
            try:
                as_mass(arr, arr.shape)
            except InputError as exc:
                raise StudyError(f"{where}: {exc}", path=self.source, section="grid",
                                 key="mass") from None
            return arr
        return self.grid.mass

    def make_sample(self, realization: int = 0) -> Sample:
        """The finalized :class:`~mottscape.sample.Sample` of realization ``realization``."""
        V = self.make_potential(realization)
        return make_sample(V, self.grid.spacing, self.make_mass(V.shape), self.grid.boundary,
                           self.grid.units)

    def make_grid(self, shape: tuple[int, ...] | None = None) -> Grid:
        """The :class:`~mottscape.grid.Grid` of the study; ``shape`` defaults to the potential's."""
        shape = shape if shape is not None else self.potential.shape
        if shape is None:
            raise InputError(
                f"{self.source}: the sample shape comes from the potential file; pass shape= "
                "(e.g. make_potential().shape)")
        return make_grid(shape, self.grid.spacing, self.grid.boundary)

    def point_labels(self) -> list[dict[str, Any]]:
        """The swept values of each parameter point (one empty dict without a sweep).

        E.g. ``[{"conductivity.fermi_energy": 0.5}, {"conductivity.fermi_energy": 0.6}]``.
        """
        return sweep_points(self.sweep)

    def omega_edges(self) -> np.ndarray:
        """Bin edges around the frequencies (the bins of the exact reference of a run).

        The geometric midpoints between neighbouring frequencies, and outer edges as far out
        in ratio, so that each frequency is the geometric centre of its bin (a single
        frequency: a quarter-decade bin, :func:`mottscape.pairs.omega_edges`).
        """
        w = self.omegas()
        from .pairs import omega_edges  # the same bins as the pair model's

        return omega_edges(w)

    def omegas(self) -> np.ndarray:
        """Angular frequencies (in ``unit_system.omega_unit``), strictly increasing."""
        c = self.conductivity
        if c.omega is not None:
            return np.asarray(c.omega, dtype=float)
        assert c.omega_min is not None and c.omega_max is not None and c.n_omega is not None
        return np.geomspace(c.omega_min, c.omega_max, c.n_omega)

    def to_dict(self) -> dict[str, Any]:
        """The study as plain TOML-like data (paths as strings), e.g. for result attributes."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("source", "base_dir", "points"):
                continue
            if f.name == "sweep":
                if self.sweep:
                    out["sweep"] = {k: [_plain(v) for v in vals] for k, vals in self.sweep}
                continue
            if f.name == "cluster":
                out["cluster"] = {k: v for k, v in dataclasses.asdict(self.cluster).items()
                                  if v is not None}
                continue
            if f.name == "options":
                out["options"] = {k: v for k, v in self.options.to_dict().items()
                                  if v is not None}
                continue
            sec = dataclasses.asdict(getattr(self, f.name))
            if f.name == "potential":
                sec.update(dict(sec.pop("params")))
            out[f.name] = {k: _plain(v) for k, v in sec.items() if v is not None}
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def _generator_kwargs(model: str, shape: tuple[int, ...], seed: Any, params: dict,
                      grid: GridSection) -> dict:
    accepted = disorder.model_parameters(model)
    kwargs = dict(params)
    kwargs["shape"] = tuple(shape)
    kwargs["seed"] = seed
    if "spacing" in accepted:
        h = grid.spacing
        if model == "white_noise" and isinstance(h, tuple):
            h = h[0]
        kwargs["spacing"] = h
    if "periodic" in accepted and "periodic" not in kwargs:
        kwargs["periodic"] = grid.boundary == "periodic"
    return kwargs


# ---------------------------------------------------------------------- loading
def load_study(path: str | Path) -> Study:
    """Read and validate a TOML study file.

    Parameters
    ----------
    path
        The study file. Relative file names inside it (``potential.file``, a mass map,
        ``output.dir``) are resolved against its directory.

    Returns
    -------
    Study

    Raises
    ------
    StudyError
        For invalid TOML, an unknown section or key (with the closest valid key), a value of
        the wrong type or out of range, or a missing required value; the message starts with
        the file's path and the line.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"study file {str(p)!r} does not exist", path=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"cannot read study file {str(p)!r}: {exc}", path=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        line = int(m.group(1)) if m else None
        if line is None and "end of document" in str(exc):
            line = max(1, len(text.splitlines()))
        where = f"{p}, line {line}" if line is not None else str(p)
        raise StudyError(
            f"{where}: invalid TOML: {exc}. Check quoting of strings, commas in arrays, "
            "closing brackets and 'key = value' syntax on that line",
            path=str(p), line=line) from None
    return _build(data, str(p), p.resolve().parent, text, defaults=_default_data())


def study_from_dict(d: Mapping[str, Any], source: str = "<dict>",
                    base_dir: str | Path | None = None) -> Study:
    """Validate a study given as nested mappings (the parsed TOML).

    Parameters
    ----------
    d
        ``{"potential": {...}, "grid": {...}, ...}``; the same rules as a study file.
    source
        Name used in error messages.
    base_dir
        Directory for relative file names (default: the current directory).
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _build(d, source, base, None, defaults=_default_data())


def default_study() -> Study:
    """The packaged default study (``mottscape/data/default_study.toml``)."""
    return _build(tomllib.loads(_default_text()), "<default>", Path.cwd(), _default_text(),
                  defaults=None)


def _default_text() -> str:
    return resources.files("mottscape").joinpath("data/default_study.toml").read_text("utf-8")


def _default_data() -> dict[str, Any]:
    """The defaults a study file inherits: the default study, but one realization in place.

    The built-in study is a small ensemble on a local cluster; a user's study runs one
    realization in this process unless it says otherwise.
    """
    data = tomllib.loads(_default_text())
    data["ensemble"] = {"realizations": 1}
    data.pop("cluster", None)
    return data


# ---------------------------------------------------------------------- validation
def _build(data: Mapping[str, Any], source: str, base_dir: Path, text: str | None,
           defaults: Mapping[str, Any] | None) -> Study:
    ctx = Context(source, text)
    if not isinstance(data, Mapping):
        raise ctx.error(f"a study must be a table of sections, got {type_name(data)}")
    # ---- sections and keys
    for name, value in data.items():
        if name not in SCHEMA and name != "sweep":
            if not isinstance(value, Mapping):
                owner = [s for s, keys in SCHEMA.items() if name in keys]
                hint = (f"; put it under [{owner[0]}]" if owner else
                        f"; every key belongs to one of the sections "
                        f"{', '.join(f'[{s}]' for s in SCHEMA)}")
                raise ctx.error(f"key {name!r} is outside any section{hint}", None, name)
            close = difflib.get_close_matches(name, list(SCHEMA), n=1, cutoff=0.6)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise ctx.error(
                f"unknown section [{name}]{hint} Valid sections: "
                f"{', '.join(f'[{s}]' for s in SCHEMA)}", name)
        if not isinstance(value, Mapping):
            raise ctx.error(f"{name} must be a section ([{name}]), got {type_name(value)}",
                            None, name)
    defaults = defaults or {}
    if "sweep" in data:
        return _build_sweep(ctx, data, source, base_dir, text, defaults)

    def section(name: str) -> dict[str, Any]:
        return dict(data.get(name, {}))

    grid = _grid_section(ctx, section("grid"), dict(defaults.get("grid", {})), base_dir)
    potential = _potential_section(ctx, section("potential"),
                                   dict(defaults.get("potential", {})), base_dir, grid)
    if potential.model == "file":
        grid = _file_grid(ctx, potential, grid, section("grid").get("spacing"))
    conductivity = _conductivity_section(ctx, section("conductivity"),
                                         dict(defaults.get("conductivity", {})))
    ensemble = _ensemble_section(ctx, section("ensemble"), dict(defaults.get("ensemble", {})))
    output = _output_section(ctx, section("output"), dict(defaults.get("output", {})),
                             base_dir)
    options = _options_section(ctx, section("options"), dict(defaults.get("options", {})),
                               section("conductivity"))
    cluster = _cluster_section(ctx, section("cluster"))
    return Study(potential=potential, grid=grid, conductivity=conductivity, ensemble=ensemble,
                 output=output, source=source, base_dir=base_dir, options=options,
                 cluster=cluster)


def sweep_points(sweep: Any) -> list[dict[str, Any]]:
    """The parameter points of a sweep, ``(("section.key", values), ...)`` or a mapping.

    The Cartesian product of the lists, the last key varying fastest; ``[{}]`` (one point,
    nothing swept) for an empty sweep.
    """
    items = list(sweep.items()) if isinstance(sweep, Mapping) else list(sweep)
    if not items:
        return [{}]
    keys = [k for k, _ in items]
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(vals for _, vals in items))]


#: Keys a ``[sweep]`` may vary: E_F, the grid spacing and a number mass, and any parameter of
#: the potential model (its disorder strength, shape, seed, ...), not the model itself.
SWEEP_FIXED = {"potential": ("model", "file", "variable")}
SWEEPABLE = {"conductivity": ("fermi_energy",), "grid": ("spacing", "mass")}
MAX_SWEEP_POINTS = 10_000


def _sweep_items(ctx: Context, table: Any) -> list[tuple[str, tuple[Any, ...]]]:
    """``[sweep]`` as (``"section.key"``, values) pairs, checked for form (not for values)."""
    if not isinstance(table, Mapping) or not table:
        raise ctx.error("[sweep] must be a table of 'section.key = [values]', e.g. "
                        "conductivity.fermi_energy = [0.5, 0.6]", "sweep")
    items = []
    for sec, sub in table.items():
        pairs = sub.items() if isinstance(sub, Mapping) else [(None, sub)]
        for key, values in pairs:
            name = f"{sec}.{key}" if key is not None else str(sec)
            section, _, param = name.partition(".")
            if section not in ("potential", *SWEEPABLE) or not param or \
                    param in SWEEP_FIXED.get(section, ()) or \
                    (section in SWEEPABLE and param not in SWEEPABLE[section]):
                raise ctx.error(
                    f"[sweep] {name} cannot be swept; sweep conductivity.fermi_energy, "
                    "grid.spacing, grid.mass or a parameter of the potential model (e.g. "
                    "potential.width, potential.shape, potential.seed)", "sweep", key or sec)
            if not isinstance(values, list) or not values:
                raise ctx.error(f"[sweep] {name} = {values!r} must be a non-empty list of the "
                                "values to run", "sweep", key or sec)
            if len({repr(v) for v in values}) != len(values):
                raise ctx.error(f"[sweep] {name} lists a value twice", "sweep", key or sec)
            items.append((name, tuple(_plain_tuple(v) for v in values)))
    return items


def _build_sweep(ctx: Context, data: Mapping[str, Any], source: str, base_dir: Path,
                 text: str | None, defaults: Mapping[str, Any]) -> Study:
    """A study with a ``[sweep]``: every parameter point built and validated as a study."""
    items = _sweep_items(ctx, data["sweep"])
    n_points = math.prod(len(vals) for _, vals in items)
    if n_points > MAX_SWEEP_POINTS:
        raise ctx.error(f"[sweep] has {n_points} parameter points (the product of its lists), "
                        f"more than {MAX_SWEEP_POINTS}; split the study", "sweep")
    base = {k: dict(v) if isinstance(v, Mapping) else v for k, v in data.items()
            if k != "sweep"}
    points = []
    for values in sweep_points(items):
        point = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
        for name, value in values.items():
            section, _, param = name.partition(".")
            point.setdefault(section, {})[param] = list(value) if isinstance(value, tuple) \
                else value
        try:
            points.append(_build(point, source, base_dir, text, defaults))
        except StudyError as exc:
            label = ", ".join(f"{n} = {_plain(v)!r}" for n, v in values.items())
            raise StudyError(f"{exc} (at the sweep point {label})", path=exc.path,
                             line=exc.line, section=exc.section, key=exc.key) from None
    return dataclasses.replace(points[0], sweep=tuple(items), points=tuple(points))


def _grid_section(ctx: Context, user: dict, default: dict, base_dir: Path) -> GridSection:
    v = checked(ctx, "grid", user, default)
    spacing = require(ctx, "grid", "spacing", v)
    vals = spacing if isinstance(spacing, tuple) else (spacing,)
    if any(h <= 0 for h in vals) or len(vals) > 3:
        raise ctx.error(f"[grid] spacing = {_plain(spacing)!r} must be > 0, a scalar or one "
                        "value per axis", "grid", "spacing")
    boundary = cast(Boundary, choice(ctx, "grid", "boundary",
                                      require(ctx, "grid", "boundary", v), BOUNDARIES))
    units = choice(ctx, "grid", "units", require(ctx, "grid", "units", v), UNIT_SYSTEMS)
    mass = require(ctx, "grid", "mass", v)
    if isinstance(mass, str):
        mass = (base_dir / mass).resolve()
        if not mass.is_file():
            raise ctx.error(f"[grid] mass = {v['mass']!r}: file {str(mass)!r} does not exist "
                            "(relative names are taken from the study file's directory)",
                            "grid", "mass")
    elif mass <= 0:
        raise ctx.error(f"[grid] mass = {mass!r} must be > 0 (units of the reference mass)",
                        "grid", "mass")
    return GridSection(spacing=spacing, boundary=boundary, mass=mass, units=units)


def _potential_section(ctx: Context, user: dict, default: dict, base_dir: Path,
                       grid: GridSection) -> PotentialSection:
    model = check_kind(ctx, "potential", "model", user.get("model", default.get("model")),
                        "str")
    choice(ctx, "potential", "model", model, POTENTIAL_MODELS)
    accepted = _accepted_params(model)
    _check_potential_keys(ctx, user, model, accepted)
    # Inherit the defaults' model parameters only when the model is the defaults' model.
    inherit = (lambda k: k != "model") if model == default.get("model") else \
        (lambda k: k in ("shape", "seed"))
    merged = {k: x for k, x in default.items() if inherit(k)}
    if model == "file":
        merged = {k: x for k, x in merged.items() if k == "seed"}
    merged.update(user)
    merged.pop("model", None)
    shape = _potential_shape(ctx, merged.pop("shape", None))
    seed = check_kind(ctx, "potential", "seed", merged.pop("seed", 0), "int")
    if seed < 0:
        raise ctx.error(f"[potential] seed = {seed} must be >= 0", "potential", "seed")
    _check_spacing_dims(ctx, grid, shape)
    if model == "file":
        return _file_potential(ctx, merged, base_dir, shape, seed)
    if shape is None:
        raise ctx.error("[potential] shape is required", "potential")
    params = _model_params(ctx, model, merged, accepted, shape, grid)
    items = tuple(sorted((k, _plain_tuple(x)) for k, x in params.items()))
    return PotentialSection(model=model, shape=shape, seed=seed, params=items)


def _accepted_params(model: str) -> dict[str, inspect.Parameter]:
    """Parameters of a model's generator that a study file may set."""
    if model == "file":
        return {}
    return {k: p for k, p in disorder.model_parameters(model).items() if k not in _INJECTED}


def _check_potential_keys(ctx: Context, user: dict, model: str,
                          accepted: dict[str, inspect.Parameter]) -> None:
    valid = set(SCHEMA["potential"]) | set(accepted)
    if model != "file":
        valid -= {"file", "variable"}
    for key in user:
        if key in valid:
            continue
        if key in ("file", "variable"):
            raise ctx.error(f"[potential] {key} is only used with model = 'file' (model is "
                            f"{model!r}); remove it or set model = 'file'", "potential", key)
        if key in _INJECTED:
            raise ctx.error(f"[potential] {key} is not a model parameter of a study file: it "
                            f"is taken from {_INJECTED[key]}", "potential", key)
        extra = (f" (model {model!r} takes {', '.join(accepted) or 'no parameters'};"
                 f" see mottscape.disorder.{model})" if model != "file" else "")
        raise unknown_key(ctx, "potential", key, valid, extra + ("." if extra else ""))


def _potential_shape(ctx: Context, shape: Any) -> tuple[int, ...] | None:
    if shape is None:
        return None
    shape = check_kind(ctx, "potential", "shape", shape, "shape")
    try:
        check_memory(math.prod(shape), BYTES_PER_POINT_PIPELINE,
                     f"a sample of shape {list(shape)}")
    except InputError as exc:
        raise ctx.error(f"[potential] shape = {list(shape)}: {exc}", "potential",
                        "shape") from None
    return shape


def _file_potential(ctx: Context, merged: dict, base_dir: Path, shape: tuple[int, ...] | None,
                    seed: int
                    ) -> PotentialSection:
    fname = merged.pop("file", None)
    if fname is None:
        raise ctx.error("[potential] model = 'file' needs file = '<path>' (.npy, .npz or "
                        "NetCDF), relative to the study file's directory", "potential")
    fname = check_kind(ctx, "potential", "file", fname, "str")
    fpath = (base_dir / fname).resolve()
    if not fpath.is_file():
        raise ctx.error(f"[potential] file = {fname!r}: {str(fpath)!r} does not exist "
                        "(relative names are taken from the study file's directory)",
                        "potential", "file")
    variable = merged.pop("variable", None)
    if variable is not None:
        variable = check_kind(ctx, "potential", "variable", variable, "str")
    return PotentialSection(model="file", shape=shape, seed=seed, file=fpath, variable=variable)


def _file_grid(ctx: Context, potential: PotentialSection, grid: GridSection,
               user_spacing: Any) -> GridSection:
    """The grid of a study whose potential is a map: the map's units and spacing honoured.

    The map is read once here (:func:`mottscape.io.load_potential_in_units`) so that a unit
    of the other system, or a ``[grid] spacing`` that contradicts the file's coordinates, is a
    :class:`StudyError` at load time, before anything is computed. The spacing is the file's
    when the study sets none.
    """
    from .io import load_potential_in_units

    study_spacing = None if user_spacing is None else grid.spacing
    assert potential.file is not None  # the caller's model = "file"
    try:
        _, spacing, _ = load_potential_in_units(potential.file, potential.variable,
                                                units=grid.units, spacing=study_spacing)
    except InputError as exc:
        raise ctx.error(str(exc), "potential", "file") from None
    return dataclasses.replace(grid, spacing=spacing)


def _model_params(ctx: Context, model: str, merged: dict, accepted: dict, shape: Any,
                  grid: GridSection) -> dict:
    params = {}
    for key, value in merged.items():
        kind = param_kind(accepted[key])
        params[key] = (check_kind(ctx, "potential", key, value, kind) if kind is not None
                       else value)
    missing = [k for k, p in accepted.items()
               if p.default is inspect.Parameter.empty and k not in params]
    if missing:
        raise ctx.error(
            f"[potential] model {model!r} needs {', '.join(missing)} (it takes "
            f"{', '.join(accepted)}; see mottscape.disorder.{model})", "potential")
    if model == "white_noise" and len(shape) != 1:
        raise ctx.error(f"[potential] model 'white_noise' is 1D but shape = {list(shape)}",
                        "potential", "shape")
    # Dry run on a one-site-per-axis sample: the generator validates every value now, so the
    # error points at the study file instead of surfacing when the potential is built.
    trial = _generator_kwargs(model, (1,) * len(shape), 0, params, grid)
    if "periodic" in accepted:
        trial["periodic"] = True  # no padding in the trial
    try:
        disorder.generate(model, **trial)
    except InputError as exc:
        key = next((k for k in params if f"{k}=" in str(exc)), None)
        raise ctx.error(f"[potential] {exc}", "potential", key) from None
    return params


def _plain_tuple(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _check_spacing_dims(ctx: Context, grid: GridSection, shape: tuple[int, ...] | None) -> None:
    if shape is None or not isinstance(grid.spacing, tuple):
        return
    if len(grid.spacing) not in (1, len(shape)):
        raise ctx.error(
            f"[grid] spacing has {len(grid.spacing)} values but the potential has "
            f"{len(shape)} axes (shape = {list(shape)}); give a scalar or one value per axis",
            "grid", "spacing")


def _omega_defaults(ctx: Context, user: dict, default: dict) -> dict:
    """The defaults of [conductivity] without the frequency form the user did not choose."""
    grid_keys = ("omega_min", "omega_max", "n_omega")
    if "omega" in user:
        given = [k for k in grid_keys if k in user]
        if given:
            raise ctx.error(
                f"[conductivity] give either omega = [...] or omega_min/omega_max/n_omega, not "
                f"both (found omega and {', '.join(given)})", "conductivity", given[0])
        return {k: x for k, x in default.items() if k not in grid_keys}
    if any(k in user for k in grid_keys):
        return {k: x for k, x in default.items() if k != "omega"}
    return default


def _conductivity_section(ctx: Context, user: dict, default: dict) -> ConductivitySection:
    for key in user:
        if key not in SCHEMA["conductivity"]:
            raise unknown_key(ctx, "conductivity", key, SCHEMA["conductivity"])
    if default and "fermi_energy" not in user:
        raise ctx.error("[conductivity] fermi_energy is required but missing; add "
                        "'fermi_energy = <E_F>' under [conductivity] (energy unit of "
                        "grid.units)", "conductivity")
    v = checked(ctx, "conductivity", user, _omega_defaults(ctx, user, default))
    ef = require(ctx, "conductivity", "fermi_energy", v)
    mott = choice(ctx, "conductivity", "mott_scale",
                   require(ctx, "conductivity", "mott_scale", v), MOTT_SCALES)
    exact = bool(v.get("exact", False))
    how = _exact_how(ctx, v)
    if "omega" in v:
        w = v["omega"]
        if any(x <= 0 for x in w) or any(b <= a for a, b in itertools.pairwise(w)):
            raise ctx.error(f"[conductivity] omega = {list(w)} must be > 0 and strictly "
                            "increasing", "conductivity", "omega")
        if exact and len(w) < 2:
            raise ctx.error("[conductivity] exact = true needs at least two frequencies (the "
                            "exact bins lie between them)", "conductivity", "exact")
        return ConductivitySection(fermi_energy=ef, omega_min=None, omega_max=None,
                                   n_omega=None, omega=w, mott_scale=mott, exact=exact, **how)
    lo = require(ctx, "conductivity", "omega_min", v)
    hi = require(ctx, "conductivity", "omega_max", v)
    n = require(ctx, "conductivity", "n_omega", v)
    if lo <= 0:
        raise ctx.error(f"[conductivity] omega_min = {lo!r} must be > 0", "conductivity",
                        "omega_min")
    if hi <= lo:
        raise ctx.error(f"[conductivity] omega_max = {hi!r} must be > omega_min = {lo!r}",
                        "conductivity", "omega_max")
    if n < 2:
        raise ctx.error(f"[conductivity] n_omega = {n} must be >= 2 (for a single frequency "
                        "use omega = [value])", "conductivity", "n_omega")
    if n > MAX_OMEGAS:
        raise ctx.error(f"[conductivity] n_omega = {n} is more than {MAX_OMEGAS} frequencies; "
                        "sigma(omega) is smooth on a log grid: use a few dozen",
                        "conductivity", "n_omega")
    return ConductivitySection(fermi_energy=ef, omega_min=lo, omega_max=hi, n_omega=n,
                               omega=None, mott_scale=mott, exact=exact, **how)


def _exact_how(ctx: Context, v: dict) -> dict[str, Any]:
    """``exact_method``, ``exact_padding`` and ``exact_core`` of ``[conductivity]``, checked."""
    from .exact import METHODS

    how: dict[str, Any] = {}
    if "exact_method" in v:
        how["exact_method"] = choice(ctx, "conductivity", "exact_method", v["exact_method"],
                                      METHODS)
    for key, least in (("exact_padding", 0), ("exact_core", 1)):
        if key in v:
            if v[key] < least:
                raise ctx.error(f"[conductivity] {key} = {v[key]} must be >= {least} cells",
                                "conductivity", key)
            how[key] = v[key]
    return how


def _options_section(ctx: Context, user: dict, default: dict, conductivity: dict) -> Options:
    """``[options]``: the fields of :class:`~mottscape.options.Options`, checked in one place."""
    values = {**default, **user}
    if "mott_scale" in conductivity:
        if "mott_scale" in user and user["mott_scale"] != conductivity["mott_scale"]:
            raise ctx.error("mott_scale is given in [conductivity] and in [options] with "
                            "different values; keep it in [options] only", "options",
                            "mott_scale")
        values["mott_scale"] = conductivity["mott_scale"]
    for key in user:
        name = {"pairs": "pair_set"}.get(key, key)
        if name not in Options.names():
            raise unknown_key(ctx, "options", key, Options.names(),
                               " (see mottscape.options).")
    try:
        return Options.from_mapping(values, where="[options]")
    except InputError as exc:
        key = next((k for k in user if f"{k}=" in str(exc) or repr(k) in str(exc)), None)
        raise ctx.error(f"[options] {exc}", "options", key) from None


def _cluster_section(ctx: Context, user: dict) -> ClusterSection:
    v = checked(ctx, "cluster", user, {})
    scheduler = v.get("scheduler")
    if scheduler is not None and not re.match(r"^(tcp|tls|inproc|ucx)://\S+$", scheduler):
        raise ctx.error(f"[cluster] scheduler = {scheduler!r} must be a dask scheduler address "
                        "such as 'tcp://127.0.0.1:8786'", "cluster", "scheduler")
    workers = v.get("workers")
    if workers is not None and workers < 1:
        raise ctx.error(f"[cluster] workers = {workers} must be >= 1", "cluster", "workers")
    return ClusterSection(scheduler=scheduler, workers=workers)


def _ensemble_section(ctx: Context, user: dict, default: dict) -> EnsembleSection:
    v = checked(ctx, "ensemble", user, default)
    n = require(ctx, "ensemble", "realizations", v)
    if n < 1:
        raise ctx.error(f"[ensemble] realizations = {n} must be >= 1", "ensemble",
                        "realizations")
    return EnsembleSection(realizations=n)


def _output_section(ctx: Context, user: dict, default: dict, base_dir: Path) -> OutputSection:
    v = checked(ctx, "output", user, default)
    d = require(ctx, "output", "dir", v)
    if not d.strip():
        raise ctx.error("[output] dir must not be empty", "output", "dir")
    return OutputSection(dir=(base_dir / d), figures=require(ctx, "output", "figures", v))
