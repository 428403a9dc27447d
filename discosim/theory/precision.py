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
   ``[2^e - u_lo/2, 2^e + u_lo)``. Shift a configuration of fixed shape by t through the boundary:
   ``h(t) = flip_exact(l + t) - phi(l; u(v + t))`` is periodic with zero mean (period u_lo,
   resp. 2 u_lo) once every logit of the cluster is below, resp. above, the irregular cell. For a
   slowly varying density w of the shift, ``∫ h w = w(2^e) Delta + O(u^3)`` with (integrating the
   periodic tails by parts: their first moments enter, not just their means)
   ``Delta = ∫ tau(t) h(t) dt``, tau the trapezoid equal to 1 while some logit is in the
   irregular cell and ramping linearly to 0 over one period on either side
   (:func:`binade_shift_terms`, exact: h is piecewise constant). For two logits this integrates
   over g to ``∫ Delta dg = -3/8 u_lo^2`` at ``+2^e`` (model ulp = that of the larger logit) and
   ``+1/8 u_lo^2`` at ``-2^e`` (model ulp = that of the smaller-magnitude logit), so the term is
   ``sum_e [-(3/16) u_lo^2 p(2^e, 0) + (1/16) u_lo^2 p(-2^e, 0)]`` (:data:`BINADE_POSITIVE`,
   :data:`BINADE_NEGATIVE`; ``p_F = p/2``). (Integrating h over whole cells of the upper logit
   instead, i.e. ignoring the tails' first moments, gives -1/8 and +3/8: wrong for a smooth
   density, as a brute-force Monte Carlo of rounding shows; ``tests/unit/test_theory_precision.py``.)

Hence, with ``eps_p = 2^-p`` the unit roundoff,

