"""The ``discosim`` command: builds the parser and dispatches to one module per command.

``hit``, ``smooth``, ``audit``, ``capture``, ``study``, ``figures``, ``validate`` and ``report``
(``merge``, ``readme``) live in the modules of the same names, ``volume`` in :mod:`.volumes` (the
family's word, as everywhere in the package); each has ``add_parser(sub)`` and ``run(args)``; the
options they share and the conventions table are in :mod:`._common`. One error boundary
(:func:`discosim._core.cli.run_guarded`) turns bad input into one line on stderr and exit status
2, never a traceback.
"""

from discosim._core.cli import ArgumentParser, HelpFormatter, run_guarded
from discosim.app.cli import (_common, audit, capture, figures, hit, report, smooth, study,
                              validate, volumes)

__all__ = ["main", "build_parser", "COMMANDS", "command_parsers", "conventions_markdown"]

# the order of `discosim --help`
COMMANDS = {"volume": volumes, "hit": hit, "smooth": smooth, "audit": audit, "capture": capture,
            "study": study, "figures": figures, "validate": validate, "report": report}


def build_parser():
    """The ``discosim`` argument parser with every command."""
    from discosim._core.version import __version__

    parser = ArgumentParser(prog="discosim", formatter_class=HelpFormatter,
                            description="Monte Carlo verification of the geometry and "
                                        "stochastics of discontinuities in sparse "
                                        "Mixture-of-Experts routers (arXiv 2606.19036). Start "
                                        "with `discosim validate`.")
    parser.add_argument("--version", action="version", version=f"discosim {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=ArgumentParser,
                                metavar="{" + ",".join(COMMANDS) + "}")
    for name, module in COMMANDS.items():
        if module is report:
            module.add_parser(sub, conventions_markdown)
        else:
            module.add_parser(sub)
    return parser


def command_parsers(parser=None):
    """``{"volume": parser, ..., "report merge": parser, "report readme": parser}``: every
    command a user runs, with its own parser."""
    import argparse

    parser = build_parser() if parser is None else parser
    out = {}

    def walk(p, prefix):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out[prefix] = p
            return
        for name, child in subs[0].choices.items():
            walk(child, f"{prefix} {name}".strip())

    walk(parser, "")
    return out


def conventions_markdown():
    """The README's "CLI conventions" table, generated from the parsers."""
    return _common.conventions_markdown(command_parsers())


def _run(argv):
    args = build_parser().parse_args(argv)
    _common.check_common(args)
    with _common.run_options(args):
        return COMMANDS[args.command].run(args)


def main(argv=None):
    """Run ``discosim`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Usage errors raise ``SystemExit(2)`` after one line on stderr, as argparse does; ``--help``
    and ``--version`` raise ``SystemExit(0)``. Everything, the parser's imports included, runs
    inside the error boundary (Ctrl-C while numba loads is one line too).
    """
    return run_guarded(_run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
