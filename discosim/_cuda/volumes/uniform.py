"""Uniform-in-the-ball volume sampler on the GPU (THEORY §3, §4, §5; CPU twin:
``discosim._kernels.volume.uniform_chunk``).

Per sample, in registers: ``G ~ N(0, I_M)`` and ``C ~ chi^2_{D+2-M}`` (:mod:`.rng`), the reduced
point ``z = R G / sqrt(|G|^2 + C)`` (uniform in ``B_D(0, R)``, THEORY §3; cosine scores:
``z = G / sqrt(|G|^2 + C)`` with ``C ~ chi^2_{D-M}``), the float32 scores ``s = W_r z + b``, the
top ``k + rmax`` scores by insertion (compare-exchange with constant indices: no sort, no local
memory) and the score-window statistic ``stat_r`` (min spread of r+1 consecutive sorted scores
holding ranks k, k+1; THEORY §4.3). Counts ``#{stat_r <= eps}`` are kept per thread, reduced per
block in shared memory and added to the global counters with one atomic per counter per block.

Float32 rounding of the scores. With unit roundoff ``u = 2^-24`` and the same float32 G and C
fed to a float64 evaluation, each computed score obeys (first order in u; summation in any order,
fast-math sqrt/division included)::

    |s_i^(32) - s_i| <= (2M + 16) u (|w_i| |z| + |b_i|),

(M rounded products and sums, the rounded weights, |G|^2 + C and the scale), so a spread of two
scores is off by at most ``ERR = 2 (2M + 16) u (max|w| |z| + max|b|)``. At M = 8, |w| = |z| = 1
that is 3.8e-6; at M = 256 it is 1.6e-4 -- against eps >= 1e-3 in every claim. Where float32
does not resolve a sample -- ``|stat_r - eps| <= ERR`` for some r and eps (score metric) -- the
sample is not counted by the float32 pass; its float32 G and C go to :func:`refine_kernel`, which
recomputes it in float64 on the device (at (256, 8), D = 4096, about 8% of the samples). So the
counts are exactly those of a float64 evaluation of the same draws, whatever the summation order
(fused loop or cuBLAS SGEMM).

Euclidean and normal metrics: the tube test needs the subset projections of
``discosim._kernels.pointstats`` (float64, small linear solves). A point within distance eps of the
order-r set has r+1 scores (ranks k and k+1 among them) within ``2 max|w| eps`` (THEORY §4.1), so
``stat_1 <= 2 max|w| eps_max`` is necessary: the GPU screens every sample with it and the host
computes the exact distances of the survivors (a fraction O(eps_max) of the samples).

Reproducible: chunk c (``CHUNK`` samples) is drawn by one warp, lane l from stream ``32 c + l``,
its i-th sample being sample ``c CHUNK + 32 i + l``. Numbers depend on the seed and the device
type only, never on the launch shape or the number of GPUs.

For M > ``MAX_UNROLLED_M`` (where CuPy is installed) a generator kernel writes G (M x N, samples
along columns, coalesced) and C, and a CUDA C++ kernel compiled by NVRTC (:mod:`.select_nvrtc`)
computes the scores and selects: with the weights as literals of its source up to
``MAX_NVRTC_FUSED_M`` (g[] in registers; (64, 8) on an H200: 2.9e9-3.3e9 samples/s, against
1.8e9 for SGEMM + selection), after float32 GEMMs above it (cuBLAS, TF32 off; row blocks skip the zero
upper triangle of W_r). Without CuPy the numba fused kernel reads W from shared memory
(M <= ``MAX_FUSED_M``) or global memory.
"""

import functools
import math

import numpy as np

from discosim._core.devices import import_numba_cuda

cuda = import_numba_cuda()
from numba import config, float32, float64, int32, uint64  # noqa: E402  (after numba.cuda)

from discosim._cuda.volumes.bounds import score_error_coefficient  # noqa: E402
from discosim._cuda.rng import gamma_mt, normal_pair, stream_state  # noqa: E402
from discosim._cuda.volumes.select_nvrtc import MAX_NVRTC_FUSED_M  # noqa: E402

CHUNK = 1024  # samples per chunk = 32 lanes x 32 samples
LANE_SAMPLES = CHUNK // 32
MAX_FUSED_M = 128  # packed lower-triangular W_r in 48 KB of shared memory up to M ~ 155
MAX_UNROLLED_M = 32  # fully unrolled code: numba's compile time grows fast (M = 64: 3 min)
BLOCK = 256


