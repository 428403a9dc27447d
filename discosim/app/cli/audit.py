"""``discosim audit PATH``: every router of a checkpoint, its margins and its precision (THEORY §9).

Prints a table (or, with ``--json``, exactly one JSON document), writes a tidy CSV (``--csv``) and,
with ``--out DIR``, ``audit.json``, ``audit.csv`` and the figure ``audit.png``/``.svg``. Bad input
exits with status 2 and one line on stderr (the boundary of :func:`discosim.app.cli.main.main`).
"""

import csv
import io
import os
import time

from discosim._core.errors import printable
from discosim.app.cli import _common as c

__all__ = ["add_parser", "run", "write_csv"]


def add_parser(sub):
    """Register the ``audit`` subcommand."""
    from discosim.audit.estimators import DEFAULT_EPS, DEFAULT_N_SAMPLES
    from discosim.checkpoints.families import FAMILIES
    from discosim.model.selection import FORMATS

    p = c.new_command(
        sub, "audit", "audit every router of a checkpoint: margins, slice constants, bf16/fp16 flips",
        "Audit every router of a safetensors checkpoint (a model directory, sharded with "
        "model.safetensors.index.json or a single model.safetensors, or one .safetensors file): "
        "decision margins, slice constants (linear families) and the fraction of inputs whose "
        "experts change when the router logits are rounded to bf16/fp16, measured and predicted "
        "(THEORY §9).")
    p.add_argument("path", help="model directory or .safetensors file")
    p.add_argument("--csv", metavar="FILE", help="write a tidy CSV (one row per layer x quantity)")
    c.add_out(p, None, "write audit.json, audit.csv and the figure here")
    p.add_argument("--inputs", default="sphere",
                   help="sphere (radius sqrt(D)) | ball | FILE.npy/.npz of hidden states")
    p.add_argument("--eps", type=c.listed(float), nargs="+", default=list(DEFAULT_EPS),
                   metavar="EPS", help="margins of the tube fractions")
    p.add_argument("--n-samples", type=c.count, default=None,
                   help=f"random inputs per layer (default: {DEFAULT_N_SAMPLES} for M >= 64, up to "
                        f"4x that for small M)")
    p.add_argument("--constants-samples", type=c.count, default=20_000,
                   help="Monte Carlo size of the slice constants A_r (0: skip)")
    p.add_argument("--family", choices=tuple(FAMILIES), help="override the detected router family")
    p.add_argument("--key-pattern",
                   help="router tensor names, e.g. 'model.layers.{i}.moe.router.weight'")
    p.add_argument("--k", type=c.count, help="override k (experts per token)")
    p.add_argument("--n-group", type=c.count, help="override DeepSeek-V3 n_group")
    p.add_argument("--topk-group", type=c.count, help="override DeepSeek-V3 topk_group")
    p.add_argument("--no-fold-norm", action="store_true", help="do not fold the norm weight into W")
    p.add_argument("--layers", type=c.listed(int), nargs="+", metavar="I",
                   help="router positions to audit (default: all)")
    p.add_argument("--formats", type=c.listed(str), nargs="+", default=["bf16", "fp16"],
                   choices=tuple(FORMATS),
                   help="float formats of the precision audit: each is measured with the logits "
                        "rounded (FMT) and with the whole router run in it (FMT-router)")
    p.add_argument("--router-samples", type=c.count, default=None,
                   help="inputs per layer of the whole-router mode (full-D sphere inputs; "
                        "default: 2^30/(M D) clipped to 500..20000; 0: leave the mode out)")
    c.add_seed(p)
    c.add_jobs(p)
    c.add_device(p, "cuda: random inputs, exact logits and margins on an NVIDIA GPU (the [cuda] "
                    "extra)")
    c.add_json(p)
    c.add_quiet(p)
    return p


def write_csv(result, path):
    """Write ``result.tidy_rows()`` to ``path`` atomically; returns the path."""
    from discosim._core.io import write_atomic

    rows = result.tidy_rows()
    buf = io.StringIO()
    cols = list(rows[0]) if rows else ["model"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: "" if r.get(c) is None else r.get(c) for c in cols})
    write_atomic(path, buf.getvalue())
    return path


def _fmt(v, spec=".3g"):
    return "-" if v is None else format(v, spec)


