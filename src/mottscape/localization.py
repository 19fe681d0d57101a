r"""Localization length from the transfer matrix, independent of the landscape.

The classical Mott-Berezinskii formula (eq. 1) needs the localization length xi of the states at
E_F, and it enters as xi^(d+2): a xi fitted to the landscape's own Agmon pairs (about 2x the
true xi in 2D) makes the comparison with eq. 1 unfair. This module computes xi from the
Schroedinger equation itself, by the transfer-matrix method, with no reference to V_u.

Method
------
The Hamiltonian is the one of eq. (3) as discretised by :mod:`mottscape.hamiltonian`
(cell-centred finite differences, harmonic-mean face masses, spacing h per axis,
``kinetic = hbar^2/(2 m_ref)``). Cut the sample into slices n = 1, 2, ... perpendicular to a long
axis; with psi_n the amplitudes on slice n (a vector of the N cells of the cross-section), H psi
= E psi reads

.. math:: c_n \psi_{n+1} = (D_n - T_n - E)\,\psi_n - c_{n-1}\,\psi_{n-1},

where D_n is the diagonal of H on the slice (V + the on-site kinetic terms), T_n the hopping
inside the slice and c_n the (diagonal) coupling between slices n and n+1 (``kinetic / (m_face
h^2)``). The 2N x 2N transfer matrices are multiplied along a bar of L slices; by Oseledec's
theorem the logarithms of the singular values of the product, divided by L, converge to 2N
Lyapunov exponents +-gamma_1 > ... > +-gamma_N. The *smallest positive* exponent gamma_N is the
slowest decay a wave function can have along the bar, and ``xi_M = h / gamma_N`` (gamma_N per
slice) is the localization length of the bar of cross-section M (MacKinnon & Kramer 1981,
1983; Pichard & Sarma 1981). N vectors are propagated and re-orthonormalised by a QR
decomposition (modified Gram-Schmidt) every q slices (q chosen so that the fastest and the
slowest vectors never differ by more than ~e^20 in one interval, keeping ~7 of the 16 digits),
and the logarithms of the diagonal of R accumulate the exponents. In 1D (N = 1) this is the
Lyapunov exponent of the chain and xi = h / gamma exactly.

Error. The exponent is the mean of the log-increments along the bar; its statistical error is
estimated by batch means (the post-warm-up bar cut into 16-64 batches much longer than xi_M;
standard error of the batch exponents). The relative error of xi_M equals that of gamma_N. The
first slices (warm-up: ``max(200, 20 N)`` slices, at most a tenth of a map) are discarded, so that
the vectors have aligned with the Oseledec directions.

Extrapolation M -> infinity. A quasi-1D bar is always localized, so xi_M is finite for every M;
the bulk xi is its limit. In the localized regime (xi < M/2) gamma_M = 1/xi_M converges to
1/xi; we take the correction as ``1/xi_M = 1/xi + c/M`` (the leading finite-width correction
of the directed-path picture of strongly localized transport: the best path in a strip of
width M has a log-amplitude per length higher by O(1/M) than in the plane), fitted by weighted
least squares over the widths. The uncertainty adds, in quadrature, the fit's standard error
and the whole extrapolation distance |xi - xi_M(largest M)| (the model dependence of the fit).
Measured on the 2D Anderson model at E = 0 the approach is slower than 1/M while M/xi <~ 20
(W = 12: xi_M = 1.82, 2.28, 2.75, 3.07, 3.31 for M = 4 ... 64), so the extrapolation from
narrow strips tends to *underestimate* xi by up to the reported error; use widths up to
>~ 20 xi where that matters (xi enters eq. 1 as xi^(d+2)). Where
Lambda_M = xi_M / (M h) does not decrease with M (extended or critical states, 3D inside the
mobility edges or W < W_c), there is no finite bulk xi: ``xi = inf`` and the flag
``"not_localized"`` (in 2D, where every state of a real symmetric H is localized, this means
xi >> M instead: flag ``"xi_exceeds_widths"``). Where xi_M at the largest width exceeds half
the width the bars are not wide enough to see the bulk xi: the largest-width value is reported
as a lower bound with the flag ``"xi_exceeds_widths"``. The one-parameter-scaling analysis
proper (collapsing Lambda_M over several disorders onto one curve, MacKinnon & Kramer 1983)
needs a family of disorders; :func:`localization_length` works at one disorder and energy.

Energy frame. Energies are in the frame of V, like every energy of the package: the lattice
Hamiltonian has on-site ``2 sum_a c_a + V`` (``2d + V`` in lattice units with m = h = 1), so
the centre of the Anderson band (E = 0 of the textbook model with V uniform in [-W/2, W/2]) is
at ``E = band_centre(d)`` = 2d here. :func:`anderson_generator` draws that symmetric box.

References
----------
A. MacKinnon and B. Kramer, Phys. Rev. Lett. 47, 1546 (1981); Z. Phys. B 53, 1 (1983).
J.-L. Pichard and G. Sarma, J. Phys. C 14, L127 (1981).
D. J. Thouless, in *Ill-Condensed Matter*, Les Houches 1978 (1979): gamma = W^2 / (96 (1 -
E^2/4)) per site for the 1D Anderson model with box disorder of width W (E from the band centre).
M. Kappus and F. Wegner, Z. Phys. B 45, 15 (1981); B. Derrida and E. Gardner, J. Phys. (Paris)
45, 1283 (1984): at the band centre gamma(0) = <V^2> Gamma(3/4)^2 / Gamma(1/4)^2, i.e.
xi(0) = 105.045 / W^2 instead of 96 / W^2.
K. Slevin and T. Ohtsuki, New J. Phys. 16, 015012 (2014): W_c = 16.54(1) for the 3D Anderson
model with box disorder at E = 0.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike

from ._checks import integer, positive, real
from .errors import InputError
from .grid import BOUNDARIES, Boundary, as_mass, as_potential, check_memory
from .sample import Sample
from .transfer_matrix import (
    BarLyapunov,
    PotentialGenerator,
    array_source,
    generator_source,
    map_bar,
    run_bar,
    uniform_bar,
)
from .units import UnitSystem, get_units

__all__ = [
    "BarLyapunov",
    "LocalizationLength",
    "ShortSampleWarning",
    "anderson_generator",
    "band_centre",
    "bar_lyapunov",
    "localization_length",
    "model_generator",
    "thouless_xi",
]

Extrapolation = Literal["auto", "inverse_width", "largest", "none"]
SeedLike = int | np.random.SeedSequence

_EXTRAPOLATIONS: tuple[Extrapolation, ...] = get_args(Extrapolation)
#: Default bar widths M per dimension.
DEFAULT_WIDTHS = {1: (1,), 2: (8, 16, 32), 3: (4, 6, 8)}
#: A map shorter than this many xi is flagged (the relative error is then ~> 15 %).
_SHORT_MAP = 20.0


class ShortSampleWarning(UserWarning):
    """The sample is too short along the transfer direction for a reliable xi."""


# ---------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class LocalizationLength:
    """Localization length at one energy from the transfer matrix.

    Attributes
    ----------
    xi
        Best estimate of the bulk localization length (length unit): the M -> infinity
        extrapolation for bars, the map's own xi for a potential map, 1/gamma in 1D.
        ``inf`` when the states are not localized at this energy (flag ``"not_localized"``).
    xi_error
        Its uncertainty: statistical, plus the model dependence of the extrapolation.
    energy
        Energy, in the frame of V (see the module notes).
    ndim
        Dimension d.
    widths
        Bar width M per bar (the cross-section is M^(d-1) cells); for a map, its largest
        transverse size.
    cross_sections
        Cross-section shape per bar.
    xi_m, xi_m_error
        Localization length of each bar and its statistical error.
    lambda_m
        Lambda_M = xi_M / (M h_perp), the scaling variable of MacKinnon & Kramer.
    bars
        The per-bar :class:`BarLyapunov` records.
    extrapolation
        Method used: ``"none"`` (1D or a map), ``"inverse_width"``, ``"largest"``.
    assumption
        What the reported xi assumes, in words.
    flags
        Diagnostics: ``"not_localized"``, ``"xi_exceeds_widths"``, ``"short_sample"``,
        ``"not_converged"`` (target error not reached within ``max_length``).
    boundary
        Transverse boundary condition.
    seed
        The seed the random draws came from (the int given, or the SeedSequence).
    """

    xi: float
    xi_error: float
    energy: float
    ndim: int
    widths: tuple[int, ...]
    cross_sections: tuple[tuple[int, ...], ...]
    xi_m: np.ndarray = field(repr=False)
    xi_m_error: np.ndarray = field(repr=False)
    lambda_m: np.ndarray = field(repr=False)
    bars: tuple[BarLyapunov, ...] = field(repr=False)
    extrapolation: str
    assumption: str
    flags: tuple[str, ...]
    boundary: str
    seed: object

    @property
    def relative_error(self) -> float:
        """xi_error / xi."""
        return self.xi_error / self.xi if math.isfinite(self.xi) and self.xi > 0 else math.inf

    @property
    def converged(self) -> bool:
        """True when xi is a finite estimate with no flag."""
        return math.isfinite(self.xi) and not self.flags


# ---------------------------------------------------------------------- helpers
def band_centre(ndim: int, spacing: float | Sequence[float] = 1.0, mass: float = 1.0,
                units: str | UnitSystem = "lattice") -> float:
    """Energy of the centre of the clean band in the frame of V: ``2 sum_a kinetic/(m h_a^2)``.

    With lattice units, m = 1 and h = 1 this is 2d: E = band_centre(d) + e is the energy e of
    the textbook Anderson model (hopping -1, on-site V uniform in [-W/2, W/2]).
    """
    d = _ndim(ndim)
    h = _spacing(spacing, d)
    m = positive(mass, "mass")
    K = get_units(units).kinetic
    return float(sum(2.0 * K / (m * hh**2) for hh in h))


def thouless_xi(width: float, energy: float) -> float:
    """Weak-disorder xi of the 1D Anderson model, 96 (1 - e^2/4) / W^2 (Thouless 1979).

    ``energy`` is measured from the band centre (textbook frame, hopping 1); valid for W -> 0
    away from the band edges |e| -> 2 and from the band centre e = 0, where the
    Kappus-Wegner value 105.045 / W^2 holds instead.
    """
    return 96.0 * (1.0 - energy**2 / 4.0) / width**2


def anderson_generator(width: float, offset: float | None = None) -> PotentialGenerator:
    """A potential generator for the Anderson model: V uniform in [offset, offset + W].

    The default ``offset = -W/2`` is the textbook symmetric box, so that the band centre is at
    :func:`band_centre`. The returned callable has the signature ``(shape, rng) -> V``.
    """
    W = real(width, "width", minimum=0.0)
    lo = -0.5 * W if offset is None else real(offset, "offset")

    def generate(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return lo + W * rng.random(shape)

    generate.__doc__ = f"Anderson box disorder, V uniform in [{lo:g}, {lo + W:g}]."
    return generate


def model_generator(model: str, **params: Any) -> PotentialGenerator:
    """A potential generator from a disorder model of :mod:`mottscape.disorder` (by name).

    ``model_generator("gaussian", correlation_length=3.0, amplitude=0.1)`` returns
    ``(shape, rng) -> disorder.generate("gaussian", shape=shape, seed=rng, ...)``: the bars then
    have the statistics of the study's potential. ``shape`` and ``seed`` are set per chunk.
    The parameters are checked once, on a small shape.
    """
    from . import disorder

    for key in ("shape", "seed", "n"):
        if key in params:
            raise InputError(
                f"model_generator: {key} is set for every chunk of the bar; leave it out")

    def generate(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
        return disorder.generate(model, shape=shape, seed=rng, **params)

    generate((2,), np.random.default_rng(0))  # raises InputError on a bad model or parameter
    generate.__doc__ = f"disorder.generate({model!r}, **{params!r}) on the requested shape."
    return generate


# ---------------------------------------------------------------------- argument checks
def _ndim(ndim) -> int:
    if isinstance(ndim, bool) or not isinstance(ndim, numbers.Integral) or ndim not in (1, 2, 3):
        raise InputError(f"ndim={ndim!r} must be 1, 2 or 3 (the dimension of the system)")
    return int(ndim)


def _spacing(spacing, ndim: int) -> tuple[float, ...]:
    items = list(spacing) if isinstance(spacing, Sequence | np.ndarray) else [spacing]
    if len(items) not in (1, ndim):
        raise InputError(
            f"spacing={spacing!r} must be a number or {ndim} numbers (one per axis, the bar's "
            "long axis first)")
    vals = [positive(v, "spacing") for v in items]
    return tuple(vals * ndim if len(vals) == 1 else vals)


def _choice(value, name: str, options: tuple[str, ...]) -> Any:
    """``value`` if it is one of ``options`` (a ``Literal`` of them), else an InputError."""
    if value not in options:
        raise InputError(f"{name}={value!r} is not valid; use one of {list(options)}")
    return value


def _seed(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(
            f"seed={seed!r} must be a non-negative int or a numpy SeedSequence (every random "
            "draw comes from it, so that the result can be reproduced)")
    return np.random.SeedSequence(int(seed))


def _child_rng(ss: np.random.SeedSequence, width: int) -> np.random.Generator:
    """The Generator of the bar of width M: the same for a given (seed, M) whatever else runs."""
    child = np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, int(width)))
    return np.random.default_rng(child)


def _length_args(length, rel_error, min_length, max_length, warmup, N):
    if length is not None:
        L = integer(length, "length", minimum=1)
        rel = None
        lo = L
        hi = L
    else:
        rel = positive(rel_error, "rel_error")
        hi = integer(max_length, "max_length", minimum=1)
        lo = (min(hi, integer(min_length, "min_length", minimum=1)) if min_length is not None
              else min(hi, 1000))
    w = _default_warmup(N) if warmup is None else integer(warmup, "warmup", minimum=0)
    if length is not None and w >= L:
        raise InputError(
            f"warmup={w} slices is not shorter than length={L}; give length > warmup (about 10x)")
    return rel, lo, hi, w


def _default_warmup(N: int) -> int:
    return max(200, 20 * N)


# ---------------------------------------------------------------------- public entry points
def bar_lyapunov(
    source: PotentialGenerator | float,
    energy: float,
    cross_section: tuple[int, ...] = (),
    *,
    length: int | None = None,
    rel_error: float = 0.01,
    min_length: int | None = None,
    max_length: int = 1_000_000,
    boundary: Boundary = "periodic",
    spacing: float | Sequence[float] = 1.0,
    mass: float = 1.0,
    units: str | UnitSystem = "lattice",
    seed: SeedLike = 0,
    warmup: int | None = None,
    reorthogonalize: int | None = None,
) -> BarLyapunov:
    r"""Lyapunov exponents of one quasi-1D bar of a random potential (transfer matrix).

    Parameters
    ----------
    source
        A potential generator ``(shape, rng) -> V`` returning an array of ``shape`` (the long
        axis first) with the statistics of the user's potential, drawn from the numpy
        Generator ``rng``; or a number W, the Anderson model with V uniform in [-W/2, W/2]
        (:func:`anderson_generator`). Slices are generated in chunks of about 2^18 cells, so a
        correlated potential loses its correlations across one slice per chunk (negligible
        when the correlation length is much shorter than the chunk).
    energy
        Energy in the frame of V (see :func:`band_centre` for the Anderson band centre).
    cross_section
        Cells per transverse axis: ``()`` for a 1D chain, ``(M,)`` for a strip, ``(M, M)``
        for a 3D bar.
    length
        Number of slices (fixed). If None, the bar is extended until the relative error of
        gamma is at most ``rel_error`` (after at least ``min_length`` slices, default 1000) or
        until ``max_length`` slices.
    rel_error, min_length, max_length
        Stopping rule when ``length`` is None.
    boundary
        Transverse boundary condition: ``"periodic"`` (default) or ``"dirichlet"`` (hard wall).
    spacing
        Cell size, one number or one per axis (the long axis first), in the length unit.
    mass
        Uniform effective mass (units of the reference mass).
    units
        ``"lattice"`` or ``"semiconductor"`` (see :mod:`mottscape.units`).
    seed
        Non-negative int or :class:`numpy.random.SeedSequence`: the potential and the starting
        vectors are drawn from ``SeedSequence(seed, spawn_key=(M,))``, M the largest transverse
        size (1 for a chain).
    warmup
        Slices discarded at the start (default ``max(200, 20 N)``).
    reorthogonalize
        Slices between QR steps (default: chosen from the growth rates, at most 32).

    Returns
    -------
    BarLyapunov
        gamma (the smallest positive exponent per unit length), its error, all N exponents.

    Examples
    --------
    >>> rec = bar_lyapunov(1.0, band_centre(1) + 1.0, length=20000, seed=1)
    >>> bool(abs(rec.xi * 1.0**2 / thouless_xi(1.0, 1.0) - 1) < 0.1)
    True
    """
    _, cross, h, m, K, periodic, gen = _bar_args(source, cross_section, boundary, spacing,
                                                 mass, units)
    energy = real(energy, "energy")
    bar, onsite = uniform_bar(cross, h, m, K, periodic)
    rel, lo, hi, w = _length_args(length, rel_error, min_length, max_length, warmup, bar.N)
    q = (None if reorthogonalize is None
         else integer(reorthogonalize, "reorthogonalize", minimum=1))
    rng = _child_rng(_seed(seed), max(cross) if cross else 1)
    rec, _ = run_bar(bar, generator_source(gen, cross, rng, onsite), energy, rng, warmup=w,
                      rel_error=rel, min_length=lo, max_length=hi, reorthogonalize=q)
    return rec


def _bar_args(source, cross_section, boundary, spacing, mass, units):
    try:
        cross = tuple(cross_section)
    except TypeError:
        raise InputError(
            f"cross_section={cross_section!r} must be a tuple of ints: () for a chain, (M,) "
            "for a 2D strip, (M, M) for a 3D bar") from None
    cross = tuple(integer(n, "cross_section", minimum=1) for n in cross)
    ndim = len(cross) + 1
    if ndim > 3:
        raise InputError(f"cross_section={cross_section!r} has more than 2 axes; d <= 3")
    h = _spacing(spacing, ndim)
    if np.ndim(mass) != 0:
        raise InputError(
            "mass must be one number for a generated bar; pass a potential map (with its mass "
            "map) to localization_length for a position-dependent mass")
    m = positive(mass, "mass")
    K = get_units(units).kinetic
    periodic = _choice(boundary, "boundary", BOUNDARIES) == "periodic"
    gen = _as_generator(source)
    N = math.prod(cross) if cross else 1
    check_memory(N * 64, 64, f"a bar of cross-section {cross}")
    return ndim, cross, h, m, K, periodic, gen


def _as_generator(source) -> PotentialGenerator:
    if callable(source):
        return source
    if isinstance(source, numbers.Real) and not isinstance(source, bool):
        return anderson_generator(float(source))
    raise InputError(
        f"source={type(source).__name__} is not a potential generator; pass a callable "
        "(shape, rng) -> V, a disorder width W (Anderson model), or a potential map / Sample "
        "to localization_length")


def localization_length(
    source: Sample | np.ndarray | PotentialGenerator | float,
    energy: float,
    *,
    ndim: int | None = None,
    widths: Sequence[int] | None = None,
    length: int | None = None,
    rel_error: float = 0.01,
    min_length: int | None = None,
    max_length: int = 1_000_000,
    boundary: Boundary | None = None,
    spacing: float | Sequence[float] = 1.0,
    mass: ArrayLike = 1.0,
    units: str | UnitSystem = "lattice",
    extrapolation: Extrapolation = "auto",
    axis: int | None = None,
    seed: SeedLike = 0,
    warmup: int | None = None,
    reorthogonalize: int | None = None,
) -> LocalizationLength:
    r"""Localization length xi at ``energy`` by the transfer-matrix method (no landscape).

    Three kinds of ``source``:

    * a number W or a potential generator ``(shape, rng) -> V`` (the statistics of the user's
      potential) with ``ndim``: bars of widths M (cross-section M^(d-1)) are generated and
      xi_M measured for each; xi is the extrapolation M -> infinity (module notes). In 1D
      the chain's 1/gamma is xi, with no extrapolation.
    * a potential map (1D, 2D or 3D array) or a :class:`~mottscape.sample.Sample`: the
      transfer matrix runs along the map's longest axis (or ``axis``) with the map's own
      cross-section, mass, spacing and boundary: the *sample's own* xi. A map shorter than
      20 xi is flagged ``"short_sample"`` (and a :class:`ShortSampleWarning` is issued).

    Parameters
    ----------
    source
        See above.
    energy
        Energy in the frame of V (the package's frame; the Anderson band centre is at
        :func:`band_centre` = 2d in lattice units).
    ndim
        Dimension, required for a generator or a width W.
    widths
        Bar widths M (default (8, 16, 32) in 2D, (4, 6, 8) in 3D); generated bars only.
    length, rel_error, min_length, max_length
        Bar length in slices, or (``length=None``) the stopping rule: extend each bar until the
        relative error of xi_M is at most ``rel_error`` (at least ``min_length`` slices, at
        most ``max_length``). Generated bars only.
    boundary
        Transverse boundary: ``"periodic"`` or ``"dirichlet"`` (hard wall). Default: periodic
        for generated bars, the sample's boundary for a Sample, Dirichlet for an array (the
        package's default sample boundary).
    spacing
        Cell size, one number or one per axis (for bars, the long axis first).
    mass
        Effective mass: a number, or (for a map) a map of V's shape.
    units
        ``"lattice"`` or ``"semiconductor"``; xi is in the length unit (a or nm).
    extrapolation
        ``"auto"`` (default; see the module notes), ``"inverse_width"`` (fit
        1/xi_M = 1/xi + c/M), ``"largest"`` (xi at the largest width, the difference with the next
        width added to the error) or ``"none"`` (xi at the largest width, statistical error).
    axis
        Transfer direction of a map (default: its physically longest axis).
    seed
        Non-negative int or :class:`numpy.random.SeedSequence`; the bar of width M draws from
        ``SeedSequence(seed, spawn_key=(M,))``, so xi_M does not depend on the other widths.
    warmup
        Slices discarded at the start of every bar (default ``max(200, 20 N)``; at most a tenth
        of a map).
    reorthogonalize
        Slices between QR steps (default: from the growth rates).

    Returns
    -------
    LocalizationLength

    Raises
    ------
    InputError
        For an invalid argument (the message names it and says what is accepted).

    Notes
    -----
    The bulk xi of a 2D system at weak disorder is exponentially large (all states are
    localized, but xi >> any feasible M): the result is then the largest-width xi_M, a lower
    bound, flagged ``"xi_exceeds_widths"``. In 3D for W < W_c (or inside the mobility edges)
    Lambda_M grows with M: xi = inf, flagged ``"not_localized"``.

    Examples
    --------
    >>> res = localization_length(1.0, band_centre(1) + 1.0, ndim=1, length=20000, seed=1)
    >>> res.extrapolation, bool(abs(res.xi / thouless_xi(1.0, 1.0) - 1) < 0.1)
    ('none', True)
    """
    energy = real(energy, "energy")
    method = _choice(extrapolation, "extrapolation", _EXTRAPOLATIONS)
    ss = _seed(seed)
    if isinstance(source, Sample) or _is_map(source):
        for name, value, default in (("widths", widths, None), ("length", length, None),
                                     ("ndim", ndim, None)):
            if value is not default:
                raise InputError(
                    f"{name}={value!r} does not apply to a potential map (the map sets the "
                    "bar); leave it out, or pass a generator to study bars of chosen widths")
        return _map_localization(source, energy, boundary=boundary, spacing=spacing,
                                 mass=mass, units=units, axis=axis, seed=ss, warmup=warmup,
                                 reorthogonalize=reorthogonalize)
    if ndim is None:
        raise InputError(
            "ndim is required with a generator or a disorder width (1, 2 or 3); for a map, "
            "pass the array itself")
    d = _ndim(ndim)
    if axis is not None:
        raise InputError("axis applies to a potential map only; a generated bar runs along "
                         "its first axis")
    bnd = "periodic" if boundary is None else _choice(boundary, "boundary", BOUNDARIES)
    ws: tuple[int, ...]
    if d == 1:
        ws = (1,)
        if widths is not None and tuple(widths) not in ((), (1,)):
            raise InputError(f"widths={widths!r} does not apply in 1D; leave it out")
    else:
        ws = DEFAULT_WIDTHS[d] if widths is None else tuple(widths)
        if not ws:
            raise InputError("widths is empty; give at least one bar width M")
        ws = tuple(sorted({integer(w, "widths", minimum=1) for w in ws}))
    bars, met = [], []
    for M in ws:
        cross = () if d == 1 else (M,) * (d - 1)
        _, cross, h, m, K, periodic, gen = _bar_args(source, cross, bnd, spacing, mass, units)
        bar, onsite = uniform_bar(cross, h, m, K, periodic)
        rel, lo, hi, w = _length_args(length, rel_error, min_length, max_length, warmup, bar.N)
        q = (None if reorthogonalize is None
         else integer(reorthogonalize, "reorthogonalize", minimum=1))
        rng = _child_rng(ss, M)
        rec, ok = run_bar(bar, generator_source(gen, cross, rng, onsite), energy, rng,
                           warmup=w, rel_error=rel, min_length=lo, max_length=hi,
                           reorthogonalize=q)
        bars.append(rec)
        met.append(ok)
    h_perp = _spacing(spacing, d)[1] if d > 1 else 1.0
    flags = [] if all(met) else ["not_converged"]
    if d == 1:
        rec = bars[0]
        xi, err = rec.xi, rec.xi_error
        used, assumption = "none", "1D chain: xi = 1/gamma, no extrapolation needed"
    else:
        xi, err, used, assumption, more = _extrapolate(ws, bars, h_perp, method, d)
        flags += more
    return _result(xi, err, energy, d, ws, bars, h_perp, used, assumption, flags, bnd, ss)


def _is_map(source) -> bool:
    if callable(source):
        return False
    return isinstance(source, np.ndarray | list | tuple) or hasattr(source, "__array__")


def _result(xi, err, energy, d, ws, bars, h_perp, used, assumption, flags, bnd, ss):
    xi_m = np.array([b.xi for b in bars])
    xi_e = np.array([b.xi_error for b in bars])
    lam = xi_m / (np.asarray(ws, dtype=float) * h_perp)
    return LocalizationLength(
        xi=float(xi), xi_error=float(err), energy=energy, ndim=d, widths=tuple(ws),
        cross_sections=tuple(b.cross_section for b in bars), xi_m=xi_m, xi_m_error=xi_e,
        lambda_m=lam, bars=tuple(bars), extrapolation=used, assumption=assumption,
        flags=tuple(dict.fromkeys(flags)), boundary=bnd,
        seed=ss if ss.spawn_key else ss.entropy)


def _extrapolate(ws, bars, h_perp, method, ndim):
    """xi, error, method used, assumption and flags from the xi_M of several widths."""
    M = np.asarray(ws, dtype=float)
    xi_m = np.array([b.xi for b in bars])
    err_m = np.array([b.xi_error for b in bars])
    flags: list[str] = []
    lam = xi_m / (M * h_perp)
    lam_err = err_m / (M * h_perp)
    largest, le = xi_m[-1], err_m[-1]
    if len(ws) == 1 or method == "none":
        assumption = (f"xi of the bar of width M = {ws[-1]} (no extrapolation; equals the bulk "
                      "xi only if xi << M)")
        if lam[-1] > 0.5:
            flags.append("xi_exceeds_widths")
        return largest, le, "none", assumption, flags
    if method == "auto":
        # Lambda_M growing with M (within 2 sigma) -> extended or critical: no finite bulk xi.
        # Not in 2D: H is real symmetric (orthogonal class), where every state is localized and
        # a Lambda_M that does not fall only means xi >> M.
        growing = lam[-1] >= lam[0] - 2.0 * math.hypot(lam_err[-1], lam_err[0])
        if growing and ndim == 2:
            flags.append("xi_exceeds_widths")
            return (largest, math.inf, "none",
                    f"2D: Lambda_M does not fall with M up to M = {ws[-1]}, so xi >> M (all "
                    "states are localized in 2D, but xi is out of reach); xi_M is a lower "
                    "bound", flags)
        if growing:
            flags.append("not_localized")
            return (math.inf, math.inf, "none",
                    "Lambda_M = xi_M/M does not decrease with M: extended or critical states, "
                    "no finite bulk xi (eq. 1 does not apply)", flags)
        if lam[-1] > 0.5:
            flags.append("xi_exceeds_widths")
            return (largest, math.inf, "none",
                    f"xi_M at the largest width M = {ws[-1]} exceeds M/2: the bars are too "
                    "narrow to reach the bulk xi; xi_M is a lower bound", flags)
        method = "inverse_width"
    if method == "largest":
        diff = abs(xi_m[-1] - xi_m[-2])
        return (largest, math.hypot(le, diff), "largest",
                f"xi converged at the largest width M = {ws[-1]}; the change from M = "
                f"{ws[-2]} is counted in the error", flags)
    # weighted least squares gamma_M = gamma + c / M (gamma_M = 1/xi_M)
    gam = 1.0 / xi_m
    gerr = err_m / xi_m**2
    ok = np.isfinite(gerr) & (gerr > 0)
    sig = np.where(ok, gerr, np.max(gerr[ok], initial=1.0))
    A = np.stack([np.ones_like(M), 1.0 / M], axis=1) / sig[:, None]
    b = gam / sig
    coef, *_ = np.linalg.lstsq(A, b, rcond=None)
    cov = np.linalg.inv(A.T @ A)
    dof = len(ws) - 2
    if dof > 0:
        chi2 = float(np.sum((A @ coef - b) ** 2)) / dof
        cov = cov * max(1.0, chi2)
    if lam[-1] > 0.5:
        flags.append("xi_exceeds_widths")
    if not coef[0] > 0:
        flags.append("extrapolation_failed")
        return (largest, math.inf, "inverse_width",
                "the fit 1/xi_M = 1/xi + c/M gave 1/xi <= 0; xi at the largest width reported",
                flags)
    xi = float(1.0 / coef[0])
    fit_err = math.sqrt(max(cov[0, 0], 0.0)) * xi**2
    err = math.hypot(fit_err, xi - largest)
    return (xi, err, "inverse_width",
            "localized regime (xi_M < M/2): 1/xi_M = 1/xi + c/M fitted over widths "
            f"{list(ws)}; error = fit error (+) |xi - xi_M(largest M)|", flags)


def _map_localization(source, energy, *, boundary, spacing, mass, units, axis, seed, warmup,
                      reorthogonalize) -> LocalizationLength:
    if isinstance(source, Sample):
        for name, value, default in (("spacing", spacing, 1.0), ("units", units, "lattice")):
            if not (isinstance(value, type(default)) and value == default):
                raise InputError(f"{name} is set by the Sample; leave it out")
        if not (np.ndim(mass) == 0 and mass == 1.0):
            raise InputError("mass is set by the Sample; leave it out")
        V = source.potential
        spacing = source.grid.spacing
        mass = float(source.mass.flat[0]) if source.uniform_mass else source.mass
        units = source.units
        bnd = source.grid.boundary if boundary is None else boundary
    else:
        V = as_potential(source, name="source")
        bnd = "dirichlet" if boundary is None else boundary
    bnd = _choice(bnd, "boundary", BOUNDARIES)
    d = V.ndim
    h = _spacing(spacing, d)
    if np.ndim(mass) != 0:
        mass = as_mass(mass, V.shape)
    else:
        mass = positive(mass, "mass")
    if axis is None:
        sizes = [n * hh for n, hh in zip(V.shape, h, strict=True)]
        axis = int(np.argmax(sizes))
    elif isinstance(axis, bool) or not isinstance(axis, numbers.Integral) \
            or not -d <= int(axis) < d:
        raise InputError(f"axis={axis!r} must be an int in [-{d}, {d - 1}] (an axis of the map)")
    axis = int(axis) % d
    order = [axis] + [a for a in range(d) if a != axis]
    Vt = np.ascontiguousarray(np.transpose(V, order))
    ht = tuple(h[a] for a in order)
    mt = mass if np.ndim(mass) == 0 else np.ascontiguousarray(np.transpose(mass, order))
    bar, diag, clong_all = map_bar(Vt, ht, mt, get_units(units), bnd)
    L = Vt.shape[0]
    w = (min(_default_warmup(bar.N), L // 10) if warmup is None
         else integer(warmup, "warmup", minimum=0))
    q = (None if reorthogonalize is None
         else integer(reorthogonalize, "reorthogonalize", minimum=1))
    rng = _child_rng(seed, max(bar.cross) if bar.cross else 1)
    rec, _ = run_bar(bar, array_source(diag, clong_all), energy, rng, warmup=w,
                      rel_error=None, min_length=L, max_length=L, reorthogonalize=q)
    flags = []
    total = L * ht[0]
    if not (rec.gamma > 0) or total < _SHORT_MAP * rec.xi:
        flags.append("short_sample")
        warnings.warn(
            f"the map is {total:g} long along axis {axis} but xi = {rec.xi:.3g}: shorter than "
            f"{_SHORT_MAP:g} xi, so the estimate is poor (relative error "
            f"{rec.relative_error:.2g}); use a longer map or a generator of its statistics",
            ShortSampleWarning, stacklevel=3)
    cross = bar.cross
    width = max(cross) if cross else 1
    h_perp = ht[1 + int(np.argmax(cross))] if cross else 1.0
    assumption = ("the map's own xi: transfer matrix along axis "
                  f"{axis} with the map's cross-section {cross} ({bnd} boundary); equals the "
                  "bulk xi only if xi << the cross-section" if cross else
                  "1D map: xi = 1/gamma of the chain")
    if cross and width * h_perp < 2.0 * rec.xi:
        flags.append("xi_exceeds_widths")
    return _result(rec.xi, rec.xi_error, energy, d, (width,), [rec], h_perp, "none",
                   assumption, flags, bnd, seed)
