"""``discosim smooth``: continuity and overhead of the smoothing gate (THEORY §7)."""

import time

from discosim._core.errors import InputError
from discosim.app.cli import _common as c

__all__ = ["add_parser", "run"]


def add_parser(sub):
    """Register ``smooth``."""
    from discosim.model.inputs import INPUTS

    p = c.new_command(sub, "smooth", "continuity and overhead of the smoothing gate (THEORY §7)")
    c.add_router(p)
    p.add_argument("--radius", type=float, default=1.0, help="ball radius R")
    p.add_argument("--etas", type=c.listed(float), nargs="+", required=True, metavar="ETA",
                   help="band widths of the overhead E N_eta")
    p.add_argument("--eta", type=float, help="eta of the continuity study (default: largest --etas)")
    p.add_argument("--deltas", type=c.listed(float), nargs="+", required=True, metavar="DELTA",
                   help="distances from the surface of the continuity study")
    p.add_argument("--a-s", type=float, default=1.0, help="exponent a_s of the gate")
    p.add_argument("--b-s", type=float, default=50.0, help="exponent b_s of the gate")
    p.add_argument("--experts", default="linear", choices=c.EXPERTS, help="random expert maps")
    p.add_argument("--out-dim", type=c.count, default=8, help="output dimension of the experts")
    p.add_argument("--target-overhead", type=float,
                   help="also calibrate the eta that costs this many extra experts")
    p.add_argument("--inputs", default="ball", choices=INPUTS,
                   help="overhead inputs: ball (uniform in B_D(0,R)) or gaussian (N(0, R^2/D I))")
    p.add_argument("--n-samples", type=c.count, default=400_000, help="overhead samples")
    p.add_argument("--n-points", type=c.count, default=200, help="points per continuity measurement")
    c.add_seed(p)
    c.add_jobs(p)
    c.add_device(p, "cuda: the overhead samples on an NVIDIA GPU (the [cuda] extra)")
    c.add_json(p)
    c.add_quiet(p)
    return p


def _check(args, router, eta):
    """Everything `smooth` uses after the overhead run, checked before it starts."""
    from discosim._core.errors import check_choice, check_int, check_positive, check_positive_array
    from discosim.smoothing.estimators import EXPERTS, MAX_POINTS, check_continuity_memory

    check_positive("eta", eta)
    check_positive_array("deltas", args.deltas)
    check_positive("a_s", args.a_s)
    check_positive("b_s", args.b_s)
    check_int("n_points", args.n_points, 2, MAX_POINTS)
    check_int("out_dim", args.out_dim, 1)
    check_choice("experts", args.experts, EXPERTS)
    check_continuity_memory(router, args.n_points, args.experts, args.out_dim)
    if args.target_overhead is not None:
        check_positive("target overhead", args.target_overhead)
        if args.target_overhead >= router.n_experts - router.k:
            raise InputError(f"target overhead must be < M - k = {router.n_experts - router.k}")


def run(args):
    """Run ``discosim smooth``; returns the exit status."""
    from discosim._core.results import dumps
    from discosim.smoothing.estimators import (SMoE, calibrate_eta, estimate_overhead,
                                               measure_continuity)
    from discosim.theory.smoothing import band_edge_exponent

    router = c.router_from_args(args)
    t0 = time.perf_counter()
    etas = args.etas
    eta = args.eta if args.eta is not None else max(etas)
    _check(args, router, eta)
    over = estimate_overhead(router, args.radius, etas, n_samples=args.n_samples, seed=args.seed,
                             n_jobs=args.n_jobs, inputs=args.inputs, force_jobs=args.force_jobs,
                             device=args.device)
    model = SMoE(router, args.experts, args.out_dim, seed=args.router_seed)
    cont = measure_continuity(model, args.deltas, eta, a_s=args.a_s, b_s=args.b_s,
                              n_points=args.n_points, radius=args.radius, seed=args.seed)
    calib = None
    if args.target_overhead is not None:
        cal = calibrate_eta(router, args.target_overhead, args.radius, n_samples=args.n_samples,
                            seed=args.seed, inputs=args.inputs, n_jobs=args.n_jobs,
                            force_jobs=args.force_jobs)
        calib = {"target": args.target_overhead, "eta": cal.eta, "eta_first_guess": cal.eta_first_guess}
    top, sm, be = cont.summary("topk"), cont.summary("smooth"), cont.summary("band_edge")
    doc = {"router": router.summary(), "radius": args.radius, "n_samples": args.n_samples,
           "seed": args.seed if args.seed is not None else over.estimates[0].seed_entropy,
           "elapsed_s": time.perf_counter() - t0,
           "overhead": {"inputs": args.inputs, "etas": list(over.etas),
                        "mean_extra": [e.value for e in over.estimates],
                        "stderr": [e.stderr for e in over.estimates],
                        "predicted_leading": over.predicted_leading},
           "continuity": {"deltas": list(cont.deltas), "eta": eta, "n_points": args.n_points,
                          "a_s": args.a_s, "b_s": args.b_s,
                          "across_discontinuity": {
                              "jump_topk": top["median"], "jump_smooth": sm["median"],
                              "jump_topk_mean": top["mean"], "jump_topk_mean_stderr": top["mean_stderr"],
                              "jump_smooth_mean": sm["mean"], "jump_smooth_mean_stderr": sm["mean_stderr"],
                              "exponent_topk": top["exponent"], "exponent_topk_stderr": top["exponent_stderr"],
                              "exponent_smooth": sm["exponent"], "exponent_smooth_stderr": sm["exponent_stderr"]},
                          "across_band_edge": {
                              "jump_smooth": be["median"], "jump_smooth_mean": be["mean"],
                              "jump_smooth_mean_stderr": be["mean_stderr"],
                              "exponent_smooth": be["exponent"], "exponent_smooth_stderr": be["exponent_stderr"],
                              "exponent_predicted": band_edge_exponent(args.a_s)}},
           "calibration": calib}
    if args.json:
        print(dumps(doc))
        return 0
    print(f"router: M={router.n_experts} D={router.dim} k={router.k}  R={args.radius}  "
          f"n={args.n_samples}  ({doc['elapsed_s']:.2f} s)")
    print(f"{'eta':>10} {'E N_eta':>12} {'stderr':>10} {'leading c1*eta':>15}")
    for e, m, se, p in zip(over.etas, doc["overhead"]["mean_extra"], doc["overhead"]["stderr"],
                           over.predicted_leading):
        print(f"{e:10.4g} {m:12.5g} {se:10.3g} {p:15.5g}")
    print(f"\ncontinuity at eta={eta} (median jump |f(y+dv) - f(y-dv)| over {args.n_points} points)")
    print(f"{'delta':>10} {'top-k':>12} {'smooth':>12} {'band edge':>12}")
    for i, d in enumerate(cont.deltas):
        print(f"{d:10.3g} {top['median'][i]:12.4g} {sm['median'][i]:12.4g} {be['median'][i]:12.4g}")
    print(f"exponents: top-k {top['exponent']:.3f} ± {top['exponent_stderr']:.3f} (expect 0), "
          f"smooth {sm['exponent']:.3f} ± {sm['exponent_stderr']:.3f} (expect 1), band edge "
          f"{be['exponent']:.3f} ± {be['exponent_stderr']:.3f} (expect {band_edge_exponent(args.a_s):g})")
    if calib:
        print(f"calibration: eta = {calib['eta']:.5g} gives {calib['target']} extra experts "
              f"(first guess h/c1 = {calib['eta_first_guess']:.5g})")
    return 0
