"""Command line: ``discosim volume``, ``hit``, ``smooth``, ``study``, ``figures`` and ``validate``.

Bad input prints one line on stderr and exits with status 2, never a traceback.
"""

import argparse
import json
import os
import sys
import time

from discosim._core.errors import InputError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"discosim: error: {message}\n")
        raise SystemExit(2)


def _count(text):
    """A sample or path count: an integer, also written as 1e6 or 1_000_000."""
    try:
        x = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}") from None
    if not x.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(x)


def _router_from_args(args):
    from discosim.model.router import Router

    if args.router in ("gaussian", "orthonormal"):
        missing = [n for n in ("M", "D", "k") if getattr(args, n) is None]
        if missing:
            raise InputError(f"--router {args.router} needs --{' --'.join(missing)}")
        make = Router.gaussian if args.router == "gaussian" else Router.orthonormal
        return make(args.M, args.D, args.k, seed=args.router_seed)
    if args.k is None:
        raise InputError("--k is required with a weights file")
    router = Router.from_file(args.router, args.k, key=args.key)
    for name, value in (("M", router.n_experts), ("D", router.dim)):
        given = getattr(args, name)
        if given is not None and given != value:
            raise InputError(f"--{name} {given} does not match the file's {name}={value}")
    return router


def _add_router_args(p):
    p.add_argument("--router", default="gaussian",
                   help="gaussian | orthonormal | PATH to .npy/.npz/.safetensors gate weights")
    p.add_argument("--key", help="array name inside an .npz/.safetensors file")
    p.add_argument("--M", type=int, help="number of experts (random routers)")
    p.add_argument("--D", type=int, help="input dimension (random routers)")
    p.add_argument("--k", type=int, help="active experts per token")
    p.add_argument("--router-seed", type=int, default=0, help="seed of a random gate matrix")


def _cmd_volume(args):
    from discosim._core.results import dumps
    from discosim.volumes.estimators import estimate_volumes

    router = _router_from_args(args)
    t0 = time.perf_counter()
    res = estimate_volumes(router, args.radius, args.eps, args.orders, metric=args.metric,
                           method=args.method, n_samples=args.n_samples, seed=args.seed,
                           n_jobs=args.n_jobs, progress=False if args.json else None,
                           predict=not args.no_predict, force_jobs=args.force_jobs,
                           prediction_samples=args.prediction_samples, device=args.device)
    doc = res.to_dict()
    doc["seed"] = args.seed if args.seed is not None else res.seed_entropy
    doc["elapsed_s"] = time.perf_counter() - t0
    if args.json:
        print(dumps(doc))
        return 0
    print(f"router: M={router.n_experts} D={router.dim} k={router.k} kind={router.kind}   "
          f"R={args.radius}  metric={args.metric}  method={args.method}  n={args.n_samples}  "
          f"seed={doc['seed']}  ({doc['elapsed_s']:.2f} s)")
    head = f"{'eps':>10} {'r':>2} {'fraction':>12} {'stderr':>10} {'95% CI':>25} {'slice sum':>12} {'leading':>12}"
    print(head)
    print("-" * len(head))
    fmt = lambda v: f"{v:12.5g}" if v is not None else f"{'-':>12}"
    for item in doc["results"]:
        for r, o in item["orders"].items():
            flag = "" if o["reliable"] else "  (few hits: error bar unreliable)"
            ci = f"[{o['ci_low']:.4g}, {o['ci_high']:.4g}]"
            print(f"{item['eps']:10.4g} {r:>2} {o['fraction']:12.5g} {o['stderr']:10.3g} {ci:>25} "
                  f"{fmt(o['predicted_slice_sum'])} {fmt(o['predicted_leading'])}{flag}")
    return 0


