"""The smoothing gate's extra active experts ``E N_eta`` on the GPU (THEORY §7; CPU twin:
``discosim.smoothing.estimators._overhead_task``).

A thread per sample: ``G ~ N(0, I_M)`` and the chi-square of the input law (:mod:`.rng`; float32
draws, widened), the reduced point and its scores in float64 (so a count is that of the float64
evaluation of the draws: no rounding band, nothing handed back), the k-th largest score ``g_k``
by insertion, and ``N_eta = #{i : 0 < g_k - s_i < eta}`` for every eta. The sums of N and N^2
are integers, kept per thread and added with one uint64 atomic each: exact, so the totals do not
depend on the order of the additions.

Reproducible: chunk c (``CHUNK`` samples) is drawn by one warp, lane l from stream ``32 c + l``,
its i-th sample being sample ``c CHUNK + 32 i + l``; numbers depend on the seed and the device
type only, never on the launch shape or the number of GPUs.
"""

import functools
import math

import numpy as np

from discosim._core.devices import import_numba_cuda

cuda = import_numba_cuda()
from numba import float64, int64, uint64  # noqa: E402  (after numba.cuda)

from discosim._cuda.rng import gamma_mt, gamma_params, normals64, stream_state  # noqa: E402

CHUNK = 1024  # samples per chunk = 32 lanes x 32 samples
BLOCK = 128
UNIT_CHUNKS = 4096  # chunks per work unit (a unit never changes the numbers)
INPUT_CODES = {"ball": 0, "sphere": 1, "gaussian": 2}


@functools.lru_cache(maxsize=None)
def overhead_kernel(M, K, NE, INPUTS, CHI):
    """Compile the kernel for M experts, top-K, NE widths, an input law (``INPUT_CODES``);
    ``CHI``: whether the law has a chi-square part (not for the Gaussian, nor the sphere at D = M)."""
    MP = M + (M % 2)
    NE2 = 2 * NE  # a local array's shape must be a compile-time constant, not an expression

    @cuda.jit
    def kern(key0, key1, chunk0, n_chunks, n_total, Wr, bias, scale0, gd, gc, gb, etas, out):
        g = cuda.local.array(MP, float64)
        s = cuda.local.array(M, float64)
        top = cuda.local.array(K, float64)
        acc = cuda.local.array(NE2, int64)
        for e in range(NE2):
            acc[e] = 0
        gtid = cuda.grid(1)
        warp = gtid // 32
        lane = gtid % 32
        n_warps = cuda.gridsize(1) // 32
        for c in range(chunk0 + warp, chunk0 + n_chunks, n_warps):
            s0, s1 = stream_state(key0, key1, uint64(32 * c + lane))
            for i in range(32):
                idx = c * CHUNK + 32 * i + lane
                if idx >= n_total:
                    break
                s0, s1, ss = normals64(s0, s1, g, M)
                scale = scale0
                if INPUTS != 2:
                    chi = 0.0
                    if CHI:
                        s0, s1, gam = gamma_mt(s0, s1, gd, gc, gb)
                        chi = 2.0 * float64(gam)
                    scale = scale0 / math.sqrt(ss + chi)
                for j in range(M):  # the reduced point, once, not per score
                    g[j] *= scale
                for t in range(K):
                    top[t] = -math.inf
                for a in range(M):
                    v = bias[a]
                    for m in range(a + 1):
                        v += Wr[a, m] * g[m]
                    s[a] = v
                    for t in range(K):
                        h = top[t]
                        if v > h:
                            top[t] = v
                            v = h
                gk = top[K - 1]
                for e in range(NE):
                    cnt = 0
                    for a in range(M):
                        d = gk - s[a]
                        if d > 0.0 and d < etas[e]:
                            cnt += 1
                    acc[2 * e] += cnt
                    acc[2 * e + 1] += cnt * cnt
        for e in range(NE2):
            if acc[e] != 0:
                cuda.atomic.add(out, e, uint64(acc[e]))

    return kern


def overhead_sums(router, radius, etas, inputs, n_samples, key, devices):
    """``out[e] = (sum N_eta, sum N_eta^2)`` over ``n_samples`` samples (float64 array (NE, 2))."""
    from discosim._core.devices import cuda_module
    from discosim._cuda.launch import run_units
    from discosim._cuda.volumes.uniform import multiprocessor_count

    cuda_ = cuda_module()  # the module's own name is swapped by the simulator while kernels run
    M, D, k = router.n_experts, router.dim, router.k
    NE = len(etas)
    code = INPUT_CODES[inputs]
    df = float(D + 2 - M) if code == 0 else float(D - M)
    chi = code == 0 or (code == 1 and D > M)
    gd, gc, gb = gamma_params(0.5 * df) if chi else (np.float32(1), np.float32(1), np.float32(0))
    scale0 = float(radius) / math.sqrt(D) if code == 2 else float(radius)
    kern = overhead_kernel(M, k, NE, code, bool(chi))
    n_chunks = -(-n_samples // CHUNK)
    n_units = -(-n_chunks // UNIT_CHUNKS)
    key0, key1 = key

    def make_worker(dev):
        n_sm = multiprocessor_count(cuda_)
        d_W = cuda_.to_device(np.ascontiguousarray(router.reduced_weights, dtype=np.float64))
        d_b = cuda_.to_device(np.ascontiguousarray(router.bias, dtype=np.float64))
        d_eta = cuda_.to_device(np.ascontiguousarray(etas, dtype=np.float64))
        d_out = cuda_.device_array(2 * NE, dtype=np.uint64)

        def work(u):
            c0 = u * UNIT_CHUNKS
            nc = min(UNIT_CHUNKS, n_chunks - c0)
            d_out.copy_to_device(np.zeros(2 * NE, dtype=np.uint64))
            grid = min(-(-nc * 32 // BLOCK), 16 * n_sm)
            kern[grid, BLOCK](key0, key1, c0, nc, n_samples, d_W, d_b, scale0, gd, gc, gb, d_eta,
                              d_out)
            return d_out.copy_to_host().astype(np.float64).reshape(NE, 2)

        return work

    parts = run_units(n_units, devices, make_worker)
    return np.sum(parts, axis=0)
