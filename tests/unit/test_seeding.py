"""The seed convention and the table of derived streams (issue 20).

Every ``derive_seed(seed_seq, tag, ...)`` call of the package uses a tag named in
``discosim._core.seeding.STREAM_TAGS`` for its module and function (an AST walk), and one run of
each CPU estimator never derives the same stream for two purposes (recorded at run time).
"""

import ast
import pathlib
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from discosim import InputError, Router
from discosim._core import runtime
from discosim._core.seeding import STREAM_TAGS, as_generator, as_seed_sequence

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "discosim"


def _module(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _tag(node):
    """The first tag of a call: an int when it is a constant expression, else its source."""
    try:
        value = eval(compile(ast.Expression(node), "<tag>", "eval"), {"__builtins__": {}})
    except NameError:
        return ast.unparse(node)
    return int(value)


def _calls():
    """(module, enclosing function, first tag, line) of every derive_seed call in discosim/."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text())
        stack = []

        class Visitor(ast.NodeVisitor):
            def visit_FunctionDef(self, node):
                stack.append(node.name)
                self.generic_visit(node)
                stack.pop()

            visit_AsyncFunctionDef = visit_FunctionDef

            def visit_Call(self, node):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name == "derive_seed":
                    assert len(node.args) >= 2, f"{path}:{node.lineno}: derive_seed without a tag"
                    found.append((_module(path), stack[0] if stack else "<module>",
                                  _tag(node.args[1]), node.lineno))
                self.generic_visit(node)

        Visitor().visit(tree)
    return found


def test_every_derive_seed_call_uses_a_tag_of_the_table():
    calls = _calls()
    assert len(calls) >= 30  # the walk finds the calls (30 when the table was written)
    for module, func, tag, line in calls:
        where = f"{module}:{line} ({func}, tag {tag!r})"
        assert module in STREAM_TAGS, f"{where}: module missing from STREAM_TAGS"
        assert tag in STREAM_TAGS[module], f"{where}: tag missing from STREAM_TAGS[{module!r}]"
        assert func in STREAM_TAGS[module][tag].users, f"{where}: not a user of this stream"


def test_the_table_lists_no_stale_tag_and_no_tag_is_shared_by_two_purposes():
    used = {}
    for module, func, tag, _ in _calls():
        used.setdefault((module, tag), set()).add(func)
    for module, tags in STREAM_TAGS.items():
        for tag, stream in tags.items():
            assert (module, tag) in used, f"STREAM_TAGS[{module!r}][{tag!r}] is used nowhere"
            # a stream shared by several functions is one purpose, declared as such
            assert used[(module, tag)] == set(stream.users), (module, tag, used[(module, tag)])
    # one function, one purpose per tag: the users of different tags of a module are only
    # shared when those tags are different purposes of the same function (e.g. 0 and 8)
    for module, tags in STREAM_TAGS.items():
        assert len({(t, s.purpose) for t, s in tags.items()}) == len(tags)
        assert len({s.purpose for s in tags.values()}) == len(tags), module


# ------------------------------------------------------------------ at run time
R4 = Router.gaussian(4, 8, 2, seed=0)
R24 = Router.gaussian(24, 32, 4, seed=1)
X0 = np.random.default_rng(0).standard_normal(8) * 0.3


def _layer(index):
    W = np.random.default_rng(index).standard_normal((6, 16))
    return SimpleNamespace(name=f"model.layers.{index}.gate.weight", index=index, family="test",
                           weight=W, bias=None, selection_bias=None, k=2, routing="topk",
                           n_group=None, topk_group=None, norm_folded=False)


def _runs():
    from discosim.audit import audit_layers
    from discosim.diffusion import (estimate_first_hit, estimate_occupation, hit_order_wos,
                                    simulate_first_exit)
    from discosim.smoothing import SMoE, calibrate_eta, estimate_overhead, measure_continuity
    from discosim.volumes import estimate_slice_volume, estimate_volumes, slice_alpha, slice_constants

    return {
        "volumes_uniform": lambda s: estimate_volumes(R4, 1.0, [0.05, 0.1], n_samples=70_000,
                                                      seed=s),
        "volumes_tube": lambda s: estimate_volumes(R4, 1.0, [0.05, 0.1], method="tube",
                                                   n_samples=20_000, seed=s),
        "slice_volume": lambda s: estimate_slice_volume(R4, [0, 1], 1.0, 0.1, 1000, seed=s),
        "slice_constants": lambda s: [slice_constants(R24, r, "mc", n_samples=40_000, seed=s)
                                      for r in (1, 2)],
        "slice_alpha": lambda s: slice_alpha(R4, [0, 1], "mc", n_samples=40_000, seed=s),
        "first_hit": lambda s: estimate_first_hit(R4, None, 1.0, 0.5, 0.01, 600, [0.5],
                                                  deltas=[0.05], seed=s),
        "first_exit": lambda s: simulate_first_exit(R4, None, 1.0, 0.5, 0.01, 600, seed=s),
        "occupation": lambda s: estimate_occupation(R4, X0, 1.0, 0.5, 0.01, 200, [0.1], seed=s),
        "wos": lambda s: hit_order_wos(R4, None, [0.05], 600, seed=s),
        "overhead": lambda s: estimate_overhead(R24, 1.0, [0.01], n_samples=70_000, seed=s),
        "calibration": lambda s: calibrate_eta(R4, 0.3, n_samples=70_000, seed=s),
        "continuity": lambda s: measure_continuity(SMoE(R4, seed=0), [1e-3], 0.05, n_points=10,
                                                   seed=s),
        "audit": lambda s: audit_layers([_layer(0), _layer(3)], eps=[0.01], n_samples=20_000,
                                        constants_samples=2000, seed=s),
    }


@pytest.mark.parametrize("name", sorted(_runs()))
def test_one_run_never_derives_one_stream_for_two_purposes(name, monkeypatch):
    """Record every SeedSequence derived in one run with the chain of call sites that made it
    (a chunk's chain is its run's chain plus the chunk site): a spawn key reached by two chains
    would be one random stream serving two purposes."""
    import discosim.volumes.constants as constants

    constants._CACHE.clear()
    monkeypatch.setattr(constants.cache, "load", lambda *a, **k: None)
    monkeypatch.setattr(constants.cache, "store", lambda *a, **k: None)
    original = runtime.derive_seed
    chains, seen = {}, {}

    def recording(ss, *tags):
        out = original(ss, *tags)
        caller = sys._getframe(1)
        site = f"{caller.f_code.co_filename.rpartition('discosim')[2]}:{caller.f_lineno}"
        parent = chains.get((ss.entropy, tuple(ss.spawn_key)), ())
        key = (out.entropy, tuple(out.spawn_key))
        chains[key] = parent + (site,)
        seen.setdefault(key, set()).add(chains[key])
        return out

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("discosim") and \
                getattr(mod, "derive_seed", None) is original:
            monkeypatch.setattr(mod, "derive_seed", recording)
    _runs()[name](np.random.SeedSequence(123))
    assert seen, "the run derived no stream"
    shared = {k: v for k, v in seen.items() if len(v) > 1}
    assert not shared, shared


# ------------------------------------------------------------------ the convention
def test_seed_forms_and_generators():
    g = np.random.default_rng(1)
    assert as_generator(g) is g
    assert as_generator(5).random() == np.random.default_rng(5).random()
    ss = np.random.SeedSequence(9)
    assert as_generator(ss).random() == np.random.default_rng(np.random.SeedSequence(9)).random()
    assert as_seed_sequence(ss) is ss
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(InputError, match="seed"):
            as_generator(bad)
        with pytest.raises(InputError, match="seed"):
            as_seed_sequence(bad)


def test_theory_and_integral_functions_take_the_same_seed():
    from discosim.volumes import integrals as vi
    from discosim.theory.alpha import alpha_orthants

    Wr, J = R4.reduced_weights, (0, 1)
    a = alpha_orthants(Wr, 2, J, seed=np.random.default_rng(3))
    assert a == alpha_orthants(Wr, 2, J, rng=np.random.default_rng(3))
    assert a == alpha_orthants(Wr, 2, J, seed=3) == alpha_orthants(Wr, 2, J, seed=np.random.SeedSequence(3))
    args = (Wr, None, 2, J, 0.1, 1.0, 8, 2000)
    assert vi.slice_fibre_fraction(*args, seed=4) == vi.slice_fibre_fraction(*args, rng=4)
    assert vi.slice_fibre_fraction(*args, seed=4) != vi.slice_fibre_fraction(*args, seed=5)
    assert vi.finite_radius_alpha(Wr, None, 2, J, 1.0, 8, 2000, seed=4) == \
        vi.finite_radius_alpha(Wr, None, 2, J, 1.0, 8, 2000, rng=np.random.default_rng(4))
    with pytest.raises(InputError, match="seed or rng"):
        alpha_orthants(Wr, 2, J, seed=1, rng=np.random.default_rng(1))
    with pytest.raises(InputError, match="seed"):
        vi.slice_fibre_fraction(*args, seed=-2)
