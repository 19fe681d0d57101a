"""Shared pieces of the exact reference: constants, state blocks, argument checks, helpers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import scipy.sparse as sp

from ..errors import InputError
from ..grid import Grid
from ..hamiltonian import Hamiltonian, build_hamiltonian
from ..sample import Sample

#: A method of the exact reference.
ExactMethod = Literal["auto", "dense", "tridiagonal", "segments", "shift-invert", "boxes"]
METHODS: tuple[ExactMethod, ...] = get_args(ExactMethod)

#: ``method="auto"`` diagonalises densely up to this many cells (2D and 3D).
DENSE_MAX = 3000
#: ``method="auto"`` diagonalises a whole 1D chain up to this many cells, then cuts segments.
WHOLE_CHAIN_MAX = 4000
#: Half-width of the window beyond hbar*omega_max, in units of kT (weight < e^-40 outside).
KT_WINDOW = 40.0
#: Default padding of a 1D segment, in localization lengths (Thouless formula at the window top).
PADDING_XI = 30.0
#: Target number of states per shift in spectrum slicing.
SLICE_STATES = 60


# ============================================================================ small helpers
@dataclass
class _Block:
    """Eigenstates living on the flat index range ``[start, stop)`` or on the rows ``index``."""

    start: int
    stop: int
    energies: np.ndarray  # (m,)
    vectors: np.ndarray  # (stop - start, m), normalised on the whole grid
    centroids: np.ndarray  # (m, d)
    #: Global flat indices of the rows when they are not the range ``[start, stop)`` (boxes).
    index: np.ndarray | None = None

    def rows(self) -> np.ndarray:
        """Global flat index of every row of ``vectors``."""
        return np.arange(self.start, self.stop) if self.index is None else self.index


def _as_hamiltonian(V, spacing, mass, boundary, units) -> Hamiltonian:
    """H of eq. (3) from a Sample (built once, cached there), a Hamiltonian or a potential."""
    if isinstance(V, Sample):
        return V.hamiltonian
    if isinstance(V, Hamiltonian):
        return V
    return build_hamiltonian(V, spacing=spacing, mass=mass, boundary=boundary, units=units)


def _flat_coordinates(grid: Grid) -> np.ndarray:
    """Cell-centre coordinates of the row-major flattened grid, shape ``(d, n_cells)``."""
    mesh = np.meshgrid(*[grid.coordinates(a) for a in range(grid.ndim)], indexing="ij")
    return np.stack([m.ravel() for m in mesh])


def _tridiagonal(ham: Hamiltonian) -> tuple[np.ndarray, np.ndarray]:
    n = ham.size
    off = -np.broadcast_to(np.asarray(ham.couplings[0], dtype=float), (n - 1,))
    return np.asarray(ham.diagonal, dtype=float).ravel(), np.ascontiguousarray(off)


def _gershgorin(ham: Hamiltonian) -> tuple[float, float]:
    A = ham.matrix("csr")
    offsum = np.asarray(abs(A).sum(axis=1)).ravel() - np.abs(A.diagonal())
    return float(np.min(A.diagonal() - offsum)), float(np.max(A.diagonal() + offsum))


#: threadpoolctl's view of the loaded BLAS libraries, made once per process (None until the
#: first :func:`_blas_single_thread`).
_BLAS_CONTROLLER = None


def _blas_controller():
    """A :class:`threadpoolctl.ThreadpoolController`, made once and cached.

    Making one scans the loaded libraries (~1 ms, and ``threadpool_limits`` does it on every
    call), while the pair model enters the block once per box. ``scipy.linalg`` is imported
    first so that scipy's own OpenBLAS is loaded when the controller looks.
    """
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS before the scan)
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER


@contextlib.contextmanager
def _blas_single_thread():
    """Run BLAS single-threaded inside the block (numpy's and scipy's libraries).

    ARPACK's reverse communication issues many small BLAS-2 calls; with the OpenBLAS
    thread pool on the 2-core development machine they ran 2-3x slower than on one thread,
    and dense ``eigh`` of a few thousand rows 3-4x slower. The thread counts are restored
    after the block (threadpoolctl, through the cached :func:`_blas_controller`).
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def box_submatrix(A: sp.csr_array, idx: np.ndarray) -> sp.csr_array:
    """``A[idx][:, idx]`` (CSR) at the cost of the box's rows.

    Hand-written because scipy's column selection allocates and scans an array of all of
    A's columns per call: over the boxes of a sample that is quadratic in its size (2.4 s of
    the pair model's 40 s at 1024^2). Here the rows' columns are looked up among the sorted
    ``idx``. Same entries in the same order as scipy's (each row keeps A's column order,
    renumbered), so the factorisations downstream are bit for bit those of before.
    """
    rows = A[idx]
    order = np.argsort(idx, kind="stable")
    ranked = idx[order]
    at = np.minimum(np.searchsorted(ranked, rows.indices), ranked.size - 1)
    hit = ranked[at] == rows.indices
    row = np.repeat(np.arange(idx.size), np.diff(rows.indptr))
    counts = np.bincount(row[hit], minlength=idx.size)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(rows.indptr.dtype)
    return sp.csr_array((rows.data[hit], order[at[hit]].astype(rows.indices.dtype), indptr),
                        shape=(idx.size, idx.size))


