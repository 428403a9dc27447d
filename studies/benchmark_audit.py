"""Benchmark: `audit_checkpoint` on synthetic checkpoints of real shapes (issue 10, item 5).

* DeepSeek-V3 shape: 58 routers of 256 x 7168 in bf16, n_group = 8, topk_group = 4, k = 8, with the
  float32 score-correction (selection) bias; target <= 60 s on 2 cores (issue 22).
* Mixtral shape: 32 routers of 8 x 4096 in bf16, k = 2; target <= 1 min.

Only the tensors the audit reads are written (router, norm weight, selection bias, config.json)
with the writer of :mod:`discosim.checkpoints.synthetic`: the expert and attention weights of a
real checkpoint are never read, so leaving them out changes nothing (and saves ~10 GB of disk).
The audit runs at its default precision (``default_n_samples(M)`` inputs per layer: 100k for
DeepSeek-V3's M = 256, 400k for Mixtral's M = 8; both formats).

Baseline beside the fast path: one layer's inputs and exact logits drawn in full dimension
(x uniform on the sphere of R^D, logits ``W x``) against the reduced coordinates of THEORY §3
(``z = R G / sqrt(|G|^2 + chi2_{D-M})``, logits ``Rm^T z``); the ratio is printed.

Usage: ``python studies/benchmark_audit.py [--n-jobs 2] [--only deepseek|mixtral] [--n-samples N]
[--device cuda]``

``--smoke``: the same two families at toy sizes (M = 16 and 8, D = 64, two routers each, 200
inputs), seconds; checks that the script runs, not a timing.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

from discosim.audit.estimators import audit_checkpoint
from discosim.checkpoints.synthetic import encode, write_safetensors
from discosim.model.router import Router
from discosim.model.selection import round_to_format


def _bf16_bytes(v):
    """Exact bf16 encoding of float64 values (rounded to nearest even first)."""
    return encode(round_to_format(v, "bf16"), "bfloat16")


# (M, D, k, dense layers, MoE layers, groups, groups kept) of the real shapes and of --smoke
SIZES = {"deepseek": (256, 7168, 8, 3, 58, 8, 4), "mixtral": (8, 4096, 2, 0, 32, None, None)}
SMOKE_SIZES = {"deepseek": (16, 64, 4, 1, 2, 4, 2), "mixtral": (8, 64, 2, 0, 2, None, None)}


def build(directory, shape, seed=0, sizes=SIZES):
    """Write a synthetic checkpoint of ``shape`` ('deepseek' or 'mixtral'); returns its path."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    M, D, k, n_dense, n_moe, n_group, topk_group = sizes[shape]
    if shape == "deepseek":
        cfg = {"model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"],
               "_name_or_path": "synthetic/deepseek-v3-shape", "hidden_size": D,
               "num_hidden_layers": n_dense + n_moe, "n_routed_experts": M,
               "num_experts_per_tok": k, "n_group": n_group, "topk_group": topk_group,
               "scoring_func": "sigmoid",
               "topk_method": "noaux_tc", "first_k_dense_replace": n_dense, "n_shared_experts": 1,
               "norm_topk_prob": True, "routed_scaling_factor": 2.5, "rms_norm_eps": 1e-6}
        gate = "model.layers.{i}.mlp.gate.weight"
    else:
        cfg = {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"],
               "_name_or_path": "synthetic/mixtral-shape", "hidden_size": D,
               "num_hidden_layers": n_moe, "num_local_experts": M, "num_experts_per_tok": k,
               "rms_norm_eps": 1e-5}
        gate = "model.layers.{i}.block_sparse_moe.gate.weight"
    tensors = {}
    for i in range(n_dense, n_dense + n_moe):
        tensors[gate.format(i=i)] = ("BF16", (M, D), _bf16_bytes(rng.standard_normal((M, D)) / np.sqrt(D)))
        tensors[f"model.layers.{i}.post_attention_layernorm.weight"] = (
            "BF16", (D,), _bf16_bytes(1.0 + 0.2 * rng.standard_normal(D)))
        if shape == "deepseek":
            tensors[f"model.layers.{i}.mlp.gate.e_score_correction_bias"] = (
                "F32", (M,), (0.05 * rng.standard_normal(M)).astype("<f4").tobytes())
    write_safetensors(os.path.join(directory, "model.safetensors"), tensors)
    with open(os.path.join(directory, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=1)
    return directory


def baseline_ratio(path, n=20_000, seed=0):
    """Seconds per input of full-D sampling + logits against the reduced path, on layer 0."""
    from discosim.checkpoints import open_checkpoint

    layer = open_checkpoint(path)[0]
    W = layer.weight
    M, D = W.shape
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    x = rng.standard_normal((n, D))
    x *= np.sqrt(D) / np.linalg.norm(x, axis=1, keepdims=True)
    _ = x @ W.T
    full = time.perf_counter() - t0
    router = Router(W, layer.k)
    t0 = time.perf_counter()
    g = rng.standard_normal((n, M))
    z = np.sqrt(D) * g / np.sqrt(np.sum(g * g, axis=1) + rng.chisquare(D - M, n))[:, None]
    _ = z @ router.reduced_weights.T
    reduced = time.perf_counter() - t0
    return full, reduced


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-jobs", type=int, default=1,
                    help="1 (default) measures CPU seconds exactly: on a shared machine wall time "
                         "says little; a quiet 2-core machine with --n-jobs 2 takes about CPU/2")
    ap.add_argument("--n-samples", type=int, default=None, help="default: the audit's own")
    ap.add_argument("--only", choices=("deepseek", "mixtral"))
    ap.add_argument("--smoke", action="store_true", help="toy sizes, seconds (no timing)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                    help="cuda: the margins and flips of the logits-only formats on the GPU")
    args = ap.parse_args(argv)
    targets = {"deepseek": 60.0, "mixtral": 60.0}
    n_samples, n_baseline = (200, 200) if args.smoke else (args.n_samples, 20_000)
    with tempfile.TemporaryDirectory() as tmp:
        for shape in ("mixtral", "deepseek"):
            if args.only and shape != args.only:
                continue
            t0 = time.perf_counter()
            path = build(os.path.join(tmp, shape), shape,
                         sizes=SMOKE_SIZES if args.smoke else SIZES)
            t_build = time.perf_counter() - t0
            full, reduced = baseline_ratio(path, n=n_baseline)
            t0, c0 = time.perf_counter(), time.process_time()
            res = audit_checkpoint(path, n_samples=n_samples, seed=0, n_jobs=args.n_jobs,
                                   progress=False, device=args.device,
                                   constants_samples=1000 if args.smoke else 20_000)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            # on two idle cores the chunks of a layer split evenly: wall ~ CPU / 2
            est = cpu / 2 if args.n_jobs == 1 and args.device == "cpu" else dt
            L = res.layers[0]
            flips = ", ".join(f"{f.format} {f.measured:.4g}±{f.stderr:.2g} (pred {f.predicted:.4g})"
                              for f in L.flips)
            verdict = ("smoke run, no target" if args.smoke else
                       f"target <= {targets[shape]:.0f} s: "
                       f"{'met' if est <= targets[shape] else 'MISSED'}")
            print(f"{shape:9s} {len(res.layers)} routers of {L.M}x{L.D}, k={L.k}: wall {dt:7.1f} s, "
                  f"CPU {cpu:7.1f} s in this process (n_jobs={args.n_jobs}, {args.device}); estimate "
                  f"{est:6.1f} s ({verdict}); n_samples={L.n_samples} per layer; "
                  f"build {t_build:.1f} s")
            print(f"          layer 0 flips: {flips}")
            print(f"          inputs + logits, layer 0, {n_baseline} inputs: full-D {full:.3f} s, "
                  f"reduced {reduced:.3f} s, ratio {full / reduced:.1f}x")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
