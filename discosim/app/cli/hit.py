"""``discosim hit``: first hits, hit order and occupation times of Brownian input perturbations
(THEORY §6)."""

import os
import time

from discosim._core.errors import InputError
from discosim.app.cli import _common as c

__all__ = ["add_parser", "run"]


def add_parser(sub):
    """Register ``hit``."""
    from discosim._kernels.codes import METRICS
    from discosim.model.inputs import INPUTS

    p = c.new_command(sub, "hit", "first hits of Brownian input perturbations (THEORY §6)")
    c.add_router(p)
    p.add_argument("--x0", help=".npy file with the start point (length D)")
    p.add_argument("--inputs", default="ball", choices=INPUTS,
                   help="without --x0: a fresh start per path, uniform in B_D(0,R) or Gaussian")
    p.add_argument("--radius", type=float, default=1.0, help="ball radius R of the starts")
    p.add_argument("--sigma", type=float, required=True, help="diffusion coefficient")
    p.add_argument("--t-max", type=float, required=True, help="time horizon")
    p.add_argument("--dt", type=float, required=True, help="time step")
    p.add_argument("--n-paths", type=c.count, default=10_000, help="simulated paths")
    p.add_argument("--times", type=c.listed(float), nargs="+", required=True, metavar="T",
                   help="times t of P(tau <= t)")
    p.add_argument("--deltas", type=c.listed(float), nargs="+", metavar="DELTA",
                   help="distances delta of the hit-order profile q(delta)")
    p.add_argument("--eps", type=c.listed(float), nargs="+", metavar="EPS",
                   help="tube radii of the occupation times")
    p.add_argument("--orders", type=c.listed(int), nargs="+", metavar="R",
                   help="occupation orders (default 1..min(3, M-1))")
    p.add_argument("--metric", default="euclidean", choices=METRICS,
                   help="hit-point distance and occupation tubes")
    p.add_argument("--process", default="bm", choices=c.PROCESSES,
                   help="bm (Brownian) or ou (Ornstein-Uhlenbeck towards x0)")
    p.add_argument("--theta", type=float, default=1.0, help="OU mean-reversion rate")
    p.add_argument("--no-bridge", action="store_true", help="detect crossings by sign change only")
    p.add_argument("--wos", action="store_true",
                   help="also estimate q(delta) from walk-on-spheres exit positions (bm only)")
    c.add_seed(p)
    c.add_jobs(p)
    c.add_device(p, "cuda: an NVIDIA GPU (the [cuda] extra: numba-cuda)")
    c.add_json(p)
    c.add_quiet(p)
    return p


def _start(args, router):
    from discosim.model.weights import load_weights

    if args.x0 is None:
        return None
    if not os.path.isfile(args.x0):
        raise InputError(f"--x0: start-point file not found: {args.x0}")
    x0 = load_weights(args.x0).ravel()
    if x0.size != router.dim:
        raise InputError(f"x0 has length {x0.size}, the router needs D={router.dim}")
    return x0


# the exact wedge law's effective slope over delta <= 0.3 rho is within 0.01 of pi/theta
# (validation.diffusion.wedge_curvature_band), and the validate claim puts the other facets at
# >= 30 rho; beyond these the fitted exponent is not the asymptotic one
REGIME_DELTA = 0.3
REGIME_FAR = 10.0


def _hit_order_regime(router, x0, deltas):
    """None where a hit-order fit from ``x0`` over ``deltas`` is in the regime of ``pi/theta*``,
    else a short note saying why not (issue 23 item 5).

    ``q(delta) ~ delta^(pi/theta*)`` is a delta -> 0 law near the widest ridge: the fit reads it
    when the start is at a distance rho from that ridge with ``max delta <= 0.3 rho`` and every
    other facet at ``>= 10 rho``. Random starts (``x0`` None) mix ridges and distances.
    """
    import numpy as np

    if x0 is None:
        return "random starts: pi/theta* is the delta -> 0 limit, not this fit's regime"
    s = router.scores(np.asarray(x0, dtype=float)[None, :])[0]
    order = np.argsort(-s, kind="stable")
    K, rest = order[:router.k], order[router.k:]
    W = router.tie_weights
    facets = [(i, j) for i in K for j in rest]
    ridges = []  # (angle, distance from x0, the two facets)
    for a in range(len(facets)):
        for b in range(a + 1, len(facets)):
            (i, j), (i2, j2) = facets[a], facets[b]
            if i != i2 and j != j2:
                continue
            V = np.stack([W[i] - W[j], W[i2] - W[j2]])
            c = V[0] @ V[1] / (np.linalg.norm(V[0]) * np.linalg.norm(V[1]))
            e = np.array([s[i] - s[j], s[i2] - s[j2]])
            ridges.append((np.pi - np.arccos(np.clip(c, -1, 1)),
                           float(np.sqrt(max(e @ np.linalg.solve(V @ V.T, e), 0.0))), {facets[a], facets[b]}))
    if not ridges:
        return "no ridge in the cell (M - k < 2 and k < 2): no hit-order exponent"
    # theta* is the widest angle; of the ridges that have it (the orthonormal router: all), the nearest
    widest = max(r[0] for r in ridges)
    _, rho, pair = min((r for r in ridges if r[0] >= widest - 1e-9), key=lambda r: r[1])
    far = min((float((s[i] - s[j]) / np.linalg.norm(W[i] - W[j])) for i, j in facets if (i, j) not in pair),
              default=np.inf)
    why = []
    if max(deltas) > REGIME_DELTA * rho * (1 + 1e-9):
        why.append(f"max delta {max(deltas):.3g} > {REGIME_DELTA:g} x the distance {rho:.3g} to the widest ridge")
    if far < REGIME_FAR * rho:
        why.append(f"another facet at {far:.3g} < {REGIME_FAR:g} x the widest ridge's {rho:.3g}")
    return ("outside the regime of pi/theta*: " + "; ".join(why)) if why else None


