r"""Flip rate of top-k routing under rounding to a float format: THEORY §9's leading order and its
next order in the unit roundoff (linear gates, ``b = 0`` or any bias).

Set-up and notation
-------------------
Exact logits ``l`` with a smooth joint density; sorted values ``g_1 >= ... >= g_M`` with expert
indices ``i_1, ..., i_M``; the exact top-k set ``K = {i_1..i_k}``; ``v = g_k`` the tie level and
``g = g_k - g_{k+1}`` the margin. Rounding ``rd`` to nearest on the grid of a format with p bits
(spacing ``u(v) = ulp(v) = 2^(floor(log2|v|) + 1 - p)``) is monotone, so the rounded top-k set
(ties to the lower index) differs from K exactly when the *cluster* ``B = {i : rd(l_i) = rd(g_k)}``
contains rank k+1 and the lowest indices of B are not its members of rank <= k: with B's members
split into ``in = B ∩ K`` and ``out = B \ K``, a flip is ``min idx(out) < max idx(in)``.

Write ``p(v, g)`` for the density of (tie level, margin) and ``p_F(v, g)`` for the same density
restricted to the *flip side* ``F = {i_{k+1} < i_k}``. At ``g = 0`` the density is continuous across
each facet ``{l_i = l_j}``, so ``p_F(v, 0) = p(v, 0) / 2`` exactly, for any fixed W.

The expansion
-------------
Within one binade the grid is the lattice ``u Z``, and the position of the cluster on it (its
offset mod u) has a smooth density; the average of a u-periodic function against a smooth density
equals its mean up to terms smaller than any power of u (Fourier coefficients of a smooth density
at frequencies ``2 pi m / u``). So, up to binade boundaries, rounding acts as a lattice with a
*uniform* offset ``U ~ U(0, u)``, and the flip probability is an expectation of the offset-averaged
flip probability ``phi(l) = P_U[flip]``:

1. **Two logits** (the leading order and the slope term). Ranks k and k+1 share a cell with
   probability ``(1 - g/u)_+``; on the flip side the tie-break then flips the set, so
   ``phi_2 = (1 - g/u)_+ 1_F`` (:func:`pair_merge_probability`) and

   .. math::  E[phi_2] = \int dv \left[ \frac{u(v)}{2} p_F(v, 0)
              + \frac{u(v)^2}{6} \partial_g p_F(v, 0) + O(u^3) \right]
              = \frac14 E[u\,\delta(g)] + \frac16 E[u^2 \delta_F'(g)] + O(u^3),

   the first term being THEORY §9's leading order ``(1/4) lim E[u 1{g <= eps}] / eps``
   (:data:`LEADING`, :data:`SLOPE`).
2. **Three logits** (a third logit within u of the cut, probability ``O(u)`` given a tie). Let
   ``T = (1 - (a - c)/u)_+`` be the probability that the three consecutive logits ``a > b > c`` share
   a cell. Exact case analysis over the clusters {a,b}, {b,c}, {a,b,c} (:func:`triple_terms`):

   * ranks (k-1, k, k+1): ``phi_3 - phi_2 = T 1{i_k < i_{k+1} < i_{k-1}}``;
   * ranks (k, k+1, k+2): ``phi_3 - phi_2 = T 1{i_{k+2} < i_k < i_{k+1}}``.

   Each index condition holds for one of the 6 orders, all equally likely at a triple tie
   (continuity of the density there), and ``∫∫ T dg_1 dg_2 = u^2/2``, so the term is
   ``(1/36) ∫ u(v)^2 [p_{k-1,k,k+1}(v) + p_{k,k+1,k+2}(v)] dv`` with ``p_{...}(v)`` the density of
   three logits tied at level v at those ranks (:data:`TRIPLE`). Four logits in a cell: O(u^3).
3. **Binade boundaries** (the grid is not a lattice across ``|v| = 2^e``). Below ``2^e`` the
   spacing is ``u_lo = 2^(e-p)``, above it ``2 u_lo``; the cell of ``2^e`` is
   ``[2^e - u_lo/2, 2^e + u_lo)``. Integrating the exact merge indicator over the position of the
   pair against the two-logit model, exactly (:func:`binade_defect`):

   * level above the boundary in magnitude (v > 0, where the model's ``u(v)`` is the ulp of the
     larger logit): ``D_+(g) = 0`` (g < u_lo), ``-(g - u_lo)/2`` (u_lo <= g < 1.5 u_lo),
     ``-(u_lo - g/2)`` (1.5 u_lo <= g < 2 u_lo); ``∫ D_+ = -u_lo^2/8``;
   * v < 0 (``u(v)`` is the ulp of the smaller-magnitude logit): ``D_- = D_+ + g^2/(2 u_lo)``
     (g < u_lo), ``D_+ + g (1 - g/(2 u_lo))`` (u_lo <= g < 2 u_lo); ``∫ D_- = 3 u_lo^2/8``.

   The correction is ``sum_e [-(1/16) u_lo^2 p(2^e, 0) + (3/16) u_lo^2 p(-2^e, 0)]``
   (:data:`BINADE_POSITIVE`, :data:`BINADE_NEGATIVE`; ``p_F = p/2``).

Hence, with ``eps_p = 2^-p`` the unit roundoff,

.. math:: P(flip) = \frac14 E[u \delta(g)] + \frac16 E[u^2 \delta_F'(g)]
          + \frac{1}{36} E[u^2 (\delta_{k-1,k,k+1} + \delta_{k,k+1,k+2})]
          + \sum_e (\mp) c_\pm u_e^2 p(\pm 2^e, 0) + O(u^3).

Relative to the leading order the three corrections are of size ``u / (margin scale)``:
``(2/3) u ∂_g log p_F``, ``(2/9) u λ`` (λ the density of a third logit at the tie level, ``≈ M
φ(v)`` for Gaussian logits) and ``O(2^-p)``. The slope term is negative for the top ranks of many
experts (the margin density decreases from 0), the triple term positive, so they partly cancel.

Finite-window form used by the claim: per sample,
``y = phi_2 + (triple terms) + (binade window term)`` (:func:`next_order_terms`) has expectation
``P(flip) + O(u^3)``; its difference from the leading order is the next-order term. The claim
``routing_precision`` (:mod:`discosim.validation.precision`) measures both against the direct flip
count. Measured there (Gaussian W, sphere inputs, D = 2048; ``routing_precision`` rows): the
leading order alone is within the claim's 3% resolution for fp16 at every M and for bf16 at
M = 8; for bf16 at M = 64 (k = 8) and M = 256 (k = 8) the next-order term is a few per cent of the
rate and must be included (the audit's 28-SE discrepancy at M = 256 is this term).
"""

