"""The smoothing gate (THEORY §7): gate vs a slow reference, continuity, overhead, bad input."""

import math

import numpy as np
import pytest

from discosim import InputError, Router
from discosim.model.gates import smooth_gate, topk_gate
from discosim.smoothing.estimators import SMoE, calibrate_eta, estimate_overhead, measure_continuity
from discosim.theory import smoothing as ts
from discosim.theory.alpha import alpha_orthants


def slow_smooth_gate(s, k, eta, a_s, b_s):
    """Plain loops and math, straight from THEORY §7."""
    gk = sorted(s, reverse=True)[k - 1]
    logits = []
    for si in s:
        u = (si - gk + eta) / eta
        if u <= 0:
            logits.append(None)
        elif u >= 1:
            logits.append(si)
        else:
            z = b_s * math.log(1 - u) - a_s * math.log(u)
            softplus = max(z, 0) + math.log1p(math.exp(-abs(z)))
            logits.append(si - softplus)
    m = max(l for l in logits if l is not None)
    e = [math.exp(l - m) if l is not None else 0.0 for l in logits]
    return [x / sum(e) for x in e]


@pytest.mark.parametrize("a_s,b_s", [(1.0, 50.0), (0.5, 50.0), (2.0, 5.0)])
def test_smooth_gate_matches_slow_reference(a_s, b_s):
    rng = np.random.default_rng(0)
    S = rng.standard_normal((300, 7)) * 0.3
    fast = smooth_gate(S, 3, 0.2, a_s, b_s)
    slow = np.array([slow_smooth_gate(list(s), 3, 0.2, a_s, b_s) for s in S])
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-15)
    assert np.all(np.isfinite(fast))


def test_topk_gate_is_softmax_over_topk():
    s = np.array([[0.3, -1.0, 2.0, 0.1]])
    p = topk_gate(s, 2)
    e = np.exp([0.3, 2.0])
    np.testing.assert_allclose(p[0], [e[0] / e.sum(), 0, e[1] / e.sum(), 0])


def test_gates_never_nan_on_extreme_scores():
    s = np.array([[1e300, -1e300, 0.0, 5.0], [0.0, 0.0, 0.0, 0.0]])
    for p in (smooth_gate(s, 2, 1e-12), topk_gate(s, 2)):
        assert np.all(np.isfinite(p)) and np.allclose(p.sum(axis=1), 1)


def test_band_factor_closed_form_and_slope():
    u = np.linspace(0.001, 0.999, 999)
    np.testing.assert_allclose(ts.band_factor(u), u / (u + (1 - u) ** 50), rtol=1e-12)
    slope, where = ts.max_band_factor_slope()
    assert slope == pytest.approx(17.8, abs=0.05) and where == pytest.approx(0.054, abs=0.001)


def test_smoothed_map_has_no_jump_beyond_the_hoelder_bound():
    """Along random segments crossing Gamma the smoothed map is Hoelder-1 (Lipschitz): refining
    the grid 4x shrinks its largest step about 4x. Top-k keeps an O(1) step: a real jump."""
    router = Router.gaussian(6, 16, 2, seed=3)
    model = SMoE(router, "linear", 4, seed=1)
    eta = 0.1
    rng = np.random.default_rng(2)
    for _ in range(10):
        a, d = rng.standard_normal(16) * 0.2, rng.standard_normal(16)
        steps = {}
        for n in (2001, 8001):
            X = a + np.linspace(-1, 1, n)[:, None] * d
            steps[n] = {g: np.linalg.norm(np.diff(model(X, g, eta), axis=0), axis=1).max()
                        for g in ("smooth", "topk")}
        crossed = steps[8001]["topk"] > 1e-2
        # Lipschitz: the largest step scales with h, ratio 4 up to O(h); a jump keeps it near 1
        assert steps[2001]["smooth"] / steps[8001]["smooth"] >= 3.0
        if crossed:
            assert steps[2001]["topk"] / steps[8001]["topk"] < 1.5


