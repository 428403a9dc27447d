"""CPU latency of `discosim volume` end to end, and n_jobs = 1 vs 2 (issue 11, item 7).

    python studies/benchmark_cpu_latency.py [--sizes 1e5 1e6 1e7] [--repeat 3] [--json] [--smoke]

Part 1 runs the command line as a user does (a fresh process: imports, cached kernels, the
estimate, the predictions) with and without the predictions, at n_jobs 1 and 2, and checks that
the numbers are bit-identical for both. Part 2 times, in one process, the estimator alone for the
persistent thread pool (the default backend) against the per-call loky process pool (the previous
default), so the ratios are side by side. Best of ``--repeat`` runs; the machine's load average is
printed because wall times mean little on a busy machine; the CPU seconds (user + system) of
each fresh process are printed beside them.

``--smoke``: one size of 2e4 samples, one repeat, small slice constants in a temporary cache,
seconds; checks that the script runs (and the bit-identity), not a timing.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROUTER = ["--M", "8", "--D", "64", "--k", "2"]
SMOKE_ROUTER = ["--M", "4", "--D", "16", "--k", "2"]  # few slices: its exact constants are quick


def cli_run(n, n_jobs, predict, env=None, prediction_samples=None, router=ROUTER):
    cmd = [sys.executable, "-m", "discosim", "volume", *router, "--eps", "0.01", "--n-samples",
           str(int(n)), "--seed", "1", "--n-jobs", str(n_jobs), "--json"]
    if not predict:
        cmd.append("--no-predict")
    elif prediction_samples is not None:
        cmd += ["--prediction-samples", str(int(prediction_samples))]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, check=True,
                       env=None if env is None else {**os.environ, **env})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    doc = json.loads(p.stdout)
    fractions = [o["fraction"] for item in doc["results"] for o in item["orders"].values()]
    return wall, fractions, cpu


NUMBA_FLOOR = """
import numpy as np, numba
@numba.njit(cache=True)
def f(x):
    return x[0] + 1
f(np.zeros(3))
"""


def numba_floor(repeat):
    """A fresh process that imports numba and calls one cached function: the floor under any
    numba-backed command (numba's first dispatch loads its typing registries)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "floor.py")
        with open(path, "w") as fh:
            fh.write(NUMBA_FLOOR)
        subprocess.run([sys.executable, path], check=True)  # compile and cache
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, path], check=True)
            best = min(best, time.perf_counter() - t0)
    return best


def constants_cache(n, repeat, prediction_samples=None, router=ROUTER):
    """End to end with predictions: an empty slice-constant cache, then a warm one."""
    with tempfile.TemporaryDirectory() as d:
        run = lambda: cli_run(n, 2, True, env={"DISCOSIM_CACHE_DIR": d},  # noqa: E731
                              prediction_samples=prediction_samples, router=router)[0]
        cold = run()
        warm = min(run() for _ in range(repeat))
    return cold, warm


def in_process(n, n_jobs, backend, repeat):
    from discosim import Router
    from discosim.volumes.estimators import estimate_volumes

    router = Router.gaussian(8, 64, 2, seed=0)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = estimate_volumes(router, 1.0, [0.01], n_samples=int(n), seed=1, n_jobs=n_jobs,
                               backend=backend, predict=False, progress=False)
        best = min(best, time.perf_counter() - t0)
    return best, res.fraction


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="one tiny size, seconds (no timing)")
    args = ap.parse_args(argv)
    # the smoke run's constants are small and go to a temporary cache, not the user's
    smoke_cache = tempfile.TemporaryDirectory() if args.smoke else None
    if smoke_cache is not None:
        os.environ["DISCOSIM_CACHE_DIR"] = smoke_cache.name
        args.sizes, args.repeat = [2e4], 1
    cache_n, cache_label, pred_n = (2e4, "2e4", 2000) if args.smoke else (1e6, "1e6", None)
    router = SMOKE_ROUTER if args.smoke else ROUTER
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    out = {"cores": os.cpu_count(), "load_average_1min": load, "end_to_end": [], "in_process": []}
    floor = numba_floor(args.repeat)
    cold, warm = constants_cache(cache_n, args.repeat, pred_n, router)
    out["numba_floor_s"] = floor
    out[f"constants_cache_{cache_label}"] = {"cold_s": cold, "warm_s": warm}
    if not args.json:
        print(f"cores: {os.cpu_count()}, load average (1 min): {load:.2f}")
        print(f"floor: a fresh process calling one cached numba function: {floor:.3f} s")
        print(f"{cache_label} samples with predictions, n_jobs=2: {cold:.3f} s with an empty "
              f"constants cache, {warm:.3f} s with a warm one (target 1 s: {warm / 1.0:.2f}x)")
        print("\nend to end (fresh process, best of repeats), seconds")
        print(f"{'samples':>10} {'predict':>8} {'n_jobs=1':>9} {'n_jobs=2':>9} {'2 / 1':>6} "
              f"{'cpu 1':>7} {'cpu 2':>7} {'identical':>10}")
    for n in args.sizes:
        for predict in (False, True):
            t, fr, cpu = {}, {}, {}
            for j in (1, 2):
                runs = [cli_run(n, j, predict, prediction_samples=pred_n, router=router)
                        for _ in range(args.repeat)]
                t[j] = min(r[0] for r in runs)
                cpu[j] = min(r[2] for r in runs)
                fr[j] = runs[0][1]
            same = fr[1] == fr[2]
            row = {"samples": n, "predict": predict, "n_jobs_1_s": t[1], "n_jobs_2_s": t[2],
                   "ratio_2_over_1": t[2] / t[1], "cpu_1_s": cpu[1], "cpu_2_s": cpu[2],
                   "bit_identical": same}
            out["end_to_end"].append(row)
            if not args.json:
                print(f"{n:10.0e} {str(predict):>8} {t[1]:9.3f} {t[2]:9.3f} {t[2] / t[1]:6.2f} "
                      f"{cpu[1]:7.2f} {cpu[2]:7.2f} {str(same):>10}", flush=True)
    if not args.json:
        print("\nestimator only, in one process (kernels loaded), seconds")
        print(f"{'samples':>10} {'1 job':>8} {'2 threads':>10} {'2 loky':>8} {'threads/1':>10} "
              f"{'loky/1':>7} {'identical':>10}")
    in_process(min(1e5, min(args.sizes)), 1, "threads", 1)  # load the cached kernels once
    for n in args.sizes:
        t1, f1 = in_process(n, 1, "threads", args.repeat)
        t2, f2 = in_process(n, 2, "threads", args.repeat)
        tl, fl = in_process(n, 2, "loky", args.repeat)
        same = bool((f1 == f2).all() and (f1 == fl).all())
        row = {"samples": n, "one_job_s": t1, "threads_2_s": t2, "loky_2_s": tl,
               "threads_over_one": t2 / t1, "loky_over_one": tl / t1, "bit_identical": same}
        out["in_process"].append(row)
        if not args.json:
            print(f"{n:10.0e} {t1:8.3f} {t2:10.3f} {tl:8.3f} {t2 / t1:10.2f} {tl / t1:7.2f} "
                  f"{str(same):>10}")
    if args.json:
        print(json.dumps(out))
    if smoke_cache is not None:
        smoke_cache.cleanup()


if __name__ == "__main__":
    main()
