"""Benchmark: the DeepSeek-V3-shape audit, old path against new, in one process (issue 22, item 6).

The router of :func:`benchmark_audit.build` ('deepseek': 58 routers of 256 x 7168 in bf16 with
the float32 selection bias, n_group = 8, topk_group = 4, k = 8), audited at the default precision
(100k sphere inputs per layer, bf16 and fp16). Target: <= 60 s on 2 cores.

The old path is the code before issue 22, restored here by monkeypatching three functions of
:mod:`discosim.audit.estimators`: the NumPy chunk statistics (``logit_stats_numpy``, now the slow
twin of the numba kernels), the full ``Router`` reduction (which forms the basis Q) and the sphere
draw with temporaries. Both paths run on the same layers back to back and must give the same
document bit for bit (checked; printed).

Usage: ``python studies/benchmark_audit_speed.py [--layers N] [--n-jobs J] [--router-samples N]``
(``--layers 58`` is the whole model; fewer layers extrapolate linearly, as every layer costs the
same). ``--router-samples`` sets the bf16-router mode's inputs per layer (default: the audit's
own); 0 leaves the mode out. The machine's load (``os.getloadavg``) is printed with the times.

``--smoke``: toy sizes (M = 16, D = 64, two routers, 5000 inputs, 1000 whole-router inputs),
seconds; checks that the script runs and that old and new agree, not a timing.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark_audit import SIZES, SMOKE_SIZES, build  # noqa: E402

import discosim.audit.estimators as E  # noqa: E402
import discosim._kernels.audit as K  # noqa: E402


def _old_sphere_or_ball(rng, n, M, D, radius, distribution):
    g = rng.standard_normal((n, M))
    extra = D - M + (2 if distribution == "ball" else 0)
    c = rng.chisquare(extra, size=n) if extra > 0 else np.zeros(n)
    return radius * g / np.sqrt(np.sum(g * g, axis=1) + c)[:, None]


def _run(path, layers, n_jobs, formats, router_samples, old, n_samples=None):
    saved = E.logit_stats, E._reduce_light, E._sphere_or_ball
    if old:
        E.logit_stats, E._reduce_light, E._sphere_or_ball = (K.logit_stats_numpy, E._reduce,
                                                             _old_sphere_or_ball)
    try:
        kw = {} if router_samples is None else {"router_samples": router_samples}
        t, c = time.perf_counter(), time.process_time()
        res = E.audit_checkpoint(path, seed=0, n_jobs=n_jobs, progress=False, formats=formats,
                                 layers=list(range(layers)), n_samples=n_samples, **kw)
        return res, time.perf_counter() - t, time.process_time() - c
    finally:
        E.logit_stats, E._reduce_light, E._sphere_or_ball = saved


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--router-samples", type=int, default=None)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    n_samples = 5000 if args.smoke else None
    if args.smoke and args.router_samples is None:
        args.router_samples = 1000
    n_layers = sizes["deepseek"][4]
    layers = min(args.layers, n_layers)
    with tempfile.TemporaryDirectory() as tmp:
        path = build(os.path.join(tmp, "deepseek"), "deepseek", sizes=sizes)
        # warm: numba's cached kernels load on first use
        E.audit_checkpoint(path, n_samples=200, seed=0, progress=False, layers=[0])
        load0 = os.getloadavg()[0]
        # the old path has no bf16-router mode: it is timed on the logit formats alone, and the
        # new path both without and with the mode
        old, t_old, c_old = _run(path, layers, args.n_jobs, ("bf16", "fp16"), 0, True, n_samples)
        new, t_new, c_new = _run(path, layers, args.n_jobs, ("bf16", "fp16"), 0, False, n_samples)
        same = (json.dumps(old.to_dict(), sort_keys=True, default=str)
                == json.dumps(new.to_dict(), sort_keys=True, default=str))
        full, t_full, c_full = _run(path, layers, args.n_jobs, ("bf16", "fp16"),
                                    args.router_samples, False, n_samples)
        load1 = os.getloadavg()[0]
    scale = n_layers / layers
    print(f"DeepSeek-V3 shape, {layers} of {n_layers} routers, n_jobs={args.n_jobs}, "
          f"load average {load0:.2f} -> {load1:.2f}")
    for name, t, c in (("old (logits only)", t_old, c_old), ("new (logits only)", t_new, c_new),
                       ("new (+ bf16-router)", t_full, c_full)):
        print(f"  {name:20s} wall {t:7.2f} s  CPU {c:7.2f} s  -> {n_layers} layers: wall "
              f"{t * scale:6.1f} s, CPU {c * scale:6.1f} s (2-core estimate {c * scale / 2:6.1f} s)")
    print(f"  speed-up old/new: wall {t_old / t_new:.2f}x, CPU {c_old / c_new:.2f}x; "
          f"old and new documents identical: {same}")
    L = full.layers[0]
    print("  layer 0:", ", ".join(f"{f.format} {f.measured:.4g}±{f.stderr:.2g} (pred "
                                 f"{f.predicted:.4g}, n={f.n_samples})" for f in L.flips))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
