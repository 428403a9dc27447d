"""The largest request each command accepts runs, and peaks below the memory budget (issue 21).

Each request sits on its cap: the size is the largest that :mod:`discosim._core.memory`'s checks
accept (found by bisection on the check itself, so it moves with the costs), one entry more is
refused (tests/integration/test_memory_caps.py). Each runs in a fresh Python process; its peak
resident memory (``VmHWM``) must stay below ``BUDGET_BYTES``. The peaks are printed (``-s``) and
quoted in the README's "Memory" table. Minutes in all: the slow tier.
"""

import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from discosim._core import memory
from discosim._core.errors import InputError

RUNNER = r"""
import contextlib, io, json, sys
kind, payload = sys.argv[1], json.loads(sys.argv[2])
with contextlib.redirect_stdout(io.StringIO()):
    if kind == "cli":
        from discosim.app.cli.main import main
        code = main(payload)
    else:
        exec(payload)
        code = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM"):
        peak = int(line.split()[1]) * 1024
print(json.dumps({"code": code, "peak": peak}))
"""


def _run(kind, payload):
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", RUNNER, kind, json.dumps(payload)],
                         capture_output=True, text=True, env=env, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _largest(fits, lo, hi):
    """The largest integer x in [lo, hi] with fits(x) (fits(lo) must hold)."""
    assert fits(lo) and not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def _accepts(check):
    def fits(x):
        try:
            check(x)
        except InputError:
            return False
        return True
    return fits


def _router_D(M=2):
    from discosim.model.router import _check_shape

    return _largest(_accepts(lambda D: _check_shape(M, D)), M + 1, 10 ** 10)


def _volume(tmp):
    return "cli", ["volume", "--M", "2", "--D", str(_router_D()), "--k", "1", "--eps", "0.1",
                   "--n-samples", "10000", "--seed", "1", "--json"]


def _volume_orthonormal(tmp):
    return "cli", ["volume", "--router", "orthonormal", "--M", "2", "--D", str(_router_D()),
                   "--k", "1", "--eps", "0.1", "--n-samples", "10000", "--seed", "1", "--json"]


def _volume_file(tmp):
    D = _router_D()
    path = os.path.join(tmp, "w.npy")
    w = np.lib.format.open_memmap(path, "w+", np.float32, (2, D))
    w[0], w[1] = 1.0, np.arange(D, dtype=np.float32) % 7
    del w
    return "cli", ["volume", "--router", path, "--k", "1", "--eps", "0.1", "--n-samples",
                   "10000", "--seed", "1", "--json"]


def _hit(tmp):
    return "cli", ["hit", "--M", "2", "--D", str(_router_D()), "--k", "1", "--sigma", "1",
                   "--t-max", "0.1", "--dt", "0.01", "--times", "0.1", "--n-paths", "1000",
                   "--seed", "1", "--json"]


def _study(tmp):
    return "cli", ["study", "volume_ratios", "--set", "M=2", "--set", "k=1", "--set",
                   f"D={_router_D()}", "--set", "n_routers=1", "--set", "n_samples=1000",
                   "--set", "eps=0.1", "--quiet", "--out", os.path.join(tmp, "study")]


def _smooth(n_points):
    from discosim.smoothing.estimators import check_continuity_memory

    def build(tmp):
        fits = _accepts(lambda D: check_continuity_memory(
            types.SimpleNamespace(n_experts=2, dim=D), n_points, "linear", 1))
        D = _largest(fits, 3, 10 ** 10)
        return "cli", ["smooth", "--M", "2", "--D", str(D), "--k", "1", "--etas", "0.01",
                       "--deltas", "1e-3", "1e-2", "--out-dim", "1", "--n-points", str(n_points),
                       "--n-samples", "10000", "--seed", "1", "--json"]
    return build


def _audit_samples(tmp):
    from discosim.audit.estimators import MAX_SAMPLES_PER_LAYER
    from discosim.checkpoints.synthetic import make_checkpoint

    path = make_checkpoint(os.path.join(tmp, "ck"), "mixtral", n_layers=1, n_experts=8, dim=32,
                           shards=1)
    return "cli", ["audit", path, "--n-samples", str(MAX_SAMPLES_PER_LAYER), "--seed", "1",
                   "--json", "--constants-samples", "0"]


