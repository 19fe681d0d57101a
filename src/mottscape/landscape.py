"""The localization landscape: u from H u = 1 (eq. 2), V_u = 1/u, and the landscape law.

The landscape law for the integrated density of states (IDOS) follows refs. [28, 30]: the Weyl
count of the effective potential,

    N_u(E) = (1/|Omega|) * integral dr N_0(E - V_u(r); m(r)),

where N_0(e; m) is the IDOS per unit volume of the free particle of mass m. With
``dispersion="continuum"``, N_0 = omega_d / (2 pi)^d * (m e / K)^(d/2) (K = hbar^2/2m_ref);
with ``dispersion="lattice"`` (default) N_0 is the exact IDOS of the free discretised operator,
so that the law matches the model that is actually solved, and it tends to the continuum law as
the spacing goes to zero. Densities are per unit volume and per spin.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.linalg as sla
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike

from ._watershed import watershed_minima
from .errors import ConvergenceError, InputError
from .grid import (
    BYTES_PER_POINT_LANDSCAPE,
    Boundary,
    Grid,
    SpacingLike,
    as_potential,
    check_shape_memory,
)
from .hamiltonian import Hamiltonian
from .options import Dispersion, Effective, LandscapeSolver, Options, allowed
from .sample import Sample, make_sample
from .units import UnitSystem

__all__ = ["Landscape", "free_idos", "landscape_of", "solve_landscape"]



@dataclass(frozen=True)
class Landscape:
    """Result of the landscape solve (eq. 2) on one :class:`~mottscape.sample.Sample`.

    Attributes
    ----------
    sample
        The system that was solved; its ``shift`` is the energy frame of the solve.
    u
        The landscape function, solution of (H + shift) u = 1 with the sample's boundary.
    effective_potential
        V_u = 1/u - shift, the effective potential in the frame of V.
    residual
        Relative residual ||1 - (H + shift) u|| / ||1|| reached by the solver.
    converged
        Whether ``residual`` is below the requested tolerance.
    solver, iterations, tolerance
        The linear solver used, its iteration count (0 for direct solvers) and tolerance.
    dispersion
        Free-particle IDOS used in the landscape law: ``"lattice"`` or ``"continuum"``.
    """

    sample: Sample
    u: np.ndarray
    effective_potential: np.ndarray
    residual: float
    converged: bool
    solver: str
    iterations: int
    tolerance: float
    dispersion: str = "lattice"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_effective_potential(
        cls,
        effective_potential,
        spacing=1.0,
        mass=1.0,
        boundary: Boundary = "dirichlet",
        units: str | UnitSystem = "lattice",
        *,
        potential=None,
        dispersion: str = "lattice",
    ) -> Landscape:
        """Wrap a given effective potential V_u (a model landscape, or one computed elsewhere).

        The rest of the workflow (basins, Agmon distances, sigma) then runs on it unchanged.
        ``potential`` (default: zero everywhere, i.e. V_u of a non-negative potential whose
        minimum is 0) only serves the maps and the energy frame: the shift is
        ``-min(potential)`` as in :func:`solve_landscape`, and V_u + shift must be > 0.
        """
        vu = as_potential(effective_potential, "effective_potential")
        pot = np.zeros_like(vu) if potential is None else as_potential(potential, "potential")
        if pot.shape != vu.shape:
            raise InputError(f"potential has shape {pot.shape} but effective_potential has "
                             f"shape {vu.shape}; they must match")
        sample = make_sample(pot, spacing=spacing, mass=mass, boundary=boundary, units=units,
                             shift=-float(pot.min()), solvable=False)
        return cls.given(sample, vu, dispersion=dispersion)

    @classmethod
    def given(cls, sample: Sample, effective_potential: np.ndarray,
              dispersion: str = "lattice") -> Landscape:
        """A landscape whose V_u is given on ``sample`` (no solve; e.g. the scaled W_u)."""
        vu = np.asarray(effective_potential, dtype=float)
        if np.any(vu + sample.shift <= 0):
            raise InputError("effective_potential must lie above min(potential) everywhere "
                             "(V_u >= min V holds for every true landscape)")
        return cls(sample=sample, u=1.0 / (vu + sample.shift), effective_potential=vu.copy(),
                   residual=0.0, converged=True, solver="given", iterations=0, tolerance=0.0,
                   dispersion=dispersion)

    @property
    def hamiltonian(self) -> Hamiltonian:
        """H + shift, the operator that was inverted."""
        return self.sample.landscape_hamiltonian

    @property
    def potential(self) -> np.ndarray:
        """The potential V as given (unshifted)."""
        return self.sample.potential

    @property
    def shift(self) -> float:
        """The energy frame of the solve (see :class:`~mottscape.sample.Sample`)."""
        return self.sample.shift

    @property
    def grid(self) -> Grid:
        """The sample's grid."""
        return self.sample.grid

    @property
    def mass(self) -> np.ndarray:
        """Effective mass per cell."""
        return self.sample.mass

    @property
    def units(self) -> UnitSystem:
        """The sample's unit system."""
        return self.sample.units

    @property
    def ndim(self) -> int:
        """Dimension d."""
        return self.grid.ndim

    def agmon_metric(self, energy: float) -> np.ndarray:
        """Local Agmon metric sqrt(2m/hbar^2 [V_u - E]_+) (the integrand of eq. 9), 1/length."""
        e = float(_energies(energy))
        if not math.isfinite(e):
            raise InputError(f"energy={energy!r} must be a finite number")
        # in place on one new array (the same operations in the same order as
        # sqrt(max(V_u - e, 0) * m / K), so the same values): no temporaries of the grid's size
        w = self.effective_potential - e
        np.maximum(w, 0.0, out=w)
        w *= self.mass
        w /= self.units.kinetic
        return np.sqrt(w, out=w)

    # ------------------------------------------------------------------ landscape law
    def idos(self, energy) -> np.ndarray | float:
        """Landscape-law integrated density of states per unit volume and spin (refs. [28, 30]).

        Parameters
        ----------
        energy
            Energy or array of energies, in the frame of the unshifted potential.
        """
        e = _energies(energy)
        out = np.array([self._idos_one(x) for x in e.ravel()]).reshape(e.shape)
        return float(out) if out.ndim == 0 else out

    def dos(self, energy) -> np.ndarray | float:
        """Landscape-law density of states nu(E) per unit volume, energy and spin.

        The derivative of :meth:`idos` with respect to the energy, computed exactly for the
        continuum law and from the tabulated free IDOS for the lattice law.
        """
        e = _energies(energy)
        out = np.array([self._dos_one(x) for x in e.ravel()]).reshape(e.shape)
        return float(out) if out.ndim == 0 else out

    def _excess(self, energy: float) -> np.ndarray:
        x = float(energy) - self.effective_potential
        x *= self.mass  # in place: one array of the grid's size, the same values
        return x

    def _idos_one(self, energy: float) -> float:
        x = self._excess(energy)
        return float(np.mean(free_idos(x, self.grid, self.units, self.dispersion)))

    def _dos_one(self, energy: float) -> float:
        x = self._excess(energy)
        dn = free_idos(x, self.grid, self.units, self.dispersion, derivative=True)
        del x
        dn *= self.mass  # in place (m * dn and dn * m are the same products)
        return float(np.mean(dn))

    def eigenvalue_estimates(self) -> np.ndarray:
        """Sorted estimates of the low eigenvalues, ``(1 + d/4) * min V_u`` per basin (ref. [30]).

        The basins here are the watershed catchment regions of V_u (one per local minimum).
        The rule applies to the positive potential that was inverted, so the estimate is formed
        in the shifted frame and shifted back.
        """
        if "eig" not in self._cache:
            minima = watershed_minima(self.effective_potential + self.shift)
            est = (1.0 + self.ndim / 4.0) * minima - self.shift
            self._cache["eig"] = np.sort(est)
        return self._cache["eig"].copy()


