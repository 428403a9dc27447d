"""Order and tube statistics of one point from its scores (THEORY §2, §4). numba only.

For a point with scores ``s`` the kernels compute, per order r = 1..rmax, the smallest eps at
which the point lies in the order-r tube of the chosen metric (``inf`` when it exceeds the
``eps_max`` the caller cares about). Membership at any eps is then ``stat[r-1] <= eps``, so one
pass serves every eps.

- score: min over windows of r+1 consecutive sorted scores containing ranks k and k+1 of the
  spread ``g_p - g_{p+r}`` (THEORY §4.3).
- euclidean / normal: for a tie set T with common value v, the projection of x on
  ``S_T = {s_i = s_j, i, j in T}`` moves x by ``n_T`` with ``|n_T|^2 = e^T G_T^{-1} e`` (``e`` the
  score gaps to the first member, ``G_T`` the Gram matrix of ``w_j - w_{j0}``). The nearest point of
  ``Gamma^(>=r)`` lies in the relative interior of some face with exact tie set T, where
  ``Gamma^(>=r)`` is locally all of ``S_T``; hence
  ``dist(x, Gamma^(>=r)) = min |n_T|`` over T with ``|T| >= r+1`` whose projection *straddles*
  ranks k, k+1 (c experts strictly above v with ``c <= k-1`` and ``c + |T| + ties >= k+1``).
  This is THEORY §4.1's min over cones of the non-convex ``cl Gamma_J``, organised by faces.
  The normal (fibre) tube of ``Gamma^(r)`` uses only ``|T| = r+1`` (no caps). Only experts within
  ``2 max|w| eps_max`` of ``g_k`` can be in T, and ``|n_T|`` grows with T, so the enumeration
  stops at the first size where no subset is within eps_max.
"""

import functools
import math

import numpy as np
from numba import njit

from discosim._kernels.codes import METRIC_NORMAL, METRIC_SCORE
from discosim._kernels.geometry import next_combination, subset_normal_distance2
from discosim.model import selection as _selection

tie_straddles_cut = njit(cache=True, nogil=True)(_selection.tie_straddles_cut)


@njit(cache=True, nogil=True)
def top_sorted(ST, i, L):
    """Rows ``0..L-1`` of column i of ``ST`` become the column's L largest entries, descending.

    Partial insertion sort in place: an entry is read before any write can reach its row.
    """
    n = 0
    for row in range(ST.shape[0]):
        v = ST[row, i]
        if n < L:
            j = n
            n += 1
        elif v > ST[L - 1, i]:
            j = L - 1
        else:
            continue
        while j > 0 and ST[j - 1, i] < v:
            ST[j, i] = ST[j - 1, i]
            j -= 1
        ST[j, i] = v


@functools.lru_cache(maxsize=None)
def sorting_network(n):
    """Batcher's odd-even merge sort network for n inputs, as (n_pairs, 2) int64 pairs.

    Cached (read-only array): every chunk of every estimator asks for the same network.

    Compare-exchange with min/max has no data-dependent branches: for small M it beats
    insertion, whose mispredicted branches dominate on random scores.
    """
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    out = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    out.setflags(write=False)
    return out


NETWORK_MAX_M = 16  # one point at a time: above this, insertion into a short buffer is cheaper
NETWORK_MAX_M_BLOCK = 512  # a block of points (vector loops over samples): the network wins


def sort_pairs_for(M, block=False):
    """The network for M experts, or an empty array where insertion is used instead.

    Both are read-only arrays, so every kernel is compiled for one ``pairs`` type only.
    """
    limit = NETWORK_MAX_M_BLOCK if block else NETWORK_MAX_M
    return sorting_network(M if M <= limit else 0)


@njit(cache=True, nogil=True)
def score_window_stats(ST, m, k, rmax, pairs, stats):
    """Score-window statistics of the first ``m`` columns of ``ST`` (M, n), one point a column.

    ``stats[r-1, i]`` = min spread ``g_p - g_{p+r}`` of r+1 consecutive sorted scores of column i
    whose window holds ranks k, k+1 (THEORY §4.3). The columns are sorted in place (descending;
    with insertion only their ``k + rmax`` largest entries, which are all the windows read).

    Samples sit along the fast axis, so every compare-exchange of the network and every window
    spread is a vector loop over samples (no per-sample branches); a single point is the
    one-column case (:func:`point_stats`).

    ``pairs``: a sorting network (:func:`sort_pairs_for`) or empty for partial insertion
    (:func:`top_sorted`).
    """
    M = ST.shape[0]
    # 2-D indexing, not row views: creating a view costs reference counting, which would
    # dominate the one-column case
    if pairs.shape[0] > 0:
        for p in range(pairs.shape[0]):
            a = pairs[p, 0]
            b = pairs[p, 1]
            for i in range(m):
                x = ST[a, i]
                y = ST[b, i]
                # explicit selects compile to branch-free code; builtin max/min measured ~25% slower
                c = x < y
                ST[a, i] = y if c else x
                ST[b, i] = x if c else y
    else:
        L = min(M, k + rmax)
        for i in range(m):
            top_sorted(ST, i, L)
    for r in range(1, rmax + 1):
        for i in range(m):
            stats[r - 1, i] = np.inf
        for p in range(max(1, k - r + 1), min(k, M - r) + 1):
            for i in range(m):
                d = ST[p - 1, i] - ST[p + r - 1, i]
                stats[r - 1, i] = d if d < stats[r - 1, i] else stats[r - 1, i]


