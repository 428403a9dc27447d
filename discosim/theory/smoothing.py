"""Closed forms of the smoothing mechanism (THEORY §7); numpy/scipy only, no randomness.

- Band variable ``u_i = (s_i - g_k + eta) / eta``; factor
  ``e^{S(u)} = u^a / (u^a + (1-u)^b)`` on (0, 1), 0 for u <= 0, 1 for u >= 1
  (``S(u) = -softplus(b log(1-u) - a log u)``, defaults a_s = 1, b_s = 50).
- Hoelder exponent of the smoothed map: ``min(a_s, b_s, 1)``; across the band edge the jump
  scales like ``delta^min(a_s, 1)`` (``e^S ~ u^a`` at u -> 0); across Gamma^(1) like
  ``delta^min(b_s, 1)`` (``1 - e^S ~ (1-u)^b`` at u -> 1: Lipschitz for b_s >= 1).
- Slope: ``(e^S)'(u) = u^{a-1} (1-u)^{b-1} (a (1-u) + b u) / (u^a + (1-u)^b)^2``; its sup (about
  17.8 at u = 0.054 for the defaults) times ``|w_l - w_g| / eta`` is the Lipschitz constant of the
  gate factor of expert l in x (g the expert at rank k): it comes from inside the band.
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

from discosim.model.gates import log_band_factor  # the gate's own definition, re-exported
from discosim.theory.volumes import log_unit_ball_volume

__all__ = ["log_band_factor", "band_factor", "band_factor_derivative", "holder_exponent",
           "band_edge_exponent", "overhead_pair_sum", "overhead_coefficient",
           "max_band_factor_slope", "lipschitz_constant"]


def band_factor(u, a_s=1.0, b_s=50.0):
    """``e^{S(u)} = u^a / (u^a + (1-u)^b)`` clipped to [0, 1] outside (0, 1)."""
    return np.exp(log_band_factor(u, a_s, b_s))


def holder_exponent(a_s=1.0, b_s=50.0):
    """Global Hoelder exponent of the smoothed map, ``min(a_s, b_s, 1)``."""
    return min(a_s, b_s, 1.0)


def band_edge_exponent(a_s=1.0):
    """Exponent of the jump across the band edge ``{s_j = g_k - eta}``: ``min(a_s, 1)``."""
    return min(a_s, 1.0)


def band_factor_derivative(u, a_s=1.0, b_s=50.0):
    """``(e^S)'(u) = u^{a-1}(1-u)^{b-1}(a(1-u) + b u) / (u^a + (1-u)^b)^2`` on (0, 1), 0 outside.

    Evaluated in logs (``e^{S}`` is ``1/(1 + e^{b log(1-u) - a log u})``) so it never overflows.
    """
    u = np.asarray(u, dtype=float)
    out = np.zeros_like(u)
    inside = (u > 0.0) & (u < 1.0)
    ui = u[inside]
    la, lb = a_s * np.log(ui), b_s * np.log1p(-ui)
    # f' = f (1 - f) (a/u + b/(1-u)) with f = e^S
    f = np.exp(la - np.logaddexp(la, lb))
    g = np.exp(lb - np.logaddexp(la, lb))
    out[inside] = f * g * (a_s / ui + b_s / (1.0 - ui))
    return out


def max_band_factor_slope(a_s=1.0, b_s=50.0):
    """``sup_u (e^S)'(u)`` and where it is attained (THEORY §7: about 17.8 at u = 0.054).

    Dense grid on (0, 1) (log-spaced near both ends, where the slope can blow up for
    ``a_s < 1`` or ``b_s < 1``), refined by bounded scalar minimisation.
    """
    grid = np.unique(np.concatenate([np.geomspace(1e-9, 0.5, 4000), 1 - np.geomspace(1e-9, 0.5, 4000)]))
    vals = band_factor_derivative(grid, a_s, b_s)
    i = int(np.argmax(vals))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    res = optimize.minimize_scalar(lambda u: -float(band_factor_derivative(np.array([u]), a_s, b_s)[0]),
                                   bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    if -res.fun >= vals[i]:
        return float(-res.fun), float(res.x)
    return float(vals[i]), float(grid[i])


def lipschitz_constant(w_l, w_g, eta, a_s=1.0, b_s=50.0):
    """Lipschitz constant in x of the gate factor ``e^{S(u_l(x))}``: ``sup (e^S)' |w_l - w_g| / eta``.

    ``u_l = (s_l - g_k + eta)/eta`` moves with x at rate ``|w_l - w_g|/eta`` (g the expert at
    rank k); for the defaults ``sup (e^S)' = 17.8`` (computed here, not hard-coded).
    """
    slope, _ = max_band_factor_slope(a_s, b_s)
    return slope * float(np.linalg.norm(np.asarray(w_l, float) - np.asarray(w_g, float))) / eta


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
