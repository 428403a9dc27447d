"""GPU benchmark of issue 11: samples/s of the volume sampler, path steps/s of first exit.

Fast path (discosim's CUDA kernels) and baselines side by side, ratios printed:

- uniform volume sampler, (M, k) in {(8, 2), (64, 8), (256, 8)}, D = 4096, score and euclidean
  metrics; the tube (importance) sampler of order 1 at the same shapes, beside the CPU tube
  sampler on all of the machine's cores in the same process;
- the same-run PyTorch baseline a researcher would write (torch.randn, chi-square, matmul,
  topk) for the score metric, where torch is installed;
- first-exit path steps/s at M = 8, k = 2, D = 4096 against the 2-core CPU kernel. The CPU
  number is measured on the 2-core reference machine with ``--cpu-only --json > cpu.json`` and
  handed to the GPU run with ``--cpu-reference cpu.json`` (measured in-run otherwise);
- ``--sections occupation,audit``: occupation-time path steps/s (score tubes, M = 8) and the
  audit's inputs/s (margins and bf16/fp16 flips, M = 8 at D = 4096 and M = 256 at D = 7168), each
  on the GPU beside the CPU kernels on all of that machine's cores, in the same process.

Usage::

    python studies/benchmark_gpu.py --cpu-only --json > cpu.json      # on the 2-core machine
    python studies/benchmark_gpu.py --json --cpu-reference cpu.json   # on the GPU machine
    python studies/benchmark_gpu.py --json --sections paths --paths 262144   # one section
    python studies/benchmark_gpu.py --scaling --json   # 1, 2, 4, ... visible GPUs (issue 12)
    python studies/benchmark_gpu.py --smoke            # seconds: every section at toy sizes

``--scaling`` checks that the counts (volume) and exit times (paths) are identical for every
device count and reports the efficiency ``rate(n) / (n rate(1))``.

``--smoke`` runs every section at toy sizes, each timed once (it checks that the script runs,
not a rate); without a usable GPU it says so in one line, skips the GPU sections and runs their
CPU sides (tube sampler, first exit, occupation, audit), which is not a failure.

Timings exclude compilation (each kernel is run once on a small input first; its time is
reported as ``first_call_s``) and include the float64 recomputation of the samples float32 does
not resolve (on the device for the score metric, on the host for the euclidean screening).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

from discosim.model.router import Router

D = 4096
SHAPES = [(8, 2), (64, 8), (256, 8)]
TARGETS = {"score_uniform_samples_per_s": {"8,2": 4e10, "64,8": 1.5e9, "256,8": 2.5e8},
           "torch_ratio_8_2": 50.0, "path_steps_ratio": 100.0}
# at D = 4096 the reduced points have |z| ~ R sqrt(M/D), so score gaps are ~1e-3 and these eps
# hold 0.1-10% of the ball
EPS = np.array([1e-4, 1e-3])  # score metric
EPS_EUCLID = np.array([1e-6, 1e-5])  # euclidean: the host sees O(eps) of the samples
ORDERS = 3


def _router(M, k, seed=0):
    return Router.gaussian(M, D, k, seed=seed)


# --smoke times every call once: the numbers say the script runs, not how fast
TIMING = {"smoke": False}


def _timed(fn, min_s=1.0, max_reps=20):
    """Median wall time of fn() over repeats summing to about ``min_s``."""
    times = []
    t_all = time.perf_counter()
    while len(times) < max_reps:
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        if TIMING["smoke"] or (time.perf_counter() - t_all > min_s and len(times) >= 2):
            break
    return float(np.median(times)), out


def gpu_volume(M, k, metric, n, devices=(0,)):
    from discosim._cuda.rng import run_key
    from discosim._cuda.volumes.uniform import uniform_counts

    r = _router(M, k)
    eps = EPS if metric == "score" else EPS_EUCLID
    code = {"score": 2, "euclidean": 0}[metric]
    key = run_key(np.random.SeedSequence(1))
    t = time.perf_counter()
    uniform_counts(r, 1.0, eps, ORDERS, code, False, 1 << 16, key, list(devices))  # compile
    compile_s = time.perf_counter() - t
    sec, (counts, handed) = _timed(lambda: uniform_counts(r, 1.0, eps, ORDERS, code, False, n,
                                                          key, list(devices)))
    return {"M": M, "k": k, "metric": metric, "method": "uniform", "n_samples": n,
            "n_devices": len(devices), "seconds": sec, "samples_per_s": n / sec,
            "first_call_s": compile_s, "handed_back_for_float64": int(handed),
            "counts": counts.tolist(), "fraction_order1": [float(c) / n for c in counts[0]]}


TUBE_EPS = {"score": 1e-3, "euclidean": 1e-3}


def gpu_tube(M, k, metric, n, devices=(0,)):
    """The tube (importance) sampler of order 1 at one eps on the GPU."""
    from discosim._cuda.rng import run_key
    from discosim._cuda.volumes.tube import tube_sums

    r = _router(M, k)
    code = {"score": 2, "euclidean": 0}[metric]
    key = run_key(np.random.SeedSequence(2))
    t = time.perf_counter()
    threads = os.cpu_count() or 1  # host threads scoring the handed-back rows
    tube_sums(r, 1, 1.0, TUBE_EPS[metric], code, 1 << 12, key, list(devices), threads)  # compile
    compile_s = time.perf_counter() - t
    sec, (out, handed) = _timed(lambda: tube_sums(r, 1, 1.0, TUBE_EPS[metric], code, n, key,
                                                  list(devices), threads))
    return {"M": M, "k": k, "metric": metric, "method": "tube", "order": 1,
            "eps": TUBE_EPS[metric], "n_samples": n, "seconds": sec, "samples_per_s": n / sec,
            "first_call_s": compile_s, "scored_on_host": int(handed),
            "fraction": out[0] / n, "stderr": math.sqrt(max(out[1] / n - (out[0] / n) ** 2, 0) / n)}


def cpu_tube(M, k, metric, n, n_jobs):
    """The CPU tube sampler on ``n_jobs`` cores, same router, order and eps."""
    from discosim.volumes.estimators import estimate_volumes

    r = _router(M, k)
    estimate_volumes(r, 1.0, [TUBE_EPS[metric]], (1,), metric=metric, method="tube",
                     n_samples=256, seed=2, predict=False, n_jobs=n_jobs)  # load the kernels
    t = time.perf_counter()
    res = estimate_volumes(r, 1.0, [TUBE_EPS[metric]], (1,), metric=metric, method="tube",
                           n_samples=n, seed=2, predict=False, n_jobs=n_jobs)
    sec = time.perf_counter() - t
    est = res.estimate(0, 1)
    return {"M": M, "k": k, "metric": metric, "method": "tube", "device": "cpu",
            "n_jobs": n_jobs, "n_samples": n, "seconds": sec, "samples_per_s": n / sec,
            "fraction": est.value, "stderr": est.stderr}


def torch_volume(M, k, n_batch, reps):
    import torch

    dev = "cuda"
    r = _router(M, k)
    W = torch.tensor(r.reduced_weights, dtype=torch.float32, device=dev)
    chi2 = torch.distributions.Chi2(torch.tensor(float(D + 2 - M), device=dev))
    eps = float(EPS[0])

    def run():
        hits = 0
        for _ in range(reps):
            g = torch.randn(n_batch, M, device=dev)
            c = chi2.sample((n_batch,))
            z = g / torch.sqrt((g * g).sum(1) + c)[:, None]
            top = (z @ W.T).topk(k + 1, dim=1).values
            hits += int(((top[:, k - 1] - top[:, k]) <= eps).sum())  # syncs
        return hits

    run()
    sec, _ = _timed(run)
    n = n_batch * reps
    return {"M": M, "k": k, "n_samples": n, "seconds": sec, "samples_per_s": n / sec}


PATH = dict(M=8, k=2, sigma=0.01, t_max=2.0, dt=1e-3)


def _path_setup():
    r = _router(PATH["M"], PATH["k"], seed=3)
    x0 = np.random.default_rng(3).standard_normal(D) / math.sqrt(D)
    return r, x0


def _steps(res, n_steps, dt):
    tau = res.tau
    done = np.where(np.isfinite(tau), np.minimum(np.floor(tau / dt) + 1, n_steps), n_steps)
    return float(done.sum())


def path_steps(device, n_paths, n_jobs=1, devices=None):
    from discosim.diffusion.estimators import simulate_first_exit

    r, x0 = _path_setup()
    kw = dict(device=device, devices=devices) if device == "cuda" else dict(n_jobs=n_jobs)
    # warm-up with exits, so that the refinement kernel is compiled too (12 s on an H100) before
    # the timed runs
    simulate_first_exit(r, x0, PATH["sigma"], PATH["t_max"], PATH["dt"], 256, seed=0, **kw)
    sec, res = _timed(lambda: simulate_first_exit(r, x0, PATH["sigma"], PATH["t_max"], PATH["dt"],
                                                  n_paths, seed=1, **kw), min_s=2.0)
    steps = _steps(res, res.n_steps, PATH["dt"])
    tau = res.tau[np.isfinite(res.tau)]
    return {**PATH, "D": D, "device": device, "n_jobs": n_jobs, "n_paths": n_paths,
            "n_devices": len(devices) if devices else None,
            "seconds": sec, "steps": steps, "steps_per_s": steps / sec,
            "fraction_exited": float(np.isfinite(res.tau).mean()),
            "tau_digest": [int(tau.size), float(np.sum(tau))]}


OCC = dict(M=8, k=2, sigma=0.05, t_max=0.5, dt=1e-3, eps=(1e-3, 1e-2), metric="score")


def occupation_steps(device, n_paths, n_jobs=1):
    """Path steps/s of the occupation times (score tubes, orders 1..3) from random ball starts."""
    from discosim.diffusion.estimators import estimate_occupation

    r = _router(OCC["M"], OCC["k"], seed=4)
    kw = dict(device=device) if device == "cuda" else dict(n_jobs=n_jobs)
    run = lambda n, seed: estimate_occupation(r, None, OCC["sigma"], OCC["t_max"], OCC["dt"], n,  # noqa: E731
                                              OCC["eps"], metric=OCC["metric"], seed=seed, **kw)
    run(256, 0)
    sec, res = _timed(lambda: run(n_paths, 1), min_s=2.0)
    steps = n_paths * round(OCC["t_max"] / OCC["dt"])
    return {**OCC, "D": D, "device": device, "n_jobs": n_jobs, "n_paths": n_paths,
            "seconds": sec, "steps_per_s": steps / sec,
            "mean_order1_eps2": float(res.mean[-1, 0, 1]),
            "stderr_order1_eps2": float(res.stderr[-1, 0, 1])}


def audit_samples(device, M, k, dim, n, n_jobs=1):
    """Inputs/s of the audit's margins and bf16/fp16 flips on one synthetic layer (sphere)."""
    from types import SimpleNamespace

    from discosim.audit.estimators import audit_layers

    W = np.random.default_rng(5).standard_normal((M, dim)) * 0.02
    layer = SimpleNamespace(name="layers.0.gate.weight", index=0, family="bench", weight=W,
                            bias=None, selection_bias=None, k=k, routing="topk", n_group=None,
                            topk_group=None, norm_folded=True, norm_type="rmsnorm")
    kw = dict(device=device) if device == "cuda" else dict(n_jobs=n_jobs)
    run = lambda m, seed: audit_layers([layer], n_samples=m, seed=seed, constants_samples=0,  # noqa: E731
                                       **kw).layers[0]
    run(1000, 0)
    sec, res = _timed(lambda: run(n, 1), min_s=2.0)
    bf = res.flips[0]
    return {"M": M, "k": k, "D": dim, "device": device, "n_jobs": n_jobs, "n_samples": n,
            "seconds": sec, "samples_per_s": n / sec, "bf16_flip": bf.measured,
            "bf16_flip_stderr": bf.stderr, "bf16_predicted": bf.predicted}


