"""Closed forms of the audit family: the precision of routing (THEORY §9): the leading order of the order-1 score
tube under sphere or ball inputs, and the tie-merge constant of the flip rate under rounding.

Linear families: ``P(flip) = (1/4) lim_{eps->0} E[ulp(v) 1{g <= eps}] / eps``, v the tie level
``g_k``: a tie at gap g < u merges under rounding with probability ``1 - g/u`` and then flips
half the time, which integrates to ``u/4`` per unit margin density (``TIE_MERGE``).
"""

import math

from scipy.special import gammaln

__all__ = ["TIE_MERGE", "margin_leading"]

TIE_MERGE = 0.25      # THEORY §9: merge probability 1 - g/u, flips half the time -> u/4


def margin_leading(B1, eps, radius, D, distribution):
    """Order-1 score tube, leading order (THEORY §5 score metric, §9 sphere): per eps."""
    shift = 1.0 if distribution == "ball" else 0.0
    logc = gammaln(D / 2 + shift) - gammaln(1.5) - gammaln((D - 1) / 2 + shift)
    return (B1 / 2) * (eps / radius) * math.exp(logc)
