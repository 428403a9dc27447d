"""The audit's inputs, exact logits and decision margins on the GPU (THEORY §9; CPU twin:
``discosim.audit._sample_task``).

Input i of a layer draws from stream i (:mod:`.rng`): M float32 normals G and a float32
chi-square C (sphere: ``D - M`` degrees of freedom, ball: ``D + 2 - M``), the reduced point
``z = R G / sqrt(|G|^2 + C)`` and its logits ``s = R_t z + b`` -- all in float64 from those exact
float32 draws, as the precision audit needs exact logits (THEORY §9; float32 logits would carry
errors of the size of the bf16 effects being measured). A thread per input keeps the top k+1
logits by insertion and writes the margin ``g_k - g_{k+1}``, the tie level ``g_k`` and ``max|s|``.

Flips need the whole logit row, but only where the margin is within reach of the rounding: an
input whose margin is at most ``2 (1 + 1e-6) max(2^(1-p) max|s|, 2^(emin+1-p))`` for the coarsest
format asked (a superset of the rows :func:`discosim.audit._flip_indicator` rounds) hands its G and
C back; the host rebuilds its logits in float64 and runs the CPU code's own rounding and
selection on them. Routings with curved ties (DeepSeek-V3) hand back every logit row and the
host computes their statistics as on the CPU.

Numbers depend on the seed and the device type only, not on the launch shape or the device list
(units of ``UNIT`` inputs, merged in unit order).
"""

import functools
import math

import numpy as np

from ..devices import shim_numpy

shim_numpy()
from numba import cuda, float64, int32, uint64  # noqa: E402  (after the numpy shim)

from .rng import gamma_mt, gamma_params, normal_pair, stream_state  # noqa: E402

UNIT = 1 << 18
BLOCK = 128


@functools.lru_cache(maxsize=None)
def audit_kernel(M, K, WRITE_LOGITS):
    """Compile the audit kernel for M experts, top-K (WRITE_LOGITS: every logit row to memory)."""
    MP = M + (M % 2)
    L = min(K + 1, M)
    NEG_INF = -math.inf

    @cuda.jit
    def kernel(key0, key1, i0, n, Wr, bias, radius, gd, gc, gb, thr_rel, thr_abs, margin, level,
               maxabs, cand_idx, cand_G, cand_C, cand_n, logits):
        t = cuda.grid(1)
        if t >= n:
            return
        g = cuda.local.array(MP, float64)
        top = cuda.local.array(L, float64)
        s0, s1 = stream_state(key0, key1, uint64(i0 + t))
        ss = 0.0
        for j in range(0, MP, 2):
            s0, s1, n1, n2 = normal_pair(s0, s1)
            g[j] = float64(n1)
            g[j + 1] = float64(n2)
        for j in range(M):
            ss += g[j] * g[j]
        s0, s1, gam = gamma_mt(s0, s1, gd, gc, gb)
        chi = 2.0 * float64(gam)
        scale = radius / math.sqrt(ss + chi)
        for q in range(L):
            top[q] = NEG_INF
        big = 0.0
        for a in range(M):
            acc = 0.0
            for j in range(a + 1):
                acc += Wr[a, j] * g[j]
            v = scale * acc + bias[a]
            if WRITE_LOGITS:
                logits[t, a] = v
            av = abs(v)
            big = av if av > big else big
            for q in range(L):
                hi = top[q]
                top[q] = v if v > hi else hi
                v = hi if v > hi else v
        gap = top[K - 1] - top[K] if K < M else math.inf
        margin[t] = gap
        level[t] = top[K - 1]
        maxabs[t] = big
        if not WRITE_LOGITS and gap <= thr_rel * big + thr_abs:
            slot = cuda.atomic.add(cand_n, 0, 1)
            cand_idx[slot] = t
            for j in range(M):
                cand_G[slot, j] = g[j]
            cand_C[slot] = chi

    return kernel


def _hand_back_threshold(formats):
    """(relative, absolute) margin threshold covering every format's rounding reach."""
    from ..routing import FORMATS

    rel = max(2.0 ** (1 - FORMATS[f].precision) for f in formats)
    ab = max(2.0 ** (FORMATS[f].emin + 1 - FORMATS[f].precision) for f in formats)
    return 2.0 * (1 + 1e-6) * rel, 2.0 * (1 + 1e-6) * ab


