"""Closed forms of THEORY §6 and §7 used by the diffusion and smoothing claims, each against an
independent computation (another formula, numerical integration, or a simulation)."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from discosim import Router, cases
from discosim.theory import diffusion as td
from discosim.theory import smoothing as ts


@pytest.mark.parametrize("phi0", [0.3, math.pi / 4, 1.2])
def test_orthant_law_is_spitzers_quadrant(phi0):
    """A quadrant is the wedge of opening pi/2: Spitzer's series must equal the erf product."""
    r0 = 1.3
    t = np.array([0.05, 0.3, 1.0, 4.0, 30.0])
    d = [r0 * math.sin(phi0), r0 * math.cos(phi0)]
    np.testing.assert_allclose(td.orthant_survival(d, 1.0, t),
                               td.wedge_survival(r0, phi0, math.pi / 2, t), rtol=1e-9, atol=1e-12)


def test_orthant_router_has_orthonormal_facet_normals_and_product_law():
    router = cases.orthant_router(5, 9, lead=0.7)
    W = router.weights
    N = W[0] - W[1:]
    np.testing.assert_allclose(N @ N.T, np.eye(4), atol=1e-12)
    x0 = cases.orthant_start(router, [0.2, 0.5, 0.9, 1.4])  # s_0 - s_j = x_j: the distances
    d = td.facet_distances(router, x0).ravel()
    np.testing.assert_allclose(np.sort(d), [0.2, 0.5, 0.9, 1.4], atol=1e-12)
    # survival of a product law from simulated independent Levy times (exact samples)
    rng = np.random.default_rng(3)
    n = 200_000
    taus = (d[None, :] / (rng.standard_normal((n, d.size)))) ** 2  # Levy: tau_j = (d_j / Z)^2
    tau = taus.min(axis=1)
    for t in (0.05, 0.5, 3.0):
        p = td.orthant_survival(d, 1.0, t)[0]
        assert abs(np.mean(tau > t) - p) <= 4 * math.sqrt(p * (1 - p) / n)


def _local_time_closed_form(x, sigma, t):
    """int_0^t p_s(x) ds for the N(0, sigma^2 s) density: 2 sqrt(t) phi(a)/sigma - 2|x| Phibar(a)/sigma^2."""
    a = abs(x) / (sigma * math.sqrt(t))
    return 2 * math.sqrt(t) * stats.norm.pdf(a) / sigma - 2 * abs(x) * stats.norm.sf(a) / sigma ** 2


@pytest.mark.parametrize("d,eps,t", [(0.0, 0.2, 10.0), (0.1, 0.2, 3.0), (0.7, 0.05, 50.0)])
def test_slab_occupation_equals_integrated_local_time(d, eps, t):
    """Swap the order of integration: int_{-eps}^{eps} int_0^t p_s(y - d) ds dy."""
    val, _ = integrate.quad(lambda y: _local_time_closed_form(y - d, 1.3, t), -eps, eps,
                            points=[d] if abs(d) < eps else None, epsabs=0, epsrel=1e-10)
    assert td.slab_occupation(d, eps, 1.3, t) == pytest.approx(val, rel=1e-7)


def test_slab_occupation_ou_against_exact_simulation_and_bm_limit():
    theta, sigma, d, eps, dt, t = 0.8, 1.0, 0.15, 0.2, 0.02, 4.0
    rng = np.random.default_rng(11)
    n, steps = 20_000, int(round(t / dt))
    decay = math.exp(-theta * dt)
    noise = sigma * math.sqrt((1 - decay ** 2) / (2 * theta))
    y = np.zeros(n)  # displacement from x0, exact OU steps
    occ = np.zeros(n)
    for _ in range(steps):
        occ += dt * (np.abs(d + y) <= eps)
        y = decay * y + noise * rng.standard_normal(n)
    pred = td.slab_occupation(d, eps, sigma, t, theta=theta, dt=dt)
    assert abs(occ.mean() - pred) <= 4 * occ.std(ddof=1) / math.sqrt(n)
    # the Riemann sum converges to the integral, and OU -> BM as theta -> 0
    assert td.slab_occupation(d, eps, sigma, t, theta=theta, dt=1e-4) == pytest.approx(
        td.slab_occupation(d, eps, sigma, t, theta=theta), rel=1e-3)
    assert td.slab_occupation(d, eps, sigma, t, theta=1e-9) == pytest.approx(
        td.slab_occupation(d, eps, sigma, t), rel=1e-6)


