"""Figures from saved validation results (never recomputes anything).

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global backend): headless runs
work and a user's own backend choice is never changed.
"""

import os

import numpy as np

from discosim._core.io import safe_join, save_figure

__all__ = ["plot_validation", "plot_series", "plot_study"]


def new_figure(nrows=1, ncols=1, figsize=(6, 4.5)):
    """A detached ``Figure`` and its axes: no pyplot state, no backend switch."""
    import matplotlib
    from matplotlib.figure import Figure

    # identical inputs give byte-identical SVGs (no random ids, no dates), so redraws diff cleanly
    matplotlib.rcParams["svg.hashsalt"] = "discosim"
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols)


def _save(fig, out_dir, name):
    paths = []
    for ext in ("png", "svg"):
        p = safe_join(out_dir, name, f".{ext}", what="figure name")
        meta = {"Date": None} if ext == "svg" else {}
        save_figure(fig, p, dpi=130, bbox_inches="tight", metadata=meta)
        paths.append(p)
    return paths


def _errorbars(ax, x, y, se, label, **kw):
    """Measured points with 95% error bars; returns their colour for a matching prediction."""
    line = ax.errorbar(x, y, yerr=1.96 * np.asarray(se, dtype=float), fmt="o", ms=4, capsize=2,
                       label=label, **kw)
    return line[0].get_color()


def _finish(fig, ax, out_dir, name, xlabel, ylabel, title=None, logx=True, logy=True):
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
    return paths


def plot_series(name, spec, out_dir):
    """Draw one figure spec (see :func:`discosim.validation.rules.figure`) as PNG + SVG in ``out_dir``.

    Layers: ``points`` (95% error bars), ``curve`` (coloured like the points of its ``group``),
    ``band`` (shaded region) and ``vline``. Returns the written paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    fig, ax = new_figure()
    colours = {}
    for layer in spec["layers"]:
        kind, group = layer["kind"], layer.get("group")
        kw = {"color": colours[group]} if group is not None and group in colours else {}
        if kind == "points":
            c = _errorbars(ax, layer["x"], layer["y"], layer["se"], layer["label"], **kw)
        elif kind == "curve":
            c = ax.plot(layer["x"], layer["y"], layer.get("style", "-"), alpha=0.7,
                        label=layer["label"], **kw)[0].get_color()
        elif kind == "band":
            c = None
            ax.fill_between(layer["x"], layer["lo"], layer["hi"], alpha=0.25, label=layer["label"])
        elif kind == "vline":
            c = None
            ax.axvline(layer["x"], color="grey", ls=":", label=layer["label"])
        else:
            raise ValueError(f"unknown layer kind {kind!r} in figure {name}")
        if group is not None and c is not None:
            colours.setdefault(group, c)
    return _finish(fig, ax, out_dir, name, spec["xlabel"], spec["ylabel"], spec.get("title"),
                   spec.get("logx", True), spec.get("logy", True))


def plot_validation(payload, out_dir):
    """Write every figure of a ``discosim validate`` payload (its ``series``) into ``out_dir``.

    The payload's ``series`` maps claim name to ``{figure name: figure spec}``; nothing is
    recomputed. Returns the list of written paths.
    """
    written = []
    for claim_series in payload.get("series", {}).values():
        for name, spec in sorted(claim_series.items()):
            written += plot_series(name, spec, out_dir)
    return written


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def plot_study(name, spec, rows, out_dir):
    """A study's figure from its tidy rows (dicts of strings, as read back from results.csv)."""
    groups = spec.get("group") or []
    if isinstance(groups, str):
        groups = [groups]
    rows = [r for r in rows if r.get("router_index", "") != "mean"]
    series = {}
    for r in rows:
        key = tuple(r.get(g, "") for g in groups)
        series.setdefault(key, []).append(r)
    fig, ax = new_figure()
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
    return _finish(fig, ax, out_dir, name, spec.get("xlabel", spec["x"]),
                   spec.get("ylabel", spec["y"]), title, spec.get("logx", True), spec.get("logy", True))