def scaling(n_max):
    """Samples/s and path steps/s on 1, 2, 4, ... devices; the numbers must not change."""
    rows = []
    counts = [1]
    while counts[-1] * 2 <= n_max:
        counts.append(counts[-1] * 2)
    if counts[-1] != n_max:
        counts.append(n_max)
    n_of = {8: 1 << 37, 256: 1 << 29}
    for M, k in ((8, 2), (256, 8)):
        for nd in counts:
            rows.append(gpu_volume(M, k, "score", n_of[M], devices=tuple(range(nd))))
            print(rows[-1], file=sys.stderr, flush=True)
    for nd in counts:
        rows.append(path_steps("cuda", 1 << 23, devices=list(range(nd))))
        print(rows[-1], file=sys.stderr, flush=True)

    out = {"device_counts": counts, "rows": rows, "identical": {}, "efficiency": {}}
    for name in ("8,2", "256,8", "paths"):
        grp = [v for v in rows if (name == "paths") == ("dt" in v)
               and (name == "paths" or f"{v['M']},{v['k']}" == name)]
        field = "tau_digest" if name == "paths" else "counts"
        rate = "steps_per_s" if name == "paths" else "samples_per_s"
        out["identical"][name] = all(v[field] == grp[0][field] for v in grp)
        out["efficiency"][name] = {str(counts[i]):
                                   grp[i][rate] / (counts[i] * grp[0][rate])
                                   for i in range(len(grp))}
    out["meets"] = {"identical": all(out["identical"].values()),
                    "efficiency_0.9": all(e >= 0.9 for g in out["efficiency"].values()
                                          for e in g.values())}
    return out


