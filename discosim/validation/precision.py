"""The precision-of-routing claim (THEORY §9): flip rates of top-k routing under bf16 and fp16
rounding against the leading order plus its next-order term (:mod:`discosim.theory.precision`).

Set-up: Gaussian gates (iid N(0, 1/D) entries, no bias), D = 2048, sphere inputs of radius
sqrt(D), (M, k) = (8, 2) (Mixtral), (64, 8) (OLMoE), (256, 8) (DeepSeek-V3's sizes); and a
DeepSeek-V3-style router (sigmoid scores, a selection bias, 8 groups, 4 kept) at M = 256, k = 8.

Sampling (THEORY §3, §9): a sphere point in reduced coordinates is ``z = s G`` with
``s = R / sqrt(|G|^2 + C)``, ``G ~ N(0, I_M)`` and ``C ~ chi^2_{D-M}`` independent, so the logits
are ``s l0`` with ``l0 = Rt G``. Per direction G the claim draws ``K`` independent values of C
(conditional Monte Carlo): the exact top-k set and the margin's sign pattern depend on G alone,
while the grid offset of ``s l0`` moves by several cells as s varies (s has relative spread
``1/sqrt(2 (D - M))``), so the per-direction mean flip indicator averages over the grid offset
and its variance drops. Only directions whose margin could be crossed (``g0 <= 2^(2-p) |g_k|``,
scale-free) get the inner draws: others neither flip nor contribute to any prediction term.
Outer directions are iid, so standard errors are those of per-direction means.

Rows, per (M, format): measured = the direct flip rate (changed top-k sets of logits rounded
with :func:`~discosim.model.selection.round_to_format`, counted per input); predicted = the
leading order plus the next-order term, the mean of per-input terms of
:func:`discosim.theory.precision.next_order_terms` (a formula, not the rounding the count uses).
Both are computed on the same inputs, so the rule is on their difference with its paired
standard error ``sd(f_i - y_i) / sqrt(n)`` over directions i (f_i, y_i: the direction's mean
flip indicator and prediction term). The leading order alone (THEORY §9, the audit's Richardson
window :func:`~discosim._kernels.audit.linear_terms`) is reported beside it with its own paired
z-score.
"""

import math

import numpy as np

from discosim._core.runtime import derive_seed, run_chunks
from discosim._kernels.audit import linear_terms
from discosim.model.router import Router
from discosim.model.selection import FORMATS, round_to_format, topk_mask
from discosim.theory import precision as tp
from discosim.validation.rules import ClaimOutput, Z_POWER, Z_VERDICT, claim, close_to, curve, figure, points

S9 = "§9"
DIM = 2048
SETUPS = ((8, 2), (64, 8), (256, 8))
FLIP_FORMATS = ("bf16", "fp16")
INNER = {"bf16": 32, "fp16": 128}   # radial draws C per candidate direction
CHUNK = 1 << 14
# directions per setup (full run); chosen so that every row resolves <= 3% (fp16 is the
# binding format: its flip rate is 2^3 times smaller than bf16's)
N_DIRECTIONS = {8: 4_000_000, 64: 600_000, 256: 200_000}
DRAW_BINS = 256       # histogram of the per-direction differences for the row's draw


def _window(M, k):
    """Ranks ``lo..hi-1`` (0-based) kept around the cut: k-1 and k+2 for the triple terms, two
    more on each side to detect a cluster reaching the window's edge."""
    return max(k - 4, 0), min(k + 4, M)


def _flip_chunk(rng, n, Rt, k, dim, formats, inner):
    """Per-direction sums for one chunk of ``n`` directions (see the module docstring)."""
    M = Rt.shape[0]
    out = {"n": n}
    if n == 0:
        return out
    G = rng.standard_normal((n, M))
    g2 = np.einsum("ij,ij->i", G, G)
    l0 = G @ Rt.T
    lo, hi = _window(M, k)
    part = np.partition(l0, (M - k - 1, M - k), axis=1)
    gk, gk1 = part[:, M - k], part[:, M - k - 1]
    radius = math.sqrt(dim)
    for fmt in formats:
        p = FORMATS[fmt].precision
        rows = np.nonzero(gk - gk1 <= 2.0 ** (2 - p) * np.maximum(np.abs(gk), np.abs(gk1)))[0]
        out[fmt] = _candidate_sums(rng, l0[rows], g2[rows], k, lo, hi, radius, dim, fmt, inner[fmt])
    return out


