"""Per-chunk statistics of the precision audit (THEORY §9), in NumPy: the exact routing of a chunk
of logits, its margins, the flip indicator under rounding and the per-sample terms of the flip
prediction. Shared by the CPU path (:mod:`discosim.audit.estimators`) and the GPU path
(:mod:`discosim._cuda.audit`), so neither imports the other.

Flip prediction terms: the limit ``lim_{eps->0} E[phi 1{g <= eps}] / eps`` is estimated from the
same samples with a window proportional to each sample's own scale ``s`` (``s = ulp(v)`` for
linear gates): ``F(h) = mean(phi 1{g <= h s} / (h s))`` and its Richardson combination
``2 F(h) - F(2h)``.
"""

import math

import numpy as np
from numba import njit

from discosim.model.selection import round_to_format, sigmoid, sigmoid_slope, ulp
from discosim.theory.audit import TIE_MERGE

__all__ = ["WINDOW", "OFFSET_DRAWS", "uniform_abs_mean", "window_terms", "linear_terms", "prediction_terms",
           "flip_indicator", "logit_stats", "logit_stats_numpy", "chunk_stats", "deepseek_rows",
           "deepseek_widest", "deepseek_flips"]

WINDOW = 0.5          # h of the Richardson pair of windows h s and 2 h s
OFFSET_DRAWS = 64     # Monte Carlo rounding offsets per group-tie sample (DeepSeek-V3)


def uniform_abs_mean(widths, rng):
    """E|sum_m widths_m U_m| for U_m iid uniform(-1/2, 1/2): rows of ``widths`` (n, q).

    Two terms in closed form (half-widths a >= b: ``a/2 + b^2/(6a)``), more by Monte Carlo over
    ``OFFSET_DRAWS`` offsets drawn from ``rng``.
    """
    if widths.shape[1] == 2:
        a = np.max(widths, axis=1) / 2
        b = np.min(widths, axis=1) / 2
        return a / 2 + b * b / (6 * a)
    u = rng.random((widths.shape[0], OFFSET_DRAWS, widths.shape[1])) - 0.5
    return np.mean(np.abs(np.einsum("ndq,nq->nd", u, widths)), axis=1)


def window_terms(g, phi, scale):
    """Per-sample Richardson and plain window terms of lim E[phi 1{g <= eps}] / eps."""
    h = WINDOW
    w1 = (g <= h * scale) * (phi / (h * scale))
    w2 = (g <= 2 * h * scale) * (phi / (2 * h * scale))
    return 2 * w1 - w2, w1


def linear_terms(margin, level, fmt):
    """Per-sample terms of the linear-gate flip prediction: window ``s = ulp(level)``, weight
    ``TIE_MERGE s`` (THEORY §9)."""
    u = ulp(level, fmt)
    return window_terms(margin, TIE_MERGE * u, u)


def prediction_terms(routing, logits, parts, fmt, rng, widths_all):
    """Per-sample terms (richardson, plain) of the flip prediction for one format.

    ``widths_all`` (DeepSeek-V3): ``sigma'(l) ulp(l)`` per logit, the width of the uniform change
    of each selection score.
    """
    N = logits.shape[0]
    y = np.zeros(N)
    plain = np.zeros(N)
    if routing.linear:
        return linear_terms(parts["margin"], parts["level"], fmt)
    widest = np.max(widths_all, axis=1)
    # expert ties within the kept groups: the k-th and (k+1)-th kept selection scores; the window
    # 2 h s with s = a_i + a_j <= 2 widest
    rows = np.nonzero(parts["expert_margin"] <= 4 * WINDOW * widest)[0]
    if rows.size:
        masked = np.where(parts["kept"][rows], parts["scores"][rows], -np.inf)
        k = routing.k
        # exact ties between float64 selection scores do not occur, so argpartition's order is safe
        ij = np.argpartition(-masked, (k - 1, k), axis=1)[:, k - 1:k + 1]
        widths = np.take_along_axis(widths_all[rows], ij, axis=1)
        phi = uniform_abs_mean(widths, rng) / 2
        a, b = window_terms(parts["expert_margin"][rows], phi, np.sum(widths, axis=1))
        y[rows] += a
        plain[rows] += b
    # group ties (counted where the swap changes the selected set); s = four widths <= 4 widest
    rows = np.nonzero(parts["group_changes"] & (parts["group_gap"] <= 8 * WINDOW * widest))[0]
    if rows.size:
        M = logits.shape[1]
        G = int(routing.n_group)
        size = M // G
        widths = np.empty((rows.size, 4))
        sub_s = parts["scores"][rows].reshape(rows.size, G, size)
        sub_w = widths_all[rows].reshape(rows.size, G, size)
        for c, groups in enumerate((parts["last_kept"][rows], parts["first_dropped"][rows])):
            s_g = sub_s[np.arange(rows.size), groups]
            w_g = sub_w[np.arange(rows.size), groups]
            top2 = np.argsort(-s_g, axis=1, kind="stable")[:, :2]
            widths[:, 2 * c:2 * c + 2] = np.take_along_axis(w_g, top2, axis=1)
        phi = uniform_abs_mean(widths, rng) / 2
        a, b = window_terms(parts["group_gap"][rows], phi, np.sum(widths, axis=1))
        y[rows] += a
        plain[rows] += b
    return y, plain


