"""The audit's inputs, exact logits and decision margins on the GPU (THEORY §9; CPU twin:
``discosim.audit.estimators._sample_task``).

Input i of a layer draws from stream i (:mod:`.rng`): M float32 normals G and a float32
chi-square C (sphere: ``D - M`` degrees of freedom, ball: ``D + 2 - M``), the reduced point
``z = R G / sqrt(|G|^2 + C)`` and its logits ``s = R_t z + b`` -- all in float64 from those exact
float32 draws, as the precision audit needs exact logits (THEORY §9; float32 logits would carry
errors of the size of the bf16 effects being measured). A thread per input keeps the top k+1
logits by insertion and writes the margin ``g_k - g_{k+1}``, the tie level ``g_k`` and ``max|s|``.

Flips: an input whose margin is at most ``2 (1 + 1e-6) max(2^(1-p) max|s|, 2^(emin+1-p))`` for
the coarsest format asked (a superset of the rows :func:`discosim._kernels.audit.flip_indicator` rounds:
rounding to nearest cannot change the selection of the others) recomputes its logits, rounds
them to each format (:func:`round_to`, the device twin of ``round_to_format``: ties to even,
subnormals) and selects again, the lower index first among equal rounded logits as on the CPU;
a flip is a changed selected set. Routings with curved ties (DeepSeek-V3) write every logit row
and the host computes their statistics as on the CPU.

Numbers depend on the seed and the device type only, not on the launch shape or the device list
(units of ``UNIT`` inputs, merged in unit order).
"""

import functools
import math

import numpy as np

from discosim._core.devices import import_numba_cuda

cuda = import_numba_cuda()
from numba import config, float64, int32, uint64  # noqa: E402  (after numba.cuda)

from discosim._cuda.rng import gamma_mt, gamma_params, normals64, stream_state  # noqa: E402

UNIT = 1 << 18
BLOCK = 128
HOST_SLICE = 1 << 13  # curved routings: rows per host statistics task (the CPU path's CHUNK)


if config.ENABLE_CUDASIM:  # no libdevice in the simulator: Python's round is half-to-even too
    _rint = round
else:
    from numba.cuda import libdevice

    _rint = libdevice.rint  # round half to even


@cuda.jit(device=True, inline=True)
def round_to(v, prec, emin):
    """``v`` rounded to the format (precision ``prec``, smallest normal exponent ``emin``), ties
    to even: the device twin of :func:`discosim.model.selection.round_to_format` (exact: scalings by
    powers of two and an integer-valued rint)."""
    if v == 0.0:
        return v
    m, e = math.frexp(v)  # |v| = |m| 2^e, 1/2 <= |m| < 1: floor(log2|v|) = e - 1
    ex = e - 1 if e - 1 > emin else emin
    shift = int(ex + 1 - prec)
    return math.ldexp(_rint(math.ldexp(v, -shift)), shift)


@functools.lru_cache(maxsize=None)
def audit_kernel(M, K, NF, WRITE_LOGITS):
    """Compile the audit kernel for M experts, top-K, NF float formats (WRITE_LOGITS: every
    logit row to memory, for routings whose statistics the host computes)."""
    MP = M + (M % 2)
    L = min(K + 1, M)
    NEG_INF = -math.inf

    @cuda.jit(device=True, inline=True)
    def logits_of(Wr, bias, g, scale, a):
        acc = 0.0
        for j in range(a + 1):
            acc += Wr[a, j] * g[j]
        return scale * acc + bias[a]

    @cuda.jit
    def kernel(key0, key1, i0, n, Wr, bias, radius, gd, gc, gb, thr_rel, thr_abs, prec, emin,
               margin, level, maxabs, flips, logits):
        t = cuda.grid(1)
        if t >= n:
            return
        g = cuda.local.array(MP, float64)
        top = cuda.local.array(L, float64)
        idx = cuda.local.array(L, int32)
        rtop = cuda.local.array(L, float64)
        ridx = cuda.local.array(L, int32)
        s0, s1 = stream_state(key0, key1, uint64(i0 + t))
        s0, s1, ss = normals64(s0, s1, g, M)
        s0, s1, gam = gamma_mt(s0, s1, gd, gc, gb)
        scale = radius / math.sqrt(ss + 2.0 * float64(gam))
        for q in range(L):
            top[q] = NEG_INF
            idx[q] = -1
        big = 0.0
        for a in range(M):
            v = logits_of(Wr, bias, g, scale, a)
            if WRITE_LOGITS:
                logits[t, a] = v
            av = abs(v)
            big = av if av > big else big
            ia = a
            for q in range(L):  # insertion of (value, index): the lower index first on ties
                if v > top[q] or (v == top[q] and ia < idx[q]):
                    v, top[q] = top[q], v
                    ia, idx[q] = idx[q], ia
        gap = top[K - 1] - top[K] if K < M else math.inf
        margin[t] = gap
        level[t] = top[K - 1]
        maxabs[t] = big
        bits = 0
        if not WRITE_LOGITS and gap <= thr_rel * big + thr_abs:
            # within reach of the coarsest rounding: select again from the rounded logits
            for f in range(NF):
                for q in range(L):
                    rtop[q] = NEG_INF
                    ridx[q] = -1
                for a in range(M):
                    v = round_to(logits_of(Wr, bias, g, scale, a), prec[f], emin[f])
                    ia = a
                    for q in range(L):
                        # an entry pushed down keeps its place among equal values by its index
                        if v > rtop[q] or (v == rtop[q] and ia < ridx[q]):
                            v, rtop[q] = rtop[q], v
                            ia, ridx[q] = ridx[q], ia
                changed = False
                for q in range(K):
                    found = False
                    for c in range(K):
                        if ridx[c] == idx[q]:
                            found = True
                    if not found:
                        changed = True
                if changed:
                    bits |= 1 << f
        flips[t] = bits

    return kernel