def cut_faces(grid: Grid, axes: list[np.ndarray]) -> list[tuple[int, bool]]:
    """The faces of a box that cut the sample, as (axis, is the low side).

    ``axes``: the box's cell indices per axis (unwrapped: they may leave ``[0, n)`` on a
    periodic sample). Faces on a Dirichlet face of the sample and the ends of a whole
    periodic axis do not cut it.
    """
    faces = []
    for a, x in enumerate(axes):
        n = grid.shape[a]
        wrapped = grid.periodic and x.size < n
        if wrapped or x[0] > 0:
            faces.append((a, True))
        if wrapped or x[-1] < n - 1:
            faces.append((a, False))
    return faces


def face_layers(grid: Grid, axes: list[np.ndarray], v: np.ndarray, min_cells: int = 2
                ) -> Iterator[tuple[int, bool, np.ndarray, np.ndarray]]:
    """The box states on the two outer cell layers of each face that cuts the sample.

    Where a box's Dirichlet face cuts a state, the state's decay (or oscillation) across
    the face is read on these two layers: by the boxes' growth (``_boxes._face_growth``) and
    by the pair model's energy errors (``basin_states._truncation_error``).

    Parameters
    ----------
    grid
        The sample grid.
    axes
        The box's cell indices per axis (:func:`cut_faces`).
    v
        Box states, shape ``(cells of the box, states)``, cells in row-major order of ``axes``.
    min_cells
        Faces of axes with fewer cells across the box are skipped.

    Yields
    ------
    axis, low, outer, inner
        The face (axis, is the low side) and the states on its outer layer and on the next
        layer in, each of shape ``(cells on the face, states)``.
    """
    shape = tuple(len(x) for x in axes)
    vv = v.reshape(*shape, v.shape[1])
    for a, low in cut_faces(grid, axes):
        if shape[a] < min_cells:
            continue
        outer = vv.take(0 if low else shape[a] - 1, axis=a).reshape(-1, v.shape[1])
        inner = vv.take(1 if low else shape[a] - 2, axis=a).reshape(-1, v.shape[1])
        yield a, low, outer, inner


def _fermi(E: np.ndarray, fermi_energy: float, temperature: float) -> np.ndarray:
    """Fermi function; at T = 0 a step with f(E_F) = 1/2 (the T -> 0 limit)."""
    E = np.asarray(E, dtype=float)
    if temperature == 0.0:
        return np.where(E < fermi_energy, 1.0, np.where(E > fermi_energy, 0.0, 0.5))
    from scipy.special import expit

    return expit(-(E - fermi_energy) / temperature)


def _centroids(vectors: np.ndarray, coords: np.ndarray) -> np.ndarray:
    w = vectors * vectors
    return (coords @ w / np.maximum(w.sum(axis=0), 1e-300)).T


def _check_edges(omega_edges) -> np.ndarray:
    try:
        edges = np.asarray(omega_edges, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"omega_edges must be an array of numbers, got {omega_edges!r}") from None
    if edges.ndim != 1 or edges.size < 2:
        raise InputError(f"omega_edges must be a 1D array of at least 2 bin edges, got shape "
                         f"{edges.shape}")
    if not np.all(np.isfinite(edges)):
        raise InputError("omega_edges contains NaN or infinite values")
    if edges[0] <= 0:
        raise InputError(f"omega_edges must be > 0 (first edge is {edges[0]:g}); the bins are "
                         "angular frequencies of absorption")
    if np.any(np.diff(edges) <= 0):
        i = int(np.nonzero(np.diff(edges) <= 0)[0][0])
        raise InputError(f"omega_edges must be strictly increasing (edge {i + 1} = "
                         f"{edges[i + 1]:g} follows {edges[i]:g})")
    return edges


