"""The importance (tube) sampler of the tube volumes (THEORY §8). numba only, no validation.

Karp-Luby-Madras over the slices: draw J uniformly, x uniform in the part of the ball within
the fibre radius rho_J of ``S_J`` (normal part of squared radius fraction beta ~ Beta(r/2, d/2+1)
truncated at rho_J^2/R^2, tangential part uniform in the remaining ball), and score
``C(M, r+1) P_J 1{x in tube_r} / N(x)``, with ``P_J`` the fraction of the ball within rho_J of
``S_J`` and ``N(x)`` the number of slices whose such region holds x. The mean is the fraction of
the ball in the order-r tube, with relative error bounded as eps -> 0.

Phases: :func:`tube_draw_slices` (slices, fibre radii, uniforms), then the caller draws beta
with SciPy, then :func:`tube_chunk` builds and scores the points. Each phase consumes the chunk's
Generator, and the caller merges chunk sums in chunk order.
"""

import math

import numpy as np
from numba import njit

from discosim._kernels.codes import METRIC_SCORE
from discosim._kernels.geometry import (fibre_point, lower_matvec, next_combination, orthonormal_normal_basis,
                       project_out,
                       subset_normal_distance2)
from discosim._kernels.pointstats import point_stats, point_workspace, projection_straddles
from discosim._kernels.sampling import gaussian_vector, random_subset, sphere_lift_norm


@njit(cache=True, nogil=True)
def score_circumradius2(gram, J, r, eps, fake, G, e, lam):
    """Squared circumradius of the score fibre {n in N_J: spread of s_J(n) <= eps}.

    Vertices in gap coordinates ``delta_l = (w_{j_l} - w_{j0}).n`` put each of the r+1 scores at
    the bottom or top of the window: ``delta_l = eps (1[l in S] - 1[0 in S])`` for nonempty proper
    subsets S of {0..r}; ``|n|^2 = delta^T G_J^{-1} delta``. The max over vertices is the radius.
    """
    best = 0.0
    # reuse the Cholesky solver with fake scores whose gaps are the vertex's delta
    n_sub = 1 << (r + 1)
    for mask in range(1, n_sub - 1):
        top0 = 1.0 if (mask & 1) else 0.0
        for l in range(r + 1):
            fake[J[l]] = eps * ((1.0 if (mask >> l) & 1 else 0.0) - top0)
        d2 = subset_normal_distance2(fake, gram, J, r + 1, G, e, lam)
        if d2 > best:
            best = d2
    return best


def power_law_log_constant(M, r, dim):
    """``log(C(M, r+1) / (a B(a, b)))``, a = r/2, b = (dim - r)/2 + 1: the constant of
    :func:`power_law_draw`'s weight."""
    from scipy import special

    a, b = 0.5 * r, 0.5 * (dim - r) + 1.0
    return (math.log(math.comb(M, r + 1)) - math.log(a)
            - (special.gammaln(a) + special.gammaln(b) - special.gammaln(a + b)))


@njit(cache=True, nogil=True)
def power_law_draw(u, c, a, bm1, log_const):
    """The GPU's draw of beta on [0, c] (``discosim._cuda.volumes.tube``): ``beta = c u^(1/a)`` from the
    uniform u, and its weight ``C(M, r+1) c^a (1 - beta)^(b-1) / (a B(a, b))`` (``log_const`` from
    :func:`power_law_log_constant`, ``bm1 = b - 1``), whose mean over u is ``C(M, r+1) I_c(a, b)``,
    the CPU's factor. Returns ``(beta, weight)``."""
    beta = c * u ** (1.0 / a)
    return beta, math.exp(log_const + a * math.log(c) + bm1 * math.log1p(-beta))


@njit(cache=True, nogil=True)
def tube_draw_slices(rng, n, M, r, gram, score_metric, eps, J_out, rho2_out, u_out):
    """Phase 1 of the tube sampler: slices J (uniform), squared fibre radius, radial uniforms."""
    G = np.empty((M, M))
    e = np.empty(M)
    lam = np.empty(M)
    fake = np.zeros(M)
    for i in range(n):
        random_subset(rng, M, r + 1, J_out[i])
        if score_metric:
            rho2_out[i] = score_circumradius2(gram, J_out[i], r, eps, fake, G, e, lam)
        else:
            rho2_out[i] = eps * eps
        u_out[i] = rng.random()


