"""Scratch: first device check (kept out of the package; removed before the final commit)."""
import sys, time, json
import numpy as np
import discosim
from discosim.router import Router
from discosim.devices import cuda_module
from discosim._cuda.rng import run_key
from discosim._cuda import volume as cv

cuda = cuda_module()
print("gpus", len(cuda.gpus), flush=True)
rng = np.random.default_rng(1)
for (M, k) in [(8, 2), (64, 8), (256, 8)]:
    D = 4096
    W = rng.standard_normal((M, D)) / np.sqrt(D)
    r = Router(W, k)
    eps = np.array([1e-3, 1e-2])
    key = run_key(np.random.SeedSequence(5))
    for metric in (2, 0):
        t = time.perf_counter()
        cv.uniform_counts(r, 1.0, eps, 3, metric, False, 1 << 20, key, [0])
        tc = time.perf_counter() - t
        n = {8: 1 << 34, 64: 1 << 31, 256: 1 << 28}[M]
        if metric == 0:
            n //= 4
        t = time.perf_counter()
        counts, handed = cv.uniform_counts(r, 1.0, eps, 3, metric, False, n, key, [0])
        dt = time.perf_counter() - t
        print(f"M={M} k={k} metric={metric} compile+1M {tc:.2f}s  n={n:.3g} {dt:.3f}s  rate {n/dt:.3g}/s handed {handed} frac {counts[:, -1]/n}", flush=True)
