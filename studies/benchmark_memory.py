"""Benchmark: bytes per entry of every code path whose memory grows with a request (issue 21).

Each case runs one command (``discosim.app.cli.main.main``) or one function in a fresh Python
process at two sizes and reads the process's peak resident memory (``VmHWM`` of
``/proc/self/status``) when it ends; the slope between the two sizes is the path's cost per entry
and the intercept its fixed part. :data:`discosim._core.memory.COST` holds these numbers (rounded
up); rerun this after changing a path and update it.

Usage: ``python studies/benchmark_memory.py [--only NAME ...] [--json FILE] [--smoke]``
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

RUNNER = r"""
import sys, json
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
kind, payload = sys.argv[1], json.loads(sys.argv[2])
if kind == "cli":
    from discosim.app.cli.main import main
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(payload)
else:
    exec(payload)
    code = 0
print(json.dumps({"code": code, "peak": hwm()}))
"""


def peak(kind, payload):
    """Peak RSS in bytes of one fresh process running ``payload``."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", RUNNER, kind, json.dumps(payload)],
                         capture_output=True, text=True, env=env, check=False)
    try:
        doc = json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError(f"{payload!r} failed: {out.stderr[-2000:]}") from None
    if doc["code"] != 0:
        raise RuntimeError(f"{payload!r} exited {doc['code']}: {out.stderr[-500:]}")
    return doc["peak"]


def smoke_cases(tmp):
    """Two cases at small sizes (seconds): the machinery, not the constants."""
    from discosim.checkpoints.synthetic import make_checkpoint

    vol = ["volume", "--k", "1", "--eps", "0.1", "--n-samples", "1000", "--seed", "1", "--json"]
    ck8 = make_checkpoint(os.path.join(tmp, "ck8"), "mixtral", n_layers=1, n_experts=8, dim=32,
                          shards=1)
    return {"router (volume, random)": ("router", [
                (2 * D, "cli", vol + ["--M", "2", "--D", str(D)]) for D in (200_000, 1_000_000)]),
            "audit margins": ("audit_sample", [
                (n, "cli", ["audit", ck8, "--n-samples", str(n), "--constants-samples", "0",
                            "--seed", "1", "--json", "--formats", "bf16"])
                for n in (50_000, 500_000)])}


def cases(tmp):
    """name -> (path in COST, [(entries, kind, payload), (entries, kind, payload)])."""
    from discosim.checkpoints.synthetic import make_checkpoint

    vol = ["volume", "--k", "1", "--eps", "0.1", "--n-samples", "1000", "--seed", "1", "--json"]
    smooth = ["smooth", "--k", "1", "--etas", "0.01", "--deltas", "1e-3", "1e-2",
              "--n-samples", "1000", "--seed", "1", "--json"]
    out = {}
    out["router (volume, random)"] = ("router", [
        (2 * D, "cli", vol + ["--M", "2", "--D", str(D)]) for D in (2_000_000, 6_000_000)])
    out["router (hit, random)"] = ("router", [
        (2 * D, "cli", ["hit", "--M", "2", "--D", str(D), "--k", "1", "--sigma", "1",
                        "--t-max", "0.1", "--dt", "0.01", "--times", "0.1", "--n-paths", "100",
                        "--seed", "1", "--json"]) for D in (2_000_000, 6_000_000)])
    files = []
    for D in (2_000_000, 6_000_000):
        f = os.path.join(tmp, f"w{D}.npy")
        np.save(f, np.random.default_rng(0).standard_normal((2, D)).astype(np.float32))
        files.append((2 * D, "cli", ["volume", "--router", f] + vol[1:]))
    out["router (volume, .npy file)"] = ("router", files)
    out["smooth continuity points"] = ("continuity_point", [
        (n * 100_000, "cli", smooth + ["--M", "2", "--D", "100000", "--out-dim", "1",
                                       "--n-points", str(n)]) for n in (40, 200)])
    out["smooth expert weights"] = ("expert_weight", [
        (2 * o * 100_000, "cli", smooth + ["--M", "2", "--D", "100000", "--out-dim", str(o),
                                           "--n-points", "2"]) for o in (40, 200)])
    out["smooth expert outputs"] = ("expert_output", [
        (2000 * 32 * o, "cli", smooth + ["--M", "32", "--D", "33", "--out-dim", str(o),
                                         "--n-points", "2000"]) for o in (100, 500)])
    ck8 = make_checkpoint(os.path.join(tmp, "ck8"), "mixtral", n_layers=1, n_experts=8, dim=32,
                          shards=1)
    # the checkpoint first: --formats takes every word after it
    audit = ["--constants-samples", "0", "--seed", "1", "--json", "--formats", "bf16"]
    out["audit margins"] = ("audit_sample", [
        (n, "cli", ["audit", ck8, "--n-samples", str(n)] + audit) for n in (2_000_000, 6_000_000)])
    wide = []
    for D in (2_000_000, 6_000_000):
        wide.append((2 * D, "cli", ["audit", _wide_router(os.path.join(tmp, f"wide{D}"), D),
                                    "--n-samples", "1000"] + audit))
    out["audit router (bf16)"] = ("audit_router", wide)
    ck = make_checkpoint(os.path.join(tmp, "ck1000"), "mixtral", n_layers=1, n_experts=8,
                         dim=1000, shards=1)
    name = "model.layers.0.block_sparse_moe.gate.weight"
    hidden = []
    for N in (50_000, 250_000):
        f = os.path.join(tmp, f"h{N}.npz")
        np.savez(f, **{name: np.random.default_rng(1).standard_normal((N, 1000)).astype(np.float32)})
        hidden.append((N * 1000 * 4, "cli", ["audit", ck, "--inputs", f] + audit))
    out["audit hidden states (.npz float32, bytes)"] = ("bytes", hidden)
    hidden = []
    for N in (40_000, 160_000):
        f = os.path.join(tmp, f"h{N}.npy")
        np.save(f, np.random.default_rng(1).standard_normal((N, 1000)))
        hidden.append((N * 1000 * 8, "cli", ["audit", ck, "--inputs", f] + audit))
    out["audit hidden states (.npy float64, bytes)"] = ("bytes", hidden)
    from discosim.checkpoints.synthetic import _decoder_layout

    out["synthetic writer"] = ("synthetic", [
        (sum(int(np.prod(s)) for _, _, s in _decoder_layout("mixtral", 1, 2, D, 16)[0]), "py",
         "from discosim.checkpoints.synthetic import make_checkpoint as m; "
         f"m({os.path.join(tmp, f'syn{D}')!r}, 'mixtral', n_layers=1, n_experts=2, "
         f"dim={D}, k=1, shards=1)") for D in (40_000, 120_000)])
    heads = []
    for n in (50_000, 250_000):
        f = os.path.join(tmp, f"many{n}.safetensors")
        _many_tensors(f, n)
        heads.append((os.path.getsize(f), "py",
                      f"from discosim.model.safetensors import read_header; read_header({f!r})"))
    out["safetensors header (bytes)"] = ("header", heads)
    out["simulate_first_exit"] = ("exit_point", [
        (n * 3, "py", "from discosim import Router, simulate_first_exit; "
                      "r = Router.gaussian(2, 4, 1, seed=0); "
                      f"simulate_first_exit(r, None, 1.0, 0.05, 0.01, {n}, seed=1)")
        for n in (2_000_000, 10_000_000)])
    return out