def _energies(energy) -> np.ndarray:
    """An energy or array of energies as floats, or InputError."""
    try:
        e = np.asarray(energy, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"energy={energy!r} must be a number or an array of numbers (energies "
                         "in the frame of the potential)") from None
    return e


# ---------------------------------------------------------------------- free IDOS
def free_idos(excess, grid: Grid, units: UnitSystem, dispersion: str = "lattice",
              derivative: bool = False) -> np.ndarray:
    """IDOS per unit volume of the free particle of unit mass at energies ``excess`` (>= 0).

    ``excess`` is ``m * (E - V_u)``: a mass m rescales the free dispersion by 1/m.
    With ``derivative=True`` returns dN_0/de instead.
    """
    if dispersion not in allowed("dispersion"):
        raise InputError(f"dispersion={dispersion!r} is not known; use one of "
                         f"{allowed('dispersion')}")
    x = np.asarray(excess, dtype=float)
    d = grid.ndim
    K = units.kinetic
    if dispersion == "continuum":
        pos = np.maximum(x, 0.0)
        omega_d = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
        pref = omega_d / (2 * math.pi) ** d * K ** (-d / 2)
        if derivative:
            with np.errstate(divide="ignore"):
                out = np.where(x > 0, pref * (d / 2) * pos ** (d / 2 - 1), 0.0)
            return out
        return pref * pos ** (d / 2)
    table_e, table_n, table_dn = _lattice_table(tuple(grid.spacing), K)
    if derivative:
        return np.interp(x, table_e, table_dn, left=0.0, right=0.0)
    return np.interp(x, table_e, table_n, left=0.0, right=table_n[-1])


