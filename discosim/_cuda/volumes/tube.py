"""The importance (tube) sampler of the tube volumes on the GPU (THEORY §8; CPU twin:
``discosim._kernels.volumes.tube.tube_chunk``).

Per sample, on the device, in float64: a slice J uniform among the C(M, r+1), its fibre radius
(``score_circumradius2`` for the score metric, eps otherwise), the squared normal radius fraction
beta, the point x in the fibre tube of S_J inside the ball (``orthonormal_normal_basis``,
``project_out``: the CPU kernels' own functions, compiled for the device by :mod:`.twins`), and
its scores ``s = W_r x`` (``lower_matvec``).

Score metric: the device scores the sample as ``discosim._kernels.volumes.tube.score_point`` does: in the
tube when the spread of s_J and the window statistic of order r (the min spread of r+1
consecutive sorted scores holding ranks k and k+1, THEORY §4.3) are at most eps, and then
``w = weight / N(x)`` with N(x) the number of (r+1)-sets of scores of spread <= eps, counted
without a sort by the same comparisons as ``family_count_score``. Each thread sums its chunk;
the host adds the chunk sums in chunk order.

Euclidean and normal metrics: the subset projections stay on the host. The device hands over
only samples passing a necessary condition of ``x in tube_r`` -- the window statistic of order
r at most ``2 max|w| eps`` (THEORY §4.1); a sample whose projection on S_J straddles rank k is in
the tube, so the overlap term needs no other samples -- and the host scores them with the CPU's
own ``score_rows`` in sample order, on ``host_threads`` threads (blocks of ``HOST_BLOCK`` rows
added in block order). So the sums depend on the seed and the fixed unit and block sizes only,
never on the launch shape, the device list or the number of host threads. (A weight can
underflow to 0 where ``(b-1) beta`` is huge; the CPU then counts a hit that the GPU does not,
with no effect on the sums.)

beta. The CPU draws beta from Beta(r/2, d/2+1) truncated at ``c = min(rho_J^2 / R^2, 1)`` by
SciPy's ``betaincinv`` and weights the sample by ``C(M, r+1) P_J`` with ``P_J = I_c(r/2,
d/2+1)``. The device has no incomplete Beta function; it draws ``beta = c U^(1/a)`` (a = r/2:
the density ``a x^(a-1) / c^a`` on [0, c]) and weights by the ratio of densities, so ``P_J``
cancels and the weight is exact in closed form::

    C(M, r+1) c^a (1 - beta)^(b-1) / (a B(a, b)),      b = d/2 + 1.

The mean is the same; the weights' second moment over their squared mean is
``E[(1-beta)^(2b-2)] / E[(1-beta)^(b-1)]^2`` (beta from the power law), near 1
while ``b c`` is small (the regime the importance sampler is for: eps -> 0), about
``sqrt(2 b c / pi)`` (r = 1) or ``b c / 2`` (r = 2) for large ``b c``. The standard error reported
is the GPU sample's own.

Reproducible: chunk c (``CHUNK`` samples, one thread) draws from stream c; a unit holds
``UNIT_CHUNKS`` chunks, and the host adds unit sums in unit order.
"""

import functools
import math

import numpy as np

from discosim._core.devices import import_numba_cuda

cuda = import_numba_cuda()
from numba import float64, int64, uint64  # noqa: E402  (after numba.cuda)

from discosim._kernels.codes import METRIC_SCORE  # noqa: E402
from discosim._kernels.geometry import (fibre_point, lower_matvec, orthonormal_normal_basis,  # noqa: E402
                                 project_out)
from discosim._kernels.sampling import sort_small  # noqa: E402
from discosim._kernels.volumes.tube import (power_law_draw, power_law_log_constant, score_circumradius2,  # noqa: E402
                             subset_spread)
from discosim._cuda.rng import gamma_mt, gamma_params, next64, normals64, stream_state  # noqa: E402
from discosim._cuda.twins import device_twin  # noqa: E402
from discosim._cuda.volumes.uniform import float64_selection  # noqa: E402

CHUNK = 32  # samples per thread (one stream)
UNIT_CHUNKS = 1 << 15  # 2^20 samples per unit of work
BLOCK = 64
SCREEN = True  # False: every sample goes to the host and is scored there (tests; the sums are
# then bit-identical while a unit's handed-back rows fit in one HOST_BLOCK)
HOST_BLOCK = 4096  # rows per host task: partial sums added in block order (any thread count)


