"""Compiled stencil kernels of :mod:`mottscape.solvers` (private; eq. 2 on the grid of eq. 3).

The numba kernels of the matrix-free landscape solve H u = f: the stencil product, the fused
Jacobi-CG passes (uniform and variable couplings) and the multigrid smoother and transfers.
:mod:`mottscape.solvers` holds the public layer (methods, validation, threads, multigrid
hierarchy) and documents the algorithms; this module holds only the loops.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

__all__: list[str] = []  # private: mottscape.solvers imports the kernels by name


# ============================================================================ numba kernels
# All kernels work on arrays in "3D form": a 1D grid is viewed as (1, 1, n), a 2D grid as
# (1, n1, n2), so one set of kernels serves every dimension. Rows (i, j) are distributed over
# threads with prange; the innermost axis is contiguous. Neighbour indices wrap (mod n): for a
# Dirichlet axis the low-face coupling of cell 0 is zero, so the wrapped term vanishes, and one
# branch-free formula serves both boundary conditions.
#
# Variable couplings are stored as "low-face" arrays W_a of the grid's shape: W_a[i] couples
# cell i with cell i - e_a (for i_a = 0: the periodic wrap coupling, or 0 for Dirichlet). Then
#     (H x)_i = D_i x_i - sum_a (W_a[i] x[i - e_a] + W_a[i + e_a] x[i + e_a]).
# An axis of length 1 has no off-diagonal coupling and its W array is never read.

_JIT: dict[str, Any] = {"parallel": True, "fastmath": False, "cache": True}


@njit(inline="always", cache=True)
def _tile_rows(n1, n2):  # pragma: no cover - compiled
    """Rows (axis 1) per tile: each thread sweeps all planes (axis 0) of its tiles, so the
    three planes a 3D stencil touches stay in cache (measured ~20 % faster on 256^3 than
    distributing rows, which re-reads the neighbouring planes from memory); at least 8 tiles
    for load balance. In 2D (one plane) a tile is a block of consecutive rows.
    """
    return max(1, min(16384 // max(n2, 1), n1 // 8))



@njit(inline="always", cache=True)
def _serial_sum(part):  # pragma: no cover - compiled
    """Sum of the per-row (or per-tile) partial sums in a fixed order.

    A ``prange`` reduction (``total += ...``) adds the threads' partial sums in an order set by
    the thread count, so the last bits of every dot product, and through CG every result,
    would change with the number of threads. Each iteration writes its own slot instead and
    this plain loop (never parallelized) adds them: the same bits on any number of threads.
    """
    s = 0.0
    for q in range(part.size):
        s += part[q]
    return s

@njit(**_JIT)
def _apply_uniform(D, c, cw, x, y):  # pragma: no cover - compiled
    """y = H x for scalar couplings c[a] (interior) and cw[a] (wrap, 0 for Dirichlet)."""
    n0, n1, n2 = x.shape
    c2 = c[2]
    jb = _tile_rows(n1, n2)
    for tile in prange((n1 + jb - 1) // jb):
        for i in range(n0):
            for j in range(tile * jb, min(tile * jb + jb, n1)):
                im = i - 1 if i > 0 else n0 - 1
                ip = i + 1 if i < n0 - 1 else 0
                jm = j - 1 if j > 0 else n1 - 1
                jp = j + 1 if j < n1 - 1 else 0
                a0m = c[0] if i > 0 else cw[0]
                a0p = c[0] if i < n0 - 1 else cw[0]
                a1m = c[1] if j > 0 else cw[1]
                a1p = c[1] if j < n1 - 1 else cw[1]
                xr = x[i, j]
                x0m = x[im, j]
                x0p = x[ip, j]
                x1m = x[i, jm]
                x1p = x[i, jp]
                dr = D[i, j]
                yr = y[i, j]
                for k in range(1, n2 - 1):
                    yr[k] = (dr[k] * xr[k] - a0m * x0m[k] - a0p * x0p[k] - a1m * x1m[k]
                             - a1p * x1p[k] - c2 * (xr[k - 1] + xr[k + 1]))
                for e in range(2 if n2 > 1 else 1):
                    k = 0 if e == 0 else n2 - 1
                    km = k - 1 if k > 0 else n2 - 1
                    kp = k + 1 if k < n2 - 1 else 0
                    a2m = c2 if k > 0 else cw[2]
                    a2p = c2 if k < n2 - 1 else cw[2]
                    yr[k] = (dr[k] * xr[k] - a0m * x0m[k] - a0p * x0p[k] - a1m * x1m[k]
                             - a1p * x1p[k] - a2m * xr[km] - a2p * xr[kp])


@njit(**_JIT)
def _apply_var(D, W0, W1, W2, x, y):  # pragma: no cover - compiled
    """y = H x for low-face coupling arrays W0, W1, W2 (see the module comment)."""
    n0, n1, n2 = x.shape
    for r in prange(n0 * n1):
        i = r // n1
        j = r - i * n1
        for k in range(n2):
            y[i, j, k] = _row_var(D, W0, W1, W2, x, i, j, k, n0, n1, n2)


@njit(inline="always", cache=True)
def _row_var(D, W0, W1, W2, x, i, j, k, n0, n1, n2):  # pragma: no cover - compiled
    s = D[i, j, k] * x[i, j, k]
    if n0 > 1:
        im = i - 1 if i > 0 else n0 - 1
        ip = i + 1 if i < n0 - 1 else 0
        s -= W0[i, j, k] * x[im, j, k] + W0[ip, j, k] * x[ip, j, k]
    if n1 > 1:
        jm = j - 1 if j > 0 else n1 - 1
        jp = j + 1 if j < n1 - 1 else 0
        s -= W1[i, j, k] * x[i, jm, k] + W1[i, jp, k] * x[i, jp, k]
    if n2 > 1:
        km = k - 1 if k > 0 else n2 - 1
        kp = k + 1 if k < n2 - 1 else 0
        s -= W2[i, j, k] * x[i, j, km] + W2[i, j, kp] * x[i, j, kp]
    return s


# ---------------------------------------------------------------- Jacobi-CG, uniform couplings
# CG on A~ = S H S (S = D^(-1/2)): A~ p = p - S * sum_nb c_nb S_nb p_nb. One iteration is
#   pass 1: p <- r + beta p (written to a second buffer, neighbours are read from the old one)
#           and <p, A~ p>, without storing A~ p;
#   pass 2: A~ p recomputed from p (cheaper than storing and re-reading it), y += alpha p,
#           r -= alpha A~ p, <r, r>.
# Streams per iteration: pass 1 reads r, p_old, S and writes p_new; pass 2 reads p, S and
# updates y and r: 10 arrays (plus write-allocate of p_new).


@njit(inline="always", cache=True)
def _sum8(t, n):  # pragma: no cover - compiled
    """Sum of t[:n] with 8 independent partial sums.

    With ``fastmath=False`` LLVM may not reassociate a floating-point reduction, so a plain
    ``acc += t[k]`` keeps the whole loop scalar. Writing the products to a row buffer (a
    vectorisable loop) and summing it with explicit partial sums keeps IEEE semantics and
    determinism while letting the arithmetic vectorise.
    """
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
    m = n - n % 8
    for k in range(0, m, 8):
        a0 += t[k]
        a1 += t[k + 1]
        a2 += t[k + 2]
        a3 += t[k + 3]
        a4 += t[k + 4]
        a5 += t[k + 5]
        a6 += t[k + 6]
        a7 += t[k + 7]
    for k in range(m, n):
        a0 += t[k]
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


@njit(**_JIT)
def _cg_direction_uniform(S, c, cw, r, p_old, p_new, beta):  # pragma: no cover - compiled
    n0, n1, n2 = r.shape
    c2 = c[2]
    jb = _tile_rows(n1, n2)
    part = np.zeros((n1 + jb - 1) // jb)
    for tile in prange((n1 + jb - 1) // jb):
        t = np.empty(n2)
        for i in range(n0):
            for j in range(tile * jb, min(tile * jb + jb, n1)):
                im = i - 1 if i > 0 else n0 - 1
                ip = i + 1 if i < n0 - 1 else 0
                jm = j - 1 if j > 0 else n1 - 1
                jp = j + 1 if j < n1 - 1 else 0
                a0m = c[0] if i > 0 else cw[0]
                a0p = c[0] if i < n0 - 1 else cw[0]
                a1m = c[1] if j > 0 else cw[1]
                a1p = c[1] if j < n1 - 1 else cw[1]
                sr, rr_, pr = S[i, j], r[i, j], p_old[i, j]
                s0m, r0m, p0m = S[im, j], r[im, j], p_old[im, j]
                s0p, r0p, p0p = S[ip, j], r[ip, j], p_old[ip, j]
                s1m, r1m, p1m = S[i, jm], r[i, jm], p_old[i, jm]
                s1p, r1p, p1p = S[i, jp], r[i, jp], p_old[i, jp]
                out = p_new[i, j]
                for k in range(1, n2 - 1):
                    pk = rr_[k] + beta * pr[k]
                    nb = (a0m * s0m[k] * (r0m[k] + beta * p0m[k])
                          + a0p * s0p[k] * (r0p[k] + beta * p0p[k])
                          + a1m * s1m[k] * (r1m[k] + beta * p1m[k])
                          + a1p * s1p[k] * (r1p[k] + beta * p1p[k])
                          + c2 * (sr[k - 1] * (rr_[k - 1] + beta * pr[k - 1])
                                  + sr[k + 1] * (rr_[k + 1] + beta * pr[k + 1])))
                    out[k] = pk
                    t[k] = pk * (pk - sr[k] * nb)
                for e in range(2 if n2 > 1 else 1):
                    k = 0 if e == 0 else n2 - 1
                    km = k - 1 if k > 0 else n2 - 1
                    kp = k + 1 if k < n2 - 1 else 0
                    a2m = c2 if k > 0 else cw[2]
                    a2p = c2 if k < n2 - 1 else cw[2]
                    pk = rr_[k] + beta * pr[k]
                    nb = (a0m * s0m[k] * (r0m[k] + beta * p0m[k])
                          + a0p * s0p[k] * (r0p[k] + beta * p0p[k])
                          + a1m * s1m[k] * (r1m[k] + beta * p1m[k])
                          + a1p * s1p[k] * (r1p[k] + beta * p1p[k])
                          + a2m * sr[km] * (rr_[km] + beta * pr[km])
                          + a2p * sr[kp] * (rr_[kp] + beta * pr[kp]))
                    out[k] = pk
                    t[k] = pk * (pk - sr[k] * nb)
                part[tile] += _sum8(t, n2)
    return _serial_sum(part)


@njit(**_JIT)
def _cg_update_uniform(S, c, cw, p, y, r, alpha):  # pragma: no cover - compiled
    n0, n1, n2 = r.shape
    c2 = c[2]
    jb = _tile_rows(n1, n2)
    part = np.zeros((n1 + jb - 1) // jb)
    for tile in prange((n1 + jb - 1) // jb):
        t = np.empty(n2)
        for i in range(n0):
            for j in range(tile * jb, min(tile * jb + jb, n1)):
                im = i - 1 if i > 0 else n0 - 1
                ip = i + 1 if i < n0 - 1 else 0
                jm = j - 1 if j > 0 else n1 - 1
                jp = j + 1 if j < n1 - 1 else 0
                a0m = c[0] if i > 0 else cw[0]
                a0p = c[0] if i < n0 - 1 else cw[0]
                a1m = c[1] if j > 0 else cw[1]
                a1p = c[1] if j < n1 - 1 else cw[1]
                sr, pr = S[i, j], p[i, j]
                s0m, p0m = S[im, j], p[im, j]
                s0p, p0p = S[ip, j], p[ip, j]
                s1m, p1m = S[i, jm], p[i, jm]
                s1p, p1p = S[i, jp], p[i, jp]
                yr, rr_ = y[i, j], r[i, j]
                for k in range(1, n2 - 1):
                    nb = (a0m * s0m[k] * p0m[k] + a0p * s0p[k] * p0p[k] + a1m * s1m[k] * p1m[k]
                          + a1p * s1p[k] * p1p[k]
                          + c2 * (sr[k - 1] * pr[k - 1] + sr[k + 1] * pr[k + 1]))
                    q = pr[k] - sr[k] * nb
                    yr[k] += alpha * pr[k]
                    rk = rr_[k] - alpha * q
                    rr_[k] = rk
                    t[k] = rk * rk
                for e in range(2 if n2 > 1 else 1):
                    k = 0 if e == 0 else n2 - 1
                    km = k - 1 if k > 0 else n2 - 1
                    kp = k + 1 if k < n2 - 1 else 0
                    a2m = c2 if k > 0 else cw[2]
                    a2p = c2 if k < n2 - 1 else cw[2]
                    nb = (a0m * s0m[k] * p0m[k] + a0p * s0p[k] * p0p[k] + a1m * s1m[k] * p1m[k]
                          + a1p * s1p[k] * p1p[k] + a2m * sr[km] * pr[km] + a2p * sr[kp] * pr[kp])
                    q = pr[k] - sr[k] * nb
                    yr[k] += alpha * pr[k]
                    rk = rr_[k] - alpha * q
                    rr_[k] = rk
                    t[k] = rk * rk
                part[tile] += _sum8(t, n2)
    return _serial_sum(part)


# ---------------------------------------------------------------- Jacobi-CG, variable couplings
# The scaled couplings W~_a[i] = S_i W_a[i] S_{i-e_a} are precomputed, so A~ = 1 - offdiag(W~)
# and the kernels stream r, p, y and the d coupling arrays.


@njit(inline="always", cache=True)
def _offdiag_dir(T0, T1, T2, r, p, beta, i, j, k, n0, n1, n2):  # pragma: no cover - compiled
    """sum_nb W~ (r + beta p)_nb at (i, j, k)."""
    s = 0.0
    if n0 > 1:
        im = i - 1 if i > 0 else n0 - 1
        ip = i + 1 if i < n0 - 1 else 0
        s += (T0[i, j, k] * (r[im, j, k] + beta * p[im, j, k])
              + T0[ip, j, k] * (r[ip, j, k] + beta * p[ip, j, k]))
    if n1 > 1:
        jm = j - 1 if j > 0 else n1 - 1
        jp = j + 1 if j < n1 - 1 else 0
        s += (T1[i, j, k] * (r[i, jm, k] + beta * p[i, jm, k])
              + T1[i, jp, k] * (r[i, jp, k] + beta * p[i, jp, k]))
    if n2 > 1:
        km = k - 1 if k > 0 else n2 - 1
        kp = k + 1 if k < n2 - 1 else 0
        s += (T2[i, j, k] * (r[i, j, km] + beta * p[i, j, km])
              + T2[i, j, kp] * (r[i, j, kp] + beta * p[i, j, kp]))
    return s


@njit(**_JIT)
def _cg_direction_var(T0, T1, T2, r, p_old, p_new, beta):  # pragma: no cover - compiled
    n0, n1, n2 = r.shape
    part = np.empty(n0 * n1)
    for rr in prange(n0 * n1):
        i = rr // n1
        j = rr - i * n1
        acc = 0.0
        for k in range(n2):
            pk = r[i, j, k] + beta * p_old[i, j, k]
            p_new[i, j, k] = pk
            acc += pk * (pk - _offdiag_dir(T0, T1, T2, r, p_old, beta, i, j, k, n0, n1, n2))
        part[rr] = acc
    return _serial_sum(part)


@njit(**_JIT)
def _cg_update_var(T0, T1, T2, p, y, r, alpha):  # pragma: no cover - compiled
    n0, n1, n2 = r.shape
    part = np.empty(n0 * n1)
    for rr in prange(n0 * n1):
        i = rr // n1
        j = rr - i * n1
        acc = 0.0
        for k in range(n2):
            q = p[i, j, k] - _offdiag_dir(T0, T1, T2, p, p, 0.0, i, j, k, n0, n1, n2)
            y[i, j, k] += alpha * p[i, j, k]
            rk = r[i, j, k] - alpha * q
            r[i, j, k] = rk
            acc += rk * rk
        part[rr] = acc
    return _serial_sum(part)


# ---------------------------------------------------------------- multigrid kernels


@njit(**_JIT)
def _rbgs(D, W0, W1, W2, x, b, color):  # pragma: no cover - compiled
    """One half-sweep of red-black Gauss-Seidel on the cells with (i + j + k) % 2 == color."""
    n0, n1, n2 = x.shape
    for r in prange(n0 * n1):
        i = r // n1
        j = r - i * n1
        k0 = (i + j + color) % 2
        for k in range(k0, n2, 2):
            # x_k += (b - H x)_k / D_k with the current neighbours (x_k's own term cancels).
            res = b[i, j, k] - _row_var(D, W0, W1, W2, x, i, j, k, n0, n1, n2)
            x[i, j, k] += res / D[i, j, k]


@njit(**_JIT)
def _rbgs_zero(D, x, b, color):  # pragma: no cover - compiled
    """First half-sweep from x = 0: x = b / D on ``color`` cells, 0 elsewhere."""
    n0, n1, n2 = x.shape
    for r in prange(n0 * n1):
        i = r // n1
        j = r - i * n1
        k0 = (i + j + color) % 2
        for k in range(n2):
            x[i, j, k] = b[i, j, k] / D[i, j, k] if (k % 2) == k0 else 0.0


@njit(**_JIT)
def _residual_restrict(D, W0, W1, W2, x, b, rc, f0, f1, f2):  # pragma: no cover - compiled
    """rc[I] = sum over the aggregate of I of (b - H x) (restriction R = P^T)."""
    n0, n1, n2 = x.shape
    m0, m1, m2 = rc.shape
    for rr in prange(m0 * m1):
        I0 = rr // m1
        I1 = rr - I0 * m1
        for K in range(m2):
            rc[I0, I1, K] = 0.0
        for i in range(I0 * f0, min(I0 * f0 + f0, n0)):
            for j in range(I1 * f1, min(I1 * f1 + f1, n1)):
                for k in range(n2):
                    res = b[i, j, k] - _row_var(D, W0, W1, W2, x, i, j, k, n0, n1, n2)
                    rc[I0, I1, k // f2] += res


@njit(**_JIT)
def _prolong_add(x, ec, f0, f1, f2):  # pragma: no cover - compiled
    """x += P ec (piecewise-constant prolongation)."""
    n0, n1, n2 = x.shape
    for r in prange(n0 * n1):
        i = r // n1
        j = r - i * n1
        er = ec[i // f0, j // f1]
        xr = x[i, j]
        for k in range(n2):
            xr[k] += er[k // f2]


@njit(**_JIT)
def _apply_var_dot(D, W0, W1, W2, x, y):  # pragma: no cover - compiled
    """y = H x and return <x, y> (one pass)."""
    n0, n1, n2 = x.shape
    part = np.empty(n0 * n1)
    for r in prange(n0 * n1):
        i = r // n1
        j = r - i * n1
        t = np.empty(n2)
        for k in range(n2):
            v = _row_var(D, W0, W1, W2, x, i, j, k, n0, n1, n2)
            y[i, j, k] = v
            t[k] = v * x[i, j, k]
        part[r] = _sum8(t, n2)
    return _serial_sum(part)


@njit(**_JIT)
def _cg_step(x, r, p, q, alpha):  # pragma: no cover - compiled
    """x += alpha p, r -= alpha q; return <r, r> (one pass)."""
    n0, n1, n2 = x.shape
    part = np.empty(n0 * n1)
    for rr in prange(n0 * n1):
        i = rr // n1
        j = rr - i * n1
        xr, rr_, pr, qr = x[i, j], r[i, j], p[i, j], q[i, j]
        t = np.empty(n2)
        for k in range(n2):
            xr[k] += alpha * pr[k]
            v = rr_[k] - alpha * qr[k]
            rr_[k] = v
            t[k] = v * v
        part[rr] = _sum8(t, n2)
    return _serial_sum(part)


@njit(**_JIT)
def _dot(a, b):  # pragma: no cover - compiled
    n0, n1, n2 = a.shape
    part = np.empty(n0 * n1)
    for rr in prange(n0 * n1):
        i = rr // n1
        j = rr - i * n1
        ar, br = a[i, j], b[i, j]
        t = np.empty(n2)
        for k in range(n2):
            t[k] = ar[k] * br[k]
        part[rr] = _sum8(t, n2)
    return _serial_sum(part)


@njit(**_JIT)
def _xpby(z, p, beta):  # pragma: no cover - compiled
    """p = z + beta p."""
    n0, n1, n2 = z.shape
    for rr in prange(n0 * n1):
        i = rr // n1
        j = rr - i * n1
        zr, pr = z[i, j], p[i, j]
        for k in range(n2):
            pr[k] = zr[k] + beta * pr[k]
