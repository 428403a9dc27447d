"""Chunk kernels of the volume estimators (THEORY §3, §8). numba only, no validation.

Each kernel consumes one chunk's Generator and returns sufficient statistics that the caller
merges in chunk order, so results do not depend on how chunks are spread over workers.
"""

import math

import numpy as np
from numba import njit

from .sampling import chi_square, gaussian_vector, lower_matvec, random_subset
from .tubes import METRIC_SCORE, point_stats, projection_straddles, subset_normal_distance2


BLOCK = 256  # samples per block: one BLAS call for the scores, vector loops across samples


@njit(cache=True)
def block_score_stats(ST, m, k, rmax, pairs, stats):
    """Score-window statistics of the first ``m`` columns of ``ST`` (M, BLOCK), in place.

    Samples sit along the fast axis, so every compare-exchange of the sorting network and every
    window spread is a vector loop over samples (no per-sample branches).
    """
    M = ST.shape[0]
    for p in range(pairs.shape[0]):
        ra = ST[pairs[p, 0]]
        rb = ST[pairs[p, 1]]
        for i in range(m):
            x = ra[i]
            y = rb[i]
            c = x < y
            ra[i] = y if c else x
            rb[i] = x if c else y
    for r in range(1, rmax + 1):
        out = stats[r - 1]
        for i in range(m):
            out[i] = np.inf
        for p in range(max(1, k - r + 1), min(k, M - r) + 1):
            hi = ST[p - 1]
            lo = ST[p + r - 1]
            for i in range(m):
                d = hi[i] - lo[i]
                out[i] = d if d < out[i] else out[i]


@njit(cache=True)
def uniform_chunk(rng, n, Wr, bias, gram, k, rmax, radius, dim, metric, cosine_scores,
                  eps_sorted, wmax, pairs, hist):
    """Uniform points of ``B_D(0, R)``; ``hist[r-1, j]`` counts points whose order-r statistic
    falls in ``(eps_sorted[j-1], eps_sorted[j]]`` (last column: above every eps).

    A block's scores are ``Wr @ G^T`` with samples along columns (see :func:`block_score_stats`).
    ``cosine_scores``: scores are ``w.x / |x|`` (rows already normalised), the radius drops out.
    ``pairs``: sorting network for the block path (``sort_pairs_for(M, block=True)``).
    """
    M = Wr.shape[0]
    n_eps = eps_sorted.shape[0]
    eps_max = eps_sorted[n_eps - 1]
    GT = np.empty((M, BLOCK))
    ST = np.empty((M, BLOCK))
    scale = np.empty(BLOCK)
    stats = np.empty((rmax, BLOCK))
    s = np.empty(M)
    stat = np.empty(rmax)
    ws_G = np.empty((M, M))
    ws_v = np.empty((4, M))
    ws_i = np.empty((4, M), dtype=np.int64)
    vector_path = metric == METRIC_SCORE and pairs.shape[0] > 0
    no_pairs = pairs[:0]  # per-point fallback sorts by insertion
    # |x| needs chi^2_{D-M} for cosine scores; uniform-in-ball needs chi^2_{D+2-M} (sampling.py).
    df = float(dim - M) if cosine_scores else float(dim + 2 - M)
    done = 0
    while done < n:
        m = min(BLOCK, n - done)
        for i in range(m):
            ss = 0.0
            for j in range(M):
                x = rng.standard_normal()
                GT[j, i] = x
                ss += x * x
            c = chi_square(rng, df)
            sc = 1.0 / math.sqrt(ss + c)
            scale[i] = sc if cosine_scores else radius * sc
        np.dot(Wr, GT, ST)
        for j in range(M):
            row = ST[j]
            bj = bias[j]
            for i in range(m):
                row[i] = scale[i] * row[i] + bj
        if vector_path:
            block_score_stats(ST, m, k, rmax, pairs, stats)
        else:
            for i in range(m):
                for j in range(M):
                    s[j] = ST[j, i]
                point_stats(s, gram, k, rmax, metric, eps_max, wmax, no_pairs, ws_G, ws_v, ws_i,
                            stat)
                for r in range(rmax):
                    stats[r, i] = stat[r]
        for r in range(rmax):
            row = stats[r]
            h = hist[r]
            for i in range(m):
                x = row[i]
                j = 0
                while j < n_eps and eps_sorted[j] < x:
                    j += 1
                h[j] += 1
        done += m


@njit(cache=True)
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