def _cmd_smooth(args):
    from discosim._core.results import dumps
    from discosim.smoothing.estimators import SMoE, calibrate_eta, estimate_overhead, measure_continuity

    router = _router_from_args(args)
    t0 = time.perf_counter()
    etas = args.etas
    eta = args.eta if args.eta is not None else max(etas)
    _check_smooth_args(args, router, eta)
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
    from discosim.theory.smoothing import band_edge_exponent
    top, sm, be = cont.summary("topk"), cont.summary("smooth"), cont.summary("band_edge")
    doc = {"router": router.summary(), "radius": args.radius, "n_samples": args.n_samples,
           "seed": args.seed if args.seed is not None else over.estimates[0].seed_entropy,
           "elapsed_s": time.perf_counter() - t0,
           "overhead": {"inputs": args.inputs, "etas": list(over.etas), "mean_extra": [e.value for e in over.estimates],
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


def _check_smooth_args(args, router, eta):
    """Everything `smooth` uses after the overhead run, checked before it starts."""
    from discosim._core.errors import check_choice, check_int, check_positive, check_positive_array
    from discosim.smoothing.estimators import EXPERTS, MAX_POINTS

    check_positive("eta", eta)
    check_positive_array("deltas", args.deltas)
    check_positive("a_s", args.a_s)
    check_positive("b_s", args.b_s)
    check_int("n_points", args.n_points, 2, MAX_POINTS)
    check_int("out_dim", args.out_dim, 1)
    check_choice("experts", args.experts, EXPERTS)
    if args.target_overhead is not None:
        check_positive("target overhead", args.target_overhead)
        if args.target_overhead >= router.n_experts - router.k:
            raise InputError(f"target overhead must be < M - k = {router.n_experts - router.k}")


def _cmd_hit(args):
    from discosim._core.results import dumps
    from discosim.diffusion.estimators import estimate_first_hit
    from discosim.model.weights import load_weights

    from discosim.diffusion.estimators import estimate_occupation

    router = _router_from_args(args)
    x0 = None
    if args.x0 is not None:
        if not os.path.isfile(args.x0):
            raise InputError(f"--x0: start-point file not found: {args.x0}")
        x0 = load_weights(args.x0).ravel()
        if x0.size != router.dim:
            raise InputError(f"x0 has length {x0.size}, the router needs D={router.dim}")
    # the occupation and walk-on-spheres settings are checked before the first path is simulated
    # options that would otherwise be ignored silently
    if args.wos and args.process != "bm":
        raise InputError("--wos needs --process bm (walk on spheres samples Brownian exit points)")
    if args.orders is not None and not args.eps:
        raise InputError("--orders needs --eps (they are the orders of the occupation tubes)")
    if args.eps:
        from discosim._core.errors import check_positive_array
        from discosim.volumes.estimators import check_orders

        check_positive_array("eps", args.eps)
        check_orders(args.orders, router.n_experts)
    t0 = time.perf_counter()
    common = dict(inputs=args.inputs, radius=args.radius, process=args.process, theta=args.theta,
                  seed=args.seed, n_jobs=args.n_jobs, force_jobs=args.force_jobs)
    res = estimate_first_hit(router, x0, args.sigma, args.t_max, args.dt, args.n_paths, args.times,
                             deltas=args.deltas or (), metric=args.metric,
                             bridge=not args.no_bridge, device=args.device, **common)
    wos = None
    if args.wos and args.deltas and args.process == "bm":
        from discosim.diffusion.estimators import hit_order_wos

        w = hit_order_wos(router, x0, args.deltas, args.n_paths, metric=args.metric,
                          seed=args.seed, n_jobs=args.n_jobs, inputs=args.inputs,
                          radius=args.radius, force_jobs=args.force_jobs)
        wos, wos_steps = w.q, w.mean_steps
    occ = None
    if args.eps:
        occ = estimate_occupation(router, x0, args.sigma, args.t_max, args.dt, args.n_paths,
                                  args.eps, orders=args.orders, metric=args.metric,
                                  device=args.device, **common)
    doc = {"router": router.summary(), "sigma": args.sigma, "t_max": args.t_max, "dt": args.dt,
           "n_paths": args.n_paths, "seed": args.seed if args.seed is not None else res.cdf[0].seed_entropy,
           "elapsed_s": time.perf_counter() - t0, "bridge": not args.no_bridge}
    doc.update(res.to_dict())
    doc["occupation"] = occ.to_dict() if occ is not None else None
    if wos is not None:
        doc["hit_order"]["q_wos"] = [e.value for e in wos]
        doc["hit_order"]["stderr_wos"] = [e.stderr for e in wos]
        doc["hit_order"]["wos_mean_steps"] = wos_steps
    doc["start"] = "x0" if x0 is not None else args.inputs
    doc["process"] = args.process
    if args.json:
        print(dumps(doc))
        return 0
    fh = doc["first_hit"]
    print(f"router: M={router.n_experts} D={router.dim} k={router.k}  sigma={args.sigma}  "
          f"t_max={args.t_max}  dt={args.dt}  paths={args.n_paths}  hit: {fh['fraction_hit']:.4f}")
    print(f"{'t':>10} {'P(tau<=t)':>10} {'stderr':>9} {'lower':>9} {'upper':>9}")
    for t, c, se, lo, hi in zip(fh["times"], fh["cdf"], fh["stderr"], fh["lower_bound"], fh["upper_bound"]):
        b = f"{lo:9.4f} {hi:9.4f}" if lo is not None else f"{'-':>9} {'-':>9}"
        print(f"{t:10.4g} {c:10.4f} {se:9.2g} {b}")
    ho = doc["hit_order"]
    if ho["q"]:
        print(f"\n{'delta':>10} {'q(delta)':>10} {'stderr':>9}" + ("   walk on spheres" if wos else ""))
        for i, (d, q, se) in enumerate(zip(ho["deltas"], ho["q"], ho["stderr"])):
            extra = f"   {wos[i].value:.4g} ± {wos[i].stderr:.2g}" if wos else ""
            print(f"{d:10.4g} {q:10.4g} {se:9.2g}{extra}")
        pred = ho["exponent_predicted"]
        print(f"exponent: fitted {ho['exponent_fit']:.3f} ± {ho['exponent_stderr']:.3f}, predicted "
              f"pi/theta* = {pred:.3f}" if pred is not None else "")
    if occ is not None:
        print(f"\noccupation up to t_max ({occ.metric} tubes): mean ± stderr [bound]")
        for i, r in enumerate(occ.orders):
            cells = "  ".join(f"eps={e:g}: {m:.4g} ± {se:.2g} [{b:.4g}]" for e, m, se, b in
                              zip(occ.eps, occ.mean[-1, i], occ.stderr[-1, i], occ.bound[i]))
            print(f"  r={r}: {cells}")
    return 0


def _cmd_study(args):
    from discosim.app.studies import STUDIES, load_grid, run_study

    if args.name == "list":
        for name, spec in STUDIES.items():
            print(f"{name:<20} {spec['doc']}")
        return 0
    grid = load_grid(args.grid) if args.grid else {}
    for item in args.set or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set takes KEY=V1,V2,...; got {item!r}")
        values = [_parse_value(key.strip(), v) for v in text.split(",")]
        grid[key.strip()] = values if len(values) > 1 else values[0]
    out = args.out or os.path.join("results", args.name)
    t0 = time.perf_counter()
    path = run_study(args.name, out, grid=grid, seed=args.seed, n_jobs=args.n_jobs,
                     backend=args.backend, scheduler=args.scheduler, resume=args.resume,
                     progress=False if args.quiet else None, force_jobs=args.force_jobs,
                     device=args.device)
    print(f"{args.name}: {path} ({time.perf_counter() - t0:.1f} s); figure and results.json beside it")
    return 0


def _parse_value(key, text):
    """A grid value from the command line: a JSON scalar (numbers, true/false) or else a word."""
    try:
        value = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(value, (list, dict)):
        raise InputError(f"--set {key}: values are numbers, true/false or words separated by "
                         f"commas, got {text!r}")
    return value


def _cmd_figures(args):
    from discosim.validation.report import redraw_figures
    from discosim.app.studies import study_figure

    written = []
    root = args.results
    if root is not None:
        if not os.path.isdir(root):
            raise InputError(f"--results: no directory {root}")
        for dirpath, _, files in sorted(os.walk(root)):
            if "results.json" in files and "results.csv" in files:
                written += study_figure(dirpath)
    # --results alone redraws the studies only; the validation figures when asked or by default
    if args.validation is not None or root is None:
        written += redraw_figures(args.validation or "figures")
    if not written:
        where = [root] if root is not None else []
        if args.validation is not None or root is None:
            where.append(os.path.join(args.validation or "figures", "validate.json"))
        raise InputError(f"no saved results in {' or '.join(where)}")
    for p in written:
        if p.endswith(".png"):
            print(p)
    return 0


def _cmd_validate(args):
    from discosim.validation import Context
    from discosim.validation.report import run_validation

    from discosim._core.devices import check_device, cuda_module

    if check_device(args.device) == "cuda":
        cuda_module()  # one line and exit 2 before any claim runs when no GPU is usable
    # estimator calls that run on the GPU get 100x the samples (issue 11): the resolution that
    # buys; the claims' CPU work keeps its size
    ctx = Context(scale=0.25 if args.quick else 1.0, seed=args.seed, n_jobs=args.n_jobs,
                  quick=args.quick, device=args.device,
                  device_scale=100.0 if args.device == "cuda" else 1.0)
    return run_validation(args.claims, ctx, args.out, as_json=args.json)


def build_parser():
    parser = _Parser(prog="discosim",
                     description="Monte Carlo verification of the geometry and stochastics of "
                                 "discontinuities in sparse Mixture-of-Experts routers "
                                 "(arXiv 2606.19036). Start with `discosim validate`.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    v = sub.add_parser("volume", help="fractions of the ball in order-r tubes")
    _add_router_args(v)
    v.add_argument("--radius", type=float, default=1.0)
    v.add_argument("--eps", type=float, nargs="+", required=True)
    v.add_argument("--orders", type=int, nargs="+", help="orders r (default 1..min(3, M-1))")
    v.add_argument("--metric", default="euclidean", help="euclidean | normal | score")
    v.add_argument("--method", default="uniform", help="uniform | tube")
    v.add_argument("--n-samples", type=_count, default=1_000_000)
    v.add_argument("--seed", type=int, default=None)
    v.add_argument("--n-jobs", type=int, default=1)
    v.add_argument("--force-jobs", action="store_true", help="allow --n-jobs above the cores")
    v.add_argument("--device", default="cpu",
                   help="cpu | cuda (NVIDIA GPU, needs the [cuda] extra: numba-cuda)")
    v.add_argument("--no-predict", action="store_true",
                   help="skip the THEORY §5 predictions (and the slice constants behind them)")
    v.add_argument("--prediction-samples", type=int, default=100_000,
                   help="Monte Carlo size of the slice constants behind the predictions")
    v.add_argument("--json", action="store_true", help="print exactly one JSON document")
    v.set_defaults(func=_cmd_volume)

    sm = sub.add_parser("smooth", help="continuity and overhead of the smoothing gate")
    _add_router_args(sm)
    sm.add_argument("--radius", type=float, default=1.0)
    sm.add_argument("--etas", type=float, nargs="+", required=True)
    sm.add_argument("--eta", type=float, help="eta of the continuity study (default: largest --etas)")
    sm.add_argument("--deltas", type=float, nargs="+", required=True)
    sm.add_argument("--a-s", type=float, default=1.0)
    sm.add_argument("--b-s", type=float, default=50.0)
    sm.add_argument("--experts", default="linear", help="linear | mlp")
    sm.add_argument("--out-dim", type=int, default=8)
    sm.add_argument("--target-overhead", type=float)
    sm.add_argument("--inputs", default="ball",
                    help="overhead inputs: ball (uniform in B_D(0,R)) | gaussian (N(0, R^2/D I))")
    sm.add_argument("--device", default="cpu",
                    help="cpu | cuda: the overhead samples on an NVIDIA GPU (the [cuda] extra)")
    sm.add_argument("--n-samples", type=_count, default=400_000)
    sm.add_argument("--n-points", type=int, default=200, help="points per continuity measurement")
    sm.add_argument("--seed", type=int, default=None)
    sm.add_argument("--n-jobs", type=int, default=1)
    sm.add_argument("--force-jobs", action="store_true", help="allow --n-jobs above the cores")
    sm.add_argument("--json", action="store_true")
    sm.set_defaults(func=_cmd_smooth)

    h = sub.add_parser("hit", help="first hits of Brownian input perturbations (THEORY §6)")
    _add_router_args(h)
    h.add_argument("--x0", help=".npy file with the start point (length D)")
    h.add_argument("--inputs", default="ball",
                   help="without --x0: a fresh start per path, ball (uniform in B_D(0,R)) | gaussian")
    h.add_argument("--radius", type=float, default=1.0)
    h.add_argument("--sigma", type=float, required=True)
    h.add_argument("--t-max", type=float, required=True)
    h.add_argument("--dt", type=float, required=True)
    h.add_argument("--n-paths", type=_count, default=10_000)
    h.add_argument("--times", type=float, nargs="+", required=True)
    h.add_argument("--deltas", type=float, nargs="+")
    h.add_argument("--eps", type=float, nargs="+", help="tube radii of the occupation times")
    h.add_argument("--orders", type=int, nargs="+",
                   help="occupation orders (default 1..min(3, M-1))")
    h.add_argument("--metric", default="euclidean",
                   help="euclidean | normal | score: hit-point distance and occupation tubes")
    h.add_argument("--process", default="bm", help="bm | ou (Ornstein-Uhlenbeck towards x0)")
    h.add_argument("--theta", type=float, default=1.0, help="OU mean-reversion rate")
    h.add_argument("--no-bridge", action="store_true", help="detect crossings by sign change only")
    h.add_argument("--wos", action="store_true",
                   help="also estimate q(delta) from walk-on-spheres exit positions (bm only)")
    h.add_argument("--seed", type=int, default=None)
    h.add_argument("--n-jobs", type=int, default=1)
    h.add_argument("--force-jobs", action="store_true", help="allow --n-jobs above the cores")
    h.add_argument("--device", default="cpu",
                   help="cpu | cuda (NVIDIA GPU, needs the [cuda] extra: numba-cuda)")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=_cmd_hit)

    st = sub.add_parser("study", help="run a parameter study (NAME or 'list')")
    st.add_argument("name")
    st.add_argument("--grid", help="JSON or TOML file {param: [values]} overriding the defaults")
    st.add_argument("--set", action="append", metavar="KEY=V1,V2",
                    help="grid values on the command line (repeatable; overrides --grid)")
    st.add_argument("--out", help="output directory (default results/NAME)")
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--n-jobs", type=int, default=1)
    st.add_argument("--backend", default="loky", help="loky | dask | threading")
    st.add_argument("--scheduler", help="dask scheduler address (default: a local cluster)")
    st.add_argument("--quiet", action="store_true", help="no progress bar")
    st.add_argument("--resume", action="store_true",
                    help="continue a run in --out; refuse if its saved points were made by another "
                         "study, seed, grid value or code version (default: recompute those)")
    st.add_argument("--force-jobs", action="store_true", help="allow --n-jobs above the cores")
    st.add_argument("--device", default="cpu",
                    help="cpu | cuda: every point's estimators on the GPU (the [cuda] extra)")
    st.set_defaults(func=_cmd_study)

    fg = sub.add_parser("figures", help="redraw every figure from saved results (no recomputation)")
    fg.add_argument("--results", default=None,
                    help="directory holding study results (default: only the validation figures)")
    fg.add_argument("--validation", default=None,
                    help="directory holding validate.json (default: figures, unless --results)")
    fg.set_defaults(func=_cmd_figures)

    from discosim.app.cli import audit as cli_audit
    cli_audit.add_parser(sub)

    val = sub.add_parser("validate", help="check every claim of THEORY.md; exit 0 iff all hold")
    val.add_argument("--quick", action="store_true", help="fewer samples")
    val.add_argument("--seed", type=int, default=20260623)
    val.add_argument("--n-jobs", type=int, default=2)
    val.add_argument("--out", default="figures", help="directory for figures and validate.json")
    val.add_argument("--json", action="store_true")
    val.add_argument("--claims", help="comma-separated claim names (default: all)")
    val.add_argument("--device", default="cpu",
                     help="cpu | cuda: every estimator call with a GPU path runs there, with "
                          "100x the samples (the tube sampler keeps its size; the [cuda] extra)")
    val.set_defaults(func=_cmd_validate)
    return parser


def _check_common(args):
    """Options every subcommand shares, checked before any computation: --out, --seed, --n-jobs."""
    from discosim._core.runtime import check_n_jobs
    from discosim._core.seeding import as_seed_sequence

    out = getattr(args, "out", None)
    if out and os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out} exists and is not a directory")
    if getattr(args, "seed", None) is not None:
        as_seed_sequence(args.seed)
    if hasattr(args, "n_jobs"):
        check_n_jobs(args.n_jobs, getattr(args, "force_jobs", False))


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    from discosim._core.runtime import progress

    # --json output stays the only thing printed; the setting ends with this call
    quiet = getattr(args, "json", False) or getattr(args, "quiet", False)
    with progress(False if quiet else None):
        return _main(args)


def _main(args):
    try:
        _check_common(args)
        code = args.func(args)
        sys.stdout.flush()
        return code
    except InputError as exc:
        sys.stderr.write(f"discosim: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        # chunks stop at once; study points already saved stay saved (atomic writes)
        sys.stderr.write("discosim: interrupted\n")
        return 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) went away: nothing left to say, and no traceback at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (OSError, UnicodeDecodeError) as exc:  # unreadable/unwritable files: one line
        sys.stderr.write(f"discosim: error: {type(exc).__name__}: {exc}\n".splitlines()[0] + "\n")
        return 2
    except json.JSONDecodeError as exc:  # a corrupted results/validate JSON file
        sys.stderr.write(f"discosim: error: corrupted JSON file ({exc})\n")
        return 2
    except MemoryError as exc:  # sizes that validation cannot foresee (e.g. a huge weight file)
        sys.stderr.write(f"discosim: error: out of memory ({str(exc).splitlines()[0] if str(exc) else 'MemoryError'}); "
                         "reduce the sizes\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
