"""Sphinx configuration of the discosim documentation.

Build (warnings are errors; the gallery's scripts run)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

Extensions: autodoc + autosummary (the API reference, from the docstrings of ``discosim.__all__``),
numpydoc (the docstrings are numpydoc), myst-parser (the Markdown pages and THEORY.md),
sphinx-argparse (the CLI reference, from ``discosim.app.cli.main.build_parser``) and
sphinx-gallery (``examples/``, executed at every build).
"""

import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# a checkout's own package before any installed one (tests/integration/test_docs.py builds a copy
# of docs/ elsewhere and sets PYTHONPATH instead)
if os.path.isfile(os.path.join(ROOT, "discosim", "__init__.py")):
    sys.path.insert(0, ROOT)

import discosim  # noqa: E402

project = "discosim"
author = "the discosim developers"
copyright = "2026, the discosim developers"
release = discosim.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinxarg.ext",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints",
                    # sphinx-gallery's per-example code listings: the example pages include them
                    "auto_examples/*.py", "auto_examples/*.ipynb"]
html_theme = "alabaster"
html_theme_options = {"description": "Discontinuities of sparse MoE routers, checked by Monte Carlo",
                      "fixed_sidebar": True}
html_static_path = []
nitpicky = False

# ---------------------------------------------------------------- THEORY.md, as the wheel ships it
# The theory page renders the package's own copy (discosim/THEORY.md), the file wheel users have;
# tests/unit/test_theory_copy.py keeps it identical to the project's shared/THEORY.md.
_GENERATED = os.path.join(HERE, "_generated")
os.makedirs(_GENERATED, exist_ok=True)
shutil.copyfile(os.path.join(os.path.dirname(discosim.__file__), "THEORY.md"),
                os.path.join(_GENERATED, "THEORY.md"))

# The claims table of the verdict page, from the claim registry (the README's generated block)
from discosim.validation.report import readme_blocks  # noqa: E402

with open(os.path.join(_GENERATED, "claims.md"), "w", encoding="utf-8") as _fh:
    _fh.write(readme_blocks()["claims"] + "\n")

# ---------------------------------------------------------------- Markdown
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # THEORY's "## 5. Volumes" is linked as theory.md#5-volumes

# ---------------------------------------------------------------- API reference
autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # the numpydoc Parameters sections state the types
numpydoc_show_class_members = False  # the class template lists members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_use_plots = False
# Every public object has these sections (issue 20); numpydoc checks them on every build, for the
# objects of discosim.__all__ (not their methods or the modules).
numpydoc_validation_checks = {"PR01", "PR02", "PR03", "EX01", "RT01", "GL08"}
numpydoc_validation_exclude = {r"^discosim\.\w+\.\w+"}  # methods, properties, submodules
# InputError (a ValueError) has no signature numpydoc can read: its Parameters name the message
numpydoc_validation_overrides = {"PR02": [r"^Bad input to a discosim function"]}


def _check_api_page():
    """The API page lists exactly ``discosim.__all__``: a new public name needs a line there."""
    with open(os.path.join(HERE, "api.rst"), encoding="utf-8") as fh:
        listed = set(re.findall(r"^   ([A-Za-z_][A-Za-z0-9_]*)$", fh.read(), re.M))
    public = set(discosim.__all__) - {"__version__"}
    if listed != public:
        raise RuntimeError(f"docs/api.rst is out of date: missing {sorted(public - listed)}, "
                           f"not public {sorted(listed - public)}")


_check_api_page()

# ---------------------------------------------------------------- gallery
sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "filename_pattern": r"plot_",          # every plot_*.py runs at build time
    "ignore_pattern": r"__init__\.py",
    "download_all_examples": False,
    "write_computation_times": False,      # no sg_execution_times page in the source tree
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "plot_gallery": "True",
}