def test_apex_occupation_growth_constants():
    eps, sigma = 0.2, 1.0
    # r = 1: the one-hyperplane integral at d = 0, and sqrt(t) growth with A_1 2 eps sqrt(2/pi)/sigma
    assert td.apex_occupation(0.7, 1, eps, sigma, 50.0) == pytest.approx(
        0.7 * td.slab_occupation(0.0, eps, sigma, 50.0), rel=1e-8)
    t1, t2 = 1e6, 4e6
    inc = td.apex_occupation(0.7, 1, eps, sigma, t2) - td.apex_occupation(0.7, 1, eps, sigma, t1)
    assert inc == pytest.approx(td.sqrt_growth_constant(0.7, eps, sigma) * (math.sqrt(t2) - math.sqrt(t1)), rel=1e-4)
    # r = 2: one decade late in time adds A_2 eps^2 ln10 / (2 sigma^2), to O(eps^2/(sigma^2 t))
    inc = td.apex_occupation(1.5, 2, eps, sigma, 1e5, t0=1e4)
    assert inc == pytest.approx(td.log_rate_per_decade(1.5, eps, sigma), rel=1e-5)
    # r = 3: converges to A_3 times the infinite-horizon subspace value at d = 0; tail ~ t^(-1/2)
    lim = 2.0 * td.subspace_occupation_infinite(0.0, eps, sigma, 3)
    v = td.apex_occupation(2.0, 3, eps, sigma, 1e8)
    tail = 2.0 * (4 * math.pi / 3) * eps ** 3 / (2 * math.pi * sigma ** 2) ** 1.5 * 2 / math.sqrt(1e8)
    assert v == pytest.approx(lim - tail, rel=1e-6)


@pytest.mark.parametrize("d,eps,r", [(0.5, 0.2, 3), (0.1, 0.2, 3), (0.3, 0.25, 4), (0.0, 0.2, 5)])
def test_subspace_infinite_horizon_against_integrated_ncx2(d, eps, r):
    """E L(inf) = int_0^inf P(|d e_1 + sigma B_s| <= eps) ds, the noncentral chi^2 cdf in log-time."""
    def g(v):
        s = math.exp(v)
        if d == 0:
            p = stats.chi2.cdf(eps ** 2 / s, r)
        else:
            p = stats.ncx2.cdf(eps ** 2 / s, r, d * d / s)
        return p * s
    val = integrate.quad(g, -40, 60, limit=800, epsabs=0, epsrel=1e-9)[0] + math.exp(-40) * (d <= eps)
    assert td.subspace_occupation_infinite(d, eps, 1.0, r) == pytest.approx(val, rel=1e-6)


@pytest.mark.parametrize("x0,y0", [(0.7, 0.4), (0.2, 1.1)])
def test_wedge_hit_profile_is_the_quadrants_image_formula(x0, y0):
    """Quadrant (theta = pi/2): Poisson kernel by images on each side, integrated numerically."""
    def side(a, b, delta):
        f = lambda xi: b / math.pi * (1 / ((xi - a) ** 2 + b ** 2) - 1 / ((xi + a) ** 2 + b ** 2))
        return integrate.quad(f, 0, delta, epsabs=0, epsrel=1e-11)[0]
    r0, phi0 = math.hypot(x0, y0), math.atan2(y0, x0)
    for delta in (1e-3, 0.05, 0.5, 3.0):
        exact = side(x0, y0, delta) + side(y0, x0, delta)
        assert td.wedge_hit_profile(r0, phi0, math.pi / 2, [delta])[0] == pytest.approx(exact, rel=1e-8)


