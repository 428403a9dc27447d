"""First exit of Brownian / Ornstein-Uhlenbeck paths on the GPU (THEORY §3, §6; CPU twin:
``discosim._kernels.diffusion.paths.first_exit_chunk``). The step and refinement logic is the CPU
kernel's own, compiled for the device (:mod:`discosim._kernels.diffusion.steps`, :mod:`.twins`).

Two kernels. The step kernel runs one thread per path; path p draws from its own stream p
(:mod:`.rng`) and stops at the step where it crosses, handing that step to the refinement kernel,
which bisects it ``depth`` times with one thread per crossing (stream ``2^62 + p``). A path's exit time and point depend on the seed and p only (any launch
shape, any number of GPUs). Refining inside the step kernel made every warp wait for its slowest
crossing; the step threads are persistent (each takes the next path when its own ends). The state,
scores and facet gaps are float64 (a path accumulates up to 1e7 steps, and the bridge test
multiplies small gaps); only the normal increments are drawn in float32 (exact float32 values,
widened). Exact Gaussian steps, the Brownian-bridge crossing test per step and ``depth`` levels
of conditioned bridge refinement of the crossing, as in the CPU kernel.
"""

import functools
import math

import numpy as np

from discosim._core.devices import import_numba_cuda

cuda = import_numba_cuda()
from numba import float64, int32, uint64  # noqa: E402  (after numba.cuda)

from discosim._kernels.diffusion import bridge as _bridge  # noqa: E402
from discosim._kernels.diffusion import steps as _steps  # noqa: E402
from discosim._cuda.rng import next64, normal_pair, normals64, stream_state  # noqa: E402
from discosim._cuda.twins import device_twin  # noqa: E402

UNIT_PATHS = 1 << 18  # paths per work unit (a unit never changes the numbers)
THREADS_PER_SM = 1024  # persistent step threads: each takes the next path when its own exits
BLOCK = 128
_INV53 = 2.0 ** -53
_SH11 = uint64(11)
_REFINE_STREAMS = uint64(1 << 62)  # the refinement of path p draws from stream 2^62 + p


@cuda.jit(device=True, inline=True)
def uniform64(s0, s1):
    s0, s1, r = next64(s0, s1)
    return s0, s1, float64(r >> _SH11) * _INV53


_dev = cuda.jit(device=True, inline=True)
piece_weights = _dev(_bridge.piece_weights)
envelope_keep = _dev(_bridge.envelope_keep)
tn_rate = _dev(_bridge.tn_rate)
TN_SWITCH = _bridge.TN_SWITCH


@cuda.jit(device=True)
def tn_above(s0, s1, mu, tau):
    """``N(mu, tau^2)`` given > 0 (the CPU kernel's :func:`discosim._kernels.diffusion.paths.tn_above`)."""
    a = -mu / tau
    if a < TN_SWITCH:
        while True:
            s0, s1, n1, n2 = normal_pair(s0, s1)
            if n1 > a:
                return s0, s1, mu + tau * float64(n1)
            if n2 > a:
                return s0, s1, mu + tau * float64(n2)
    lam = tn_rate(a)
    while True:
        s0, s1, u1 = uniform64(s0, s1)
        s0, s1, u2 = uniform64(s0, s1)
        x = a - math.log(1.0 - u1) / lam
        if u2 <= math.exp(-0.5 * (x - lam) * (x - lam)):
            return s0, s1, mu + tau * x


@cuda.jit(device=True)
def conditioned_gap(s0, s1, ga, gb, v):
    """One facet's midpoint gap given its crossing (:mod:`discosim._kernels.diffusion.bridge`)."""
    tau = math.sqrt(0.5 * v)
    ybar = 0.5 * (ga + gb)
    if gb <= 0.0:
        s0, s1, n1, n2 = normal_pair(s0, s1)
        return s0, s1, ybar + tau * float64(n1)
    w0, wa, wb = piece_weights(ga, gb, v)
    while True:
        s0, s1, u = uniform64(s0, s1)
        u *= w0 + wa + wb
        if u < w0:
            s0, s1, y = tn_above(s0, s1, -ybar, tau)
            return s0, s1, -y
        mu = 0.5 * (gb - ga) if u < w0 + wa else 0.5 * (ga - gb)
        s0, s1, y = tn_above(s0, s1, mu, tau)
        s0, s1, u = uniform64(s0, s1)
        if u < envelope_keep(y, ga, gb, v):
            return s0, s1, y


