"""The uniform sampler of the tube volumes (THEORY §3, §4). numba only, no validation.

Points uniform in ``B_D(0, R)`` are drawn in reduced coordinates (:mod:`.sampling`); one pass
over a chunk records, per order r, the histogram of the points' order-r statistics
(:mod:`.pointstats`) over the sorted eps grid, so every eps is served by the same points. The
caller sums the chunks' histograms in chunk order.
"""

import numpy as np
from numba import njit

from discosim._kernels.codes import METRIC_NORMAL, METRIC_SCORE
from discosim._kernels.pointstats import point_workspace, score_window_stats, slice_distance_stats
from discosim._kernels.sampling import gaussian_vector, sphere_lift_norm

BLOCK = 256  # samples per block: one BLAS call for the scores, vector loops across samples


@njit(cache=True, nogil=True)
def uniform_chunk(rng, n, Wr, bias, gram, k, rmax, radius, dim, metric, cosine_scores,
                  eps_sorted, wmax, pairs, hist):
    """Uniform points of ``B_D(0, R)``; ``hist[r-1, j]`` counts points whose order-r statistic
    falls in ``(eps_sorted[j-1], eps_sorted[j]]`` (last column: above every eps).

    A block's scores are ``Wr @ G^T`` with samples along columns, so the score statistics run as
    vector loops over samples (:func:`.pointstats.score_window_stats`).
    ``cosine_scores``: scores are ``w.x / |x|`` (rows already normalised), the radius drops out.
    ``pairs``: ``sort_pairs_for(M, block=True)``.
    """
    M = Wr.shape[0]
    n_eps = eps_sorted.shape[0]
    eps_max = eps_sorted[n_eps - 1]
    GT = np.empty((M, BLOCK))
    ST = np.empty((M, BLOCK))
    sorted_T = np.empty((M, BLOCK))
    gap = np.empty((1, BLOCK))
    screen = 2.0 * wmax * eps_max * (1.0 + 1e-6)
    scale = np.empty(BLOCK)
    stats = np.empty((rmax, BLOCK))
    s = np.empty(M)
    stat = np.empty(rmax)
    ws_G, ws_v, ws_i = point_workspace(M)
    # |x| needs chi^2_{D-M} for cosine scores; uniform-in-ball needs chi^2_{D+2-M} (sampling.py).
    df = float(dim - M) if cosine_scores else float(dim + 2 - M)
    done = 0
    while done < n:
        m = min(BLOCK, n - done)
        for i in range(m):
            ss = gaussian_vector(rng, GT[:, i])  # in place: a copy through a vector costs ~10%
            sc = 1.0 / sphere_lift_norm(rng, ss, df)
            scale[i] = sc if cosine_scores else radius * sc
        np.dot(Wr, GT, ST)
        for j in range(M):
            row = ST[j]
            bj = bias[j]
            for i in range(m):
                row[i] = scale[i] * row[i] + bj
        if metric == METRIC_SCORE:
            score_window_stats(ST, m, k, rmax, pairs, stats)
        else:
            # screen (THEORY §4.1): where the gap g_k - g_{k+1} of the sorted scores exceeds
            # 2 max|w| eps_max plus twice the tie tolerance of projection_straddles, every score
            # of rank > k stays below every tie set of ranks <= k within eps_max, so no
            # distance is <= eps_max and slice_distance_stats would return inf for every order
            for j in range(M):
                for i in range(m):
                    sorted_T[j, i] = ST[j, i]
            score_window_stats(sorted_T, m, k, 1, pairs, gap)
            for i in range(m):
                gk = abs(sorted_T[k - 1, i])
                if gap[0, i] > screen + 4e-11 * (gk + wmax * eps_max + 1e-300):
                    for r in range(rmax):
                        stats[r, i] = np.inf
                    continue
                for j in range(M):
                    s[j] = ST[j, i]
                slice_distance_stats(s, gram, k, rmax, eps_max, wmax, metric == METRIC_NORMAL,
                                     ws_G, ws_v, ws_i, stat)
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
