"""Occupation times of the order-r tubes on the GPU (THEORY §6; CPU twin:
``discosim._kernels.diffusion.paths.occupation_chunk``). A step is the CPU kernel's own
:func:`~discosim._kernels.diffusion.steps.occupation_step`, compiled for the device (:mod:`.twins`).

One thread per path; path p draws its increments from stream p (:mod:`.rng`), and random starts
are drawn per unit of ``UNIT_PATHS`` paths on the host, so a path's occupation depends on the
seed, p and that fixed constant, never on the launch shape or the device list. The
tube statistics of each step are the CPU kernels' own functions compiled for the device
(:mod:`.twins`), in float64. The running occupations are integer step counts, and every
checkpoint adds the count and its square to uint64 accumulators: integer sums, exact in any
order. A unit holds ``UNIT_PATHS = 2^17`` paths, so a square sum stays below
``2^17 (10^7)^2 < 2^64`` even for the longest paths allowed (10^7 steps).
"""

import functools

import numpy as np

from discosim._core.devices import import_numba_cuda

cuda = import_numba_cuda()
from numba import float64, int64, uint64  # noqa: E402  (after numba.cuda)

from discosim._kernels.diffusion.steps import occupation_step, ou_advance  # noqa: E402
from discosim._cuda.rng import normals64, stream_state  # noqa: E402
from discosim._cuda.twins import device_twin  # noqa: E402

UNIT_PATHS = 1 << 17
BLOCK = 128


@functools.lru_cache(maxsize=None)
def occupation_kernel(M, RMAX, NEPS, NCP):
    """Compile the occupation kernel for M experts, orders 1..RMAX, NEPS radii, NCP checkpoints."""
    MP = M + (M % 2)
    WV = max(4, M)
    step_counts = device_twin(occupation_step)
    advance = device_twin(ou_advance)

    @cuda.jit
    def kernel(key0, key1, p0, n, Z0, Wr, bias, gram, k, metric, eps, wmax, pairs, decay, noise,
               n_steps, cps, out_sum, out_sq):
        p = cuda.grid(1)
        if p >= n:
            return
        z = cuda.local.array(M, float64)
        s = cuda.local.array(M, float64)
        xi = cuda.local.array(MP, float64)
        stat = cuda.local.array(RMAX, float64)
        occ = cuda.local.array((RMAX, NEPS), int64)
        ws_G = cuda.local.array((M, M), float64)
        ws_v = cuda.local.array((WV, M), float64)
        ws_i = cuda.local.array((4, M), int64)
        s0, s1 = stream_state(key0, key1, uint64(p0 + p))
        for m in range(M):
            z[m] = Z0[p, m]
        for r in range(RMAX):
            for e in range(NEPS):
                occ[r, e] = 0
        c = 0
        for step in range(n_steps):
            step_counts(Wr, bias, gram, k, RMAX, metric, eps, wmax, pairs, z, s, stat, ws_G, ws_v,
                        ws_i, occ, 1)
            while c < NCP and cps[c] == step + 1:
                for r in range(RMAX):
                    for e in range(NEPS):
                        v = uint64(occ[r, e])
                        cuda.atomic.add(out_sum, (c, r, e), v)
                        cuda.atomic.add(out_sq, (c, r, e), v * v)
                c += 1
            s0, s1, _ = normals64(s0, s1, xi, 0)
            advance(Z0, p, z, xi, decay, noise, z)

    return kernel


def occupation_sums(router, pp, rmax, metric, eps_sorted, checkpoints, n_paths, key, start_seed,
                    devices):
    """Sums over paths of the step counts in each tube and of their squares, per checkpoint.

    Returns ``(count_sum, count_sq_sum)``, float64 arrays of shape (n_checkpoints, rmax, n_eps)
    (exact integer sums per unit, added in unit order). Random starts of unit u come from
    ``derive_seed(start_seed, u)`` on the host, as for the first exit.
    """
    from discosim._kernels.diffusion.paths import ou_step_coefficients
    from discosim._kernels.pointstats import sort_pairs_for
    from discosim._cuda.launch import path_starts, router_arrays, run_units

    M, k = router.n_experts, router.k
    eps_sorted = np.ascontiguousarray(eps_sorted, dtype=np.float64)
    cps = np.ascontiguousarray(checkpoints, dtype=np.int64)
    kern = occupation_kernel(M, int(rmax), eps_sorted.size, cps.size)
    decay, noise = ou_step_coefficients(pp.theta, pp.sigma, pp.dt)
    n_units = -(-n_paths // UNIT_PATHS)
    key0, key1 = key
    shape = (cps.size, int(rmax), eps_sorted.size)

    def make_worker(dev):
        d_W, d_b, d_g = router_arrays(cuda, router)
        d_pairs = cuda.to_device(np.ascontiguousarray(sort_pairs_for(M)))
        d_eps = cuda.to_device(eps_sorted)
        d_cps = cuda.to_device(cps)

        def work(u):
            p0 = u * UNIT_PATHS
            n = min(UNIT_PATHS, n_paths - p0)
            d_Z0 = cuda.to_device(path_starts(router, pp, start_seed, u, n))
            d_sum = cuda.to_device(np.zeros(shape, dtype=np.uint64))
            d_sq = cuda.to_device(np.zeros(shape, dtype=np.uint64))
            kern[-(-n // BLOCK), BLOCK](key0, key1, p0, n, d_Z0, d_W, d_b, d_g, k, int(metric),
                                        d_eps, float(router.max_row_norm), d_pairs, decay, noise,
                                        pp.n_steps, d_cps, d_sum, d_sq)
            return d_sum.copy_to_host(), d_sq.copy_to_host()

        return work

    tot = np.zeros(shape)
    tot2 = np.zeros(shape)
    for a, b in run_units(n_units, devices, make_worker):
        tot += a.astype(np.float64)
        tot2 += b.astype(np.float64)
    return tot, tot2