def _audit_router(tmp):
    """The widest router the audit reads (M = 2, bf16, its norm beside it)."""
    from discosim.checkpoints.synthetic import _Big, write_safetensors

    class Pattern(_Big):
        """bf16 words written in 1 MB chunks: +-1.0 alternating on odd rows (full row rank)."""

        def __init__(self, shape, alternate):
            super().__init__(shape, "bfloat16")
            self.alternate = alternate

        def write(self, fh):
            n = self.nbytes // 2
            row = self.shape[-1]
            for a in range(0, n, 1 << 19):
                i = np.arange(a, min(n, a + (1 << 19)))
                sign = self.alternate & ((i // row) % 2 == 1) & (i % 2 == 1)
                fh.write(np.where(sign, 0xBF80, 0x3F80).astype("<u2").tobytes())

    n_draw = 400_000  # default_n_samples(2)
    D = _largest(_accepts(lambda D: memory.check_memory(
        [("m", n_draw, "audit_sample"), ("r", 2 * D, "audit_router")], "")), 3, 10 ** 10)
    d = os.path.join(tmp, "wide")
    os.makedirs(d)
    write_safetensors(os.path.join(d, "model.safetensors"), {
        "model.layers.0.block_sparse_moe.gate.weight": ("BF16", (2, D), Pattern((2, D), True)),
        "model.layers.0.post_attention_layernorm.weight": ("BF16", (D,), Pattern((D,), False))})
    with open(os.path.join(d, "config.json"), "w") as fh:
        json.dump({"model_type": "mixtral", "num_experts_per_tok": 1}, fh)
    # the whole-router rows hold (256, D) full-dimensional inputs and the weight in each format:
    # at this width they are refused (one line naming them), so the cap is the logits-only mode's
    return "cli", ["audit", d, "--seed", "1", "--json", "--constants-samples", "0",
                   "--router-samples", "0"]


def _audit_hidden(tmp):
    """The most hidden states (float32, D = 64) the audit takes for one layer."""
    from discosim.checkpoints.synthetic import make_checkpoint

    path = make_checkpoint(os.path.join(tmp, "ckh"), "mixtral", n_layers=1, n_experts=8, dim=64,
                           shards=1)
    N = _largest(_accepts(lambda N: memory.check_memory(
        [("h", N * 64 * 4, "bytes"), ("m", N, "audit_sample"), ("r", 8 * 64, "audit_router")],
        "")), 2, 10 ** 12)
    h = np.lib.format.open_memmap(os.path.join(tmp, "h.npy"), "w+", np.float32, (N, 64))
    rng = np.random.default_rng(0)
    for a in range(0, N, 1 << 20):
        h[a:a + (1 << 20)] = rng.standard_normal((min(1 << 20, N - a), 64), dtype=np.float32)
    del h
    return "cli", ["audit", path, "--inputs", os.path.join(tmp, "h.npy"), "--seed", "1",
                   "--json", "--constants-samples", "0"]


def _plan_check(D):
    """The writer's own check for a one-layer Mixtral checkpoint of 2 experts and width D."""
    from discosim.checkpoints.synthetic import _decoder_layout

    plan, _ = _decoder_layout("mixtral", 1, 2, D, 16)
    memory.check_memory([("plan", sum(int(np.prod(s)) for _, _, s in plan), "synthetic")], "")


def _synthetic(tmp):
    D = _largest(_accepts(_plan_check), 3, 10 ** 9)
    return "py", (f"from discosim.checkpoints.synthetic import make_checkpoint as m; "
                  f"m({os.path.join(tmp, 'syn')!r}, 'mixtral', n_layers=1, n_experts=2, dim={D}, "
                  f"k=1, shards=1)")


REQUESTS = {
    "volume (random router)": _volume,
    "volume (orthonormal router)": _volume_orthonormal,
    "volume (.npy router)": _volume_file,
    "hit (random router)": _hit,
    "smooth (widest router)": _smooth(2),
    "smooth (most continuity points)": _smooth(100_000),
    "study volume_ratios (widest router)": _study,
    "audit (most inputs)": _audit_samples,
    "audit (widest router)": _audit_router,
    "audit (most hidden states)": _audit_hidden,
    "synthetic writer (largest)": _synthetic,
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_largest_accepted_request_peaks_below_the_budget(name, tmp_path):
    kind, payload = REQUESTS[name](str(tmp_path))
    doc = _run(kind, payload)
    print(f"\nPEAK {name}: {doc['peak'] / 2 ** 20:.0f} MiB "
          f"(budget {memory.BUDGET_BYTES / 2 ** 20:.0f} MiB)")
    assert doc["code"] == 0
    assert doc["peak"] < memory.BUDGET_BYTES
