"""Brownian paths in reduced coordinates: first exit from the start cell (THEORY §3, §6). numba only.

``z_t = z0 + sigma B_t`` in R^M carries every score, so the exit time of the cell of x0 is the
first time some facet gap ``h_ij = s_i - s_j`` (i in K, j not in K) reaches 0. Per step of
length h the path is exact Gaussian; a crossing between the ends is detected by a sign change
or, failing that, by the Brownian-bridge crossing probability of each half-space,
``exp(-2 a b / (sigma^2 |w_i - w_j|^2 h))`` (a, b the gaps at the ends; half-spaces treated as
independent within a step). The crossing is then located by exact bridge refinement: the
midpoint of the conditioned bridge is drawn by rejection (accept with the probability that the
path crosses given the midpoint), and the half holding the first crossing is chosen with its
conditional probability, ``depth`` times.
"""

import math

import numpy as np
from numba import njit

from .geometry import lower_matvec
from .pointstats import point_stats, point_workspace
from .sampling import gaussian_vector


@njit(cache=True, nogil=True)
def ou_step_coefficients(theta, sigma, dt):
    """(decay, noise) of an exact step ``z' = x0 + decay (z - x0) + noise xi``; theta = 0 is BM."""
    if theta > 0.0:
        decay = math.exp(-theta * dt)
        return decay, sigma * math.sqrt((1.0 - decay * decay) / (2.0 * theta))
    return 1.0, sigma * math.sqrt(dt)


@njit(cache=True, nogil=True)
def _gaps(Wr, bias, z, K, R, out):
    """Facet gaps s_i - s_j for i in K, j in R at reduced point z."""
    nK = K.shape[0]
    nR = R.shape[0]
    for a in range(nK):
        i = K[a]
        si = bias[i]
        for m in range(i + 1):
            si += Wr[i, m] * z[m]
        for c in range(nR):
            j = R[c]
            sj = bias[j]
            for m in range(j + 1):
                sj += Wr[j, m] * z[m]
            out[a * nR + c] = si - sj


@njit(cache=True, nogil=True)
def _cross_prob(ga, gb, var_h):
    """P(some gap crosses 0 between ends ga, gb): 1 on a sign change, else the bridge formula."""
    stay = 1.0
    for p in range(ga.shape[0]):
        if gb[p] <= 0.0 or ga[p] <= 0.0:
            return 1.0
        stay *= 1.0 - math.exp(-2.0 * ga[p] * gb[p] / var_h[p])
    return 1.0 - stay


@njit(cache=True, nogil=True)
def cell_workspace(M, k):
    """Workspaces ``(K, R, dnorm2, scores)`` of :func:`_cell_of` for M experts, top-k."""
    return (np.empty(k, dtype=np.int64), np.empty(M - k, dtype=np.int64),
            np.empty(k * (M - k)), np.empty(M))


@njit(cache=True, nogil=True)
def _cell_of(Wr, bias, gram, k, z, s, K, R, dnorm2):
    """Top-k set K and the rest R of reduced point z, and |w_i - w_j|^2 per facet pair."""
    M = Wr.shape[0]
    lower_matvec(Wr, z, -1.0, -bias, s)  # negated scores: argsort gives descending order
    order = np.argsort(s)
    for a in range(k):
        K[a] = order[a]
    for c in range(M - k):
        R[c] = order[k + c]
    for a in range(k):
        for c in range(M - k):
            i, j = K[a], R[c]
            dnorm2[a * (M - k) + c] = gram[i, i] + gram[j, j] - 2.0 * gram[i, j]


@njit(cache=True, nogil=True)
def _start_in_cell(z0, Wr, bias, gram, k, z, s, K, R, dnorm2):
    """``z = z0`` and the cell of z0 (:func:`_cell_of`)."""
    for m in range(z.shape[0]):
        z[m] = z0[m]
    _cell_of(Wr, bias, gram, k, z, s, K, R, dnorm2)


