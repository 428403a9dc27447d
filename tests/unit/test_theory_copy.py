"""THEORY.md ships with the package (``discosim/THEORY.md``) and cannot drift from the spec.

The specification lives in the project's shared folder, ``../shared/THEORY.md`` beside a checkout;
the wheel carries a copy as package data so the docs and docstrings that cite its sections resolve
for users too. Beside a checkout the copy must equal the spec byte for byte; elsewhere (an installed
sdist or wheel) it must at least be there and hold the sections the docstrings cite.
"""

import os
from importlib import resources

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "THEORY.md")


def _shipped():
    return resources.files("discosim").joinpath("THEORY.md").read_bytes()


def test_shipped_theory_is_the_spec():
    shipped = _shipped()
    if os.path.isfile(SHARED):
        with open(SHARED, "rb") as fh:
            spec = fh.read()
        assert shipped == spec, ("discosim/THEORY.md differs from ../shared/THEORY.md: "
                                 "cp ../shared/THEORY.md discosim/THEORY.md")
    else:
        text = shipped.decode("utf-8")
        assert text.startswith("# ")
        for section in range(1, 10):  # docstrings cite THEORY §1 .. §9
            assert f"\n## {section}. " in text, f"THEORY.md lacks section {section}"
