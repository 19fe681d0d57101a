"""Exact Kubo-Greenwood reference from the eigenstates of the finite sample (eqs. 4-5).

The LL formula of the paper is an asymptotic estimate of the Kubo-Greenwood (KG) conductivity
whose low-frequency form is eq. (4), built from the position matrix elements of eq. (5),

    X_ji^(alpha) = <psi_j | x_alpha | psi_i>,   |X_ji|^2 = sum_alpha |X_ji^(alpha)|^2 .

This module evaluates the KG formula itself, exactly for one finite sample:

    Re sigma(omega) = (2 pi e^2 omega / (d |Omega|))
                      * sum_{i,j} (f(E_i) - f(E_j)) |X_ji|^2 delta(E_j - E_i - hbar omega),

(spin factor 2 included, isotropic average over the d axes, f the Fermi function), averaged over
frequency bins so that no broadening is needed: a pair (i, j) with
``omega_ij = (E_j - E_i) / hbar`` in bin k contributes

    (2 pi e^2 omega_ij / (d |Omega|)) (f_i - f_j) |X_ji|^2 / hbar / (w_{k+1} - w_k)

to the bin average sigma_k. Inserting a constant DOS nu and an average |X|^2 gives back eq. (4).

Only the eigenstates inside the window ``[E_F - hbar w_max - 40 kT, E_F + hbar w_max + 40 kT]``
can contribute (a pair outside it has ``f_i - f_j < e^-40``, or a frequency beyond the last bin).
They are found by windowed eigensolvers:

``"dense"``
    ``scipy.linalg.eigh(subset_by_value=window)`` on the assembled matrix (small samples; the
    reference of the tests).
``"tridiagonal"``
    1D, Dirichlet: ``scipy.linalg.eigh_tridiagonal(select='v')`` on the whole chain.
``"segments"``
    1D, Dirichlet, long chains: the chain is cut into overlapping segments (a core plus
    ``padding`` cells on each side), each diagonalised only in the window; a state is kept by
    the segment whose core holds its centroid, and matrix elements are computed only between
    states whose segments overlap. Pairs farther apart than about ``2 * padding`` are skipped;
    their ``|X|^2 <~ r^2 exp(-2 r / xi)`` is negligible only relative to the pairs that
    carry sigma, which are at most the mean distance between window states apart (and the
    Mott length of the lowest bin), hence the default padding (see :func:`kubo_greenwood`).
    Measured on a 4000-site block chain (xi ~ 0.94 cells, 20 window states): the largest
    error per bin relative to the largest bin was 0.12, 4e-6, 6e-10, 5e-14 for paddings of
    16, 24, 32 and 48 cells (segment core 40), and < 1e-12 with the default padding.
``"boxes"``
    Any dimension, large samples: the d-dimensional segments. The sample is tiled by cores,
    each padded by ``padding`` cells (Dirichlet on the box faces) and diagonalised in the window
    only (dense ``eigh`` for small boxes, shift-invert slicing otherwise); a state is kept by
    the box whose core holds its centroid. The residual of every kept state against the full H
    is measured and the box's padding grows until it is below ``box_tol``; a state kept by two
    boxes is merged. Pairs are summed with matrix elements on the cells common to their boxes,
    exact for pairs up to ``padding`` apart; the part of each bin from farther pairs is
    reported (``sigma_beyond_padding``). See :mod:`mottscape.exact._boxes`.
``"shift-invert"``
    Any dimension: spectrum slicing with shift-invert Lanczos (``scipy.sparse.linalg.eigsh``
    with one sparse LU factorisation of ``H - sigma`` per shift, passed as ``OPinv``). Each
    shift asks for about ``SLICE_STATES`` states; the k states nearest a shift cover an
    interval around it, and shifts are added in the uncovered gaps until the window is
    covered; duplicates are merged. The first shifts are independent: they are the pieces of
    :func:`plan_exact`, so an ensemble runs the shifts of one large sample on separate
    workers (the gaps are closed when the pieces are merged). With three shifts or more the
    plan counts the eigenvalues at a few energies inside the window (one factorisation each)
    and places the shifts at equal expected counts: a band tail's DOS rises across the
    window, and evenly spaced shifts leave gaps at its top.

Completeness is checked for every method with an exact eigenvalue count (Sylvester's law of
inertia): the number of eigenvalues below E is the number of negative pivots of an LDL^T
factorisation of ``H - E``. In 1D this is the Sturm sequence of the tridiagonal matrix; in 2D and
3D it is the inertia that MKL PARDISO's Bunch-Kaufman LDL^T reports (``pip install
mottscape[mkl]``), or else the sign count of the diagonal of a sparse LU factorisation made
without off-diagonal pivoting (``splu`` in symmetric mode, ``diag_pivot_thresh=0``), accepted only
when SuperLU kept the row and column permutations equal, so that the factorisation is a
congruence. The same back-end factorises ``H - sigma`` for the shift-invert slices
(:mod:`mottscape.exact._factor`; the environment variable ``MOTTSCAPE_SPARSE_FACTOR`` chooses
``auto``, ``pardiso`` or ``superlu``; the result's attribute ``sparse_factorisation`` says
which ran). PARDISO factorised a 48^3 Anderson H in 2.3 s against 27-170 s for SuperLU: it is
what lets the exact reference reach 3D samples in the Mott regime. If the states found
differ from the count, a :class:`~mottscape.errors.ConvergenceError` is raised.

Eigenvectors are normalised on the grid, ``sum_cells |psi|^2 = 1``; then eq. (5) is
``X_ji = sum_cells psi_j x psi_i`` with x the cell centres. For exact eigenstates ``<j|i> = 0`` and
the origin of x is irrelevant; for approximate ones (segments, Lanczos) we evaluate
``<j|(x - c_ij)|i>`` with ``c_ij`` the midpoint of the two centroids, which removes the error
``c <j|i>`` that a far-away origin would amplify. With periodic boundaries the position operator is
not defined; there we use the velocity form ``X_ji = <j|[H, x]|i> / (E_j - E_i)``, where the
commutator is the lattice current (bond displacements by minimum image). Boxes are smaller than
a periodic sample, so inside a box the position form is well defined (coordinates unwrapped by
minimum image) and ``method="boxes"`` uses it with either boundary.

The package is split by job: ``_counts`` (inertia counts), ``_windows`` (dense, tridiagonal and
shift-invert window solvers), ``_segments`` (1D segments), ``_boxes`` (d-dimensional boxes, one
independent task per box), ``_tasks`` (the boxes and segments as a plan, pieces that run as
tasks of an ensemble engine, and their merge: :func:`plan_exact`, :func:`solve_piece`,
:func:`finish_exact`, and :func:`widen_boxes` for a boxes count that failed),
``_kg`` (matrix elements and the pair sum) and ``_api`` (the public
functions). Every public function takes a :class:`~mottscape.sample.Sample` (whose Hamiltonian,
built once, is used), a :class:`~mottscape.hamiltonian.Hamiltonian`, or the potential map with
the keyword arguments of :func:`~mottscape.hamiltonian.build_hamiltonian`.
"""