@njit(cache=True, nogil=True)
def family_count_score(s, r, eps, order_buf):
    """Number of (r+1)-sets J with spread of s_J <= eps: sum over the lowest member of C(m, r)."""
    M = s.shape[0]
    for i in range(M):
        order_buf[i] = s[i]
    order_buf[:M].sort()
    total = 0
    hi = 0
    for a in range(M):
        if hi < a + 1:
            hi = a + 1
        while hi < M and order_buf[hi] - order_buf[a] <= eps:
            hi += 1
        m = hi - a - 1
        if m >= r:
            c = 1
            for q in range(r):
                c = c * (m - q) // (q + 1)
            total += c
    return total


@njit(cache=True, nogil=True)
def family_count_subspace(s, gram, r, eps, wmax, order_idx, T, idx, G, e, lam):
    """Number of (r+1)-sets J with ``|P_{N_J} x| <= eps`` (the eps-tubes of S_J containing x).

    Members of such a J have scores within ``2 max|w| eps`` of each other, so J lies in a window
    of the sorted scores; enumerate (r+1)-subsets whose lowest member anchors the window.
    """
    M = s.shape[0]
    order = np.argsort(s)
    for i in range(M):
        order_idx[i] = order[i]
    width = 2.0 * wmax * eps * (1.0 + 1e-9)
    eps2 = eps * eps
    total = 0
    for a in range(M):
        lo = order_idx[a]
        hi = a + 1
        while hi < M and s[order_idx[hi]] - s[lo] <= width:
            hi += 1
        m = hi - a - 1
        if m < r:
            continue
        # choose r of the m window members after the anchor
        for q in range(r):
            idx[q] = q
        while True:
            T[0] = lo
            for q in range(r):
                T[q + 1] = order_idx[a + 1 + idx[q]]
            if subset_normal_distance2(s, gram, T, r + 1, G, e, lam) <= eps2:
                total += 1
            if not next_combination(idx, r, m):
                break
    return total


@njit(cache=True, nogil=True)
def subset_spread(s, Ji, r):
    """``max - min`` of the scores ``s[Ji[0..r]]`` (the slice's experts): <= eps on the score tube."""
    lo = s[Ji[0]]
    hi = lo
    for l in range(1, r + 1):
        v = s[Ji[l]]
        lo = min(lo, v)
        hi = max(hi, v)
    return hi - lo


@njit(cache=True, nogil=True)
def score_point(s, Ji, fac, gram, k, r, metric, eps, wmax, pairs, ws_G, ws_v, ws_i, stat, e,
                lam, order_idx, T, idx, in_T):
    """Score of one tube sample with scores ``s`` drawn in the fibre of slice ``Ji``.

    Returns ``(w, dlt)``: ``w = fac 1{x in A_J} 1{x in tube_r} / N(x)`` and, for the euclidean
    and normal metrics, the overlap term ``fac 1{x in fibre_J} - w`` (0 for the score metric).
    """
    score_metric = metric == METRIC_SCORE
    in_tube = True
    if score_metric:
        in_tube = subset_spread(s, Ji, r) <= eps
    if in_tube:
        point_stats(s, gram, k, r, metric, eps, wmax, pairs, ws_G, ws_v, ws_i, stat)
        in_tube = stat[r - 1] <= eps
    w = 0.0
    if in_tube:
        if score_metric:
            count = family_count_score(s, r, eps, ws_v[0])
        else:
            count = family_count_subspace(s, gram, r, eps, wmax, order_idx, T, idx, ws_G, e, lam)
        w = fac / max(count, 1)
    dlt = 0.0
    if not score_metric:
        subset_normal_distance2(s, gram, Ji, r + 1, ws_G, e, lam)
        for l in range(r + 1):
            in_T[Ji[l]] = 1
        own = projection_straddles(s, gram, k, Ji, r + 1, lam, in_T,
                                   1e-11 * (abs(s[Ji[0]]) + wmax * eps + 1e-300))
        for l in range(r + 1):
            in_T[Ji[l]] = 0
        dlt = (fac if own else 0.0) - w
    return w, dlt


