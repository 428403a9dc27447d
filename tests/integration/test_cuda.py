"""The CUDA backend (device="cuda"): CPU/GPU agreement, reproducibility, float32 error bound.

Tests marked ``cuda`` need an NVIDIA GPU and numba-cuda and skip cleanly without them (CI has
none); the others check the CPU side of the contract: the CPU path never imports the CUDA
target, bad devices give one-line InputErrors, and the float32 score bound of
``discosim._cuda.volumes.uniform`` holds and is far below the smallest eps the claims use.
Tolerances: CPU and GPU estimates agree when ``|a - b| <= 4 sqrt(se_a^2 + se_b^2)``.
"""

import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import discosim
from discosim._core.errors import InputError
from discosim.model.router import Router

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _gpu_usable():
    # a subprocess, so this module never imports numba.cuda into the test process itself
    code = "from discosim._core.devices import cuda_available; print(cuda_available())"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, timeout=120)
    except subprocess.TimeoutExpired:
        return False
    return out.stdout.strip().endswith("True")


HAVE_GPU = _gpu_usable()


def _run_in_simulator(code, timeout):
    """Run ``code`` in numba's CUDA simulator, in a subprocess (this process never imports
    numba.cuda); it must print "ok" last."""
    env = {**os.environ, "PYTHONPATH": ROOT, "NUMBA_ENABLE_CUDASIM": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=timeout)
    assert out.stdout.strip().endswith("ok"), out.stderr[-2000:]
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="no usable CUDA GPU / numba-cuda")


def _router(M, k, D, seed=0, bias=False):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((M, D)) / np.sqrt(D)
    b = 0.1 * rng.standard_normal(M) if bias else None
    return Router(W, k, bias=b)


def _agree(a, b):
    """CPU and GPU estimates within 4 combined standard errors."""
    return abs(a.value - b.value) <= 4.0 * np.hypot(a.stderr, b.stderr)


# --- the CPU side of the contract (runs everywhere) ----------------------------------------

def test_cpu_path_never_imports_cuda():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import discosim
        from discosim.model.router import Router
        r = Router(np.random.default_rng(0).standard_normal((4, 8)), 2)
        discosim.estimate_volumes(r, 1.0, 0.1, n_samples=2000, seed=0, predict=False)
        bad = [m for m in sys.modules if m.startswith(("numba.cuda", "numba_cuda"))]
        print("LOADED", bad)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout


@pytest.mark.parametrize("device", ["gpu", "CUDA", 0, ""])
def test_unknown_device_is_one_line_input_error(device):
    r = _router(4, 2, 8)
    with pytest.raises(InputError, match="device") as exc:
        discosim.estimate_volumes(r, 1.0, 0.1, n_samples=100, device=device)
    assert "\n" not in str(exc.value)


@pytest.mark.skipif(HAVE_GPU, reason="checks the error raised where no GPU is usable")
def test_cuda_without_gpu_is_one_line_error_before_work():
    from discosim.diffusion.estimators import estimate_first_hit

    r = _router(4, 2, 8)
    with pytest.raises(InputError) as exc:
        discosim.estimate_volumes(r, 1.0, 0.1, n_samples=10 ** 13, device="cuda")
    assert "\n" not in str(exc.value) and "cuda" in str(exc.value)
    with pytest.raises(InputError):
        estimate_first_hit(r, np.ones(8), 0.1, 1.0, 0.1, 10, [0.5], device="cuda")