from __future__ import annotations

from ._api import (
    exact_dos,
    exact_eigenstates,
    finish_exact,
    kubo_greenwood,
    lowest_eigenvalues,
    plan_exact,
)
from ._boxes import BOX_PADDING, BOX_TOL, RESOLVED_FAR, Box, BoxResult, make_boxes, solve_box
from ._common import (
    DENSE_MAX,
    KT_WINDOW,
    METHODS,
    PADDING_XI,
    SLICE_STATES,
    WHOLE_CHAIN_MAX,
    _blas_single_thread,
    _fermi,
)
from ._counts import _inertia_lu, _sturm_counts, count_eigenvalues_below
from ._kg import _velocity_x2, position_matrix
from ._tasks import (
    ExactPlan,
    Piece,
    piece_from_dataset,
    piece_to_dataset,
    solve_piece,
    widen_boxes,
)

__all__ = [
    "BOX_PADDING",
    "BOX_TOL",
    "DENSE_MAX",
    "KT_WINDOW",
    "METHODS",
    "PADDING_XI",
    "RESOLVED_FAR",
    "SLICE_STATES",
    "WHOLE_CHAIN_MAX",
    "Box",
    "BoxResult",
    "ExactPlan",
    "Piece",
    "count_eigenvalues_below",
    "exact_dos",
    "exact_eigenstates",
    "finish_exact",
    "kubo_greenwood",
    "lowest_eigenvalues",
    "make_boxes",
    "piece_from_dataset",
    "piece_to_dataset",
    "plan_exact",
    "position_matrix",
    "solve_box",
    "solve_piece",
    "widen_boxes",
]
# Private helpers re-exported for the tests and older callers of the single-file module.
_PRIVATE = (_blas_single_thread, _fermi, _inertia_lu, _sturm_counts, _velocity_x2)
