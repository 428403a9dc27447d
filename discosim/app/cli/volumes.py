"""``discosim volume``: fractions of the ball in the order-r tubes of a router (THEORY §5, §8).

The module takes the family's word, ``volumes``, as every module of the package does.
"""

import time

from discosim.app.cli import _common as c

__all__ = ["add_parser", "run", "leading_order_note"]


def add_parser(sub):
    """Register ``volume``."""
    from discosim._kernels.codes import METRICS
    from discosim.volumes.estimators import METHODS

    p = c.new_command(sub, "volume", "fractions of the ball in order-r tubes (THEORY §5, §8)")
    c.add_router(p)
    p.add_argument("--radius", type=float, default=1.0, help="ball radius R")
    p.add_argument("--eps", type=c.listed(float), nargs="+", required=True, metavar="EPS",
                   help="tube radii")
    p.add_argument("--orders", type=c.listed(int), nargs="+", metavar="R",
                   help="orders r (default 1..min(3, M-1))")
    p.add_argument("--metric", default="euclidean", choices=METRICS,
                   help="distance to the tie surfaces: euclidean, normal (fibre tube) or score "
                        "(spread of r+1 consecutive sorted scores)")
    p.add_argument("--method", default="uniform", choices=METHODS,
                   help="uniform samples, or tube (importance sampling over slice tubes, b = 0)")
    p.add_argument("--n-samples", type=c.count, default=1_000_000, help="Monte Carlo samples")
    p.add_argument("--no-predict", action="store_true",
                   help="skip the THEORY §5 predictions (and the slice constants behind them)")
    p.add_argument("--prediction-samples", type=c.count, default=100_000,
                   help="Monte Carlo size of the slice constants behind the predictions")
    c.add_seed(p)
    c.add_jobs(p)
    c.add_device(p, "cuda: an NVIDIA GPU (the [cuda] extra: numba-cuda)")
    c.add_json(p)
    c.add_quiet(p)
    return p


def run(args):
    """Run ``discosim volume``; returns the exit status."""
    from discosim._core.results import dumps
    from discosim.volumes.estimators import estimate_volumes

    router = c.router_from_args(args)
    t0 = time.perf_counter()
    res = estimate_volumes(router, args.radius, args.eps, args.orders, metric=args.metric,
                           method=args.method, n_samples=args.n_samples, seed=args.seed,
                           n_jobs=args.n_jobs, progress=False if (args.json or args.quiet) else None,
                           predict=not args.no_predict, force_jobs=args.force_jobs,
                           prediction_samples=args.prediction_samples, device=args.device)
    doc = res.to_dict()
    for item in doc["results"]:
        for r, o in item["orders"].items():
            if o["predicted_leading"] is not None:
                o["leading_note"] = leading_order_note(item["eps"], args.radius, router.dim, int(r),
                                                       args.metric)
    doc["seed"] = args.seed if args.seed is not None else res.seed_entropy
    doc["elapsed_s"] = time.perf_counter() - t0
    if args.json:
        print(dumps(doc))
        return 0
    print(f"router: M={router.n_experts} D={router.dim} k={router.k} kind={router.kind}   "
          f"R={args.radius}  metric={args.metric}  method={args.method}  n={args.n_samples}  "
          f"seed={doc['seed']}  ({doc['elapsed_s']:.2f} s)")
    head = (f"{'eps':>10} {'r':>2} {'fraction':>12} {'stderr':>10} {'95% CI':>25} "
            f"{'slice sum':>12} {'leading':>12}")
    print(head)
    print("-" * len(head))

    def fmt(v):
        return f"{v:12.5g}" if v is not None else f"{'-':>12}"

    for item in doc["results"]:
        for r, o in item["orders"].items():
            flags = [] if o["reliable"] else ["few hits: error bar unreliable"]
            if o.get("leading_note"):
                flags.append(o["leading_note"])
            flag = f"  ({'; '.join(flags)})" if flags else ""
            ci = f"[{o['ci_low']:.4g}, {o['ci_high']:.4g}]"
            print(f"{item['eps']:10.4g} {r:>2} {o['fraction']:12.5g} {o['stderr']:10.3g} {ci:>25} "
                  f"{fmt(o['predicted_slice_sum'])} {fmt(o['predicted_leading'])}{flag}")
    if args.metric != "score" and not router.has_bias and not args.no_predict:
        print("slice sum: exact per slice; the union (fraction) lies below it by the overlaps of "
              "the slices' tubes (THEORY §5), which grow with d eps^2/R^2")
    return 0


LEADING_NOTE_AT = 0.01  # the leading order is flagged once its exact correction exceeds 1%


def leading_order_note(eps, radius, dim, order, metric):
    """The size of the leading order's next term where it exceeds 1%, else None (issue 23 item 5).

    The leading ``omega_r omega_{D-r} (eps/R)^r / omega_D`` differs from the exact
    full-subspace tube ``I_{eps^2/R^2}(r/2, d/2+1)`` by the curvature term
    ``-r d eps^2 / (2 (r+2) R^2)`` and beyond (THEORY §5); that difference is exact, so it is
    printed next to the number rather than the number bare. Score metric: the same d eps^2/R^2
    governs its next order, so the same size is quoted as an estimate.

    Examples
    --------
    >>> leading_order_note(0.001, 1.0, 10, 1, "normal") is None
    True
    >>> leading_order_note(0.01, 1.0, 4096, 1, "normal")
    'leading order 7% above the exact tube at d eps^2/R^2 = 0.41; the slice sum uses the exact form'
    """
    from discosim.theory import volumes as tv

    corr = float(tv.exact_relative_correction(eps, radius, dim, order))
    if abs(corr) <= LEADING_NOTE_AT:
        return None
    x = (dim - order) * (eps / radius) ** 2
    what = ("size from the normal tube's" if metric == "score"
            else "the slice sum uses the exact form")
    side = "above" if corr < 0 else "below"
    return (f"leading order {abs(corr) / (1 + corr):.0%} {side} the exact tube at "
            f"d eps^2/R^2 = {x:.2g}; {what}")