@pytest.mark.skipif(HAVE_GPU, reason="checks the CLI where no GPU is usable")
def test_cli_device_cuda_without_gpu_exits_2():
    out = subprocess.run([sys.executable, "-m", "discosim", "volume", "--M", "4", "--D", "8",
                          "--k", "2", "--no-predict", "--eps", "0.1", "--n-samples", "1000", "--device", "cuda"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(HAVE_GPU, reason="checks the CLI where no GPU is usable")
def test_study_device_cuda_without_gpu_exits_2_before_any_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "discosim", "study", "tube_metrics", "--out",
                          str(tmp_path / "s"), "--device", "cuda", "--quiet"],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s" / "points").exists() or not any((tmp_path / "s" / "points").iterdir())


def test_study_points_of_one_device_are_never_reused_for_another():
    from discosim.app.studies import point_identity

    p = {"eps": 0.1, "M": 6}
    cpu = point_identity("tube_metrics", p, 0)
    assert point_identity("tube_metrics", p, 0, "cpu") == cpu and "device" not in cpu[0]
    gpu = point_identity("tube_metrics", p, 0, "cuda")
    assert gpu[1] != cpu[1] and gpu[0]["device"] == "cuda"


def test_study_on_the_device_in_the_cuda_simulator(tmp_path):
    # a study run with device="cuda" (the tube sampler on the simulated GPU), then the same
    # study on the CPU in the same directory: none of the GPU's points is reused
    code = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("ignore")
        import json, os
        from discosim.app.studies import run_study

        d = {str(tmp_path / "s")!r}
        grid = {{"eps": [0.05, 0.1], "n_samples": 64}}
        run_study("volume_ratios", d, grid=grid, device="cuda", progress=False)
        doc = json.load(open(os.path.join(d, "results.json")))
        assert doc["device"] == "cuda"
        gpu = [pt["identity_hash"] for pt in doc["points"]]
        run_study("volume_ratios", d, grid=grid, progress=False)
        doc = json.load(open(os.path.join(d, "results.json")))
        assert doc["device"] == "cpu"
        assert not set(pt["identity_hash"] for pt in doc["points"]) & set(gpu)
        for name in os.listdir(os.path.join(d, "points")):
            assert "device" not in json.load(open(os.path.join(d, "points", name)))["identity"]
        print("ok")
    """)
    _run_in_simulator(code, timeout=600)


def _float32_scores(G, C, W, b, radius):
    """The GPU's float32 arithmetic for the scores, emulated step by step in numpy float32."""
    G = G.astype(np.float32)
    ss = np.sum(G * G, axis=1, dtype=np.float32)
    scale = np.float32(radius) / np.sqrt(ss + C.astype(np.float32))
    W32 = W.astype(np.float32)
    acc = np.zeros((G.shape[0], W.shape[0]), dtype=np.float32)
    for j in range(W.shape[1]):  # sequential float32 accumulation, as the fused loop
        acc += W32[:, j][None, :] * G[:, j][:, None]
    return scale[:, None] * acc + b.astype(np.float32)[None, :]


@pytest.mark.parametrize("M,D", [(8, 4096), (64, 4096), (256, 4096)])
def test_float32_score_error_within_stated_bound(M, D):
    from discosim._cuda.volumes.bounds import spread_error

    rng = np.random.default_rng(M)
    r = _router(M, 2, D, seed=M, bias=True)
    G = rng.standard_normal((4000, M)).astype(np.float32)
    C = rng.chisquare(D + 2 - M, 4000).astype(np.float32)
    S32 = _float32_scores(G, C, r.reduced_weights, r.bias, 1.0).astype(np.float64)
    G64 = G.astype(np.float64)
    z = G64 / np.sqrt(np.sum(G64 ** 2, axis=1) + C.astype(np.float64))[:, None]
    S64 = z @ r.reduced_weights.T + r.bias
    zn = np.linalg.norm(z, axis=1)
    bmax = np.max(np.abs(r.bias))
    # a single score is within half the spread bound
    bound = 0.5 * spread_error(M, r.max_row_norm, bmax, zn)
    assert np.all(np.abs(S32 - S64) <= bound[:, None])
    # and the bound is far below the smallest eps the claims use (1e-3 at R = 1)
    assert spread_error(M, r.max_row_norm, bmax, 1.0) <= 0.1 * 1e-3


# --- on the GPU ----------------------------------------------------------------------------

@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("metric", ["score", "euclidean", "normal"])
@pytest.mark.parametrize("M,k,bias", [(8, 2, False), (6, 3, True), (24, 4, False)])
def test_volumes_cpu_gpu_agree(metric, M, k, bias):
    r = _router(M, k, 64, seed=M, bias=bias)
    # at M = 24 the euclidean distance enumerates every tie set within eps of the k-th score:
    # eps = 0.1 makes that nearly all 2^24 subsets per point (the tube then fills the ball)
    eps = [0.02, 0.1] if M <= 8 else [0.005, 0.02]
    orders = (1, 2)
    # euclidean/normal: the host computes the exact distances of the screened samples
    n_gpu = 4_000_000 if metric == "score" else 400_000
    g = discosim.estimate_volumes(r, 1.0, eps, orders, metric=metric, n_samples=n_gpu,
                                  seed=1, device="cuda", predict=False)
    c = discosim.estimate_volumes(r, 1.0, eps, orders, metric=metric, n_samples=100_000, seed=1,
                                  predict=False)
    for i in range(len(eps)):
        for j in range(len(orders)):
            a, b = g.estimate(i, orders[j]), c.estimate(i, orders[j])
            assert _agree(a, b), (metric, eps[i], orders[j], a, b)


@pytest.mark.cuda
@needs_gpu
def test_volumes_cosine_scores_cpu_gpu_agree():
    rng = np.random.default_rng(3)
    r = Router(rng.standard_normal((8, 32)), 2, kind="cosine")
    g = discosim.estimate_volumes(r, 1.0, [0.05], (1, 2), metric="score", n_samples=2_000_000,
                                  seed=4, device="cuda", predict=False)
    c = discosim.estimate_volumes(r, 1.0, [0.05], (1, 2), metric="score", n_samples=200_000,
                                  seed=4, predict=False)
    for r in (1, 2):
        assert _agree(g.estimate(0, r), c.estimate(0, r))


def _counts(r, variant="auto", unit_chunks=None, devices=(0,), metric=2, n=3_000_001):
    from discosim._cuda.rng import run_key
    from discosim._cuda.volumes.uniform import uniform_counts

    eps = np.array([0.01, 0.05])
    return uniform_counts(r, 1.0, eps, 3, metric, False, n, run_key(np.random.SeedSequence(9)),
                          list(devices), unit_chunks=unit_chunks, variant=variant)


@pytest.mark.cuda
@needs_gpu
def test_volume_counts_do_not_depend_on_launch_or_devices():
    r = _router(8, 2, 64, seed=2, bias=True)
    ref, handed = _counts(r)
    assert handed > 0  # the float64 hand-back path is exercised
    for kw in (dict(unit_chunks=7), dict(devices=(0, 0)), dict(devices=(0, 0), unit_chunks=3)):
        assert np.array_equal(_counts(r, **kw)[0], ref), kw


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("metric", [2, 0])
def test_volume_kernel_variants_give_identical_counts(metric):
    # different float32 summation orders; the float64 hand-back of every sample float32 does
    # not resolve makes the counts identical -- a check of the stated error bound as well
    pytest.importorskip("cupy")
    r = _router(8, 2, 64, seed=5, bias=True)
    ref = _counts(r, "unrolled", metric=metric, n=1_000_000)[0]
    for variant in ("fused", "gemm", "nvrtc"):
        assert np.array_equal(_counts(r, variant, metric=metric, n=1_000_000)[0], ref), variant


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("M, k", [(64, 8), (256, 8)])
def test_volume_kernel_variants_give_identical_counts_at_real_sizes(M, k):
    # the C++ kernels (scores fused at M = 64, selection after the SGEMM at M = 256) against
    # the numba kernel with the weights in shared or global memory
    pytest.importorskip("cupy")
    r = _router(M, k, 4096, seed=7)
    ref = _counts(r, "fused", n=400_000)
    assert ref[1] > 0  # samples inside the float32 band were recomputed in float64
    for variant in ("gemm", "nvrtc") if M <= 128 else ("gemm",):
        assert np.array_equal(_counts(r, variant, n=400_000)[0], ref[0]), variant


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("variant", ["unrolled", "fused", "gemm", "nvrtc"])
def test_float64_recomputation_on_the_device_is_exact(monkeypatch, variant):
    # widen the float32 band so most samples are recomputed in float64: identical counts
    # (gemm: cuBLAS DGEMM and the column selection kernel; the others: a warp per sample)
    from discosim._cuda.volumes import uniform as volume

    if variant in ("gemm", "nvrtc"):
        pytest.importorskip("cupy")
    r = _router(8, 2, 64, seed=6, bias=True)
    ref, few = _counts(r, variant, n=300_000)
    monkeypatch.setattr(volume, "score_error_coefficient", lambda M: 1e-1)
    wide, many = _counts(r, variant, n=300_000)
    assert many > 100 * max(few, 1)
    assert np.array_equal(wide, ref)


@pytest.mark.cuda
@needs_gpu
def test_volume_same_seed_same_numbers_and_result_shape():
    r = _router(8, 2, 64)
    a = discosim.estimate_volumes(r, 1.0, [0.05], (1,), metric="score", n_samples=500_000,
                                  seed=3, device="cuda", predict=False)
    b = discosim.estimate_volumes(r, 1.0, [0.05], (1,), metric="score", n_samples=500_000,
                                  seed=3, device="cuda", predict=False, devices=[0, 0])
    assert a.estimate(0, 1).value == b.estimate(0, 1).value
    assert a.seed_entropy == 3 or a.seed_entropy == b.seed_entropy


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("start", ["fixed", "ball"])
def test_first_hit_cpu_gpu_agree(start):
    from discosim.diffusion.estimators import estimate_first_hit

    r = _router(4, 2, 8, seed=7)
    x0 = np.random.default_rng(7).standard_normal(8) * 0.3 if start == "fixed" else None
    kw = dict(deltas=[0.05, 0.2], seed=2, inputs="ball", radius=0.5)
    g = estimate_first_hit(r, x0, 0.3, 0.5, 0.01, 40_000, [0.1, 0.5], device="cuda", **kw)
    c = estimate_first_hit(r, x0, 0.3, 0.5, 0.01, 4_000, [0.1, 0.5], **kw)
    for a, b in zip(g.cdf + g.q, c.cdf + c.q):
        assert _agree(a, b), (a, b)


@pytest.mark.cuda
@needs_gpu
def test_first_exit_same_numbers_for_any_device_list(monkeypatch):
    from discosim._cuda.diffusion import paths
    from discosim.diffusion.estimators import simulate_first_exit

    r = _router(4, 2, 8, seed=8)
    x0 = np.random.default_rng(8).standard_normal(8) * 0.3
    a = simulate_first_exit(r, x0, 0.3, 0.3, 0.01, 3000, seed=5, device="cuda")
    monkeypatch.setattr(paths, "UNIT_PATHS", 1000)
    b = simulate_first_exit(r, x0, 0.3, 0.3, 0.01, 3000, seed=5, device="cuda", devices=[0, 0])
    monkeypatch.setattr(paths, "THREADS_PER_SM", 1)  # a few threads, each running many paths
    c = simulate_first_exit(r, x0, 0.3, 0.3, 0.01, 3000, seed=5, device="cuda")
    for d in (b, c):
        assert np.array_equal(a.tau, d.tau)
        assert np.array_equal(a.exit_points, d.exit_points, equal_nan=True)
    assert np.isfinite(a.tau).sum() > 100


def test_float64_selection_kernel_in_the_cuda_simulator():
    """The GEMM path's float64 counting kernel against NumPy, in numba's CUDA simulator (runs
    anywhere, in a subprocess so this process never imports numba.cuda)."""
    code = textwrap.dedent("""
        import numpy as np
        from discosim._cuda.volumes import uniform as V
        M, K, R, NE = 12, 3, 3, 2
        S = np.random.default_rng(0).standard_normal((M, 300)) * 0.1
        eps = np.array([0.01, 0.05])
        hist = np.zeros(R * NE, dtype=np.uint64)
        bias = np.random.default_rng(1).standard_normal(M) * 0.05
        V.select64_kernel(M, K, R, NE)[3, 128](300, S, bias, eps, hist)
        top = -np.sort(-(S + bias[:, None]), axis=0)
        ref = np.zeros((R, NE), int)
        for r in range(1, R + 1):
            ps = range(max(K - r + 1, 1), min(K, M - r) + 1)
            st = np.min([top[p - 1] - top[p + r - 1] for p in ps], axis=0)
            ref[r - 1] = [(st <= e).sum() for e in eps]
        assert ref.sum() > 0 and np.array_equal(hist.reshape(R, NE), ref), (hist, ref)
        print("ok")
    """)
    _run_in_simulator(code, timeout=300)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("inputs", ["ball", "gaussian"])
def test_overhead_cpu_gpu_agree_and_any_launch_gives_the_same_numbers(monkeypatch, inputs):
    from discosim._cuda import smoothing as overhead
    from discosim.smoothing.estimators import estimate_overhead

    r = _router(8, 2, 64, seed=11, bias=True)
    etas = [0.02, 0.1]
    g = estimate_overhead(r, 1.0, etas, n_samples=4_000_000, seed=3, inputs=inputs, device="cuda")
    c = estimate_overhead(r, 1.0, etas, n_samples=400_000, seed=4, inputs=inputs)
    for a, b in zip(g.estimates, c.estimates):
        assert _agree(a, b), (a, b)
    monkeypatch.setattr(overhead, "UNIT_CHUNKS", 7)
    h = estimate_overhead(r, 1.0, etas, n_samples=4_000_000, seed=3, inputs=inputs, device="cuda",
                          devices=[0, 0])
    assert [e.value for e in h.estimates] == [e.value for e in g.estimates]
    assert [e.stderr for e in h.estimates] == [e.stderr for e in g.estimates]


def _agree_arrays(m1, s1, m2, s2):
    """Elementwise agreement within 4 combined standard errors (cells with no spread: equal)."""
    se = np.hypot(s1, s2)
    return np.all(np.abs(m1 - m2) <= 4.0 * se + 1e-12)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("metric", ["score", "normal", "euclidean"])
def test_occupation_cpu_gpu_agree_and_any_launch_gives_the_same_numbers(monkeypatch, metric):
    from discosim._cuda.diffusion import occupation
    from discosim.diffusion.estimators import estimate_occupation

    r = _router(6, 2, 20, seed=12)
    kw = dict(orders=(1, 2), metric=metric, n_checkpoints=3, inputs="ball", radius=0.5)
    g = estimate_occupation(r, None, 0.5, 0.2, 0.01, 200_000, [0.05, 0.2], seed=5, device="cuda",
                            **kw)
    # as many CPU paths: with 20k, all starts of one cell fell inside its tube (a zero standard
    # error; 18% likely there), and the 4-sigma rule then rejected a one-path difference
    c = estimate_occupation(r, None, 0.5, 0.2, 0.01, 200_000, [0.05, 0.2], seed=6, n_jobs=-1,
                            **kw)
    assert np.all(g.mean[-1] > 0)
    assert _agree_arrays(g.mean, g.stderr, c.mean, c.stderr), (g.mean, c.mean)
    monkeypatch.setattr(occupation, "BLOCK", 32)  # another launch shape, two workers
    h = estimate_occupation(r, None, 0.5, 0.2, 0.01, 200_000, [0.05, 0.2], seed=5, device="cuda",
                            devices=[0, 0], **kw)
    assert np.array_equal(g.mean, h.mean) and np.array_equal(g.stderr, h.stderr)


@pytest.mark.cuda
@needs_gpu
def test_occupation_fixed_start_ou_cpu_gpu_agree():
    from discosim.diffusion.estimators import estimate_occupation

    r = _router(4, 2, 8, seed=13)
    x0 = np.random.default_rng(13).standard_normal(8) * 0.3
    kw = dict(metric="normal", process="ou", theta=2.0, n_checkpoints=2)
    g = estimate_occupation(r, x0, 0.4, 0.3, 0.01, 100_000, [0.02, 0.1], seed=1, device="cuda", **kw)
    c = estimate_occupation(r, x0, 0.4, 0.3, 0.01, 100_000, [0.02, 0.1], seed=1, n_jobs=-1, **kw)
    assert _agree_arrays(g.mean, g.stderr, c.mean, c.stderr), (g.mean, c.mean)


def _audit_layer_set(M, D, k, routing="topk", seed=0):
    from types import SimpleNamespace

    rng = np.random.default_rng(seed)
    W = rng.standard_normal((M, D)) * 0.05
    kw = dict(name="layers.0.gate.weight", index=0, family="test", weight=W, bias=None,
              selection_bias=None, k=k, routing=routing, n_group=None, topk_group=None,
              norm_folded=True, norm_type="rmsnorm")
    if routing == "deepseek_v3":
        kw.update(selection_bias=0.01 * rng.standard_normal(M), n_group=4, topk_group=2)
    return [SimpleNamespace(**kw)]


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("routing,inputs", [("topk", "sphere"), ("topk", "ball"),
                                            ("deepseek_v3", "sphere")])
def test_audit_margins_and_flips_cpu_gpu_agree(monkeypatch, routing, inputs):
    from discosim._cuda import audit as gpu_audit
    from discosim.audit.estimators import audit_layers

    layers = _audit_layer_set(32, 256, 4, routing)
    kw = dict(inputs=inputs, constants_samples=0, formats=("bf16", "fp16"))
    g = audit_layers(layers, n_samples=2_000_000, seed=3, device="cuda", **kw).layers[0]
    c = audit_layers(layers, n_samples=200_000, seed=4, **kw).layers[0]
    assert _agree_arrays(g.margin_fraction, g.margin_fraction_stderr, c.margin_fraction,
                         c.margin_fraction_stderr)
    for fg, fc in zip(g.flips, c.flips):
        assert fg.n_flips > 20, fg
        assert abs(fg.measured - fc.measured) <= 4 * np.hypot(fg.stderr, fc.stderr), (fg, fc)
        assert abs(fg.predicted - fc.predicted) <= 4 * np.hypot(fg.predicted_stderr,
                                                                fc.predicted_stderr), (fg, fc)
    assert np.all(np.isfinite(g.margin_quantiles))
    monkeypatch.setattr(gpu_audit, "BLOCK", 32)  # another launch shape, two workers
    # DeepSeek-V3: the host's statistics of the GPU's logits run over n_jobs threads
    h = audit_layers(layers, n_samples=2_000_000, seed=3, device="cuda", devices=[0, 0],
                     n_jobs=2, **kw).layers[0]
    assert np.array_equal(g.margin_fraction, h.margin_fraction)
    assert np.array_equal(g.margin_quantiles, h.margin_quantiles)
    assert [f.n_flips for f in g.flips] == [f.n_flips for f in h.flips]
    assert [f.predicted for f in g.flips] == [f.predicted for f in h.flips]


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("routing", ["topk", "deepseek_v3"])
def test_audit_whole_router_mode_with_device_cuda(routing):
    """device="cuda": the logits-only mode's margins and flips on the GPU (DeepSeek-V3: the
    host's numba statistics on the GPU's logits) agree with the CPU's; the whole-router mode
    (bf16-router, full-D inputs) runs on the CPU whatever the device and gives the CPU's numbers
    bit for bit (issue 22)."""
    from discosim.audit.estimators import audit_layers

    layers = _audit_layer_set(32, 256, 4, routing)
    layers[0].stored_weight = layers[0].weight  # gamma = 1: the whole-router mode applies
    kw = dict(constants_samples=0, formats=("bf16",), router_samples=4000)
    g = audit_layers(layers, n_samples=1_000_000, seed=3, device="cuda", **kw).layers[0]
    c = audit_layers(layers, n_samples=200_000, seed=3, **kw).layers[0]
    assert _agree_arrays(g.margin_fraction, g.margin_fraction_stderr, c.margin_fraction,
                         c.margin_fraction_stderr)
    fg, fc = g.flip("bf16"), c.flip("bf16")
    assert fg.n_flips > 20
    assert abs(fg.measured - fc.measured) <= 4 * np.hypot(fg.stderr, fc.stderr), (fg, fc)
    # field by field, NaN equal to NaN: DeepSeek-V3's whole-router row has no prediction
    np.testing.assert_equal(dataclasses.astuple(g.flip("bf16-router")),
                            dataclasses.astuple(c.flip("bf16-router")))
    assert g.flip("bf16-router").n_flips > 0


def test_audit_kernel_flips_equal_the_cpu_rounding_in_the_cuda_simulator():
    """The device's rounding and reselection (``_cuda.audit.round_to``, insertion of (value,
    index)) against the CPU's ``_flip_indicator`` row by row on the same logits, in numba's CUDA
    simulator (runs anywhere; a subprocess). An insertion that let a pushed-down entry lose its
    place among equal rounded logits flagged 1 of 4 bf16 flips wrongly here."""
    code = textwrap.dedent("""
        import numpy as np, warnings
        warnings.simplefilter("ignore")
        from discosim._cuda import audit as A
        from discosim._cuda.rng import gamma_params
        from discosim.audit.estimators import _reduce
        from discosim._kernels.audit import flip_indicator as _flip_indicator
        from discosim.model.selection import Routing, FORMATS
        from types import SimpleNamespace
        M, K, D, n = 8, 2, 32, 4000
        W = np.random.default_rng(0).standard_normal((M, D)) * 0.05
        Rt = _reduce(W, K, "w").reduced_weights
        gd, gc, gb = gamma_params(0.5 * (D - M))
        fm = ("bf16", "fp16")
        prec = np.array([FORMATS[f].precision for f in fm])
        emin = np.array([FORMATS[f].emin for f in fm])
        tr, ta = A._rounding_reach(fm)
        outs = []
        for write in (True, False):
            m, l, a, f = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int32)
            lg = np.zeros((n if write else 1, M))
            A.audit_kernel(M, K, 2, write)[-(-n // 128), 128](
                np.uint64(1), np.uint64(2), 0, n, Rt, np.zeros(M), np.sqrt(D), gd, gc, gb, tr, ta,
                prec, emin, m, l, a, f, lg)
            outs.append((m, l, a, f, lg))
        logits, bits = outs[0][4], outs[1][3]
        routing = Routing.of(SimpleNamespace(k=K, routing="topk")).check(M)
        parts = routing.parts(logits)
        assert np.array_equal(parts["margin"], outs[1][0]), "margins"
        total = 0
        for i, fmt in enumerate(fm):
            host = _flip_indicator(routing, logits, parts, fmt)
            assert np.array_equal(host, (bits >> i) & 1 == 1), (fmt, np.nonzero(host != ((bits >> i) & 1 == 1)))
            total += host.sum()
        assert total >= 3, total
        print("ok")
    """)
    _run_in_simulator(code, timeout=300)


def test_tube_screen_never_drops_a_score_in_the_cuda_simulator():
    # euclidean and normal metrics: the device hands the host only samples passing a necessary
    # condition of x in tube_r; handing every sample over must give the same sums, bit for bit.
    # score metric: the device scores the samples itself (window statistic, family count);
    # the host's score_rows on every sample must give the same hits and sums (r = 1, 2)
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("ignore")
        import numpy as np
        import discosim
        from discosim._cuda.volumes import tube as T
        from discosim._cuda.rng import run_key

        r = discosim.Router.gaussian(6, 20, 2, seed=1)
        dropped = 0
        for metric in (2, 1, 0):
            for order in (1, 2):
                key = run_key(np.random.SeedSequence(5))
                a, na = T.tube_sums(r, order, 1.0, 0.08, metric, 160, key, [0])
                T.SCREEN = False
                b, nb = T.tube_sums(r, order, 1.0, 0.08, metric, 160, key, [0])
                T.SCREEN = True
                assert nb == 160 and a[2] > 0, (metric, order, a, nb)
                if metric == 2:  # scored on the device (its family count), summed per chunk
                    assert na == 0 and a[2] == b[2], (order, a, b)
                    # the same terms summed per chunk vs in sample order: 160 float64 terms
                    # differ by at most ~160 u = 2e-14 relative
                    assert np.allclose(a, b, rtol=1e-12, atol=0), (order, a, b)
                else:
                    assert np.array_equal(a, b), (metric, order, a, b)
                    dropped += nb - na
        assert dropped > 0  # the screen did drop samples
        print("ok")
    """)
    _run_in_simulator(code, timeout=600)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("metric", ["score", "normal", "euclidean"])
def test_tube_cpu_gpu_agree_and_any_launch_gives_the_same_numbers(monkeypatch, metric):
    from discosim._cuda.volumes import tube

    r = _router(6, 2, 20, seed=13)
    kw = dict(metric=metric, method="tube", predict=False)
    g = discosim.estimate_volumes(r, 1.0, [0.02, 0.1], (1, 2), n_samples=1_000_000, seed=5,
                                  device="cuda", **kw)
    c = discosim.estimate_volumes(r, 1.0, [0.02, 0.1], (1, 2), n_samples=200_000, seed=6,
                                  n_jobs=-1, **kw)
    assert _agree_arrays(g.fraction, g.stderr, c.fraction, c.stderr), (g.fraction, c.fraction)
    if metric != "score":
        assert _agree_arrays(g.overlap, g.overlap_stderr, c.overlap, c.overlap_stderr)
    monkeypatch.setattr(tube, "BLOCK", 32)
    h = discosim.estimate_volumes(r, 1.0, [0.02, 0.1], (1, 2), n_samples=1_000_000, seed=5,
                                  device="cuda", devices=[0, 0], **kw)
    assert np.array_equal(h.fraction, g.fraction) and np.array_equal(h.stderr, g.stderr)


@pytest.mark.cuda
@needs_gpu
def test_tube_cpu_gpu_agree_at_real_size():
    # M = 64, D = 4096, small eps (b c ~ 0.5: the power-law proposal's weights nearly flat)
    r = _router(64, 8, 4096, seed=14)
    kw = dict(metric="score", method="tube", predict=False)
    g = discosim.estimate_volumes(r, 1.0, [2e-3], (1,), n_samples=2_000_000, seed=5,
                                  device="cuda", **kw)
    c = discosim.estimate_volumes(r, 1.0, [2e-3], (1,), n_samples=100_000, seed=6, n_jobs=-1, **kw)
    assert _agree_arrays(g.fraction, g.stderr, c.fraction, c.stderr), (g.fraction, c.fraction)
    assert g.stderr[0, 0] < c.stderr[0, 0]


_HOST_SHIM = r"""
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#define __global__
#define __restrict__
#define __shared__ static
#define __syncthreads()
struct Dim { long long x; };
static Dim threadIdx{0}, blockIdx{0}, blockDim{1}, gridDim{1};
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline int atomicAdd(int* a, int v) { int o = *a; *a += v; return o; }
static inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
    unsigned long long o = *a; *a += v; return o; }
