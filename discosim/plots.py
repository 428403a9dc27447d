"""Figures from saved validation results (never recomputes anything).

matplotlib is imported lazily with the Agg backend so that headless runs work.
"""

import os

import numpy as np

__all__ = ["plot_validation"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # identical inputs give byte-identical SVGs (no random ids, no dates), so redraws diff cleanly
    matplotlib.rcParams["svg.hashsalt"] = "discosim"
    return plt


def _save(fig, out_dir, name):
    paths = []
    for ext in ("png", "svg"):
        p = os.path.join(out_dir, f"{name}.{ext}")
        meta = {"Date": None} if ext == "svg" else {}
        fig.savefig(p, dpi=130, bbox_inches="tight", metadata=meta)
        paths.append(p)
    return paths


def _errorbars(ax, x, y, se, label, **kw):
    """Measured points with 95% error bars; returns their colour for a matching prediction."""
    line = ax.errorbar(x, y, yerr=1.96 * np.asarray(se, dtype=float), fmt="o", ms=4, capsize=2,
                       label=label, **kw)
    return line[0].get_color()


def _finish(plt, fig, ax, out_dir, name, xlabel, ylabel, title=None, logx=True, logy=True):
    """Axes scales, labels, title and legend; saves PNG + SVG and closes the figure."""
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    paths = _save(fig, out_dir, name)
    plt.close(fig)
    return paths


def plot_validation(payload, out_dir):
    """Write the figures of a ``discosim validate`` JSON payload into ``out_dir``.

    Returns the list of written paths.
    """
    plt = _plt()
    os.makedirs(out_dir, exist_ok=True)
    written = []
    figs = payload.get("figures_data", {})
    vol = figs.get("volume_vs_eps")
    if vol:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        eps = np.array(vol["eps"])
        for r, d in sorted(vol["orders"].items()):
            c = _errorbars(ax, eps, d["fraction"], d["stderr"], f"order {r}: measured (95% CI)")
            ax.plot(eps, d["predicted_leading"], "-", color=c, alpha=0.7,
                    label=f"order {r}: leading order $A_r\\omega_r\\omega_{{D-r}}(\\epsilon/R)^r/\\omega_D$")
        written += _finish(plt, fig, ax, out_dir, "volume_fraction_vs_eps",
                           r"$\epsilon/R$ (tube radius over ball radius)",
                           r"fraction of $B_D(0,R)$ in the order-$r$ tube", vol["title"])
    rat = figs.get("ratios")
    if rat:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        eps = np.array(rat["eps"])
        for key, d in sorted(rat["ratios"].items()):
            c = _errorbars(ax, eps, d["ratio"], d["ratio_se"], f"$U_{key}/U_1$ measured (95% CI)")
            ax.plot(eps, d["predicted"], "-", color=c, alpha=0.7,
                    label=f"$U_{key}/U_1$ ratio theorem, slope {int(key) - 1}")
        written += _finish(plt, fig, ax, out_dir, "volume_ratios_vs_eps", r"$\epsilon/R$",
                           r"volume ratio $U_n/U_1$", rat["title"])
    sm = figs.get("smoothing", {})
    cont = sm.get("continuity")
    if cont:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        series = [("top-k across $\\Gamma^{(1)}$", cont["deltas"], cont["topk"], 0),
                  ("smooth across $\\Gamma^{(1)}$", cont["deltas"], cont["smooth"], 1)]
        for key, lab in (("band_edge_1", "smooth at band edge, $a_s=1$"),
                         ("band_edge_0.5", "smooth at band edge, $a_s=0.5$")):
            if key in sm:
                series.append((lab, sm[key]["deltas"], sm[key], 1 if key.endswith("_1") else 0.5))
        for lab, d, s_, slope in series:
            d = np.array(d)
            med = np.array(s_["median"])
            line = ax.plot(d, med, "o", label=f"{lab}: fitted exponent {s_['exponent']:.3f}")[0]
            ax.plot(d, med[0] * (d / d[0]) ** slope, "--", color=line.get_color(), alpha=0.6)
        written += _finish(plt, fig, ax, out_dir, "smoothing_jumps_vs_delta",
                           r"$\delta$ (distance from the surface, input units)",
                           r"median jump $|f(y+\delta v) - f(y-\delta v)|$",
                           f"SMoE jumps, eta={cont['eta']} (dashed: predicted slopes 0, 1, 1, 0.5)")
    ov = sm.get("overhead")
    if ov:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        e = np.array(ov["etas"])
        _errorbars(ax, e, ov["mean"], ov["stderr"], "measured $E N_\\eta$ (95% CI)")
        ax.plot(e, ov["predicted"], "-", label="leading order $c_1 \\eta$")
        ax.axvline(ov["eta_star"], color="grey", ls=":", label=f"calibrated eta for {ov['target']} extra experts")
        written += _finish(plt, fig, ax, out_dir, "smoothing_overhead_vs_eta",
                           r"band width $\eta$ (score units)", "mean number of extra active experts")
    hit = figs.get("hitting", {})
    b = hit.get("bounds")
    if b:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        t = np.array(b["times"])
        ax.fill_between(t, b["lower"], b["upper"], alpha=0.25, label="THEORY §6 bounds")
        _errorbars(ax, t, b["cdf"], b["stderr"], r"measured $P(\tau \leq t)$ (95% CI)")
        written += _finish(plt, fig, ax, out_dir, "first_hit_cdf_bounds",
                           r"$t / d_{\min}^2$ ($\sigma = 1$; $d_{\min}$ nearest facet distance)",
                           r"$P(\tau \leq t)$", logy=False)
    qh = hit.get("hit_order")
    if qh and qh["q"]:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        d = np.array(qh["deltas"])
        q = np.array(qh["q"])
        _errorbars(ax, d, q, qh["stderr"], r"measured $q(\delta)$ (95% CI)")
        ref = q[-1] * (d / d[-1]) ** qh["predicted"]
        ax.plot(d, ref, "--", label=f"slope $\\pi/\\theta^*$ = {qh['predicted']:.3g}")
        written += _finish(plt, fig, ax, out_dir, "hit_order_q_vs_delta", r"$\delta / d_{\min}$",
                           r"$P(X_\tau$ within $\delta$ of $\Gamma^{(\geq 2)})$")
    occ = hit.get("occupation")
    if occ:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        e = np.array(occ["eps"])
        for i, r in enumerate(occ["orders"]):
            c = _errorbars(ax, e, occ["mean"][i], occ["stderr"][i],
                           f"order {r}: measured $E L_{r}^\\epsilon(t_{{max}})$")
            ax.plot(e, occ["bound"][i], "--", color=c, alpha=0.7, label=f"order {r}: THEORY §6 bound")
        written += _finish(plt, fig, ax, out_dir, "occupation_vs_eps", r"tube radius $\epsilon$",
                           f"mean occupation time up to t = {occ['times'][-1]:g}")
    return written


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def plot_study(name, spec, rows, out_dir):
    """A study's figure from its tidy rows (dicts of strings, as read back from results.csv)."""
    plt = _plt()
    groups = spec.get("group") or []
    if isinstance(groups, str):
        groups = [groups]
    rows = [r for r in rows if r.get("router_index", "") != "mean"]
    series = {}
    for r in rows:
        key = tuple(r.get(g, "") for g in groups)
        series.setdefault(key, []).append(r)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for key, rs in sorted(series.items()):
        x = np.array([_num(r[spec["x"]]) for r in rs])
        y = np.array([_num(r[spec["y"]]) for r in rs])
        order = np.argsort(x)
        label = ", ".join(f"{g}={v}" for g, v in zip(groups, key)) or spec["y"]
        err = np.array([_num(r[spec["err"]]) for r in rs]) if spec.get("err") else None
        if err is not None:
            color = _errorbars(ax, x[order], y[order], err[order], f"{label} (95% CI)")
        else:
            color = ax.plot(x[order], y[order], "o", ms=4, label=label)[0].get_color()
        if spec.get("pred"):
            p = np.array([_num(r[spec["pred"]]) for r in rs])
            if np.any(np.isfinite(p)):
                ax.plot(x[order], p[order], "-", color=color, alpha=0.6)
    title = f"study {name}" + (" (lines: prediction)" if spec.get("pred") else "")
    return _finish(plt, fig, ax, out_dir, name, spec.get("xlabel", spec["x"]),
                   spec.get("ylabel", spec["y"]), title, spec.get("logx", True), spec.get("logy", True))
