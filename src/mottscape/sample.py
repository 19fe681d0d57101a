"""The finalized description of one system: grid, potential, mass, units and energy frame.

A :class:`Sample` is built once by :func:`make_sample` (every argument is checked there) and
then handed to every solver: the landscape solve (eq. 2), the staged pipeline (sec. IV), the
exact Kubo-Greenwood reference (eqs. 4-5) and the pictures. It holds the Hamiltonian of eq. (3),
assembled on demand and built at most once per sample (Kwant's builder -> finalized system ->
solvers is the model of this shape).

The *energy frame* of the landscape solve lives here too: H u = 1 needs a positive operator
and the landscape is not covariant under V -> V + c, so the solve inverts ``H + shift`` with
``shift = -min V`` by default. Every energy the package reports is in the frame of V as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike

from ._checks import real
from .errors import InputError
from .grid import (
    BYTES_PER_POINT_HAMILTONIAN,
    Boundary,
    Grid,
    SpacingLike,
    as_mass,
    as_potential,
    check_shape_memory,
    make_grid,
)
from .hamiltonian import Hamiltonian, build_hamiltonian
from .units import UnitSystem, get_units

__all__ = ["Sample", "make_sample"]


@dataclass(frozen=True, eq=False)
class Sample:
    """One disordered system, validated and ready for every solver.

    Build it with :func:`make_sample`; the fields are read-only arrays.

    Attributes
    ----------
    grid
        Shape, spacing per axis and boundary condition.
    potential
        V on the grid (energy unit of ``units``), as given.
    mass
        Effective mass per cell (units of the reference mass), broadcast to the grid (a
        read-only view of one number when the mass is uniform).
    units
        The unit system of every input and output.
    shift
        The energy frame of the landscape solve: u solves (H + shift) u = 1 (eq. 2 for the
        potential V + shift). Default ``-min V``, so every result is covariant under a
        constant shift of V.
    uniform_mass
        True when the mass was given as one number (faster stencils).
    """

    grid: Grid
    potential: np.ndarray = field(repr=False)
    mass: np.ndarray = field(repr=False)
    units: UnitSystem
    shift: float
    uniform_mass: bool

    @property
    def ndim(self) -> int:
        """Dimension d of the sample."""
        return self.grid.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        """Cells per axis."""
        return self.grid.shape

    @cached_property
    def hamiltonian(self) -> Hamiltonian:
        """H of eq. (3) for V as given (what the exact reference diagonalises)."""
        return self._build_hamiltonian()

    def _build_hamiltonian(self) -> Hamiltonian:
        mass = float(self.mass.flat[0]) if self.uniform_mass else self.mass
        return build_hamiltonian(self.potential, mass=mass, units=self.units, grid=self.grid)

    @cached_property
    def landscape_hamiltonian(self) -> Hamiltonian:
        """H + shift, the positive operator inverted by the landscape solve (eq. 2)."""
        if self.shift == 0.0:
            return self.hamiltonian
        # H itself is built for the sum and dropped unless it is already cached: the
        # landscape workflow never uses it, and it would hold a diagonal (8 bytes per cell)
        ham = self.__dict__.get("hamiltonian") or self._build_hamiltonian()
        return ham.shifted(self.shift)

    def with_potential(self, V) -> Sample:
        """The same grid, mass and units with another potential (e.g. another realization)."""
        mass = float(self.mass.flat[0]) if self.uniform_mass else self.mass
        return make_sample(V, spacing=self.grid.spacing, mass=mass,
                           boundary=self.grid.boundary, units=self.units)

    def describe(self) -> dict[str, object]:
        """Plain metadata of the sample, for result attributes."""
        return {
            "units": self.units.name,
            "ndim": self.ndim,
            "shape": list(self.grid.shape),
            "spacing": list(self.grid.spacing),
            "boundary": self.grid.boundary,
            "volume": self.grid.volume,
            "potential_shift": self.shift,
        }


def make_sample(
    V: ArrayLike | Sample,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
    *,
    shift: float | None = None,
    solvable: bool = True,
) -> Sample:
    """Check a system once and return the finalized :class:`Sample`.

    Parameters
    ----------
    V
        Potential map with 1 to 3 axes (energy unit of ``units``); a :class:`Sample` is
        returned unchanged (other arguments must then keep their defaults).
    spacing
        Cell size, scalar or one value per axis (length unit of ``units``).
    mass
        Effective mass: a positive number or a map of V's shape (units of the reference mass).
    boundary
        ``"dirichlet"`` (psi = 0 outside the box, the problem of eq. 2) or ``"periodic"``.
    units
        ``"lattice"`` (default) or ``"semiconductor"`` (see :mod:`mottscape.units`).
    shift
        Energy frame of the landscape solve (see :class:`Sample`): default ``-min V``; a
        number keeps another convention (``shift=0`` inverts V as given, V >= 0 required).
    solvable
        Check that H + shift is invertible (True; False for a sample whose landscape is given,
        not solved, see :meth:`mottscape.landscape.Landscape.from_effective_potential`).

    Returns
    -------
    Sample

    Raises
    ------
    InputError
        For any invalid argument; the message names it and says what is accepted.
    """
    if isinstance(V, Sample):
        return V if shift is None or shift == V.shift else _reframed(V, shift)
    check_shape_memory(V, BYTES_PER_POINT_HAMILTONIAN, "the sample on a grid")
    pot = as_potential(V)
    grid = make_grid(pot.shape, spacing, boundary)
    unit_system = get_units(units)
    m = as_mass(mass, pot.shape)
    uniform = bool(np.ndim(mass) == 0) or bool(np.all(m == m.flat[0]))
    pot = np.array(pot, dtype=float, copy=True)
    pot.flags.writeable = False
    if uniform:
        # one number seen at every cell (a read-only view with zero strides): a copy would
        # cost 8 bytes per cell for the whole run and hold nothing more
        m = np.broadcast_to(np.float64(m.flat[0]), pot.shape)
    else:
        m = np.array(m, dtype=float, copy=True)
        m.flags.writeable = False
    frame = _frame(pot, grid, shift, solvable)
    return Sample(grid=grid, potential=pot, mass=m, units=unit_system, shift=frame,
                  uniform_mass=uniform)


def _reframed(sample: Sample, shift: float) -> Sample:
    frame = _frame(sample.potential, sample.grid, shift, True)
    return Sample(grid=sample.grid, potential=sample.potential, mass=sample.mass,
                  units=sample.units, shift=frame, uniform_mass=sample.uniform_mass)


def _frame(V: np.ndarray, grid: Grid, shift: float | None, solvable: bool) -> float:
    """The energy frame of the solve: ``-min V`` by default, else a checked number."""
    vmin = float(V.min())
    if shift is None:
        value = -vmin
    else:
        value = real(shift, "shift", hint=" (or None: the frame V - min V)")
        if vmin + value < 0.0:
            raise InputError(
                f"shift={shift!r} leaves V + shift negative (min V = {vmin:g}); use "
                f"shift >= {-vmin:g} or shift=None")
    if solvable and grid.periodic and float(V.max()) + value <= 0.0:
        raise InputError(
            "V + shift vanishes everywhere with periodic boundaries, so H is singular and "
            "H u = 1 has no solution (a constant V is shifted to zero by default); use "
            "boundary='dirichlet' or pass shift > 0 (for a constant V, V_u = V for any shift)")
    return value