@functools.lru_cache(maxsize=16)
def _lattice_table(spacing: tuple[float, ...], K: float, points: int = 1500, nodes: int = 96):
    """Tabulate the exact IDOS per unit volume of -K * discrete Laplacian (uniform unit mass).

    The dispersion is separable, eps(k) = sum_a 2K/h_a^2 (1 - cos k_a), so the IDOS is built one
    axis at a time: N_1(e) = arccos(1 - e h^2/2K)/pi in closed form, then
    N_{a+1}(E) = (1/pi) int_0^theta*(E) N_a(E - eps_a(theta)) dtheta, by Gauss-Legendre
    quadrature after the substitution theta = theta* (1 - s^2), which removes the square-root
    edge of the integrand. The table lives on a geometric energy grid so that the band tail
    (where the physics of mottscape happens) is resolved at every spacing. Written here
    because no library tabulates lattice densities of states.
    """
    emax = float(sum(4.0 * K / h**2 for h in spacing))
    e = np.concatenate([[0.0], np.geomspace(emax * 1e-10, emax, points)])

    def arc(x, h):
        return np.arccos(np.clip(1.0 - x * h**2 / (2.0 * K), -1.0, 1.0))

    frac = arc(e, spacing[0]) / math.pi
    s, ws = np.polynomial.legendre.leggauss(nodes)
    s, ws = 0.5 * (s + 1.0), 0.5 * ws
    for h in spacing[1:]:
        theta_star = arc(e, h)[:, None]
        theta = theta_star * (1.0 - s**2)[None, :]
        eps = 2.0 * K / h**2 * (1.0 - np.cos(theta))
        vals = np.interp(e[:, None] - eps, e, frac, left=0.0, right=frac[-1])
        frac = np.sum(vals * (ws * 2.0 * s)[None, :] * theta_star, axis=1) / math.pi
    frac = np.maximum.accumulate(np.clip(frac, 0.0, 1.0))
    n = frac / float(np.prod(spacing))
    dn = np.gradient(n, e)
    return e, n, dn


