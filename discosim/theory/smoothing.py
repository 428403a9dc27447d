"""Closed forms of the smoothing mechanism (THEORY §7); numpy/scipy only, no randomness.

- Band variable ``u_i = (s_i - g_k + eta) / eta``; factor
  ``e^{S(u)} = u^a / (u^a + (1-u)^b)`` on (0, 1), 0 for u <= 0, 1 for u >= 1
  (``S(u) = -softplus(b log(1-u) - a log u)``, defaults a_s = 1, b_s = 50).
- Hoelder exponent of the smoothed map: ``min(a_s, b_s, 1)``; across the band edge the jump
  scales like ``delta^min(a_s, 1)``; across Gamma^(1) like ``delta`` (Lipschitz).
- Overhead (derived): extra active experts ``N_eta = #{i : g_k - eta < s_i < g_k}``;
  for x uniform in ``B_D(0,R)``, b = 0,
  ``E N_eta = (2 eta / R)(omega_{D-1}/omega_D) sum_{i<j} alpha_ij / |w_i - w_j| + O(eta^2)``.
  For ``x ~ N(0, sigma^2 I_D)`` the same slab argument with the Gaussian surface density of a
  hyperplane through 0 (``1/(sqrt(2 pi) sigma)``) gives
  ``E N_eta = 2 eta / (sqrt(2 pi) sigma) sum_{i<j} alpha_ij / |w_i - w_j| + O(eta^2)`` [derived here].
"""

import math

import numpy as np
from scipy import optimize

from .volumes import log_unit_ball_volume

__all__ = ["log_band_factor", "band_factor", "holder_exponent", "band_edge_exponent",
           "overhead_pair_sum", "overhead_coefficient", "max_band_factor_slope"]


def log_band_factor(u, a_s=1.0, b_s=50.0):
    """``S(u) = log e^{S(u)}``: -inf for u <= 0, 0 for u >= 1, else
    ``a log u - logaddexp(a log u, b log(1-u))`` (never NaN)."""
    u = np.asarray(u, dtype=float)
    out = np.where(u >= 1.0, 0.0, -np.inf)
    inside = (u > 0.0) & (u < 1.0)
    if np.any(inside):
        ui = u[inside]
        la = a_s * np.log(ui)
        lb = b_s * np.log1p(-ui)
        out = out.copy()
        out[inside] = la - np.logaddexp(la, lb)
    return out


def band_factor(u, a_s=1.0, b_s=50.0):
    """``e^{S(u)} = u^a / (u^a + (1-u)^b)`` clipped to [0, 1] outside (0, 1)."""
    return np.exp(log_band_factor(u, a_s, b_s))


def holder_exponent(a_s=1.0, b_s=50.0):
    """Global Hoelder exponent of the smoothed map, ``min(a_s, b_s, 1)``."""
    return min(a_s, b_s, 1.0)


def band_edge_exponent(a_s=1.0):
    """Exponent of the jump across the band edge ``{s_j = g_k - eta}``: ``min(a_s, 1)``."""
    return min(a_s, 1.0)


def max_band_factor_slope(a_s=1.0, b_s=50.0):
    """``sup_u d e^{S(u)}/du`` and where it is attained (THEORY: about 17.8 at u = 0.054)."""
    def neg_slope(u):
        h = 1e-7
        return -(band_factor(u + h, a_s, b_s) - band_factor(u - h, a_s, b_s)) / (2 * h)

    grid = np.linspace(1e-4, 1 - 1e-4, 20001)
    i = int(np.argmin([neg_slope(u) for u in grid]))
    res = optimize.minimize_scalar(neg_slope, bracket=(grid[max(i - 1, 0)], grid[i], grid[min(i + 1, len(grid) - 1)]))
    return float(-res.fun), float(res.x)


def overhead_pair_sum(tie_weights_gram, alphas):
    """``sum_{i<j} alpha_ij / |w_i - w_j|`` from the Gram matrix and a dict {(i, j): alpha_ij}."""
    G = np.asarray(tie_weights_gram)
    total = 0.0
    for (i, j), a in alphas.items():
        total += a / math.sqrt(G[i, i] + G[j, j] - 2 * G[i, j])
    return total


def overhead_coefficient(pair_sum, dim, radius, distribution="ball"):
    """``c_1`` with ``E N_eta = c_1 eta + O(eta^2)``.

    ``ball``: x uniform in B_D(0, R); ``gaussian``: x ~ N(0, (R^2/D) I_D) (so |x| is about R).
    """
    if distribution == "ball":
        return 2.0 / radius * math.exp(log_unit_ball_volume(dim - 1) - log_unit_ball_volume(dim)) * pair_sum
    sigma = radius / math.sqrt(dim)
    return 2.0 / (math.sqrt(2 * math.pi) * sigma) * pair_sum
