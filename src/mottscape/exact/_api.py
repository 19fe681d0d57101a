"""The public functions of :mod:`mottscape.exact` (eqs. 4-5)."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import scipy.linalg as sla
import scipy.sparse.linalg as spla
import xarray as xr
from numpy.typing import ArrayLike

from .._checks import real
from ..errors import ConvergenceError, InputError
from ..grid import Boundary, SpacingLike, check_memory
from ..hamiltonian import Hamiltonian
from ..sample import Sample
from ..units import UnitSystem
from ._boxes import BOX_TOL, NEAR_CORE, RESOLVED_FAR, _box_residual_rows, box_pairs
from ._common import (
    DENSE_MAX,
    KT_WINDOW,
    METHODS,
    WHOLE_CHAIN_MAX,
    ExactMethod,
    _as_hamiltonian,
    _blas_single_thread,
    _Block,
    _centroids,
    _check_edges,
    _flat_coordinates,
    _gershgorin,
    _tridiagonal,
)
from ._counts import _sturm_counts, count_eigenvalues_below
from ._factor import ShiftedFactor, factor_backend
from ._kg import _Accumulator, _count_pairs
from ._tasks import ExactPlan, Piece, finish_blocks, make_plan, solve_piece, widen_boxes
from ._windows import _solve_dense, _solve_tridiagonal


def _window_blocks(ham: Hamiltonian, lo: float, hi: float, method: ExactMethod, segment, padding,
                   progress: bool, core=None, box_tol: float = BOX_TOL):
    """Eigenstates with energies in [lo, hi] and exact counts; returns (blocks, info)."""
    method, segment = _resolve_method(ham, method, segment, core)
    t0 = time.perf_counter()
    if method in ("boxes", "segments", "shift-invert"):
        plan = make_plan(ham, lo, hi, method, segment, padding, core, box_tol)
        count_seconds = time.perf_counter() - t0
        try:
            blocks, info = finish_blocks(ham, plan, _solve_pieces(ham, plan, progress))
        except ConvergenceError as err:
            if method != "boxes":
                raise
            blocks, info = _boxes_widened(ham, plan, core, progress, err)
        info["count_seconds"] = count_seconds
    else:
        counts = count_eigenvalues_below(ham, [lo, hi])
        expected = int(counts[1] - counts[0])
        info = {"method": method, "expected_states": expected, "count_lo": int(counts[0]),
                "count_hi": int(counts[1]), "count_seconds": time.perf_counter() - t0}
        blocks = _global_window(ham, lo, hi, method, expected, progress, info)
    info["solve_seconds"] = time.perf_counter() - t0
    info["max_residual"] = _max_residual(ham, blocks)
    if ham.grid.ndim > 1 or ham.grid.periodic:  # counts (and slices) by sparse LDL^T
        info["sparse_factorisation"] = factor_backend(ham.size)
    return blocks, info


def _boxes_widened(ham: Hamiltonian, plan: ExactPlan, core, progress: bool,
                   err: ConvergenceError) -> tuple[list[_Block], dict]:
    """The boxes once more with twice the padding, after their states failed the count.

    As the 1D segments do (``_tasks._finish_segments``): a state whose box copies are all
    distorted beyond what the boxes' growth checks (docs/performance.md, "The exact boxes at
    their default padding") is found with a wider starting padding. Raises ``err`` if the
    wider boxes do not fit the sample, the error of the second count if it fails again.
    """
    try:
        wide = widen_boxes(ham, plan, core)
    except InputError:
        raise err from None
    warnings.warn(f"{err} -- solving the boxes again with padding={wide.padding}",
                  RuntimeWarning, stacklevel=4)
    blocks, info = finish_blocks(ham, wide, _solve_pieces(ham, wide, progress))
    info["box_widened_from"] = plan.padding
    return blocks, info


def _solve_pieces(ham: Hamiltonian, plan: ExactPlan, progress: bool) -> list[Piece]:
    """Every piece of the plan in this process, in order (a progress bar over the pieces)."""
    matrix = ham.matrix("csr") if plan.method == "boxes" else None
    pieces = range(plan.n_pieces)
    if progress:
        from tqdm.auto import tqdm

        pieces = tqdm(pieces, desc=plan.method)
    return [solve_piece(ham, plan, k, matrix) for k in pieces]


def _resolve_method(ham: Hamiltonian, method: ExactMethod, segment, core
                    ) -> tuple[ExactMethod, int | None]:
    """The concrete method for ``"auto"`` and 1D Dirichlet boxes; refuses impossible ones."""
    grid = ham.grid
    d1 = grid.ndim == 1 and not grid.periodic
    if method == "auto":
        if d1:
            method = "segments" if (segment is not None or ham.size > WHOLE_CHAIN_MAX) \
                else "tridiagonal"
        else:
            method = "dense" if ham.size <= DENSE_MAX else "shift-invert"
    if method == "boxes" and d1:
        method = "segments"  # the 1D Dirichlet boxes are the (faster, tridiagonal) segments
        segment = segment if segment is not None else core
    if method in ("tridiagonal", "segments") and not d1:
        raise InputError(
            f"method={method!r} needs a 1D sample with Dirichlet boundaries (got shape "
            f"{grid.shape}, boundary={grid.boundary!r}); use 'dense' or 'shift-invert'")
    if method == "dense":
        # the dense matrix, its eigenvectors and LAPACK's workspace: ~3 n^2 doubles
        check_memory(ham.size, 24 * ham.size,
                     "method='dense' (use 'shift-invert' for large samples) on a grid")
    return method, segment


def _global_window(ham: Hamiltonian, lo: float, hi: float, method: str, expected: int,
                   progress: bool, info: dict) -> list[_Block]:
    """One block from a solver on the whole sample (dense or tridiagonal)."""
    if method == "dense":
        w, v = _solve_dense(ham, lo, hi)
    elif method == "tridiagonal":
        w, v = _solve_tridiagonal(ham, lo, hi)
    else:
        raise InputError(f"method={method!r} is not known; use one of {METHODS}")
    if w.size != expected:
        raise ConvergenceError(
            f"method {method!r} found {w.size} states in [{lo:g}, {hi:g}] but the inertia "
            f"count is {expected}; try method='dense' on a small sample")
    coords = _flat_coordinates(ham.grid)
    return [_Block(0, ham.size, w, v, _centroids(v, coords))] if w.size else []


def _max_residual(ham: Hamiltonian, blocks: list[_Block]) -> float:
    """Largest ``|H psi - E psi|`` entry over the states found, psi = 0 outside its block."""
    res = 0.0
    if ham.grid.ndim == 1 and not ham.grid.periodic:
        d, e = _tridiagonal(ham)
        for blk in blocks:
            a, b = blk.start, blk.stop
            v = blk.vectors
            r = d[a:b, None] * v - blk.energies * v
            r[:-1] += e[a:b - 1, None] * v[1:]
            r[1:] += e[a:b - 1, None] * v[:-1]
            res = max(res, float(np.abs(r).max(initial=0.0)))
            # leakage into the cells just outside the block
            if a > 0:
                res = max(res, float(np.abs(e[a - 1] * v[0]).max(initial=0.0)))
            if b < d.size:
                res = max(res, float(np.abs(e[b - 1] * v[-1]).max(initial=0.0)))
        return res
    A = ham.matrix("csr")
    for blk in blocks:
        if blk.index is not None:  # a box: rows on the box and its halo
            r = _box_residual_rows(A, blk.index, blk.energies, blk.vectors)
        else:
            r = A @ blk.vectors - blk.vectors * blk.energies
        res = max(res, float(np.abs(r).max(initial=0.0)))
    return res


def kubo_greenwood(
    V: ArrayLike | Sample | Hamiltonian,
    fermi_energy: float,
    omega_edges: ArrayLike,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
    temperature: float = 0.0,
    *,
    method: ExactMethod = "auto",
    segment: int | None = None,
    padding: int | None = None,
    progress: bool = False,
    core: int | None = None,
    pair_cutoff: float | None = None,
    box_tol: float = BOX_TOL,
) -> xr.Dataset:
    """Exact bin-averaged Kubo-Greenwood conductivity of one finite sample (eqs. 4-5).

    Parameters
    ----------
    V
        A :class:`~mottscape.sample.Sample` (its Hamiltonian ``sample.hamiltonian`` is used),
        a potential map (1 to 3 axes, energy unit of ``units``), or a prebuilt
        :class:`~mottscape.hamiltonian.Hamiltonian`. With a Sample or a Hamiltonian,
        ``spacing``, ``mass``, ``boundary`` and ``units`` are ignored.
    fermi_energy
        E_F, inside the spectrum of H.
    omega_edges
        Strictly increasing positive angular-frequency bin edges (``units.omega_unit``).
    spacing, mass, boundary, units
        As for :func:`~mottscape.hamiltonian.build_hamiltonian`. With ``boundary="periodic"``
        the velocity form of the matrix elements is used (see the module notes).
    temperature
        kT in energy units (0: step Fermi function, with f(E_F) = 1/2).
    method
        ``"auto"``, ``"dense"``, ``"tridiagonal"``, ``"segments"``, ``"shift-invert"`` or
        ``"boxes"``. ``"auto"`` picks ``"tridiagonal"`` for 1D chains up to 4000 cells and
        ``"segments"`` beyond (or whenever ``segment`` is given), ``"dense"`` for 2D/3D samples
        up to 3000 cells and ``"shift-invert"`` beyond. ``"boxes"`` (overlapping boxes, any
        dimension; in 1D Dirichlet it is ``"segments"``) must be asked for: a bin is exact
        only when the padding exceeds the distances of the pairs that carry it, which the
        result reports (``sigma_beyond_padding``; see :mod:`mottscape.exact._boxes`).
    segment
        Core length of a 1D segment in cells (default ``max(2 * padding, 64)``).
    padding
        Cells of padding on each side of a 1D segment or of a box. Segments: default the
        larger of 30 localization lengths (Thouless formula at the top of the window) and
        twice the mean distance between window states, at least 16 cells; states are paired
        only when their segments overlap (a cutoff of about ``2 * padding``). Boxes: default
        8 cells, the starting value; each box's padding grows until the residual of its states
        against the full H is below ``box_tol``; if the states kept still fail the inertia
        count, the boxes are solved once more with twice the padding (a ``RuntimeWarning``
        says so; attribute ``box_widened_from``). Pairs up to ``padding`` apart have exact
        matrix elements; the padding must exceed the Mott length (eq. 12) of the lowest
        frequency to be resolved.
    progress
        Show a progress bar over segments, slices or boxes.
    core
        Core edge of a box in cells per axis (default ``3 * padding``), ``method="boxes"``.
    pair_cutoff
        ``method="boxes"``: only pairs whose centroids are at most this far apart (length
        unit, minimum image if periodic) enter the sum. Default: no cutoff, every pair whose
        boxes share cells enters, with its matrix element summed over the common cells (exact
        up to the leakage for pairs at most ``padding`` apart, a partial sum beyond; that
        part of sigma is ``sigma_beyond_padding``). Pairs left out are counted per bin in
        ``n_pairs_left_out``.
    box_tol
        ``method="boxes"``: largest accepted residual ``||H psi - E psi||_2`` of a kept state
        against the full H, in units of the largest hopping energy (default 1e-5).

    Returns
    -------
    xarray.Dataset
        Coordinate ``omega`` (geometric bin centres ``sqrt(w_k w_{k+1})``, with ``omega_lower``
        and ``omega_upper``); variables ``sigma`` (bin-averaged Re sigma, unit in its attrs),
        ``n_pairs`` (pairs with ``f_i > f_j`` whose frequency falls in the bin), ``n_states``
        (eigenstates in the window) and ``dos`` (``n_states / (|Omega| * window width)``, per
        unit volume, energy and spin); attrs give the units, method, window, temperature and
        solver diagnostics. ``method="boxes"`` adds ``sigma_beyond_padding`` (the part of
        ``sigma`` from pairs farther apart than the padding, whose matrix elements are
        partial) and ``n_pairs_left_out`` (pairs of ``n_pairs`` not summed).

    Raises
    ------
    InputError
        On invalid edges, a Fermi energy outside the spectrum, a negative temperature, an
        unknown method, or box parameters the boxes cannot use (``core``, ``padding``,
        ``box_tol``, ``pair_cutoff``; each message names the argument and the fix).
    ConvergenceError
        If the windowed solver misses states (checked against an exact inertia count; the
        boxes and the segments after one retry with a wider padding).

    Notes
    -----
    Each pair (i, j), ``E_j > E_i``, with ``omega_ij = (E_j - E_i)/hbar`` in bin k adds
    ``(2 pi e^2 omega_ij / (d |Omega|)) (f_i - f_j) |X_ji|^2 / hbar / (w_{k+1} - w_k)``
    (spin factor 2, isotropic average) with X from eq. (5); bins are half-open
    ``[w_k, w_{k+1})``. No broadening: the bin averages are exact for the finite sample.
    """
    ham = _as_hamiltonian(V, spacing, mass, boundary, units)
    edges, e_edges, ef, T, cutoff = _kg_args(ham, fermi_energy, omega_edges, temperature,
                                             method, pair_cutoff)
    half = float(e_edges[-1]) + KT_WINDOW * T
    blocks, info = _window_blocks(ham, ef - half, ef + half, method, segment, padding,
                                  progress, core=core, box_tol=box_tol)
    return _kg_from_blocks(ham, blocks, info, edges, ef, T, cutoff)


def _kg_args(ham: Hamiltonian, fermi_energy, omega_edges, temperature, method: str,
             pair_cutoff) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """Checked edges (and in energy), E_F, temperature and pair cutoff of a KG call."""
    edges = _check_edges(omega_edges)
    ef = real(fermi_energy, "fermi_energy")
    T = real(temperature, "temperature", minimum=0.0)
    if method not in METHODS:
        raise InputError(f"method={method!r} is not known; use one of {METHODS}")
    cutoff = math.inf if pair_cutoff is None \
        else real(pair_cutoff, "pair_cutoff", minimum=0.0)
    e_edges = np.asarray(ham.units.omega_to_energy(edges), dtype=float)
    return edges, e_edges, ef, T, cutoff


def _kg_from_blocks(ham: Hamiltonian, blocks: list[_Block], info: dict, edges: np.ndarray,
                    ef: float, T: float, cutoff: float) -> xr.Dataset:
    """The KG pair sum (eq. 4) over the window states ``blocks``, as a Dataset."""
    _check_fermi_inside(ham, ef, blocks, info)
    t0 = time.perf_counter()
    e_edges = np.asarray(ham.units.omega_to_energy(edges), dtype=float)
    half = float(e_edges[-1]) + KT_WINDOW * T
    acc = _Accumulator(ham, e_edges, ef, T)
    if info["method"] == "boxes":
        info["pair_cutoff"] = cutoff
        # a pair whose centroids are at most this far apart lies in both boxes (a recovered
        # spare's centroid is up to NEAR_CORE cells outside its box's core)
        reach = info["box_padding"] - (NEAR_CORE if info.get("box_recovered") else 0.0)
        near = reach * min(ham.grid.spacing)
        info["box_pairs"] = box_pairs(acc, blocks, ham.grid, cutoff, near)
    else:
        _range_pairs(acc, blocks, _flat_coordinates(ham.grid))
    info["pairs_seconds"] = time.perf_counter() - t0
    all_e = np.concatenate([b.energies for b in blocks]) if blocks else np.zeros(0)
    n_pairs = _count_pairs(all_e, e_edges, ef, T)
    return _kg_dataset(ham, edges, acc, n_pairs, all_e.size, info, ef, T,
                       (ef - half, ef + half))


def plan_exact(
    V: Sample | Hamiltonian,
    fermi_energy: float,
    omega_edges: ArrayLike,
    *,
    temperature: float = 0.0,
    method: ExactMethod = "auto",
    segment: int | None = None,
    padding: int | None = None,
    core: int | None = None,
    box_tol: float = BOX_TOL,
) -> ExactPlan | None:
    """The plan of :func:`kubo_greenwood` split into pieces that run as independent tasks.

    Parameters
    ----------
    V
        A :class:`~mottscape.sample.Sample` or a :class:`~mottscape.hamiltonian.Hamiltonian`.
    fermi_energy, omega_edges, temperature, method, segment, padding, core, box_tol
        As for :func:`kubo_greenwood`.

    Returns
    -------
    ExactPlan or None
        For the boxes, the 1D segments and the whole-sample shift-invert slicing: the window,
        its inertia counts and the geometry (``plan.n_pieces`` pieces: boxes, runs of
        segments, or first shifts of the slicing, each one factorisation of the whole H;
        each computed by :func:`~mottscape.exact._tasks.solve_piece`, then summed by
        :func:`finish_exact`). None for a method that solves the whole sample at once in one
        call (``"dense"``, ``"tridiagonal"``; ``kubo_greenwood`` is then the one task).
    """
    ham = _as_hamiltonian(V, 1.0, 1.0, "dirichlet", "lattice")
    _, e_edges, ef, T, _ = _kg_args(ham, fermi_energy, omega_edges, temperature, method, None)
    method, segment = _resolve_method(ham, method, segment, core)
    if method not in ("boxes", "segments", "shift-invert"):
        return None
    half = float(e_edges[-1]) + KT_WINDOW * T
    return make_plan(ham, ef - half, ef + half, method, segment, padding, core, box_tol)


def finish_exact(V, plan: ExactPlan, pieces: list[Piece], fermi_energy: float, omega_edges,
                 *, temperature: float = 0.0, pair_cutoff: float | None = None
                 ) -> xr.Dataset:
    """The KG result of :func:`kubo_greenwood` from the pieces of :func:`plan_exact`.

    ``pieces`` are the results of ``solve_piece(ham, plan, k)`` for every k in order (on any
    engine); the numbers are those of ``kubo_greenwood`` with the same arguments, bit for bit.

    Raises
    ------
    ConvergenceError
        If the states of the pieces differ in number from the inertia count. Unlike
        :func:`kubo_greenwood`, which then solves the boxes once more with twice the padding,
        the pieces are not redone here: the caller solves the pieces of
        ``widen_boxes(ham, plan, core)`` and finishes again (as a study's engine does).
    """
    ham = _as_hamiltonian(V, 1.0, 1.0, "dirichlet", "lattice")
    edges, _, ef, T, cutoff = _kg_args(ham, fermi_energy, omega_edges, temperature, "auto",
                                       pair_cutoff)
    if len(pieces) != plan.n_pieces:
        raise InputError(f"{len(pieces)} pieces given; the plan has {plan.n_pieces}")
    blocks, info = finish_blocks(ham, plan, pieces)
    info["max_residual"] = _max_residual(ham, blocks)
    info["solve_seconds"] = float(sum(p.stats.get("seconds", 0.0) for p in pieces))
    return _kg_from_blocks(ham, blocks, info, edges, ef, T, cutoff)


def _check_fermi_inside(ham: Hamiltonian, ef: float, blocks: list[_Block], info: dict) -> None:
    """InputError unless some eigenvalue of H lies below E_F and some above."""
    # Eigenvalues below E_F = those below the window plus the window states below E_F.
    n_below_ef = info["count_lo"] + sum(int(np.count_nonzero(b.energies < ef)) for b in blocks)
    n_above_ef = (ham.size - info["count_hi"]) + sum(
        int(np.count_nonzero(b.energies > ef)) for b in blocks)
    if n_below_ef == 0 or n_above_ef == 0:
        glo, ghi = _gershgorin(ham)
        where = "below the lowest" if n_below_ef == 0 else "above the highest"
        raise InputError(
            f"fermi_energy={ef:g} lies {where} eigenvalue of H (spectrum within "
            f"[{glo:.4g}, {ghi:.4g}]); choose E_F inside the spectrum, e.g. in the band tail")


def _range_pairs(acc: _Accumulator, blocks: list[_Block], coords: np.ndarray) -> None:
    """The KG pair sum over blocks on flat index ranges (whole sample or 1D segments)."""
    for bi, A in enumerate(blocks):
        for B in blocks[bi:]:
            s, t = max(A.start, B.start), min(A.stop, B.stop)
            if s >= t:
                if B.start >= A.stop:
                    break  # 1D segments are ordered: no later block overlaps A
                continue
            va = A.vectors[s - A.start:t - A.start]
            vb = B.vectors[s - B.start:t - B.start]
            acc.add(A.energies, va, A.centroids, B.energies, vb, B.centroids,
                    coords[:, s:t], same=B is A)


#: Solver diagnostics copied from ``info`` into the attributes of the KG dataset.
_INFO_ATTRS = ("segment", "padding", "n_segments", "xi_estimate", "factorisations",
               "sparse_factorisation",
               "count_seconds", "n_boxes", "box_core", "box_padding", "box_max_padding",
               "box_retries", "box_max_residual", "box_seconds_max", "pair_cutoff",
               "box_pairs", "box_unconverged", "box_duplicates", "box_recovered",
               "box_widened_from", "box_restarted")


def _kg_dataset(ham: Hamiltonian, edges: np.ndarray, acc: _Accumulator, n_pairs: np.ndarray,
                n_states: int, info: dict, ef: float, T: float, window: tuple[float, float]
                ) -> xr.Dataset:
    """The KG result as a Dataset: bins on ``omega`` with their bounds, units in attrs."""
    u, grid = ham.units, ham.grid
    lo, hi = window
    factor = u.sigma_factor(grid.ndim)
    sigma_attrs = {"units": u.sigma_unit(grid.ndim)}
    centres = np.sqrt(edges[:-1] * edges[1:])
    ds = xr.Dataset(
        {
            "sigma": ("omega", acc.sums * factor, {
                **sigma_attrs,
                "long_name": "exact bin-averaged Re sigma (Kubo-Greenwood, eqs. 4-5)"}),
            "n_pairs": ("omega", n_pairs, {
                "long_name": "pairs (i, j) of window states with omega_ij in the bin and "
                             "f_i > f_j (T = 0: E_i <= E_F <= E_j)"}),
            "n_states": ((), n_states, {"long_name": "eigenstates in the energy window"}),
            "dos": ((), n_states / (grid.volume * (hi - lo)), {
                "units": f"1/({u.energy_unit} * {u.length_unit}^{grid.ndim})",
                "long_name": "exact DOS per unit volume and spin, averaged over the window"}),
        },
        coords={
            "omega": ("omega", centres, {"units": u.omega_unit,
                                         "long_name": "geometric bin centre"}),
            "omega_lower": ("omega", edges[:-1], {"units": u.omega_unit}),
            "omega_upper": ("omega", edges[1:], {"units": u.omega_unit}),
        },
        attrs={
            "quantity": "exact Kubo-Greenwood conductivity (eqs. 4-5), spin factor 2",
            "units_system": u.name,
            "method": info["method"],
            "fermi_energy": ef,
            "temperature": T,
            "window": np.array([lo, hi]),
            "window_units": u.energy_unit,
            "matrix_elements": "velocity form <j|[H,x]|i>/(E_j-E_i)"
            if grid.periodic and info["method"] != "boxes" else "position form <j|x - c_ij|i>",
            "boundary": grid.boundary,
            "shape": np.array(grid.shape),
            "spacing": np.array(grid.spacing),
            "max_residual": info["max_residual"],
            "solve_seconds": info["solve_seconds"],
            "pairs_seconds": info["pairs_seconds"],
        },
    )
    if info["method"] == "boxes":
        ds["sigma_beyond_padding"] = ("omega", acc.flagged * factor, {
            **sigma_attrs,
            "long_name": "part of sigma from pairs whose centroids are farther apart than the "
                         "box padding (matrix elements partial: the bin is resolved when "
                         f"this is below {RESOLVED_FAR:g} of sigma)"})
        ds["n_pairs_left_out"] = ("omega", n_pairs - acc.counted, {
            "long_name": "pairs of n_pairs not in sigma: boxes without a common cell or "
                         "centroids beyond pair_cutoff (at T > 0 also pairs whose "
                         "f_i - f_j underflows)"})
    for key in _INFO_ATTRS:
        if key in info:
            ds.attrs[key] = info[key]
    return ds


# ============================================================================ helpers
def exact_eigenstates(
    ham_or_V: ArrayLike | Sample | Hamiltonian,
    emin: float,
    emax: float,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
    *,
    method: ExactMethod = "auto",
    segment: int | None = None,
    padding: int | None = None,
    progress: bool = False,
    core: int | None = None,
    box_tol: float = BOX_TOL,
) -> tuple[np.ndarray, np.ndarray]:
    """All eigenpairs of H with energies in ``[emin, emax]``, checked complete by inertia.

    Parameters
    ----------
    ham_or_V
        A :class:`~mottscape.sample.Sample`, a :class:`~mottscape.hamiltonian.Hamiltonian`
        or a potential map (then built with ``spacing``, ``mass``, ``boundary``, ``units``).
    emin, emax
        The energy window.
    method, segment, padding, progress, core, box_tol
        As for :func:`kubo_greenwood`.

    Returns
    -------
    energies : numpy.ndarray
        Sorted, shape ``(m,)``.
    vectors : numpy.ndarray
        Shape ``(n_cells, m)`` on the row-major flattened grid, ``sum |psi|^2 = 1`` per column
        (dense even for the segmented method: n_cells * m * 8 bytes).
    """
    ham = _as_hamiltonian(ham_or_V, spacing, mass, boundary, units)
    lo = real(emin, "emin")
    hi = real(emax, "emax")
    if hi <= lo:
        raise InputError(f"emax={hi:g} must be > emin={lo:g}")
    if method not in METHODS:
        raise InputError(f"method={method!r} is not known; use one of {METHODS}")
    blocks, _ = _window_blocks(ham, lo, hi, method, segment, padding, progress, core=core,
                               box_tol=box_tol)
    m = sum(b.energies.size for b in blocks)
    E = np.zeros(m)
    vec = np.zeros((ham.size, m))
    j = 0
    for b in blocks:
        k = b.energies.size
        E[j:j + k] = b.energies
        vec[b.rows(), j:j + k] = b.vectors
        j += k
    order = np.argsort(E, kind="stable")
    return E[order], vec[:, order]


def lowest_eigenvalues(
    V: ArrayLike | Sample | Hamiltonian,
    k: int,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
) -> np.ndarray:
    """The ``k`` lowest exact eigenvalues of H (eq. 3), sorted.

    1D Dirichlet chains use bisection on the tridiagonal matrix, samples up to
    ``DENSE_MAX`` cells dense ``eigvalsh``, larger ones shift-invert Lanczos with the shift
    below the Gershgorin bound (so the ``k`` nearest eigenvalues are the ``k`` lowest).
    """
    ham = _as_hamiltonian(V, spacing, mass, boundary, units)
    try:
        k = int(k)
    except (TypeError, ValueError):
        raise InputError(f"k must be a positive integer, got {k!r}") from None
    if not 1 <= k <= ham.size:
        raise InputError(f"k={k} must be between 1 and the number of cells ({ham.size})")
    if ham.grid.ndim == 1 and not ham.grid.periodic and ham.size > 1:
        d, e = _tridiagonal(ham)
        return sla.eigh_tridiagonal(d, e, eigvals_only=True, select="i",
                                    select_range=(0, k - 1))
    with _blas_single_thread():
        if ham.size <= DENSE_MAX or k >= ham.size - 1:
            return sla.eigvalsh(ham.matrix().toarray(), subset_by_index=(0, k - 1))
        glo, _ = _gershgorin(ham)
        sigma = glo - 1e-3 * max(1.0, abs(glo))
        A = ham.matrix("csc")
        with ShiftedFactor(A, sigma) as factor:  # PARDISO where installed (eigsh: SuperLU)
            w = spla.eigsh(A, k=k, sigma=sigma, which="LM", OPinv=factor.operator(),
                           return_eigenvectors=False)
    return np.sort(w)


def exact_dos(
    V: ArrayLike | Sample | Hamiltonian,
    energy_edges: ArrayLike,
    spacing: SpacingLike = 1.0,
    mass: ArrayLike = 1.0,
    boundary: Boundary = "dirichlet",
    units: str | UnitSystem = "lattice",
) -> xr.Dataset:
    """Exact IDOS and bin-averaged DOS per unit volume and spin from eigenvalue counts.

    Parameters
    ----------
    V
        A :class:`~mottscape.sample.Sample`, a potential map or a
        :class:`~mottscape.hamiltonian.Hamiltonian`.
    energy_edges
        Strictly increasing energies.

    Returns
    -------
    xarray.Dataset
        ``idos`` on ``energy_edge`` (eigenvalues below each edge per unit volume), ``count``
        and ``dos`` (``count / (|Omega| dE)``) on ``energy`` (bin centres).

    Notes
    -----
    Uses only inertia counts (Sturm sequences in 1D, unpivoted sparse LDL^T otherwise), so no
    eigenvector is computed: comparable with the landscape-law IDOS and DOS.
    """
    ham = _as_hamiltonian(V, spacing, mass, boundary, units)
    try:
        edges = np.asarray(energy_edges, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"energy_edges must be numbers, got {energy_edges!r}") from None
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) \
            or np.any(np.diff(edges) <= 0):
        raise InputError("energy_edges must be a finite, strictly increasing 1D array of at "
                         "least 2 energies")
    if ham.grid.ndim == 1 and not ham.grid.periodic and edges.size > 4:
        counts = _sturm_counts(*_tridiagonal(ham), edges)
    else:
        counts = count_eigenvalues_below(ham, edges)
    vol = ham.grid.volume
    u = ham.units
    nb = np.diff(counts)
    d = ham.grid.ndim
    return xr.Dataset(
        {
            "idos": ("energy_edge", counts / vol,
                     {"units": f"1/{u.length_unit}^{d}", "long_name": "exact IDOS per volume"}),
            "count": ("energy", nb, {"units": "1", "long_name": "eigenvalues in the bin"}),
            "dos": ("energy", nb / (vol * np.diff(edges)),
                    {"units": f"1/({u.energy_unit} * {u.length_unit}^{d})",
                     "long_name": "exact DOS per unit volume and spin (bin average)"}),
        },
        coords={"energy_edge": ("energy_edge", edges,
                                {"units": u.energy_unit, "long_name": "energy bin edge"}),
                "energy": ("energy", 0.5 * (edges[:-1] + edges[1:]),
                           {"units": u.energy_unit, "long_name": "energy bin centre"})},
        attrs={"units_system": u.name, "energy_units": u.energy_unit},
    )