@njit(cache=True, nogil=True)
def projection_straddles(s, gram, k, T, t, lam, in_T, tol):
    """Whether the projection of x on S_T has T tied across ranks k and k+1.

    Projected scores are ``s_a - sum_l lam_l (gram[a, T_l] - gram[a, T_0])``.
    """
    M = s.shape[0]
    j0 = T[0]
    v = s[j0]
    for l in range(t - 1):
        v -= lam[l] * (gram[j0, T[l + 1]] - gram[j0, j0])
    above = 0
    ties = 0
    for a in range(M):
        if in_T[a]:
            continue
        sa = s[a]
        for l in range(t - 1):
            sa -= lam[l] * (gram[a, T[l + 1]] - gram[a, j0])
        if sa > v + tol:
            above += 1
            if above > k - 1:  # no tie can bring the cut back inside T
                return False
        elif sa >= v - tol:
            ties += 1
    return tie_straddles_cut(above, t, k, ties)


@njit(cache=True, nogil=True)
def slice_distance_stats(s, gram, k, rmax, eps_max, wmax, exact_order, ws_G, ws_v, ws_i, out):
    """Distances to ``Gamma^(>=r)`` (euclidean) or fibre distances to ``Gamma^(r)`` (normal).

    Parameters
    ----------
    s : (M,) scores; gram : (M, M) Gram matrix of the tie weights.
    exact_order : bool
        False: euclidean, out[r-1] = dist(x, Gamma^(>=r)). True: normal tube of Gamma^(r)
        (tie sets of size exactly r+1).
    ws_G : (M, M) float workspace; ws_v : (4, M) float workspace; ws_i : (4, M) int workspace.
    out : (rmax,) distances, ``inf`` where larger than ``eps_max``.
    """
    M = s.shape[0]
    for r in range(rmax):
        out[r] = np.inf
    e = ws_v[1]
    lam = ws_v[2]
    cand = ws_i[0]
    idx = ws_i[1]
    T = ws_i[2]
    in_T = ws_i[3]
    for i in range(M):  # ws_G is free until the first tie set's Cholesky factor
        ws_G[i, 0] = s[i]
    top_sorted(ws_G, 0, k)
    gk = ws_G[k - 1, 0]
    thresh = 2.0 * wmax * eps_max * (1.0 + 1e-9)
    nc = 0
    for i in range(M):
        in_T[i] = 0
        if abs(s[i] - gk) <= thresh:
            cand[nc] = i
            nc += 1
    eps2 = eps_max * eps_max
    tol = 1e-11 * (abs(gk) + wmax * eps_max + 1e-300)
    for t in range(2, nc + 1):
        if exact_order and t - 1 > rmax:
            break
        any_close = False
        for a in range(t):
            idx[a] = a
        while True:
            for a in range(t):
                T[a] = cand[idx[a]]
            d2 = subset_normal_distance2(s, gram, T, t, ws_G, e, lam)
            q = t - 1
            # a tie set can only improve orders <= q, whose current best is at most out[top]
            top = q - 1 if q <= rmax else rmax - 1
            if d2 <= eps2:
                any_close = True
            if d2 <= eps2 and d2 < out[top] * out[top]:
                for a in range(t):
                    in_T[T[a]] = 1
                ok = projection_straddles(s, gram, k, T, t, lam, in_T, tol)
                for a in range(t):
                    in_T[T[a]] = 0
                if ok:
                    d = math.sqrt(d2)
                    if exact_order:
                        if d < out[q - 1]:
                            out[q - 1] = d
                    else:
                        for r in range(min(q, rmax)):
                            if d < out[r]:
                                out[r] = d
            if not next_combination(idx, t, nc):
                break
        if not any_close:
            break


@njit(cache=True, nogil=True)
def point_workspace(M):
    """Workspaces ``(ws_G, ws_v, ws_i)`` of :func:`point_stats` for M experts.

    ``ws_v`` has ``max(4, M)`` rows so that its first column holds a score column's statistics.
    """
    return np.empty((M, M)), np.empty((max(4, M), M)), np.empty((4, M), dtype=np.int64)


@njit(cache=True, nogil=True)
def point_stats(s, gram, k, rmax, metric, eps_max, wmax, pairs, ws_G, ws_v, ws_i, out):
    """Tube statistics of one point for the chosen metric (see the module docstring).

    ``pairs``: :func:`sort_pairs_for` ``(M)`` (score metric only); workspaces from
    :func:`point_workspace`.
    """
    if metric == METRIC_SCORE:
        # the one-column case of the block kernel, in workspace columns: no array views to create
        for j in range(s.shape[0]):
            ws_G[j, 0] = s[j]
        score_window_stats(ws_G, 1, k, rmax, pairs, ws_v)
        for r in range(rmax):
            out[r] = ws_v[r, 0]
    else:
        slice_distance_stats(s, gram, k, rmax, eps_max, wmax, metric == METRIC_NORMAL,
                             ws_G, ws_v, ws_i, out)


@njit(cache=True, nogil=True)
def stats_from_scores(S, gram, k, rmax, metric, eps_max, wmax, pairs, out):
    """Row-wise :func:`point_stats` for a batch of score vectors ``S`` (n, M) into ``out`` (n, rmax)."""
    n, M = S.shape
    ws_G, ws_v, ws_i = point_workspace(M)
    for i in range(n):
        point_stats(S[i], gram, k, rmax, metric, eps_max, wmax, pairs, ws_G, ws_v, ws_i, out[i])
