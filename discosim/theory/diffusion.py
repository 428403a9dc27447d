"""Closed forms for Brownian perturbations (THEORY §6); numpy/scipy only, no randomness.

- Facet distances from x0 in its cell with top-k set K:
  ``d_ij = (s_i(x0) - s_j(x0)) / |w_i - w_j|``, i in K, j not in K.
- Bounds (derived from ``tau = min_ij tau_ij``, half-space exit times):
  ``max_ij 2 Phibar(d_ij / (sigma sqrt t)) <= P(tau <= t) <= min(1, sum_ij 2 Phibar(d_ij/(sigma sqrt t)))``.
- Levy (one hyperplane, M = 2): ``P(tau <= t) = 2 Phibar(d / (sigma sqrt t))``.
- Spitzer (1958), 2-D wedge of opening theta, start at polar (r0, phi0), sigma = 1:
  ``P(tau > t) = (2 r0/sqrt(2 pi t)) sum_{n odd} (1/n) sin(n pi phi0/theta) e^{-x}
  [I_{(nu_n-1)/2}(x) + I_{(nu_n+1)/2}(x)]``, ``x = r0^2/(4t)``, ``nu_n = n pi/theta``; general sigma
  by ``t -> sigma^2 t``.
- Occupation (derived): with ``d_J = dist(x0, S_J)`` the normal part of X_s is
  ``N(P_{N_J} x0, sigma^2 s I_r)``, so for euclidean/normal tubes
  ``E L_r^eps(t) <= sum_{|J|=r+1} int_0^t F_{chi'^2_r}(eps^2/(sigma^2 s); d_J^2/(sigma^2 s)) ds``;
  for r >= 3 the full-subspace tube has the exact infinite-horizon occupation
  ``omega_r eps^r (2 pi sigma^2)^{-r/2} Gamma(r/2-1) (d_J^2/(2 sigma^2))^{1-r/2}`` (d_J >= eps),
  ``Gamma(r/2-1) omega_r (r eps^2 - (r-2) d_J^2) / (4 pi^{r/2} sigma^2)`` (d_J <= eps).
- Hit-near-ridge exponent: ``q(delta) ~ delta^(pi/theta*)`` with theta* the largest interior
  dihedral angle over ridges of the cell (facet pairs sharing an expert).
"""

import math

import numpy as np
from scipy import special, stats

__all__ = ["occupation_growth", "occupation_bound", "occupation_infinite_horizon", "slice_distances", "facet_distances", "hitting_bounds", "levy_cdf", "wedge_survival", "wedge_geometry",
           "ridge_angles", "hit_order_exponent"]


def _cell(router, x0):
    s = router.scores(np.asarray(x0, dtype=float)[None, :])[0]
    order = np.argsort(-s, kind="stable")
    return s, order[:router.k], order[router.k:]


def facet_distances(router, x0):
    """Distances ``d_ij`` from x0 to the facet hyperplanes of its cell, shape (k, M-k)."""
    s, K, rest = _cell(router, x0)
    W = router.tie_weights
    norms = np.linalg.norm(W[K][:, None, :] - W[rest][None, :, :], axis=2)
    return (s[K][:, None] - s[rest][None, :]) / norms


def hitting_bounds(router, x0, sigma, times):
    """(lower, upper) bounds on ``P(tau <= t)`` at each time (THEORY §6)."""
    d = facet_distances(router, x0).ravel()
    t = np.atleast_1d(np.asarray(times, dtype=float))
    p = 2.0 * stats.norm.sf(d[None, :] / (sigma * np.sqrt(t)[:, None]))
    return p.max(axis=1), np.minimum(1.0, p.sum(axis=1))


def levy_cdf(distance, sigma, times):
    """Levy's law of the hitting time of a hyperplane at ``distance``: ``2 Phibar(d/(sigma sqrt t))``."""
    t = np.asarray(times, dtype=float)
    return 2.0 * stats.norm.sf(distance / (sigma * np.sqrt(t)))


def wedge_survival(r0, phi0, theta, times, sigma=1.0, n_terms=400):
    """Spitzer's ``P(tau > t)`` for a planar Brownian motion in a wedge of opening ``theta``."""
    t = np.atleast_1d(np.asarray(times, dtype=float)) * sigma ** 2
    x = r0 ** 2 / (4.0 * t)
    total = np.zeros_like(t)
    for n in range(1, 2 * n_terms, 2):
        nu = n * math.pi / theta
        term = (math.sin(n * math.pi * phi0 / theta) / n
                * (special.ive((nu - 1) / 2, x) + special.ive((nu + 1) / 2, x)))
        total += term
    return np.clip(2.0 * r0 / np.sqrt(2.0 * math.pi * t) * total, 0.0, 1.0)


