"""The figure of one model's audit: per-layer margin tube fractions and flip rates (THEORY §9).

matplotlib is imported only when a figure is drawn.
"""

import os

import numpy as np

from discosim._core.io import safe_join, save_figure
from discosim.plotting.figures import new_figure

__all__ = ["plot_audit"]


def plot_audit(doc, out_dir, name="audit"):
    """Draw ``audit.png`` and ``audit.svg`` from an audit document (``AuditResult.to_dict()``).

    Left: ``P(g <= eps)`` per layer for every eps (points with 95% bars; lines: the §5/§9 leading
    order where it exists). Right: the fraction of inputs whose selected set changes when the
    logits are rounded (circles) or the whole router runs in the format (diamonds), per layer and
    format (points with 95% bars; open squares: prediction).
    Returns the PNG path.
    """
    layers = doc["layers"]
    x = np.array([L["index"] for L in layers])
    fig, (ax1, ax2) = new_figure(1, 2, figsize=(11, 4.2))
    for j, e in enumerate(doc["eps"]):
        y = np.array([L["margin_fraction"]["1"][j] for L in layers])
        se = np.array([L["margin_fraction_stderr"]["1"][j] for L in layers])
        line = ax1.errorbar(x, y, yerr=1.96 * se, fmt="o", ms=3, capsize=2, label=f"eps={e:g}")
        pred = [L["margin_fraction_predicted"]["1"][j] if L["margin_fraction_predicted"] else np.nan
                for L in layers]
        if np.any(np.isfinite(pred)):
            ax1.plot(x, pred, "-", color=line[0].get_color(), alpha=0.5)
    ax1.set_yscale("log")
    ax1.set_xlabel("router layer")
    ax1.set_ylabel("P(margin <= eps)")
    ax1.set_title("decision-margin tube fractions (lines: leading order)")
    ax1.legend(fontsize=7)
    # the logits-only formats, then the whole-router ones ("bf16-router", ...)
    fmts = list(dict.fromkeys(f for L in layers for f in L["flip"]))

    def col(fmt, key):
        return np.array([np.nan if L["flip"].get(fmt, {}).get(key) is None
                         else L["flip"][fmt][key] for L in layers], dtype=float)

    for fmt in fmts:
        m, se, p = col(fmt, "measured"), col(fmt, "stderr"), col(fmt, "predicted")
        line = ax2.errorbar(x, m, yerr=1.96 * se, fmt="o" if "-" not in fmt else "D", ms=4,
                            capsize=2, label=f"{fmt} measured")
        if np.any(np.isfinite(p)):
            ax2.plot(x, p, "s", mfc="none", color=line[0].get_color(), label=f"{fmt} predicted")
    if np.any([np.nansum(col(f, "measured")) > 0 for f in fmts]):
        ax2.set_yscale("log")
    ax2.set_xlabel("router layer")
    ax2.set_ylabel("fraction of inputs changing experts")
    ax2.set_title("rounding the logits (FMT) / the whole router (FMT-router)")
    ax2.legend(fontsize=7)
    from matplotlib.ticker import MaxNLocator

    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(f"{doc['model']} ({doc['family']}), inputs: {doc['inputs']}", fontsize=10)
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    png = safe_join(out_dir, name, ".png", what="figure name")
    save_figure(fig, png, dpi=120)
    save_figure(fig, safe_join(out_dir, name, ".svg", what="figure name"), metadata={"Date": None})
    return png