def _rounding_reach(formats):
    """(relative, absolute) margin below which rounding to some format may change the selection."""
    from discosim.model.selection import FORMATS

    rel = max(2.0 ** (1 - FORMATS[f].precision) for f in formats)
    ab = max(2.0 ** (FORMATS[f].emin + 1 - FORMATS[f].precision) for f in formats)
    return 2.0 * (1 + 1e-6) * rel, 2.0 * (1 + 1e-6) * ab


def audit_chunks(Rt, bias, routing, radius, dim, distribution, eps, formats, n_samples, seed_seq,
                 devices, n_jobs=1):
    """Per-unit sufficient statistics (the dicts of ``discosim._kernels.audit.logit_stats``), unit order.

    Curved routings: the statistics of a unit's logit rows are computed on the host in slices of
    ``HOST_SLICE`` rows, each with its own stream, over ``n_jobs`` threads (the numbers do not
    depend on ``n_jobs``)."""
    from discosim._kernels.audit import chunk_stats, linear_terms, logit_stats
    from discosim._core.runtime import derive_seed
    from discosim.model.selection import FORMATS, round_to_format
    from discosim._cuda.launch import run_units
    from discosim._cuda.rng import run_key

    M = Rt.shape[0]
    k = routing.k
    linear = routing.linear
    kern = audit_kernel(M, k, len(formats), not linear)
    extra = dim - M + (2 if distribution == "ball" else 0)
    gd, gc, gb = gamma_params(0.5 * extra)
    thr_rel, thr_abs = _rounding_reach(formats)
    prec = np.array([FORMATS[f].precision for f in formats], dtype=np.int64)
    emin = np.array([FORMATS[f].emin for f in formats], dtype=np.int64)
    key0, key1 = run_key(derive_seed(seed_seq, 0))
    n_units = -(-n_samples // UNIT)
    b = np.zeros(M) if bias is None else np.asarray(bias, dtype=np.float64)

    if n_jobs != 1 and not linear:
        from discosim._core.runtime import _in_worker, _thread_pool, check_n_jobs

        # a task of the shared pool waiting on tasks of the same pool could block every worker
        n_jobs = 1 if _in_worker() else check_n_jobs(n_jobs)
    pool = _thread_pool(n_jobs) if n_jobs > 1 and not linear else None

    def _host_stats(logits, u):
        # the host's statistics dominate a curved routing's audit (DeepSeek-V3: ~1 s per 1e5
        # rows at M = 256 against ~10 ms of GPU): one thread per unit left the GPU path slower
        # than the CPU's n_jobs threads
        def one(j):
            rng = np.random.Generator(np.random.PCG64(derive_seed(seed_seq, 1, u, j)))
            return logit_stats(rng, logits[j * HOST_SLICE:(j + 1) * HOST_SLICE], routing, eps,
                               formats)

        slices = range(-(-logits.shape[0] // HOST_SLICE))
        return list(pool.map(one, slices)) if pool is not None else [one(j) for j in slices]

    def make_worker(dev):
        d_W = cuda.to_device(np.ascontiguousarray(Rt, dtype=np.float64))
        d_b = cuda.to_device(np.ascontiguousarray(b))
        d_prec, d_emin = cuda.to_device(prec), cuda.to_device(emin)
        d_logits = cuda.device_array((UNIT if not linear else 1, M), dtype=np.float64)

        def work(u):
            i0 = u * UNIT
            n = min(UNIT, n_samples - i0)
            d_m = cuda.device_array(n, dtype=np.float64)
            d_l = cuda.device_array(n, dtype=np.float64)
            d_a = cuda.device_array(n, dtype=np.float64)
            d_f = cuda.device_array(n, dtype=np.int32)
            kern[-(-n // BLOCK), BLOCK](key0, key1, i0, n, d_W, d_b, float(radius), gd, gc, gb,
                                        thr_rel, thr_abs, d_prec, d_emin, d_m, d_l, d_a, d_f,
                                        d_logits)
            if not linear:
                return _host_stats(d_logits[:n].copy_to_host(), u)
            return d_m.copy_to_host(), d_l.copy_to_host(), d_a.copy_to_host(), d_f.copy_to_host()

        return work

    out = []
    for res in run_units(n_units, devices, make_worker):
        if not linear:
            out.extend(res)
            continue
        margin, level, maxabs, bits = res
        flips = {}
        for i, fmt in enumerate(formats):
            round_to_format(np.max(maxabs, initial=0.0), fmt)  # overflow: one line, as on the CPU
            flips[fmt] = ((bits >> i) & 1 == 1, *linear_terms(margin, level, fmt))
        out.append(chunk_stats(margin, eps, flips))
    return out