@njit(cache=True)
def project_out(Q, r, g):
    """``g -= Q[:r]^T Q[:r] g``: project g onto the orthogonal complement of N_J (i.e. on S_J)."""
    M = g.shape[0]
    for l in range(r):
        dot = 0.0
        for m in range(M):
            dot += Q[l, m] * g[m]
        for m in range(M):
            g[m] -= dot * Q[l, m]


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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
            q = r - 1
            while q >= 0 and idx[q] == m - r + q:
                q -= 1
            if q < 0:
                break
            idx[q] += 1
            for b in range(q + 1, r):
                idx[b] = idx[b - 1] + 1
    return total


@njit(cache=True)
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
    g = np.empty(M)
    x = np.empty(M)
    s = np.empty(M)
    zero = np.zeros(M)
    stat = np.empty(r)
    ws_G = np.empty((M, M))
    ws_v = np.empty((4, M))
    ws_i = np.empty((4, M), dtype=np.int64)
    T = np.empty(r + 1, dtype=np.int64)
    idx = np.empty(r + 1, dtype=np.int64)
    order_idx = np.empty(M, dtype=np.int64)
    e = np.empty(M)
    lam = np.empty(M)
    df = float(dim + 2 - M)
    score_metric = metric == METRIC_SCORE
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
        # tangential part: uniform in the (D-r)-ball of radius R sqrt(1-beta) inside S_J
        gaussian_vector(rng, g)
        project_out(Q, r, g)
        ss = 0.0
        for m in range(M):
            ss += g[m] * g[m]
        c = chi_square(rng, df)
        ry = radius * math.sqrt(1.0 - beta[i]) / math.sqrt(ss + c)
        for m in range(M):
            acc = ry * g[m]
            for l in range(r):
                acc += rn * dirn[l] * Q[l, m]
            x[m] = acc
        lower_matvec(Wr, x, 1.0, zero, s)
        in_tube = True
        if score_metric:
            lo = s[Ji[0]]
            hi = lo
            for l in range(1, r + 1):
                v = s[Ji[l]]
                lo = min(lo, v)
                hi = max(hi, v)
            in_tube = hi - lo <= eps
        if in_tube:
            point_stats(s, gram, k, r, metric, eps, wmax, pairs, ws_G, ws_v, ws_i, stat)
            in_tube = stat[r - 1] <= eps
        w = 0.0
        if in_tube:
            if score_metric:
                count = family_count_score(s, r, eps, ws_v[0])
            else:
                count = family_count_subspace(s, gram, r, eps, wmax, order_idx, T, idx, ws_G, e, lam)
            w = factor[i] / max(count, 1)
            total += w
            total2 += w * w
            hits += 1
        if not score_metric:
            subset_normal_distance2(s, gram, Ji, r + 1, ws_G, e, lam)
            for l in range(r + 1):
                in_T[Ji[l]] = 1
            own = projection_straddles(s, gram, k, Ji, r + 1, lam, in_T,
                                       1e-11 * (abs(s[Ji[0]]) + wmax * eps + 1e-300))
            for l in range(r + 1):
                in_T[Ji[l]] = 0
            dlt = (factor[i] if own else 0.0) - w
            osum += dlt
            osum2 += dlt * dlt
    out[0] = total
    out[1] = total2
    out[2] = hits
    out[3] = osum
    out[4] = osum2


@njit(cache=True)
def _comb(n, q):
    if q < 0 or q > n:
        return 0.0
    c = 1.0
    for i in range(q):
        c = c * (n - i) / (i + 1)
    return c