@njit(cache=True, nogil=True)
def first_exit_chunk(rng, Z0, Wr, bias, gram, k, sigma, dt, n_steps, theta, depth, use_bridge,
                     tau_out, zhit_out):
    """Exit times of paths started at ``Z0[p]`` (reduced, shape (n, M)) from their start cells.

    ``tau_out[p]`` = exit time (inf if none before n_steps*dt); ``zhit_out[p]`` = reduced point
    at the exit (middle of the final refinement interval, within sigma sqrt(dt 2^-depth) of the
    hit). ``theta > 0``: Ornstein-Uhlenbeck steps (exact), with the Brownian bridge test as a
    local approximation inside a step (error O(theta dt)).
    """
    n, M = Z0.shape
    npair = k * (M - k)
    K, R, dnorm2, sc = cell_workspace(M, k)
    decay, noise = ou_step_coefficients(theta, sigma, dt)
    points = np.empty((3, M))  # rows, not unpacking: unpacked rows would be typed non-contiguous
    z, z1, zm = points[0], points[1], points[2]
    gaps = np.empty((4, npair))
    ga, gb, gm, var = gaps[0], gaps[1], gaps[2], gaps[3]
    for p in range(n):
        _start_in_cell(Z0[p], Wr, bias, gram, k, z, sc, K, R, dnorm2)
        _gaps(Wr, bias, z, K, R, ga)
        tau = np.inf
        for step in range(n_steps):
            for m in range(M):
                z1[m] = Z0[p, m] + decay * (z[m] - Z0[p, m]) + noise * rng.standard_normal()
            _gaps(Wr, bias, z1, K, R, gb)
            crossed = False
            sign_change = False
            for q in range(npair):
                if gb[q] <= 0.0:
                    sign_change = True
            if sign_change:
                crossed = True
            elif use_bridge:
                for q in range(npair):
                    var[q] = sigma * sigma * dnorm2[q] * dt
                if rng.random() < _cross_prob(ga, gb, var):
                    crossed = True
            if crossed:
                # locate the first crossing in [t0, t0 + h] by conditioned bridge refinement
                t0 = step * dt
                h = dt
                for _lev in range(depth):
                    hh = 0.5 * h
                    s_mid = sigma * math.sqrt(0.25 * h)
                    for q in range(npair):
                        var[q] = sigma * sigma * dnorm2[q] * hh
                    while True:
                        for m in range(M):
                            zm[m] = 0.5 * (z[m] + z1[m]) + s_mid * rng.standard_normal()
                        _gaps(Wr, bias, zm, K, R, gm)
                        pl = _cross_prob(ga, gm, var) if use_bridge else (1.0 if _any_nonpos(gm) else 0.0)
                        pr = _cross_prob(gm, gb, var) if use_bridge else (1.0 if _any_nonpos(gb) else 0.0)
                        if _any_nonpos(gm):
                            pl = 1.0
                        q_cross = 1.0 - (1.0 - pl) * (1.0 - pr)
                        if rng.random() < q_cross:
                            break
                    if rng.random() * q_cross < pl:
                        for m in range(M):
                            z1[m] = zm[m]
                        for q in range(npair):
                            gb[q] = gm[q]
                    else:
                        for m in range(M):
                            z[m] = zm[m]
                        for q in range(npair):
                            ga[q] = gm[q]
                        t0 += hh
                    h = hh
                tau = t0 + 0.5 * h
                for m in range(M):
                    zhit_out[p, m] = 0.5 * (z[m] + z1[m])
                break
            for m in range(M):
                z[m] = z1[m]
            for q in range(npair):
                ga[q] = gb[q]
        tau_out[p] = tau


@njit(cache=True, nogil=True)
def _any_nonpos(g):
    for q in range(g.shape[0]):
        if g[q] <= 0.0:
            return True
    return False


@njit(cache=True, nogil=True)
def hit_point_stats(Zhit, tau, Wr, bias, gram, k, metric, eps_max, wmax, pairs, out):
    """Distance of each hit point to Gamma^(>=2) (order-2 statistic of :func:`point_stats`)."""
    n, M = Zhit.shape
    s = np.empty(M)
    stat = np.empty(2)
    ws_G, ws_v, ws_i = point_workspace(M)
    for p in range(n):
        if not np.isfinite(tau[p]):
            out[p] = np.inf
            continue
        lower_matvec(Wr, Zhit[p], 1.0, bias, s)
        point_stats(s, gram, k, 2, metric, eps_max, wmax, pairs, ws_G, ws_v, ws_i, stat)
        out[p] = stat[1]