def test_continuity_exponents():
    router = Router.gaussian(6, 24, 2, seed=5)
    model = SMoE(router, "mlp", 4, seed=2)
    c = measure_continuity(model, [1e-5, 3e-5, 1e-4], 0.05, n_points=40, seed=1)
    e, se = c.exponents["smooth"].slope, c.exponents["smooth"].slope_stderr
    assert abs(e - 1) <= 0.05 + 4 * se
    e, se = c.exponents["topk"].slope, c.exponents["topk"].slope_stderr
    assert abs(e) <= 0.05 + 4 * se
    c = measure_continuity(model, [1e-7, 1e-6, 1e-5], 0.05, a_s=0.5, n_points=40, seed=1,
                           where=("band_edge",))
    e, se = c.exponents["band_edge"].slope, c.exponents["band_edge"].slope_stderr
    assert abs(e - 0.5) <= 0.05 + 4 * se


def _c1_richardson(router, eta, n, seed, inputs="ball"):
    """c1 from E N at eta and 2 eta with the eta^2 term cancelled: (4 E(eta) - E(2 eta)) / (2 eta).

    Its standard error sqrt(16 se_1^2 + se_2^2) / (2 eta) is conservative: both means use the same
    samples and N_eta <= N_2eta, so their covariance is positive.
    """
    res = estimate_overhead(router, 1.0, [eta, 2 * eta], n_samples=n, seed=seed,
                            inputs=inputs)
    a, b = res.estimates
    return (4 * a.value - b.value) / (2 * eta), math.hypot(4 * a.stderr, b.stderr) / (2 * eta), res


def test_overhead_leading_order_uses_alpha_pairs():
    """c1 from B_1 / 2 equals the pair sum of THEORY §7 computed pair by pair (Genz), and the
    simulated overhead has that slope at eta -> 0."""
    from discosim.theory.alpha import genz_error_bound
    router = Router.gaussian(5, 10, 2, seed=4)
    pairs = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    alphas = {J: alpha_orthants(router.reduced_weights, 2, J, rng=np.random.default_rng(0)) for J in pairs}
    pair_sum = ts.overhead_pair_sum(router.gram, alphas)
    c1 = ts.overhead_coefficient(pair_sum, 10, 1.0)
    # both sides are Genz sums over the same pairs: each alpha is within genz_error_bound
    err = genz_error_bound(5, 2, 1) * sum(1 / math.sqrt(router.gram[i, i] + router.gram[j, j]
                                                        - 2 * router.gram[i, j]) for i, j in pairs)
    c1_err = 2 * ts.overhead_coefficient(err, 10, 1.0)
    c1_hat, se, res = _c1_richardson(router, 0.002, 1_000_000, seed=1)
    assert abs(res.coefficient - c1) <= c1_err
    assert abs(c1_hat - c1) <= 4 * se + c1_err


def test_overhead_gaussian_inputs():
    router = Router.gaussian(5, 10, 2, seed=4)
    c1_hat, se, res = _c1_richardson(router, 0.002, 1_000_000, seed=2, inputs="gaussian")
    assert abs(c1_hat - res.coefficient) <= 4 * se


def test_calibration_hits_target():
    """A fresh estimate at the calibrated eta hits the target within the two samples' errors:
    the calibration sample's own error at eta* is the check's sd scaled to its size."""
    router = Router.gaussian(6, 20, 2, seed=1)
    n_cal, n_check = 100_000, 200_000
    eta = calibrate_eta(router, 0.3, n_samples=n_cal, seed=3).eta
    check = estimate_overhead(router, 1.0, [eta], n_samples=n_check, seed=9).estimates[0]
    se_cal = check.stderr * math.sqrt(n_check / n_cal)
    assert abs(check.value - 0.3) <= 4 * math.hypot(check.stderr, se_cal) + 1.0 / n_cal


@pytest.mark.parametrize("kw,word", [(dict(eta=0), "eta"), (dict(eta=-1), "eta"), (dict(a_s=0), "a_s"),
                                     (dict(b_s=-2), "b_s")])
def test_bad_smoothing_input(kw, word):
    args = dict(eta=0.1, a_s=1.0, b_s=50.0)
    args.update(kw)
    with pytest.raises(InputError, match=word):
        smooth_gate(np.zeros((1, 4)), 2, **args)


