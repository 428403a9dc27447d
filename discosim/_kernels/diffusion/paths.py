"""Brownian paths in reduced coordinates: first exit from the start cell (THEORY §3, §6). numba only.

``z_t = z0 + sigma B_t`` in R^M carries every score, so the exit time of the cell of x0 is the
first time some facet gap ``h_ij = s_i - s_j`` (i in K, j not in K) reaches 0. Per step of
length h the path is exact Gaussian; a crossing between the ends is detected by a sign change
or, failing that, by the Brownian-bridge crossing probability of each half-space,
``exp(-2 a b / (sigma^2 |w_i - w_j|^2 h))`` (a, b the gaps at the ends; half-spaces treated as
independent within a step). The crossing is then located by exact bridge refinement: the
midpoint of the bridge conditioned on a crossing is drawn (:mod:`.bridge`: a facet by its
crossing probability, that facet's gap from its conditioned law, accepted with probability at
least 1/#facets), and the half holding the first crossing is chosen with its conditional
probability, ``depth`` times.
"""

import math

import numpy as np
from numba import njit

from discosim._kernels.diffusion import bridge as _bridge
from discosim._kernels.diffusion.steps import (bridge_midpoint, exit_point, exit_step, facet_gaps,
                                               facet_norms2, facet_weights, gap_variances,
                                               keep_half, midpoint_crossing, occupation_step,
                                               ou_advance, pick_facet, plain_midpoint, take_point)
from discosim._kernels.geometry import lower_matvec
from discosim._kernels.pointstats import point_stats, point_workspace
from discosim._kernels.sampling import gaussian_vector


_jit = njit(cache=True, nogil=True)
piece_weights = _jit(_bridge.piece_weights)
envelope_keep = _jit(_bridge.envelope_keep)
tn_rate = _jit(_bridge.tn_rate)
TN_SWITCH = _bridge.TN_SWITCH


@njit(cache=True, nogil=True)
def tn_above(rng, mu, tau):
    """``y ~ N(mu, tau^2)`` conditioned on ``y > 0``: rejection from the normal, or Robert's
    exponential proposal in the tail (:mod:`.bridge`)."""
    a = -mu / tau
    if a < TN_SWITCH:
        while True:
            x = rng.standard_normal()
            if x > a:
                return mu + tau * x
    lam = tn_rate(a)
    while True:
        x = a - math.log(1.0 - rng.random()) / lam
        if rng.random() <= math.exp(-0.5 * (x - lam) * (x - lam)):
            return mu + tau * x


@njit(cache=True, nogil=True)
def conditioned_gap(rng, ga, gb, v):
    """The midpoint's gap of one facet given that this facet crosses in the step (:mod:`.bridge`)."""
    tau = math.sqrt(0.5 * v)
    ybar = 0.5 * (ga + gb)
    if gb <= 0.0:  # the end is across: it crosses whatever the midpoint
        return ybar + tau * rng.standard_normal()
    w0, wa, wb = piece_weights(ga, gb, v)
    while True:
        u = rng.random() * (w0 + wa + wb)
        if u < w0:
            return -tn_above(rng, -ybar, tau)
        mu = 0.5 * (gb - ga) if u < w0 + wa else 0.5 * (ga - gb)
        y = tn_above(rng, mu, tau)
        if rng.random() < envelope_keep(y, ga, gb, v):
            return y


@njit(cache=True, nogil=True)
def conditioned_midpoint(rng, Wr, bias, K, R, z, z1, ga, gb, var, s_mid, cw, d, zm, gm, s):
    """Midpoint ``zm`` (gaps ``gm``) of the bridge from z to z1 given a crossing (:mod:`.bridge`).

    ``var``: the gaps' half-step variances; ``cw``, ``d``, ``s``: workspaces (facets, M, M).
    Returns ``(pl, q_cross)``: P(crossing in the left half | zm) and P(crossing | zm).
    """
    C = facet_weights(ga, gb, var, cw)
    while True:
        q = pick_facet(cw, rng.random() * C)
        y = conditioned_gap(rng, ga[q], gb[q], var[q])
        for m in range(z.shape[0]):
            zm[m] = rng.standard_normal()
        bridge_midpoint(Wr, bias, K, R, q, y, z, z1, ga, gb, s_mid, zm, d, zm, s, gm)
        qs, pl, q_cross = midpoint_crossing(ga, gb, gm, var)
        if rng.random() * qs < q_cross:
            return pl, q_cross


