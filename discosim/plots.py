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


def plot_validation(payload, out_dir):
    """Write the volume figures of a ``discosim validate`` JSON payload into ``out_dir``.

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
            f, se = np.array(d["fraction"]), np.array(d["stderr"])
            line = ax.errorbar(eps, f, yerr=1.96 * se, fmt="o", ms=4, capsize=2,
                               label=f"order {r}: measured (95% CI)")
            ax.plot(eps, d["predicted_leading"], "-", color=line[0].get_color(), alpha=0.7,
                    label=f"order {r}: leading order $A_r\\omega_r\\omega_{{D-r}}(\\epsilon/R)^r/\\omega_D$")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\epsilon/R$ (tube radius over ball radius)")
        ax.set_ylabel(r"fraction of $B_D(0,R)$ in the order-$r$ tube")
        ax.set_title(vol["title"], fontsize=9)
        ax.legend(fontsize=7)
        written += _save(fig, out_dir, "volume_fraction_vs_eps")
        plt.close(fig)
    rat = figs.get("ratios")
    if rat:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        eps = np.array(rat["eps"])
        for key, d in sorted(rat["ratios"].items()):
            r = np.array(d["ratio"])
            se = np.array(d["ratio_se"])
            line = ax.errorbar(eps, r, yerr=1.96 * se, fmt="o", ms=4, capsize=2,
                               label=f"$U_{key}/U_1$ measured (95% CI)")
            ax.plot(eps, d["predicted"], "-", color=line[0].get_color(), alpha=0.7,
                    label=f"$U_{key}/U_1$ ratio theorem, slope {int(key) - 1}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\epsilon/R$")
        ax.set_ylabel(r"volume ratio $U_n/U_1$")
        ax.set_title(rat["title"], fontsize=9)
        ax.legend(fontsize=7)
        written += _save(fig, out_dir, "volume_ratios_vs_eps")
        plt.close(fig)
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
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\delta$ (distance from the surface, input units)")
        ax.set_ylabel(r"median jump $|f(y+\delta v) - f(y-\delta v)|$")
        ax.set_title(f"SMoE jumps, eta={cont['eta']} (dashed: predicted slopes 0, 1, 1, 0.5)", fontsize=9)
        ax.legend(fontsize=7)
        written += _save(fig, out_dir, "smoothing_jumps_vs_delta")
        plt.close(fig)
    ov = sm.get("overhead")
    if ov:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        e = np.array(ov["etas"])
        ax.errorbar(e, ov["mean"], yerr=1.96 * np.array(ov["stderr"]), fmt="o", ms=4, capsize=2,
                    label="measured $E N_\\eta$ (95% CI)")
        ax.plot(e, ov["predicted"], "-", label="leading order $c_1 \\eta$")
        ax.axvline(ov["eta_star"], color="grey", ls=":", label=f"calibrated eta for {ov['target']} extra experts")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"band width $\eta$ (score units)")
        ax.set_ylabel("mean number of extra active experts")
        ax.legend(fontsize=7)
        written += _save(fig, out_dir, "smoothing_overhead_vs_eta")
        plt.close(fig)
    hit = figs.get("hitting", {})
    b = hit.get("bounds")
    if b:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        t = np.array(b["times"])
        ax.fill_between(t, b["lower"], b["upper"], alpha=0.25, label="THEORY §6 bounds")
        ax.errorbar(t, b["cdf"], yerr=1.96 * np.array(b["stderr"]), fmt="o", ms=4, capsize=2,
                    label=r"measured $P(\tau \leq t)$ (95% CI)")
        ax.set_xscale("log")
        ax.set_xlabel(r"$t / d_{\min}^2$ ($\sigma = 1$; $d_{\min}$ nearest facet distance)")
        ax.set_ylabel(r"$P(\tau \leq t)$")
        ax.legend(fontsize=7)
        written += _save(fig, out_dir, "first_hit_cdf_bounds")
        plt.close(fig)
    qh = hit.get("hit_order")
    if qh and qh["q"]:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        d = np.array(qh["deltas"])
        q = np.array(qh["q"])
        ax.errorbar(d, q, yerr=1.96 * np.array(qh["stderr"]), fmt="o", ms=4, capsize=2,
                    label=r"measured $q(\delta)$ (95% CI)")
        ref = q[-1] * (d / d[-1]) ** qh["predicted"]
        ax.plot(d, ref, "--", label=f"slope $\\pi/\\theta^*$ = {qh['predicted']:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"$\delta / d_{\min}$")
        ax.set_ylabel(r"$P(X_\tau$ within $\delta$ of $\Gamma^{(\geq 2)})$")
        ax.legend(fontsize=7)
        written += _save(fig, out_dir, "hit_order_q_vs_delta")
        plt.close(fig)
    occ = hit.get("occupation")
    if occ:
        fig, ax = plt.subplots(figsize=(6, 4.5))
        e = np.array(occ["eps"])
        for i, r in enumerate(occ["orders"]):
            line = ax.errorbar(e, occ["mean"][i], yerr=1.96 * np.array(occ["stderr"][i]), fmt="o",
                               ms=4, capsize=2, label=f"order {r}: measured $E L_{r}^\\epsilon(t_{{max}})$")
            ax.plot(e, occ["bound"][i], "--", color=line[0].get_color(), alpha=0.7,
                    label=f"order {r}: THEORY §6 bound")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(r"tube radius $\epsilon$")
        ax.set_ylabel(f"mean occupation time up to t = {occ['times'][-1]:g}")
        ax.legend(fontsize=7)
        written += _save(fig, out_dir, "occupation_vs_eps")
        plt.close(fig)
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
            line = ax.errorbar(x[order], y[order], yerr=1.96 * err[order], fmt="o", ms=4, capsize=2,
                               label=f"{label} (95% CI)")
            color = line[0].get_color()
        else:
            color = ax.plot(x[order], y[order], "o", ms=4, label=label)[0].get_color()
        if spec.get("pred"):
            p = np.array([_num(r[spec["pred"]]) for r in rs])
            if np.any(np.isfinite(p)):
                ax.plot(x[order], p[order], "-", color=color, alpha=0.6)
    if spec.get("logx", True):
        ax.set_xscale("log")
    if spec.get("logy", True):
        ax.set_yscale("log")
    ax.set_xlabel(spec.get("xlabel", spec["x"]))
    ax.set_ylabel(spec.get("ylabel", spec["y"]))
    title = f"study {name}" + (" (lines: prediction)" if spec.get("pred") else "")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6)
    paths = _save(fig, out_dir, name)
    plt.close(fig)
    return paths
