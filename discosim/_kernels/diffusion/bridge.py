"""The midpoint of a Brownian-bridge step conditioned on a crossing (THEORY §6), without rejection's
1/p tail. Plain Python functions, compiled twice: ``numba.njit`` for the CPU kernel
(:mod:`discosim._kernels.diffusion.paths`) and ``cuda.jit(device=True)`` for the GPU one
(:mod:`discosim._cuda.diffusion.paths`); the test twins call them as they are.

A step with facet gaps ``ga > 0`` (start) and ``gb`` (end) is flagged as crossing; its midpoint
is ``N(mid, s^2 I)`` and the path crosses (half-spaces independent within a step, as in the step
test) with probability ``q(zm) = 1 - prod_q (1 - Q_q(y_q))``, ``y_q`` the midpoint's gap of facet
q and, with v the gap's half-step variance, ``Q(y) = A + B - A B``, ``A = exp(-2 ga y/v)``,
``B = exp(-2 gb y/v)`` (``Q = 1`` for ``y <= 0`` or ``gb <= 0``). The midpoint's law is
``phi(zm) q(zm)`` normalised. Proposing from ``phi`` and accepting with q (the old sampler)
takes about 1/p tries for a step flagged with probability p. Instead:

1. choose facet q with probability ``c_q / sum c``, ``c_q = E Q_q = exp(-ga gb/v)`` (1 if
   ``gb <= 0``): the facet's own crossing probability over the whole step;
2. draw the midpoint's gap y of facet q from ``phi(y) Q_q(y) / c_q`` (below) and the other
   directions of the midpoint unconditioned: the midpoint given "facet q crosses";
3. accept with probability ``q(zm) / sum_q Q_q(y_q)`` (at most 1 by the union bound, at least
   1 / #facets, about 1 when one facet dominates).

The proposal density is ``phi sum_q Q_q / sum c``, so the accepted midpoint has the law
``phi q``, exactly that of the rejection sampler. For step 2, with ``tau^2 = v/2`` the midpoint's
gap variance and ``ybar = (ga + gb)/2``, ``phi_tau(y - ybar) A(y) = e^{-ga gb/v}
phi_tau(y - (gb - ga)/2)`` (likewise B with ga, gb swapped): y is drawn from the mixture of
``N(ybar, tau^2)`` on y <= 0 (weight ``Phi(-ybar/tau)``) and ``N(+-(gb - ga)/2, tau^2)`` on y > 0
(weights ``e^{-ga gb/v} Phi(+-(gb - ga)/(2 tau))``), and a draw with y > 0 is kept with
probability ``Q/(A + B) = 1 - 1/(e^a + e^b)`` (``a, b`` the exponents; at least 1/2).
"""

import math

_SQRT1_2 = 0.7071067811865476
_EXP_MAX = 700.0  # exp stays finite (the CUDA simulator runs these in CPython, which raises)


def facet_weight(ga, gb, v):
    """``c_q``: P(the facet's gap crosses 0 in the whole step | end gaps ga > 0, gb)."""
    if gb <= 0.0:
        return 1.0
    x = ga * gb / v
    return math.exp(-(x if x < _EXP_MAX else _EXP_MAX))


def piece_weights(ga, gb, v):
    """Unnormalised weights of the three pieces of the conditioned midpoint gap (gb > 0)."""
    # Phi(x) = erfc(-x / sqrt 2) / 2, written out: these functions call no other (numba compiles
    # each on its own, and a plain-Python callee would be an untyped global)
    c = _SQRT1_2 / math.sqrt(0.5 * v)
    w0 = 0.5 * math.erfc(0.5 * (ga + gb) * c)
    x = ga * gb / v
    e = math.exp(-(x if x < _EXP_MAX else _EXP_MAX))
    wa = 0.5 * e * math.erfc(0.5 * (ga - gb) * c)
    wb = 0.5 * e * math.erfc(0.5 * (gb - ga) * c)
    return w0, wa, wb


def envelope_keep(y, ga, gb, v):
    """``Q(y) / (A + B)`` for y > 0: the probability of keeping a draw of the A or B piece."""
    a = 2.0 * ga * y / v
    b = 2.0 * gb * y / v
    a = a if a < _EXP_MAX else _EXP_MAX  # no min(): some numba-cuda releases mistype it
    b = b if b < _EXP_MAX else _EXP_MAX
    return 1.0 - 1.0 / (math.exp(a) + math.exp(b))


def gap_crossing(y, ga, gb, v):
    """``Q(y)``: P(the facet's gap crosses 0 in either half | midpoint gap y)."""
    if y <= 0.0 or gb <= 0.0:
        return 1.0
    a = 2.0 * ga * y / v
    b = 2.0 * gb * y / v
    A = math.exp(-(a if a < _EXP_MAX else _EXP_MAX))
    B = math.exp(-(b if b < _EXP_MAX else _EXP_MAX))
    return A + B - A * B


def tn_rate(a):
    """Rate of Robert's (1995) exponential proposal for ``N(0, 1) | x > a`` (a > 0)."""
    return 0.5 * (a + math.sqrt(a * a + 4.0))


# a standard normal truncated to x > a: plain rejection below this a (acceptance >= 33%),
# Robert's exponential proposal above it (acceptance >= 70%)
TN_SWITCH = 0.45