# ---------------------------------------------------------------------- the solve
def solve_landscape(
    V: ArrayLike | Sample,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
    *,
    solver: LandscapeSolver | Literal["cg"] = "auto",
    tol: float = 1e-10,
    maxiter: int | None = None,
    dispersion: Dispersion = "lattice",
    on_failure: Literal["raise", "flag"] = "raise",
    shift: float | None = None,
) -> Landscape:
    """Solve the landscape problem H u = 1 (eq. 2) and form V_u = 1/u.

    Parameters
    ----------
    V
        A :class:`~mottscape.sample.Sample`, or a potential map with 1 to 3 axes (energy unit
        of ``units``; the sample is then built by :func:`~mottscape.sample.make_sample` from
        ``V, spacing, mass, boundary, units, shift``).
    spacing
        Cell size, scalar or one value per axis.
    mass
        Effective mass: scalar or array of V's shape.
    boundary
        ``"dirichlet"`` (default; the Dirichlet problem of eq. 2) or ``"periodic"``.
    units
        ``"lattice"`` (default) or ``"semiconductor"``.
    solver
        ``"auto"`` (default: banded Cholesky for 1D Dirichlet chains, sparse LU up to 40 000
        cells, else ``"stencil"``), ``"direct"`` (sparse LU), ``"banded"`` (1D Dirichlet only),
        ``"stencil"`` (matrix-free, :func:`mottscape.solvers.solve_stencil` choosing between
        its methods), ``"mg"`` (matrix-free multigrid-preconditioned CG), ``"stencil-cg"``
        (matrix-free fused Jacobi-CG), and the assembled-matrix baselines ``"scipy-cg"``
        (scipy Jacobi-CG; ``"cg"`` is its old name) and ``"amg"`` (CG preconditioned by pyamg
        smoothed aggregation).
    tol
        Relative residual tolerance for the iterative solvers.
    maxiter
        Iteration limit of the iterative solvers (default: the solver's own).
    dispersion
        Free IDOS used by the landscape law, ``"lattice"`` or ``"continuum"``.
    on_failure
        ``"raise"`` (default) raises :class:`~mottscape.errors.ConvergenceError` when the
        residual stays above ``tol``; ``"flag"`` returns the result with ``converged=False``.
    shift
        The energy frame: constant added to V before the solve. Default ``-min(V)``: the
        landscape of ``V - min(V)``, so that H is positive definite and every result is
        covariant under a constant shift of V. A float keeps another convention (e.g.
        ``shift=0.0`` inverts V as given, V >= 0 required).

    Returns
    -------
    Landscape
        With ``.u``, ``.effective_potential`` (V_u), ``.sample`` and the solver diagnostics.

    Notes
    -----
    H u = 1 needs H positive definite. The landscape is not covariant under V -> V + c by
    itself (u of V + c is not a shifted u of V), so the energy zero of the solve is fixed by
    ``shift``; ``effective_potential`` and every energy are reported in the frame of V.
    """
    options = Options.from_mapping({"solver": solver, "tol": tol, "dispersion": dispersion},
                                   where="solve_landscape()")
    if on_failure not in ("raise", "flag"):
        raise InputError(f"on_failure={on_failure!r} must be 'raise' or 'flag'")
    maxiter = _check_maxiter(maxiter)
    if not isinstance(V, Sample):
        check_shape_memory(V, BYTES_PER_POINT_LANDSCAPE, "the landscape solve on a grid")
    sample = make_sample(V, spacing, mass, boundary, units, shift=shift)
    return landscape_of(sample, options, maxiter=maxiter, on_failure=on_failure)


def landscape_of(sample: Sample, options: Options | None = None, *, maxiter: int | None = None,
                 on_failure: Literal["raise", "flag"] = "raise") -> Landscape:
    """The landscape step of the workflow: solve (H + shift) u = 1 on a finalized sample.

    Parameters
    ----------
    sample
        The system (see :func:`~mottscape.sample.make_sample`).
    options
        ``solver``, ``tol`` and ``dispersion`` are used (default :class:`Options`).
    maxiter
        Iteration limit of the iterative solvers.
    on_failure
        ``"raise"`` or ``"flag"`` an unconverged solve (see :func:`solve_landscape`).

    Returns
    -------
    Landscape
    """
    options = options or Options()
    ham = sample.landscape_hamiltonian
    grid = sample.grid
    tol = options.tol
    solver = options.solver
    if solver == "auto":
        if grid.ndim == 1 and not grid.periodic:
            solver = "banded"
        elif grid.size <= 40_000:
            solver = "direct"
        else:
            solver = "stencil"
    u, iterations = _solve(ham, solver, tol, maxiter)
    rhs_norm = math.sqrt(grid.size)
    hu = ham.matvec(u)
    residual = float(np.linalg.norm(np.subtract(1.0, hu, out=hu)) / rhs_norm)  # 1 - H u
    del hu
    converged = bool(residual <= max(tol, 1e-12) * 10)
    if not np.all(u > 0):
        raise ConvergenceError(
            f"the landscape solve ({solver}) returned a non-positive u (min {u.min():.3g}); "
            "H is not positive definite for this input", residual=residual)
    if not converged and on_failure == "raise":
        raise ConvergenceError(
            f"the landscape solve ({solver}) stopped at relative residual {residual:.3g} > "
            f"tol={tol:g} after {iterations} iterations; raise maxiter, use solver='amg' or "
            "'direct', or pass on_failure='flag' to get the unconverged result",
            residual=residual)
    vu = np.divide(1.0, u)
    vu -= sample.shift  # V_u = 1/u - shift, in place
    return Landscape(
        sample=sample,
        u=u,
        effective_potential=vu,
        residual=residual,
        converged=converged,
        solver=solver,
        iterations=iterations,
        tolerance=tol,
        dispersion=options.dispersion,
    )