@njit(cache=True)
def alpha_mc_chunk(rng, Wr, gram, k, r, n, fixed_J, halo, out):
    """Monte Carlo of alpha_J over directions (THEORY §5 (b)).

    ``alpha_J = P(P_{S_J} Y in Gamma_J)`` for ``Y ~ N(0, I_M)``. With ``fixed_J`` (r+1 entries)
    this estimates one slice. Otherwise it estimates ``A_r = sum_J alpha_J`` as
    ``E_Y[sum_J 1{P_{S_J} Y in Gamma_J}]``, drawing one J per Y from a proposal ``q(J | Y)``:
    with probability 1/2 uniform over all slices, with probability 1/2 uniform over the slices
    inside the window of ranks ``k-r-halo .. k+r+1+halo`` of Y's own scores (where straddling
    slices live); the weight ``1/q`` keeps it unbiased because the uniform half covers every J.
    ``halo < 0``: uniform proposal only.
    Accumulates ``out`` += [sum f/q, sum (f/q)^2, sum f w/q, sum (f w/q)^2] with
    ``w = det(G_J)^(-1/2)`` (the score-tube weight); for a fixed J, q = 1.
    """
    M = Wr.shape[0]
    Q = np.empty((r, M))
    g = np.empty(M)
    y = np.empty(M)
    t = np.empty(M)
    zero = np.zeros(M)
    J = np.empty(r + 1, dtype=np.int64)
    pick = np.empty(r + 1, dtype=np.int64)
    in_J = np.zeros(M, dtype=np.bool_)
    in_win = np.zeros(M, dtype=np.bool_)
    fixed = fixed_J.shape[0] == r + 1
    n_all = _comb(M, r + 1)
    det = 1.0
    if fixed:
        for l in range(r + 1):
            J[l] = fixed_J[l]
        det = orthonormal_normal_basis(Wr, J, r, Q)
    for _ in range(n):
        gaussian_vector(rng, g)
        inv_q = 1.0
        if not fixed:
            lo = max(0, k - r - 1 - halo)
            hi = min(M, k + r + 1 + halo)
            n_win = _comb(hi - lo, r + 1) if halo >= 0 else 0.0
            if n_win > 0.0:
                lower_matvec(Wr, g, 1.0, zero, t)
                order = np.argsort(-t)
                if rng.random() < 0.5:
                    random_subset(rng, hi - lo, r + 1, pick)
                    for l in range(r + 1):
                        J[l] = order[lo + pick[l]]
                    J.sort()
                else:
                    random_subset(rng, M, r + 1, J)
                for i in range(M):
                    in_win[i] = False
                for i in range(lo, hi):
                    in_win[order[i]] = True
                inside = True
                for l in range(r + 1):
                    inside = inside and in_win[J[l]]
                q = 0.5 / n_all + (0.5 / n_win if inside else 0.0)
                inv_q = 1.0 / q
            else:
                random_subset(rng, M, r + 1, J)
                inv_q = n_all
            det = orthonormal_normal_basis(Wr, J, r, Q)
        for i in range(M):
            y[i] = g[i]
        project_out(Q, r, y)
        lower_matvec(Wr, y, 1.0, zero, t)
        for l in range(r + 1):
            in_J[J[l]] = True
        v = t[J[0]]
        above = 0
        for a in range(M):
            if not in_J[a] and t[a] > v:
                above += 1
        for l in range(r + 1):
            in_J[J[l]] = False
        if k - r <= above <= k - 1:
            w = inv_q / math.sqrt(det)
            out[0] += inv_q
            out[1] += inv_q * inv_q
            out[2] += w
            out[3] += w * w


@njit(cache=True)
def alpha_pairs_chunk(rng, Wr, gram, k, n, out):
    """Order-1 slice constants from all pairs at once: per direction Y ~ N(0, I_M),
    ``F(Y) = sum_{i<j} 1{P_{S_ij} Y in Gamma_ij}`` has mean ``A_1 = sum alpha_ij`` (THEORY §5 (b)).

    Projected scores are ``t_a - lam (G_ai - G_aj)`` with ``lam = (t_i - t_j)/|w_i - w_j|^2``, and
    ``|lam (G_ai - G_aj)| <= |lam| |w_a| |w_i - w_j|``; scanning the others in descending order of
    t stops as soon as the count of experts above exceeds k - 1 or no later expert can be above.
    Accumulates ``out`` += [sum F, sum F^2, sum Fw, sum Fw^2], ``Fw`` weighting each straddling
    pair by ``1/|w_i - w_j|`` (the score-tube weight det(G_J)^(-1/2)).
    """
    M = Wr.shape[0]
    g = np.empty(M)
    t = np.empty(M)
    zero = np.zeros(M)
    neg = np.empty(M)
    wmax = 0.0
    for a in range(M):
        wmax = max(wmax, math.sqrt(gram[a, a]))
    for _ in range(n):
        gaussian_vector(rng, g)
        lower_matvec(Wr, g, 1.0, zero, t)
        for a in range(M):
            neg[a] = -t[a]
        order = np.argsort(neg)
        F = 0.0
        Fw = 0.0
        for i in range(M):
            for j in range(i + 1, M):
                d2 = gram[i, i] + gram[j, j] - 2.0 * gram[i, j]
                dn = math.sqrt(d2)
                lam = (t[i] - t[j]) / d2
                v = t[i] - lam * (gram[i, i] - gram[i, j])
                slack = abs(lam) * dn
                above = 0
                for q in range(M):
                    a = order[q]
                    if a == i or a == j:
                        continue
                    if t[a] + slack * wmax < v:
                        break  # sorted descending: no later expert can be above v
                    if t[a] - lam * (gram[a, i] - gram[a, j]) > v:
                        above += 1
                        if above > k - 1:
                            break
                if above == k - 1:
                    F += 1.0
                    Fw += 1.0 / dn
        out[0] += F
        out[1] += F * F
        out[2] += Fw
        out[3] += Fw * Fw
