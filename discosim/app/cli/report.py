"""``discosim report``: ``merge`` the validate.json files of one run split over several jobs, and
``readme``: rewrite the README's generated blocks.

``discosim report merge A/validate.json B/validate.json --out DIR [--reference REF]`` runs the
same code as ``python -m discosim.validation.report --merge ...``: rows in registry order, runs
of other seeds or scales and a claim twice refused, every figure name checked before anything is
written. ``discosim report readme README.md [--check]`` rewrites the claims table and figure list
(as ``python -m discosim.validation.report --readme`` does) and the "CLI conventions" table.
"""

from discosim._core.errors import InputError, printable
from discosim.app.cli import _common as c

__all__ = ["add_parser", "run", "CLI_MARKERS", "update_cli_block"]

CLI_MARKERS = ("<!-- cli:start -->", "<!-- cli:end -->")


def add_parser(sub, conventions):
    """Register ``report`` with its subcommands ``merge`` and ``readme``; ``conventions()`` gives
    the README's "CLI conventions" table (the parser that knows every command builds it)."""
    from discosim._core.cli import ArgumentParser

    p = c.new_command(sub, "report", "merge split validation runs; rewrite the README's tables")
    actions = p.add_subparsers(dest="action", required=True, metavar="{merge,readme}",
                               parser_class=ArgumentParser)
    m = c.new_command(actions, "merge", "merge validate.json files of one split run into one "
                                        "report",
                      "Merge the validate.json files of one run split over several jobs into "
                      "one validate.json, REPORT.md and figures in --out: rows in registry "
                      "order; runs of other seeds or scales, a claim twice, a malformed file or "
                      "a figure name that is not a plain file name are refused before anything "
                      "is written. The same code as python -m discosim.validation.report "
                      "--merge.")
    m.add_argument("files", nargs="+", metavar="VALIDATE_JSON", help="the runs' validate.json")
    m.add_argument("--out", metavar="DIR", required=True,
                   help="folder of the merged validate.json, REPORT.md and figures")
    m.add_argument("--reference", metavar="VALIDATE_JSON",
                   help="another run whose resolutions REPORT.md shows beside")
    c.add_json(m)
    c.add_quiet(m, has_bar=False)
    m.set_defaults(run_action=run_merge)
    r = c.new_command(actions, "readme", "rewrite the README's generated tables from the code")
    r.add_argument("path", metavar="README", help="the README.md to rewrite")
    r.add_argument("--check", action="store_true",
                   help="only compare: exit status 1 if a table is out of date")
    r.set_defaults(run_action=run_readme, conventions=conventions)
    return p


def run(args):
    """Run ``discosim report ACTION``; returns the exit status."""
    return args.run_action(args)


def run_merge(args):
    """``discosim report merge``: 0 iff every merged row holds, else 1."""
    import os

    from discosim._core.results import dumps
    from discosim.validation.report import format_table, merge_validations

    payload = merge_validations(args.files, args.out, args.reference)
    if args.json:
        print(dumps(payload))  # JSON escapes control characters itself
    else:
        # claim names, quantities and rules come from the files: escaped before the table
        # lays them out, so a newline in one cannot start a line of its own
        rows = [{k: printable(v) if isinstance(v, str) else v for k, v in row.items()}
                for row in payload["claims"]]
        print(format_table({**payload, "claims": rows}, args.out))
        print(f"Report: {os.path.join(args.out, 'REPORT.md')}; numbers: "
              f"{os.path.join(args.out, 'validate.json')}")
    return 0 if payload["all_passed"] else 1


def update_cli_block(path, table, check=False):
    """Put ``table`` between the "CLI conventions" markers of the README at ``path`` (with
    ``check``, only compare); True iff it was there already."""
    from discosim._core.io import write_atomic

    with open(path) as fh:
        text = fh.read()
    start, end = CLI_MARKERS
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise InputError(f"{path} lacks the markers {start} ... {end}")
    new = text[:i + len(start)] + "\n" + table + "\n" + text[j:]
    if not check and new != text:
        write_atomic(path, new)
    return new == text


def run_readme(args):
    """``discosim report readme``: 0, or with --check 1 if a table was out of date."""
    from discosim.validation.report import update_readme

    same = update_readme(args.path, check=args.check)
    same = update_cli_block(args.path, args.conventions(), check=args.check) and same
    return 1 if (args.check and not same) else 0
