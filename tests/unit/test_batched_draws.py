"""The batched power draws give every draw the number its single fit gives, bit for bit.

The power of a fitted row re-simulates its statistic 10^4 times per detection rate; the
exponent rows of smooth_overhead, hit_order and occupation refit in stacked batches (or, for
lstsq, with the elementwise work batched) instead of one fit call per draw. The rows' power
fields must not move, so each batch is compared here with the single fit, draw by draw, with
exact equality (NaN where the single fit has none to give).
"""

import math

import numpy as np

from discosim._core.fitting import linear_fit
from discosim.validation.diffusion import (HIT_DELTAS, judge_overlap_exponent, nested_slope,
                                           nested_slopes)
from discosim.validation.rules import Z_VERDICT
from discosim.validation.smoothing import (_leading_draws, _remainder_slopes, leading_order_fit,
                                           remainder_fit)


def _overhead_data(n=8_000_000, seed=0):
    """A remainder ``c2 eta^2 e^{kappa eta}`` under nested-count noise: some etas below it."""
    rng = np.random.default_rng(seed)
    etas = np.geomspace(0.002, 0.08, 14)
    mean = 18.0 * etas + 40.0 * etas ** 2 * np.exp(-3.0 * etas)
    se = np.sqrt(mean / n)
    v = se ** 2
    cov = np.minimum.outer(v, v)
    return rng, etas, mean, se, cov


def test_remainder_slopes_equal_remainder_fit_per_draw():
    rng, etas, mean, _, cov = _overhead_data()
    rem = mean - 18.0 * etas
    chol = np.linalg.cholesky(cov)
    rems = rem * np.exp(rng.normal(0, 0.3, (400, 1)) * np.log(etas / 0.02)) \
        + (chol @ rng.standard_normal((400, etas.size)).T).T
    keep = rems > Z_VERDICT * np.sqrt(np.diag(cov))
    got = _remainder_slopes(etas, rems, keep, cov)
    want = np.array([remainder_fit(etas[k], r[k], cov[np.ix_(k, k)])["s"] if k.sum() > 4 else np.nan
                     for r, k in zip(rems, keep)])
    assert len({tuple(k) for k in keep}) > 3  # several masks, so several batches
    assert np.isfinite(want).sum() > 300
    assert np.array_equal(got, want, equal_nan=True)


def test_leading_draws_equal_leading_order_fit_per_draw():
    _, etas, mean, se, _ = _overhead_data()
    base, rel = mean * 1.01, 0.004 * 18.0
    got = _leading_draws(etas, se, base, rel, np.random.default_rng(3), 500)
    rng = np.random.default_rng(3)
    want = np.empty(500)
    for i in range(want.size):  # the former loop: n normals, then one, per draw
        noise = np.cumsum(np.sqrt(np.diff(se ** 2, prepend=0.0)) * rng.standard_normal(etas.size))
        want[i] = leading_order_fit(etas, base + noise, se)[0] + rel * rng.standard_normal()
    assert np.array_equal(got, want)


def test_nested_slopes_equal_nested_slope_per_row():
    rng = np.random.default_rng(5)
    for n, nu in ((400, 1.5), (20_000, 1.13)):
        q = np.minimum(HIT_DELTAS ** nu, 0.9)
        probs = np.diff(np.concatenate([[0.0], q, [1.0]]))
        counts = np.cumsum(rng.multinomial(n, probs, size=2000)[:, :-1], axis=1)
        got = nested_slopes(HIT_DELTAS, counts, n)
        want = np.array([nested_slope(HIT_DELTAS, c, n)[0] for c in counts])
        assert np.array_equal(got, want, equal_nan=True)
        if n == 400:
            assert np.isnan(want).any()  # rows with an empty count: NaN in both


def test_overlap_exponent_draw_equals_linear_fit_per_draw():
    us = np.geomspace(0.01, 0.2, 8)
    frac = 0.3 * us * (1 + 0.5 * us) * (1 + 0.03 * np.random.default_rng(1).standard_normal(us.size))
    se = 0.03 * frac
    row = judge_overlap_exponent("q", us, frac, se)
    X = np.vstack([np.ones_like(us), np.log(us), us]).T
    fit = linear_fit(X, np.log(frac), row_scale=frac / se)
    base = np.exp(fit.coef[0] + fit.coef[2] * us) * us
    for d in (-0.3, 0.2):
        got = row.draw(np.random.default_rng(2), d, 300)
        rng = np.random.default_rng(2)
        f = base * us ** d
        r = se / frac * np.sqrt(base / f)
        want = np.empty(300)
        for i in range(want.size):  # the former loop: one linear_fit per draw
            y = f * (1 + r * rng.standard_normal(us.size))
            want[i] = linear_fit(X, np.log(np.abs(y)), row_scale=np.abs(y) / (r * f)).slope
        assert np.array_equal(got, want)
        assert math.isfinite(float(np.mean(got)))
