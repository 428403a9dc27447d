"""The README's claims table and figure list are generated from the claim registry."""

import os
import subprocess
import sys

from discosim.validation import CLAIMS
from discosim.validation.report import MARKERS, readme_blocks, update_readme

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md")


def test_readme_blocks_equal_the_registry():
    # regenerate with: python -m discosim.validation.report --readme README.md
    assert update_readme(README, check=True), "README out of date: python -m discosim.validation.report --readme README.md"
    text = open(README).read()
    for c in CLAIMS:
        assert f"| `{c.name}` |" in text
        for name, _ in c.figures:
            assert f"`figures/{name}.png`" in text


def test_every_claim_and_figure_listed_once():
    blocks = readme_blocks()
    assert blocks["claims"].count("\n") == len(CLAIMS) + 1  # header, rule line, one row per claim
    figs = [n for c in CLAIMS for n, _ in c.figures]
    assert len(set(figs)) == len(figs) == len(blocks["figures"].splitlines())


def test_update_rewrites_a_stale_block(tmp_path):
    stale = tmp_path / "README.md"
    body = "intro\n" + "\n".join(f"{a}\nold\n{b}" for a, b in MARKERS.values()) + "\nend\n"
    stale.write_text(body)
    assert not update_readme(str(stale), check=True)
    assert stale.read_text() == body  # check only: unchanged
    p = subprocess.run([sys.executable, "-m", "discosim.validation.report", "--readme", str(stale)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert update_readme(str(stale), check=True)
    assert "old" not in stale.read_text() and stale.read_text().startswith("intro\n")


def test_missing_markers_is_one_line_error(tmp_path):
    f = tmp_path / "README.md"
    f.write_text("no markers\n")
    p = subprocess.run([sys.executable, "-m", "discosim.validation.report", "--readme", str(f)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "markers" in p.stderr and "Traceback" not in p.stderr


def readme_command_lines():
    """Every ``discosim ...`` line of the README's bash blocks, continuations joined."""
    import re

    text = open(README).read()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("discosim "):
                lines.append(line)
    return lines


def _as_argv(line):
    """A README usage line as one concrete argv: optional parts included, the first of each
    set of alternatives (``[--x0 F | --inputs ball]``, ``bm|ou``), no redirection or ``...``."""
    import re
    import shlex

    line = re.sub(r"\s>\s*\S+", "", line)
    line = re.sub(r"\[([^\[\]]*?)\s\|\s[^\[\]]*\]", r"\1", line)
    tokens = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
    return [t.split("|")[0] for t in tokens if t != "..."]


def test_every_command_line_in_the_readme_parses():
    """The README shows the current syntax: lists with spaces, counts as 1e5, real options."""
    from discosim.app.cli.main import build_parser

    lines = readme_command_lines()
    assert len(lines) >= 20
    for line in lines:
        argv = _as_argv(line)
        if "|" in line.split()[1]:  # `discosim volume|hit|... ... --device cuda`: a pattern
            continue
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:  # --version exits 0; a usage error exits 2
            assert exc.code == 0, line


def test_readme_says_where_validate_writes():
    from discosim.app.cli._common import DEFAULT_OUT

    text = open(README).read()
    intro = text[:text.index("## What it checks")]
    assert f"`{DEFAULT_OUT}/validate.json`" in intro and "discosim validate --out figures" in intro
    assert "discosim report merge" in text and "python -m discosim.validation.report --merge" in text
