"""The regular cell-centred grid every field lives on.

Cell ``i`` along axis ``a`` has its centre at ``(i + 1/2) * spacing[a]``; the sample is the box
``[0, shape[a] * spacing[a]]`` along each axis. ``d = len(shape)`` is 1, 2 or 3, and one code path
serves every dimension.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

import numpy as np

from .errors import InputError

__all__ = [
    "BOUNDARIES",
    "BYTES_PER_POINT_HAMILTONIAN",
    "BYTES_PER_POINT_LANDSCAPE",
    "BYTES_PER_POINT_PAIRS",
    "BYTES_PER_POINT_PIPELINE",
    "ENERGY_MAX",
    "MASS_BOUNDS",
    "MAX_POINTS",
    "SPACING_BOUNDS",
    "Boundary",
    "Grid",
    "SpacingLike",
    "as_mass",
    "as_potential",
    "check_memory",
    "check_shape_memory",
    "make_grid",
]

#: A boundary condition of the grid.
Boundary = Literal["dirichlet", "periodic"]
BOUNDARIES: tuple[Boundary, ...] = get_args(Boundary)
#: A cell size: one number, or one per axis.
SpacingLike = float | Sequence[float]

#: Accepted range of a grid spacing (any length unit). Outside it the kinetic term
#: hbar^2/(2 m h^2) and the volumes h^d, h^(d+2) of the results leave the range of float64
#: (1/h^2 overflows near h = 1e-154); 1e-30 to 1e30 keeps every such product finite with
#: a wide margin and covers every physical grid in any unit system. Rescale the length unit
#: for a grid outside it.
SPACING_BOUNDS = (1e-30, 1e30)
#: Accepted range of an effective mass (units of the reference mass), for the same reason.
MASS_BOUNDS = (1e-30, 1e30)
#: Largest accepted |V| (energy unit of the study): squares of energies stay finite.
ENERGY_MAX = 1e150
#: Largest number of grid points a Grid may describe (before any memory check).
MAX_POINTS = 2**62

#: Peak memory per grid point over the input V (rise of the resident set during the call,
#: V already in memory). Building the Hamiltonian copies V into its diagonal (9 bytes/point
#: measured, plus the mass map when one is given). Landscape solve and eq. 17 pipeline,
#: measured on 3D Anderson [0, 20] samples (issue 13 item 3, docs/performance.md): the
#: matrix-free solve takes 64-65 (Jacobi-CG, 256^3 to 512^3) to 96 (multigrid, 256^3)
#: bytes/point (the sample's copy of V, H + shift, and the solver's arrays: 5 for Jacobi-CG,
#: 8 and the coarse levels for multigrid); the later
#: steps of the pipeline peak at 66 (V_u, u, labels, the Agmon metric and the search scratch
#: one batch reaches). Both constants are the multigrid figure plus 15 %: whichever solver
#: runs, a run that passes the check fits. The pair model's memory is not set by the grid
#: (its boxes) and is not covered.
BYTES_PER_POINT_HAMILTONIAN = 24
BYTES_PER_POINT_LANDSCAPE = 112
BYTES_PER_POINT_PIPELINE = 112
#: The pair model (the default estimator) on top of the pipeline: its boxes, states, tails and
#: tubes. Measured as the peak resident set over the eq. 17 pipeline's on 2D block samples
#: (width 4, E_F = 0.9, 6 frequencies; 2026-12-07, boxes padded by 15 Agmon lengths):
#: 3.0, 2.9 and 3.6 kB/point at 256^2, 512^2 and 1024^2 (~640 at padding 10 on 2026-12-05:
#: a box's vectors grow as the square of its cells). 4,200 is the largest plus 15 %. A rough
#: guard, not a bound: a 3D sample solved as one box (sparse LU fill-in) can need more.
BYTES_PER_POINT_PAIRS = 4200


@dataclass(frozen=True)
class Grid:
    """Shape, spacing per axis and boundary condition of a sample.

    Attributes
    ----------
    shape
        Number of cells along each axis.
    spacing
        Cell size along each axis (length unit of the study's unit system).
    boundary
        ``"dirichlet"`` (psi = 0 outside the box, the problem of eq. 2) or ``"periodic"``.
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    boundary: Boundary = "dirichlet"

    @property
    def ndim(self) -> int:
        """Dimension d of the sample."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of cells."""
        return int(np.prod(self.shape))

    @property
    def cell_volume(self) -> float:
        """Volume of one cell, prod(spacing)."""
        return float(np.prod(self.spacing))

    @property
    def lengths(self) -> tuple[float, ...]:
        """Side lengths of the sample."""
        return tuple(n * h for n, h in zip(self.shape, self.spacing, strict=True))

    @property
    def volume(self) -> float:
        """Volume |Omega| of the sample."""
        return float(np.prod(self.lengths))

    @property
    def periodic(self) -> bool:
        """True for periodic boundaries."""
        return self.boundary == "periodic"

    def coordinates(self, axis: int) -> np.ndarray:
        """Cell-centre coordinates along ``axis``."""
        return (np.arange(self.shape[axis]) + 0.5) * self.spacing[axis]

    def positions(self, index: np.ndarray) -> np.ndarray:
        """Positions of cells given by (possibly fractional) indices, shape ``(n, d)``."""
        index = np.asarray(index, dtype=float)
        return (index + 0.5) * np.asarray(self.spacing)

    def displacement(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Displacement ``b - a`` between positions, minimum image for periodic boundaries."""
        delta = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
        if self.periodic:
            lengths = np.asarray(self.lengths)
            delta = delta - lengths * np.round(delta / lengths)
        return delta


def make_grid(
    shape: Sequence[int],
    spacing: float | Sequence[float] = 1.0,
    boundary: str = "dirichlet",
) -> Grid:
    """Build a validated :class:`Grid`.

    Parameters
    ----------
    shape
        Cells per axis; 1 to 3 axes.
    spacing
        A positive scalar, or one positive value per axis.
    boundary
        ``"dirichlet"`` or ``"periodic"``.
    """
    if isinstance(shape, str | bytes):
        raise InputError(f"shape={shape!r} must be a sequence of 1 to 3 ints, e.g. (64, 64)")
    try:
        items = list(shape)
    except TypeError:
        raise InputError(f"shape={shape!r} must be a sequence of 1 to 3 ints, e.g. (64, 64)"
                         ) from None
    if any(isinstance(n, bool) or not isinstance(n, numbers.Integral) for n in items):
        raise InputError(f"shape={tuple(items)!r} must hold integers (cells per axis)")
    shape = tuple(int(n) for n in items)
    if not 1 <= len(shape) <= 3:
        raise InputError(
            f"V has {len(shape)} dimensions; mottscape handles 1D, 2D and 3D samples "
            "(pass an array with 1 to 3 axes)"
        )
    if min(shape) < 1:
        raise InputError(f"V has shape {shape}; every axis needs at least one cell")
    if math.prod(shape) > MAX_POINTS:
        raise InputError(f"shape={shape} has {math.prod(shape):.3g} cells, more than any "
                         f"machine can hold (limit {MAX_POINTS:.3g}); use a smaller sample")
    spacing_t = _spacing(spacing, shape)
    if not isinstance(boundary, str) or boundary.lower() not in BOUNDARIES:
        raise InputError(f"boundary={boundary!r} is not supported; use one of {BOUNDARIES}")
    return Grid(shape=shape, spacing=spacing_t, boundary=cast(Boundary, boundary.lower()))


def _spacing(spacing, shape: tuple[int, ...]) -> tuple[float, ...]:
    """Validate a spacing (scalar or one value per axis) against :data:`SPACING_BOUNDS`."""
    def bad(why: str) -> InputError:
        return InputError(
            f"spacing={spacing!r} {why}; give a positive number or a sequence of {len(shape)} "
            "positive numbers (cell size per axis, length unit of the study)")

    if isinstance(spacing, np.ndarray) and spacing.ndim == 0:
        items = [spacing.item()]
    elif isinstance(spacing, list | tuple | np.ndarray):
        items = list(spacing)
    else:
        items = [spacing]
    if any(isinstance(h, bool | np.bool_) or not isinstance(h, numbers.Real) for h in items):
        raise bad("is not a number (booleans, strings and nested lists are refused)")
    spacing_arr = np.asarray([float(h) for h in items], dtype=float)
    if spacing_arr.size not in (1, len(shape)):
        raise InputError(
            f"spacing={spacing!r} must be a scalar or a sequence of {len(shape)} values "
            f"(one per axis of V with shape {shape})"
        )
    if not np.all(np.isfinite(spacing_arr)) or np.any(spacing_arr <= 0):
        raise InputError(f"spacing={spacing!r} must be finite and > 0 along every axis")
    lo, hi = SPACING_BOUNDS
    if np.any(spacing_arr < lo) or np.any(spacing_arr > hi):
        raise InputError(
            f"spacing={spacing!r} is outside the accepted range [{lo:g}, {hi:g}]: the kinetic "
            "energy ~ 1/spacing^2 and the volumes ~ spacing^d would overflow or vanish in "
            "float64; express lengths in a unit that brings the spacing into the range "
            "(e.g. nm instead of m)")
    return tuple(float(h) for h in np.broadcast_to(spacing_arr, (len(shape),)))


def _check_dtype(raw: np.ndarray, name: str, what: str, fix: str) -> None:
    """InputError for arrays of booleans, text, dates, records or non-numeric objects."""
    kind = raw.dtype.kind
    why = {
        "b": f"booleans, not {what}; convert a mask to values first, e.g. "
             f"np.where(mask, high, low)",
        "U": f"strings, not {what}; convert them to numbers first "
             f"(np.asarray({name}, dtype=float) if they are numerals)",
        "S": f"byte strings, not {what}; convert them to numbers first",
        "M": f"dates (datetime64), not {what}",
        "m": f"time differences (timedelta64), not {what}",
        "V": f"structured records, not {what}; pass one numeric field",
    }.get(kind)
    if why is None and kind == "O":
        for x in raw.flat:
            if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
                why = (f"Python objects ({type(x).__name__} {x!r} among them), not {what}; "
                       "pass a numeric array")
                break
    if why is not None:
        raise InputError(f"{name} holds {why} (dtype {raw.dtype}); {fix}")


def _check_masked(V, name: str) -> None:
    if isinstance(V, np.ma.MaskedArray):
        n = int(np.ma.count_masked(V))
        if n:
            raise InputError(
                f"{name} is a masked array with {n} masked cells; a potential or mass needs a "
                f"value in every cell: fill them, e.g. {name}.filled(value), or pass "
                f"{name}.data to ignore the mask")


def as_potential(V, name: str = "V", bytes_per_point: int | None = None) -> np.ndarray:
    """Validate a potential map and return it as a float64 array (a copy is not forced).

    With ``bytes_per_point`` the memory the caller will need is checked (by
    :func:`check_shape_memory`) before anything of the size of V is allocated.
    """
    if V is None or isinstance(V, str | bytes):
        raise InputError(
            f"{name} must be a numeric array with 1 to 3 axes (the potential map), got "
            f"{type(V).__name__} {V!r}; load a file with mottscape.load_potential first")
    if isinstance(V, Mapping | set | frozenset) or callable(V):
        raise InputError(
            f"{name} must be a numeric array with 1 to 3 axes (the potential map), got "
            f"{type(V).__name__}; pass a numpy array")
    if bytes_per_point is not None:
        check_shape_memory(V, bytes_per_point)
    _check_masked(V, name)
    try:
        raw = np.asarray(V)
        _check_dtype(raw, name, "energies", "a potential is an array of real energies")
        if raw.dtype.kind == "c":
            raise InputError(
                f"{name} is complex (dtype {raw.dtype}); a potential is real: pass "
                f"{name}.real if the imaginary part is round-off")
        arr = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name} must be a numeric array, got {type(V).__name__}: {exc}") from None
    if arr.ndim == 0 or arr.ndim > 3:
        raise InputError(
            f"{name} has {arr.ndim} dimensions (shape {arr.shape}); pass a 1D, 2D or 3D array"
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty (shape {arr.shape}); every axis needs at least one cell")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{name} contains {int(bad.sum())} NaN or infinite values (first at index {first}); "
            "replace them with finite energies"
        )
    big = float(np.max(np.abs(arr)))
    if big > ENERGY_MAX:
        raise InputError(
            f"{name} has values up to |V| = {big:.3g}, above the accepted {ENERGY_MAX:g}: "
            "energies of that size overflow float64 in the solvers; express V in a larger "
            "energy unit")
    return arr


def as_mass(mass, shape: tuple[int, ...]) -> np.ndarray:
    """Validate an effective mass (scalar or array of ``shape``) and broadcast it to ``shape``."""
    if (mass is None or isinstance(mass, str | bytes | bool | np.bool_ | Mapping | set)
            or callable(mass)):
        raise InputError(
            f"mass={mass!r} must be a positive number or an array of V's shape {tuple(shape)} "
            "(units of the reference mass)")
    _check_masked(mass, "mass")
    try:
        raw = np.asarray(mass)
        _check_dtype(raw, "mass", "masses",
                     "an effective mass is a positive number or an array of them")
        if raw.dtype.kind == "c":
            raise InputError(
                f"mass is complex (dtype {raw.dtype}); an effective mass is a positive real "
                "number: pass mass.real if the imaginary part is round-off")
        arr = np.asarray(raw, dtype=float)
    except InputError:
        raise
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"mass must be a number or an array, got {type(mass).__name__}: {exc}") from None
    if arr.ndim != 0 and arr.shape != tuple(shape):
        raise InputError(
            f"mass has shape {arr.shape} but V has shape {tuple(shape)}; pass a scalar or an "
            "array of the same shape as V"
        )
    if not np.all(np.isfinite(arr)):
        raise InputError("mass contains NaN or infinite values; effective masses must be finite")
    if np.any(arr <= 0):
        raise InputError(
            f"mass must be > 0 everywhere (minimum given: {float(arr.min()):g}); effective masses "
            "are positive multiples of the reference mass"
        )
    lo, hi = MASS_BOUNDS
    if np.any(arr < lo) or np.any(arr > hi):
        raise InputError(
            f"mass has values from {float(arr.min()):g} to {float(arr.max()):g}, outside the "
            f"accepted range [{lo:g}, {hi:g}] (units of the reference mass): the kinetic term "
            "would overflow or vanish; check the map's unit")
    return np.broadcast_to(arr, tuple(shape)).astype(float, copy=False)


def check_memory(n_points: int, bytes_per_point: int = BYTES_PER_POINT_PIPELINE,
                 what: str = "a grid", fix: str = "use a smaller sample or a machine with more "
                 "memory") -> None:
    """Raise :class:`InputError` if a grid of ``n_points`` would not fit in available memory.

    Call it before allocating anything of the grid's size: the estimate is
    ``n_points * bytes_per_point`` against the memory the system reports as available
    (``MemAvailable`` of ``/proc/meminfo``; no check where that is unknown).
    """
    need = int(n_points) * int(bytes_per_point)
    avail = _available_memory()
    if avail is not None and need > avail:
        raise InputError(
            f"{what} of {int(n_points):,} points needs about {need / 2**30:.1f} GiB "
            f"({bytes_per_point} bytes per point) but only {avail / 2**30:.1f} GiB is available; "
            f"{fix}"
        )


def check_shape_memory(V, bytes_per_point: int, what: str = "a grid") -> None:
    """:func:`check_memory` for an array-like ``V`` (or a shape tuple), without converting it.

    Only objects that carry a ``shape`` (numpy arrays, broadcast views, xarray objects) are
    checked, so that nothing of V's size is allocated; a nested list is already in memory.
    """
    shape = V if isinstance(V, tuple) else getattr(V, "shape", None)
    if shape is None:
        return
    try:
        dims = [int(n) for n in shape]
    except (TypeError, ValueError):
        return
    if 1 <= len(dims) <= 3 and min(dims) >= 1:
        check_memory(math.prod(dims), bytes_per_point, what)


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
