"""Reduced-coordinate linear algebra shared by the kernel families (THEORY §3, §4). numba only.

Scores of a reduced point z are ``Wr z + b`` with ``Wr`` lower triangular. For a tie set
``T = (j0, j1, ..)`` the normal space ``N_T`` is spanned by ``w_jl - w_j0`` with Gram matrix
``G_T[a, b] = (w_ja - w_j0).(w_jb - w_j0)``; the projection of x on ``S_T = {s_j equal, j in T}``
moves x by ``n_T`` with ``|n_T|^2 = e^T G_T^{-1} e`` (``e`` the score gaps to ``j0``).
"""

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def lower_matvec(L, g, scale, bias, out):
    """``out = scale * L @ g + bias`` for lower-triangular L (the reduced weights)."""
    M = L.shape[0]
    for i in range(M):
        acc = 0.0
        for j in range(i + 1):
            acc += L[i, j] * g[j]
        out[i] = scale * acc + bias[i]


@njit(cache=True, nogil=True)
def subset_normal_distance2(s, gram, T, t, G, e, lam):
    """``|n_T|^2`` for tie set ``T[:t]``; leaves ``G_T^{-1} e`` in ``lam[:t-1]``.

    Solves ``G_T lam = e`` by Cholesky in place; ``G_T`` is positive definite for full-rank W
    (``inf`` is returned where it is not).
    """
    q = t - 1
    j0 = T[0]
    for a in range(q):
        ja = T[a + 1]
        e[a] = s[ja] - s[j0]
        for b in range(a + 1):
            jb = T[b + 1]
            G[a, b] = gram[ja, jb] - gram[ja, j0] - gram[j0, jb] + gram[j0, j0]
    # Cholesky G = L L^T into the lower triangle of G
    for a in range(q):
        acc = G[a, a]
        for c in range(a):
            acc -= G[a, c] * G[a, c]
        if acc <= 0.0:
            return np.inf
        G[a, a] = math.sqrt(acc)
        for b in range(a + 1, q):
            acc2 = G[b, a]
            for c in range(a):
                acc2 -= G[b, c] * G[a, c]
            G[b, a] = acc2 / G[a, a]
    for a in range(q):  # forward: L y = e
        acc = e[a]
        for c in range(a):
            acc -= G[a, c] * lam[c]
        lam[a] = acc / G[a, a]
    d2 = 0.0
    for a in range(q):
        d2 += lam[a] * lam[a]
    for a in range(q - 1, -1, -1):  # backward: L^T lam = y
        acc = lam[a]
        for c in range(a + 1, q):
            acc -= G[c, a] * lam[c]
        lam[a] = acc / G[a, a]
    return d2


@njit(cache=True, nogil=True)
def orthonormal_normal_basis(Wr, J, r, Q):
    """Gram-Schmidt basis ``Q[:r]`` of N_J (rows, reduced coordinates); returns det G_J."""
    M = Wr.shape[0]
    det = 1.0
    j0 = J[0]
    for l in range(r):
        jl = J[l + 1]
        for i in range(M):
            Q[l, i] = Wr[jl, i] - Wr[j0, i]
        for _rep in range(2):  # twice is enough for orthogonality to machine precision
            for m in range(l):
                dot = 0.0
                for i in range(M):
                    dot += Q[m, i] * Q[l, i]
                for i in range(M):
                    Q[l, i] -= dot * Q[m, i]
        nrm2 = 0.0
        for i in range(M):
            nrm2 += Q[l, i] * Q[l, i]
        det *= nrm2
        inv = 1.0 / math.sqrt(nrm2)
        for i in range(M):
            Q[l, i] *= inv
    return det


@njit(cache=True, nogil=True)
def project_out(Q, r, g):
    """``g -= Q[:r]^T Q[:r] g``: project g onto the orthogonal complement of N_J (i.e. on S_J)."""
    M = g.shape[0]
    for l in range(r):
        dot = 0.0
        for m in range(M):
            dot += Q[l, m] * g[m]
        for m in range(M):
            g[m] -= dot * Q[l, m]


@njit(cache=True, nogil=True)
def fibre_point(Q, r, dirn, rn, g, ry, x):
    """``x = ry g + rn sum_l dirn[l] Q[l]``: the tube sampler's point from its tangential part
    ``g`` (already in S_J) and its normal direction ``dirn`` in the basis ``Q[:r]`` of N_J."""
    M = g.shape[0]
    for m in range(M):
        acc = ry * g[m]
        for l in range(r):
            acc += rn * dirn[l] * Q[l, m]
        x[m] = acc


@njit(cache=True, nogil=True)
def next_combination(idx, t, n):
    """Advance ``idx[:t]`` to the next t-subset of range(n) in lexicographic order.

    Returns False (leaving ``idx`` undefined) after the last subset.
    """
    a = t - 1
    while a >= 0 and idx[a] == n - t + a:
        a -= 1
    if a < 0:
        return False
    idx[a] += 1
    for b in range(a + 1, t):
        idx[b] = idx[b - 1] + 1
    return True