def _candidate_sums(rng, l0, g2, k, lo, hi, radius, dim, fmt, inner):
    nc, M = l0.shape
    top = np.argpartition(-l0, hi - 1, axis=1)[:, :hi] if hi < M else np.tile(np.arange(M), (nc, 1))
    vals = np.take_along_axis(l0, top, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    idx = np.take_along_axis(top, order, axis=1)[:, lo:hi]
    win = np.take_along_axis(vals, order, axis=1)[:, lo:hi]
    kl = k - lo                                  # rank k's column + 1 in the window
    s = radius / np.sqrt(g2[:, None] + rng.chisquare(dim - M, size=(nc, inner)))
    w = (s[:, :, None] * win[:, None, :]).reshape(nc * inner, hi - lo)
    iw = np.repeat(idx, inner, axis=0)
    r = round_to_format(w, fmt)
    f = tp.cluster_flip(r, iw, kl)
    # a cluster reaching the window's edge may hold experts outside it: full rounding there
    c = r[:, kl - 1]
    edge = ((lo > 0) & (r[:, 0] == c)) | ((hi < M) & (r[:, -1] == c))
    if np.any(edge):
        e = np.nonzero(edge)[0]
        full = np.repeat(l0, inner, axis=0)[e] * s.reshape(-1)[e, None]
        exact = topk_mask(full, k)
        f[e] = np.any(topk_mask(round_to_format(full, fmt), k) != exact, axis=1)
    pair, triple, binade = tp.next_order_terms(w, iw, kl, FORMATS[fmt].precision)
    lead = linear_terms(w[:, kl - 1] - w[:, kl], w[:, kl - 1], fmt)[0]
    per = {name: np.mean(a.reshape(nc, inner), axis=1)
           for name, a in (("f", f.astype(float)), ("pair", pair), ("triple", triple),
                           ("binade", binade), ("lead", lead))}
    y = per["pair"] + per["triple"] + per["binade"]
    d = per["f"] - y
    dl = per["f"] - per["lead"]
    return {"sums": np.array([per["f"].sum(), (per["f"] ** 2).sum(), y.sum(), (y * y).sum(),
                              (d * d).sum(), per["lead"].sum(), (dl * dl).sum(),
                              per["pair"].sum(), per["triple"].sum(), per["binade"].sum(),
                              (per["lead"] ** 2).sum()]),
            "d": [d[d != 0]]}


def _merge(acc, x):
    acc["n"] += x["n"]
    for f, v in x.items():
        if f != "n":
            acc[f]["sums"] = acc[f]["sums"] + v["sums"]
            acc[f]["d"].extend(v["d"])
    return acc


def measure_flips(router, n, seed_seq, formats=FLIP_FORMATS, inner=INNER, n_jobs=1, dim=DIM):
    """Flip rate, its prediction to next order and the leading order, per format.

    ``inner``: radial draws per candidate direction (an int or ``{fmt: int}``).
    Returns ``{fmt: dict}`` with ``measured`` (direct flip rate) and ``measured_se``,
    ``predicted`` (leading + next order) and ``predicted_se``, ``leading`` and ``leading_se``,
    ``diff_se`` (paired SE of measured - predicted), ``leading_diff_se``, the components
    ``pair``, ``triple``, ``binade``, ``n`` directions and ``d`` (nonzero per-direction
    differences, for the row's draw).

    Examples
    --------
    >>> r = Router.gaussian(8, 64, 2, seed=1)
    >>> out = measure_flips(r, 20_000, np.random.SeedSequence(1), formats=("bf16",), dim=64)
    >>> 0 < out["bf16"]["measured"] < 0.01
    True
    """
    Rt = np.asarray(router.reduced_weights, dtype=np.float64)
    inner = {f: int(inner[f] if isinstance(inner, dict) else inner) for f in formats}
    acc = run_chunks(_flip_chunk, (Rt, int(router.k), int(dim), tuple(formats), inner), int(n),
                     CHUNK, seed_seq, n_jobs=n_jobs, progress=False, reduce=_merge)
    res = {}
    N = acc["n"]
    for fmt in formats:
        sf, sff, sy, syy, sdd, sl, sdl, spair, stri, sbin, sll = acc[fmt]["sums"]
        m, pr, le = sf / N, sy / N, sl / N

        def se(s2, mean):
            return math.sqrt(max(s2 / N - mean * mean, 0.0) / (N - 1))

        res[fmt] = {"n": int(N), "measured": m, "measured_se": se(sff, m), "predicted": pr,
                    "predicted_se": se(syy, pr), "diff_se": se(sdd, m - pr), "leading": le,
                    "leading_se": se(sll, le), "leading_diff_se": se(sdl, m - le),
                    "pair": spair / N, "triple": stri / N, "binade": sbin / N,
                    "d": np.concatenate(acc[fmt]["d"])}
    return res