.. math:: P(flip) = \frac14 E[u \delta(g)] + \frac16 E[u^2 \delta_F'(g)]
          + \frac{1}{36} E[u^2 (\delta_{k-1,k,k+1} + \delta_{k,k+1,k+2})]
          + \sum_e \left[-\frac{3}{16} u_e^2 p(2^e, 0) + \frac{1}{16} u_e^2 p(-2^e, 0)\right]
          + O(u^3).

Relative to the leading order the three corrections are of size ``u / (margin scale)``:
``(2/3) u ∂_g log p_F``, ``(2/9) u λ`` (λ the density of a third logit at the tie level, ``≈ M
φ(v)`` for Gaussian logits) and ``O(2^-p)``. The slope term is negative for the top ranks of many
experts (the margin density decreases from 0), the triple term positive, so they partly cancel.

Finite-window form used by the claim: per sample,
``y_2 = phi_2 + (triple terms) + (pair binade term)`` (:func:`next_order_terms`) has expectation
``P(flip) + O(u^3)``; its difference from the leading order is the next-order term. The O(u^3)
remainder (four-logit cells, three-logit cells across a binade) is computed too
(:func:`all_order_terms`: the uniform-offset flip probability of every cluster plus the binade
shift integral of every cluster).

Where the leading order holds (``routing_precision``, Gaussian W, sphere inputs, D = 2048, seed
20260623, full run). Next-order term relative to the rate (its SE from the leading order's window
estimate): bf16 -1.2% (1.9%) at M=8 k=2, -1.7% (2.0%) at M=64 k=8, -1.5% (2.1%) at M=256 k=8;
fp16 -1.0% (5%), +0.2% (6%), -3.3% (6%). Of it, the three-logit term is +0.2%, +1.8%, +3.4%
(bf16) and the binade term -0.3%, -0.3%, -0.7% (bf16; M = 256 with k = 8 puts the tie levels
on the binade boundary at 2), both computed with small errors; the slope term is the rest. So
the leading order alone is within a 3% resolution only marginally for bf16 at M >= 64 (the three
logit term grows like ``u λ``, λ ≈ M φ(v)), and the 28-SE discrepancy of the GPU audit at
M = 256 (bf16) is this next-order term at a far larger sample. The O(u^3) remainder
(:func:`all_order_terms` minus the next order) is below 0.1% of the rate at every row.
"""

import math

import numpy as np

from discosim._core.errors import InputError, check_int

__all__ = ["LEADING", "SLOPE", "TRIPLE", "BINADE_POSITIVE", "BINADE_NEGATIVE", "BINADE_WINDOW",
           "pair_merge_probability", "triple_terms", "level_spacing", "next_order_terms",
           "all_order_terms", "cluster_flip", "offset_flip_probability", "offset_flip_terms",
           "binade_shift_terms"]

LEADING = 0.25        # (1/4) E[u delta(g)]: merge 1 - g/u, flip half the time
SLOPE = 1.0 / 6.0     # (1/6) E[u^2 delta_F'(g)]
TRIPLE = 1.0 / 36.0   # (1/36) E[u^2 (three-logit tie densities)]
BINADE_POSITIVE = -3.0 / 8.0   # ∫ Delta_pair(g) dg / u_lo^2 at +2^e (v > 0)
BINADE_NEGATIVE = 1.0 / 8.0    # the same at -2^e (v < 0)
BINADE_WINDOW = 16    # width of the level window around 2^e, in units of u_lo


def pair_merge_probability(gap, u):
    """Probability ``(1 - g/u)_+`` that two logits ``g`` apart share a cell of a lattice of
    spacing ``u`` with a uniform offset.

    Parameters
    ----------
    gap : array_like of float
        Distances ``g >= 0`` between the two logits.
    u : float or array_like of float
        Lattice spacing(s), positive, broadcast against ``gap``.

    Returns
    -------
    ndarray of float64
        ``max(1 - gap / u, 0)``, of the broadcast shape.

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

    Parameters
    ----------
    sorted_values : array_like of float, shape (N, m)
        The m largest logits of each row in decreasing order (ranks 1..m, m >= k+1).
    sorted_index : array_like of int, shape (N, m)
        Their experts.
    k : int
        Number of selected experts, ``1 <= k <= m - 1``.
    u : array_like of float, shape (N,)
        Lattice spacing at each row's tie level (:func:`level_spacing`).

    Returns
    -------
    ndarray of float64, shape (N,)
        The sum of ``(1 - (g_{k-1} - g_{k+1})/u)_+ 1{i_k < i_{k+1} < i_{k-1}}`` (k >= 2) and
        ``(1 - (g_k - g_{k+2})/u)_+ 1{i_{k+2} < i_k < i_{k+1}}`` (m >= k+2); a term whose ranks
        are outside the window is 0.

    Raises
    ------
    InputError
        ``sorted_values`` is not 2-dimensional, or ``k`` is not an integer in [1, m - 1].

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


def level_spacing(level, fmt):
    """``u = ulp(g_k)`` of format ``fmt`` (normal range), the lattice of the uniform-offset model.

    Parameters
    ----------
    level : array_like of float
        Tie levels ``g_k`` (nonzero; the exponent is not clamped at the format's subnormals).
    fmt : {"bf16", "fp16", "fp32"}
        The format rounded to.

    Returns
    -------
    ndarray of float64
        ``2^(floor(log2|level|) + 1 - p)``, p the format's precision, of ``level``'s shape.

    Raises
    ------
    KeyError
        ``fmt`` is not a format of :data:`discosim.model.selection.FORMATS`.

    Examples
    --------
    >>> level_spacing(np.array([1.5, -3.0]), "bf16").tolist()
    [0.0078125, 0.015625]
    """
    from discosim.model.selection import FORMATS

    _, ex = np.frexp(np.asarray(level, dtype=np.float64))
    return np.ldexp(1.0, ex.astype(np.int64) - FORMATS[fmt].precision)


def next_order_terms(sorted_values, sorted_index, k, fmt):
    """Per-row terms of the flip probability to next order: ``(pair, triple, binade)``.

    Parameters
    ----------
    sorted_values : ndarray, shape (N, m)
        Logits of ranks r0+1..r0+m in decreasing order, with ranks k-1..k+2 among them.
    sorted_index : ndarray of int, shape (N, m)
        Their experts.
    k : int
        Rank of the tie level within the window (1-based column).
    fmt : {"bf16", "fp16", "fp32"}
        The format rounded to.

    Returns
    -------
    pair, triple, binade : ndarray, shape (N,)
        ``pair = (1 - g/u)_+ 1_F`` (leading + slope terms), ``triple`` (:func:`triple_terms`),
        ``binade`` (:func:`binade_shift_terms` of the pair alone), u = ulp(g_k) of ``fmt``.
        Their sum has expectation ``P(flip) + O(u^3)``.

    Raises
    ------
    InputError
        ``sorted_values`` is not 2-dimensional, or ``k`` is not an integer in [1, m - 1].
    KeyError
        ``fmt`` is not a known format.

    Examples
    --------
    >>> v = np.array([[1.5, 1.5 - 2.0 ** -9, 0.2]])
    >>> [float(t[0]) for t in next_order_terms(v, np.array([[1, 0, 2]]), 1, "bf16")]
    [0.75, 0.0, 0.0]
    """
    v, k = _sorted_window(sorted_values, k)
    idx = np.asarray(sorted_index)
    u = level_spacing(v[:, k - 1], fmt)
    pair = pair_merge_probability(v[:, k - 1] - v[:, k], u) * (idx[:, k] < idx[:, k - 1])
    return pair, triple_terms(v, idx, k, u), binade_shift_terms(v, idx, k, fmt, pair_only=True)


def all_order_terms(sorted_values, sorted_index, k, fmt):
    """Per-row uniform-offset flip probability of every cluster size (:func:`offset_flip_terms`)
    plus the binade correction of every cluster size (:func:`binade_shift_terms`): the
    prediction to all orders in u, up to clusters wider than the window.

    Parameters
    ----------
    sorted_values : array_like of float, shape (N, m)
        Logits of consecutive ranks in decreasing order, the tie level at column ``k``.
    sorted_index : array_like of int, shape (N, m)
        Their experts.
    k : int
        Rank of the tie level within the window (1-based column), ``1 <= k <= m - 1``.
    fmt : {"bf16", "fp16", "fp32"}
        The format rounded to.

    Returns
    -------
    ndarray of float64, shape (N,)
        Per-row terms whose mean is the flip probability, u = ulp(g_k) of ``fmt``.

    Raises
    ------
    InputError
        ``sorted_values`` is not 2-dimensional, or ``k`` is not an integer in [1, m - 1].
    KeyError
        ``fmt`` is not a known format.

    Examples
    --------
    >>> v = np.array([[1.5, 1.5 - 2.0 ** -9, 0.2]])
    >>> float(all_order_terms(v, np.array([[1, 0, 2]]), 1, "bf16")[0])
    0.75
    """
    v, k = _sorted_window(sorted_values, k)
    idx = np.asarray(sorted_index)
    u = level_spacing(v[:, k - 1], fmt)
    return offset_flip_terms(v, idx, k, u) + binade_shift_terms(v, idx, k, fmt)


def cluster_flip(rounded_sorted, sorted_index, k):
    """1 where top-k of the rounded logits (ties to the lower index) differs from ranks 1..k.

    Parameters
    ----------
    rounded_sorted : array_like of float, shape (..., m)
        Rounded values of the m largest exact logits, in exact order (m >= k+1; the answer is
        exact when the cluster of rank k does not reach column m-1, or m = M).
    sorted_index : array_like of int, shape (..., m)
        Their experts.
    k : int
        Number of selected experts (not checked: the callers have checked it).

    Returns
    -------
    ndarray of bool, shape (...)
        True where the rounded top-k set differs from the exact one: the cluster
        ``B = {rounded == rounded[k-1]}`` has a member of rank > k with a lower index than
        one of rank <= k.

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

    The lattice ``u Z`` is shifted by ``U ~ U(0, u)``. The flip is piecewise constant in U
    between the points where a logit crosses a cell boundary: evaluated exactly on each piece.
    The brute-force twin of :func:`next_order_terms` in the tests.

    Parameters
    ----------
    values : array_like of float, shape (m,)
        Logits in decreasing order (m >= k+1).
    index : array_like of int, shape (m,)
        Their experts.
    k : int
        Number of selected experts.
    u : float
        Lattice spacing, positive.

    Returns
    -------
    float
        ``P_U[flip]`` in [0, 1].

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


def offset_flip_terms(sorted_values, sorted_index, k, u):
    """Vectorised :func:`offset_flip_probability`: the uniform-offset flip probability of each row
    (all cluster sizes, i.e. every order in u within one binade).

    Parameters
    ----------
    sorted_values : array_like of float, shape (N, m)
        Logits of consecutive ranks in decreasing order. Clusters reaching past the window's
        first or last column are not seen (the caller's window choice).
    sorted_index : array_like of int, shape (N, m)
        Their experts.
    k : int
        Rank of the tie level within the window (1-based column), ``1 <= k <= m - 1``.
    u : array_like of float, shape (N,)
        Lattice spacing of each row, positive.

    Returns
    -------
    ndarray of float64, shape (N,)
        ``P_U[flip]`` of each row, in [0, 1].

    Raises
    ------
    InputError
        ``sorted_values`` is not 2-dimensional, or ``k`` is not an integer in [1, m - 1].

    Examples
    --------
    >>> v = np.array([[1.0, 0.75, 0.0], [1.0, 0.75, 0.0]])
    >>> offset_flip_terms(v, np.array([[1, 0, 2], [0, 1, 2]]), 1, np.array([1.0, 1.0])).round(12).tolist()
    [0.75, 0.0]
    """
    v, k = _sorted_window(sorted_values, k)
    idx = np.asarray(sorted_index)
    u = np.asarray(u, dtype=np.float64)[:, None]
    x = v / u
    t = np.mod(0.5 - x, 1.0)
    N = v.shape[0]
    cuts = np.sort(np.concatenate([np.zeros((N, 1)), t, np.ones((N, 1))], axis=1), axis=1)
    mids = (cuts[:, :-1] + cuts[:, 1:]) / 2
    widths = np.diff(cuts, axis=1)
    rounded = np.round(x[:, None, :] + mids[:, :, None])
    flips = cluster_flip(rounded, np.broadcast_to(idx[:, None, :], rounded.shape), k)
    return np.sum(widths * flips, axis=1)


def binade_shift_terms(sorted_values, sorted_index, k, fmt, pair_only=False, window=BINADE_WINDOW):
    """Per-row window estimator of the binade correction (section 3 of the module docstring).

    For a row whose tie level ``v = g_k`` lies within ``window u_lo / 2`` of ``±2^e`` (u_lo the
    spacing below ``2^e``), the configuration's shape (ranks k-1..k+2, or k and k+1 with
    ``pair_only``) is shifted by t through the boundary and
    ``Delta = ∫ w(t) [flip_exact(l + t) - phi(l; u(v + t))] dt`` is integrated exactly: both
    parts are piecewise constant in t, and w is the trapezoid that is 1 while some logit is in
    the irregular cell of ``±2^e`` and ramps to 0 over one period of the grid on either side
    (the periodic tails' first moments: what a slowly varying density of the shift sees). The
    row's term is ``Delta / (window u_lo)``; its mean is ``sum_e ∫ p(±2^e, shape) Delta(shape)``.

    Parameters
    ----------
    sorted_values : array_like of float, shape (N, m)
        Logits of consecutive ranks in decreasing order, the tie level at column ``k``.
    sorted_index : array_like of int, shape (N, m)
        Their experts.
    k : int
        Rank of the tie level within the window (1-based column), ``1 <= k <= m - 1``.
    fmt : {"bf16", "fp16", "fp32"}
        The format rounded to.
    pair_only : bool, optional
        Shift ranks k and k+1 only (the binade term of :func:`next_order_terms`); otherwise
        ranks k-1..k+2, as far as the window holds them.
    window : float, optional
        Width of the level window around ``±2^e``, in units of u_lo (:data:`BINADE_WINDOW`).

    Returns
    -------
    ndarray of float64, shape (N,)
        The per-row term; 0 for rows whose tie level is outside every window.

    Raises
    ------
    InputError
        ``sorted_values`` is not 2-dimensional, or ``k`` is not an integer in [1, m - 1].
    KeyError
        ``fmt`` is not a known format.

    Examples
    --------
    >>> v = np.array([[2.0 + 2.0 ** -9, 2.0 + 2.0 ** -9 - 2.0 ** -8, 0.0]])
    >>> float(binade_shift_terms(v, np.array([[1, 0, 2]]), 1, "bf16")[0]) * 16
    -0.0625
    """
    from discosim.model.selection import FORMATS

    v, k = _sorted_window(sorted_values, k)
    idx = np.asarray(sorted_index)
    p = FORMATS[fmt].precision
    level = v[:, k - 1]
    sign = np.where(level < 0, -1.0, 1.0)
    mag = np.abs(level)
    with np.errstate(divide="ignore"):
        e = np.round(np.log2(np.maximum(mag, np.finfo(float).tiny))).astype(np.int64)
    B = np.ldexp(1.0, e)
    u_lo = np.ldexp(1.0, e - p)
    out = np.zeros(v.shape[0])
    rows = np.nonzero((np.abs(mag - B) <= window * u_lo / 2) & (mag > 0))[0]
    a, b = (k - 1, k + 1) if pair_only else (max(k - 2, 0), min(k + 2, v.shape[1]))
    for start in range(0, rows.size, 4096):  # (rows, ~200 pieces, 4 logits) at a time
        r = rows[start:start + 4096]
        out[r] = _shift_integral(v[r, a:b].copy(), idx[r, a:b], k - a, sign[r], B[r], u_lo[r],
                                 level[r], fmt) / (window * u_lo[r])
    return out


def _shift_integral(x, ix, kk, s, B, u_lo, lev, fmt):
    """``Delta`` of :func:`binade_shift_terms` for rows already in the window."""
    from discosim.model.selection import round_to_format

    # logits that cannot share a cell with ranks k, k+1 (farther than 2 u_hi) are moved far away
    hi_cut, lo_cut = x[:, kk - 1] + 4 * u_lo, x[:, kk] - 4 * u_lo
    far = (x > hi_cut[:, None]) | (x < lo_cut[:, None])
    above = np.arange(x.shape[1]) < kk
    x = np.where(far, lev[:, None] + np.where(above, 1e3, -1e3) * u_lo[:, None], x)
    rel = ~far
    xmax = np.max(np.where(rel, x, -np.inf), axis=1)
    xmin = np.min(np.where(rel, x, np.inf), axis=1)
    # signed irregular cell: [B - u_lo/2, B + u_lo) in magnitude, mirrored for negative levels;
    # the period before it (in t) is u_lo for v > 0 and 2 u_lo for v < 0, and after it the other
    z_lo = np.where(s > 0, B - u_lo / 2, -B - u_lo)
    z_hi = np.where(s > 0, B + u_lo, -B + u_lo / 2)
    t_s, t_e = z_lo - xmax, z_hi - xmin
    p_b = np.where(s > 0, u_lo, 2 * u_lo)
    p_a = np.where(s > 0, 2 * u_lo, u_lo)
    lo_t, hi_t = t_s - p_b, t_e + p_a
    j = np.arange(32)
    bounds = np.concatenate([(B[:, None] - (j + 0.5) * u_lo[:, None]),
                             (B[:, None] + u_lo[:, None] + 2 * j[:16] * u_lo[:, None])], axis=1)
    bounds = s[:, None] * bounds
    cut = (bounds[:, :, None] - np.where(rel, x, np.nan)[:, None, :]).reshape(x.shape[0], -1)
    t_B = s * B - lev
    extra = np.column_stack([lo_t, t_s, t_e, hi_t, t_B])
    cut = np.concatenate([cut, extra], axis=1)
    cut = np.where((cut > lo_t[:, None]) & (cut < hi_t[:, None]), cut, hi_t[:, None])
    cuts = np.sort(np.concatenate([lo_t[:, None], cut], axis=1), axis=1)
    mids = (cuts[:, :-1] + cuts[:, 1:]) / 2
    widths = np.diff(cuts, axis=1)
    weight = np.clip(np.minimum((mids - lo_t[:, None]) / p_b[:, None],
                                (hi_t[:, None] - mids) / p_a[:, None]), 0.0, 1.0)
    rounded = round_to_format(x[:, None, :] + mids[:, :, None], fmt)
    flips = cluster_flip(rounded, np.broadcast_to(ix[:, None, :], rounded.shape), kk)
    phi_lo = offset_flip_terms(x, ix, kk, u_lo)
    phi_hi = offset_flip_terms(x, ix, kk, 2 * u_lo)
    small = np.where(s[:, None] > 0, mids < t_B[:, None], mids > t_B[:, None])  # |v + t| < 2^e
    model = np.where(small, phi_lo[:, None], phi_hi[:, None])
    return np.sum(widths * weight * (flips - model), axis=1)
