"""mottscape: low-frequency ac conductivity of disordered materials from the localization landscape.

The workflow of Hayoun, Gruzberg & Filoche (2026),

    V -> u (H u = 1) -> V_u = 1/u -> basins {B_i} -> Sigma_omega -> f(r, rho_omega)
      -> E_omega(X^2) -> sigma(omega),

one module per step. See the README for a tour and ``docs/`` for the conventions.
"""

from __future__ import annotations

from .basins import Basins, find_basins
from .errors import ConvergenceError, InputError, MottscapeError, ValidityError
from .grid import Grid, make_grid
from .hamiltonian import Hamiltonian, build_hamiltonian
from .landscape import Landscape, solve_landscape
from .units import LATTICE, SEMICONDUCTOR, UnitSystem, get_units

__version__ = "0.1.0"

__all__ = [
    "LATTICE",
    "SEMICONDUCTOR",
    "Basins",
    "ConvergenceError",
    "Grid",
    "Hamiltonian",
    "InputError",
    "Landscape",
    "MottscapeError",
    "UnitSystem",
    "ValidityError",
    "__version__",
    "build_hamiltonian",
    "find_basins",
    "get_units",
    "make_grid",
    "solve_landscape",
]
