"""Sparse factorisations of ``H - sigma`` for the exact reference: MKL PARDISO or SuperLU.

Every sparse direct solve of the exact reference goes through :class:`ShiftedFactor`: the
shift-invert operator of spectrum slicing (one factorisation per shift, many solves) and the
Sylvester inertia counts (the negative pivots of an LDL^T). Two back-ends:

``"pardiso"``
    Intel MKL PARDISO (through :mod:`pypardiso`, installed with ``pip install
    mottscape[mkl]``): a supernodal LDL^T with Bunch-Kaufman pivoting and a METIS
    nested-dissection ordering, which reports the inertia of the factor. On a 48^3 Anderson
    H it factorised in 2.3 s on one thread, against 27-170 s for SuperLU
    (``docs/performance.md``): it is what makes the exact reference reach 3D samples in the
    Mott regime (issue 10).
``"superlu"``
    SciPy's SuperLU (always available): an LU with a symmetric minimum-degree ordering and
    diagonal pivots preferred for the solves; for the counts an unpivoted LU in symmetric
    mode on a given elimination order, whose diagonal signs are the inertia when SuperLU
    kept the row and column permutations equal.

The back-end is chosen by the environment variable ``MOTTSCAPE_SPARSE_FACTOR`` (``auto``, the
default: PARDISO when it loads, else SuperLU; ``pardiso``; ``superlu``), read at every
factorisation, so that the workers of an ensemble started from the same environment agree.
Both give the same eigenpairs to round-off. PARDISO runs on **one thread** (MKL's
thread-local setting): with two threads it is 1.5x faster at 48^3 but its bits depend on the
thread count, and the exact reference must give the same numbers on any number of workers.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..errors import InputError

FactorBackend = Literal["pardiso", "superlu"]

#: The environment variable that chooses the back-end.
ENV_VAR = "MOTTSCAPE_SPARSE_FACTOR"
_CHOICES = ("auto", "pardiso", "superlu")

#: Below this many rows SuperLU is used whatever the choice: PARDISO's call overhead (its
#: handle, the upper triangle in 1-based CSR) is larger than the factorisation there. The
#: pair model's boxes pass their own threshold (``box_solve.BOX_PARDISO_MIN_ROWS``).
PARDISO_MIN_ROWS = 2000

_PARDISO_LOADS: bool | None = None


def _import_pypardiso():
    """:mod:`pypardiso`, with MKL's numerical reproducibility on, unless the user set it.

    Without it PARDISO's results depended on the process's history at the 1e-14 level: the
    pair model's box solves of a 256^2 sample gave other bits after an exact reference had
    run in the same process (MKL's buffers then sit at other alignments), so an ensemble on
    one in-process worker differed from fresh worker processes (tests/test_runner.py).
    ``MKL_CBWR=AUTO`` (conditional numerical reproducibility, the CPU's own code path) made
    them history-independent; the sequential threading layer removes a second dependence,
    on whether MKL was loaded before or during the solves (PARDISO runs on one thread here
    anyway, :func:`_one_mkl_thread`). Both are read when MKL loads: set before the import.
    """
    os.environ.setdefault("MKL_CBWR", "AUTO")
    os.environ.setdefault("MKL_THREADING_LAYER", "SEQUENTIAL")
    import pypardiso

    return pypardiso


def _pardiso_loads() -> bool:
    """Whether :mod:`pypardiso` imports and finds MKL (checked once per process)."""
    global _PARDISO_LOADS
    if _PARDISO_LOADS is None:
        try:
            pypardiso = _import_pypardiso()
            pypardiso.PyPardisoSolver()
            _PARDISO_LOADS = True
        except (ImportError, OSError):
            _PARDISO_LOADS = False
    return _PARDISO_LOADS


def factor_backend(n_rows: int | None = None, min_rows: int | None = None) -> FactorBackend:
    """The sparse factorisation back-end the exact reference uses (see the module notes).

    Parameters
    ----------
    n_rows
        Order of the matrix to factorise; below ``min_rows`` SuperLU is used.
    min_rows
        The smallest order factorised by PARDISO (default :data:`PARDISO_MIN_ROWS`).

    Returns
    -------
    str
        ``"pardiso"`` or ``"superlu"``.

    Raises
    ------
    InputError
        ``MOTTSCAPE_SPARSE_FACTOR`` is not one of ``auto``, ``pardiso``, ``superlu``, or asks
        for ``pardiso`` where it does not load.
    """
    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise InputError(f"{ENV_VAR}={choice!r} is not a sparse factorisation back-end; "
                         f"use one of {', '.join(_CHOICES)} (or unset it)")
    smallest = PARDISO_MIN_ROWS if min_rows is None else min_rows
    if choice == "superlu" or (n_rows is not None and n_rows < smallest):
        return "superlu"
    if _pardiso_loads():
        return "pardiso"
    if choice == "pardiso":
        raise InputError(f"{ENV_VAR}=pardiso but MKL PARDISO does not load here; install it "
                         "with `pip install mottscape[mkl]` (x86-64 only) or unset the variable")
    return "superlu"


class _PardisoPool(threading.local):
    """Idle PARDISO handles of this thread.

    Making a handle searches the installation for MKL's library (~50 ms); a box-by-box
    solve factorises hundreds of matrices, so a thread keeps its released handles. A handle
    in use is never shared: two factors alive at once in one thread take two handles.
    """

    def __init__(self) -> None:
        self.idle: list = []

    def take(self):
        if self.idle:
            return self.idle.pop()
        return _import_pypardiso().PyPardisoSolver(mtype=-2)  # real symmetric indefinite

    def give(self, solver) -> None:
        self.idle.append(solver)


_POOL = _PardisoPool()


class ShiftedFactor:
    """A sparse factorisation of ``A - shift`` (A real symmetric), for solves and inertia.

    Parameters
    ----------
    A
        The symmetric matrix (any scipy sparse format).
    shift
        The shift sigma.
    purpose
        ``"solve"`` (shift-invert: SuperLU with diagonal pivots preferred) or ``"inertia"``
        (SuperLU without off-diagonal pivoting). PARDISO makes the same LDL^T for both.
    order
        Elimination order of the rows and columns for SuperLU (for the inertia a congruence;
        e.g. :func:`~mottscape.exact._counts.nested_dissection` of the grid); None lets
        SuperLU choose (minimum degree). PARDISO orders by itself.
    pardiso_min_rows
        The smallest order factorised by PARDISO (default :data:`PARDISO_MIN_ROWS`; see
        :func:`factor_backend`).

    Attributes
    ----------
    backend : str
        ``"pardiso"`` or ``"superlu"``.
    negative : int or None
        Number of negative eigenvalues of ``A - shift`` (Sylvester's law of inertia), or None
        where the factorisation does not give it reliably (SuperLU pivoted off the diagonal
        or met an exactly singular pivot; PARDISO perturbed a tiny pivot): move the shift.
    """

    def __init__(self, A, shift: float, purpose: Literal["solve", "inertia"] = "solve",
                 order: np.ndarray | None = None, pardiso_min_rows: int | None = None
                 ) -> None:
        n = A.shape[0]
        self.n = n
        self.backend: FactorBackend = factor_backend(n, pardiso_min_rows)
        self.negative: int | None = None
        self._solver: Any = None
        self._upper: Any = None
        self._lu: Any = None
        self._order: np.ndarray | None = None
        shifted = sp.csr_array(A) - shift * sp.identity(n, format="csr")
        if self.backend == "pardiso":
            self._factor_pardiso(shifted)
        else:
            self._factor_superlu(shifted.tocsc(), purpose, order)

    # ------------------------------------------------------------------ back-ends
    def _factor_pardiso(self, M) -> None:
        from pypardiso.pardiso_wrapper import PyPardisoError

        upper = sp.csr_matrix(sp.triu(M, format="csr"))  # pypardiso wants the matrix class
        upper.sort_indices()
        self._upper = upper
        solver = self._solver = _POOL.take()
        iparm = solver.iparm
        iparm[0] = 0  # MKL's defaults (a pooled handle may carry the settings below)
        try:
            with _one_mkl_thread(solver):
                solver.factorize(upper)
        except PyPardisoError:  # exactly singular: no inertia, no solves
            self.close()
            return
        # iparm[13]: perturbed pivots; iparm[22]: negative eigenvalues (MKL's 0-based layout)
        perturbed = int(iparm[13]) != 0
        self.negative = None if perturbed else int(iparm[22])
        if not perturbed:
            _without_refinement(iparm)

    def _factor_superlu(self, M, purpose: str, order) -> None:
        if order is not None:
            M = M[order][:, order].tocsc()
            self._order = order
        # a given elimination order, else SuperLU's symmetric minimum degree (~2x sparser
        # than COLAMD); the nested-dissection order of a 3D grid is sparser still (48^3: 14 s
        # against 226 s for the minimum degree, docs/performance.md)
        permc = "MMD_AT_PLUS_A" if order is None else "NATURAL"
        if purpose == "solve":  # diagonal pivots preferred
            self._lu = spla.splu(M, permc_spec=permc, diag_pivot_thresh=0.1,
                                 options={"SymmetricMode": True})
            return
        try:
            lu = spla.splu(M, permc_spec=permc, diag_pivot_thresh=0.0,
                           options={"SymmetricMode": True})
        except RuntimeError:  # exactly singular
            return
        self._lu = lu
        if np.array_equal(lu.perm_r, lu.perm_c):
            piv = lu.U.diagonal()
            if np.all(np.isfinite(piv)):
                self.negative = int(np.count_nonzero(piv < 0))

    # ------------------------------------------------------------------ use
    def solve(self, b: np.ndarray) -> np.ndarray:
        """``(A - shift)^-1 b`` for a vector or the columns of a matrix."""
        if self._lu is not None:
            if self._order is None:
                return self._lu.solve(b)
            x = np.empty_like(b, dtype=float)
            x[self._order] = self._lu.solve(np.asarray(b, dtype=float)[self._order])
            return x
        if self._solver is None:
            raise RuntimeError("the factorisation was released (or A - shift is singular)")
        with _one_mkl_thread(self._solver):
            x = self._solver.solve(self._upper, np.asarray(b, dtype=float))
        return x.reshape(np.shape(b))

    def operator(self) -> spla.LinearOperator:
        """The solve as a :class:`scipy.sparse.linalg.LinearOperator` (``eigsh``'s OPinv)."""
        return spla.LinearOperator((self.n, self.n), matvec=self.solve, dtype=float)

    def close(self) -> None:
        """Release the factor (PARDISO's memory goes back to MKL, the handle to the pool)."""
        if self._solver is not None:
            self._solver.free_memory(everything=False)
            _POOL.give(self._solver)
            self._solver = None
        self._upper = None
        self._lu = None

    def __enter__(self) -> ShiftedFactor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _without_refinement(iparm: np.ndarray) -> None:
    """Solves of an unperturbed PARDISO factor without iterative refinement.

    MKL's defaults (``iparm[0] = 0``, which it fills in at the factorisation) make every solve
    take two steps of iterative refinement (``iparm[7] = 2``; ``iparm[6]`` reports them), each
    a residual product and another solve: the box solves of the pair model took 3x SuperLU's
    time per right-hand side. Refinement corrects perturbed pivots; an LDL^T without them
    solves to round-off (relative residual ~3e-16 against ~2e-16 with it, on 2D and 3D
    Anderson boxes). ``iparm[0] = 1`` keeps the filled-in defaults except ``iparm[7]``.
    """
    iparm[0] = 1
    iparm[7] = 0


@contextlib.contextmanager
def _one_mkl_thread(solver):
    """MKL on one thread inside the block (thread-local: other threads keep theirs)."""
    mkl = solver.libmkl
    previous = mkl.MKL_Set_Num_Threads_Local(1)
    try:
        yield
    finally:
        mkl.MKL_Set_Num_Threads_Local(previous)
