"""The rules' measured power (validation.power) and the planted-error helper (planted.py).

Every rule form (two-sided, asymmetric band, the two bounds, a binomial statistic) gets an
error of exactly its stated power planted on each side, through the statistic's own draw, and
fails in >= 95% of fresh draws; the simulated power of a plain normal row equals the analytic
resolution ``band + (Z_VERDICT + Z_POWER) SE`` within its simulation error.
"""

import math

import numpy as np
import pytest
from scipy import stats

from discosim.validation.power import N_DRAWS, TARGET, row_power, side_power, with_power
from discosim.validation.rules import Z_POWER, Z_VERDICT, accepts, at_least, at_most, close_to
from planted import (assert_builder_fails, assert_planted_fails, binomial_draw, normal_draw,
                     planted_failures)


def _quantile_se(n=N_DRAWS, q=TARGET):
    """SE (in units of SE of the statistic) of the 95% detection point found from n draws: the
    binomial SE of the fraction divided by the normal density there."""
    return math.sqrt(q * (1 - q) / n) / stats.norm.pdf(stats.norm.ppf(q))


@pytest.mark.parametrize("band", [0.0, 0.02])
@pytest.mark.parametrize("relative", [True, False])
def test_simulated_power_of_a_normal_row_is_the_analytic_resolution(band, relative):
    p, se = 2.0, 0.01
    kw = {"band": band, "band_reason": "a next-order term, 0.02"} if band else {}
    row = close_to("c", "§5", "q", p, p, se, relative=relative, **kw)
    lo, hi, how = row_power(row, seed=7)
    assert how == "normal model"
    analytic = row.resolution
    assert analytic == pytest.approx(((band + (Z_VERDICT + Z_POWER) * se) / (p if relative else 1)))
    tol = 4 * _quantile_se() * se / (p if relative else 1) + 2e-3 * analytic  # MC + bisection
    assert abs(lo - analytic) <= tol and abs(hi - analytic) <= tol, (lo, hi, analytic, tol)


def test_power_is_deterministic_and_seeded():
    row = close_to("c", "§5", "q", 1.0, 1.0, 0.01)
    assert row_power(row, seed=3) == row_power(row, seed=3)
    assert row_power(row, seed=3) != row_power(row, seed=4)
    a = with_power((row, row), 3)
    assert a[0].power_high != a[1].power_high  # rows of a claim draw from their own streams


def test_asymmetric_band_is_applied_on_its_own_side_only():
    se = 0.01
    row = close_to("c", "§5", "q", 1.0, 1.0, se, band_low=0.0, band_high=0.03,
                   band_reason="a positive eps^2 term, 3%")
    assert row.band == 0.03 and row.resolution == pytest.approx(0.03 + (Z_VERDICT + Z_POWER) * se)
    assert accepts(row, np.array([1.0 + 4 * se + 0.029, 1.0 - 4 * se + 1e-9])).all()
    assert not accepts(row, np.array([1.0 - 4 * se - 0.001])).any()
    lo, hi, _ = row_power(row, seed=1)
    assert hi == pytest.approx(0.03 + (Z_VERDICT + Z_POWER) * se, abs=4 * _quantile_se() * se + 1e-4)
    assert lo == pytest.approx((Z_VERDICT + Z_POWER) * se, abs=4 * _quantile_se() * se + 1e-4)
    with pytest.raises(Exception):
        close_to("c", "§5", "q", 1.0, 1.0, se, band=0.01, band_high=0.01)
    with pytest.raises(AssertionError):  # a wide one-sided band still needs its reason
        close_to("c", "§5", "q", 1.0, 1.0, se, band_high=0.05)


def test_accepts_reproduces_every_builder_verdict():
    rng = np.random.default_rng(5)
    for m in 1.0 + 0.08 * rng.standard_normal(200):
        for row in (close_to("c", "§5", "q", 1.0, m, 0.01),
                    close_to("c", "§5", "q", 1.0, m, 0.01, band=0.01, band_reason="x"),
                    close_to("c", "§5", "q", 1.0, m, 0.01, band_low=0.0, band_high=0.02,
                             band_reason="x"),
                    at_most("c", "§6", "q", 1.0, m, 0.01), at_least("c", "§6", "q", 1.0, m, 0.01)):
            assert bool(accepts(row, np.array([row.measured]))[0]) == row.passed


def test_bounds_have_no_power_on_their_far_side():
    lo, hi, how = row_power(at_most("c", "§6", "q", 1.0, 1.0, 0.01))
    assert lo == math.inf and math.isfinite(hi) and "one-sided" in how
    lo, hi, how = row_power(at_least("c", "§6", "q", 1.0, 1.0, 0.01))
    assert hi == math.inf and math.isfinite(lo)


def test_a_relative_row_whose_truth_cannot_reach_detection_says_inf():
    # SE as large as the prediction: nothing down to a truth of 0 is detected
    row = close_to("c", "§5", "q", 1.0, 1.0, 1.0)
    assert side_power(row, -1) == math.inf