def flip_indicator(routing, logits, parts, fmt, widths_all=None):
    """1 where the selected set of the rounded logits differs from the exact one.

    Only rows whose margin could be crossed are rounded. RNE moves a logit by at most
    ``u/2 = ulp(l)/2``; a logit's selection score then moves by at most ``e = u/2`` (linear) or
    ``e = sigma'(l) exp(u/2) u/2`` (sigmoid: ``|d log sigma'/dl| <= 1``). An expert gap moves by
    at most twice the row's largest e, a group gap by four times: rows whose margin (for grouped
    routing: expert margin and group gap) exceeds ``4 max e`` keep their selection exactly.
    """
    N = logits.shape[0]
    maxabs = np.max(np.abs(logits), axis=1)
    round_to_format(maxabs, fmt)  # raises before any work if the format would overflow
    if _softmax_curved(routing):
        # a softmax score moves with every logit of the row: the sigmoid widths bound nothing,
        # so every row is rounded and selected again
        rounded = routing.select(round_to_format(logits, fmt))
        return np.any(rounded != parts["mask"], axis=1)
    if routing.linear:
        raw = parts["margin"]
        e_row = ulp(maxabs, fmt) / 2
    else:
        raw = np.minimum(parts["expert_margin"], parts["group_gap"])
        e_row = np.max(widths_all, axis=1) * math.exp(float(np.max(ulp(maxabs, fmt))) / 2) / 2
    rows = np.nonzero(raw <= 4 * e_row * (1 + 1e-6))[0]
    flips = np.zeros(N, dtype=bool)
    if rows.size:
        rounded = routing.select(round_to_format(logits[rows], fmt))
        flips[rows] = np.any(rounded != parts["mask"][rows], axis=1)
    return flips


def logit_stats(rng, logits, routing, eps, formats):
    """Sufficient statistics of one chunk of exact logits (N, M).

    DeepSeek-V3 routing takes the numba path (:func:`_deepseek_stats`), everything else the
    NumPy path :func:`logit_stats_numpy`, its slow twin: the same numbers bit for bit.
    """
    if routing.kind == "deepseek_v3" and not _softmax_curved(routing) and logits.shape[0]:
        return _deepseek_stats(rng, np.ascontiguousarray(logits, dtype=np.float64), routing, eps,
                               formats)
    return logit_stats_numpy(rng, logits, routing, eps, formats)


def _softmax_curved(routing):
    """Curved routing on softmax scores (ERNIE-4.5, DeepSeek-V2, DeepSeek-V3 configured with
    ``scoring_func: softmax``): the numba path and the sigmoid-width prediction assume sigmoid
    scores."""
    return routing.scores == "softmax"


def logit_stats_numpy(rng, logits, routing, eps, formats):
    """:func:`logit_stats` in NumPy for every routing (the slow twin of the numba path)."""
    parts = routing.parts(logits)
    if _softmax_curved(routing):
        # no prediction: the independent-rounding model through the sigmoid is off by about 2x
        # for softmax scores, whose rounding errors are correlated through the normaliser
        nan = np.full(logits.shape[0], np.nan)
        flips = {fmt: (flip_indicator(routing, logits, parts, fmt), nan, nan) for fmt in formats}
        return chunk_stats(parts["margin"], eps, flips)
    slope = None if routing.linear else sigmoid_slope(logits)
    flips = {}
    for fmt in formats:
        widths = None if routing.linear else slope * ulp(logits, fmt)
        flips[fmt] = (flip_indicator(routing, logits, parts, fmt, widths),
                      *prediction_terms(routing, logits, parts, fmt, rng, widths))
    return chunk_stats(parts["margin"], eps, flips)