def test_wedge_router_geometry_and_exponent():
    theta = 0.8 * math.pi
    router = cases.wedge_router(theta, 6)
    x0 = cases.ridge_start(router, 0, 1, 2, rho=0.3)
    r0, phi0, th = td.wedge_geometry(router, x0)
    assert th == pytest.approx(theta, rel=1e-12)
    assert r0 == pytest.approx(0.3, rel=1e-9) and phi0 == pytest.approx(theta / 2, rel=1e-9)
    assert td.hit_order_exponent(router, x0) == pytest.approx(1.25, rel=1e-12)


def test_ridge_start_on_an_orthonormal_router():
    router = Router.orthonormal(6, 10, 2, seed=5)
    x0 = cases.ridge_start(router, 0, 1, 2, rho=0.1)
    s = router.scores(x0)
    assert set(np.argsort(-s)[:2]) == {0, 3}  # expert 0 at rank k, 3 above, the rest below
    d = np.sort(td.facet_distances(router, x0).ravel())
    # the two ridge facets at rho sin(theta/2) with theta = 2 pi/3, every other facet far
    np.testing.assert_allclose(d[:2], 0.1 * math.sin(math.pi / 3), rtol=1e-9)
    assert d[2] > 5 * d[0]


def test_band_factor_derivative_and_sup_against_finite_differences():
    u = np.linspace(0.001, 0.999, 9999)
    for a_s, b_s in ((1.0, 50.0), (0.5, 50.0), (1.0, 0.5), (2.0, 3.0)):
        h = 1e-6
        fd = (ts.band_factor(u + h, a_s, b_s) - ts.band_factor(u - h, a_s, b_s)) / (2 * h)
        np.testing.assert_allclose(ts.band_factor_derivative(u, a_s, b_s), fd, rtol=1e-5, atol=1e-7)
    slope, where = ts.max_band_factor_slope()
    # independent: finite differences on a fine grid around the maximum
    g = np.linspace(0.03, 0.09, 60001)
    fd = np.diff(ts.band_factor(g)) / np.diff(g)
    assert slope == pytest.approx(fd.max(), rel=1e-6)
    assert where == pytest.approx(g[np.argmax(fd)], abs=2e-6)
    assert 17.7 < slope < 17.8  # THEORY §7 quotes about 17.8 at u about 0.054
    w = np.array([1.0, 0.0, 2.0])
    assert ts.lipschitz_constant(w, np.zeros(3), 0.05) == pytest.approx(slope * math.sqrt(5) / 0.05)


@pytest.mark.parametrize("d,eps,r", [(0.3, 0.2, 3), (0.1, 0.2, 3), (0.4, 0.3, 4)])
def test_subspace_occupation_finite_t_limit_and_riemann(d, eps, r):
    inf = td.subspace_occupation_infinite(d, eps, 1.0, r)
    t = 1e6
    omega = math.pi ** (r / 2) / math.gamma(r / 2 + 1)
    tail = omega * eps ** r * (2 * math.pi) ** (-r / 2) * t ** (1 - r / 2) / (r / 2 - 1)
    assert td.subspace_occupation(d, eps, 1.0, r, t) == pytest.approx(inf - tail, rel=1e-6)
    assert td.subspace_occupation(d, eps, 1.0, r, 4.0, dt=1e-4) == pytest.approx(
        td.subspace_occupation(d, eps, 1.0, r, 4.0), rel=2e-3)
    # the OU-free one-dimensional case is the slab integral
    assert float(td.subspace_probability(d, eps, 1.0, 1, [0.7])[0]) == pytest.approx(
        float(td.slab_probability(d, eps, 1.0, 0.7)), rel=1e-10)
