"""The numba kernels of the audit (issue 22) against their NumPy twins, bit for bit."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import expit

import discosim._kernels.audit as K
from discosim.model.selection import FORMATS, Routing, round_to_format, sigmoid, ulp


def _hard_values(rng, n):
    """Logit-like values with the awkward cases: zeros, ties to even, format subnormals, big."""
    v = rng.standard_normal(n) * rng.choice([1e-7, 1e-5, 1e-2, 1.0, 30.0, 1e4], size=n)
    v[:8] = [0.0, -0.0, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, -(1.0 + 2.0 ** -8), 2.0 ** -130,
             -3 * 2.0 ** -140, 6.1e-5]
    return v


def test_numba_sigmoid_is_scipys_expit():
    """The fast path's sigmoid is 1 / (1 + exp(-x)) with the C library's exp: scipy's expit on
    this platform, value for value (the DeepSeek-V3 kernels' bit-identity rests on it)."""
    x = np.concatenate([np.random.default_rng(0).standard_normal(400_000) * s
                        for s in (0.3, 3.0, 40.0)])
    out = np.empty_like(x)

    @K.njit
    def run(x, out):
        for i in range(x.size):
            out[i] = K._expit(x[i])

    run(x, out)
    assert np.array_equal(out, expit(x))


@pytest.mark.parametrize("fmt", ["bf16", "fp16", "fp32"])
def test_round_inputs_and_ulp_bits_equal_numpy(fmt):
    f = FORMATS[fmt]
    v = _hard_values(np.random.default_rng(1), 200_000)
    if fmt == "fp16":
        v = v[np.abs(v) < 6e4]
    pre = v.reshape(-1, 1).copy()
    y = np.empty(pre.shape, dtype=np.float32)
    big = K.round_inputs(pre, f.precision, f.emin, y)
    want = round_to_format(pre, fmt)
    assert np.array_equal(y.astype(np.float64), want)
    assert big == np.max(np.abs(want))
    sigma = np.empty(v.size)
    Wq = np.array([[1.0], [0.0]])
    K.gap_rounding_sd(pre, Wq, np.zeros(v.size, np.int64), np.ones(v.size, np.int64),
                      f.precision, f.emin, K._POW2, sigma)
    assert np.array_equal(sigma, np.sqrt(ulp(v, fmt) ** 2 / 12))


def _deepseek(M, k, G, T, bias, seed):
    rng = np.random.default_rng(seed)
    c = None if not bias else rng.standard_normal(M) * 0.05
    layer = SimpleNamespace(k=k, routing="deepseek_v3", selection_bias=c, n_group=G,
                            topk_group=T)
    return Routing.of(layer).check(M)


@pytest.mark.parametrize("M,k,G,T,bias,scale", [
    (32, 4, 4, 2, True, 1.0), (32, 4, 4, 2, False, 3.0), (16, 3, None, None, True, 1.0),
    (16, 2, 4, 4, True, 0.5), (64, 8, 8, 4, True, 1.0), (8, 2, 8, 3, True, 1.0),
    (32, 4, 4, 2, True, 1e-4)])
def test_deepseek_fast_stats_equal_the_numpy_twin(M, k, G, T, bias, scale):
    """``logit_stats`` (numba for DeepSeek-V3) against ``logit_stats_numpy`` on the same logits:
    margins, tube counts and every flip sum bit for bit, for every format."""
    routing = _deepseek(M, k, G, T, bias, M + k)
    rng = np.random.default_rng(M * 7 + k)
    logits = rng.standard_normal((6000, M)) * scale
    logits[:3] = np.round(logits[:3], 1)  # coarse values: exact ties within rows
    eps = [1e-4, 1e-3, 1e-2]
    fmts = ("bf16", "fp16", "fp32")
    fast = K.logit_stats(np.random.default_rng(3), logits, routing, eps, fmts)
    slow = K.logit_stats_numpy(np.random.default_rng(3), logits, routing, eps, fmts)
    assert np.array_equal(fast["margin"], slow["margin"])
    assert np.array_equal(fast["below"], slow["below"])
    for fmt in fmts:
        assert np.array_equal(fast["flip"][fmt], slow["flip"][fmt]), fmt
    if scale >= 0.5:  # flips happen: the comparison is not vacuous
        assert slow["flip"]["bf16"][0] > 0 and slow["flip"]["bf16"][1] > 0


def test_deepseek_kernel_parts_equal_selection_module():
    """Pass 1's selection and margins equal ``deepseek_v3_parts`` row by row."""
    from discosim.model.selection import deepseek_v3_parts

    M, k, G, T = 64, 6, 8, 3
    routing = _deepseek(M, k, G, T, True, 5)
    logits = np.random.default_rng(4).standard_normal((3000, M))
    N = logits.shape[0]
    margin, em, gg, maxabs = (np.empty(N) for _ in range(4))
    ch = np.empty(N, dtype=bool)
    lk, fd = np.empty(N, np.int64), np.empty(N, np.int64)
    top = np.empty((N, k + 1), np.int64)
    bound, lower = np.empty((N, 2)), np.empty((N, 2))
    logits[0, :3] = [40.0, -40.0, 0.0]  # sigma(-l) below 1 - sigma(l)'s rounding; l = 0
    parts = deepseek_v3_parts(logits, k, routing.selection_bias, G, T)
    K.deepseek_rows(logits, logits.view(np.int64), routing.selection_bias, k, G, T,
                    np.array([8, 11]), np.array([-126, -14]), K._POW2, margin, em, gg, ch, lk,
                    fd, top, maxabs, bound, lower)
    assert np.array_equal(margin, parts["margin"])
    assert np.array_equal(em, parts["expert_margin"])
    assert np.array_equal(gg, parts["group_gap"])
    assert np.array_equal(ch, parts["group_changes"])
    mask = np.zeros((N, M), dtype=bool)
    np.put_along_axis(mask, top[:, :k], True, axis=1)
    assert np.array_equal(mask, parts["mask"])
    from discosim.model.selection import sigmoid_slope

    for f, fmt in enumerate(("bf16", "fp16")):
        widest = np.max(sigmoid_slope(logits) * ulp(logits, fmt), axis=1)
        assert np.all(lower[:, f] <= widest) and np.all(widest <= bound[:, f])
        assert np.all(bound[:, f] - lower[:, f] <= 1e-9 * widest)  # tight: few rows left open
    # the bounds hold elementwise down to tiny slopes (|l| up to 700)
    x = np.concatenate([np.linspace(-700, 700, 200_001), np.random.default_rng(0).standard_normal(10**5)])
    sg, sn = sigmoid(x), sigmoid(-x)
    rest = 1.0 - sg
    assert np.all(sg * (rest + K._ABS_SLACK) * (1 + K._REL_SLACK) >= sg * sn)
    assert np.all(sg * np.maximum(rest - K._ABS_SLACK, 0) * (1 - K._REL_SLACK) <= sg * sn)


@pytest.mark.parametrize("distribution", ["sphere", "ball"])
def test_sphere_draw_in_place_equals_the_formula(distribution):
    """``_sphere_or_ball`` scales in place: the same ``radius * g / den`` bit for bit."""
    from discosim.audit.estimators import _sphere_or_ball

    got = _sphere_or_ball(np.random.default_rng(2), 3000, 16, 300, math.sqrt(300), distribution)
    rng = np.random.default_rng(2)
    g = rng.standard_normal((3000, 16))
    c = rng.chisquare(300 - 16 + (2 if distribution == "ball" else 0), size=3000)
    assert np.array_equal(got, math.sqrt(300) * g / np.sqrt(np.sum(g * g, axis=1) + c)[:, None])


@pytest.mark.parametrize("kind, groups", [("deepseek_v3", (None, None)), ("deepseek_v2", (4, 2)),
                                          ("deepseek_v3", (4, 2))])
def test_softmax_curved_routing_counts_every_flip(kind, groups):
    # ERNIE-4.5 (softmax + selection bias) routes as kind deepseek_v3 with softmax scores: the
    # numba path and the sigmoid-width screen assume sigmoid scores (they counted 45 of 85 flips
    # on this draw); the count must be the brute-force one on every row, with no prediction
    from discosim.model.selection import Routing, round_to_format
    from discosim._kernels.audit import logit_stats

    rng = np.random.default_rng(3)
    bias = 0.05 * rng.standard_normal(16)
    routing = Routing(kind, 4, bias, *groups, score_func="softmax").check(16)
    logits = 2 * rng.standard_normal((20000, 16))
    stats = logit_stats(np.random.default_rng(5), logits, routing, (0.01,), ("bf16",))
    brute = np.any(routing.select(round_to_format(logits, "bf16")) != routing.select(logits),
                   axis=1)
    assert stats["flip"]["bf16"][0] == brute.sum() > 0
    assert np.isnan(stats["flip"]["bf16"][1])  # no prediction for softmax scores


def test_a_prediction_outside_its_regime_carries_a_note():
    # issue 23 item 5: a negative predicted flip rate (the window estimate at few inputs) or a
    # window correction beyond the prediction's error is printed with a note, never bare
    from discosim.audit.estimators import FlipAudit

    def audit(pred, window, pred_se=1e-4):
        return FlipAudit("bf16", 0.001, 1e-4, 1, 1000, pred, pred_se, 1e-4, window, "m", True,
                         (1000, 1.0, 1.0, 1.0, 1.0))

    assert audit(0.002, 0.0).prediction_note is None
    assert "negative" in audit(-0.0005, 0.0).prediction_note
    assert "window correction" in audit(0.002, 5e-4).prediction_note
    assert audit(float("nan"), 0.0).prediction_note is None
    assert audit(-0.0005, 0.0).to_dict()["prediction_note"].startswith("negative")