def audit_chunks(Rt, bias, routing, radius, dim, distribution, eps, formats, n_samples, seed_seq,
                 devices):
    """Per-unit sufficient statistics (the dicts of ``discosim.audit._logit_stats``), unit order."""
    from ..audit import _flip_indicator, _logit_stats, _window_terms, TIE_MERGE
    from ..parallel import derive_seed
    from ..routing import round_to_format, ulp
    from .launch import run_units
    from .rng import run_key

    M = Rt.shape[0]
    k = routing.k
    linear = routing.linear
    kern = audit_kernel(M, k, not linear)
    extra = dim - M + (2 if distribution == "ball" else 0)
    gd, gc, gb = gamma_params(0.5 * extra)
    thr_rel, thr_abs = _hand_back_threshold(formats)
    key0, key1 = run_key(derive_seed(seed_seq, 0))
    n_units = -(-n_samples // UNIT)
    b = np.zeros(M) if bias is None else np.asarray(bias, dtype=np.float64)

    def make_worker(dev):
        d_W = cuda.to_device(np.ascontiguousarray(Rt, dtype=np.float64))
        d_b = cuda.to_device(np.ascontiguousarray(b))
        cap = UNIT if linear else 1
        d_idx = cuda.device_array(cap, dtype=np.int32)
        d_G = cuda.device_array((cap, M), dtype=np.float64)
        d_C = cuda.device_array(cap, dtype=np.float64)
        d_logits = cuda.device_array((UNIT if not linear else 1, M), dtype=np.float64)

        def work(u):
            i0 = u * UNIT
            n = min(UNIT, n_samples - i0)
            d_m = cuda.device_array(n, dtype=np.float64)
            d_l = cuda.device_array(n, dtype=np.float64)
            d_a = cuda.device_array(n, dtype=np.float64)
            d_n = cuda.to_device(np.zeros(1, dtype=np.int32))
            kern[-(-n // BLOCK), BLOCK](key0, key1, i0, n, d_W, d_b, float(radius), gd, gc, gb,
                                        thr_rel, thr_abs, d_m, d_l, d_a, d_idx, d_G, d_C, d_n,
                                        d_logits)
            rng = np.random.Generator(np.random.PCG64(derive_seed(seed_seq, 1, u)))
            if not linear:
                return _logit_stats(rng, d_logits[:n].copy_to_host(), routing, eps, formats)
            nc = int(d_n.copy_to_host()[0])
            idx = d_idx[:nc].copy_to_host()
            G = d_G[:nc].copy_to_host()
            C = d_C[:nc].copy_to_host()
            return idx, G, C, d_m.copy_to_host(), d_l.copy_to_host(), d_a.copy_to_host()

        return work

    out = []
    for res in run_units(n_units, devices, make_worker):
        if not linear:
            out.append(res)
            continue
        idx, G, C, margin, level, maxabs = res
        order = np.argsort(idx, kind="stable")  # slots are taken in any order: sort by input
        idx, G, C = idx[order], G[order], C[order]
        z = radius * G / np.sqrt(np.sum(G * G, axis=1) + C)[:, None]
        logits = z @ Rt.T + b
        parts = routing.parts(logits)
        stats = {"n": margin.size, "margin": margin,
                 "below": np.array([np.sum(margin <= e) for e in eps], dtype=np.int64),
                 "flip": {}}
        for fmt in formats:
            round_to_format(np.max(maxabs, initial=0.0), fmt)  # overflow: one line, as on the CPU
            f = np.zeros(margin.size, dtype=bool)
            if idx.size:
                f[idx] = _flip_indicator(routing, logits, parts, fmt)
            uu = ulp(level, fmt)
            y, plain = _window_terms(margin, TIE_MERGE * uu, uu)
            fy = np.where(f, y, 0.0)
            stats["flip"][fmt] = np.array([f.sum(), y.sum(), (y * y).sum(), fy.sum(), plain.sum(),
                                           (plain * plain).sum()])
        out.append(stats)
    return out