def run(args):
    """Run ``discosim hit``; returns the exit status."""
    from discosim._core.results import dumps
    from discosim.diffusion.estimators import estimate_first_hit, estimate_occupation

    router = c.router_from_args(args)
    x0 = _start(args, router)
    # options that would otherwise be ignored silently, and the occupation settings, are
    # checked before the first path is simulated
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
    if args.wos and args.deltas:
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
           "n_paths": args.n_paths,
           "seed": args.seed if args.seed is not None else res.cdf[0].seed_entropy,
           "elapsed_s": time.perf_counter() - t0, "bridge": not args.no_bridge}
    doc.update(res.to_dict())
    doc["occupation"] = occ.to_dict() if occ is not None else None
    if wos is not None:
        doc["hit_order"]["q_wos"] = [e.value for e in wos]
        doc["hit_order"]["stderr_wos"] = [e.stderr for e in wos]
        doc["hit_order"]["wos_mean_steps"] = wos_steps
    if args.deltas:
        doc["hit_order_regime"] = _hit_order_regime(router, x0, args.deltas)
    doc["start"] = "x0" if x0 is not None else args.inputs
    doc["process"] = args.process
    if args.json:
        print(dumps(doc))
        return 0
    _table(args, router, doc, wos, occ)
    return 0


def _table(args, router, doc, wos, occ):
    fh = doc["first_hit"]
    print(f"router: M={router.n_experts} D={router.dim} k={router.k}  sigma={args.sigma}  "
          f"t_max={args.t_max}  dt={args.dt}  paths={args.n_paths}  hit: {fh['fraction_hit']:.4f}")
    print(f"{'t':>10} {'P(tau<=t)':>10} {'stderr':>9} {'lower':>9} {'upper':>9}")
    for t, cdf, se, lo, hi in zip(fh["times"], fh["cdf"], fh["stderr"], fh["lower_bound"],
                                  fh["upper_bound"]):
        b = f"{lo:9.4f} {hi:9.4f}" if lo is not None else f"{'-':>9} {'-':>9}"
        print(f"{t:10.4g} {cdf:10.4f} {se:9.2g} {b}")
    ho = doc["hit_order"]
    if ho["q"]:
        print(f"\n{'delta':>10} {'q(delta)':>10} {'stderr':>9}" + ("   walk on spheres" if wos else ""))
        for i, (d, q, se) in enumerate(zip(ho["deltas"], ho["q"], ho["stderr"])):
            extra = f"   {wos[i].value:.4g} ± {wos[i].stderr:.2g}" if wos else ""
            print(f"{d:10.4g} {q:10.4g} {se:9.2g}{extra}")
        pred = ho["exponent_predicted"]
        note = doc.get("hit_order_regime")
        print(f"exponent: fitted {ho['exponent_fit']:.3f} ± {ho['exponent_stderr']:.3f}, predicted "
              f"pi/theta* = {pred:.3f}" + (f"  [{note}]" if note else "") if pred is not None else "")
    if occ is not None:
        print(f"\noccupation up to t_max ({occ.metric} tubes): mean ± stderr [bound]")
        for i, r in enumerate(occ.orders):
            cells = "  ".join(f"eps={e:g}: {m:.4g} ± {se:.2g} [{b:.4g}]" for e, m, se, b in
                              zip(occ.eps, occ.mean[-1, i], occ.stderr[-1, i], occ.bound[i]))
            print(f"  r={r}: {cells}")
