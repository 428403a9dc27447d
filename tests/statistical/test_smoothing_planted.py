"""Planted errors at exactly the stated resolution for the smooth_overhead rows (issue 23): the
leading order's fixed-form limit and the remainder exponent, each through the row's own
estimator on cheap draws of its statistic (nested overhead counts), failing in >= 95% of draws
on both sides."""

import math

import numpy as np

from discosim.validation import smoothing as cs
from discosim.validation.rules import Z_VERDICT

RNG_SEED = 20260623
N_DRAWS = 400
POWER_FLOOR = 0.95 - 3 * math.sqrt(0.95 * 0.05 / N_DRAWS)
# the claim's router at 3.2e9 samples: remainder c2 eta^2 exp(kappa eta + lambda eta^2)
# (s = 2 + d turns it about PIVOT, where the fit's log c2 and s are uncorrelated)
C1, C2, KAPPA, LAMBDA, PIVOT = 18.5, 45.0, -2.05, -14.0, 0.0082
ETAS = np.geomspace(0.002, 0.08, 14)  # the claim's grid
N_CPU = 32_000_000  # the claim's samples (full CPU run)


def _overhead(rng, c1=C1, n=N_CPU, p=2.0, etas=ETAS):
    """Measured E N_eta on one sample set (nested counts: the noise adds up over eta)."""
    rem = C2 * PIVOT ** 2 * (etas / PIVOT) ** p * np.exp(KAPPA * etas + LAMBDA * etas ** 2)
    mean = c1 * etas + rem
    var = mean / n
    noise = np.cumsum(np.sqrt(np.diff(var, prepend=0.0)) * rng.standard_normal(etas.size))
    return mean + noise, np.sqrt(var)


def _rate(make_row, n_draws=N_DRAWS):
    rng = np.random.default_rng(RNG_SEED)
    return float(np.mean([not make_row(rng).passed for _ in range(n_draws)]))


def test_leading_order_limit_off_by_its_resolution_fails_95_percent():
    """The true E N_eta / eta tends to c1 (1 +- resolution) while c1 is predicted: the claim's
    rule, on the claim's grid and samples, fails in >= 95% of draws; at c1 it passes."""
    pred = C1 * ETAS
    row = cs.leading_order_row(ETAS, *_overhead(np.random.default_rng(1)), pred)
    assert row.passed and row.resolution <= 0.03 and row.band == 0.0
    assert _rate(lambda rng: cs.leading_order_row(ETAS, *_overhead(rng), pred), 100) <= 0.03
    for f in (1 - row.resolution, 1 + row.resolution):
        assert _rate(lambda rng: cs.leading_order_row(ETAS, *_overhead(rng, c1=f * C1), pred)) >= POWER_FLOOR, f


def test_leading_order_draw_matches_the_estimator_spread():
    pred = C1 * ETAS
    row = cs.leading_order_row(ETAS, *_overhead(np.random.default_rng(2)), pred)
    m = row.draw(np.random.default_rng(3), 0.0, 400)
    # sd of 400 draws is known to 1/sqrt(798) = 3.5% relative: 4 of those
    assert abs(m.std(ddof=1) / row.stderr - 1) <= 4 / math.sqrt(798)
    assert abs(m.mean() - C1) <= 4 * row.stderr / math.sqrt(400)


def test_exponent_row_off_by_its_resolution_fails_95_percent():
    """The remainder exponent at the claim's CPU size, through its draw (the fitted remainder
    turned to s = 2 +- resolution, redrawn with the nested covariance and refitted by
    :func:`remainder_fit`, judged by the row's rule): >= 95% FAIL on both sides. The stated
    resolution there is about 0.16, above the 0.1 target."""
    pred = C1 * ETAS
    for seed in (4, 5):
        row = cs.judge_overhead(ETAS, *_overhead(np.random.default_rng(seed)), pred)[1]
        assert row.passed and row.resolution <= 0.17
        thr = Z_VERDICT * row.stderr + row.band
        for d in (-row.resolution, row.resolution):
            m = row.draw(np.random.default_rng(6), d, N_DRAWS)
            assert np.mean(np.abs(m - 2.0) > thr) >= POWER_FLOOR, d
        assert np.mean(np.abs(row.draw(np.random.default_rng(7), 0.0, 100) - 2.0) > thr) <= 0.03


def test_exponent_judge_on_fresh_data_detects_a_fifth():
    """The whole judge (its SE and eta^3 band re-estimated on each sample set) at the CPU size:
    s = 2 -+ 0.2 fails in >= 95% of sample sets. At -resolution it fails in ~92% (the band's
    spread over sample sets), which the draw above does not see."""
    pred = C1 * ETAS
    for d in (-0.2, 0.2):
        assert _rate(lambda rng: cs.judge_overhead(ETAS, *_overhead(rng, p=2.0 + d), pred)[1],
                     200) >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / 200), d
