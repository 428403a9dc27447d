"""``discosim figures``: redraw figures from saved results, recomputing nothing.

The validation figures and ``REPORT.md`` are drawn from a ``validate.json`` (``--validation
DIR``, by default the ``--out`` folder itself) into ``--out`` (default ``./discosim-results/``);
the figure names it holds must be plain file names, or nothing is written. Study figures are
redrawn beside each study's saved results under ``--results``.
"""

import os

from discosim._core.errors import InputError
from discosim.app.cli import _common as c

__all__ = ["add_parser", "run"]


def add_parser(sub):
    """Register ``figures``."""
    p = c.new_command(sub, "figures", "redraw every figure from saved results (no recomputation)",
                      "Redraw figures from saved results, recomputing nothing. The validation "
                      "figures and REPORT.md are drawn from a validate.json (--validation DIR, "
                      "by default the --out folder itself) into --out; its figure names must be "
                      "plain file names, or nothing is written. Study figures are redrawn "
                      "beside each study's saved results under --results.")
    p.add_argument("--results", metavar="DIR",
                   help="a folder of study results: each study's figure is redrawn beside its "
                        "results.csv (alone, only these)")
    p.add_argument("--validation", metavar="DIR",
                   help="the folder holding validate.json (default: --out, unless --results is "
                        "given alone)")
    c.add_out(p, None, f"where the validation figures, REPORT.md and a copy of validate.json go "
                       f"(default: ./{c.DEFAULT_OUT})")
    c.add_json(p)
    c.add_quiet(p, has_bar=False)
    return p


def run(args):
    """Run ``discosim figures``; returns the exit status."""
    from discosim._core.results import dumps
    from discosim.app.studies import study_figure
    from discosim.validation.report import redraw_figures

    written = []
    root = args.results
    if root is not None:
        if not os.path.isdir(root):
            raise InputError(f"--results: no directory {root}")
        for dirpath, _, files in sorted(os.walk(root)):
            if "results.json" in files and "results.csv" in files:
                written += study_figure(dirpath)
    # --results alone redraws the studies only; the validation figures when asked or by default
    want_validation = args.validation is not None or args.out is not None or root is None
    out = args.out or c.DEFAULT_OUT
    source = args.validation or out
    if want_validation:
        written += redraw_figures(out, source=source)
    if not written:
        where = [root] if root is not None else []
        if want_validation:
            where.append(os.path.join(source, "validate.json"))
        raise InputError(f"no saved results in {' or '.join(where)}")
    if args.json:
        print(dumps({"written": written}))
    else:
        for path in written:
            if path.endswith(".png"):
                print(path)
    return 0
