"""Random potential generators: the V of the Hamiltonian (eq. 3).

Every generator takes an explicit ``seed`` (an ``int``, a :class:`numpy.random.SeedSequence`
or a :class:`numpy.random.Generator`, passed to :func:`numpy.random.default_rng`): the same seed
gives the same array, so every result can be reproduced from its recorded parameters. Every
generator returns a new float64 array with 1 to 3 axes, in the energy unit of the study.

Models
------
:func:`anderson`
    Independent box-distributed values per site (Anderson's model, ref. [15]).
:func:`block`
    Box-distributed values constant on blocks of sites: piecewise-constant wells that span many
    grid points, so that the continuum and the landscape picture apply.
:func:`gaussian`
    A Gaussian random field with Gaussian correlation, by FFT filtering of white noise.
:func:`binary_alloy`
    A random A/B alloy (e.g. In/Ga on the cation sites of InGaN) smoothed by a normalised
    Gaussian kernel, as in the LL studies of InGaN (Filoche et al., PRB 95, 144204 (2017)).
:func:`white_noise`
    1D Gaussian white noise, the continuum model of refs. [24, 25].

:data:`MODELS` maps the model names used in study files to the generators, and
:func:`generate` dispatches on a name with checked keyword arguments.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.fft
import scipy.ndimage as ndi

from ._checks import real as _real
from .errors import InputError
from .grid import ENERGY_MAX, SPACING_BOUNDS, check_memory

__all__ = [
    "MODELS",
    "SeedLike",
    "anderson",
    "binary_alloy",
    "block",
    "gaussian",
    "generate",
    "model_parameters",
    "white_noise",
]

SeedLike = int | np.random.SeedSequence | np.random.Generator

#: Memory per point of a generator (the Gaussian field's FFT work arrays dominate; the padding
#: of non-periodic fields comes on top), checked before anything is allocated.
_BYTES_PER_POINT = 64

#: Largest smoothing or correlation length, in grid cells, that a generator accepts: beyond it
#: the kernel (or the padding of a non-periodic field) alone would need gigabytes.
_MAX_CELLS = 1e6

#: Padding of non-periodic Gaussian fields, in correlation lengths: wrap-around correlations
#: are below exp(-_PAD**2 / 2) ~ 1.5e-8 of the variance.
_PAD = 6.0


# ---------------------------------------------------------------------- argument checks
def _rng(seed, where: str) -> np.random.Generator:
    """A Generator from ``seed``; refuses ``None`` (results must be reproducible)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if seed is None:
        raise InputError(
            f"{where}: seed is required so that the potential can be reproduced; pass a "
            "non-negative int, a numpy SeedSequence or a numpy Generator"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(
            f"{where}: seed={seed!r} is not valid; pass a non-negative int, a numpy "
            "SeedSequence or a numpy Generator"
        )
    return np.random.default_rng(int(seed))


def _shape(shape, where: str) -> tuple[int, ...]:
    """Validate a shape: 1 to 3 axes, each an int >= 1 (an int means a 1D shape)."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        items = list(shape)
    except TypeError:
        raise InputError(
            f"{where}: shape={shape!r} must be an int or a sequence of 1 to 3 ints"
        ) from None
    if not 1 <= len(items) <= 3:
        raise InputError(
            f"{where}: shape={tuple(items)!r} has {len(items)} axes; mottscape handles 1D, 2D "
            "and 3D samples (give 1 to 3 axis lengths)"
        )
    out = []
    for n in items:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise InputError(
                f"{where}: shape={tuple(items)!r} is not valid; every axis length must be an "
                "int >= 1"
            )
        out.append(int(n))
    check_memory(math.prod(out), _BYTES_PER_POINT, f"{where}: a potential of shape {tuple(out)}")
    return tuple(out)


def _per_axis(value, name: str, ndim: int, where: str, *, strict: bool = True) -> np.ndarray:
    """A positive (or non-negative) length, scalar or one value per axis, as an array of ``ndim``.

    Positive values must lie in :data:`mottscape.grid.SPACING_BOUNDS`.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        items = [value.item()]
    elif isinstance(value, Sequence | np.ndarray) and not isinstance(value, str | bytes):
        items = list(value)
    else:
        items = [value]
    if len(items) not in (1, ndim):
        raise InputError(
            f"{where}: {name}={value!r} must be a scalar or a sequence of {ndim} values "
            f"(one per axis)"
        )
    vals = [_real(v, name, where, minimum=0.0, strict=strict) for v in items]
    lo, hi = SPACING_BOUNDS
    if any(v != 0.0 and not lo <= v <= hi for v in vals):
        raise InputError(
            f"{where}: {name}={value!r} is outside the accepted range [{lo:g}, {hi:g}] of "
            "lengths; express lengths in a unit that brings it into the range")
    return np.broadcast_to(np.asarray(vals, dtype=float), (ndim,)).copy()


def _cells(length: np.ndarray, h: np.ndarray, name: str, where: str, fix: str) -> np.ndarray:
    """``length / h`` per axis, refused above :data:`_MAX_CELLS` cells."""
    cells = length / h
    if np.any(cells > _MAX_CELLS):
        raise InputError(
            f"{where}: {name} spans up to {float(cells.max()):.3g} grid cells (length "
            f"{list(length)} over spacing {list(h)}), more than the accepted {_MAX_CELLS:g}; "
            f"{fix}")
    return cells


# ---------------------------------------------------------------------- generators
def anderson(
    shape: int | Sequence[int],
    width: float = 4.0,
    offset: float = 0.0,
    *,
    seed: SeedLike,
) -> np.ndarray:
    """Anderson disorder: independent box-distributed values on every site.

    Parameters
    ----------
    shape
        Sites per axis (1 to 3 axes); an int means a 1D chain.
    width
        Width W >= 0 of the box distribution.
    offset
        Lower edge of the box: values are uniform on ``[offset, offset + width]``.
    seed
        Seed or Generator (see the module notes).

    Returns
    -------
    numpy.ndarray
        Float64 array of ``shape``; mean ``offset + W/2``, variance ``W**2 / 12``.

    Examples
    --------
    >>> V = anderson((4, 5), width=2.0, seed=3)
    >>> V.shape, bool(V.min() >= 0.0), bool(V.max() <= 2.0)
    ((4, 5), True, True)
    """
    where = "disorder.anderson"
    shape = _shape(shape, where)
    width = _real(width, "width", where, minimum=0.0, bound=ENERGY_MAX)
    offset = _real(offset, "offset", where, bound=ENERGY_MAX)
    rng = _rng(seed, where)
    return offset + width * rng.random(shape)


def block(
    shape: int | Sequence[int],
    block: int | Sequence[int] = 8,
    width: float = 4.0,
    offset: float = 0.0,
    *,
    seed: SeedLike,
) -> np.ndarray:
    """Piecewise-constant disorder: independent box values on blocks of sites.

    The sample is tiled from its origin (index 0 on every axis) by blocks of ``block`` sites;
    each block takes one value uniform on ``[offset, offset + width]``. When ``shape`` is not a
    multiple of ``block`` the tiling is cropped, so the last block along an axis is smaller.

    Parameters
    ----------
    shape
        Sites per axis (1 to 3 axes); an int means a 1D chain.
    block
        Block size in sites: an int >= 1, or one int per axis.
    width
        Width W >= 0 of the box distribution.
    offset
        Lower edge of the box.
    seed
        Seed or Generator (see the module notes).

    Returns
    -------
    numpy.ndarray
        Float64 array of ``shape``. ``block=1`` draws the same values as :func:`anderson`
        with the same seed.

    Examples
    --------
    >>> V = block(10, block=4, seed=0)
    >>> bool(V[0] == V[3]), V.shape
    (True, (10,))
    """
    where = "disorder.block"
    shape = _shape(shape, where)
    ndim = len(shape)
    items: list[Any]
    if isinstance(block, np.ndarray) and block.ndim == 0:
        items = [block.item()]
    elif isinstance(block, Sequence | np.ndarray) and not isinstance(block, str | bytes):
        items = list(block)
    else:
        items = [block]
    if len(items) not in (1, ndim) or any(
        isinstance(b, bool | np.bool_) or not isinstance(b, numbers.Integral) or b < 1
        for b in items
    ):
        raise InputError(
            f"{where}: block={block!r} is not valid; give an int >= 1 (sites per block) or "
            f"one such int per axis ({ndim} values)"
        )
    # A block longer than the sample is one block along that axis.
    sizes = tuple(min(int(b), n) for b, n in zip(items * ndim if len(items) == 1 else items,
                                                  shape, strict=True))
    width = _real(width, "width", where, minimum=0.0, bound=ENERGY_MAX)
    offset = _real(offset, "offset", where, bound=ENERGY_MAX)
    rng = _rng(seed, where)
    coarse_shape = tuple(-(-n // b) for n, b in zip(shape, sizes, strict=True))
    V = offset + width * rng.random(coarse_shape)
    for axis, b in enumerate(sizes):
        V = np.repeat(V, b, axis=axis)
    return np.ascontiguousarray(V[tuple(slice(0, n) for n in shape)])


def gaussian(
    shape: int | Sequence[int],
    correlation_length: float | Sequence[float],
    amplitude: float = 1.0,
    mean: float = 0.0,
    spacing: float | Sequence[float] = 1.0,
    *,
    seed: SeedLike,
    periodic: bool = False,
) -> np.ndarray:
    r"""Gaussian random field with a Gaussian correlation function.

    The field has mean ``mean`` and covariance

    .. math:: \langle \delta V(\mathbf r) \delta V(\mathbf r') \rangle
              = A^2 \exp\!\left(-\frac{|\mathbf r - \mathbf r'|^2}{2 \ell^2}\right),

    with ``A = amplitude`` (the standard deviation) and ``l = correlation_length``: the
    correlation falls to exp(-1/2) ~ 0.61 at distance l. It is made by filtering white noise
    in Fourier space with the square root of the power spectrum
    ``S(k) = A^2 (2 pi l^2)^(d/2) exp(-k^2 l^2 / 2)``.

    Parameters
    ----------
    shape
        Grid points per axis (1 to 3 axes).
    correlation_length
        l > 0 in length units: a scalar, or one value per axis (anisotropic field,
        covariance ``exp(-sum_a x_a^2 / (2 l_a^2))``).
    amplitude
        Standard deviation A >= 0 of the field.
    mean
        Mean of the field.
    spacing
        Grid spacing h > 0 (scalar or per axis), in the length unit of ``correlation_length``.
    seed
        Seed or Generator (see the module notes).
    periodic
        If True the field is periodic on the sample (for periodic boundaries). Otherwise it is
        generated on a box padded by ``6 l`` on each axis and cropped, so opposite faces are
        uncorrelated (wrap-around correlation < 2e-8 A^2).

    Returns
    -------
    numpy.ndarray
        Float64 array of ``shape``.

    Notes
    -----
    The filter is scaled so that the *ensemble* variance of the discrete field is exactly
    ``A**2`` (the sample variance of one realization fluctuates around it). For l much larger
    than h the covariance is the Gaussian above; for l <~ h the spectrum is cut by the
    Brillouin zone and the discrete covariance is narrower (the field tends to white noise).

    Examples
    --------
    >>> V = gaussian((64, 64), correlation_length=3.0, seed=1)
    >>> V.shape
    (64, 64)
    """
    where = "disorder.gaussian"
    shape = _shape(shape, where)
    ndim = len(shape)
    ell = _per_axis(correlation_length, "correlation_length", ndim, where)
    h = _per_axis(spacing, "spacing", ndim, where)
    amplitude = _real(amplitude, "amplitude", where, minimum=0.0, bound=ENERGY_MAX / 16)
    mean = _real(mean, "mean", where, bound=ENERGY_MAX / 2)
    if not isinstance(periodic, bool | np.bool_):
        raise InputError(f"{where}: periodic={periodic!r} must be True or False")
    rng = _rng(seed, where)
    if periodic:
        box = shape
    else:
        cells = _cells(ell, h, "correlation_length", where,
                       "use periodic=True (no padding) or a smaller correlation_length")
        box = tuple(
            scipy.fft.next_fast_len(n + math.ceil(_PAD * c), real=True)
            for n, c in zip(shape, cells, strict=True)
        )
        check_memory(math.prod(box), _BYTES_PER_POINT,
                     f"{where}: the padded box {box} of a non-periodic field")
    noise = rng.standard_normal(box)
    # sqrt of the Gaussian spectrum on the rfft grid; constant factors cancel in the scaling.
    log_filter = np.zeros([*box[:-1], box[-1] // 2 + 1])
    for axis in range(ndim):
        if axis == ndim - 1:
            k = 2.0 * np.pi * np.fft.rfftfreq(box[axis], d=h[axis])
        else:
            k = 2.0 * np.pi * np.fft.fftfreq(box[axis], d=h[axis])
        view = [1] * ndim
        view[axis] = k.size
        log_filter = log_filter - (k.reshape(view) * ell[axis]) ** 2 / 4.0
    filt = np.exp(log_filter)
    kernel = scipy.fft.irfftn(filt, s=box)
    norm = math.sqrt(float(np.sum(kernel**2)))
    field = scipy.fft.irfftn(scipy.fft.rfftn(noise) * filt, s=box)
    field = field[tuple(slice(0, n) for n in shape)]
    return np.ascontiguousarray(mean + (amplitude / norm) * field)


def binary_alloy(
    shape: int | Sequence[int],
    concentration: float,
    v_a: float,
    v_b: float,
    spacing: float | Sequence[float] = 1.0,
    smoothing_length: float = 2.0,
    *,
    seed: SeedLike,
    periodic: bool = False,
) -> np.ndarray:
    """Random binary alloy A_c B_(1-c) with Gaussian averaging of the composition.

    Each site is occupied by an A atom with probability ``concentration`` and by a B atom
    otherwise. The local composition x(r) is the occupation averaged by a normalised Gaussian
    kernel of standard deviation ``smoothing_length`` (``scipy.ndimage.gaussian_filter`` with
    ``sigma = smoothing_length / spacing`` per axis), and the potential is the band edge
    interpolated linearly, ``V = x v_a + (1 - x) v_b`` (Filoche et al., PRB 95, 144204 (2017),
    use this construction for In_x Ga_(1-x) N with sigma equal to twice the lattice constant).

    Parameters
    ----------
    shape
        Sites per axis (1 to 3 axes).
    concentration
        Probability c in [0, 1] that a site holds an A atom.
    v_a, v_b
        Band edge of pure A and pure B (energy unit of the study).
    spacing
        Distance between sites h > 0 (scalar or per axis).
    smoothing_length
        Standard deviation of the averaging kernel, >= 0 (length unit); 0 gives the raw
        binary map.
    seed
        Seed or Generator (see the module notes).
    periodic
        If True the averaging wraps around the sample; otherwise the sample edges are
        reflected (``mode="reflect"``), which keeps the kernel normalised.

    Returns
    -------
    numpy.ndarray
        Float64 array of ``shape``; ensemble mean ``c v_a + (1 - c) v_b``, values in
        ``[min(v_a, v_b), max(v_a, v_b)]``.

    Examples
    --------
    >>> V = binary_alloy((32, 32), 0.2, v_a=-0.5, v_b=0.0, spacing=0.3, smoothing_length=0.6,
    ...                  seed=4)
    >>> bool(-0.5 <= V.min() and V.max() <= 0.0)
    True
    """
    where = "disorder.binary_alloy"
    shape = _shape(shape, where)
    ndim = len(shape)
    c = _real(concentration, "concentration", where)
    if not 0.0 <= c <= 1.0:
        raise InputError(
            f"{where}: concentration={concentration!r} must be a fraction in [0, 1] "
            "(probability that a site holds an A atom)"
        )
    v_a = _real(v_a, "v_a", where, bound=ENERGY_MAX / 2)
    v_b = _real(v_b, "v_b", where, bound=ENERGY_MAX / 2)
    h = _per_axis(spacing, "spacing", ndim, where)
    sl = _real(smoothing_length, "smoothing_length", where, minimum=0.0)
    _cells(np.full(ndim, sl), h, "smoothing_length", where,
           "a smoothing length of that many cells leaves a uniform composition: use a "
           "smaller smoothing_length")
    if not isinstance(periodic, bool | np.bool_):
        raise InputError(f"{where}: periodic={periodic!r} must be True or False")
    rng = _rng(seed, where)
    occupation = (rng.random(shape) < c).astype(float)
    if sl > 0.0:
        occupation = ndi.gaussian_filter(
            occupation, sigma=tuple(sl / h), mode="wrap" if periodic else "reflect"
        )
        np.clip(occupation, 0.0, 1.0, out=occupation)
    return v_b + (v_a - v_b) * occupation


def white_noise(
    n: int | Sequence[int],
    strength: float,
    spacing: float = 1.0,
    mean: float = 0.0,
    *,
    seed: SeedLike,
) -> np.ndarray:
    r"""1D Gaussian white noise, ``<dV(x) dV(x')> = strength * delta(x - x')``.

    Discretised on cells of size h as independent normal values of variance ``strength / h``
    per cell, so that the integral of V over any interval has the continuum variance.

    Parameters
    ----------
    n
        Number of cells (an int, or a 1-element shape).
    strength
        Noise strength D >= 0 (energy^2 * length).
    spacing
        Cell size h > 0.
    mean
        Mean of V.
    seed
        Seed or Generator (see the module notes).

    Returns
    -------
    numpy.ndarray
        Float64 array of shape ``(n,)``.

    Examples
    --------
    >>> white_noise(5, strength=1.0, seed=0).shape
    (5,)
    """
    where = "disorder.white_noise"
    shape = _shape(n, where)
    if len(shape) != 1:
        raise InputError(
            f"{where}: n={n!r} describes a {len(shape)}D sample; white_noise is one-dimensional "
            "(give the number of cells)"
        )
    strength = _real(strength, "strength", where, minimum=0.0)
    h = float(_per_axis(spacing, "spacing", 1, where)[0])
    mean = _real(mean, "mean", where, bound=ENERGY_MAX / 2)
    if strength / h > (ENERGY_MAX / 16) ** 2:
        raise InputError(
            f"{where}: strength/spacing = {strength / h:.3g} gives values of standard deviation "
            f"above {ENERGY_MAX / 16:g}; use a smaller strength or a larger spacing")
    rng = _rng(seed, where)
    return mean + math.sqrt(strength / h) * rng.standard_normal(shape)


# ---------------------------------------------------------------------- registry
#: Model names (as used in study files) -> generator functions.
MODELS: dict[str, Callable[..., np.ndarray]] = {
    "anderson": anderson,
    "block": block,
    "gaussian": gaussian,
    "binary_alloy": binary_alloy,
    "white_noise": white_noise,
}


def model_parameters(model: str) -> dict[str, inspect.Parameter]:
    """The parameters of the generator of ``model``, by name (see :data:`MODELS`)."""
    return dict(inspect.signature(_lookup(model)).parameters)


def _lookup(model: str) -> Callable[..., np.ndarray]:
    try:
        return MODELS[model]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(model), list(MODELS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise InputError(
            f"model={model!r} is not a known disorder model{hint} Known models: "
            f"{', '.join(sorted(MODELS))}"
        ) from None


def generate(model: str, **params: Any) -> np.ndarray:
    """Generate a potential with the model named ``model`` (a key of :data:`MODELS`).

    Parameters
    ----------
    model
        ``"anderson"``, ``"block"``, ``"gaussian"``, ``"binary_alloy"`` or ``"white_noise"``.
    **params
        Keyword arguments of the generator, including ``seed``. For ``white_noise``, which
        takes ``n``, a 1-axis ``shape`` is accepted in its place so that every model can be
        called with ``shape``.

    Returns
    -------
    numpy.ndarray
        The potential.

    Raises
    ------
    InputError
        For an unknown model, an unknown or missing parameter (the message lists the
        parameters the model accepts), or an invalid value.

    Examples
    --------
    >>> generate("block", shape=(8, 8), block=4, seed=1).shape
    (8, 8)
    """
    func = _lookup(model)
    sig = inspect.signature(func)
    accepted = list(sig.parameters)
    if "shape" in params and "shape" not in accepted and "n" in accepted:
        if "n" in params:
            raise InputError(f"model {model!r}: give either n or shape, not both")
        params["n"] = params.pop("shape")
    unknown = [k for k in params if k not in accepted]
    if unknown:
        parts = []
        for k in unknown:
            close = difflib.get_close_matches(k, accepted, n=1)
            parts.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise InputError(
            f"model {model!r} does not take parameter(s) {', '.join(parts)}; it accepts "
            f"{', '.join(accepted)}"
        )
    missing = [
        name for name, p in sig.parameters.items()
        if p.default is inspect.Parameter.empty and name not in params
    ]
    if missing:
        raise InputError(
            f"model {model!r} needs parameter(s) {', '.join(missing)}; it accepts "
            f"{', '.join(accepted)}"
        )
    return func(**params)