@functools.lru_cache(maxsize=None)
def tube_kernel(M, K, R, SCORE, ON_DEVICE):
    """Compile the sampler for M experts, top-K, order R; SCORE: score metric; ON_DEVICE: the
    samples in the tube are scored on the device (score metric) instead of on the host."""
    L = min(M, K + R)
    MP = M + (M % 2)
    RP = R + (R % 2)
    R1 = R + 1  # local array sizes must be closure constants, not expressions
    basis = device_twin(orthonormal_normal_basis)
    proj = device_twin(project_out)
    matvec = device_twin(lower_matvec)
    circum = device_twin(score_circumradius2)
    draw_beta = device_twin(power_law_draw)
    point = device_twin(fibre_point)
    sort_j = device_twin(sort_small)
    spread = device_twin(subset_spread)
    insert, window = float64_selection(M, K, R)
    INV53 = 2.0 ** -53

    @cuda.jit
    def kernel(key0, key1, c0, n_chunks, n_total, Wr, zero, gram, radius, eps, thr, gd, gc, gb,
               log_const, a, bm1, cand_s, cand_J, cand_f, cand_i, cand_n, sums):
        t = cuda.grid(1)
        if t >= n_chunks:
            return
        tot = 0.0
        tot2 = 0.0
        hits = 0
        J = cuda.local.array(R1, int64)
        Q = cuda.local.array((R, M), float64)
        xi = cuda.local.array(MP, float64)
        dirn = cuda.local.array(RP, float64)
        g = cuda.local.array(M, float64)
        x = cuda.local.array(M, float64)
        s = cuda.local.array(M, float64)
        fake = cuda.local.array(M, float64)
        G = cuda.local.array((R, R), float64)
        e = cuda.local.array(R, float64)
        lam = cuda.local.array(R, float64)
        top = cuda.local.array(L, float64)
        for m in range(M):
            fake[m] = 0.0
        c_idx = c0 + t
        s0, s1 = stream_state(key0, key1, uint64(c_idx))
        for i in range(CHUNK):
            idx = c_idx * CHUNK + i
            if idx >= n_total:
                break
            # J: Floyd's algorithm, as random_subset (integers by 53-bit multiply-shift)
            n_in = 0
            for j in range(M - (R + 1), M):
                s0, s1, rr = next64(s0, s1)
                v = int64(((rr >> uint64(11)) * uint64(j + 1)) >> uint64(53))
                found = False
                for q in range(n_in):
                    if J[q] == v:
                        found = True
                J[n_in] = j if found else v
                n_in += 1
            sort_j(J, R1)
            rho2 = circum(gram, J, R, eps, fake, G, e, lam) if SCORE else eps * eps
            c = rho2 / (radius * radius)
            c = c if c < 1.0 else 1.0
            s0, s1, rr = next64(s0, s1)
            u = (float64(rr >> uint64(11)) + 0.5) * INV53
            beta, fac = draw_beta(u, c, a, bm1, log_const)
            basis(Wr, J, R, Q)
            s0, s1, dn2 = normals64(s0, s1, dirn, R)
            rn = radius * math.sqrt(beta / dn2)
            s0, s1, _ = normals64(s0, s1, xi, 0)
            for m in range(M):
                g[m] = xi[m]
            proj(Q, R, g)
            ss = 0.0
            for m in range(M):
                ss += g[m] * g[m]
            s0, s1, gam = gamma_mt(s0, s1, gd, gc, gb)
            ry = radius * math.sqrt(1.0 - beta) / math.sqrt(ss + 2.0 * float64(gam))
            point(Q, R, dirn, rn, g, ry, x)
            matvec(Wr, x, 1.0, zero, s)
            # score metric: the CPU's tests of x in tube_r (spread of s_J, window statistic);
            # euclidean and normal: the necessary condition of the module docstring, with a
            # relative slack far above the float64 differences of device and host arithmetic
            keep = True
            if SCORE:
                keep = spread(s, J, R) <= thr
            if keep:
                for q in range(L):
                    top[q] = -math.inf
                for m in range(M):
                    insert(top, s[m])
                keep = window(top, R) <= thr
            if keep and ON_DEVICE:
                # in the tube: w = fac / N(x), N(x) the number of (R+1)-sets of scores with
                # spread <= eps (family_count_score without the sort: for each anchor a, the
                # scores after it in (value, index) order within eps; the same comparisons)
                count = 0
                for p in range(M):
                    sa = s[p]
                    m_after = 0
                    for q in range(M):
                        sq = s[q]
                        if (sq > sa or (sq == sa and q > p)) and sq - sa <= eps:
                            m_after += 1
                    if m_after >= R:
                        cmb = 1
                        for q in range(R):
                            cmb = cmb * (m_after - q) // (q + 1)
                        count += cmb
                w = fac / (count if count > 1 else 1)
                tot += w
                tot2 += w * w
                hits += 1 if w > 0.0 else 0
            elif keep:
                slot = cuda.atomic.add(cand_n, 0, 1)
                if slot < cand_s.shape[0]:
                    for m in range(M):
                        cand_s[slot, m] = s[m]
                    for l in range(R + 1):
                        cand_J[slot, l] = J[l]
                    cand_f[slot] = fac
                    cand_i[slot] = idx
        # per-chunk sums: the host adds them in chunk order (no atomics: same bits any launch)
        sums[t, 0] = tot
        sums[t, 1] = tot2
        sums[t, 2] = float64(hits)

    return kernel


