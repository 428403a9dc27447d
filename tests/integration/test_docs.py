"""The documentation site builds with warnings as errors, its gallery executing (issue 20).

A copy of ``docs/`` and ``examples/`` is built in a temporary directory, so sphinx-gallery runs
every example afresh (in place it skips the ones it has run before) and nothing is written into
the checkout. ``sphinx-build -W`` fails on any warning: a broken cross-reference or THEORY
anchor, a docstring numpydoc cannot parse or that lacks its Parameters, Returns or Examples, an
example that raises, an API page that does not list ``discosim.__all__``. The tools come with the
``test`` extra, so the test runs (never skips) in CI.
"""

import glob
import os
import shutil
import subprocess
import sys

import discosim

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _subcommands():
    """``{command: [its long options]}`` of the real parser."""
    import argparse

    from discosim.app.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: [o for a in p._actions for o in a.option_strings
                   if o.startswith("--") and o != "--help"]
            for name, p in sub.choices.items()}


def test_docs_build_with_warnings_as_errors(tmp_path):
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("_build", "_generated", "generated", "auto_examples",
                                  "__pycache__")
    shutil.copytree(os.path.join(ROOT, "docs"), src / "docs", ignore=skip)
    shutil.copytree(os.path.join(ROOT, "examples"), src / "examples", ignore=skip)
    out = tmp_path / "html"
    # this checkout's discosim, whatever else is installed
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html",
           "-d", str(tmp_path / "doctrees"), str(src / "docs"), str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-6000:]

    # the gallery ran: every example's figure was drawn and its page written
    examples = sorted(os.path.basename(f)[:-3]
                      for f in glob.glob(os.path.join(ROOT, "examples", "plot_*.py")))
    assert len(examples) >= 4
    assert f"executed {len(examples)} out of {len(examples)}" in log, log[-3000:]
    for name in examples:
        assert (out / "auto_examples" / f"{name}.html").is_file()
        assert (out / "_images" / f"sphx_glr_{name}_001.png").is_file(), name

    # one API page per public name, generated from its docstring (Examples included)
    for name in set(discosim.__all__) - {"__version__"}:
        page = out / "generated" / f"discosim.{name}.html"
        assert page.is_file(), name
        assert "Examples" in page.read_text(encoding="utf-8"), name

    # the CLI reference, generated from the parser: every subcommand has its section, every
    # option its entry
    cli = (out / "cli.html").read_text(encoding="utf-8")
    for command, options in _subcommands().items():
        assert f'id="discosim-{command}"' in cli, command
        for option in options:
            assert option in cli, (command, option)

    # THEORY.md as shipped in the package, rendered with its section anchors
    theory = (out / "theory.html").read_text(encoding="utf-8")
    assert 'id="5-volumes"' in theory and "The mathematics discosim verifies" in theory
