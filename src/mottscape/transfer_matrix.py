"""Lyapunov exponents of quasi-1D bars: the transfer-matrix kernel and its slice sources.

The step behind :func:`mottscape.localization.localization_length` and
:func:`~mottscape.localization.bar_lyapunov` (the method, its error estimate and references are
in :mod:`mottscape.localization`): the N vectors of a bar of cross-section N are propagated slice
by slice through the 2N x 2N transfer matrices of the discretised H of eq. (3), re-orthonormalised
every q slices, and the logarithms of the QR's diagonal accumulate the exponents. Slices come
from a *source*: a random-potential generator (bars of any length) or a potential map (its own
bar, with the map's couplings and masses).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .errors import InputError
from .grid import Boundary
from .hamiltonian import build_hamiltonian
from .units import UnitSystem

__all__ = [
    "Bar",
    "BarLyapunov",
    "PotentialGenerator",
    "SliceSource",
    "array_source",
    "generator_source",
    "map_bar",
    "run_bar",
    "uniform_bar",
]

#: ``(shape, rng) -> V``: draws the potential of the next slices of a bar.
PotentialGenerator = Callable[[tuple[int, ...], np.random.Generator], np.ndarray]
#: ``source(n) -> (diag, couplings) | None``: the next (up to) n slices of a bar (see
#: :func:`run_bar`).
SliceSource = Callable[[int], "tuple[np.ndarray, np.ndarray | None] | None"]

#: Largest log-ratio of the fastest to the slowest vector allowed between two QR steps.
_MAX_SPREAD = 20.0
#: Largest log-growth of a vector allowed between two normalisations (overflow guard).
_MAX_GROWTH = 200.0
_MAX_Q = 32
#: Slices generated (or read) per call of the compiled kernel.
_CHUNK_POINTS = 1 << 18

# ---------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class BarLyapunov:
    """Lyapunov exponents of one quasi-1D bar (or chain) from the transfer matrix.

    Attributes
    ----------
    cross_section
        Cells of the cross-section per transverse axis (``()`` for a 1D chain).
    gamma
        Smallest positive Lyapunov exponent per unit length (1 / length unit).
    gamma_error
        Its statistical standard error (batch means).
    exponents
        All N positive exponents per unit length, in decreasing order.
    length
        Slices used for the estimate (after the warm-up).
    warmup
        Slices discarded at the start.
    spacing
        Slice spacing along the bar (length unit).
    reorthogonalize
        Slices between two QR steps.
    batches
        Number of batches of the error estimate.
    """

    cross_section: tuple[int, ...]
    gamma: float
    gamma_error: float
    exponents: np.ndarray = field(repr=False)
    length: int
    warmup: int
    spacing: float
    reorthogonalize: int
    batches: int

    @property
    def xi(self) -> float:
        """Localization length of the bar, 1 / gamma (inf if gamma <= 0)."""
        return 1.0 / self.gamma if self.gamma > 0 else math.inf

    @property
    def relative_error(self) -> float:
        """Relative standard error of gamma (and of xi)."""
        return self.gamma_error / self.gamma if self.gamma > 0 else math.inf

    @property
    def xi_error(self) -> float:
        """Standard error of xi (first order: xi * relative error)."""
        return self.xi * self.relative_error if self.gamma > 0 else math.inf


# ---------------------------------------------------------------------- the kernel
@njit(cache=True, fastmath=True)
def _orthonormalize(psi: np.ndarray, prev: np.ndarray, logs_row: np.ndarray) -> None:
    """Modified Gram-Schmidt on the K vectors (psi[k], prev[k]) of length 2N, in place.

    ``logs_row[k]`` receives log |R_kk|. Written out (not LAPACK) because a threaded BLAS on a
    loaded machine made a 200 x 100 QR take 150 ms instead of 3 ms; single-threaded MGS is
    predictable, and re-orthonormalising every q slices keeps its loss of orthogonality
    (~ e^spread * eps ~ 1e-7) from accumulating.
    """
    K, N = psi.shape
    for k in range(K):
        nrm = 0.0
        for j in range(N):
            nrm += psi[k, j] * psi[k, j] + prev[k, j] * prev[k, j]
        nrm = math.sqrt(nrm)
        logs_row[k] = math.log(nrm)
        inv = 1.0 / nrm
        for j in range(N):
            psi[k, j] *= inv
            prev[k, j] *= inv
        for i in range(k + 1, K):
            r = 0.0
            for j in range(N):
                r += psi[k, j] * psi[i, j] + prev[k, j] * prev[i, j]
            for j in range(N):
                psi[i, j] -= r * psi[k, j]
                prev[i, j] -= r * prev[k, j]


@njit(cache=True)
def _transfer_chunk(diag: np.ndarray, clong: np.ndarray, nbr: np.ndarray, wt: np.ndarray,
                    energy: float, cprev: np.ndarray, psi: np.ndarray, prev: np.ndarray, q: int,
                    phase: int, logs: np.ndarray) -> tuple[int, int]:
    """Propagate the N vectors (psi, prev) through the slices of ``diag``; QR every q slices.

    diag (L, N): diagonal of H per slice; clong (L or 1, N): coupling to the next slice;
    nbr (N, Z): transverse neighbours (-1: none); wt (L or 1, N, Z): their couplings;
    cprev (N,): coupling to the previous slice (updated). psi, prev (K, N): the vectors on the
    current and previous slice (updated). Returns (phase, count): slices since the last QR and
    the number of rows of ``logs`` (log |R_kk| per QR step) written.
    """
    L, N = diag.shape
    K = psi.shape[0]
    Z = nbr.shape[1]
    new = np.empty(N)
    count = 0
    per_slice_c = clong.shape[0] > 1
    per_slice_w = wt.shape[0] > 1
    for n in range(L):
        cn = clong[n] if per_slice_c else clong[0]
        wn = wt[n] if per_slice_w else wt[0]
        dn = diag[n]
        for k in range(K):
            for j in range(N):
                s = (dn[j] - energy) * psi[k, j] - cprev[j] * prev[k, j]
                for z in range(Z):
                    m = nbr[j, z]
                    if m >= 0:
                        s -= wn[j, z] * psi[k, m]
                new[j] = s / cn[j]
            for j in range(N):
                prev[k, j] = psi[k, j]
                psi[k, j] = new[j]
        for j in range(N):
            cprev[j] = cn[j]
        phase += 1
        if phase == q:
            phase = 0
            _orthonormalize(psi, prev, logs[count])
            count += 1
    return phase, count


class Bar:
    """Transverse structure of a bar: neighbour table and couplings, slice diagonals on demand."""

    def __init__(self, nbr: np.ndarray, wt: np.ndarray, clong: np.ndarray,
                 cross: tuple[int, ...], spacing: float) -> None:
        self.nbr = nbr
        self.wt = wt
        self.clong = clong
        self.cross = cross
        self.N = nbr.shape[0]
        self.spacing = spacing


def _neighbours(cross: tuple[int, ...], periodic: bool, couplings: Sequence[float]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Neighbour table (N, Z) and uniform couplings (1, N, Z) of a regular cross-section."""
    N = math.prod(cross) if cross else 1
    index = np.arange(N).reshape(cross) if cross else np.zeros((), dtype=np.int64)
    cols, wcols = [], []
    for a, n in enumerate(cross):
        if periodic and n == 1:
            continue  # a periodic axis of one cell carries no kinetic energy
        for step in (1, -1):
            shifted = np.roll(index, -step, axis=a)
            if not periodic:
                edge = [slice(None)] * len(cross)
                edge[a] = slice(n - 1, n) if step == 1 else slice(0, 1)
                shifted = shifted.copy()
                shifted[tuple(edge)] = -1
            cols.append(shifted.reshape(-1))
            wcols.append(np.full(N, couplings[a]))
    if cols:
        nbr = np.stack(cols, axis=1).astype(np.int64)
        wt = np.stack(wcols, axis=1)[None, :, :]
    else:
        nbr = np.zeros((N, 0), dtype=np.int64)
        wt = np.zeros((1, N, 0))
    return nbr, np.ascontiguousarray(wt)


