"""Smoothing claims (THEORY §7): jump exponents of SMoE, overhead and its calibration."""

import math

import numpy as np

from ..constants import slice_constants
from ..fitting import loglog_fit
from ..router import Router
from .core import ClaimOutput, Z_VERDICT, claim, close_to, curve, figure, points, vline

S7 = "§7"


@claim("smooth_continuity", S7, "jump exponents: top-k 0, smooth 1 across Gamma^(1); band edge min(a_s,1)",
       figures={"smoothing_jumps_vs_delta": "SMoE jumps against delta: top-k, smooth, band edge"})
def smooth_continuity(ctx):
    from ..smoothing import SMoE, measure_continuity
    from ..theory.smoothing import band_edge_exponent

    seed = ctx.seed
    router = Router.gaussian(8, 64, 2, seed=seed)
    model = SMoE(router, "linear", 8, seed=seed)
    eta = 0.05
    n_points = max(20, int(200 * ctx.scale))
    band = 0.05
    reason = "legacy band (to be replaced by the next-order term)"
    d_disc = np.array([1e-5, 3e-5, 1e-4, 3e-4])
    cont = measure_continuity(model, d_disc, eta, n_points=n_points, seed=seed,
                              where=("discontinuity",))
    rows, layers = [], []
    for name, pred in (("topk", 0.0), ("smooth", 1.0)):
        e, se = cont.exponents[name]
        rows.append(close_to("smooth_continuity", S7, f"{name} jump exponent across Gamma^(1)", pred,
                             e, se, relative=False, band=band, band_reason=reason))
        s_ = cont.summary(name)
        med = np.array(s_["median"])
        layers.append(points(d_disc, med, np.zeros_like(med), f"{name} across $\\Gamma^{{(1)}}$: "
                             f"fitted exponent {s_['exponent']:.3f}", group=name))
        layers.append(curve(d_disc, med[0] * (d_disc / d_disc[0]) ** pred, f"slope {pred:g}",
                            group=name, style="--"))
    d_edge = np.array([1e-6, 3e-6, 1e-5, 3e-5])
    for a_s in (1.0, 0.5):
        cb = measure_continuity(model, d_edge, eta, a_s=a_s, n_points=n_points, seed=seed,
                                where=("band_edge",))
        e, se = cb.exponents["band_edge"]
        pred = band_edge_exponent(a_s)
        rows.append(close_to("smooth_continuity", S7, f"band-edge jump exponent, a_s={a_s:g}", pred,
                             e, se, relative=False, band=band, band_reason=reason))
        s_ = cb.summary("band_edge")
        med = np.array(s_["median"])
        g = f"edge{a_s:g}"
        layers.append(points(d_edge, med, np.zeros_like(med), f"smooth at band edge, $a_s={a_s:g}$: "
                             f"fitted exponent {s_['exponent']:.3f}", group=g))
        layers.append(curve(d_edge, med[0] * (d_edge / d_edge[0]) ** pred, f"slope {pred:g}",
                            group=g, style="--"))
    series = {"smoothing_jumps_vs_delta": figure(
        f"SMoE jumps, eta={eta}", r"$\delta$ (distance from the surface, input units)",
        r"median jump $|f(y+\delta v) - f(y-\delta v)|$", layers)}
    return ClaimOutput(tuple(rows), series)


@claim("smooth_overhead", S7, "E N_eta = c1 eta + O(eta^2); calibration hits its target",
       figures={"smoothing_overhead_vs_eta": "extra active experts against eta"})
def smooth_overhead(ctx):
    from ..smoothing import calibrate_eta, estimate_overhead

    seed = ctx.seed
    router = Router.gaussian(8, 64, 2, seed=seed)
    etas = np.array([0.002, 0.005, 0.01, 0.02, 0.04])
    n = ctx.samples(2_000_000, 20_000)
    c1 = slice_constants(router, 1)
    res = estimate_overhead(router, 1.0, etas, n_samples=n, seed=seed, n_jobs=ctx.n_jobs, constants=c1)
    meas = np.array([e.value for e in res.estimates])
    se = np.array([e.stderr for e in res.estimates])
    pred = np.array(res.predicted_leading)
    rows = [close_to("smooth_overhead", S7, f"E N_eta at eta={etas[0]:g}", pred[0], meas[0], se[0])]
    rem = meas - pred
    sig = rem > Z_VERDICT * se
    if sig.sum() >= 2:
        fit = loglog_fit(etas[sig], rem[sig], se[sig])
        slope, slope_se = fit.slope, fit.slope_stderr
    else:
        slope, slope_se = float("nan"), float("nan")
    rows.append(close_to("smooth_overhead", S7, "slope of remainder E N_eta - c1 eta vs eta", 2.0,
                         slope, slope_se if math.isfinite(slope_se) else 0.0, relative=False,
                         band=0.3, band_reason="O(eta^3) term of the remainder (legacy band)",
                         eta=etas[sig].tolist()))
    target = 0.5
    n_cal = max(20_000, n // 4)
    eta_star, guess = calibrate_eta(router, target, 1.0, n_samples=n_cal, seed=seed, constants=c1)
    check = estimate_overhead(router, 1.0, [eta_star], n_samples=n, seed=seed + 1, n_jobs=ctx.n_jobs,
                              constants=c1).estimates[0]
    se_hit = math.hypot(check.stderr, check.stderr * math.sqrt(n / n_cal))
    rows.append(close_to("smooth_overhead", S7, f"overhead at calibrated eta={eta_star:.4g}", target,
                         check.value, se_hit, band=1.0 / n_cal,
                         band_reason="bisection resolution of the calibration, 1/n_cal",
                         eta=eta_star, eta_first_guess=guess))
    series = {"smoothing_overhead_vs_eta": figure(
        "smoothing overhead", r"band width $\eta$ (score units)", "mean number of extra active experts",
        [points(etas, meas, se, "measured $E N_\\eta$ (95% CI)"),
         curve(etas, pred, "leading order $c_1 \\eta$"),
         vline(eta_star, f"calibrated eta for {target} extra experts")])}
    return ClaimOutput(tuple(rows), series)