def wedge_geometry(router, x0):
    """(r0, phi0, theta) of x0 in the cell of a top-1 router with M = 3 (a wedge x R^(D-2)).

    The cell {s_1 > s_2, s_1 > s_3} has inward facet normals n_a, n_b; its opening is
    ``theta = pi - angle(n_a, n_b)``; x0 is at distances d_a, d_b from the two facets.
    """
    if router.n_experts != 3 or router.k != 1:
        raise ValueError("wedge geometry needs a top-1 router with M = 3")
    s, K, rest = _cell(router, x0)
    W = router.tie_weights
    na = W[K[0]] - W[rest[0]]
    nb = W[K[0]] - W[rest[1]]
    cosang = na @ nb / (np.linalg.norm(na) * np.linalg.norm(nb))
    theta = math.pi - math.acos(np.clip(cosang, -1, 1))
    da = (s[K[0]] - s[rest[0]]) / np.linalg.norm(na)
    db = (s[K[0]] - s[rest[1]]) / np.linalg.norm(nb)
    phi0 = math.atan2(da * math.sin(theta), db + da * math.cos(theta))
    r0 = da / math.sin(phi0)
    return r0, phi0, theta


def ridge_angles(router, x0):
    """Interior dihedral angles of the ridges of x0's cell (facet pairs sharing an expert)."""
    _, K, rest = _cell(router, x0)
    W = router.tie_weights
    facets = [(i, j) for i in K for j in rest]
    angles = []
    for a in range(len(facets)):
        for b in range(a + 1, len(facets)):
            (i, j), (i2, j2) = facets[a], facets[b]
            if i != i2 and j != j2:
                continue  # disjoint experts meet only in codimension 3
            n1, n2 = W[i] - W[j], W[i2] - W[j2]
            c = n1 @ n2 / (np.linalg.norm(n1) * np.linalg.norm(n2))
            angles.append(math.pi - math.acos(np.clip(c, -1, 1)))
    return np.array(angles)


def hit_order_exponent(router, x0):
    """Predicted exponent ``pi / theta*`` of ``q(delta)`` (THEORY §6, derived)."""
    ang = ridge_angles(router, x0)
    return math.pi / ang.max() if ang.size else math.inf


def slice_distances(router, x0, order):
    """``d_J = |P_{N_J}(x0 - p_J)|`` for every slice |J| = order + 1 (score gaps over G_J)."""
    import itertools

    s = router.scores(np.asarray(x0, dtype=float)[None, :])[0]
    W = router.tie_weights
    out = []
    for J in itertools.combinations(range(router.n_experts), order + 1):
        V = W[list(J[1:])] - W[J[0]]
        e = s[list(J[1:])] - s[J[0]]
        out.append(math.sqrt(max(float(e @ np.linalg.solve(V @ V.T, e)), 0.0)))
    return np.array(out)


def occupation_bound(router, x0, sigma, eps, order, t):
    """``sum_J int_0^t F_{chi'^2_r}(eps^2/(sigma^2 s); d_J^2/(sigma^2 s)) ds`` (THEORY §6)."""
    from scipy import integrate

    r = order
    total = 0.0
    for d in slice_distances(router, x0, r):
        def f(u, d=d):
            if u <= 0:
                return 1.0 if d < eps else 0.0
            return stats.ncx2.cdf(eps * eps / (sigma * sigma * u), r, d * d / (sigma * sigma * u))
        # integrate in log-time: the integrand lives around s ~ (d^2 + eps^2)/sigma^2
        s0 = t * 1e-12
        g = lambda v: f(math.exp(v)) * math.exp(v)
        peak = math.log(max(min(t, (d * d + eps * eps) / sigma ** 2), s0 * 10))
        val, _ = integrate.quad(g, math.log(s0), math.log(t), limit=400, points=[peak])
        total += val + (s0 if d < eps else 0.0)
    return total


def occupation_infinite_horizon(router, x0, sigma, eps, order):
    """Exact ``E L^eps(infinity)`` of the full-subspace tubes summed over slices (r >= 3)."""
    r = order
    if r < 3:
        return math.inf
    omega_r = math.pi ** (r / 2) / math.gamma(r / 2 + 1)
    g = math.gamma(r / 2 - 1)
    total = 0.0
    for d in slice_distances(router, x0, r):
        if d >= eps:
            total += omega_r * eps ** r * (2 * math.pi * sigma ** 2) ** (-r / 2) * g * (d * d / (2 * sigma ** 2)) ** (1 - r / 2)
        else:
            total += g * omega_r * (r * eps * eps - (r - 2) * d * d) / (4 * math.pi ** (r / 2) * sigma ** 2)
    return total


def occupation_growth(order, eps, sigma):
    """Large-t law of the occupation of one full-subspace eps-tube of codimension r (per slice).

    Returns (kind, coefficient): r = 1: ``("sqrt", c)`` with ``E L(t) ~ c sqrt(t)``,
    ``c = 4 eps / (sigma sqrt(2 pi))`` (the 1-D normal density at 0 integrated over s);
    r = 2: ``("log10", c)`` with ``E L(t) ~ c log10(t)``, ``c = eps^2 ln 10 / (2 sigma^2)``;
    r >= 3: ``("bounded", None)`` (see :func:`occupation_infinite_horizon`).
    """
    if order == 1:
        return "sqrt", 4.0 * eps / (sigma * math.sqrt(2 * math.pi))
    if order == 2:
        return "log10", eps * eps * math.log(10) / (2 * sigma * sigma)
    return "bounded", None
