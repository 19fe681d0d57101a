"""The regular cell-centred grid every field lives on.

Cell ``i`` along axis ``a`` has its centre at ``(i + 1/2) * spacing[a]``; the sample is the box
``[0, shape[a] * spacing[a]]`` along each axis. ``d = len(shape)`` is 1, 2 or 3, and one code path
serves every dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["BOUNDARIES", "Grid", "as_mass", "as_potential", "check_memory", "make_grid"]

BOUNDARIES = ("dirichlet", "periodic")

#: Above this many grid points we estimate memory before allocating (see :func:`check_memory`).
_BYTES_PER_POINT_PIPELINE = 200


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
    boundary: str = "dirichlet"

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
    shape = tuple(int(n) for n in shape)
    if not 1 <= len(shape) <= 3:
        raise InputError(
            f"V has {len(shape)} dimensions; mottscape handles 1D, 2D and 3D samples "
            "(pass an array with 1 to 3 axes)"
        )
    if min(shape) < 1:
        raise InputError(f"V has shape {shape}; every axis needs at least one cell")
    spacing_arr = np.atleast_1d(np.asarray(spacing, dtype=float))
    if spacing_arr.ndim != 1 or spacing_arr.size not in (1, len(shape)):
        raise InputError(
            f"spacing={spacing!r} must be a scalar or a sequence of {len(shape)} values "
            f"(one per axis of V with shape {shape})"
        )
    if not np.all(np.isfinite(spacing_arr)) or np.any(spacing_arr <= 0):
        raise InputError(f"spacing={spacing!r} must be finite and > 0 along every axis")
    spacing_t = tuple(float(h) for h in np.broadcast_to(spacing_arr, (len(shape),)))
    boundary = str(boundary).lower()
    if boundary not in BOUNDARIES:
        raise InputError(f"boundary={boundary!r} is not supported; use one of {BOUNDARIES}")
    return Grid(shape=shape, spacing=spacing_t, boundary=boundary)


def as_potential(V, name: str = "V") -> np.ndarray:
    """Validate a potential map and return it as a float64 array (a copy is not forced)."""
    try:
        arr = np.asarray(V, dtype=float)
    except (TypeError, ValueError) as exc:
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
    return arr


def as_mass(mass, shape: tuple[int, ...]) -> np.ndarray:
    """Validate an effective mass (scalar or array of ``shape``) and broadcast it to ``shape``."""
    try:
        arr = np.asarray(mass, dtype=float)
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
    return np.broadcast_to(arr, tuple(shape)).astype(float, copy=False)


def check_memory(n_points: int, bytes_per_point: int = _BYTES_PER_POINT_PIPELINE) -> None:
    """Raise :class:`InputError` if a grid of ``n_points`` would not fit in available memory."""
    need = int(n_points) * int(bytes_per_point)
    avail = _available_memory()
    if avail is not None and need > avail:
        raise InputError(
            f"a grid of {n_points:,} points needs about {need / 2**30:.1f} GiB "
            f"({bytes_per_point} bytes per point) but only {avail / 2**30:.1f} GiB is available; "
            "use a smaller sample or a machine with more memory"
        )


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