@njit(cache=True, nogil=True)
def occupation_chunk(rng, Z0, Wr, bias, gram, k, rmax, metric, eps_sorted, wmax, pairs, sigma, dt,
                     n_steps, theta, checkpoints, out_sum, out_sq):
    """Occupation times of the order-r tubes along whole paths (they do not stop at the exit).

    Brownian motion (``theta == 0``) or Ornstein-Uhlenbeck ``dX = -theta (X - x0) dt + sigma dB``,
    both exact in law on the grid. ``L_r^eps`` is the left Riemann sum ``dt * #{steps in tube}``,
    starting at step 0 (x0 itself). ``checkpoints`` (ascending step counts) are the times at which
    the running occupation is recorded; ``out_sum[c, r, e]`` and ``out_sq`` accumulate its sum
    and sum of squares over paths.
    """
    n, M = Z0.shape
    n_eps = eps_sorted.shape[0]
    eps_max = eps_sorted[n_eps - 1]
    z = np.empty(M)
    s = np.empty(M)
    stat = np.empty(rmax)
    occ = np.zeros((rmax, n_eps))
    ws_G, ws_v, ws_i = point_workspace(M)
    decay, noise = ou_step_coefficients(theta, sigma, dt)
    n_cp = checkpoints.shape[0]
    for p in range(n):
        for m in range(M):
            z[m] = Z0[p, m]
        occ[:, :] = 0.0
        c = 0
        for step in range(n_steps):
            lower_matvec(Wr, z, 1.0, bias, s)
            point_stats(s, gram, k, rmax, metric, eps_max, wmax, pairs, ws_G, ws_v, ws_i, stat)
            for r in range(rmax):
                for e in range(n_eps):
                    if stat[r] <= eps_sorted[e]:
                        occ[r, e] += dt
            while c < n_cp and checkpoints[c] == step + 1:
                for r in range(rmax):
                    for e in range(n_eps):
                        out_sum[c, r, e] += occ[r, e]
                        out_sq[c, r, e] += occ[r, e] * occ[r, e]
                c += 1
            for m in range(M):
                z[m] = Z0[p, m] + decay * (z[m] - Z0[p, m]) + noise * rng.standard_normal()


@njit(cache=True, nogil=True)
def walk_on_spheres_chunk(rng, Z0, Wr, bias, gram, k, tol, max_steps, zexit_out, steps_out):
    """Exit positions of Brownian motion from the start cell by walk on spheres (Muller 1956).

    In the convex cell the distance to the boundary is the least facet distance
    ``(s_i - s_j)/|w_i - w_j|`` (THEORY §4.1); each step jumps to a uniform point of the largest
    sphere inside the cell. When the distance drops below ``tol`` the walk stops and the point is
    moved onto the nearest facet. Exit positions do not depend on sigma; the reduced cell is the
    true cell's cross-section, so M dimensions suffice.
    """
    n, M = Z0.shape
    npair = k * (M - k)
    K, R, dnorm2, sc = cell_workspace(M, k)
    g = np.empty(npair)
    z = np.empty(M)
    u = np.empty(M)
    for p in range(n):
        _start_in_cell(Z0[p], Wr, bias, gram, k, z, sc, K, R, dnorm2)
        steps = 0
        while True:
            _gaps(Wr, bias, z, K, R, g)
            best = np.inf
            arg = 0
            for q in range(npair):
                d = g[q] / math.sqrt(dnorm2[q])
                if d < best:
                    best = d
                    arg = q
            if best < tol or steps >= max_steps:
                # step onto the nearest facet along its normal w_i - w_j
                i = K[arg // (M - k)]
                j = R[arg % (M - k)]
                for m in range(M):
                    a = Wr[i, m] if m <= i else 0.0
                    b = Wr[j, m] if m <= j else 0.0
                    u[m] = a - b
                scale = g[arg] / dnorm2[arg]
                for m in range(M):
                    zexit_out[p, m] = z[m] - scale * u[m]
                break
            f = best / math.sqrt(gaussian_vector(rng, u))
            for m in range(M):
                z[m] += f * u[m]
            steps += 1
        steps_out[p] = steps