"""

_HOST_MAIN = r"""
template <class T> std::vector<T> load(const char* path, size_t n) {
    std::vector<T> v(n); FILE* f = std::fopen(path, "rb");
    if (std::fread(v.data(), sizeof(T), n, f) != n) std::exit(3); std::fclose(f); return v; }
int main(int argc, char** argv) {
    long long M = std::atoll(argv[1]), n = std::atoll(argv[2]), NCNT = std::atoll(argv[3]);
    auto X = load<float>(argv[4], M * n); auto ss = load<float>(argv[5], n);
    auto chi = load<float>(argv[6], n); auto bias = load<float>(argv[7], M);
    auto eps = load<float>(argv[8], NCNT); auto par = load<float>(argv[9], 4);
    std::vector<unsigned long long> hist(64, 0); std::vector<long long> idx(n, -1); int cn = 0;
    KERNEL(X.data(), n, ss.data(), chi.data(), bias.data(), n, par[0], eps.data(), par[1], par[2],
           par[3], hist.data(), idx.data(), &cn, (int)n);
    FILE* f = std::fopen(argv[10], "wb"); std::fwrite(hist.data(), 8, 64, f);
    std::fwrite(&cn, 4, 1, f); std::fwrite(idx.data(), 8, n, f); std::fclose(f); return 0; }
