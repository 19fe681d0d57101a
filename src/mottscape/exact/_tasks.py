"""The box and segment methods as independent tasks: a plan, its pieces, and their merge.

An engine that schedules work (:mod:`mottscape.ensemble`) runs the exact reference of one
sample in three steps, and :func:`~mottscape.exact.kubo_greenwood` runs the very same steps in
one process, so both give the same bits:

1. :func:`make_plan`: the energy window, the exact inertia counts of the full H at its ends
   and the geometry (box core and padding; the 1D padding from the Thouless formula; the
   number of first shifts of the whole-sample shift-invert slicing);
2. :func:`solve_piece`: piece ``k`` of the plan, a pure function of the Hamiltonian, the plan
   and ``k``: one box (:func:`~mottscape.exact._boxes.solve_box`), a run of consecutive
   1D segments (each segment alone is too small a task), or one shift of the slicing
   (:func:`~mottscape.exact._windows.solve_shift`: one factorisation of the whole H);
3. :func:`finish_blocks`: the states of every piece, a state kept by two boxes dropped (the
   slicing: shifts added where the first ones left a gap, states found twice merged),
   checked against the counts (the caller then sums the pairs of eq. 4).

Plans and pieces go to and from :class:`xarray.Dataset` (:meth:`ExactPlan.to_dataset`,
:func:`piece_to_dataset`), the records of a resumable store.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from .._checks import real
from ..errors import ConvergenceError, InputError
from ..grid import check_memory
from ..hamiltonian import Hamiltonian
from . import _boxes
from ._common import (
    SLICE_STATES,
    _blas_single_thread,
    _Block,
    _centroids,
    _flat_coordinates,
)
from ._counts import count_eigenvalues_below, superlu_order
from ._segments import _default_padding, _solve_segments
from ._windows import Slice, _solve_dense, complete_slices, first_shifts, solve_shift

#: 1D segments are grouped into pieces of at least this many core cells.
PIECE_CELLS = 1 << 16


@dataclass(frozen=True)
class ExactPlan:
    """What every piece of one sample's exact reference needs (see the module notes).

    Attributes
    ----------
    method
        ``"boxes"``, ``"segments"`` or ``"shift-invert"`` (whole-sample slicing).
    lo, hi
        The energy window.
    count_lo, count_hi
        Eigenvalues of the full H below ``lo`` and ``hi`` (exact inertia counts).
    padding, core
        Padding and core (box edge, or 1D segment length) in cells.
    tol
        Residual tolerance of the boxes (hopping energies).
    per_piece
        Segments per piece (1 for boxes and shifts).
    n_pieces
        Number of pieces.
    xi_estimate
        1D: the localization length that set the padding (NaN for boxes).
    scale
        Boxes: the largest hopping energy of H (the unit of ``tol``), read once here
        rather than per box (with a position-dependent mass it is a pass over the
        couplings); NaN in plans written before it was recorded (then read per box).
    """

    method: str
    lo: float
    hi: float
    count_lo: int
    count_hi: int
    padding: int
    core: int
    tol: float
    per_piece: int
    n_pieces: int
    xi_estimate: float = math.nan
    scale: float = math.nan
    profile_energies: tuple[float, ...] = ()
    profile_counts: tuple[int, ...] = ()

    @property
    def expected(self) -> int:
        """Eigenstates of H in the window."""
        return self.count_hi - self.count_lo

    @property
    def profile(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The slicing's inertia-count profile ``(energies, counts)``, or None."""
        if not self.profile_energies:
            return None
        return np.array(self.profile_energies), np.array(self.profile_counts)

    def to_dataset(self) -> xr.Dataset:
        """The plan as variables (checksummed by a store, unlike attributes)."""
        data: dict[str, tuple[Any, Any]] = {
            f.name: ((), getattr(self, f.name)) for f in dataclasses.fields(self)}
        data["profile_energies"] = ("profile", np.array(self.profile_energies, dtype=float))
        data["profile_counts"] = ("profile", np.array(self.profile_counts, dtype=np.int64))
        return xr.Dataset(data)

    @classmethod
    def from_dataset(cls, ds: xr.Dataset) -> ExactPlan:
        """The plan written by :meth:`to_dataset` (a record without a profile has none)."""
        kinds = {"method": str, "lo": float, "hi": float, "tol": float, "xi_estimate": float,
                 "scale": float}
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in ds:
                continue
            x = ds[f.name].values
            if f.name == "profile_energies":
                values[f.name] = tuple(float(e) for e in x)
            elif f.name == "profile_counts":
                values[f.name] = tuple(int(c) for c in x)
            else:
                values[f.name] = kinds.get(f.name, int)(x.item())
        return cls(**values)


