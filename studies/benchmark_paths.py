"""Benchmark: reduced-coordinate first-exit kernel vs a naive full-D NumPy Euler simulation.

Both simulate the same first-hit estimator (paths of x0 + sigma B_t until the top-k set
changes, sign-change detection on the same grid); the fast one in R^M with numba, the naive one
in R^D. Same process, printed side by side with the ratio of paths*steps per second.

    python studies/benchmark_paths.py [--json] [--smoke]

``--smoke``: a few hundred paths and steps, seconds; checks that the script runs, not a timing.
"""

import argparse
import json
import math
import time

import numpy as np

from discosim import Router
from discosim.diffusion.estimators import simulate_first_exit
from discosim.theory.diffusion import facet_distances

CASES = [(8, 4096, 2)]


def naive(router, x0, sigma, dt, n_steps, n_paths, rng):
    W, k = router.tie_weights, router.k
    K0 = np.sort(np.argsort(-(W @ x0))[:k])
    X = np.tile(x0, (n_paths, 1))
    alive = np.ones(n_paths, bool)
    steps = 0
    for _ in range(n_steps):
        steps += int(alive.sum())
        X[alive] += sigma * math.sqrt(dt) * rng.standard_normal((int(alive.sum()), x0.size))
        top = np.sort(np.argsort(-(X[alive] @ W.T), axis=1)[:, :k], axis=1)
        left = np.any(top != K0, axis=1)
        alive[np.flatnonzero(alive)[left]] = False
        if not alive.any():
            break
    return steps


def bench(M, D, k, n_steps=2000, n_paths=2000, naive_paths=200):
    router = Router.gaussian(M, D, k, seed=0)
    x0 = np.random.default_rng(1).standard_normal(D) / math.sqrt(D) * 3
    d = facet_distances(router, x0).min()
    dt = 1e-3 * d * d
    simulate_first_exit(router, x0, 1.0, 10 * dt, dt, 10, seed=0, bridge=False, depth=0)
    t = time.perf_counter()
    tau = simulate_first_exit(router, x0, 1.0, n_steps * dt, dt, n_paths, seed=1, bridge=False,
                              depth=0).tau
    fast_t = time.perf_counter() - t
    fast_steps = np.sum(np.where(np.isfinite(tau), np.ceil(tau / dt), n_steps))
    t = time.perf_counter()
    naive_steps = naive(router, x0, 1.0, dt, n_steps, naive_paths, np.random.default_rng(2))
    naive_t = time.perf_counter() - t
    f, n = fast_steps / fast_t, naive_steps / naive_t
    return {"M": M, "D": D, "k": k, "fast_steps_per_s": f, "naive_steps_per_s": n, "speedup": f / n}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (no timing)")
    args = ap.parse_args(argv)
    sizes = dict(n_steps=200, n_paths=200, naive_paths=20) if args.smoke else {}
    cases = [bench(*c, **sizes) for c in CASES]
    if args.json:
        print(json.dumps({"cases": cases}))
        return
    print(f"{'M':>4} {'D':>5} {'k':>2} {'fast path-steps/s':>18} {'naive path-steps/s':>19} {'speedup':>9}")
    for c in cases:
        print(f"{c['M']:>4} {c['D']:>5} {c['k']:>2} {c['fast_steps_per_s']:18.3g} "
              f"{c['naive_steps_per_s']:19.3g} {c['speedup']:9.1f}x")


if __name__ == "__main__":
    main()