import math

import numpy as np

from discosim._core.errors import InputError, check_int

__all__ = ["LEADING", "SLOPE", "TRIPLE", "BINADE_POSITIVE", "BINADE_NEGATIVE", "BINADE_WINDOW",
           "pair_merge_probability", "triple_terms", "binade_defect", "binade_terms",
           "next_order_terms", "cluster_flip", "offset_flip_probability"]

LEADING = 0.25        # (1/4) E[u delta(g)]: merge 1 - g/u, flip half the time
SLOPE = 1.0 / 6.0     # (1/6) E[u^2 delta_F'(g)]
TRIPLE = 1.0 / 36.0   # (1/36) E[u^2 (three-logit tie densities)]
BINADE_POSITIVE = -1.0 / 8.0   # ∫ D_+(g) dg / u_lo^2 (v > 0)
BINADE_NEGATIVE = 3.0 / 8.0    # ∫ D_-(g) dg / u_lo^2 (v < 0)
BINADE_WINDOW = 16    # width of the level window around 2^e, in units of u_lo


def pair_merge_probability(gap, u):
    """Probability ``(1 - g/u)_+`` that two logits ``g`` apart share a cell of a lattice of
    spacing ``u`` with a uniform offset.

    Examples
    --------
    >>> pair_merge_probability([0.0, 0.25, 1.0, 2.0], 1.0).tolist()
    [1.0, 0.75, 0.0, 0.0]
    """
    g = np.asarray(gap, dtype=np.float64)
    return np.maximum(1.0 - g / np.asarray(u, dtype=np.float64), 0.0)


def _sorted_window(values, k):
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2:
        raise InputError(f"sorted logits must be 2-dimensional (N, m), got shape {v.shape}")
    return v, check_int("k", k, 1, v.shape[1] - 1)