@functools.lru_cache(maxsize=None)
def exit_kernel(M, K):
    """Compile the first-exit kernel for M experts, top-K.

    The step and refinement logic is the CPU kernel's (:mod:`discosim._kernels.diffusion.steps`,
    compiled for the device); what is the GPU's own is the drawing (counter-based streams), the
    persistent step threads and the hand-over of crossing steps to the refinement kernel.
    """
    NP = K * (M - K)
    MP = M + (M % 2)
    RM = M - K
    S = _steps
    (step_to, scores, gaps, norms2, variances, take_point, facet_weights, pick_facet,
     bridge_midpoint, midpoint_crossing, plain_midpoint, keep_half, exit_point) = map(device_twin, (
        S.exit_step, S.path_scores, S.facet_gaps, S.facet_norms2, S.gap_variances, S.take_point,
        S.facet_weights, S.pick_facet, S.bridge_midpoint, S.midpoint_crossing, S.plain_midpoint,
        S.keep_half, S.exit_point))

    @cuda.jit(device=True, inline=True)
    def start_path(p, Z0, Wr, bias, gram, z, s, taken, Kset, Rset, dn2, ga):
        for m in range(M):
            z[m] = Z0[p, m]
            taken[m] = 0
        scores(Wr, bias, z, s)
        for a in range(K):  # top-K by selection, ties to the lower index (as a stable argsort)
            best = -1
            for m in range(M):
                if taken[m] == 0 and (best < 0 or s[m] > s[best]):
                    best = m
            Kset[a] = best
            taken[best] = 1
        c = 0
        for a in range(M):
            if taken[a] == 0:
                Rset[c] = a
                c += 1
        norms2(gram, Kset, Rset, dn2)
        gaps(Wr, bias, z, Kset, Rset, s, ga)

    @cuda.jit
    def kernel(key0, key1, p0, n, Z0, Wr, bias, gram, sigma, dt, n_steps, decay, noise,
               use_bridge, tau_out, n_cross, plist, T0, ZA, ZB, KR, next_path):
        """Persistent threads: a thread whose path exits (or reaches n_steps) takes the next one
        from ``next_path``, inside the one step loop, so a warp never idles on its longest path
        (exit times are heavy-tailed: 1/3 of a warp's lane-steps were idle with a path per
        thread). Path p draws from stream p whichever thread runs it."""
        z = cuda.local.array(M, float64)
        z1 = cuda.local.array(M, float64)
        s = cuda.local.array(M, float64)
        xi = cuda.local.array(MP, float64)
        ga = cuda.local.array(NP, float64)
        gb = cuda.local.array(NP, float64)
        var = cuda.local.array(NP, float64)
        dn2 = cuda.local.array(NP, float64)
        Kset = cuda.local.array(K, int32)
        Rset = cuda.local.array(RM, int32)
        taken = cuda.local.array(M, int32)
        s0 = uint64(0)
        s1 = uint64(0)
        p = 0
        step = 0
        fresh = True
        while True:
            if fresh:  # the one place a thread takes a path
                p = cuda.atomic.add(next_path, 0, 1)
                if p >= n:
                    return
                s0, s1 = stream_state(key0, key1, uint64(p0 + p))
                start_path(p, Z0, Wr, bias, gram, z, s, taken, Kset, Rset, dn2, ga)
                step = 0
                fresh = False
            s0, s1, _ = normals64(s0, s1, xi, 0)
            crossed, prob = step_to(Wr, bias, Kset, Rset, Z0, p, z, xi, decay, noise, sigma, dt,
                                    dn2, use_bridge, z1, s, ga, gb, var)
            if not crossed and use_bridge:
                s0, s1, u = uniform64(s0, s1)
                crossed = u < prob
            if crossed or step + 1 == n_steps:
                tau_out[p] = math.inf
                if crossed:  # handed to the refinement kernel, a thread per crossing
                    slot = cuda.atomic.add(n_cross, 0, 1)
                    plist[slot] = p
                    T0[p] = step * dt
                    for m in range(M):
                        ZA[p, m] = z[m]
                        ZB[p, m] = z1[m]
                    for a in range(K):
                        KR[p, a] = Kset[a]
                    for c in range(RM):
                        KR[p, K + c] = Rset[c]
                fresh = True
                continue
            take_point(z, z1, ga, gb)
            step += 1

    @cuda.jit
    def refine(key0, key1, p0, n_cross, plist, T0, ZA, ZB, KR, Wr, bias, gram, sigma, dt, depth,
               use_bridge, tau_out, zhit_out):
        """Conditioned bisection of each crossing step, a thread per crossing (stream ``2^62 + p``).

        Each level draws the midpoint of the bridge conditioned on a crossing (the CPU kernel's
        sampler, :mod:`discosim._kernels.diffusion.bridge`: accepted with probability >= 1/#facets, so no
        heavy tail of tries) and picks the half holding the first crossing.
        """
        w = cuda.grid(1)
        if w >= n_cross:
            return
        z = cuda.local.array(M, float64)
        z1 = cuda.local.array(M, float64)
        zm = cuda.local.array(M, float64)
        s = cuda.local.array(M, float64)
        xi = cuda.local.array(MP, float64)
        ga = cuda.local.array(NP, float64)
        gb = cuda.local.array(NP, float64)
        gm = cuda.local.array(NP, float64)
        var = cuda.local.array(NP, float64)
        dn2 = cuda.local.array(NP, float64)
        cw = cuda.local.array(NP, float64)
        dv = cuda.local.array(M, float64)
        Kset = cuda.local.array(K, int32)
        Rset = cuda.local.array(RM, int32)
        p = plist[w]
        for a in range(K):
            Kset[a] = KR[p, a]
        for c in range(RM):
            Rset[c] = KR[p, K + c]
        norms2(gram, Kset, Rset, dn2)
        for m in range(M):
            z[m] = ZA[p, m]
            z1[m] = ZB[p, m]
        gaps(Wr, bias, z, Kset, Rset, s, ga)
        gaps(Wr, bias, z1, Kset, Rset, s, gb)
        s0, s1 = stream_state(key0, key1, _REFINE_STREAMS + uint64(p0 + p))
        t0 = T0[p]
        h = dt
        C = 1.0
        for _lev in range(depth):
            hh = 0.5 * h
            s_mid = sigma * math.sqrt(0.25 * h)
            variances(dn2, sigma, hh, var)
            if use_bridge:
                C = facet_weights(ga, gb, var, cw)
            while True:
                if use_bridge:  # a facet by its crossing probability, its gap given that
                    s0, s1, u = uniform64(s0, s1)
                    qf = pick_facet(cw, u * C)
                    s0, s1, y = conditioned_gap(s0, s1, ga[qf], gb[qf], var[qf])
                    s0, s1, _ = normals64(s0, s1, xi, 0)
                    bridge_midpoint(Wr, bias, Kset, Rset, qf, y, z, z1, ga, gb, s_mid, xi, dv, zm,
                                    s, gm)
                    qs, pl, q_cross = midpoint_crossing(ga, gb, gm, var)
                else:  # flagged by a sign change at the end: every midpoint crosses
                    s0, s1, _ = normals64(s0, s1, xi, 0)
                    pl = plain_midpoint(Wr, bias, Kset, Rset, z, z1, s_mid, xi, zm, s, gm)
                    q_cross = 1.0
                    qs = 1.0
                s0, s1, u = uniform64(s0, s1)
                if u * qs < q_cross:  # accept with P(cross | zm) / sum_q Q_q
                    break
            s0, s1, u = uniform64(s0, s1)
            left = u * q_cross < pl
            keep_half(left, z, z1, zm, ga, gb, gm)
            if not left:
                t0 += hh
            h = hh
        tau_out[p] = t0 + 0.5 * h
        exit_point(z, z1, zhit_out, p)

    return kernel, refine


