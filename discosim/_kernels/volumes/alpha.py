"""Monte Carlo of the slice constants ``A_r = sum_J alpha_J`` and ``B_r`` (THEORY §5 (b)).

``alpha_J = P(P_{S_J} Y in Gamma_J)`` for ``Y ~ N(0, I_M)`` in reduced coordinates: the
fraction of directions whose projection on the tie subspace ``S_J`` has J tied across ranks k,
k+1. numba only, no validation; the caller sums the chunks' accumulators in chunk order.
"""

import math

import numpy as np
from numba import njit

from discosim._kernels.geometry import lower_matvec, orthonormal_normal_basis, project_out
from discosim._kernels.pointstats import tie_straddles_cut
from discosim._kernels.sampling import gaussian_vector, random_subset


@njit(cache=True, nogil=True)
def _comb(n, q):
    """C(n, q) as a float (0 outside 0 <= q <= n)."""
    if q < 0 or q > n:
        return 0.0
    c = 1.0
    for i in range(q):
        c = c * (n - i) / (i + 1)
    return c


@njit(cache=True, nogil=True)
def alpha_mc_chunk(rng, Wr, k, r, n, fixed_J, halo, out):
    """Monte Carlo of alpha_J over directions (THEORY §5 (b)).

    ``alpha_J = P(P_{S_J} Y in Gamma_J)`` for ``Y ~ N(0, I_M)``. With ``fixed_J`` (r+1 entries)
    this estimates one slice. Otherwise it estimates ``A_r = sum_J alpha_J`` as
    ``E_Y[sum_J 1{P_{S_J} Y in Gamma_J}]``, drawing one J per Y from a proposal ``q(J | Y)``:
    with probability 1/2 uniform over all slices, with probability 1/2 uniform over the slices
    inside the window of ranks ``k-r-halo .. k+r+1+halo`` of Y's own scores (where straddling
    slices live); the weight ``1/q`` keeps it unbiased because the uniform half covers every J.
    ``halo >= 0``; the window then always holds at least r+1 experts (M >= r+1).
    Accumulates ``out`` += [sum f/q, sum (f/q)^2, sum f w/q, sum (f w/q)^2] with
    ``w = det(G_J)^(-1/2)`` (the score-tube weight); for a fixed J, q = 1.
    """
    M = Wr.shape[0]
    Q = np.empty((r, M))
    vec = np.empty((3, M))
    g, y, t = vec[0], vec[1], vec[2]
    zero = np.zeros(M)
    subset = np.empty((2, r + 1), dtype=np.int64)
    J, pick = subset[0], subset[1]
    flags = np.zeros((2, M), dtype=np.bool_)
    in_J, in_win = flags[0], flags[1]
    fixed = fixed_J.shape[0] == r + 1
    n_all = _comb(M, r + 1)
    lo = max(0, k - r - 1 - halo)  # the proposal's window of ranks
    hi = min(M, k + r + 1 + halo)
    n_win = _comb(hi - lo, r + 1)
    det = 1.0
    if fixed:
        for l in range(r + 1):
            J[l] = fixed_J[l]
        det = orthonormal_normal_basis(Wr, J, r, Q)
    for _ in range(n):
        gaussian_vector(rng, g)
        inv_q = 1.0
        if not fixed:
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
        if tie_straddles_cut(above, r + 1, k):
            w = inv_q / math.sqrt(det)
            out[0] += inv_q
            out[1] += inv_q * inv_q
            out[2] += w
            out[3] += w * w


@njit(cache=True, nogil=True)
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
                if tie_straddles_cut(above, 2, k):
                    F += 1.0
                    Fw += 1.0 / dn
        out[0] += F
        out[1] += F * F
        out[2] += Fw
        out[3] += Fw * Fw