def chunk_stats(margin, eps, flips):
    """Sufficient statistics of one chunk from its margins and, per format, the per-sample flip
    indicator f and prediction terms (y, plain): what :func:`_audit_layer` merges."""
    out = {"n": margin.shape[0], "margin": margin,
           "below": np.array([np.sum(margin <= e) for e in eps], dtype=np.int64), "flip": {}}
    for fmt, (f, y, plain) in flips.items():
        fy = np.where(f, y, 0.0)
        out["flip"][fmt] = np.array([f.sum(), y.sum(), (y * y).sum(), fy.sum(), plain.sum(),
                                     (plain * plain).sum()])
    return out


# --------------------------------------------------------------------------- DeepSeek-V3, numba
# The fast path of :func:`logit_stats` for DeepSeek-V3 routing; twins: deepseek_v3_parts and
# logit_stats_numpy. Same numbers bit for bit: the sigmoid is 1 / (1 + exp(-l)) with the C
# library's exp, which is what scipy.special.expit computes (tests/unit/test_audit_kernels.py
# checks the two agree on the platform the tests run on); group scores, gaps and margins are the
# same IEEE operations on the same operands. The per-logit widths sigma'(l) ulp(l) are computed
# exactly only on rows whose margin a cheap upper bound cannot rule out, and every statistic
# with a weight is then computed by the NumPy code of the slow path on the rows that need it.
# Bounds of the computed sigma(-l) from the computed sigma(l): each is within ~3 ulp of its true
# value (glibc's exp within 1 ulp, then one addition and one division), so they differ from
# 1 - sigma(l) by less than 8e-16 < 2^-50 in absolute terms; the slopes' bounds then take a
# relative slack of 2^-40 for the roundings of the products.
_ABS_SLACK = 2.0 ** -49
_REL_SLACK = 2.0 ** -40
_TWO52 = 2.0 ** 52


@njit(cache=True, nogil=True, inline="always")
def _expit(x):
    return 1.0 / (1.0 + math.exp(-x))


