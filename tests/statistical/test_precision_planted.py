"""Planted errors for ``routing_precision`` (THEORY §9): the claim's own judge
(:func:`discosim.validation.precision.judge_flip_rate`) on repeated draws of its statistic.

The rows come from real (small) measurements through :func:`measure_flips`; each row's ``draw``
re-simulates its measured statistic (a calibrated bootstrap of the per-direction differences).
A prediction off by exactly the row's stated resolution must fail in >= 95% of the draws (up to
the Monte Carlo error of the frequency itself), and the right prediction must pass.
"""

import math

import numpy as np
import pytest

from discosim.model.router import Router
from discosim.validation import precision as cp
from discosim.validation.rules import close_to

DRAWS = 4000
# the detection frequency at exactly the resolution is Phi(1.645) = 0.95 for a normal statistic;
# its estimate from DRAWS draws has SE sqrt(0.95 * 0.05 / DRAWS)
FLOOR = 0.95 - 3 * math.sqrt(0.95 * 0.05 / DRAWS)


@pytest.fixture(scope="module")
def rows():
    out = []
    for M, k, n in ((8, 2, 120_000), (64, 8, 20_000)):
        router = Router.gaussian(M, cp.DIM, k, seed=M)
        res = cp.measure_flips(router, n, np.random.SeedSequence([23, M]))
        for fmt, r in res.items():
            out.append(cp.judge_flip_rate(f"{fmt} M={M}", r["measured"], r["predicted"],
                                          r["diff_se"], r["d"], r["n"]))
    return out


def _fail_rate(row, predicted, delta=0.0, seed=0):
    draws = row.draw(np.random.default_rng(seed), delta, DRAWS)
    return np.mean([not close_to("p", "§9", "q", predicted, m, row.stderr).passed for m in draws])


def test_rows_pass_and_resolve(rows):
    for row in rows:
        assert row.passed, (row.quantity, row.measured, row.predicted, row.stderr)
        assert 0 < row.resolution < 0.2


@pytest.mark.parametrize("side", [-1, 1])
def test_prediction_off_by_the_resolution_fails(rows, side):
    for i, row in enumerate(rows):
        planted = row.predicted * (1 + side * row.resolution)
        assert _fail_rate(row, planted, seed=i) >= FLOOR, row.quantity


def test_right_prediction_passes_the_draws(rows):
    for i, row in enumerate(rows):
        assert _fail_rate(row, row.predicted, seed=100 + i) <= 0.01, row.quantity


def test_truth_off_by_the_resolution_is_detected(rows):
    # the planted error on the other side of the row: the truth moves, the prediction stays
    for i, row in enumerate(rows):
        for side in (-1, 1):
            assert _fail_rate(row, row.predicted, side * row.resolution, seed=200 + i) >= FLOOR


def test_draw_is_calibrated_to_the_rows_standard_error(rows):
    for i, row in enumerate(rows):
        draws = row.draw(np.random.default_rng(300 + i), 0.0, DRAWS)
        assert abs(np.mean(draws) - row.predicted) <= 5 * row.stderr / math.sqrt(DRAWS)
        # sd of a sample sd of DRAWS normal draws: sd / sqrt(2 DRAWS)
        assert abs(np.std(draws) / row.stderr - 1) <= 5 / math.sqrt(2 * DRAWS)


def test_independent_rounding_constant_fails(rows):
    # THEORY §9: independent rounding errors would give 1/6 instead of 1/4 (a factor 2/3)
    for row in rows:
        assert not close_to("p", "§9", "q", row.predicted * (2 / 3), row.measured, row.stderr).passed