def triple_terms(sorted_values, sorted_index, k, u):
    """Three-logit terms ``phi_3 - phi_2`` of the uniform-offset model, per row.

    ``sorted_values`` (N, m): the m largest logits in decreasing order (ranks 1..m, m >= k+1);
    ``sorted_index`` the experts'; ``u`` (N,) the spacing at the tie level. Returns the sum of
    ``(1 - (g_{k-1} - g_{k+1})/u)_+ 1{i_k < i_{k+1} < i_{k-1}}`` (k >= 2) and
    ``(1 - (g_k - g_{k+2})/u)_+ 1{i_{k+2} < i_k < i_{k+1}}`` (m >= k+2).

    Examples
    --------
    >>> v = np.array([[3.0, 2.9, 2.8, 0.0]])
    >>> round(float(triple_terms(v, np.array([[2, 0, 1, 3]]), 2, np.array([1.0]))[0]), 12)
    0.8
    """
    v, k = _sorted_window(sorted_values, k)
    idx = np.asarray(sorted_index)
    u = np.asarray(u, dtype=np.float64)
    out = np.zeros(v.shape[0])
    a, b = k - 1, k  # 0-based columns of ranks k and k+1
    if k >= 2:
        cond = (idx[:, a] < idx[:, b]) & (idx[:, b] < idx[:, a - 1])
        out += pair_merge_probability(v[:, a - 1] - v[:, b], u) * cond
    if v.shape[1] >= k + 2:
        cond = (idx[:, b + 1] < idx[:, a]) & (idx[:, a] < idx[:, b])
        out += pair_merge_probability(v[:, a] - v[:, b + 1], u) * cond
    return out


def binade_defect(gap, u_lo, negative):
    """Exact merge measure minus the two-logit model's, per unit pair density, at a binade
    boundary ``2^e`` (spacing ``u_lo`` below, ``2 u_lo`` above): ``D_+`` (level v > 0) or
    ``D_-`` (v < 0) of the module docstring; zero for ``g >= 2 u_lo``.

    Examples
    --------
    >>> g = np.linspace(0, 2, 200001)
    >>> round(float(np.trapezoid(binade_defect(g, 1.0, False), g)), 6), BINADE_POSITIVE
    (-0.125, -0.125)
    >>> round(float(np.trapezoid(binade_defect(g, 1.0, True), g)), 6), BINADE_NEGATIVE
    (0.375, 0.375)
    """
    g = np.asarray(gap, dtype=np.float64)
    u = np.asarray(u_lo, dtype=np.float64)
    neg = np.asarray(negative, dtype=bool)
    t = g / u
    plus = np.where(t < 1, 0.0, np.where(t < 1.5, -(t - 1) / 2, np.where(t < 2, -(1 - t / 2), 0.0)))
    extra = np.where(t < 1, t * t / 2, np.where(t < 2, t * (1 - t / 2), 0.0))
    return u * (plus + np.where(neg, extra, 0.0))


def binade_terms(level, lower, gap, flip_side, precision):
    """Per-row window estimator of the binade correction (section 3 of the module docstring).

    ``level`` = g_k, ``lower`` = g_{k+1}, ``gap`` = g_k - g_{k+1}, ``flip_side`` = 1{i_{k+1} < i_k},
    ``precision`` = p. The pair's larger-magnitude logit ``a`` (g_k if v > 0, -g_{k+1} if v < 0)
    within ``BINADE_WINDOW u_lo / 2`` of the nearest power of two ``2^e`` contributes
    ``D(g) / (BINADE_WINDOW u_lo)``: its mean is ``∫ D p_F(±2^e, g) dg`` up to the window's
    curvature error ``O((BINADE_WINDOW u_lo)^2)`` relative.

    Examples
    --------
    >>> float(binade_terms(np.array([1.0]), np.array([1.0 - 3 * 2.0 ** -9]), np.array([3 * 2.0 ** -9]),
    ...                    np.array([True]), 8)[0])
    -0.015625
    """
    v = np.asarray(level, dtype=np.float64)
    neg = v < 0
    a = np.where(neg, -np.asarray(lower, dtype=np.float64), v)
    with np.errstate(divide="ignore"):
        e = np.round(np.log2(np.maximum(a, np.finfo(float).tiny)))
    two_e = np.ldexp(1.0, e.astype(np.int64))
    u_lo = np.ldexp(1.0, e.astype(np.int64) - int(precision))
    width = BINADE_WINDOW * u_lo
    inside = (np.abs(a - two_e) <= width / 2) & (a > 0) & np.asarray(flip_side, dtype=bool)
    return np.where(inside, binade_defect(gap, u_lo, neg) / width, 0.0)