def _check_maxiter(maxiter) -> int | None:
    if maxiter is None:
        return None
    if isinstance(maxiter, bool) or not isinstance(maxiter, numbers.Integral) or maxiter < 1:
        raise InputError(f"maxiter={maxiter!r} must be a positive int or None (solver default)")
    return int(maxiter)


def _solve(ham: Hamiltonian, solver: str, tol: float, maxiter: int | None):
    grid = ham.grid
    if solver in ("stencil", "mg", "stencil-cg"):
        from .solvers import solve_stencil

        # before any array of ones: solve_stencil makes its own right-hand side
        method = {"stencil": "auto", "mg": "mg", "stencil-cg": "cg"}[solver]
        res = solve_stencil(ham, method=method, tol=tol, maxiter=maxiter)
        return res.u, res.iterations
    ones = np.ones(grid.size)
    if solver == "banded":
        if grid.ndim != 1 or grid.periodic:
            raise InputError("solver='banded' needs a 1D sample with Dirichlet boundaries")
        n = grid.size
        ab = np.zeros((2, n))
        ab[1] = ham.diagonal
        ab[0, 1:] = -np.broadcast_to(ham.couplings[0], (n - 1,))
        try:
            u = sla.solveh_banded(ab, ones, lower=False)
        except np.linalg.LinAlgError:
            raise ConvergenceError("H is not positive definite (banded Cholesky failed)") from None
        return u, 0
    if solver == "direct":
        u = spla.spsolve(ham.matrix("csc"), ones)
        return np.asarray(u).reshape(grid.shape), 0
    iters = [0]

    def count(_):
        iters[0] += 1

    A = ham.matrix("csr")
    if solver == "scipy-cg":
        M = spla.LinearOperator(A.shape, matvec=lambda x: x / ham.diagonal.ravel(),
                                dtype=float)
    else:
        import pyamg

        ml = pyamg.smoothed_aggregation_solver(A, symmetry="symmetric", max_coarse=500)
        M = ml.aspreconditioner(cycle="V")
    u, _info = spla.cg(A, ones, x0=ones / ham.diagonal.ravel(), rtol=tol, atol=0.0,
                      maxiter=maxiter or 20 * int(grid.size ** (1 / grid.ndim)) + 200,
                      M=M, callback=count)
    return u.reshape(grid.shape), iters[0]


def metric_landscape(land: Landscape, effective: Effective = "vu") -> Landscape:
    """The landscape whose effective potential defines the basins and the Agmon metric (eq. 9).

    Parameters
    ----------
    land
        The solved landscape.
    effective
        ``"vu"``: V_u itself (the paper). ``"scaled"``: W_u = (1 + d/4) V_u in the frame of the
        solve, the landscape eigenvalue rule (ref. [30]) applied pointwise, so that a basin's
        state energy is min W_u and a region is free for the metric only where a state at E_F
        could live (our extension; see ``docs/theory.md``).

    Returns
    -------
    Landscape
    """
    if effective == "vu":
        return land
    if effective != "scaled":
        raise InputError(f"effective={effective!r} is not known; use one of "
                         f"{allowed('effective')}")
    d = land.ndim
    scaled = (1.0 + d / 4.0) * (land.effective_potential + land.shift) - land.shift
    return Landscape.given(land.sample, scaled, dispersion=land.dispersion)