def tube_sums(router, r, radius, eps, metric, n_samples, key, devices, host_threads=1):
    """``[sum of scores, sum of squares, nonzero scores, overlap sum, its squares]`` over
    ``n_samples`` tube samples for order r at one eps (the layout of ``tube_chunk``'s ``out``),
    and the number of samples scored on the host (on ``host_threads`` threads per GPU worker)."""
    from discosim._kernels.pointstats import sort_pairs_for
    from discosim._cuda.launch import router_arrays, run_units

    M, D, k = router.n_experts, router.dim, router.k
    score = metric == METRIC_SCORE
    kern = tube_kernel(M, k, r, score, score and SCREEN)
    a, b = 0.5 * r, 0.5 * (D - r) + 1.0
    log_const = power_law_log_constant(M, r, D)
    wmax = router.max_row_norm
    # euclidean/normal: 2 max|w| eps (THEORY §4.1), relative slack for device-host float64
    # differences, and twice projection_straddles' tie tolerance 1e-11 (|s| + max|w| eps)
    thr = (eps if score else
           2.0 * wmax * eps * (1.0 + 1e-6) + 4e-11 * wmax * (radius + eps))
    if not SCREEN:
        thr = math.inf
    gd, gc, gb = gamma_params(0.5 * (D + 2 - M))
    n_chunks = -(-n_samples // CHUNK)
    n_units = -(-n_chunks // UNIT_CHUNKS)
    key0, key1 = key
    pairs = sort_pairs_for(M)
    gram = np.ascontiguousarray(router.gram, dtype=np.float64)

    def make_worker(dev):
        d_W, _, d_g = router_arrays(cuda, router)
        d_zero = cuda.to_device(np.zeros(M))
        d_n = cuda.to_device(np.zeros(1, dtype=np.int32))
        cap = [1 << 14]
        bufs = {}

        def work(u):
            c0 = u * UNIT_CHUNKS
            nc = min(UNIT_CHUNKS, n_chunks - c0)
            while True:
                if bufs.get("cap") != cap[0]:
                    bufs.update(cap=cap[0], s=cuda.device_array((cap[0], M)),
                                J=cuda.device_array((cap[0], r + 1), dtype=np.int64),
                                f=cuda.device_array(cap[0]),
                                i=cuda.device_array(cap[0], dtype=np.int64))
                if "sums" not in bufs:
                    bufs["sums"] = cuda.device_array((UNIT_CHUNKS, 3))
                d_n.copy_to_device(np.zeros(1, dtype=np.int32))
                kern[-(-nc // BLOCK), BLOCK](key0, key1, c0, nc, n_samples, d_W, d_zero, d_g,
                                             float(radius), float(eps), thr, gd, gc, gb,
                                             log_const, a, b - 1.0, bufs["s"], bufs["J"],
                                             bufs["f"], bufs["i"], d_n, bufs["sums"])
                n_c = int(d_n.copy_to_host()[0])
                if n_c <= cap[0]:
                    break
                cap[0] = max(2 * cap[0], n_c)  # too many for the buffer: redo (same numbers)
            dev = bufs["sums"][:nc].copy_to_host()
            order = np.argsort(bufs["i"][:n_c].copy_to_host(), kind="stable")
            rows = tuple(bufs[q][:n_c].copy_to_host()[order] for q in ("s", "J", "f"))
            out = _score_on_host(rows, gram, k, r, metric, float(eps), wmax, pairs, host_threads)
            out[:3] += dev.sum(axis=0)
            return out, n_c

        return work

    parts = run_units(n_units, devices, make_worker)
    out = np.zeros(5)
    for p, _ in parts:
        out += p
    return out, int(sum(n for _, n in parts))


def _score_on_host(rows, gram, k, r, metric, eps, wmax, pairs, threads):
    """``score_rows`` over the handed-back rows (in sample order), blocks of ``HOST_BLOCK`` rows
    on ``threads`` threads (the kernel releases the GIL), partial sums added in block order."""
    from collections import deque

    from discosim._kernels.volumes.tube import score_rows
    from discosim._core.runtime import _thread_pool

    S, J, f = rows
    starts = range(0, S.shape[0], HOST_BLOCK)

    def block(i0):
        part = np.zeros(5)
        sl = slice(i0, i0 + HOST_BLOCK)
        score_rows(np.ascontiguousarray(S[sl]), np.ascontiguousarray(J[sl]),
                   np.ascontiguousarray(f[sl]), gram, k, r, metric, eps, wmax, pairs, part)
        return part

    out = np.zeros(5)
    if len(starts) <= 1 or threads <= 1:
        for i0 in starts:
            out += block(i0)
        return out
    pool = _thread_pool(threads)  # the process's persistent pool: no thread start per unit
    pending = deque()
    for i0 in starts:  # at most ``threads`` blocks in flight, added in block order
        pending.append(pool.submit(block, i0))
        if len(pending) >= threads:
            out += pending.popleft().result()
    while pending:
        out += pending.popleft().result()
    return out