@dataclass
class Piece:
    """The kept states of one piece and its solver diagnostics."""

    blocks: list[_Block]
    stats: dict[str, float] = field(default_factory=dict)
    #: Boxes: converged states just outside the core (:attr:`~._boxes.BoxResult.spares`),
    #: kept by :func:`finish_blocks` only where no box owns them.
    spares: list[_Block] = field(default_factory=list)


def make_plan(ham: Hamiltonian, lo: float, hi: float, method: str, segment, padding, core,
              box_tol: float) -> ExactPlan:
    """Count the window states and fix the geometry of the boxes or segments.

    ``method`` is ``"boxes"`` (2D/3D, or a periodic chain), ``"segments"`` (1D Dirichlet) or
    ``"shift-invert"`` (one piece per first shift; ``padding`` and ``core`` unused);
    ``segment``, ``padding``, ``core`` and ``box_tol`` as for
    :func:`~mottscape.exact.kubo_greenwood` (None for the defaults).
    """
    if method == "shift-invert":
        return _slicing_plan(ham, lo, hi)
    if method == "boxes":
        padding, core, box_tol = check_box_args(ham, padding, core, box_tol)
    counts = count_eigenvalues_below(ham, [lo, hi])
    expected = int(counts[1] - counts[0])
    xi = scale = math.nan
    if method == "boxes":
        n_pieces, per_piece = len(_boxes.make_boxes(ham.grid, core, padding)), 1
        scale = _boxes._hopping_scale(ham)
    else:
        if padding is None:
            padding, xi = _default_padding(ham, lo, hi, expected)
        padding = int(padding)
        core = max(2 * padding, 64) if segment is None else int(segment)
        if padding < 0 or core < 1:
            raise InputError(f"segment={core} must be >= 1 and padding={padding} >= 0 cells")
        per_piece = max(1, PIECE_CELLS // core)
        n_pieces = math.ceil(math.ceil(ham.size / core) / per_piece)
    return ExactPlan(method, float(lo), float(hi), int(counts[0]), int(counts[1]),
                     int(padding), int(core), float(box_tol), per_piece, n_pieces, xi, scale)


def widen_boxes(ham: Hamiltonian, plan: ExactPlan, core: int | None) -> ExactPlan:
    """The boxes' plan at twice the padding, with the same window and inertia counts.

    For a boxes count that failed (:func:`finish_blocks`): the retry of
    :func:`~mottscape.exact.kubo_greenwood` and of a study's pieces. ``core`` is the core the
    caller asked for (None: the default, three times the new padding).

    Raises
    ------
    InputError
        If the wider boxes do not fit the sample (periodic), or the plan is not boxes.
    """
    if plan.method != "boxes":
        raise InputError(f"only the boxes are solved again wider, not {plan.method!r}")
    padding, core, _ = check_box_args(ham, 2 * plan.padding, core, plan.tol)
    return dataclasses.replace(plan, padding=padding, core=core,
                               n_pieces=len(_boxes.make_boxes(ham.grid, core, padding)))


def solve_piece(ham: Hamiltonian, plan: ExactPlan, k: int, matrix=None) -> Piece:
    """Piece ``k`` of the plan: one box, or ``plan.per_piece`` consecutive 1D segments."""
    if not 0 <= k < plan.n_pieces:
        raise InputError(f"piece {k} is not one of the {plan.n_pieces} pieces of the plan")
    t0 = time.perf_counter()
    if plan.method == "shift-invert":
        return _slice_piece(ham, plan, k)
    if plan.method == "segments":
        nseg = math.ceil(ham.size / plan.core)
        which = range(k * plan.per_piece, min(nseg, (k + 1) * plan.per_piece))
        blocks = _solve_segments(ham, plan.lo, plan.hi, plan.core, plan.padding,
                                 segments=which)
        return Piece(blocks, {"seconds": time.perf_counter() - t0})
    box = _boxes.make_boxes(ham.grid, plan.core, plan.padding)[k]
    with _blas_single_thread():
        r = _boxes.solve_box(ham, box, plan.lo, plan.hi, density=plan.expected / ham.size,
                             tol=plan.tol, matrix=matrix, scale=_plan_scale(ham, plan))
    stats = {"n_box_states": r.n_box_states, "residual": r.residual, "retries": r.retries,
             "max_padding": r.box.max_padding, "factorisations": r.factorisations,
             "seconds": r.seconds}
    return Piece([] if r.block is None else [r.block], stats,
                 [] if r.spares is None else [r.spares])


def finish_blocks(ham: Hamiltonian, plan: ExactPlan, pieces: list[Piece]
                  ) -> tuple[list[_Block], dict]:
    """The states of all pieces in order, checked against the inertia counts; and diagnostics.

    Boxes: a state kept by two boxes is kept once, and a box's spare (a converged state just
    outside its core) only where no box owns that state (``info["box_recovered"]`` counts
    those).

    Raises
    ------
    ConvergenceError
        If the states kept differ in number from the count of the full H (boxes), or still
        differ after one retry with a wider padding (segments).
    """
    blocks = [b for p in pieces for b in p.blocks]
    info: dict = {"method": plan.method, "expected_states": plan.expected,
                  "count_lo": plan.count_lo, "count_hi": plan.count_hi}
    if plan.method == "segments":
        return _finish_segments(ham, plan, blocks, info)
    if plan.method == "shift-invert":
        return _finish_slices(ham, plan, pieces, info)
    scale = _plan_scale(ham, plan)
    spares = [b for p in pieces for b in p.spares]
    n_owned = len(blocks)
    blocks, dropped = _boxes.merge_duplicates(blocks + spares, ham.grid, scale, plan.tol)
    n_dup = int(dropped[:n_owned].sum())
    recovered = sum(b.energies.size for b in spares) - int(dropped[n_owned:].sum())
    stats = [p.stats for p in pieces]
    bad = [s for s in stats if s["residual"] > plan.tol * scale]
    if bad:
        worst = max(s["residual"] for s in bad)
        warnings.warn(
            f"{len(bad)} of {len(pieces)} boxes keep states whose residual against the full H "
            f"exceeds box_tol={plan.tol:g} (largest {worst / scale:.2g} hopping energies; "
            "their padding could not grow further): their energies and matrix elements are "
            "accurate only to about that residual; use a larger sample, "
            "boundary='dirichlet', or method='shift-invert'", RuntimeWarning, stacklevel=3)
    info.update({
        "n_boxes": len(pieces), "box_core": plan.core, "box_padding": plan.padding,
        "box_max_padding": int(max(s["max_padding"] for s in stats)),
        "box_retries": int(sum(s["retries"] for s in stats)),
        "box_max_residual": float(max(s["residual"] for s in stats)),
        "box_seconds_max": float(max(s["seconds"] for s in stats)),
        "factorisations": int(sum(s["factorisations"] for s in stats)),
        "box_unconverged": len(bad), "box_duplicates": n_dup, "box_recovered": recovered})
    found = sum(b.energies.size for b in blocks)
    if found != plan.expected:
        raise ConvergenceError(
            f"boxes kept {found} states in [{plan.lo:g}, {plan.hi:g}] but the inertia count "
            f"of the full H is {plan.expected} (largest residual "
            f"{info['box_max_residual']:.2g}); a state was lost or kept twice at a core face: "
            f"pass a larger padding= (now {plan.padding} cells; exact_padding in a study) or a "
            "smaller box_tol=, or "
            "method='shift-invert'")
    return blocks, info


def _plan_scale(ham: Hamiltonian, plan: ExactPlan) -> float:
    """The plan's hopping scale, read from H for a plan recorded without it."""
    return plan.scale if math.isfinite(plan.scale) else _boxes._hopping_scale(ham)


def _whole_dense(ham: Hamiltonian, expected: int) -> bool:
    """Whether the slicing's window holds (nearly) the whole spectrum: one dense solve."""
    return expected + 10 >= ham.size - 1


#: The whole-sample slicing counts the eigenvalues at up to this many - 1 interior energies
#: of the window (one factorisation of H each) to place its first shifts.
PROFILE_INTERVALS = 4


def _slicing_plan(ham: Hamiltonian, lo: float, hi: float) -> ExactPlan:
    """The plan of the whole-sample slicing.

    Counts at the window's ends, and with three shifts or more a profile of counts inside it
    that places the shifts (:func:`~mottscape.exact._windows.first_shifts`).
    """
    counts = count_eigenvalues_below(ham, [lo, hi])
    expected = int(counts[1] - counts[0])
    whole_dense = _whole_dense(ham, expected)
    if not whole_dense:
        check_vectors_memory(
            ham, expected, "the whole-sample slicing (method='shift-invert')",
            "use method='boxes' (each state held on its box), narrow the window (a lower top "
            "frequency), or a smaller sample")
    n_pieces = 1 if whole_dense else len(first_shifts(lo, hi, expected))
    energies: tuple[float, ...] = ()
    profile: tuple[int, ...] = ()
    if n_pieces >= 3:
        m = min(PROFILE_INTERVALS, n_pieces)
        inner = lo + (hi - lo) * np.arange(1, m) / m
        energies = (float(lo), *(float(e) for e in inner), float(hi))
        profile = (int(counts[0]), *(int(c) for c in count_eigenvalues_below(ham, inner)),
                   int(counts[1]))
    return ExactPlan("shift-invert", float(lo), float(hi), int(counts[0]), int(counts[1]),
                     0, 0, 0.0, 1, n_pieces, profile_energies=energies, profile_counts=profile)


def check_vectors_memory(ham: Hamiltonian, expected: int, who: str, fix: str) -> None:
    """Refuse a slicing whose window eigenvectors cannot be held (:class:`InputError`).

    The pair sum needs every window state of the whole sample at once, and the process holds
    up to about twice their vectors (measured once: a 1024^2 2D sample with 2,710 window
    states in 46 slices was killed by the kernel at 24.3 GB after an hour on a 24 GiB
    machine, 26-30 slices done, whose states' vectors are 12.8-14.8 GB: 1.6-1.9 times),
    plus one slice's Lanczos basis (about 2 ``SLICE_STATES`` vectors). Checked after the
    inertia counts, before any slice is solved; the factorisations come on top.

    Parameters
    ----------
    ham : Hamiltonian
        The sample's H (its size sets the length of a vector).
    expected : int
        Window states, from the inertia counts.
    who, fix : str
        The computation refused and the remedy, for the message (the exact reference's
        slicing and the pair model's whole-sample box have different remedies).
    """
    vectors = 2 * expected + 2 * SLICE_STATES + 1
    check_memory(ham.size, 8 * vectors, f"the {expected:,} window eigenstates of {who} on a grid",
                 fix)


def _slice_piece(ham: Hamiltonian, plan: ExactPlan, k: int) -> Piece:
    """First shift ``k`` of the whole-sample slicing (or the one dense solve, or nothing)."""
    t0 = time.perf_counter()
    A = ham.matrix("csc")
    lo, hi = plan.lo, plan.hi
    if plan.expected == 0 or _whole_dense(ham, plan.expected):
        w, v = _solve_dense(A, lo, hi) if plan.expected \
            else (np.zeros(0), np.zeros((ham.size, 0)))
        s = Slice(w, v, (lo, hi), 0.0)
        nfact = 0
    else:
        sigma, half, density = first_shifts(lo, hi, plan.expected, profile=plan.profile)[k]
        s = solve_shift(A, sigma, half, density, (lo, hi), superlu_order(ham.grid, ham.size))
        nfact = 1
    blocks = [_Block(0, ham.size, s.energies, s.vectors,
                     _centroids(s.vectors, _flat_coordinates(ham.grid)))] if s.energies.size \
        else []
    return Piece(blocks, {"covered_lo": s.covered[0], "covered_hi": s.covered[1],
                          "density": s.density, "factorisations": nfact,
                          "seconds": time.perf_counter() - t0})


def _finish_slices(ham: Hamiltonian, plan: ExactPlan, pieces: list[Piece], info: dict
                   ) -> tuple[list[_Block], dict]:
    """The first shifts' states, the gaps they left closed here, merged and counted."""
    n = ham.size
    slices = []
    for p in pieces:  # a shift's piece holds one block of whole-grid vectors, or none
        b = p.blocks[0] if p.blocks else _Block(0, n, np.zeros(0), np.zeros((n, 0)),
                                                np.zeros((0, ham.grid.ndim)))
        slices.append(Slice(b.energies, b.vectors,
                            (float(p.stats["covered_lo"]), float(p.stats["covered_hi"])),
                            float(p.stats["density"])))
    w, v, extra = complete_slices(ham.matrix("csc"), plan.lo, plan.hi, plan.expected, slices,
                                  superlu_order(ham.grid, n))
    info["factorisations"] = int(sum(p.stats["factorisations"] for p in pieces)) + extra
    info["first_shifts"] = plan.n_pieces
    if w.size != plan.expected:
        raise ConvergenceError(
            f"method 'shift-invert' found {w.size} states in [{plan.lo:g}, {plan.hi:g}] but "
            f"the inertia count is {plan.expected}; try method='dense' on a small sample")
    blocks = [_Block(0, n, w, v, _centroids(v, _flat_coordinates(ham.grid)))] if w.size else []
    return blocks, info


def _finish_segments(ham: Hamiltonian, plan: ExactPlan, blocks: list[_Block], info: dict
                     ) -> tuple[list[_Block], dict]:
    """1D segments, redone once on the whole chain with a wider padding if the count fails."""
    padding, segment = plan.padding, plan.core
    if sum(b.energies.size for b in blocks) != plan.expected:
        # A state whose centroid sits on a core edge, or a padding too short: retry wider.
        padding = 2 * padding + 16
        segment = max(segment, 2 * padding)
        blocks = _solve_segments(ham, plan.lo, plan.hi, segment, padding)
        found = sum(b.energies.size for b in blocks)
        if found != plan.expected:
            raise ConvergenceError(
                f"segments found {found} states in the window but the Sturm count is "
                f"{plan.expected}; pass a larger padding= (cells), or method='tridiagonal'")
    info.update(segment=segment, padding=padding, n_segments=math.ceil(ham.size / segment))
    if math.isfinite(plan.xi_estimate):
        info["xi_estimate"] = plan.xi_estimate
    return blocks, info


# ---------------------------------------------------------------------- records
def piece_to_dataset(piece: Piece) -> xr.Dataset:
    """A piece as a Dataset (its blocks' states, rows and vectors flattened; diagnostics)."""
    bl = piece.blocks + piece.spares
    ndim = bl[0].centroids.shape[1] if bl else 0
    ranged = np.array([b.index is None for b in bl], dtype=bool)
    data: dict[str, Any] = {
        "spare": ("block", np.arange(len(bl)) >= len(piece.blocks)),
        "energies": ("state", np.concatenate([b.energies for b in bl]) if bl else np.zeros(0)),
        "centroids": (("state", "axis"), np.concatenate([b.centroids for b in bl])
                      if bl else np.zeros((0, ndim))),
        "n_states": ("block", np.array([b.energies.size for b in bl], dtype=np.int64)),
        "start": ("block", np.array([b.start for b in bl], dtype=np.int64)),
        "stop": ("block", np.array([b.stop for b in bl], dtype=np.int64)),
        "ranged": ("block", ranged),
        "n_rows": ("block", np.array([b.vectors.shape[0] for b in bl], dtype=np.int64)),
        "rows": ("row", np.concatenate([b.rows() for b in bl]).astype(np.int64)
                 if bl else np.zeros(0, np.int64)),
        "values": ("value", np.concatenate([b.vectors.ravel() for b in bl])
                   if bl else np.zeros(0)),
    }
    for key, value in piece.stats.items():
        data[f"stat_{key}"] = ((), value)
    return xr.Dataset(data)


def piece_from_dataset(ds: xr.Dataset) -> Piece:
    """The piece written by :func:`piece_to_dataset`."""
    blocks: list[_Block] = []
    spares: list[_Block] = []
    e, cen = ds["energies"].values, ds["centroids"].values
    # records written before the boxes returned spares have no "spare" variable
    spare = ds["spare"].values if "spare" in ds else np.zeros(ds.sizes.get("block", 0), bool)
    rows, values = ds["rows"].values, ds["values"].values
    i = r = v = 0
    for m, n, start, stop, ranged, is_spare in zip(
            ds["n_states"].values, ds["n_rows"].values, ds["start"].values, ds["stop"].values,
            ds["ranged"].values, spare, strict=True):
        m, n = int(m), int(n)
        vec = values[v:v + n * m].reshape(n, m)
        index = None if ranged else rows[r:r + n].copy()
        (spares if is_spare else blocks).append(
            _Block(int(start), int(stop), e[i:i + m].copy(), vec.copy(), cen[i:i + m].copy(),
                   index=index))
        i, r, v = i + m, r + n, v + n * m
    stats = {str(k)[5:]: ds[k].values.item() for k in ds.data_vars if str(k).startswith("stat_")}
    return Piece(blocks, stats, spares)


def check_box_args(ham: Hamiltonian, padding, core, box_tol) -> tuple[int, int, float]:
    """Checked ``padding``, ``core`` (default ``3 * padding``) and ``box_tol`` of the boxes."""
    padding = _boxes.BOX_PADDING if padding is None else check_cells(padding, "padding", 0)
    core = 3 * max(padding, 1) if core is None else check_cells(core, "core", 1)
    _boxes.check_box_geometry(ham.grid, core, padding)
    tol = real(box_tol, "box_tol")
    if not tol > 0.0:
        raise InputError(f"box_tol={box_tol!r} must be > 0 (a residual in hopping energies); "
                         f"the default is {_boxes.BOX_TOL:g}")
    return padding, core, tol


def check_cells(value, name: str, minimum: int) -> int:
    """``value`` as a whole number of cells >= ``minimum``, else InputError naming ``name``."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number of cells, got {value!r}") from None
    if n != value or n < minimum:
        raise InputError(f"{name}={value!r} must be a whole number of cells >= {minimum}")
    return n
