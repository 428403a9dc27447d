"""Closed forms of the audit family: the precision of routing (THEORY §9): the leading order of the order-1 score
tube under sphere or ball inputs, and the tie-merge constant of the flip rate under rounding.

Linear families: ``P(flip) = (1/4) lim_{eps->0} E[ulp(v) 1{g <= eps}] / eps``, v the tie level
``g_k``: a tie at gap g < u merges under rounding with probability ``1 - g/u`` and then flips
half the time, which integrates to ``u/4`` per unit margin density (``TIE_MERGE``).
"""

import math

import numpy as np
from scipy.special import erfc, gammaln, ndtr

__all__ = ["TIE_MERGE", "margin_leading", "whole_router_weight"]

TIE_MERGE = 0.25      # THEORY §9: merge probability 1 - g/u, flips half the time -> u/4


def margin_leading(B1, eps, radius, D, distribution):
    """Order-1 score tube, leading order (THEORY §5 score metric, §9 sphere): per eps."""
    shift = 1.0 if distribution == "ball" else 0.0
    logc = gammaln(D / 2 + shift) - gammaln(1.5) - gammaln((D - 1) / 2 + shift)
    return (B1 / 2) * (eps / radius) * math.exp(logc)


def whole_router_weight(u, sigma):
    """Flip weight of one near-tie when the router runs in a float format (issue 22; derivation in
    :mod:`discosim.audit.whole_router`): ``u/4 + E[psi(|E|)]`` for a Gaussian input-rounding error
    ``E ~ N(0, sigma^2)`` of the logit gap and logits rounded on a grid of spacing ``u``, with
    ``psi(a) = a^2 / (4u)`` for ``a <= u`` and ``a/2 - u/4`` beyond. ``sigma = 0`` gives the tie-merge
    weight ``u/4`` of THEORY §9; ``sigma >> u`` gives ``sigma / sqrt(2 pi)``. Elementwise.

    Examples
    --------
    >>> from discosim.theory.audit import whole_router_weight
    >>> float(whole_router_weight(1.0, 0.0))              # logits-only rounding: u/4
    0.25
    >>> round(float(whole_router_weight(1e-6, 1.0)), 6)   # input rounding dominates: 1/sqrt(2 pi)
    0.398942
    """
    u = np.asarray(u, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    out = u / 4
    pos = sigma > 0
    if np.any(pos):
        uu, ss = np.broadcast_arrays(u, sigma)
        uu, ss = uu[pos], ss[pos]
        t = uu / ss
        pdf = np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
        inner = ss * ss * ((2 * ndtr(t) - 1) - 2 * t * pdf)   # E[a^2 1{a <= u}]
        outer = 2 * ss * pdf                                  # E[a 1{a > u}]
        tail = erfc(t / math.sqrt(2))                         # P(a > u)
        out = np.array(np.broadcast_to(out, pos.shape), dtype=float)
        out[pos] += inner / (4 * uu) + outer / 2 - uu / 4 * tail
    return out
