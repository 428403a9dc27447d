"""Volume estimators: statistical agreement with closed forms, reproducibility, bad input."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import reference as ref
from discosim import InputError, Router, estimate_volumes
from discosim.theory import volumes as tv
from discosim.volumes.estimators import estimate_slice_volume

Z = 4.0


def test_uniform_estimator_matches_full_d_naive_estimator():
    """Same estimator, two implementations: reduced numba kernel vs full-D numpy points."""
    router = Router.gaussian(5, 9, 2, seed=1)
    eps = [0.05, 0.2]
    n = 200_000
    fast = estimate_volumes(router, 1.0, eps, orders=(1, 2), metric="score", n_samples=n, seed=3)
    rng = np.random.default_rng(4)
    X = ref.uniform_ball_points(rng, n, 9, 1.0)
    S = ref.scores(router.weights, router.bias, X)
    slow = np.array([[ref.score_window_stat(s, 2, r) for r in (1, 2)] for s in S[:50_000]])
    for i, e in enumerate(eps):
        for r in (1, 2):
            a = fast.estimate(i, r)
            p = np.mean(slow[:, r - 1] <= e)
            se = math.sqrt(a.stderr ** 2 + p * (1 - p) / slow.shape[0])
            assert abs(a.value - p) <= Z * se


def test_slice_volume_matches_alpha_times_Vr():
    router = Router.orthonormal(4, 8, 2, seed=1)
    from discosim.theory.alpha import orthonormal_alpha
    for J in ((0, 1), (1, 2, 3)):
        r = len(J) - 1
        e = estimate_slice_volume(router, J, 1.0, 0.05, 400_000, seed=r)
        pred = orthonormal_alpha(4, 2, r) * tv.tube_fraction(0.05, 1.0, 8, r)
        assert abs(e.value - pred) <= Z * e.stderr


def test_tube_relative_error_stays_bounded_as_eps_shrinks():
    router = Router.orthonormal(5, 9, 2, seed=3)
    res = estimate_volumes(router, 1.0, [1e-2, 1e-4, 1e-6], orders=(2,), method="tube",
                           metric="normal", n_samples=20_000, seed=1)
    rel = [res.estimate(i, 2).relative_stderr for i in range(3)]
    assert max(rel) < 2 * min(rel) and max(rel) < 0.05
    for i in range(3):
        # U + (S - U)_hat must equal the exact slice sum S; the overlap is estimated from the
        # same samples, so the errors are added (a bound whatever their correlation)
        o = res.order_result(i, 2)
        total = o.estimate.value + o.overlap.value
        assert abs(total - o.predicted_slice_sum) <= Z * (o.estimate.stderr + o.overlap.stderr)


def test_scaling_with_radius_for_unbiased_router():
    """b = 0: U_r(R, eps) = R^D U_r(1, eps/R), so fractions depend on eps/R only."""
    router = Router.gaussian(5, 9, 2, seed=4)
    a = estimate_volumes(router, 1.0, [0.05], orders=(1,), n_samples=100_000, seed=7)
    b = estimate_volumes(router, 3.0, [0.15], orders=(1,), n_samples=100_000, seed=7)
    assert a.estimate(0, 1).value == b.estimate(0, 1).value


@pytest.mark.parametrize("method", ["uniform", "tube"])
def test_same_seed_same_numbers_for_any_n_jobs(method):
    router = Router.gaussian(6, 12, 2, seed=5)
    kw = dict(orders=(1, 2), metric="score", method=method, seed=42,
              n_samples=300_000 if method == "uniform" else 40_000)
    one = estimate_volumes(router, 1.0, [0.05, 0.1], n_jobs=1, **kw)
    two = estimate_volumes(router, 1.0, [0.05, 0.1], n_jobs=2, **kw)
    for i in range(2):
        for r in (1, 2):
            assert one.estimate(i, r) == two.estimate(i, r)


def test_real_size_router_runs_and_reports_fractions():
    router = Router.gaussian(64, 2048, 8, seed=0)
    eps = 0.5 / math.sqrt(2048)
    res = estimate_volumes(router, 1.0, [eps], orders=(1, 2, 3), metric="score", n_samples=20_000, seed=1)
    vals = [res.estimate(0, r).value for r in (1, 2, 3)]
    assert 0 < vals[2] <= vals[1] <= vals[0] < 1


def test_cosine_router_score_metric_ignores_radius():
    router = Router.gaussian(5, 9, 2, seed=4, kind="cosine")
    a = estimate_volumes(router, 1.0, [0.05], orders=(1,), metric="score", n_samples=50_000, seed=1)
    b = estimate_volumes(router, 7.0, [0.05], orders=(1,), metric="score", n_samples=50_000, seed=1)
    assert a.estimate(0, 1).value == b.estimate(0, 1).value


BAD_CALLS = [
    (dict(radius=0), "radius"), (dict(radius=-1), "radius"), (dict(eps=[0.1, 0]), "eps"),
    (dict(eps=[float("nan")]), "eps"), (dict(metric="manhattan"), "metric"),
    (dict(method="magic"), "method"), (dict(orders=[0]), "order"), (dict(orders=[9]), "order"),
    (dict(n_samples=0), "n_samples"), (dict(n_jobs=0), "n_jobs"), (dict(seed=-3), "seed"),
]


@pytest.mark.parametrize("kwargs,word", BAD_CALLS)
def test_bad_estimator_input_is_one_line(kwargs, word):
    router = Router.gaussian(5, 9, 2, seed=1)
    args = dict(radius=1.0, eps=[0.1], n_samples=100)
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        estimate_volumes(router, **args)
    assert word in str(err.value) and "\n" not in str(err.value)


def test_tube_method_rejects_a_bias():
    router = Router(np.random.default_rng(0).standard_normal((4, 8)), 2, bias=np.ones(4) * [0, 1, 2, 3])
    with pytest.raises(InputError, match="unbiased"):
        estimate_volumes(router, 1.0, [0.1], method="tube", n_samples=100)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "discosim", *args], capture_output=True, text=True,
                          timeout=300)


def test_cli_volume_json_schema():
    p = _cli("volume", "--router", "orthonormal", "--M", "5", "--D", "9", "--k", "2", "--eps", "0.05",
             "0.1", "--orders", "1", "2", "--n-samples", "20000", "--seed", "3", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["router"]["M"] == 5 and doc["seed"] == 3 and doc["n_samples"] == 20000
    assert [r["eps"] for r in doc["results"]] == [0.05, 0.1]
    o = doc["results"][0]["orders"]["1"]
    for key in ("fraction", "stderr", "ci_low", "ci_high", "predicted_slice_sum", "predicted_leading"):
        assert key in o
    assert o["ci_low"] <= o["fraction"] <= o["ci_high"]


def test_euclidean_run_that_would_not_finish_is_refused_before_work(no_work):
    # M = 24 in D = 64 at eps = 0.1: every expert scores within 2 max|w| eps of the k-th for
    # some inputs, and the exact distance would visit ~2^24 tie sets per input
    from discosim._core.errors import InputError

    r = Router(np.random.default_rng(24).standard_normal((24, 64)) / 8.0, 4)
    with pytest.raises(InputError, match="2\\^2[0-9]") as exc:
        estimate_volumes(r, 1.0, [0.02, 0.1], (1,), n_samples=1000, seed=1, predict=False)
    assert "\n" not in str(exc.value) and "metric 'normal'" in str(exc.value)


def test_euclidean_probe_lets_feasible_runs_through():
    r = Router(np.random.default_rng(24).standard_normal((24, 64)) / 8.0, 4)
    res = estimate_volumes(r, 1.0, [0.02], (1,), n_samples=1000, seed=1, predict=False)
    assert 0 < res.estimate(0, 1).value < 1
    # the normal metric stops at order r + 1 tie sets: no probe, no refusal
    estimate_volumes(r, 1.0, [0.1], (1,), metric="normal", n_samples=1000, seed=1, predict=False)


@pytest.mark.parametrize("r, dim, c", [(1, 20, 0.3), (2, 200, 0.2), (3, 60, 0.05), (1, 4096, 2e-4)])
def test_gpu_power_law_beta_weight_has_the_cpu_factor_as_mean(r, dim, c):
    # the GPU tube sampler draws beta = c U^(1/a) with weight C(M,r+1) c^a (1-beta)^(b-1)/(a B);
    # its mean over U must be the CPU's factor C(M,r+1) I_c(a, b) -- also where b c >> 1, where
    # the weight varies; planted: (1-beta)^b, the exponent off by one
    from scipy import integrate, special

    from discosim._kernels.volumes.tube import power_law_draw, power_law_log_constant

    M = 8
    a, b = 0.5 * r, 0.5 * (dim - r) + 1.0
    lc = power_law_log_constant(M, r, dim)
    # U = t^a: beta = c t, the integral over t in (0, 1) (an integrable t^(a-1) at 0)
    def mean(bm1):
        val, err = integrate.quad(lambda t: a * t ** (a - 1) * power_law_draw(t ** a, c, a, bm1, lc)[1],
                                  0.0, 1.0, limit=200, epsabs=0.0, epsrel=1e-11)
        return val

    want = math.comb(M, r + 1) * special.betainc(a, b, c)
    assert mean(b - 1.0) == pytest.approx(want, rel=1e-8)
    beta, _ = power_law_draw(0.25, c, a, b - 1.0, lc)
    assert beta == pytest.approx(c * 0.25 ** (1 / a), rel=1e-15)
    # the planted error moves the mean by about E[beta] (truncated Beta): ~ c a / (a + 1) for
    # b c << 1, ~ a / (a + b) for b c >> 1; both far above rel=1e-8
    assert abs(mean(b) / want - 1) > 0.3 * min(c * a / (a + 1), a / (a + b))