@njit(cache=True, nogil=True)
def score_rows(S, J, fac, gram, k, r, metric, eps, wmax, pairs, out):
    """:func:`score_point` over the rows of ``S`` (scores), ``J`` (slices) and ``fac``, in row
    order, added into ``out`` as :func:`tube_chunk` does (the GPU's handed-back samples)."""
    M = S.shape[1]
    stat = np.empty(r)
    vec = np.empty((2, M))
    e, lam = vec[0], vec[1]
    ws_G, ws_v, ws_i = point_workspace(M)
    subset = np.empty((2, r + 1), dtype=np.int64)
    order_idx = np.empty(M, dtype=np.int64)
    in_T = np.zeros(M, dtype=np.int64)
    for i in range(S.shape[0]):
        w, dlt = score_point(S[i], J[i], fac[i], gram, k, r, metric, eps, wmax, pairs, ws_G, ws_v,
                             ws_i, stat, e, lam, order_idx, subset[0], subset[1], in_T)
        out[0] += w
        out[1] += w * w
        out[2] += 1 if w > 0.0 else 0
        out[3] += dlt
        out[4] += dlt * dlt


@njit(cache=True, nogil=True)
def tube_chunk(rng, Wr, gram, k, r, radius, dim, metric, eps, wmax, pairs, J, beta, factor, out):
    """Phase 3 of the tube (importance) sampler for order r at one eps (THEORY §8).

    For each pre-drawn slice ``J[i]`` and squared normal radius fraction ``beta[i]`` (truncated
    Beta(r/2, d/2+1), drawn by the caller), build x uniform in the fibre tube of S_J inside the
    ball, and score ``factor[i] * 1{x in A_J} 1{x in tube_r} / N(x)``.
    For the euclidean and normal metrics the same sample also scores the overlap
    ``S - U = sum_J lambda(fibre_J) - lambda(union)`` through
    ``factor[i] * (1{x in fibre_J} - 1{x in tube_r} / N(x))``: it is zero except where fibres
    overlap, so its relative error stays small where the gap ``S - U`` is small.
    ``out`` = [sum of scores, sum of squares, number of nonzero scores, overlap sum, its squares].
    """
    M = Wr.shape[0]
    Q = np.empty((r, M))
    dirn = np.empty(r)
    vec = np.empty((5, M))
    g, x, s, e, lam = vec[0], vec[1], vec[2], vec[3], vec[4]
    zero = np.zeros(M)
    stat = np.empty(r)
    ws_G, ws_v, ws_i = point_workspace(M)
    subset = np.empty((2, r + 1), dtype=np.int64)
    T, idx = subset[0], subset[1]
    order_idx = np.empty(M, dtype=np.int64)
    df = float(dim + 2 - M)
    in_T = np.zeros(M, dtype=np.int64)
    total = 0.0
    total2 = 0.0
    hits = 0
    osum = 0.0
    osum2 = 0.0
    for i in range(J.shape[0]):
        Ji = J[i]
        orthonormal_normal_basis(Wr, Ji, r, Q)
        # normal part: radius R sqrt(beta) in a uniform direction of N_J
        dn = math.sqrt(gaussian_vector(rng, dirn))
        rn = radius * math.sqrt(beta[i]) / dn
        # tangential part: uniform in the (D-r)-ball of radius R sqrt(1-beta) inside S_J: the
        # reduced-ball construction in S_J, (M-r) Gaussian coordinates, (D-r)+2-(M-r) = D+2-M
        gaussian_vector(rng, g)
        project_out(Q, r, g)
        ss = 0.0
        for m in range(M):
            ss += g[m] * g[m]
        ry = radius * math.sqrt(1.0 - beta[i]) / sphere_lift_norm(rng, ss, df)
        fibre_point(Q, r, dirn, rn, g, ry, x)
        lower_matvec(Wr, x, 1.0, zero, s)
        w, dlt = score_point(s, Ji, factor[i], gram, k, r, metric, eps, wmax, pairs, ws_G, ws_v,
                             ws_i, stat, e, lam, order_idx, T, idx, in_T)
        total += w
        total2 += w * w
        hits += 1 if w > 0.0 else 0
        osum += dlt
        osum2 += dlt * dlt
    out[0] = total
    out[1] = total2
    out[2] = hits
    out[3] = osum
    out[4] = osum2