"""


def _run_host_kernel(tmp_path, src, name, X, ss, chi, bias, eps, par):
    import shutil

    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler")
    d = tmp_path / name
    d.mkdir()
    (d / "k.cpp").write_text(_HOST_SHIM + src + f"\n#define KERNEL {name}\n" + _HOST_MAIN)
    subprocess.run([cxx, "-O1", "-std=c++17", "-o", str(d / "k"), str(d / "k.cpp")], check=True,
                   capture_output=True, timeout=300)
    files = []
    for i, a in enumerate((X, ss, chi, bias, eps, par)):
        p = d / f"in{i}"
        np.ascontiguousarray(a).tofile(p)
        files.append(str(p))
    out = d / "out"
    subprocess.run([str(d / "k"), str(X.shape[0]), str(X.shape[1]), str(eps.size), *files, str(out)],
                   check=True, timeout=120)
    raw = out.read_bytes()
    hist = np.frombuffer(raw[:512], dtype=np.uint64)
    n_c = int(np.frombuffer(raw[512:516], dtype=np.int32)[0])
    idx = np.frombuffer(raw[516:], dtype=np.int64)[:n_c]
    return hist, idx


def test_nvrtc_kernel_sources_keep_the_float64_counting_contract_on_the_host(tmp_path):
    # the C++ kernels of _cuda/select_nvrtc.py, built by the host compiler with a serial shim:
    # their float32 counts plus the float64 counts of the columns they hand back equal the
    # float64 counts of every column (the contract the GPU refinement relies on); a planted
    # error (the packed weights of two rows swapped) breaks it
    from discosim._cuda.volumes.bounds import score_error_coefficient
    from discosim._cuda.volumes.select_nvrtc import kernel_source

    M, K, R, n, D = 12, 3, 3, 20000, 48
    r = _router(M, K, D, seed=21, bias=True)
    rng = np.random.default_rng(22)
    G = rng.standard_normal((M, n)).astype(np.float32)
    C = rng.chisquare(D + 2 - M, n).astype(np.float32)
    ss = np.sum(G.astype(np.float64) ** 2, axis=0).astype(np.float32)
    Wr, b = r.reduced_weights, r.bias
    z = G.astype(np.float64) / np.sqrt(ss.astype(np.float64) + C)[None, :]
    S64 = np.sort(Wr @ z + b[:, None], axis=0)[::-1]
    eps = np.array([0.002, 0.01], dtype=np.float32)
    ref = []
    for rr in range(1, R + 1):
        ps = range(max(K - rr + 1, 1), min(K, M - rr) + 1)
        ref.append(np.min([S64[p - 1] - S64[p + rr - 1] for p in ps], axis=0))
    ref = np.array(ref)  # (R, n) float64 statistics
    want = np.array([[np.sum(ref[q] <= e) for e in eps.astype(np.float64)] for q in range(R)])
    c = score_error_coefficient(M)
    par = np.array([1.0, 2 * c * r.max_row_norm, 2 * c * np.max(np.abs(b)), 0.0], dtype=np.float32)
    Wp = np.ascontiguousarray(Wr[np.tril_indices(M)], dtype=np.float32)
    b32 = b.astype(np.float32)
    S32 = (Wr.astype(np.float32) @ G).astype(np.float32)

    def total(hist, idx):
        extra = np.array([[np.sum(ref[q, idx] <= e) for e in eps.astype(np.float64)]
                          for q in range(R)])
        return hist[:R * eps.size].reshape(R, eps.size).astype(np.int64) + extra

    fused = kernel_source("score_select", M, K, R, eps.size, 0, False, Wp, b32)
    h, idx = _run_host_kernel(tmp_path, fused, "score_select", G, ss, C, b32, eps, par)
    assert 0 < idx.size < n // 20 and np.array_equal(total(h, idx), want)
    sel = kernel_source("select_scores", M, K, R, eps.size, 0, False)
    h, idx = _run_host_kernel(tmp_path, sel, "select_scores", S32, ss, C, b32, eps, par)
    assert 0 < idx.size < n // 20 and np.array_equal(total(h, idx), want)
    bad = Wp.copy()
    o5, o6 = 5 * 6 // 2, 6 * 7 // 2  # rows 5 and 6 of the packed triangle: swap their first 6
    bad[o5:o5 + 6], bad[o6:o6 + 6] = Wp[o6:o6 + 6], Wp[o5:o5 + 6]
    bad_src = kernel_source("bad_select", M, K, R, eps.size, 0, False, bad, b32)
    h, idx = _run_host_kernel(tmp_path, bad_src, "bad_select", G, ss, C, b32, eps, par)
    assert not np.array_equal(total(h, idx), want)
