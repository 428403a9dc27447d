"""Benchmark: fast reduced-coordinate uniform volume estimator vs a naive full-D NumPy one.

Both estimate the same thing (fraction of B_D(0,1) in the order-1..3 score tubes at one eps):
the fast path through ``discosim.estimate_volumes`` (numba kernel, reduced coordinates, n_jobs
workers), the naive path by drawing D-dimensional points, multiplying by W and fully sorting the
scores. Same process, printed side by side with the ratio.

    python studies/benchmark_volume.py [--json] [--n-jobs 2] [--smoke]

``--smoke``: the smallest case at a few thousand samples, seconds; checks that the script runs,
not a timing.
"""

import argparse
import json
import math
import time

import numpy as np

from discosim import Router, estimate_volumes
from discosim.volumes.constants import slice_constants

CASES = [(8, 4096, 2), (64, 2048, 8), (8, 64, 2)]


def naive_fraction(router, eps, n, rng, rmax=3, batch=2000):
    """Full-D reference: uniform points in R^D, scores W x, full sort, window spreads."""
    M, D, k = router.n_experts, router.dim, router.k
    hits = np.zeros(rmax, dtype=np.int64)
    done = 0
    while done < n:
        m = min(batch, n - done)
        g = rng.standard_normal((m, D))
        x = g / np.linalg.norm(g, axis=1, keepdims=True) * rng.random(m)[:, None] ** (1.0 / D)
        s = np.sort(x @ router.weights.T, axis=1)[:, ::-1]
        for r in range(1, rmax + 1):
            spreads = [s[:, p - 1] - s[:, p + r - 1] for p in range(max(1, k - r + 1), min(k, M - r) + 1)]
            hits[r - 1] += int(np.sum(np.min(spreads, axis=0) <= eps))
        done += m
    return hits / n


def bench_case(M, D, k, n_jobs, fast_seconds=3.0, naive_seconds=3.0, first_n=1 << 20,
               first_m=2000):
    router = Router.gaussian(M, D, k, seed=0)
    eps = 0.05 / math.sqrt(D)  # a moderate tube: a few to tens of percent of the ball
    # predictions are not timed here: cheap Monte Carlo constants keep set-up out of the loop
    consts = {r: slice_constants(router, r, method="mc", n_samples=2000, seed=0) for r in (1, 2, 3)}
    run = lambda n: estimate_volumes(router, 1.0, [eps], orders=(1, 2, 3), metric="score",
                                     n_samples=n, seed=1, n_jobs=n_jobs, progress=False,
                                     constants=consts)
    run(min(1 << 16, first_n))  # compile and warm the workers
    n = first_n
    while True:
        t = time.perf_counter()
        res = run(n)
        dt = time.perf_counter() - t
        if dt > fast_seconds or n >= 1 << 28:
            break
        n = int(n * min(8, max(2, fast_seconds / max(dt, 1e-3))))
    fast = n / dt
    rng = np.random.default_rng(2)
    naive_fraction(router, eps, min(500, first_m), rng)
    m = first_m
    while True:
        t = time.perf_counter()
        frac = naive_fraction(router, eps, m, rng)
        ndt = time.perf_counter() - t
        if ndt > naive_seconds or m >= 1 << 22:
            break
        m *= 2
    naive = m / ndt
    agree = [res.estimate(0, r).value for r in (1, 2, 3)]
    return {"M": M, "D": D, "k": k, "n_jobs": n_jobs, "eps": eps,
            "fast_samples_per_s": fast, "naive_samples_per_s": naive, "speedup": fast / naive,
            "fast_fractions": agree, "naive_fractions": frac.tolist()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (no timing)")
    args = ap.parse_args(argv)
    if args.smoke:
        cases = [bench_case(8, 64, 2, args.n_jobs, fast_seconds=0.0, naive_seconds=0.0,
                            first_n=1 << 12, first_m=200)]
    else:
        cases = [bench_case(M, D, k, args.n_jobs) for M, D, k in CASES]
    if args.json:
        print(json.dumps({"cases": cases}))
        return
    print(f"{'M':>4} {'D':>5} {'k':>2} {'fast samples/s':>15} {'naive samples/s':>16} {'speedup':>9}")
    for c in cases:
        print(f"{c['M']:>4} {c['D']:>5} {c['k']:>2} {c['fast_samples_per_s']:15.3g} "
              f"{c['naive_samples_per_s']:16.3g} {c['speedup']:9.1f}x")


if __name__ == "__main__":
    main()