# ------------------------------------------------------------------ the planted helper
RULES = {
    "two-sided": lambda d: close_to("c", "§5", "q", 0.3, 0.3, 0.002, draw=d),
    "banded": lambda d: close_to("c", "§5", "q", 0.3, 0.3, 0.002, band=0.01, band_reason="x",
                                 draw=d),
    "asymmetric": lambda d: close_to("c", "§5", "q", 0.3, 0.3, 0.002, band_low=0.0,
                                     band_high=0.01, band_reason="x", draw=d),
    "at_most": lambda d: at_most("c", "§6", "q", 0.3, 0.3, 0.002, draw=d),
    "at_least": lambda d: at_least("c", "§6", "q", 0.3, 0.3, 0.002, draw=d),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_fails_at_its_stated_power_on_each_side(rule):
    draw = normal_draw(0.3, 0.002)
    row = with_power((RULES[rule](draw),), seed=11)[0]
    checked = assert_planted_fails(row)
    assert set(checked) == {"at_most": {"high"}, "at_least": {"low"}}.get(rule, {"low", "high"})


def test_a_binomial_row_fails_at_its_simulated_power():
    n, p = 50_000, 0.3
    draw = binomial_draw(n, p)
    row = close_to("c", "§5", "q", p, p, math.sqrt(p * (1 - p) / n), draw=draw)
    row = with_power((row,), seed=2)[0]
    assert row.power_method.startswith("simulated")
    assert assert_planted_fails(row).keys() == {"low", "high"}
    # the binomial is close to normal at this size: both sides near the analytic resolution
    # (its SE changes by ~1% across the deviation; the quantile's MC error is ~0.6%)
    for x in (row.power_low, row.power_high):
        assert x == pytest.approx(row.resolution, rel=0.02)


def test_the_helper_catches_a_rule_weaker_than_stated():
    # a row that claims the power of SE 0.01 while its statistic scatters with SE 0.013
    row = with_power((close_to("c", "§5", "q", 1.0, 1.0, 0.01),), seed=0)[0]
    with pytest.raises(AssertionError, match="stated power is not met"):
        assert_planted_fails(row, draw=normal_draw(1.0, 0.013))
    # and 1.1x the stated power on a correct statistic passes, 0.9x does not reach 95%
    d = normal_draw(1.0, 0.01)
    assert planted_failures(row, 0.9 * row.power_high, draw=d) < 0.93 * 4000
    assert_planted_fails(row, draw=d, at={"low": 1.1 * row.power_low, "high": 1.1 * row.power_high})


def test_asking_for_a_side_without_power_fails():
    row = with_power((at_most("c", "§6", "q", 1.0, 1.0, 0.01),), seed=0)[0]
    with pytest.raises(AssertionError, match="no power is stated"):
        assert_planted_fails(row, sides=["low"])


def test_a_builder_with_the_error_in_its_formula_fails_at_the_stated_power():
    # a normal statistic (the row's SE) judged against a formula off by the factor (1 - delta):
    # the truth p lies delta * p from the planted prediction. The builder is the rule itself
    # (close_to), called once per draw, so its whole verdict is what is counted
    p, se = 0.09, 0.0006
    row = with_power((close_to("c", "§5", "q", p, p, se),), seed=4)[0]

    def build(rng, delta):
        return close_to("c", "§5", "q", p * (1 - delta), p + se * rng.standard_normal(), se)

    got = assert_builder_fails(build, {"low": row.power_low, "high": row.power_high})
    assert set(got) == {"low", "high"}
    # half the stated power is not detected: the check can fail
    with pytest.raises(AssertionError, match="stated power is not met"):
        assert_builder_fails(build, {"high": 0.5 * row.power_high}, n=500)


def test_a_builder_through_the_estimator_fails_at_the_binomial_rows_power():
    # the estimator's truth moved to p (1 + delta): n Bernoulli points, the proportion judged
    n, p = 200_000, 0.09
    se = math.sqrt(p * (1 - p) / n)
    row = with_power((close_to("c", "§5", "q", p, p, se, draw=binomial_draw(n, p)),), seed=4)[0]

    def build(rng, delta):
        return close_to("c", "§5", "q", p, rng.binomial(n, p * (1 + delta)) / n, se)

    assert set(assert_builder_fails(build, {"low": row.power_low, "high": row.power_high})) == \
        {"low", "high"}


def test_a_draw_of_the_wrong_shape_is_an_error_not_a_missing_power():
    row = close_to("c", "§5", "q", 0.3, 0.3, 0.002, draw=lambda rng, d, size: np.zeros(3))
    with pytest.raises(TypeError, match="shape"):
        row_power(row)


def test_a_draw_that_refuses_the_truth_leaves_that_side_undetected():
    # a proportion near 1: no truth above 1 exists, and +0.5% is not detected at this size
    row = close_to("c", "§5", "q", 0.995, 0.995, 0.004, draw=binomial_draw(300, 0.995))
    lo, hi, _ = row_power(row)
    assert hi == math.inf and 0 < lo < 1