def _wide_router(directory, D):
    """A one-layer Mixtral-style checkpoint with a 2 x D bf16 router and its norm, nothing else
    (the synthetic writer also writes (16, D) attention tensors, 13 times the router)."""
    from discosim.checkpoints.synthetic import encode, write_safetensors

    os.makedirs(directory)
    rng = np.random.default_rng(0)
    router = np.round(rng.standard_normal((2, D)) * 64) / 64
    write_safetensors(os.path.join(directory, "model.safetensors"), {
        "model.layers.0.block_sparse_moe.gate.weight": ("BF16", (2, D), encode(router, "bfloat16")),
        "model.layers.0.post_attention_layernorm.weight": ("BF16", (D,),
                                                           encode(np.ones(D), "bfloat16"))})
    with open(os.path.join(directory, "config.json"), "w") as fh:
        json.dump({"model_type": "mixtral", "num_experts_per_tok": 1, "num_local_experts": 2,
                   "hidden_size": D}, fh)
    return directory


def _many_tensors(path, n):
    """A safetensors file of n one-entry float32 tensors with real-length names."""
    from discosim.checkpoints.synthetic import write_safetensors

    write_safetensors(path, {f"model.layers.{i // 1000}.mlp.experts.{i % 1000}.down_proj.weight":
                             ("F32", (1,), b"\0\0\0\0") for i in range(n)})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", help="names (substrings) of the cases to run")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--smoke", action="store_true",
                    help="two cases at small sizes (seconds): checks the script, not the costs")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (path, runs) in (smoke_cases if args.smoke else cases)(tmp).items():
            if args.only and not any(o in name for o in args.only):
                continue
            (n1, k1, p1), (n2, k2, p2) = runs
            b1, b2 = peak(k1, p1), peak(k2, p2)
            slope = (b2 - b1) / (n2 - n1)
            rows.append({"case": name, "cost": path, "entries": [n1, n2], "peak_bytes": [b1, b2],
                         "bytes_per_entry": slope, "fixed_mib": (b1 - slope * n1) / 2 ** 20})
            print(f"{name:<42} {path:<17} {n1:>11.3g} -> {n2:>9.3g} entries: peak "
                  f"{b1 / 2**20:7.1f} -> {b2 / 2**20:7.1f} MiB, {slope:6.2f} B/entry, fixed "
                  f"{rows[-1]['fixed_mib']:6.1f} MiB", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
