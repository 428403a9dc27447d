"""Slow tier of statistical/test_volumes.py (marked ``slow`` by directory: see tests/conftest.py)."""


import json
import math

import numpy as np
import pytest
from discosim import Router, estimate_volumes
from discosim.theory import volumes as tv
from test_volumes import Z, _cli


@pytest.mark.parametrize("metric", ["euclidean", "normal"])
def test_tube_and_uniform_agree(metric):
    router = Router.orthonormal(5, 9, 2, seed=2)
    u = estimate_volumes(router, 1.0, [0.05], orders=(1, 2), metric=metric, n_samples=400_000, seed=5)
    t = estimate_volumes(router, 1.0, [0.05], orders=(1, 2), metric=metric, method="tube",
                         n_samples=40_000, seed=6)
    for r in (1, 2):
        a, b = u.estimate(0, r), t.estimate(0, r)
        assert abs(a.value - b.value) <= Z * math.hypot(a.stderr, b.stderr)


def test_score_tube_sampler_agrees_with_uniform():
    router = Router.gaussian(6, 11, 3, seed=8)
    u = estimate_volumes(router, 1.0, [0.1], orders=(1, 2, 3), metric="score", n_samples=400_000, seed=1)
    t = estimate_volumes(router, 1.0, [0.1], orders=(1, 2, 3), metric="score", method="tube",
                         n_samples=30_000, seed=2)
    for r in (1, 2, 3):
        a, b = u.estimate(0, r), t.estimate(0, r)
        assert abs(a.value - b.value) <= Z * math.hypot(a.stderr, b.stderr)


@pytest.mark.parametrize("args,word", [
    (["--M", "9", "--D", "8", "--k", "2", "--eps", "0.1"], "M < D"),
    (["--M", "5", "--D", "9", "--k", "5", "--eps", "0.1"], "k"),
    (["--M", "5", "--D", "9", "--k", "2", "--eps", "0"], "eps"),
    (["--M", "5", "--D", "9", "--k", "2", "--eps", "0.1", "--radius", "-2"], "radius"),
    (["--M", "5", "--D", "9", "--k", "2", "--eps", "0.1", "--metric", "l3"], "metric"),
    (["--router", "/nonexistent/w.npy", "--k", "2", "--eps", "0.1"], "not found"),
])
def test_cli_bad_input_exits_2_without_traceback(args, word):
    p = _cli("volume", *args)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and word in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_cli_reads_safetensors_weights(tmp_path):
    from safetensors.numpy import save_file
    W = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
    path = tmp_path / "gate.safetensors"
    save_file({"model.layers.3.mlp.gate.weight": W, "other": np.zeros(3, dtype=np.float32)}, str(path))
    p = _cli("volume", "--router", str(path), "--key", "model.layers.3.mlp.gate.weight", "--k", "2",
             "--eps", "0.05", "--orders", "1", "--n-samples", "5000", "--seed", "1", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["router"] == {"M": 6, "D": 16, "k": 2, "kind": "linear", "bias": False}
    p = _cli("volume", "--router", str(path), "--k", "2", "--eps", "0.05")
    assert p.returncode == 2 and "name one" in p.stderr


@pytest.mark.parametrize("W,word", [
    (np.ones((3, 6)), "rank-deficient"),
    (np.where(np.eye(3, 6) > 0, np.nan, 1.0), "non-finite"),
    (np.random.default_rng(0).standard_normal((6, 5)), "M < D"),
    (np.random.default_rng(0).standard_normal((2, 3, 4)), "2-dimensional"),
])
def test_cli_bad_weight_files_exit_2(tmp_path, W, word):
    path = tmp_path / "w.npy"
    np.save(path, W)
    p = _cli("volume", "--router", str(path), "--k", "1", "--eps", "0.1", "--n-samples", "100")
    assert p.returncode == 2 and word in p.stderr and "Traceback" not in p.stderr


def test_cli_file_shape_mismatch_with_given_M(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.random.default_rng(0).standard_normal((4, 9)))
    p = _cli("volume", "--router", str(path), "--k", "1", "--M", "5", "--eps", "0.1")
    assert p.returncode == 2 and "does not match" in p.stderr


def test_overlap_estimate_matches_slice_sum_minus_union():
    """The tube sampler's direct overlap estimate equals S - U with U from the uniform sampler."""
    router = Router.gaussian(5, 10, 2, seed=6)
    t = estimate_volumes(router, 1.0, [0.08], orders=(1,), metric="normal", method="tube",
                         n_samples=40_000, seed=1)
    u = estimate_volumes(router, 1.0, [0.08], orders=(1,), metric="normal", n_samples=1_000_000, seed=2)
    o = t.order_result(0, 1)
    S = o.predicted_slice_sum
    direct = S - u.estimate(0, 1).value
    assert o.overlap.value > 4 * o.overlap.stderr  # overlaps are visible at this eps
    assert abs(o.overlap.value - direct) <= 4 * math.hypot(o.overlap.stderr, u.estimate(0, 1).stderr)


def test_largest_real_size_is_finite_and_consistent():
    """D = 8192, M = 256: fractions, predictions and log-volumes stay finite (no raw ball volumes)."""
    from discosim.volumes.constants import slice_constants
    router = Router.gaussian(256, 8192, 8, seed=3)
    consts = {r: slice_constants(router, r, n_samples=2000, seed=0) for r in (1, 2)}
    eps = 0.2 / math.sqrt(8192)
    res = estimate_volumes(router, 1.0, [eps / 10, eps], orders=(1, 2), metric="score",
                           n_samples=40_000, seed=1, constants=consts)
    for i in range(2):
        for r in (1, 2):
            o = res.order_result(i, r)
            assert 0 <= o.estimate.value <= 1 and math.isfinite(o.predicted_leading)
    assert res.estimate(1, 1).value > res.estimate(0, 1).value
    assert math.isfinite(tv.log_tube_volume(eps, 1.0, 8192, 3))
    assert tv.tube_fraction(eps, 1.0, 8192, 1) > 0