def _choose_q(logs: np.ndarray) -> int:
    """Slices between QR steps from the per-slice growth seen with q = 1."""
    spread = float(np.max(logs[:, 0] - logs[:, -1])) if logs.shape[1] > 1 else 0.0
    growth = float(np.max(np.abs(logs)))
    q = _MAX_Q
    if spread > 0:
        q = min(q, int(_MAX_SPREAD / spread))
    if growth > 0:
        q = min(q, int(_MAX_GROWTH / growth))
    return max(q, 1)


def _batch_error(increments: np.ndarray, q: int) -> tuple[float, float, int]:
    """Mean per-slice exponent and its batch-means standard error from per-QR increments."""
    n = increments.size
    gamma = float(increments.sum() / (n * q))
    batches = int(min(64, max(16, n // 64)))
    if n < 2 * batches:
        batches = max(2, n // 2)
    if n < 4:
        return gamma, math.inf, 0
    per = n // batches
    trimmed = increments[: per * batches].reshape(batches, per)
    means = trimmed.sum(axis=1) / (per * q)
    err = float(np.std(means, ddof=1) / math.sqrt(batches))
    return gamma, err, batches



def run_bar(bar: Bar, source: SliceSource, energy: float, rng: np.random.Generator, *, warmup: int,
             rel_error: float | None, min_length: int, max_length: int,
             reorthogonalize: int | None) -> tuple[BarLyapunov, bool]:
    """Multiply the transfer matrices of the slices handed out by ``source``.

    ``source(n)`` returns the diagonal of H on the next (up to) n slices, shape (n', N), and
    the couplings to the following slice ((n', N), or None for the bar's uniform coupling),
    or None when exhausted. The run stops when the relative error of gamma_N is <=
    ``rel_error`` (if given) after at least ``min_length`` counted slices, or at
    ``max_length`` slices. Returns the record and whether the error target was met.
    """
    N = bar.N
    start = rng.standard_normal((N, 2 * N))
    psi = np.ascontiguousarray(start[:, :N])
    prev = np.ascontiguousarray(start[:, N:])
    _orthonormalize(psi, prev, np.empty(N))
    cprev = np.ascontiguousarray(bar.clong[0], dtype=float).copy()
    total, phase, q = 0, 0, reorthogonalize
    if q is None:  # calibrate q on the first slices (they belong to the warm-up)
        got = source(max(1, min(64, warmup, max_length)))
        if got is None:
            raise InputError("the potential source gave no slices")
        diag, cl = got
        logs = np.empty((diag.shape[0], N))
        phase, count = _transfer_chunk(diag, bar.clong if cl is None else cl, bar.nbr, bar.wt,
                                       energy, cprev, psi, prev, 1, 0, logs)
        q = _choose_q(logs[:count])
        total += diag.shape[0]
        phase = 0
    chunk = max(256, _CHUNK_POINTS // N)
    smallest: list[np.ndarray] = []
    sums = np.zeros(N)
    rows = 0
    met = False
    while total < max_length:
        got = source(min(chunk, max_length - total))
        if got is None:
            break
        diag, cl = got
        n = diag.shape[0]
        logs = np.empty((n // q + 2, N))
        phase0 = phase
        phase, count = _transfer_chunk(diag, bar.clong if cl is None else cl, bar.nbr, bar.wt,
                                       energy, cprev, psi, prev, q, phase, logs)
        # QR step i of this chunk closes the q slices ending after slice total + (q - phase0)
        # + i q; keep the steps whose interval starts after the warm-up
        ends = total + (q - phase0) + q * np.arange(count)
        keep = logs[:count][ends - q >= warmup]
        smallest.append(keep[:, -1].copy())
        sums += keep.sum(axis=0)
        rows += keep.shape[0]
        total += n
        if rel_error is not None and rows * q >= min_length and rows >= 64:
            g, e, _ = _batch_error(np.concatenate(smallest), q)
            if g > 0 and e <= rel_error * g:
                met = True
                break
    if rows < 4:
        raise InputError(
            f"the bar has {total} slices but the warm-up takes {warmup} and at least 4 "
            f"re-orthonormalisation steps of {q} slices are needed after it; give a longer "
            "sample (length=...) or a smaller warmup=")
    g, e, batches = _batch_error(np.concatenate(smallest), q)
    h = bar.spacing
    rec = BarLyapunov(cross_section=bar.cross, gamma=g / h, gamma_error=e / h,
                      exponents=np.sort(sums / (rows * q))[::-1] / h, length=int(rows * q),
                      warmup=int(warmup), spacing=h, reorthogonalize=int(q), batches=batches)
    return rec, (met or rel_error is None)


# ---------------------------------------------------------------------- sources of slices
def generator_source(gen: PotentialGenerator, cross: tuple[int, ...], rng: np.random.Generator,
                     onsite: float) -> SliceSource:
    """Slices drawn by ``gen`` (checked: shape, finite values), plus the on-site ``onsite``.

    The bar's coupling along its axis is uniform (``None`` couplings); the source never runs out.
    """
    N = math.prod(cross) if cross else 1

    def source(n: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        shape = (n, *cross)
        try:
            V = gen(shape, rng)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(
                f"the potential generator failed for shape {shape}: {exc!r}; it must accept "
                "(shape, rng) with a numpy Generator rng and return an array of that shape"
            ) from exc
        V = np.asarray(V, dtype=float)
        if V.shape != shape:
            raise InputError(
                f"the potential generator returned shape {V.shape} for shape={shape}; it must "
                "return an array of exactly the requested shape (the bar's long axis first)")
        if not np.all(np.isfinite(V)):
            raise InputError("the potential generator returned NaN or infinite values")
        return V.reshape(n, N) + onsite, None

    return source


def array_source(diag: np.ndarray, clong: np.ndarray | None) -> SliceSource:
    """The slices of a map in order (``diag`` (L, N), couplings (L, N) or None), then None."""
    state = {"pos": 0}

    def source(n: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        i = state["pos"]
        if i >= diag.shape[0]:
            return None
        j = min(diag.shape[0], i + n)
        state["pos"] = j
        return diag[i:j], (None if clong is None else clong[i:j])

    return source


def uniform_bar(cross: tuple[int, ...], spacing: tuple[float, ...], mass: float,
                 kinetic: float, periodic: bool) -> tuple[Bar, float]:
    """Bar of a uniform mass: neighbour table, couplings and the on-site kinetic term."""
    c = [kinetic / (mass * h**2) for h in spacing]
    onsite = 2.0 * c[0]
    for a, n in enumerate(cross, start=1):
        if not (periodic and n == 1):
            onsite += 2.0 * c[a]
    nbr, wt = _neighbours(cross, periodic, c[1:])
    N = nbr.shape[0]
    clong = np.full((1, N), c[0])
    return Bar(nbr, wt, clong, cross, spacing[0]), onsite


def map_bar(V: np.ndarray, spacing: tuple[float, ...], mass: float | np.ndarray,
            units: UnitSystem, boundary: Boundary) -> tuple[Bar, np.ndarray, np.ndarray | None]:
    """Bar, diagonal and couplings of a potential map whose long axis is axis 0."""
    H = build_hamiltonian(V, spacing=spacing, mass=mass, boundary=boundary, units=units)
    L, cross = V.shape[0], V.shape[1:]
    N = math.prod(cross) if cross else 1
    diag = np.ascontiguousarray(H.diagonal.reshape(L, N))
    periodic = boundary == "periodic"
    c0 = H.couplings[0]
    if np.ndim(c0) == 0:
        clong_all = None
        clong = np.full((1, N), float(c0))
    else:
        c0 = np.asarray(c0).reshape(L - 1, N)
        clong_all = np.ascontiguousarray(np.concatenate([c0, c0[-1:]], axis=0))
        clong = clong_all[:1]
    if all(np.ndim(c) == 0 for c in H.couplings[1:]):
        nbr, wt = _neighbours(cross, periodic, [float(c) for c in H.couplings[1:]])
    else:
        nbr, _ = _neighbours(cross, periodic, [1.0] * len(cross))
        cols = []
        for a, n in enumerate(cross, start=1):
            if periodic and n == 1:
                continue
            full = np.broadcast_to(np.asarray(H.couplings[a], dtype=float),
                                   _reduced(V.shape, a))
            wrap = H.wrap_couplings[a]
            edge = (np.zeros(_edge(V.shape, a)) if wrap is None else
                    np.broadcast_to(np.asarray(wrap, dtype=float), _edge(V.shape, a)))
            plus = np.concatenate([full, edge], axis=a)   # coupling to cell i + 1
            minus = np.concatenate([edge, full], axis=a)  # coupling to cell i - 1
            cols += [plus.reshape(L, N), minus.reshape(L, N)]
        wt = np.ascontiguousarray(np.stack(cols, axis=2))
    bar = Bar(nbr, wt, clong, tuple(int(n) for n in cross), spacing[0])
    return bar, diag, clong_all


def _reduced(shape: tuple[int, ...], a: int) -> tuple[int, ...]:
    return tuple(n - 1 if i == a else n for i, n in enumerate(shape))


def _edge(shape: tuple[int, ...], a: int) -> tuple[int, ...]:
    return tuple(1 if i == a else n for i, n in enumerate(shape))