def _table(doc, elapsed):
    n = doc["n_samples"]
    if n == "auto":
        n = "/".join(sorted({str(L["n_samples"]) for L in doc["layers"]})) + " per layer"
    # model, family, layer and notes come from the checkpoint's files: escaped
    print(f"model: {printable(doc['model'])}  family: {printable(doc['family'])}  "
          f"inputs: {printable(doc['inputs'])}  "
          f"n={n}  seed={doc['seed_entropy']}  ({elapsed:.1f} s)")
    fmts = list(doc["layers"][0]["flip"]) if doc["layers"] else doc["formats"]
    mid = len(doc["eps"]) // 2
    e_mid = doc["eps"][mid]
    head = (f"{'layer':>5} {'M':>4} {'k':>2} {'D':>5} {'|w| min..max':>15} {'min|wi-wj|':>10} "
            f"{'A_1':>16} {'q01(g)':>9} {'P(g<=' + format(e_mid, 'g') + ')':>16}")
    for f in fmts:
        head += f" {f + ' flips (pred)':>28}"
    print(head)
    print("-" * len(head))
    notes = set()
    for L in doc["layers"]:
        a1 = L["A"].get("1")
        a1s = f"{a1[0]:.4g}±{a1[1]:.2g}" if a1 else "-"
        frac = L["margin_fraction"]["1"][mid]
        fse = L["margin_fraction_stderr"]["1"][mid]
        label = printable(L["layer"] if L.get("layer") is not None else L["index"])
        line = (f"{label:>5} {L['M']:>4} {L['k']:>2} {L['D']:>5} "
                f"{L['row_norms']['min']:>7.3g}..{L['row_norms']['max']:<6.3g} "
                f"{L['min_pair_distance']:>10.3g} {a1s:>16} "
                f"{_fmt(L['margin_quantiles'].get('0.01')):>9} {f'{frac:.3g}±{fse:.2g}':>16}")
        for f in fmts:
            x = L["flip"].get(f)
            if x is None:
                line += f" {'-':>28}"
                continue
            mark = "" if not x["claim"] else (" ok" if x["agrees"] else " !!")
            pred = x["predicted"]
            pred = "-" if pred is None or pred != pred else format(pred, ".3g")
            if x.get("prediction_note"):
                # the number is printed with its caveat beside it, never bare (issue 23 item 5)
                pred += "?"
                notes.add(x["prediction_note"])
            cell = f"{x['measured']:.3g}±{x['stderr']:.2g} ({pred}){mark}"
            line += f" {cell:>28}"
        print(line)
    print("flips: fraction of inputs whose selected experts change against exact float64 "
          "routing (round to nearest even). FMT: only the logits rounded, as a router run in "
          "fp32 whose logits are stored in FMT; (pred) leading order in the unit roundoff "
          "(linear gates: THEORY §9, tie merge 1/4; sigmoid-scored curved routing: independent "
          "rounding errors through the sigmoid, no claim; softmax-scored curved routing: none). "
          "FMT-router: the whole router as a model in FMT runs "
          "it (norm output and weight in FMT, fp32 accumulation, logits in FMT; full-D inputs, "
          "fewer of them): what a bf16/fp16 serving stack does; (pred) input rounding + tie "
          "merge (discosim.audit.whole_router; linear gates only). ok/!!: agreement within 4 "
          "paired standard errors.")
    for n in doc.get("notes", []):
        print(f"note: {printable(n)}")
    for n in sorted(notes):
        print(f"note: (pred?): {n}")


def run(args):
    """Run ``discosim audit`` from parsed arguments; returns the exit status."""
    from discosim.audit.estimators import audit_checkpoint
    from discosim._core.results import dumps

    open_kw = {"fold_norm": not args.no_fold_norm}
    for name in ("family", "key_pattern", "k", "n_group", "topk_group"):
        if getattr(args, name) is not None:
            open_kw[name] = getattr(args, name)
    t0 = time.perf_counter()
    res = audit_checkpoint(args.path, inputs=args.inputs, eps=args.eps, n_samples=args.n_samples,
                           seed=args.seed, n_jobs=args.n_jobs, formats=args.formats,
                           layers=args.layers,
                           progress=False if (args.json or args.quiet) else None,
                           constants_samples=args.constants_samples, device=args.device,
                           router_samples=args.router_samples, **open_kw)
    elapsed = time.perf_counter() - t0
    doc = res.to_dict()
    doc["elapsed_s"] = elapsed
    if args.csv:
        write_csv(res, args.csv)
    if args.out:
        from discosim.plotting.audit import plot_audit
        from discosim._core.io import write_atomic

        os.makedirs(args.out, exist_ok=True)
        write_atomic(os.path.join(args.out, "audit.json"), dumps(doc, indent=1))
        write_csv(res, os.path.join(args.out, "audit.csv"))
        plot_audit(doc, args.out)
    if args.json:
        print(dumps(doc))
    else:
        _table(doc, elapsed)
        if args.out:
            print(f"wrote {args.out}/audit.json, audit.csv, audit.png")
    return 0