_POW2_OFFSET = 1023
_POW2 = np.ldexp(1.0, np.arange(-_POW2_OFFSET, _POW2_OFFSET))  # 2^e, |e| < 1024, by lookup
_ABS = np.int64(0x7FFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _exponent_bits(b, emin):
    """``floor(log2|v|)`` clamped below at ``emin`` from the bits of v (0 and float64
    subnormals read -1023: clamped), as ``selection._exponent``."""
    e = ((b >> 52) & 0x7FF) - 1023
    return e if e > emin else emin


@njit(cache=True, nogil=True, inline="always")
def _ulp_bits(b, prec, emin, pow2):
    """``ulp(v)`` of a format from the bits of v: ``2^(max(floor(log2|v|), emin) + 1 - prec)``."""
    return pow2[_exponent_bits(b, emin) + 1 - prec + _POW2_OFFSET]


@njit(cache=True, nogil=True, inline="always")
def _round_bits(v, b, prec, emin):
    """Bits of ``v`` (bits ``b``) rounded to the format, ties to even (twin of
    ``round_to_format``). Normal in the format: round the float64 significand to ``prec`` bits on
    the bits (a carry into the exponent is the correct result). Below the format's smallest
    normal: the scaled value ``v 2^-shift`` has at most ``prec`` integer bits, so adding and
    removing 2^52 rounds it to an integer half to even, as ``np.round``."""
    a = b & _ABS
    e = ((a >> 52) & 0x7FF) - 1023
    if e >= emin:
        drop = 53 - prec
        lsb = (a >> drop) & 1
        a = (a + ((np.int64(1) << (drop - 1)) - 1) + lsb) & ~((np.int64(1) << drop) - 1)
        return a if b >= 0 else a | ~_ABS
    if v == 0.0:
        return b
    shift = emin + 1 - prec
    y = math.ldexp(v, -shift)
    if y < 0:
        r = -((-y + _TWO52) - _TWO52)
    else:
        r = (y + _TWO52) - _TWO52
    return _float_bits(math.ldexp(r, shift))


@njit(cache=True, nogil=True, inline="always")
def _float_bits(x):
    return np.array([x]).view(np.int64)[0]


@njit(cache=True, nogil=True, inline="always")
def _push_group(s, lo, hi, topv, topi):
    """Insert experts ``lo..hi-1`` (scores ``s``) into the descending buffers ``topv``/``topi``,
    which keep the ``topv.size`` largest seen so far, the lower index first among equal values.

    The entry test ``v > topv[-1]`` keeps that order only if the caller visits experts in
    increasing index order (an equal value arriving later has the higher index): both callers
    in :func:`_ds_select` do.
    """
    L = topv.size
    for j in range(lo, hi):
        v = s[j]
        ia = j
        if v > topv[L - 1]:
            for q in range(L):
                # a pushed-down entry keeps its place among equal values by its index
                if v > topv[q] or (v == topv[q] and ia < topi[q]):
                    v, topv[q] = topv[q], v
                    ia, topi[q] = topi[q], ia


@njit(cache=True, nogil=True, inline="always")
def _set_changed(now, before, k):
    """Whether some expert of ``before[:k]`` is missing from ``now[:k]``: the selected set
    changed (both hold k distinct experts, so the sets are equal otherwise)."""
    for q in range(k):
        found = False
        for c in range(k):
            if now[c] == before[q]:
                found = True
        if not found:
            return True
    return False


@njit(cache=True, nogil=True)
def _ds_select(s, k, G, T, gs, order, kept, topv, topi, alti):
    """Selection of one row of DeepSeek-V3 selection scores ``s`` (see deepseek_v3_parts).

    Writes the top k+1 kept experts (value, index; lower index first among equal values) to
    ``topv``/``topi``, the group scores to ``gs`` and their stable descending order to ``order``.
    Returns (expert_margin, group_gap, changes, last_kept, first_dropped).
    """
    M = s.size
    size = M // G
    ninf = -math.inf
    for g in range(G):
        if size == 1:
            gs[g] = s[g]
        else:
            a = ninf  # largest
            b = ninf  # second largest (a duplicate of the largest counts)
            for j in range(g * size, (g + 1) * size):
                v = s[j]
                if v > a:
                    b = a
                    a = v
                elif v > b:
                    b = v
            gs[g] = b + a
        order[g] = g
    for i in range(1, G):  # stable insertion sort, descending
        x = order[i]
        j = i - 1
        while j >= 0 and gs[order[j]] < gs[x]:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = x
    for g in range(G):
        kept[g] = False
    for q in range(T):
        kept[order[q]] = True
    L = topv.size
    for q in range(L):
        topv[q] = ninf
        topi[q] = -1
    for g in range(G):  # kept experts in increasing index order
        if kept[g]:
            _push_group(s, g * size, (g + 1) * size, topv, topi)
    expert_margin = topv[k - 1] - topv[k]
    group_gap = math.inf
    changes = False
    last_kept = 0
    first_dropped = 0
    if T < G:
        last_kept = order[T - 1]
        first_dropped = order[T]
        group_gap = gs[last_kept] - gs[first_dropped]
        if group_gap < expert_margin:
            # swap the two groups and select again: does the selected set change?
            altv0 = np.full(k, ninf)
            for q in range(k):
                alti[q] = -1
            for g in range(G):
                if g == last_kept or (g != first_dropped and not kept[g]):
                    continue
                _push_group(s, g * size, (g + 1) * size, altv0, alti)
            changes = _set_changed(alti, topi, k)
    return expert_margin, group_gap, changes, last_kept, first_dropped


@njit(cache=True, nogil=True)
def deepseek_rows(logits, bits, cbias, k, G, T, precs, emins, pow2, margin, expert_margin,
                  group_gap, changes, last_kept, first_dropped, top, maxabs, bound, lower):
    """Pass 1 over every row: selection, margins, ``max|l|`` and, per format f, bounds
    ``lower[i, f] <= max_j sigma(l_j) sigma(-l_j) ulp_f(l_j) <= bound[i, f]`` (the NumPy
    twin's widest width, as floats) from ``sigma(l)`` alone."""
    N, M = logits.shape
    F = precs.size
    s = np.empty(M)
    gs = np.empty(G)
    order = np.empty(G, dtype=np.int64)
    kept = np.empty(G, dtype=np.bool_)
    topv = np.empty(k + 1)
    topi = np.empty(k + 1, dtype=np.int64)
    alti = np.empty(k, dtype=np.int64)
    bl = np.empty(F)
    ll = np.empty(F)
    for i in range(N):
        big = 0.0
        for f in range(F):
            bl[f] = 0.0
            ll[f] = 0.0
        for j in range(M):
            v = logits[i, j]
            sg = _expit(v)
            s[j] = sg + cbias[j]
            av = abs(v)
            if av > big:
                big = av
            rest = 1.0 - sg
            ub = sg * (rest + _ABS_SLACK) * (1.0 + _REL_SLACK)
            lb = sg * max(rest - _ABS_SLACK, 0.0) * (1.0 - _REL_SLACK)
            b = bits[i, j]
            for f in range(F):
                u = _ulp_bits(b, precs[f], emins[f], pow2)
                w = ub * u
                if w > bl[f]:
                    bl[f] = w
                w = lb * u
                if w > ll[f]:
                    ll[f] = w
        for f in range(F):
            bound[i, f] = bl[f]
            lower[i, f] = ll[f]
        maxabs[i] = big
        em, gg, ch, lk, fd = _ds_select(s, k, G, T, gs, order, kept, topv, topi, alti)
        expert_margin[i] = em
        group_gap[i] = gg
        changes[i] = ch
        last_kept[i] = lk
        first_dropped[i] = fd
        for q in range(k + 1):
            top[i, q] = topi[q]
        margin[i] = min(em, gg if ch else math.inf)


@njit(cache=True, nogil=True)
def deepseek_widest(logits, bits, rows, precs, emins, pow2, widest):
    """Pass 2 on ``rows``: ``widest[r, f] = max_j sigma(l_j) sigma(-l_j) ulp_f(l_j)`` exactly as
    NumPy's ``sigmoid_slope(l) * ulp(l, fmt)``."""
    M = logits.shape[1]
    for r in range(rows.size):
        i = rows[r]
        for f in range(precs.size):
            widest[r, f] = -math.inf
        for j in range(M):
            v = logits[i, j]
            sl = _expit(v) * _expit(-v)
            b = bits[i, j]
            for f in range(precs.size):
                w = sl * _ulp_bits(b, precs[f], emins[f], pow2)
                if w > widest[r, f]:
                    widest[r, f] = w


@njit(cache=True, nogil=True)
def deepseek_flips(logits, bits, rows, cbias, k, G, T, prec, emin, top, out):
    """``out[r]``: whether row ``rows[r]``'s selected set changes when its logits are rounded to
    the format (twin: :func:`flip_indicator`)."""
    M = logits.shape[1]
    s = np.empty(M)
    gs = np.empty(G)
    order = np.empty(G, dtype=np.int64)
    kept = np.empty(G, dtype=np.bool_)
    topv = np.empty(k + 1)
    topi = np.empty(k + 1, dtype=np.int64)
    alti = np.empty(k, dtype=np.int64)
    rb = np.empty(M, dtype=np.int64)
    rv = rb.view(np.float64)
    for r in range(rows.size):
        i = rows[r]
        for j in range(M):
            rb[j] = _round_bits(logits[i, j], bits[i, j], prec, emin)
        for j in range(M):
            s[j] = _expit(rv[j]) + cbias[j]
        _ds_select(s, k, G, T, gs, order, kept, topv, topi, alti)
        out[r] = _set_changed(topi, top[i], k)


def _deepseek_stats(rng, logits, routing, eps, formats):
    """:func:`logit_stats` for DeepSeek-V3 routing (see the comment above ``_SLACK``)."""
    from discosim.model.selection import FORMATS, _check_groups

    N, M = logits.shape
    k = routing.k
    G, T = _check_groups(M, k, routing.n_group, routing.topk_group)
    c = routing.selection_bias
    cb = np.zeros(M) if c is None else np.ascontiguousarray(c, dtype=np.float64)
    precs = np.array([FORMATS[f].precision for f in formats], dtype=np.int64)
    emins = np.array([FORMATS[f].emin for f in formats], dtype=np.int64)
    F = len(formats)
    margin, em, gg, maxabs = (np.empty(N) for _ in range(4))
    changes = np.empty(N, dtype=bool)
    lk, fd = np.empty(N, dtype=np.int64), np.empty(N, dtype=np.int64)
    top = np.empty((N, k + 1), dtype=np.int64)
    bound, lower = np.empty((N, F)), np.empty((N, F))
    bits = logits.view(np.int64)
    deepseek_rows(logits, bits, cb, k, G, T, precs, emins, _POW2, margin, em, gg, changes, lk,
                  fd, top, maxabs, bound, lower)
    raw = np.minimum(em, gg)
    facs = []
    for fmt in formats:
        round_to_format(maxabs, fmt)  # raises before any work if the format would overflow
        facs.append(math.exp(float(np.max(ulp(maxabs, fmt))) / 2))

    def decide(w, fac):
        # the slow path's three row sets, as functions of the widest width w (monotone in w)
        return (raw <= 4 * (w * fac / 2) * (1 + 1e-6), em <= 4 * WINDOW * w,
                changes & (gg <= 8 * WINDOW * w))

    # rows where the bounds of the widest width leave a decision open get it exactly
    open_ = np.zeros(N, dtype=bool)
    for f in range(F):
        for lo, hi in zip(decide(lower[:, f], facs[f]), decide(bound[:, f], facs[f])):
            open_ |= lo != hi
    rows = np.nonzero(open_)[0]
    widest = np.empty((rows.size, F))
    deepseek_widest(logits, bits, rows, precs, emins, _POW2, widest)
    flips = {}
    for f, fmt in enumerate(formats):
        w = lower[:, f].copy()
        w[rows] = widest[:, f]
        in_flip, in_expert, in_group = decide(w, facs[f])
        # flip_indicator's rows
        frows = np.nonzero(in_flip)[0]
        flip = np.zeros(N, dtype=bool)
        if frows.size:
            out = np.empty(frows.size, dtype=bool)
            deepseek_flips(logits, bits, frows, cb, k, G, T, int(precs[f]), int(emins[f]), top,
                           out)
            flip[frows] = out
        # prediction_terms' rows, among the candidates, with its NumPy code
        y = np.zeros(N)
        plain = np.zeros(N)
        r1 = np.nonzero(in_expert)[0]
        if r1.size:
            ij = top[r1][:, k - 1:k + 1]
            lij = logits[r1[:, None], ij]
            widths = sigmoid_slope(lij) * ulp(lij, fmt)
            phi = uniform_abs_mean(widths, rng) / 2
            a, b = window_terms(em[r1], phi, np.sum(widths, axis=1))
            y[r1] += a
            plain[r1] += b
        r2 = np.nonzero(in_group)[0]
        if r2.size:
            lg = logits[r2]
            sub = sigmoid(lg)
            if c is not None:
                sub = sub + np.asarray(c, dtype=np.float64)[None, :]
            size = M // G
            wa = sigmoid_slope(lg) * ulp(lg, fmt)
            widths = np.empty((r2.size, 4))
            sub_s = sub.reshape(r2.size, G, size)
            sub_w = wa.reshape(r2.size, G, size)
            for q, groups in enumerate((lk[r2], fd[r2])):
                s_g = sub_s[np.arange(r2.size), groups]
                w_g = sub_w[np.arange(r2.size), groups]
                top2 = np.argsort(-s_g, axis=1, kind="stable")[:, :2]
                widths[:, 2 * q:2 * q + 2] = np.take_along_axis(w_g, top2, axis=1)
            phi = uniform_abs_mean(widths, rng) / 2
            a, b = window_terms(gg[r2], phi, np.sum(widths, axis=1))
            y[r2] += a
            plain[r2] += b
        flips[fmt] = (flip, y, plain)
    return chunk_stats(margin, eps, flips)


# --------------------------------------------------------------------------- whole-router mode
@njit(cache=True, nogil=True)
def round_inputs(pre, prec, emin, y):
    """``y = round_to_format(pre, fmt)`` as float32 (exact: the format fits fp32); returns the
    largest ``|y|`` so the caller can check the format's range. Twin: ``round_to_format``."""
    N, D = pre.shape
    bits = pre.view(np.int64)
    out = np.empty(1, dtype=np.int64)
    fv = out.view(np.float64)
    big = 0.0
    for i in range(N):
        for j in range(D):
            out[0] = _round_bits(pre[i, j], bits[i, j], prec, emin)
            v = fv[0]
            y[i, j] = v
            if abs(v) > big:
                big = abs(v)
    return big


@njit(cache=True, nogil=True)
def gap_rounding_sd(pre, Wq, a, b, prec, emin, pow2, sigma):
    """``sigma[i] = sqrt(sum_j ((Wq[a_i, j] - Wq[b_i, j]) ulp(pre[i, j]))^2 / 12)``: the standard
    deviation of the gap's input-rounding error (:mod:`discosim.audit.whole_router`)."""
    N, D = pre.shape
    bits = pre.view(np.int64)
    for i in range(N):
        acc = 0.0
        for j in range(D):
            d = (Wq[a[i], j] - Wq[b[i], j]) * _ulp_bits(bits[i, j], prec, emin, pow2)
            acc += d * d
        sigma[i] = math.sqrt(acc / 12)
