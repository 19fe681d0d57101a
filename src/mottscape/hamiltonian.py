"""The discretised Hamiltonian of eq. (3).

``H psi = -kinetic * div(grad(psi) / m) + V psi`` with conservative cell-centred finite
differences: across the face between neighbouring cells ``i`` and ``j`` along axis ``a`` the
operator couples them with ``kinetic / (m_face h_a^2)``, where ``m_face`` is the harmonic mean
of the two masses. Dirichlet boundaries put psi = 0 in a ghost cell beyond each outer face (the
boundary face then uses the cell's own mass); periodic boundaries wrap the faces. With
``mass = 1``, ``spacing = 1`` and lattice units this is the Anderson tight-binding model with
hopping -1 and on-site energy ``2d + V``.

Two forms are provided and tested against each other: an assembled ``scipy.sparse`` matrix
(for direct and eigen-solvers) and a matrix-free stencil :meth:`Hamiltonian.matvec`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike

from .errors import InputError
from .grid import (
    BYTES_PER_POINT_HAMILTONIAN,
    Boundary,
    Grid,
    SpacingLike,
    as_mass,
    as_potential,
    make_grid,
)
from .units import UnitSystem, get_units

__all__ = ["Hamiltonian", "build_hamiltonian"]


def _slice(ndim: int, axis: int, sl: slice) -> tuple[slice, ...]:
    out = [slice(None)] * ndim
    out[axis] = sl
    return tuple(out)


@dataclass(frozen=True)
class Hamiltonian:
    """Finite-difference Hamiltonian on a :class:`~mottscape.grid.Grid` (eq. 3).

    Attributes
    ----------
    grid
        The sample grid.
    potential
        V on the grid (energy unit of ``units``), including any constant shift applied by the
        caller.
    mass
        Effective mass per cell, in units of the reference mass.
    units
        The unit system (sets hbar^2/(2 m_ref)).
    couplings
        Per axis, ``kinetic / (m_face h_a^2)`` on the interior faces (a scalar for a uniform mass,
        else an array whose shape is the grid shape minus one along that axis).
    """

    grid: Grid
    potential: np.ndarray
    mass: np.ndarray
    units: UnitSystem
    couplings: tuple = field(repr=False)
    wrap_couplings: tuple = field(repr=False)
    diagonal: np.ndarray = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Cells per axis."""
        return self.grid.shape

    @property
    def size(self) -> int:
        """Number of cells (the matrix dimension)."""
        return self.grid.size

    def matvec(self, psi: np.ndarray) -> np.ndarray:
        """Apply H to ``psi`` (flat or grid-shaped) without assembling a matrix."""
        flat = psi.shape != self.shape
        x = psi.reshape(self.shape)
        out = self.diagonal * x
        d = self.grid.ndim
        for a in range(d):
            c = self.couplings[a]
            lo, hi = _slice(d, a, slice(None, -1)), _slice(d, a, slice(1, None))
            out[lo] -= c * x[hi]
            out[hi] -= c * x[lo]
            cw = self.wrap_couplings[a]
            if cw is not None:
                first, last = _slice(d, a, slice(0, 1)), _slice(d, a, slice(-1, None))
                out[first] -= cw * x[last]
                out[last] -= cw * x[first]
        return out.reshape(-1) if flat else out

    def matrix(self, fmt: str = "csr") -> sp.sparray:
        """Assemble H as a symmetric sparse matrix (row-major flattening of the grid)."""
        d = self.grid.ndim
        n = self.size
        index = np.arange(n).reshape(self.shape)
        rows, cols, vals = [index.ravel()], [index.ravel()], [self.diagonal.ravel()]
        for a in range(d):
            lo, hi = _slice(d, a, slice(None, -1)), _slice(d, a, slice(1, None))
            pairs = [(index[lo], index[hi], self.couplings[a])]
            if self.wrap_couplings[a] is not None:
                first, last = _slice(d, a, slice(0, 1)), _slice(d, a, slice(-1, None))
                pairs.append((index[last], index[first], self.wrap_couplings[a]))
            for i, j, c in pairs:
                cv = np.broadcast_to(-np.asarray(c, dtype=float), i.shape).ravel()
                rows += [i.ravel(), j.ravel()]
                cols += [j.ravel(), i.ravel()]
                vals += [cv, cv]
        mat = sp.coo_array(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
        return mat.asformat(fmt)

    def shifted(self, shift: float) -> Hamiltonian:
        """H + shift (the potential moved by a constant), sharing the couplings of H."""
        return replace(self, potential=self.potential + shift, diagonal=self.diagonal + shift)


def build_hamiltonian(
    V: ArrayLike,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
    grid: Grid | None = None,
) -> Hamiltonian:
    """Build the finite-difference Hamiltonian of eq. (3).

    Parameters
    ----------
    V
        Potential map, 1 to 3 axes (energy unit of ``units``).
    spacing
        Cell size, scalar or one value per axis.
    mass
        Effective mass, scalar or array of V's shape (units of the reference mass).
    boundary
        ``"dirichlet"`` (default, eq. 2) or ``"periodic"``.
    units
        ``"lattice"`` or ``"semiconductor"`` (see :mod:`mottscape.units`).
    grid
        A prebuilt grid (then ``spacing`` and ``boundary`` are ignored).

    Returns
    -------
    Hamiltonian
    """
    V = as_potential(V, bytes_per_point=BYTES_PER_POINT_HAMILTONIAN)
    if grid is None:
        grid = make_grid(V.shape, spacing, boundary)
    elif grid.shape != V.shape:
        raise InputError(f"grid has shape {grid.shape} but V has shape {V.shape}; they must match")
    units = get_units(units)
    m = as_mass(mass, V.shape)
    uniform = bool(np.ndim(mass) == 0)
    d = grid.ndim
    K = units.kinetic
    diag = np.array(V, dtype=float, copy=True)
    couplings, wraps = [], []
    for a in range(d):
        h2 = grid.spacing[a] ** 2
        n = grid.shape[a]
        lo, hi = _slice(d, a, slice(None, -1)), _slice(d, a, slice(1, None))
        if uniform:
            m0 = float(m.flat[0])
            c = K / (m0 * h2)
            cw = c if (grid.periodic and n > 1) else None
            # Every cell has two faces along this axis (interior, wrapped or Dirichlet ghost),
            # except a periodic axis of one cell, which carries no kinetic energy.
            if not (grid.periodic and n == 1):
                diag += 2.0 * c
        else:
            mf = 2.0 * m[lo] * m[hi] / (m[lo] + m[hi])
            c = K / (mf * h2)
            diag[lo] += c
            diag[hi] += c
            first, last = _slice(d, a, slice(0, 1)), _slice(d, a, slice(-1, None))
            if grid.periodic:
                if n > 1:
                    mw = 2.0 * m[last] * m[first] / (m[last] + m[first])
                    cw = K / (mw * h2)
                    diag[first] += cw
                    diag[last] += cw
                else:
                    cw = None
            else:
                cw = None
                diag[first] += K / (m[first] * h2)
                diag[last] += K / (m[last] * h2)
        couplings.append(c)
        wraps.append(cw)
    return Hamiltonian(
        grid=grid,
        potential=V,
        mass=m,
        units=units,
        couplings=tuple(couplings),
        wrap_couplings=tuple(wraps),
        diagonal=diag,
    )