def first_exit_units(router, pp, depth, bridge, n_paths, key, start_seed, devices, per_unit):
    """Run every path on the GPUs; ``per_unit(tau, zhit)`` maps each unit's paths to its result.

    ``pp``: the validated path settings of :mod:`discosim.diffusion.estimators`; random starts of unit u are
    drawn on the host from ``derive_seed(start_seed, u)`` (fixed unit size: same starts for any
    device list). Returns the per-unit results in unit order.
    """
    from discosim._cuda.launch import path_starts, router_arrays, run_units

    M, k = router.n_experts, router.k
    kern, refine = exit_kernel(M, k)
    from discosim._kernels.diffusion.paths import ou_step_coefficients

    decay, noise = ou_step_coefficients(pp.theta, pp.sigma, pp.dt)
    n_units = -(-n_paths // UNIT_PATHS)
    key0, key1 = key

    def make_worker(dev):
        from discosim._cuda.volumes.uniform import multiprocessor_count

        n_sm = multiprocessor_count(cuda)
        d_W, d_b, d_g = router_arrays(cuda, router)

        def work(u):
            p0 = u * UNIT_PATHS
            n = min(UNIT_PATHS, n_paths - p0)
            d_Z0 = cuda.to_device(path_starts(router, pp, start_seed, u, n))
            d_tau = cuda.device_array(n, dtype=np.float64)
            d_zhit = cuda.to_device(np.full((n, M), np.nan))
            d_nc = cuda.to_device(np.zeros(1, dtype=np.int32))
            d_plist = cuda.device_array(n, dtype=np.int32)
            d_T0 = cuda.device_array(n, dtype=np.float64)
            d_ZA = cuda.device_array((n, M), dtype=np.float64)
            d_ZB = cuda.device_array((n, M), dtype=np.float64)
            d_KR = cuda.device_array((n, M), dtype=np.int32)
            d_next = cuda.to_device(np.zeros(1, dtype=np.int32))
            threads = min(n, THREADS_PER_SM * n_sm)
            kern[-(-threads // BLOCK), BLOCK](key0, key1, p0, n, d_Z0, d_W, d_b, d_g, pp.sigma,
                                              pp.dt, pp.n_steps, decay, noise, bool(bridge), d_tau,
                                              d_nc, d_plist, d_T0, d_ZA, d_ZB, d_KR, d_next)
            n_cross = int(d_nc.copy_to_host()[0])
            if n_cross:
                refine[-(-n_cross // BLOCK), BLOCK](key0, key1, p0, n_cross, d_plist, d_T0, d_ZA, d_ZB, d_KR,
                                      d_W, d_b, d_g, pp.sigma, pp.dt, depth, bool(bridge), d_tau,
                                      d_zhit)
            tau = d_tau.copy_to_host()
            tau[tau > pp.t_max] = np.inf
            return per_unit(tau, d_zhit.copy_to_host())

        return work

    return run_units(n_units, devices, make_worker)