@functools.lru_cache(maxsize=None)
def _kernels(M, K, RMAX, NE, SCREEN, COSINE, SHARED_W, DIST):
    """Compile the fused kernel (and the GEMM-path pair) for one shape.

    SCREEN: 0 = score metric (count with refinement band), 1 = euclidean/normal screening.
    DIST: 0 = uniform in the ball (or cosine), 1 = Gaussian N(0, R^2/D) (overhead only).
    """
    L = min(M, K + RMAX)
    NW = M * (M + 1) // 2
    NC = RMAX * NE
    HALF_M = M // 2
    ODD = M % 2
    NEG_INF = np.float32(-np.inf)
    INF = np.float32(np.inf)
    TWO = np.float32(2.0)
    ZERO = np.float32(0.0)
    NWS = NW if SHARED_W else 1
    NC1 = max(NC, 1)
    NE1 = max(NE, 1)

    @cuda.jit(device=True, inline=True)
    def draw(s0, s1, g, gd, gc, gb):
        ss = ZERO
        for j in range(HALF_M):
            s0, s1, n1, n2 = normal_pair(s0, s1)
            g[2 * j] = n1
            g[2 * j + 1] = n2
            ss += n1 * n1 + n2 * n2
        if ODD:
            s0, s1, n1, n2 = normal_pair(s0, s1)
            g[M - 1] = n1
            ss += n1 * n1
        c = ZERO
        if DIST == 0:
            s0, s1, gam = gamma_mt(s0, s1, gd, gc, gb)
            c = TWO * gam
        return s0, s1, ss, c

    @cuda.jit(device=True, inline=True)
    def window_stats(top, stats):
        for r in range(1, RMAX + 1):
            best = INF
            # no builtin min/max in kernels: some numba-cuda releases mistype them
            p_lo = K - r + 1 if K - r + 1 > 1 else 1
            p_hi = K if K < M - r else M - r
            for p in range(p_lo, p_hi + 1):
                d = top[p - 1] - top[p + r - 1]
                best = d if d < best else best
            stats[r - 1] = best

    @cuda.jit(device=True, inline=True)
    def classify(stats, epsl, err, thr, cnt):
        """Count the sample (returns False) or flag it for the host (returns True)."""
        if SCREEN == 0:
            near = False
            for r in range(RMAX):
                for e in range(NE):
                    if abs(stats[r] - epsl[e]) <= err:
                        near = True
            if near:
                return True
            for r in range(RMAX):
                for e in range(NE):
                    if stats[r] <= epsl[e]:
                        cnt[r * NE + e] += 1
            return False
        return stats[0] <= thr + err

    @cuda.jit(device=True, inline=True)
    def flush(cnt, hist):
        sh = cuda.shared.array(NC1, int32)
        t = cuda.threadIdx.x
        for q in range(t, NC, cuda.blockDim.x):
            sh[q] = 0
        cuda.syncthreads()
        for q in range(NC):
            if cnt[q] != 0:
                cuda.atomic.add(sh, q, cnt[q])
        cuda.syncthreads()
        for q in range(t, NC, cuda.blockDim.x):
            if sh[q] != 0:
                cuda.atomic.add(hist, q, uint64(sh[q]))

    @cuda.jit(device=True, inline=True)
    def push(cand, cand_n, g, c):
        slot = cuda.atomic.add(cand_n, 0, 1)
        if slot < cand.shape[0]:
            for j in range(M):
                cand[slot, j] = g[j]
            cand[slot, M] = c

    @cuda.jit(fastmath=True)
    def fused(key0, key1, chunk0, n_chunks, n_total, Wp, bias, radius, gd, gc, gb, eps, e1, e0,
              thr, hist, cand, cand_n):
        shW = cuda.shared.array(NWS, float32)
        t = cuda.threadIdx.x
        if SHARED_W:
            for q in range(t, NW, cuda.blockDim.x):
                shW[q] = Wp[q]
            cuda.syncthreads()
        g = cuda.local.array(M, float32)
        top = cuda.local.array(L, float32)
        stats = cuda.local.array(RMAX, float32)
        epsl = cuda.local.array(NE1, float32)
        cnt = cuda.local.array(NC1, int32)
        for e in range(NE):
            epsl[e] = eps[e]
        for q in range(NC):
            cnt[q] = 0
        gtid = cuda.blockIdx.x * cuda.blockDim.x + t
        lane = gtid % 32
        warp = gtid // 32
        n_warps = cuda.gridDim.x * cuda.blockDim.x // 32
        for w in range(warp, n_chunks, n_warps):
            c_idx = chunk0 + w
            s0, s1 = stream_state(key0, key1, uint64(c_idx * 32 + lane))
            base = c_idx * CHUNK + lane
            for i in range(LANE_SAMPLES):
                if base + 32 * i >= n_total:
                    break
                s0, s1, ss, c = draw(s0, s1, g, gd, gc, gb)
                if COSINE:
                    scale = np.float32(1.0) / math.sqrt(ss + c)
                else:
                    scale = radius / math.sqrt(ss + c)
                zn = scale * math.sqrt(ss)
                for q in range(L):
                    top[q] = NEG_INF
                o = 0
                for a in range(M):
                    acc = ZERO
                    for j in range(a + 1):
                        wv = shW[o + j] if SHARED_W else Wp[o + j]
                        acc += wv * g[j]
                    o += a + 1
                    v = scale * acc + bias[a]
                    for q in range(L):  # insertion by compare-exchange: constant indices
                        hi = top[q]
                        top[q] = v if v > hi else hi
                        v = hi if v > hi else v
                window_stats(top, stats)
                if classify(stats, epsl, e1 * zn + e0, thr, cnt):
                    push(cand, cand_n, g, c)
        flush(cnt, hist)

    @cuda.jit(fastmath=True)
    def generate(key0, key1, chunk0, n_chunks, n_total, gd, gc, gb, GT, sumsq, chi):
        gtid = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x
        lane = gtid % 32
        warp = gtid // 32
        n_warps = cuda.gridDim.x * cuda.blockDim.x // 32
        for w in range(warp, n_chunks, n_warps):
            c_idx = chunk0 + w
            s0, s1 = stream_state(key0, key1, uint64(c_idx * 32 + lane))
            for i in range(LANE_SAMPLES):
                if c_idx * CHUNK + lane + 32 * i >= n_total:
                    break
                col = w * CHUNK + lane + 32 * i  # sample offset inside this unit
                # draw()'s normals and sums, in its order, written straight to GT: a local
                # g[] of M floats went through local memory (M = 256: 1 KB per thread)
                ss = ZERO
                for j in range(HALF_M):
                    s0, s1, n1, n2 = normal_pair(s0, s1)
                    GT[2 * j, col] = n1
                    GT[2 * j + 1, col] = n2
                    ss += n1 * n1 + n2 * n2
                if ODD:
                    s0, s1, n1, n2 = normal_pair(s0, s1)
                    GT[M - 1, col] = n1
                    ss += n1 * n1
                c = ZERO
                if DIST == 0:
                    s0, s1, gam = gamma_mt(s0, s1, gd, gc, gb)
                    c = TWO * gam
                sumsq[col] = ss
                chi[col] = c

    return fused, generate