def next_order_terms(sorted_values, sorted_index, k, precision):
    """Per-row terms of the flip probability to next order: ``(pair, triple, binade)``.

    ``pair = (1 - g/u)_+ 1_F`` (leading + slope terms), ``triple`` (:func:`triple_terms`),
    ``binade`` (:func:`binade_terms`), u = ulp(g_k) for a format with ``precision`` bits
    (normal range). Their sum has expectation ``P(flip) + O(u^3)``.

    Examples
    --------
    >>> v = np.array([[1.5, 1.5 - 2.0 ** -9, 0.2]])
    >>> [float(t[0]) for t in next_order_terms(v, np.array([[1, 0, 2]]), 1, 8)]
    [0.75, 0.0, 0.0]
    """
    v, k = _sorted_window(sorted_values, k)
    idx = np.asarray(sorted_index)
    p = check_int("precision", precision, 2)
    level, lower = v[:, k - 1], v[:, k]
    gap = level - lower
    _, ex = np.frexp(level)
    u = np.ldexp(1.0, ex.astype(np.int64) - p)
    flip_side = idx[:, k] < idx[:, k - 1]
    pair = pair_merge_probability(gap, u) * flip_side
    return pair, triple_terms(v, idx, k, u), binade_terms(level, lower, gap, flip_side, p)


def cluster_flip(rounded_sorted, sorted_index, k):
    """1 where top-k of the rounded logits (ties to the lower index) differs from ranks 1..k.

    ``rounded_sorted`` (..., m): rounded values of the m largest exact logits in exact order (m >=
    k+1; exact when the cluster of rank k does not reach column m-1, or m = M).

    Examples
    --------
    >>> cluster_flip(np.array([[2.0, 1.0, 1.0, 0.0]]), np.array([[0, 3, 1, 2]]), 2).tolist()
    [True]
    """
    r = np.asarray(rounded_sorted, dtype=np.float64)
    idx = np.asarray(sorted_index)
    c = r[..., k - 1:k]
    inB = r == c
    rank_in = np.arange(r.shape[-1]) < k
    big = np.iinfo(np.int64).max
    min_out = np.min(np.where(inB & ~rank_in, idx, big), axis=-1)
    max_in = np.max(np.where(inB & rank_in, idx, -1), axis=-1)
    return min_out < max_in


def offset_flip_probability(values, index, k, u):
    """Exact uniform-offset flip probability ``phi(l) = P_U[flip]`` for one configuration.

    ``values`` (m,) logits in decreasing order with expert ``index``; the lattice ``u Z`` is
    shifted by ``U ~ U(0, u)``. Piecewise constant in U between the points where a logit
    crosses a cell boundary: evaluated exactly on each piece. The brute-force twin of
    :func:`next_order_terms` in the tests.

    Examples
    --------
    >>> round(offset_flip_probability(np.array([1.0, 0.75, 0.0]), np.array([1, 0, 2]), 1, 1.0), 12)
    0.75
    """
    x = np.asarray(values, dtype=np.float64)
    idx = np.asarray(index)
    # cell boundaries of x + U sit at (m + 1/2) u: x + U crosses one at U = u frac(1/2 - x/u)
    cuts = np.sort(np.concatenate([[0.0, u], u * np.mod(0.5 - x / u, 1.0)]))
    mids = (cuts[:-1] + cuts[1:]) / 2
    widths = np.diff(cuts)
    keep = widths > 0
    if not np.any(keep):
        return 0.0
    rounded = np.round((x[None, :] + mids[keep, None]) / u)
    flips = cluster_flip(rounded, np.broadcast_to(idx, rounded.shape), k)
    return float(np.sum(widths[keep] * flips) / u)
