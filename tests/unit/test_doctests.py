"""Every public object's docstring is numpydoc with Examples that run (issue 20).

For each name of ``discosim.__all__``: the docstring has Parameters and Examples sections
(functions also Returns), and its ``>>>`` examples, run with :mod:`doctest`, print what they
say. The examples use small, seeded sizes and print rounded numbers, shapes or booleans, so their
output is stable across machines.
"""

import doctest
import inspect
import io

import pytest

import discosim

NAMES = sorted(set(discosim.__all__) - {"__version__"})
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _sections(doc):
    lines = doc.splitlines()
    return {a.strip() for a, b in zip(lines, lines[1:])
            if b.strip() and set(b.strip()) == {"-"} and len(b.strip()) == len(a.strip())}


@pytest.mark.parametrize("name", NAMES)
def test_docstring_sections(name):
    obj = getattr(discosim, name)
    sections = _sections(inspect.getdoc(obj) or "")
    need = {"Parameters", "Examples"} | ({"Returns"} if inspect.isfunction(obj) else set())
    assert need <= sections, f"{name}: missing {sorted(need - sections)}"


@pytest.mark.parametrize("name", NAMES)
def test_examples_run(name):
    obj = getattr(discosim, name)
    tests = [t for t in doctest.DocTestFinder(recurse=True).find(obj, name) if t.examples]
    assert tests, f"{name} has no >>> examples"
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for t in tests:
        runner.run(t, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, out.getvalue()
    assert result.attempted > 0


# modules of the issue 22/23 round whose helpers are public in their module but not in
# ``discosim.__all__``: their examples run too (row_power's printed 0.056 while it computed 0.057)
ROUND_MODULES = ("discosim.validation.power", "discosim.validation.precision",
                 "discosim.theory.precision", "discosim.audit.whole_router",
                 "discosim.checkpoints.family_table", "discosim.checkpoints.capture",
                 "discosim.checkpoints.checkpoint", "discosim.checkpoints.families",
                 "discosim.model.selection")


@pytest.mark.parametrize("module", ROUND_MODULES)
def test_module_examples_run(module):
    import importlib

    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=FLAGS, verbose=False, report=False)
    assert result.failed == 0


# modules whose every public function and class (no leading underscore, or in ``__all__``) has
# the full numpydoc sections, as ``discosim.__all__``'s names do; a function without parameters
# has no Parameters section (numpydoc would read a placeholder entry as an unknown parameter)
DOCUMENTED_MODULES = ("discosim.theory.precision", "discosim.checkpoints.capture",
                      "discosim.checkpoints.family_table", "discosim.validation.power")


@pytest.mark.parametrize("module", DOCUMENTED_MODULES)
def test_module_public_names_documented(module):
    import importlib

    mod = importlib.import_module(module)
    listed = set(getattr(mod, "__all__", ()))
    public = [(n, o) for n, o in vars(mod).items()
              if (inspect.isfunction(o) or inspect.isclass(o)) and o.__module__ == module
              and (not n.startswith("_") or n in listed)]
    assert public
    finder = doctest.DocTestFinder(recurse=False)
    for name, obj in public:
        sections = _sections(inspect.getdoc(obj) or "")
        need = {"Examples"}
        if inspect.isfunction(obj):
            need.add("Returns")
        if inspect.signature(obj).parameters:
            need.add("Parameters")
        assert need <= sections, f"{module}.{name}: missing {sorted(need - sections)}"
        assert any(t.examples for t in finder.find(obj, name, module=mod)), f"{name}: no >>>"
