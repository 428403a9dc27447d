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