_FUSED_CACHE = {}
if config.ENABLE_CUDASIM:  # no libdevice in the simulator
    _FMAX, _FMIN = max, min
else:
    from numba.cuda import libdevice

    # one instruction each (no branches: numba's compile time grows with the branch count)
    _FMAX, _FMIN = libdevice.fmaxf, libdevice.fminf


def _fused_source(M, K, RMAX, NE, SCREEN, COSINE):
    """Source of the fused kernel for one shape, every loop unrolled by hand.

    The normals, the top-L list and the counters are scalar locals (registers: numba keeps a
    local *array* in memory whenever LLVM does not unroll the loop indexing it), and the
    weights are a constant array read at constant offsets, so each score term is one FFMA with
    a constant-bank operand.
    """
    L = min(M, K + RMAX)
    g = [f"g{j}" for j in range(M)]
    t = [f"t{q}" for q in range(L)]
    ind = " " * 12
    body = []
    for j in range(M // 2):
        body.append(f"s0, s1, {g[2 * j]}, {g[2 * j + 1]} = normal_pair(s0, s1)")
    if M % 2:
        body.append(f"s0, s1, {g[M - 1]}, _n = normal_pair(s0, s1)")
    body.append("ss = " + " + ".join(f"{x} * {x}" for x in g))
    body.append("s0, s1, gam = gamma_mt(s0, s1, gd, gc, gb)")
    body.append("c = TWO * gam")
    body.append("scale = ONE / math.sqrt(ss + c)" if COSINE else "scale = radius / math.sqrt(ss + c)")
    body.append("zn = scale * math.sqrt(ss)")
    for q in range(L):
        body.append(f"{t[q]} = NEG_INF")
    o = 0
    for a in range(M):
        terms = " + ".join(f"WC_{o + j} * {g[j]}" for j in range(a + 1))
        o += a + 1
        body.append(f"v = scale * ({terms}) + BC_{a}")
        for q in range(L):  # insertion by compare-exchange, branch-free
            body.append(f"h = {t[q]}")
            body.append(f"{t[q]} = FMAX(v, h)")
            body.append("v = FMIN(v, h)")
    for r in range(1, RMAX + 1):
        body.append(f"st{r} = INF")
        for p in range(max(1, K - r + 1), min(K, M - r) + 1):
            body.append(f"st{r} = FMIN(st{r}, {t[p - 1]} - {t[p + r - 1]})")
    body.append("err = e1 * zn + e0")
    if SCREEN == 0:
        near = " | ".join(f"(abs(st{r} - ep{e}) <= err)" for r in range(1, RMAX + 1)
                          for e in range(NE))
        body.append(f"hand = {near}")
        body.append("inc = int32(1) - int32(hand)")
        for r in range(1, RMAX + 1):
            for e in range(NE):
                body.append(f"c{r}_{e} += inc * int32(st{r} <= ep{e})")
    else:
        body.append("hand = st1 <= thr + err")
    body.append("if hand:")
    body.append("    slot = cuda.atomic.add(cand_n, 0, 1)")
    body.append("    if slot < cand.shape[0]:")
    for j in range(M):
        body.append(f"        cand[slot, {j}] = {g[j]}")
    body.append(f"        cand[slot, {M}] = c")
    counters = [f"c{r}_{e}" for r in range(1, RMAX + 1) for e in range(NE)]
    src = [
        "def fused(key0, key1, chunk0, n_chunks, n_total, radius, gd, gc, gb, eps, e1, e0, thr,",
        "          hist, cand, cand_n):",
    ]
    src += [f"    ep{e} = eps[{e}]" for e in range(NE)]
    src += [f"    {c} = int32(0)" for c in counters]
    src += [
        "    gtid = cuda.blockIdx.x * cuda.blockDim.x + cuda.threadIdx.x",
        "    lane = gtid % 32",
        "    warp = gtid // 32",
        "    n_warps = cuda.gridDim.x * cuda.blockDim.x // 32",
        "    for w in range(warp, n_chunks, n_warps):",
        "        c_idx = chunk0 + w",
        "        s0, s1 = stream_state(key0, key1, uint64(c_idx * 32 + lane))",
        "        base = c_idx * CHUNK + lane",
        "        for i in range(LANE_SAMPLES):",
        "            if base + 32 * i >= n_total:",
        "                break",
    ]
    src += [ind + b for b in body]
    src += [f"    cnt = cuda.local.array({max(len(counters), 1)}, int32)"]
    src += [f"    cnt[{q}] = {c}" for q, c in enumerate(counters)]
    src += ["    flush(cnt, hist)"]
    return "\n".join(src) + "\n"


def fused_kernel(Wp, bias32, M, K, RMAX, NE, SCREEN, COSINE):
    """The fused kernel with this router's packed weights and bias baked in as constants."""
    key = (M, K, RMAX, NE, SCREEN, COSINE, Wp.tobytes(), bias32.tobytes())
    if key in _FUSED_CACHE:
        return _FUSED_CACHE[key]
    NC = RMAX * NE

    @cuda.jit(device=True, inline=True)
    def flush(cnt, hist):
        sh = cuda.shared.array(NC, int32)
        t = cuda.threadIdx.x
        for q in range(t, NC, cuda.blockDim.x):
            sh[q] = 0
        cuda.syncthreads()
        for q in range(NC):
            if cnt[q] != 0:
                cuda.atomic.add(sh, q, cnt[q])
        cuda.syncthreads()
        for q in range(t, NC, cuda.blockDim.x):
            if sh[q] != 0:
                cuda.atomic.add(hist, q, uint64(sh[q]))

    # executed in this module's namespace (the CUDA simulator swaps the cuda module there);
    # the per-kernel constants get unique names
    tag = f"_{len(_FUSED_CACHE)}_{abs(hash(key)) % 10 ** 8}"
    ns = globals()
    ns.update({"FMAX": _FMAX, "FMIN": _FMIN, "flush" + tag: flush,
               "NEG_INF": np.float32(-np.inf), "INF": np.float32(np.inf),
               "TWO": np.float32(2.0), "ONE": np.float32(1.0)})
    # weights and bias as float32 globals, which numba freezes into the code as constants
    # (no array indexing: far fewer IR nodes than a constant array, so far faster compiles)
    ns.update({f"WC{tag}_{i}": np.float32(x) for i, x in enumerate(Wp)})
    ns.update({f"BC{tag}_{i}": np.float32(x) for i, x in enumerate(bias32)})
    src = (_fused_source(M, K, RMAX, NE, SCREEN, COSINE)
           .replace("def fused(", f"def fused{tag}(").replace("WC_", f"WC{tag}_")
           .replace("BC_", f"BC{tag}_").replace("flush(cnt", f"flush{tag}(cnt"))
    exec(compile(src, f"<fused M={M}>", "exec"), ns)
    kern = cuda.jit(fastmath=True)(ns["fused" + tag])
    if len(_FUSED_CACHE) > 16:
        _FUSED_CACHE.clear()
    _FUSED_CACHE[key] = kern
    return kern


def multiprocessor_count(cuda):
    """SMs of the current device (4 under the CUDA simulator, which has no device attributes)."""
    try:
        return int(cuda.get_current_device().MULTIPROCESSOR_COUNT)
    except AttributeError:
        return 4


REFINE_BLOCKS = 1 << 14  # resident one-warp blocks of the refinement (grid-stride over rows)


@functools.lru_cache(maxsize=None)
def float64_selection(M, K, RMAX):
    """float64 device functions: insertion into the top ``L = min(M, K + RMAX)`` (descending)
    and the window statistic of order r from it (min spread of r+1 consecutive sorted scores
    holding ranks K, K+1; THEORY §4.3). Shared by the refinement here and the tube sampler."""
    L = min(M, K + RMAX)

    @cuda.jit(device=True, inline=True)
    def insert(top, v):
        for t in range(L):
            h = top[t]
            if v > h:
                top[t] = v
                v = h

    @cuda.jit(device=True, inline=True)
    def window(top, r):
        best = math.inf
        p_lo = K - r + 1 if K - r + 1 > 1 else 1
        p_hi = K if K < M - r else M - r
        for p in range(p_lo, p_hi + 1):
            d = top[p - 1] - top[p + r - 1]
            best = d if d < best else best
        return best

    return insert, window


@functools.lru_cache(maxsize=None)
def _float64_counting(M, K, RMAX, NE):
    """:func:`float64_selection`'s insertion and the counts ``#{stat_r <= eps}``."""
    insert, window = float64_selection(M, K, RMAX)

    @cuda.jit(device=True, inline=True)
    def count(top, eps, hist):
        for r in range(1, RMAX + 1):
            best = window(top, r)
            for e in range(NE):
                if best <= eps[e]:
                    cuda.atomic.add(hist, (r - 1) * NE + e, uint64(1))

    return insert, count


@functools.lru_cache(maxsize=None)
def refine_kernel(M, K, RMAX, NE, COSINE):
    """float64 recomputation, on the GPU, of the samples float32 did not resolve (score metric).

    Row q of ``cand`` holds the float32 normals G and chi-square C of one sample; the scores are
    recomputed in float64 from those very values and the sample is counted like any other (the
    CPU twin of the statistic: ``discosim._kernels.pointstats.score_window_stats``).

    One warp per row (launch with 32 threads per block): the lanes read the row coalesced, put the
    scaled point in shared memory and compute the scores ``a = lane, lane + 32, ...`` from the
    transposed weights ``Wt[j, a]`` (consecutive lanes, consecutive addresses); lane 0 selects the
    top k + rmax. A thread per row re-read its row, uncoalesced, for each of the M(M+1)/2 products
    (21 TB/s of L2 traffic at (256, 8)). Every sum runs in a fixed order whatever the launch, so
    the counts never depend on it.
    """
    L = min(M, K + RMAX)
    NS = (M + 31) // 32
    insert, count = _float64_counting(M, K, RMAX, NE)

    @cuda.jit
    def refine(n_rows, cand, Wt, bias, radius, eps, hist):
        lane = cuda.threadIdx.x
        zs = cuda.shared.array(M, float64)
        sc = cuda.shared.array(M, float64)
        part = cuda.shared.array(32, float64)
        top = cuda.local.array(L, float64)
        for q in range(cuda.blockIdx.x, n_rows, cuda.gridDim.x):
            ss = 0.0
            for i in range(NS):
                j = lane + 32 * i
                if j < M:
                    x = float64(cand[q, j])
                    ss += x * x
            part[lane] = ss
            cuda.syncthreads()
            ss = 0.0
            for t in range(32):  # every lane sums the partials in the same order: one scale
                ss += part[t]
            if COSINE:
                scale = 1.0 / math.sqrt(ss + float64(cand[q, M]))
            else:
                scale = radius / math.sqrt(ss + float64(cand[q, M]))
            for i in range(NS):
                j = lane + 32 * i
                if j < M:
                    zs[j] = scale * float64(cand[q, j])
            cuda.syncthreads()
            for i in range(NS):
                a = lane + 32 * i
                if a < M:
                    acc = 0.0
                    for j in range(a + 1):
                        acc += Wt[j, a] * zs[j]
                    sc[a] = acc + bias[a]
            cuda.syncthreads()
            if lane == 0:
                for t in range(L):
                    top[t] = -math.inf
                for a in range(M):
                    insert(top, sc[a])
                count(top, eps, hist)
            cuda.syncthreads()  # the shared rows are reused by the next q

    return refine


@functools.lru_cache(maxsize=None)
def select64_kernel(M, K, RMAX, NE):
    """Counts of float64 scores ``S[a, col]`` (the GEMM path's refinement: cuBLAS DGEMM makes S).

    A thread per column, reading consecutive columns (coalesced); the selection and the window
    statistic of :func:`refine_kernel`. Re-reading W for every handed-back row, as the per-row
    kernel does, was bound by L2 bandwidth at M = 256 (11 TB in a 5e8-sample run).
    """
    L = min(M, K + RMAX)
    insert, count = _float64_counting(M, K, RMAX, NE)

    @cuda.jit
    def select64(n_cols, S, bias, eps, hist):
        col = cuda.grid(1)
        if col >= n_cols:
            return
        top = cuda.local.array(L, float64)
        for t in range(L):
            top[t] = -math.inf
        for a in range(M):
            insert(top, S[a, col] + bias[a])
        count(top, eps, hist)

    return select64


TRI_BLOCK = 64


def _triangular_product(cp, bufs, M, ncols):
    """``S = W_r G`` for lower-triangular W_r: row block b of S needs only the first columns
    of W_r up to the block's end, so blocks of ``TRI_BLOCK`` rows skip the zero upper triangle
    ((256, 8): 62.5% of the flops of one full SGEMM). Same products, same float32 sums per entry
    up to cuBLAS's summation order, which the error bound does not assume."""
    G = bufs["GT"][:, :ncols]
    if M < 2 * TRI_BLOCK:
        return cp.matmul(bufs["W"], G)
    S = bufs.get("S")
    if S is None or S.shape[1] != ncols:
        S = bufs["S"] = cp.empty((M, ncols), dtype=cp.float32)
    if "Wblocks" not in bufs:
        bufs["Wblocks"] = [cp.ascontiguousarray(bufs["W"][r0:min(M, r0 + TRI_BLOCK), :min(M, r0 + TRI_BLOCK)])
                           for r0 in range(0, M, TRI_BLOCK)]
    for b, Wb in enumerate(bufs["Wblocks"]):
        r0 = b * TRI_BLOCK
        r1 = r0 + Wb.shape[0]
        cp.matmul(Wb, G[:r1], out=S[r0:r1])
    return S


def _device_memory(cuda):
    try:
        return int(cuda.current_context().get_memory_info()[1])
    except Exception:  # the simulator has no memory info
        return 0


@functools.lru_cache(maxsize=None)
def _nvrtc_usable():
    """CuPy imports and NVRTC compiles and loads a kernel (else ``auto`` takes the numba path)."""
    try:
        from discosim._cuda.volumes.select_nvrtc import probe

        probe()
    except Exception:
        return False
    return True


def _host_counts(G, C, Wr, bias, gram, k, rmax, metric, eps_sorted, wmax, radius, cosine):
    """float64 counts ``#{stat_r <= eps_j}`` of the handed-back samples (the CPU kernels' stats)."""
    from discosim._kernels.pointstats import sort_pairs_for, stats_from_scores

    out = np.zeros((rmax, eps_sorted.size), dtype=np.int64)
    if G.shape[0] == 0:
        return out
    G = G.astype(np.float64)
    ss = np.sum(G * G, axis=1)
    scale = 1.0 / np.sqrt(ss + C.astype(np.float64))
    if not cosine:
        scale *= radius
    S = np.ascontiguousarray((G * scale[:, None]) @ Wr.T + bias)
    st = np.empty((S.shape[0], rmax))
    stats_from_scores(S, gram, k, rmax, metric, float(eps_sorted[-1]), wmax,
                      sort_pairs_for(Wr.shape[0]), st)
    for r in range(rmax):
        out[r] = np.sum(st[:, r][:, None] <= eps_sorted[None, :], axis=0)
    return out


VARIANTS = ("auto", "unrolled", "fused", "gemm", "nvrtc")


def uniform_counts(router, radius, eps_sorted, rmax, metric, cosine, n_samples, key, devices,
                   unit_chunks=None, variant="auto"):
    """``counts[r-1, j] = #{samples with stat_r <= eps_sorted[j]}`` over ``n_samples`` samples.

    ``metric``: 0 euclidean, 1 normal, 2 score (codes of ``discosim.volumes.estimators``); ``key``: the run's
    stream key (:func:`.rng.run_key`); ``devices``: GPU ids (see :func:`discosim._core.devices.resolve_devices`).
    ``unit_chunks`` (chunks per work unit) and ``variant`` change speed only, never the counts:
    ``unrolled`` (M <= MAX_UNROLLED_M), ``fused`` (weights in shared or global memory), ``gemm``
    (CuPy SGEMM, then the C++ selection of :mod:`.select_nvrtc`), ``nvrtc`` (scores and
    selection in one C++ kernel, M <= ``MAX_NVRTC_FUSED_M``), ``auto`` the fastest that applies. Returns ``(counts, n_handed_to_host)``.
    """
    from discosim._core.devices import cuda_module
    from discosim._cuda.launch import run_units
    from discosim._cuda.rng import gamma_params

    cuda = cuda_module()
    Wr, bias, gram, k = router.reduced_weights, router.bias, router.gram, router.k
    M, D = router.n_experts, router.dim
    NE = eps_sorted.size
    wmax = router.max_row_norm
    bmax = float(np.max(np.abs(bias))) if bias.size else 0.0
    screen = 0 if metric == 2 else 1
    df = float(D - M) if cosine else float(D + 2 - M)
    gd, gc, gb = gamma_params(0.5 * df)
    e1 = np.float32(2.0 * score_error_coefficient(M) * wmax)
    e0 = np.float32(2.0 * score_error_coefficient(M) * bmax)
    thr = np.float32(2.0 * wmax * float(eps_sorted[-1]) * (1.0 + 1e-6))
    if variant == "auto":
        # above MAX_UNROLLED_M the C++ kernels win wherever CuPy is there ((64, 8) on an H200:
        # the numba fused kernel, whose g[] lives in local memory, did 3.2e8 samples/s)
        variant = ("unrolled" if M <= MAX_UNROLLED_M else "fused" if not _nvrtc_usable() else
                   "nvrtc" if M <= MAX_NVRTC_FUSED_M else "gemm")
    if variant == "nvrtc" and M > MAX_NVRTC_FUSED_M:
        raise ValueError(f"variant 'nvrtc' needs M <= {MAX_NVRTC_FUSED_M}")
    use_gemm = variant in ("gemm", "nvrtc")  # G, C in global memory; handed back by column
    shared_w = M <= MAX_FUSED_M
    rows = np.tril_indices(M)
    Wp = np.ascontiguousarray(Wr[rows], dtype=np.float32)
    b32 = np.ascontiguousarray(bias, dtype=np.float32)
    fused, generate = _kernels(M, k, rmax, NE, screen, bool(cosine), shared_w, 0)
    refine = refine_kernel(M, k, rmax, NE, bool(cosine)) if screen == 0 else None
    select64 = select64_kernel(M, k, rmax, NE) if screen == 0 and use_gemm else None
    if variant == "unrolled":
        fused = None
        unrolled = fused_kernel(Wp, b32, M, k, rmax, NE, screen, bool(cosine))
    if use_gemm:
        from discosim._cuda.volumes.select_nvrtc import gather_kernel, select_kernel
        from discosim._cuda.volumes.select_nvrtc import launch as launch_cxx
    n_chunks = -(-n_samples // CHUNK)
    if unit_chunks is None:
        # about 10-50 ms of GPU work per unit; a unit never changes the numbers
        # GEMM path: G and S of a unit take 8 M unit_chunks KB; 8 GB on a large card (the
        # per-unit launches, synchronisations and band handling cost ~2 ms), 2 GB otherwise
        big = use_gemm and _device_memory(cuda) >= (48 << 30)
        per = ((1 << 25) // (M * (M + 1) // 2 + 8 * M) if not use_gemm else
               (1 << 21) // M if big else (1 << 19) // M)
        unit_chunks = max(1, min(n_chunks, per))
    n_units = -(-n_chunks // unit_chunks)
    key0, key1 = key
    eps32 = eps_sorted.astype(np.float32)

    def make_worker(dev):
        n_sm = multiprocessor_count(cuda)
        d_W = cuda.to_device(Wp)
        d_b = cuda.to_device(bias.astype(np.float32))
        d_W64 = cuda.to_device(np.ascontiguousarray(Wr.T, dtype=np.float64))  # Wt for the refinement
        d_b64 = cuda.to_device(np.ascontiguousarray(bias, dtype=np.float64))
        d_eps64 = cuda.to_device(np.ascontiguousarray(eps_sorted, dtype=np.float64))
        d_eps = cuda.to_device(eps32)
        d_hist = cuda.to_device(np.zeros(max(rmax * NE, 1), dtype=np.uint64))
        d_n = cuda.to_device(np.zeros(1, dtype=np.int32))
        cap = [min(unit_chunks * CHUNK, 1 << 16)]
        bufs = {}
        if use_gemm:
            import cupy as cp

            ncol = unit_chunks * CHUNK
            cp.cuda.Device(dev).use()  # this worker thread's device for CuPy too
            bufs["GT"] = cp.empty((M, ncol), dtype=cp.float32)
            bufs["ss"] = cp.empty(ncol, dtype=cp.float32)
            bufs["chi"] = cp.empty(ncol, dtype=cp.float32)
            bufs["W"] = cp.asarray(Wr.astype(np.float32))
            bufs["W64"] = cp.asarray(np.ascontiguousarray(Wr, dtype=np.float64))
            bufs["views"] = [cp.asarray(d) for d in (d_b, d_eps, d_hist, d_n)]
            # built here, with this worker's device current (CuPy loads modules per device)
            gather = gather_kernel(M)
            cxx = (select_kernel(M, k, rmax, NE, screen, bool(cosine), Wp, b32)
                   if variant == "nvrtc" else select_kernel(M, k, rmax, NE, screen, bool(cosine)))

        def work(u):
            c0 = u * unit_chunks
            nc = min(unit_chunks, n_chunks - c0)
            extra = np.zeros((rmax, NE), dtype=np.int64)
            while True:
                d_hist.copy_to_device(np.zeros(max(rmax * NE, 1), dtype=np.uint64))
                d_n.copy_to_device(np.zeros(1, dtype=np.int32))
                if use_gemm:
                    if bufs.get("cap") != cap[0]:
                        bufs["idx"] = cuda.device_array(cap[0], dtype=np.int64)
                        bufs["cap"] = cap[0]
                    d_idx = bufs["idx"]
                    grid = min(-(-nc * 32 // BLOCK), 8 * n_sm)
                    generate[grid, BLOCK](key0, key1, c0, nc, n_samples, gd, gc, gb,
                                          bufs["GT"], bufs["ss"], bufs["chi"])
                    ncols = min(nc * CHUNK, n_samples - c0 * CHUNK)
                    import cupy as cp

                    cuda.synchronize()
                    S = bufs["GT"] if variant == "nvrtc" else _triangular_product(cp, bufs, M, ncols)
                    cb, ce, ch, cn = bufs["views"]
                    launch_cxx(cxx, n_sm, S, bufs["ss"], bufs["chi"], cb, ncols, radius, ce,
                               e1, e0, thr, ch, cp.asarray(d_idx), cn)
                    cp.cuda.Device().synchronize()
                else:
                    if bufs.get("cap") != cap[0]:
                        bufs["cand"] = cuda.device_array((cap[0], M + 1), dtype=np.float32)
                        bufs["cap"] = cap[0]
                    d_cand = bufs["cand"]
                    grid = min(-(-nc * 32 // BLOCK), 8 * n_sm)
                    if fused is None:
                        unrolled[grid, BLOCK](key0, key1, c0, nc, n_samples, np.float32(radius),
                                              gd, gc, gb, d_eps, e1, e0, thr, d_hist, d_cand, d_n)
                    else:
                        fused[grid, BLOCK](key0, key1, c0, nc, n_samples, d_W, d_b,
                                           np.float32(radius), gd, gc, gb, d_eps, e1, e0, thr,
                                           d_hist, d_cand, d_n)
                n_c = int(d_n.copy_to_host()[0])
                if n_c <= cap[0]:
                    break
                cap[0] = max(2 * cap[0], n_c)  # too many handed back: redo with room (same numbers)
            if n_c and refine is not None:  # float64 on the GPU: nothing goes to the host
                if use_gemm:  # float64 scores of the handed-back columns by one cuBLAS DGEMM
                    import cupy as cp

                    Z = cp.empty((M, n_c), dtype=cp.float64)
                    gather((-(-n_c // BLOCK),), (BLOCK,),
                           (bufs["GT"], np.int64(bufs["GT"].shape[1]), bufs["chi"],
                            cp.asarray(d_idx), np.int64(n_c),
                            np.float64(1.0 if cosine else radius), Z))
                    S64 = cp.matmul(bufs["W64"], Z)
                    cp.cuda.Device().synchronize()
                    select64[-(-n_c // BLOCK), BLOCK](n_c, S64, d_b64, d_eps64, d_hist)
                else:
                    refine[min(n_c, REFINE_BLOCKS), 32](n_c, d_cand, d_W64, d_b64, float(radius),
                                                        d_eps64, d_hist)
                n_c = -n_c  # reported as resolved on the device
            hist = d_hist.copy_to_host()[:rmax * NE].astype(np.int64).reshape(rmax, NE)
            if n_c > 0:
                if use_gemm:
                    idx = d_idx.copy_to_host()[:n_c]
                    import cupy as cp

                    G = cp.asnumpy(bufs["GT"][:, cp.asarray(idx)]).T
                    C = cp.asnumpy(bufs["chi"][cp.asarray(idx)])
                else:
                    cand = d_cand.copy_to_host()[:n_c]
                    G, C = cand[:, :M], cand[:, M]
                extra = _host_counts(G, C, Wr, bias, gram, k, rmax, metric, eps_sorted, wmax,
                                     radius, cosine)
            return hist + extra, abs(n_c)

        return work

    parts = run_units(n_units, devices, make_worker)
    counts = np.sum([p[0] for p in parts], axis=0)
    handed = int(sum(p[1] for p in parts))
    return counts, handed
