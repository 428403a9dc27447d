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
  dihedral angle over ridges of the cell (facet pairs sharing an expert); in a planar wedge the
  exit law is exact (conformal map to the half-plane, :func:`wedge_hit_profile`).
- Orthant cell (top-1, mutually orthogonal facet normals): ``P(tau > t) = prod_j erf(d_j/(sigma sqrt(2t)))``.
- One hyperplane at distance d: ``E L(t) = int_0^t P(|d + sigma B_s| <= eps) ds`` (OU reverting to
  x0: variance ``sigma^2 (1 - e^{-2 theta s})/(2 theta)``); from the apex of a router without bias
  the normal fibre tubes give ``A_r int_0^t F_{chi^2_r}(eps^2/(sigma^2 s)) ds``: sqrt-t constant
  ``A_1 2 eps sqrt(2/pi)/sigma`` (r = 1), ``A_2 eps^2 ln10/(2 sigma^2)`` per decade (r = 2), and the
  infinite-horizon value of the subspace tubes (r >= 3).

The routers and start points these laws hold for (orthant, wedge, ridge and bounds starts) are
built in :mod:`discosim.cases`.
"""

import math

import numpy as np
from scipy import special, stats

__all__ = ["occupation_growth", "occupation_bound", "occupation_infinite_horizon", "slice_distances", "facet_distances", "hitting_bounds", "levy_cdf", "wedge_survival", "wedge_geometry",
           "ridge_angles", "hit_order_exponent", "orthant_survival",
           "slab_probability", "slab_occupation", "apex_probability", "apex_occupation",
           "sqrt_growth_constant", "log_rate_per_decade", "subspace_occupation_infinite",
           "wedge_hit_profile", "subspace_probability",
           "subspace_occupation", "subspace_occupation_tail"]


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


# ----------------------------------------------------------------------------------------------
# Sharper closed forms for the validation claims (THEORY §6)
# ----------------------------------------------------------------------------------------------

def orthant_survival(distances, sigma, times):
    """``P(tau > t) = prod_j erf(d_j / (sigma sqrt(2 t)))`` for an orthant cell.

    A top-1 router whose competing facet normals ``w_1 - w_j`` are mutually orthogonal has an
    orthant (times the orthogonal complement) for a cell; the components of the path along the
    unit normals are independent one-dimensional Brownian motions, so the exit time is the
    minimum of independent Levy times, each with ``P(tau_j > t) = erf(d_j/(sigma sqrt(2t)))``.

    Parameters
    ----------
    distances : array_like
        Distances ``d_j > 0`` from x0 to the facets.
    sigma : float
    times : array_like

    Returns
    -------
    ndarray, shape of ``times``
    """
    d = np.asarray(distances, dtype=float).ravel()
    t = np.atleast_1d(np.asarray(times, dtype=float))
    return np.prod(special.erf(d[None, :] / (sigma * np.sqrt(2.0 * t)[:, None])), axis=1)


def _normal_variance(sigma, s, theta):
    """Variance of the displacement after time s: ``sigma^2 s`` (BM) or the OU value."""
    s = np.asarray(s, dtype=float)
    if theta is None or theta == 0:
        return sigma * sigma * s
    return sigma * sigma * -np.expm1(-2.0 * theta * s) / (2.0 * theta)


def slab_probability(distance, eps, sigma, s, theta=None):
    """``P(|d + N(0, v(s))| <= eps)``, ``v(s) = sigma^2 s`` (BM) or ``sigma^2 (1-e^{-2 theta s})/(2 theta)`` (OU to x0)."""
    s = np.asarray(s, dtype=float)
    v = _normal_variance(sigma, s, theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = np.sqrt(v)
        p = stats.norm.cdf((eps - distance) / sd) - stats.norm.cdf((-eps - distance) / sd)
    inside = 1.0 if abs(distance) <= eps else 0.0
    return np.where(v > 0, p, inside)


def slab_occupation(distance, eps, sigma, t, theta=None, dt=None):
    """Exact ``E L(t) = int_0^t P(|d + sigma B_s| <= eps) ds`` for one hyperplane at distance d.

    With ``theta`` the Ornstein-Uhlenbeck process reverting to x0 (variance
    ``sigma^2 (1 - e^{-2 theta s}) / (2 theta)``). With ``dt`` the left Riemann sum
    ``dt sum_{i < t/dt} P(.. at s = i dt)`` that a path simulated on the grid estimates without
    bias (the time-continuous integral is its dt -> 0 limit).
    """
    from scipy import integrate

    if dt is not None:
        n = int(round(t / dt))
        s = np.arange(n) * dt
        return float(dt * np.sum(slab_probability(distance, eps, sigma, s, theta)))
    # the integrand changes on the scale s ~ (|d| + eps)^2 / sigma^2: split there
    knee = min(t, ((abs(distance) + eps) / sigma) ** 2)
    f = lambda s: float(slab_probability(distance, eps, sigma, s, theta))
    a, _ = integrate.quad(f, 0.0, knee, limit=200, epsabs=0, epsrel=1e-10)
    b = 0.0
    if t > knee:
        b, _ = integrate.quad(f, knee, t, limit=400, epsabs=0, epsrel=1e-10)
    return a + b


def apex_probability(order, eps, sigma, s):
    """``P(|N(0, sigma^2 s I_r)| <= eps) = F_{chi^2_r}(eps^2 / (sigma^2 s))`` (1 at s = 0)."""
    s = np.asarray(s, dtype=float)
    with np.errstate(divide="ignore"):
        x = np.where(s > 0, eps * eps / (sigma * sigma * np.where(s > 0, s, 1.0)), np.inf)
    return np.where(s > 0, stats.chi2.cdf(x, order), 1.0)


def apex_occupation(alpha_sum, order, eps, sigma, t, dt=None, t0=0.0):
    """``E L_r^eps`` over ``[t0, t]`` of the normal fibre tubes, from the apex (x0 = 0, b = 0).

    From x0 = 0 the Gaussian law of ``X_s`` factorises along ``S_J`` and ``N_J``; the cone
    ``Gamma_J`` has Gaussian measure ``alpha_J`` in ``S_J``, so the normal fibre tube of one
    slice holds ``X_s`` with probability ``alpha_J F_{chi^2_r}(eps^2/(sigma^2 s))`` exactly and
    ``sum_J E L_J = A_r int_{t0}^t F_{chi^2_r}(eps^2/(sigma^2 s)) ds`` with ``A_r = sum_J alpha_J``.
    The union differs from the sum by the overlaps of different slices' tubes, which lie
    within ``eps`` of ``Gamma^(>=r+1)``. With ``dt``: the left Riemann sum on the grid.
    For r = 1 this is ``A_1 * slab_occupation(0, eps, sigma, t)`` and grows like
    ``A_1 2 eps sqrt(2 t / pi) / sigma``; for r = 2 by ``A_2 eps^2 ln 10 / (2 sigma^2)`` per
    decade; for r >= 3 it converges to ``A_r`` times :func:`subspace_occupation_infinite` at d = 0.
    """
    from scipy import integrate

    if dt is not None:
        i0 = int(round(t0 / dt))
        n = int(round(t / dt))
        s = np.arange(i0, n) * dt
        return float(alpha_sum * dt * np.sum(apex_probability(order, eps, sigma, s)))
    knee = max(t0, min(t, (eps / sigma) ** 2))
    f = lambda s: float(apex_probability(order, eps, sigma, s))
    a = integrate.quad(f, t0, knee, limit=200, epsabs=0, epsrel=1e-10)[0] if knee > t0 else 0.0
    b = 0.0
    if t > knee:
        # log-time substitution: the integrand decays like s^(-r/2)
        g = lambda v: f(math.exp(v)) * math.exp(v)
        b = integrate.quad(g, math.log(knee), math.log(t), limit=400, epsabs=0, epsrel=1e-10)[0]
    return alpha_sum * (a + b)


def sqrt_growth_constant(alpha_sum, eps, sigma):
    """``c`` in ``E L_1^eps(t) ~ c sqrt(t)``: ``A_1 * 2 eps sqrt(2/pi) / sigma`` (THEORY §6)."""
    return alpha_sum * 2.0 * eps * math.sqrt(2.0 / math.pi) / sigma


def log_rate_per_decade(alpha_sum, eps, sigma):
    """Sharp growth of ``E L_2^eps(t)`` per decade of t: ``A_2 eps^2 ln 10 / (2 sigma^2)``."""
    return alpha_sum * eps * eps * math.log(10.0) / (2.0 * sigma * sigma)


def subspace_occupation_infinite(distance, eps, sigma, order):
    """Exact ``E L(infinity)`` of the eps-tube of one codimension-r subspace (r >= 3) at distance d.

    ``omega_r eps^r (2 pi sigma^2)^{-r/2} Gamma(r/2-1) (d^2/(2 sigma^2))^{1-r/2}`` for d >= eps,
    ``Gamma(r/2-1) omega_r (r eps^2 - (r-2) d^2) / (4 pi^{r/2} sigma^2)`` for d <= eps.
    """
    r = order
    if r < 3:
        return math.inf
    omega_r = math.pi ** (r / 2) / math.gamma(r / 2 + 1)
    g = math.gamma(r / 2 - 1)
    d = float(distance)
    if d >= eps:
        return omega_r * eps ** r * (2 * math.pi * sigma ** 2) ** (-r / 2) * g * (d * d / (2 * sigma ** 2)) ** (1 - r / 2)
    return g * omega_r * (r * eps * eps - (r - 2) * d * d) / (4 * math.pi ** (r / 2) * sigma ** 2)


def wedge_hit_profile(r0, phi0, theta, deltas):
    """Exact ``q(delta) = P(|X_tau| <= delta)`` for planar BM in a wedge of opening theta.

    The conformal map ``w = z^(pi/theta)`` sends the wedge to the upper half-plane and the exit
    point at distance rho from the apex to ``+-rho^(pi/theta)``; harmonic measure from
    ``w0 = r0^nu e^{i nu phi0}`` (``nu = pi/theta``) is Cauchy, so
    ``q(delta) = (1/pi)[atan((delta^nu - u0)/v0) + atan((delta^nu + u0)/v0)]``.
    As delta -> 0, ``q ~ (2/pi) v0 delta^nu / |w0|^2``: exponent ``pi/theta``. Exit position law
    over an infinite horizon (tau < infinity a.s.).
    """
    nu = math.pi / theta
    w0 = r0 ** nu * complex(math.cos(nu * phi0), math.sin(nu * phi0))
    u0, v0 = w0.real, w0.imag
    x = np.asarray(deltas, dtype=float) ** nu
    return (np.arctan((x - u0) / v0) + np.arctan((x + u0) / v0)) / math.pi


def subspace_probability(distance, eps, sigma, order, s):
    """``P(|d e_1 + sigma B_s^(r)| <= eps) = F_{chi'^2_r}(eps^2/(sigma^2 s); d^2/(sigma^2 s))``."""
    s = np.atleast_1d(np.asarray(s, dtype=float))
    out = np.full(s.shape, 1.0 if distance <= eps else 0.0)
    pos = s > 0
    v = sigma * sigma * s[pos]
    if distance == 0:
        out[pos] = stats.chi2.cdf(eps * eps / v, order)
    else:
        out[pos] = stats.ncx2.cdf(eps * eps / v, order, distance * distance / v)
    return out


def subspace_occupation(distance, eps, sigma, order, t, dt=None, t0=0.0):
    """Exact ``E L(t)`` over ``[t0, t]`` of the eps-tube of one codimension-r subspace at distance d.

    ``int_{t0}^t F_{chi'^2_r}(eps^2/(sigma^2 s); d^2/(sigma^2 s)) ds``; with ``dt`` the left
    Riemann sum on the grid that a simulated path estimates without bias. As t -> infinity it
    tends to :func:`subspace_occupation_infinite` (r >= 3), the tail beyond t being
    ``omega_r eps^r (2 pi sigma^2)^{-r/2} t^{1-r/2} / (r/2 - 1)`` to leading order.
    """
    from scipy import integrate

    if dt is not None:
        s = np.arange(int(round(t0 / dt)), int(round(t / dt))) * dt
        return float(dt * np.sum(subspace_probability(distance, eps, sigma, order, s)))
    f = lambda v: float(subspace_probability(distance, eps, sigma, order, math.exp(v))[0]) * math.exp(v)
    lo = math.log(t0) if t0 > 0 else math.log(t * 1e-14)
    head = t * 1e-14 if (t0 == 0 and distance <= eps) else 0.0
    peak = math.log(min(max((distance ** 2 + eps ** 2) / sigma ** 2, math.exp(lo)), t))
    pts = [peak] if lo < peak < math.log(t) else None
    return head + integrate.quad(f, lo, math.log(t), points=pts, limit=400, epsabs=0, epsrel=1e-10)[0]


def subspace_occupation_tail(distance, eps, sigma, order, t, n_terms=3):
    """Large-t expansion of ``int_t^inf P(|d e_1 + sigma B_s^(r)| <= eps) ds`` (r >= 3).

    Independent of :func:`subspace_occupation_infinite` (no Green function): the Gaussian
    density of ``B_s`` over the eps-ball, expanded in ``1/s``,
    ``P = omega_r eps^r (2 pi sigma^2 s)^{-r/2} sum_j (-1)^j E|y - d e_1|^{2j} / (j! (2 sigma^2 s)^j)``
    (y uniform in the ball), integrated term by term:
    ``sum_j (-1)^j m_j / (j! (2 sigma^2)^j) omega_r eps^r (2 pi sigma^2)^{-r/2} t^{1-r/2-j} / (r/2+j-1)``
    with ``m_0 = 1``, ``m_1 = r eps^2/(r+2) + d^2`` and
    ``m_2 = r eps^4/(r+4) + d^4 + 2 d^2 r eps^2/(r+2) + 4 d^2 eps^2/(r+2)``. The terms alternate
    and decrease once ``t >> (eps^2 + d^2)/sigma^2``, so the error is below the first term left out.

    Parameters
    ----------
    distance, eps, sigma : float
    order : int
        Codimension r >= 3 (the integral diverges for r <= 2).
    t : float
        Start of the tail.
    n_terms : int
        1 to 3 terms of the expansion.

    Returns
    -------
    float

    Examples
    --------
    >>> round(subspace_occupation_tail(0.1, 0.2, 1.0, 3, 4.0), 6)
    0.002124
    """
    r, d, e = order, float(distance), float(eps)
    if r < 3:
        return math.inf
    omega_r = math.pi ** (r / 2) / math.gamma(r / 2 + 1)
    lead = omega_r * e ** r * (2 * math.pi * sigma ** 2) ** (-r / 2)
    m = (1.0, r * e * e / (r + 2) + d * d,
         r * e ** 4 / (r + 4) + d ** 4 + 2 * d * d * r * e * e / (r + 2) + 4 * d * d * e * e / (r + 2))
    total = 0.0
    for j in range(int(n_terms)):
        total += ((-1) ** j * m[j] / (math.factorial(j) * (2 * sigma ** 2) ** j)
                  * lead * t ** (1 - r / 2 - j) / (r / 2 + j - 1))
    return total