def cpu_reference(n_paths=512):
    from discosim._core.cache import code_version

    return {"machine": f"{os.cpu_count()} cores", "code_version": code_version(),
            "paths": path_steps("cpu", n_paths, n_jobs=min(2, os.cpu_count() or 1))}


AUDIT_SHAPES = ((8, 2, 4096), (256, 8, 7168))


def cpu_smoke():
    """The CPU sides of every section at toy sizes (``--smoke`` without a GPU)."""
    # the tube sampler at M = 256 runs the same kernel as at 64, 5x slower per sample
    return {"volume": [cpu_tube(M, k, "score", 512, 1) for M, k in SHAPES[:2]],
            "cpu_reference": cpu_reference(64),
            "occupation": [occupation_steps("cpu", 64)],
            "audit": [audit_samples("cpu", M, k, dim, 1000) for M, k, dim in AUDIT_SHAPES]}


def load_cpu_reference(path):
    """A ``--cpu-only`` result, refused for other path settings and flagged for other code: a
    reference measured with an older kernel (7.7e5 steps/s against 4.6e6 now) once made the
    GPU ratio 6x too flattering."""
    from discosim._core.cache import code_version

    with open(path) as fh:
        ref = json.load(fh)["cpu_reference"]
    other = {k: (ref["paths"].get(k), v) for k, v in {**PATH, "D": D}.items()
             if ref["paths"].get(k) != v}
    if other:
        sys.exit(f"benchmark_gpu: {path} was measured with other path settings {other}")
    ref["stale"] = ref.get("code_version") != code_version()
    if ref["stale"]:
        print(f"benchmark_gpu: warning: {path} was measured with code {ref.get('code_version')}, "
              f"this is {code_version()}: re-measure it with --cpu-only", file=sys.stderr)
    return ref


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--cpu-only", action="store_true", help="only the 2-core CPU reference")
    ap.add_argument("--cpu-reference", help="JSON of a --cpu-only run on the reference machine")
    ap.add_argument("--quick", action="store_true", help="runs 64x smaller")
    ap.add_argument("--smoke", action="store_true",
                    help="every section at toy sizes, seconds; CPU sides only without a GPU")
    ap.add_argument("--sections", default="volume,torch,paths",
                    help="comma-separated subset of volume, torch, paths, occupation, audit "
                         "(default: the first three)")
    ap.add_argument("--paths", type=int, default=1 << 18, help="paths of the first-exit run")
    ap.add_argument("--scaling", action="store_true",
                    help="multi-GPU run: 1, 2, 4, ... visible devices, same numbers, efficiency")
    args = ap.parse_args(argv)
    doc = {"D": D, "targets": TARGETS}
    if args.smoke:
        from discosim._core.devices import cuda_available

        TIMING["smoke"] = True
        args.sections = "volume,torch,paths,occupation,audit"
        if args.cpu_only or not cuda_available():
            print("benchmark_gpu: no usable GPU: the GPU sections are skipped; their CPU sides "
                  "run at toy sizes", flush=True)
            doc.update(cpu_smoke())
            if args.json:
                print(json.dumps(doc, indent=1))
            else:
                for v in doc["volume"] + doc["occupation"] + doc["audit"]:
                    rate = "samples_per_s" if "samples_per_s" in v else "steps_per_s"
                    print(f"cpu M={v['M']:3d} k={v['k']} {v.get('metric', 'audit'):9s} "
                          f"{v[rate]:.3g} {rate.replace('_per_s', '')}/s")
                print(f"cpu reference: {doc['cpu_reference']['paths']['steps_per_s']:.3g} steps/s")
            return 0
    if args.cpu_only:
        doc["cpu_reference"] = cpu_reference()
    elif args.scaling:
        from discosim._core.devices import cuda_module

        cuda = cuda_module()
        names = [g.name.decode() if isinstance(g.name, bytes) else g.name for g in cuda.gpus]
        doc["devices"] = names
        doc["scaling"] = scaling(len(names))
    else:
        from discosim._core.devices import cuda_module

        cuda = cuda_module()
        doc["device"] = cuda.get_current_device().name
        doc["device"] = doc["device"].decode() if isinstance(doc["device"], bytes) else doc["device"]
        scale = 2.0 ** -22 if args.smoke else 1 / 64 if args.quick else 1

        def sized(n, least=1024):  # the run's share of a full-size count (a floor for --smoke)
            return max(int(n * scale), least)
        sections = set(args.sections.split(","))
        n_of = {8: 1 << 36, 64: 1 << 31, 256: 1 << 29}
        doc["volume"] = []
        for M, k in SHAPES if "volume" in sections else ():
            for metric in ("score", "euclidean"):
                # euclidean: the host computes exact distances of the screened samples
                n = sized(n_of[M]) if metric == "score" else sized(1 << 24)
                doc["volume"].append(gpu_volume(M, k, metric, n))
                print(json.dumps(doc["volume"][-1]), file=sys.stderr, flush=True)
            for metric in ("score", "euclidean"):
                cores = os.cpu_count()
                doc["volume"].append(gpu_tube(M, k, metric, sized(1 << 22)))
                # 64 chunks of TUBE_CHUNK at least: every core busy (2^15 samples, two chunks,
                # kept two threads busy and made the ratio 8x too large)
                doc["volume"].append(cpu_tube(M, k, metric, sized(1 << 20), cores))
                g, c = doc["volume"][-2:]
                g["vs_cpu_cores"] = {"n_jobs": cores, "ratio": g["samples_per_s"] / c["samples_per_s"]}
                print(json.dumps(doc["volume"][-2:]), file=sys.stderr, flush=True)
        doc["torch"] = None
        if "torch" in sections:
            try:
                import torch  # noqa: F401  (installed?)
            except ImportError:
                pass
            else:
                doc["torch"] = []
                for M, k in SHAPES:
                    n_batch = 1 << 10 if args.smoke else 1 << 22 if M < 256 else 1 << 20
                    doc["torch"].append(torch_volume(M, k, n_batch, 2 if args.smoke else 8))
                    print(json.dumps(doc["torch"][-1]), file=sys.stderr, flush=True)
        if args.cpu_reference:
            doc["cpu_reference"] = load_cpu_reference(args.cpu_reference)
        elif "paths" in sections:
            doc["cpu_reference"] = cpu_reference(64 if args.smoke else 512)
        if "paths" in sections:
            doc["paths_gpu"] = path_steps("cuda", sized(args.paths, 256))
            print(json.dumps(doc["paths_gpu"]), file=sys.stderr, flush=True)
        if "occupation" in sections:  # GPU beside this machine's CPU (all its cores)
            cores = os.cpu_count()
            doc["occupation"] = [occupation_steps("cuda", sized(1 << 20, 256)),
                                 occupation_steps("cpu", sized(4096, 64), n_jobs=cores)]
            print(json.dumps(doc["occupation"]), file=sys.stderr, flush=True)
        if "audit" in sections:
            cores = os.cpu_count()
            doc["audit"] = []
            for M, k, dim in AUDIT_SHAPES:
                doc["audit"].append(audit_samples("cuda", M, k, dim, sized(1 << 26, 1000)))
                doc["audit"].append(audit_samples("cpu", M, k, dim, sized(1 << 20, 1000),
                                                  n_jobs=cores))
                print(json.dumps(doc["audit"][-2:]), file=sys.stderr, flush=True)
        sc = {f"{v['M']},{v['k']}": v["samples_per_s"] for v in doc["volume"]
              if v.get("metric") == "score" and v["method"] == "uniform"}
        ratio_t = (sc["8,2"] / doc["torch"][0]["samples_per_s"]
                   if doc["torch"] and "8,2" in sc else None)
        ratio_p = (doc["paths_gpu"]["steps_per_s"] / doc["cpu_reference"]["paths"]["steps_per_s"]
                   if "paths_gpu" in doc else None)
        doc["ratios"] = {"torch_8_2": ratio_t, "path_steps_vs_cpu": ratio_p}
        doc["meets"] = {**{f"score_uniform_{key}": sc[key] >= t
                           for key, t in TARGETS["score_uniform_samples_per_s"].items()
                           if key in sc},
                        "torch_ratio_8_2": None if ratio_t is None
                        else ratio_t >= TARGETS["torch_ratio_8_2"],
                        "path_steps_ratio": None if ratio_p is None
                        else ratio_p >= TARGETS["path_steps_ratio"]}
    if args.json:
        print(json.dumps(doc, indent=1))
    elif "scaling" in doc:
        print(json.dumps({k: doc["scaling"][k] for k in ("identical", "efficiency", "meets")}))
    else:
        for v in doc.get("volume", []):
            if "samples_per_s" in v:
                print(f"M={v['M']:3d} k={v['k']} {v['metric']:9s} {v['samples_per_s']:.3g} samples/s")
        for t in doc.get("torch") or []:
            print(f"torch M={t['M']:3d} k={t['k']} {t['samples_per_s']:.3g} samples/s")
        for key in ("paths_gpu",):
            if key in doc:
                print(f"{key}: {doc[key]['steps_per_s']:.3g} steps/s")
        if "cpu_reference" in doc:
            print(f"cpu reference: {doc['cpu_reference']['paths']['steps_per_s']:.3g} steps/s")
        if "ratios" in doc:
            print("ratios:", doc["ratios"], "meets:", doc["meets"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
