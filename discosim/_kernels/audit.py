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

from discosim.model.selection import round_to_format, sigmoid_slope, ulp
from discosim.theory.audit import TIE_MERGE

__all__ = ["WINDOW", "OFFSET_DRAWS", "uniform_abs_mean", "window_terms", "linear_terms", "prediction_terms",
           "flip_indicator", "logit_stats", "chunk_stats"]

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
    """Sufficient statistics of one chunk of exact logits (N, M)."""
    parts = routing.parts(logits)
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