@njit(cache=True, nogil=True)
def ou_step_coefficients(theta, sigma, dt):
    """(decay, noise) of an exact step ``z' = x0 + decay (z - x0) + noise xi``; theta = 0 is BM."""
    if theta > 0.0:
        decay = math.exp(-theta * dt)
        return decay, sigma * math.sqrt((1.0 - decay * decay) / (2.0 * theta))
    return 1.0, sigma * math.sqrt(dt)


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
    facet_norms2(gram, K, R, dnorm2)


@njit(cache=True, nogil=True)
def _start_in_cell(z0, Wr, bias, gram, k, z, s, K, R, dnorm2):
    """``z = z0`` and the cell of z0 (:func:`_cell_of`)."""
    for m in range(z.shape[0]):
        z[m] = z0[m]
    _cell_of(Wr, bias, gram, k, z, s, K, R, dnorm2)


@njit(cache=True, nogil=True)
def first_exit_chunk(rng, rng_refine, Z0, Wr, bias, gram, k, sigma, dt, n_steps, theta, depth,
                     use_bridge, tau_out, zhit_out):
    """Exit times of paths started at ``Z0[p]`` (reduced, shape (n, M)) from their start cells.

    ``rng`` draws the steps, ``rng_refine`` the refinement of the crossing steps: the step in
    which each path exits, hence ``P(tau <= t)`` at grid times, does not depend on ``depth`` or
    on the refinement's sampler (as on the GPU, whose refinement has its own streams).

    ``tau_out[p]`` = exit time (inf if none before n_steps*dt); ``zhit_out[p]`` = reduced point
    at the exit (middle of the final refinement interval, within sigma sqrt(dt 2^-depth) of the
    hit). ``theta > 0``: Ornstein-Uhlenbeck steps (exact), with the Brownian bridge test as a
    local approximation inside a step (error O(theta dt)).
    """
    n, M = Z0.shape
    npair = k * (M - k)
    K, R, dnorm2, sc = cell_workspace(M, k)
    decay, noise = ou_step_coefficients(theta, sigma, dt)
    points = np.empty((5, M))  # rows, not unpacking: unpacked rows would be typed non-contiguous
    z, z1, zm, dvec, xi = points[0], points[1], points[2], points[3], points[4]
    cw = np.empty(npair)
    gaps = np.empty((4, npair))
    ga, gb, gm, var = gaps[0], gaps[1], gaps[2], gaps[3]
    for p in range(n):
        _start_in_cell(Z0[p], Wr, bias, gram, k, z, sc, K, R, dnorm2)
        facet_gaps(Wr, bias, z, K, R, sc, ga)
        tau = np.inf
        for step in range(n_steps):
            for m in range(M):
                xi[m] = rng.standard_normal()
            sure, prob = exit_step(Wr, bias, K, R, Z0, p, z, xi, decay, noise, sigma, dt, dnorm2,
                                   use_bridge, z1, sc, ga, gb, var)
            if not (sure or (use_bridge and rng.random() < prob)):
                take_point(z, z1, ga, gb)
                continue
            # locate the first crossing in [t0, t0 + h] by conditioned bridge refinement
            t0 = step * dt
            h = dt
            for _lev in range(depth):
                hh = 0.5 * h
                s_mid = sigma * math.sqrt(0.25 * h)
                gap_variances(dnorm2, sigma, hh, var)
                if use_bridge:
                    pl, q_cross = conditioned_midpoint(rng_refine, Wr, bias, K, R, z, z1, ga, gb,
                                                       var, s_mid, cw, dvec, zm, gm, sc)
                else:  # flagged by a sign change at the end only: every midpoint crosses
                    for m in range(M):
                        zm[m] = rng_refine.standard_normal()
                    pl = plain_midpoint(Wr, bias, K, R, z, z1, s_mid, zm, zm, sc, gm)
                    q_cross = 1.0
                left = rng_refine.random() * q_cross < pl
                keep_half(left, z, z1, zm, ga, gb, gm)
                if not left:
                    t0 += hh
                h = hh
            tau = t0 + 0.5 * h
            exit_point(z, z1, zhit_out, p)
            break
        tau_out[p] = tau


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
    z = np.empty(M)
    s = np.empty(M)
    xi = np.empty(M)
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
            occupation_step(Wr, bias, gram, k, rmax, metric, eps_sorted, wmax, pairs, z, s, stat,
                            ws_G, ws_v, ws_i, occ, dt)
            while c < n_cp and checkpoints[c] == step + 1:
                for r in range(rmax):
                    for e in range(n_eps):
                        out_sum[c, r, e] += occ[r, e]
                        out_sq[c, r, e] += occ[r, e] * occ[r, e]
                c += 1
            for m in range(M):
                xi[m] = rng.standard_normal()
            ou_advance(Z0, p, z, xi, decay, noise, z)


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
            facet_gaps(Wr, bias, z, K, R, sc, g)
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
