"""The conditioned bridge midpoint (``discosim._kernels.diffusion.bridge``) against independent computations.

- the midpoint gap of one facet given its crossing: its closed-form weights against quadrature of
  ``phi(y) Q(y)``, and the sampler's CDF against that quadrature (binomial SEs, 4.5 SE);
- the whole midpoint given a crossing: against the plain rejection sampler (propose from the
  bridge, accept with the crossing probability), vectorised NumPy, within 4.5 combined SEs.
"""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from discosim._kernels.diffusion import bridge
from discosim._kernels.diffusion import paths as kp

Z = 4.5


def _density(ga, gb, v):
    tau, ybar = math.sqrt(0.5 * v), 0.5 * (ga + gb)
    return lambda y: stats.norm.pdf(y, ybar, tau) * bridge.gap_crossing(y, ga, gb, v)


@pytest.mark.parametrize("ga,gb,v", [(0.3, 0.4, 0.1), (1.0, 1.5, 0.2), (0.05, 2.0, 0.5),
                                     (0.5, 0.02, 0.01), (0.4, -0.1, 0.1)])
def test_conditioned_gap_law_matches_quadrature(ga, gb, v):
    f = _density(ga, gb, v)
    tau, ybar = math.sqrt(0.5 * v), 0.5 * (ga + gb)
    lo, hi = ybar - 12 * tau, ybar + 12 * tau
    mass = integrate.quad(f, lo, 0.0)[0] + integrate.quad(f, 0.0, hi)[0]
    # the facet's crossing probability over the whole step, in closed form
    assert mass == pytest.approx(bridge.facet_weight(ga, gb, v), rel=1e-7)
    if gb > 0:
        w0, wa, wb = bridge.piece_weights(ga, gb, v)
        assert w0 == pytest.approx(integrate.quad(f, lo, 0.0)[0], rel=1e-7)
        # the envelope's weights: phi (A + B) on y > 0
        env = integrate.quad(lambda y: stats.norm.pdf(y, ybar, tau) * (
            math.exp(-2 * ga * y / v) + math.exp(-2 * gb * y / v)), 0.0, hi)[0]
        assert wa + wb == pytest.approx(env, rel=1e-7)
    n = 200_000
    rng = np.random.default_rng(3)
    ys = np.array([kp.conditioned_gap(rng, ga, gb, v) for _ in range(n)])
    for qy in np.quantile(ys, [0.05, 0.25, 0.5, 0.75, 0.95]):
        cdf = (integrate.quad(f, lo, min(qy, 0.0))[0]
               + (integrate.quad(f, 0.0, qy)[0] if qy > 0 else 0.0)) / mass
        emp = float(np.mean(ys <= qy))
        assert abs(emp - cdf) <= Z * math.sqrt(cdf * (1 - cdf) / n)


def test_truncated_normal_in_the_far_tail():
    rng = np.random.default_rng(4)
    mu, tau = -3.0, 0.5  # y > 0 is 6 sd out: Robert's exponential proposal
    ys = np.array([kp.tn_above(rng, mu, tau) for _ in range(100_000)])
    assert np.all(ys > 0)
    a = -mu / tau
    mean = mu + tau * stats.norm.pdf(a) / stats.norm.sf(a)
    assert abs(ys.mean() - mean) <= Z * ys.std() / math.sqrt(ys.size)


def _router_pairs():
    from discosim.model.router import Router

    rng = np.random.default_rng(7)
    router = Router(rng.standard_normal((4, 6)) / math.sqrt(6), 1)
    Wr, b = router.reduced_weights, router.bias
    z = np.linalg.lstsq(Wr, np.array([0.05, 0.0, 0.02, -0.5]), rcond=None)[0]
    s = Wr @ z
    order = np.argsort(-s)
    K, R = order[:1].astype(np.int64), order[1:].astype(np.int64)
    return router, Wr, b, K, R, z


def test_conditioned_midpoint_matches_rejection_sampling():
    """Two near facets and a far one, a step flagged with a small crossing probability."""
    router, Wr, b, K, R, z = _router_pairs()
    M = Wr.shape[0]
    sigma, h = 1.0, 2e-3
    z1 = z + 0.01 * np.random.default_rng(8).standard_normal(M)

    def gaps(Z):
        S = Z @ Wr.T + b
        return S[:, K[0]][:, None] - S[:, R]

    ga, gb = gaps(z[None])[0], gaps(z1[None])[0]
    assert np.all(ga > 0) and np.all(gb > 0)
    dn2 = np.array([np.sum((Wr[K[0]] - Wr[j]) ** 2) for j in R])
    var = sigma ** 2 * dn2 * 0.5 * h
    s_mid = sigma * math.sqrt(0.25 * h)
    n = 60_000
    # the fast sampler
    rng = np.random.default_rng(9)
    cw, d, zm, gm, s = np.empty(len(R)), np.empty(M), np.empty(M), np.empty(len(R)), np.empty(M)
    fast_g, fast_left = np.empty((n, len(R))), np.empty(n)
    for t in range(n):
        pl, qc = kp.conditioned_midpoint(rng, Wr, b, K, R, z, z1, ga, gb, var, s_mid, cw, d, zm, gm,
                                         s)
        fast_g[t], fast_left[t] = gm, pl / qc
    # plain rejection: bridge midpoints, kept with the crossing probability
    rng = np.random.default_rng(10)
    keep_g, keep_left = [], []
    while sum(len(k) for k in keep_g) < n:
        Zm = 0.5 * (z + z1) + s_mid * rng.standard_normal((400_000, M))
        G = gaps(Zm)
        pl = 1 - np.prod(np.where(G > 0, 1 - np.exp(-2 * ga * np.maximum(G, 0) / var), 0.0), axis=1)
        pr = 1 - np.prod(np.where(G > 0, 1 - np.exp(-2 * np.maximum(G, 0) * gb / var), 0.0), axis=1)
        qc = 1 - (1 - pl) * (1 - pr)
        acc = rng.random(len(G)) < qc
        keep_g.append(G[acc])
        keep_left.append(pl[acc] / qc[acc])
    slow_g, slow_left = np.concatenate(keep_g)[:n], np.concatenate(keep_left)[:n]
    for a, b_ in ((fast_g, slow_g), (fast_left[:, None], slow_left[:, None])):
        se = np.hypot(a.std(axis=0), b_.std(axis=0)) / math.sqrt(n)
        assert np.all(np.abs(a.mean(axis=0) - b_.mean(axis=0)) <= Z * se)
