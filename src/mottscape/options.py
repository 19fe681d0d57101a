"""The one registry of options: every open choice of the theory and every solver strategy.

:class:`Options` is a frozen dataclass whose fields are typed with :data:`typing.Literal`;
the allowed values of every option live here and nowhere else. It is validated once, when it is
built (directly, by :meth:`Options.replace`, or from a study file's ``[options]`` table by
:meth:`Options.from_mapping`), and recorded in every result by :meth:`Options.to_attrs`.

The choices the paper leaves open (see ``docs/theory.md`` and ``docs/validation.md`` for the
evidence behind each default):

``mott_scale``
    ``"log"``, rho_omega = ln(2 Delta_xi / hbar omega) (eq. 12, default), or ``"lambertw"``,
    -W_{-1}(-hbar omega / 2 Delta_xi) (ref. [38]).
``dos``
    How nu(E_F) is estimated: ``"landscape"`` (the landscape law, refs. [28, 30]) or
    ``"basins"`` (basin energy estimates near E_F per volume and energy).
``center``
    The position r_i of a basin: ``"weighted"`` (u^2-weighted centroid), ``"centroid"`` or
    ``"minimum"`` (the cell of min V_u).
``split``
    ``"components"`` (one basin per connected component of {V_u <= E_F}) or
    ``"watershed"`` (one per local minimum).
``pair_set``
    Which pairs estimate f(r, rho_omega) (eq. 14): ``"sigma_omega"`` (the pairs of
    Sigma_omega at each omega, eq. 14 literally) or ``"window"`` (every pair of states with
    |E_i - E_F| <= ``pair_window`` at every omega, default hbar omega_max).
``xi``
    The localization length of the classical formula (eq. 1): ``"transfer_matrix"`` (default:
    the sample's own xi from the transfer matrix of H, independent of the landscape, so that
    the comparison with the classical formula is fair), ``"fit"`` (slope of r_ij against
    rho_ij over the Agmon pairs; about 2x the transfer-matrix xi in 2D) or ``"metric"``
    (1 / mean Agmon metric outside the basins).
``effective``
    The effective potential of the basins and of the Agmon metric: ``"vu"`` (V_u, the paper)
    or ``"scaled"`` (W_u = (1 + d/4) V_u, our extension).

Which estimator is ``sigma_ll``:

``estimator``
    ``"pairs"`` (default, the recommended estimator): the pair model of App. A-B
    (:mod:`mottscape.pairs`), every state near E_F of every basin coupled pair by pair,
    binned between the frequencies like the exact reference. ``"eq17"``: the paper's formula
    as published, eq. 17 with the Agmon-shell window (choices above). Both are always
    reported when the pair model runs (``sigma_pairs``, ``sigma_eq17``); ``sigma_ll`` is
    the one chosen here. The choice and its evidence: ``docs/validation.md`` (the pair
    model is within 0.7-2.9 of the exact conductivity in every resolved bin of the
    validation models, eq. 17 6-84 times too large in 2D).

The pair model (App. A-B, :mod:`mottscape.pairs`):

``pair_model``
    Run the pair model (adds ``sigma_pairs``): ``None`` (default) runs it when
    ``estimator="pairs"`` needs it; ``True`` also with ``estimator="eq17"``; ``False`` is
    only allowed with ``estimator="eq17"`` (the fast LL pipeline alone).
``amplitude``
    Its transition amplitude: ``"a13"`` (eq. A13, the paper), ``"herring"`` (Herring's
    surface formula with the same LL states by the Laplace method at the Agmon midpoint, our
    extension), ``"flux"`` (the default: Herring's surface integral summed on the lattice over
    the two states' box eigenvectors, our extension; ``"herring"`` where their boxes do not
    both hold a bond of the geodesic) or ``"a16"`` (Delta_xi rho e^{-rho}).
``cross_section``
    The tube's cross-section of eq. A9: ``"fronts"`` (spherical Agmon fronts, our extension)
    or ``"landscape"`` (-Delta u / u, eqs. A19-A20).
``state_amplitude``
    c_a of eq. 10: ``"volume"`` (V_a^{-1/2}, the paper's estimate below eq. 10), ``"tail"``
    (our extension: the amplitude of the state's own exponential tail, psi_a ~ A_a e^{-rho}
    measured on its box) or ``"midpoint"`` (our extension, the default: psi_a at the pair's
    Agmon midpoint read on the state's box eigenvector, continued as e^{-Delta rho} from the
    nearest cell of the geodesic that its box holds).
``pair_coupling``
    ``"box"`` (default): two states of different basins that one box holds enter with their
    box splitting and dipole; ``"tunnelling"``: every pair of states of different basins goes
    through t_ab (App. A), only the states of one basin pair up on their box (this isolates
    the LL amplitude, for validation).
``state_boxes``
    The boxes on which the states near E_F are found (:func:`mottscape.basin_states.basin_states`):
    ``"merged"`` (default: neighbouring basins' boxes merged when the merged box is barely
    larger, and in 2D/3D the whole sample as one box when that is cheaper, in which case
    sigma_pairs is the exact Kubo-Greenwood sum) or ``"per_basin"`` (one box around every
    basin: every pair of different basins goes through the LL amplitude t_ab; what large
    samples get, and how the LL amplitude is validated on small ones).
``state_padding``
    Padding of those boxes around each basin, in Agmon lengths (the inverse mean Agmon metric
    outside the basins; ``state_boxes.PADDING_AGMON``, 15 by default, 10 before 2026-12-06).
    The states' box energies err by up to ~30 times their weight on the box faces, which
    falls about as e^{-2 padding}: a larger padding converges sigma_pairs at a higher cost
    (docs/validation.md, "Box padding").
``crossed_basins``
    How the LL tails of eq. 10 cross a third basin on the geodesic when the states' boxes do
    not reach the Agmon midpoint: ``"level"`` (the default, our extension: a crossed basin
    whose landscape ground level (1 + d/4) min V_u lies above E has no state at E, and the
    tail decays across it at the metric sqrt(2m/hbar^2 (E_k - E)) of that level; basins with a
    level at or below E stay free) or ``"free"`` (eq. A6: the metric vanishes where V_u <= E,
    the crossing costs nothing). Chosen on the training model's tuned resonances: where the
    pair model uses the LL tails, t_ab / t_exact went from 16.9 to 5.6 (median);
    docs/investigation/README.md.

Solver strategies: ``solver`` (the landscape solve, :func:`mottscape.solve_landscape`),
``tol`` (its relative residual), ``dispersion`` (free IDOS of the landscape law).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_type_hints

from ._checks import positive
from .errors import InputError

__all__ = [
    "Amplitude",
    "Center",
    "CrossSection",
    "CrossedBasins",
    "DosMethod",
    "Effective",
    "Estimator",
    "LandscapeSolver",
    "MottScale",
    "Options",
    "PairCoupling",
    "PairSet",
    "Split",
    "StateAmplitude",
    "StateBoxes",
    "XiMethod",
    "allowed",
]

MottScale = Literal["lambertw", "log"]
DosMethod = Literal["landscape", "basins"]
Center = Literal["weighted", "centroid", "minimum"]
Split = Literal["components", "watershed"]
PairSet = Literal["sigma_omega", "window"]
XiMethod = Literal["transfer_matrix", "fit", "metric"]
Effective = Literal["vu", "scaled"]
Amplitude = Literal["a13", "herring", "flux", "a16"]
CrossSection = Literal["fronts", "landscape"]
StateAmplitude = Literal["volume", "tail", "midpoint"]
CrossedBasins = Literal["free", "level"]
PairCoupling = Literal["box", "tunnelling"]
StateBoxes = Literal["merged", "per_basin"]
Estimator = Literal["pairs", "eq17"]
#: Landscape solvers: ``"scipy-cg"`` is scipy's CG with a Jacobi preconditioner on the
#: assembled matrix, ``"stencil-cg"`` the matrix-free fused Jacobi-CG of mottscape.
LandscapeSolver = Literal["auto", "direct", "banded", "stencil", "mg", "stencil-cg",
                          "scipy-cg", "amg"]
Dispersion = Literal["lattice", "continuum"]

#: Old spellings still accepted by the array-first wrappers, mapped to the option names.
ALIASES = {"pairs": "pair_set", "mott_scale_method": "mott_scale"}
#: Old values still accepted, per option.
VALUE_ALIASES = {"solver": {"cg": "scipy-cg"}}


@dataclass(frozen=True)
class Options:
    """Every open choice of the LL workflow and every solver strategy, validated.

    Attributes
    ----------
    estimator
        Which estimator is reported as ``sigma_ll``: the pair model (``"pairs"``, default)
        or eq. 17 (``"eq17"``).
    mott_scale, dos, center, split, pair_set, xi, effective
        The open choices of eq. 17 and of the classical formula (see the module docstring).
    pair_model, amplitude, cross_section, state_amplitude, pair_coupling, state_boxes
    state_padding, crossed_basins
        The pair model of App. A-B and its choices (see the module docstring).
    pair_window
        Half-width (energy) of the window of states of ``pair_set="window"``; None means the
        largest hbar omega of the run.
    solver, tol, dispersion
        The landscape solve: method, relative residual, free IDOS of the landscape law.
    """

    estimator: Estimator = "pairs"
    mott_scale: MottScale = "log"
    dos: DosMethod = "landscape"
    center: Center = "weighted"
    split: Split = "components"
    pair_set: PairSet = "window"
    pair_window: float | None = None
    xi: XiMethod = "transfer_matrix"
    effective: Effective = "vu"
    pair_model: bool | None = None
    amplitude: Amplitude = "flux"
    cross_section: CrossSection = "fronts"
    state_amplitude: StateAmplitude = "midpoint"
    pair_coupling: PairCoupling = "box"
    state_boxes: StateBoxes = "merged"
    state_padding: float = 15.0  # state_boxes.PADDING_AGMON (not imported: import cost)
    crossed_basins: CrossedBasins = "level"
    solver: LandscapeSolver = "auto"
    tol: float = 1e-10
    dispersion: Dispersion = "lattice"

    def __post_init__(self) -> None:
        for name in _choices():
            _check_choice(name, getattr(self, name))
        if self.pair_model is not None and not isinstance(self.pair_model, bool):
            raise InputError(f"pair_model={self.pair_model!r} must be true or false")
        if self.pair_model is False and self.estimator == "pairs":
            raise InputError("pair_model=false contradicts estimator='pairs' (the default "
                             "estimator is the pair model); to skip the pair model, set "
                             "estimator='eq17' (the paper's formula alone)")
        if self.pair_window is not None:
            object.__setattr__(self, "pair_window",
                               positive(self.pair_window, "pair_window",
                                        hint=" (the half-width of the window of states whose "
                                             "pairs estimate f)"))
        object.__setattr__(self, "state_padding",
                           positive(self.state_padding, "state_padding",
                                    hint=" (the box padding of the pair model's states in "
                                         "Agmon lengths, e.g. 15)"))
        tol = positive(self.tol, "tol", hint=" (a number between 0 and 1: > 0 and < 1, a "
                       "relative residual, e.g. 1e-10)")
        if tol >= 1.0:
            raise InputError(f"tol={self.tol!r} must be a number between 0 and 1 (> 0 and < 1, "
                             "a relative residual, e.g. 1e-10)")
        object.__setattr__(self, "tol", tol)

    @property
    def runs_pair_model(self) -> bool:
        """Whether the pair model runs (``pair_model``, or the estimator needs it)."""
        return self.estimator == "pairs" if self.pair_model is None else self.pair_model

    def replace(self, **changes: Any) -> Options:
        """A copy with some options changed (validated like the original)."""
        return self.updated(changes, where="replace()")

    def updated(self, changes: Mapping[str, Any], *, where: str = "options") -> Options:
        """A copy with the options of ``changes`` changed, validated as a whole.

        The combination is checked, not the changes alone (``pair_model=False`` is valid
        when these options, or ``changes``, set ``estimator="eq17"``); errors name ``where``.
        """
        if not isinstance(changes, Mapping):
            raise InputError(f"{where} must be a table of option = value, got "
                             f"{type(changes).__name__}")
        changed = {ALIASES.get(k, k) for k in changes}
        kept = {k: v for k, v in self.to_dict().items() if k not in changed}
        return Options.from_mapping({**kept, **changes}, where=where)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], *, where: str = "options") -> Options:
        """Build options from a mapping (a study file's ``[options]`` table, CLI flags).

        Unknown names are an :class:`~mottscape.errors.InputError` naming the closest valid
        one; old spellings (``pairs``, ``mott_scale_method``, ``solver="cg"``) are accepted.
        """
        if not isinstance(mapping, Mapping):
            raise InputError(f"{where} must be a table of option = value, got "
                             f"{type(mapping).__name__}")
        kwargs: dict[str, Any] = {}
        valid = cls.names()
        for key, value in mapping.items():
            name = ALIASES.get(key, key)
            if name not in valid:
                close = difflib.get_close_matches(str(key), list(valid), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InputError(f"unknown option {key!r} in {where}{hint} Valid options: "
                                 f"{', '.join(valid)}")
            if name in kwargs:
                raise InputError(f"option {name!r} is given twice in {where} (once as {key!r})")
            if isinstance(value, str):
                value = VALUE_ALIASES.get(name, {}).get(value, value)
            if name in _choices():
                _check_choice(name, value, shown=key)
            kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (None kept)."""
        return {name: getattr(self, name) for name in self.names()}

    def to_attrs(self) -> dict[str, str | float]:
        """The options as NetCDF-safe attributes ``option_<name>`` (None as ``"default"``)."""
        return {f"option_{k}": ("default" if v is None else int(v) if isinstance(v, bool)
                                else v)
                for k, v in self.to_dict().items()}


def allowed(name: str) -> tuple[str, ...]:
    """The allowed values of the option ``name`` (one source for every module)."""
    try:
        return _choices()[name]
    except KeyError:
        raise InputError(f"{name!r} is not an option with a fixed set of values; those are "
                         f"{', '.join(_choices())}") from None


@functools.cache
def _choices() -> dict[str, tuple[str, ...]]:
    hints = get_type_hints(Options)
    return {name: get_args(tp) for name, tp in hints.items()
            if getattr(tp, "__origin__", None) is Literal}


def _check_choice(name: str, value: Any, shown: str | None = None) -> None:
    """InputError naming the option (as the caller spelled it) and its allowed values."""
    values = _choices()[name]
    if value in values:
        return
    close = difflib.get_close_matches(str(value), list(values), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise InputError(f"{shown or name}={value!r} is not known{hint}; use one of "
                     f"{', '.join(repr(v) for v in values)}")
