"""The package's shape: no import cycle, nothing low importing high, one word per family.

Every import is counted, at module level and inside functions (``ast.walk`` of each file), so a
cycle hidden in a function body fails as well as one at the top.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKG = ROOT / "discosim"
FAMILIES = ("volumes", "diffusion", "smoothing", "audit")

# rank of each layer: a module may import its own rank or lower, never higher
RANKS = [
    ("discosim._core", 0),
    ("discosim.model", 1),
    ("discosim.theory", 2), ("discosim._kernels", 2), ("discosim.checkpoints", 2),
    ("discosim._cuda", 3),
    ("discosim.volumes", 4),
    ("discosim.diffusion", 5), ("discosim.smoothing", 5), ("discosim.audit", 5),
    ("discosim.cases", 6), ("discosim.plotting", 6),
    ("discosim.validation", 7),
    ("discosim.app", 8),
    ("discosim.__main__", 9), ("discosim._compat", 9), ("discosim", 9),
]


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path):
    """Every discosim module imported by ``path`` (absolute and relative, anywhere in the file)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import submodule` imports the submodule too
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if (PKG.parent / (sub.replace(".", "/") + ".py")).exists() or \
                        (PKG.parent / sub.replace(".", "/") / "__init__.py").exists():
                    found.add(sub)
            found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "discosim" or m.startswith("discosim.")} - {name}


def graph(root=PKG):
    return {module_name(p): imports_of(p) for p in root.rglob("*.py")}


def rank(module):
    best = max((prefix for prefix, _ in RANKS if module == prefix or module.startswith(prefix + ".")),
               key=len)
    return dict(RANKS)[best]


def find_cycle(edges):
    """One cycle of ``edges`` as a list of modules, or None (iterative DFS, three colours)."""
    colour, parent = {}, {}
    for start in edges:
        if colour.get(start):
            continue
        stack = [(start, iter(sorted(edges.get(start, ()))))]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
            elif colour.get(nxt) == 1:
                cycle = [nxt, node]
                while cycle[-1] != nxt:
                    cycle.append(parent[cycle[-1]])
                return cycle[::-1]
            elif not colour.get(nxt) and nxt in edges:
                colour[nxt], parent[nxt] = 1, node
                stack.append((nxt, iter(sorted(edges.get(nxt, ())))))
    return None


def upward(edges):
    return sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets
                  if b != "discosim" and rank(b) > rank(a))


def test_no_import_cycle():
    assert find_cycle(graph()) is None


def test_nothing_imports_upward():
    assert upward(graph()) == []


def test_kernels_import_only_below():
    """_cuda and _kernels see _core, model, theory and themselves (and _cuda sees _kernels)."""
    allowed = ("discosim._core", "discosim.model", "discosim.theory", "discosim._kernels", "discosim._cuda")
    bad = [f"{a} -> {b}" for a, targets in graph().items() if a.startswith(("discosim._kernels", "discosim._cuda"))
           for b in targets if not b.startswith(allowed) or (a.startswith("discosim._kernels")
                                                            and b.startswith("discosim._cuda"))]
    assert bad == []


def test_the_checks_see_a_planted_cycle_and_an_upward_import():
    edges = {"discosim._core.a": {"discosim.model.b"}, "discosim.model.b": {"discosim._core.a"}}
    assert find_cycle(edges) is not None
    assert upward(edges) == ["discosim._core.a -> discosim.model.b"]
    assert find_cycle({"discosim._core.a": set(), "discosim.model.b": {"discosim._core.a"}}) is None


def test_a_function_level_import_counts(tmp_path):
    f = tmp_path / "discosim" / "_core" / "x.py"
    f.parent.mkdir(parents=True)
    f.write_text("def g():\n    from discosim.app import cli\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        assert "discosim.app" in imports_of(f)
    finally:
        ROOT = old


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_one_word_in_every_layer(family):
    """The estimator package, its closed forms, its claims and its tests carry the family's word;
    its kernels too where it has any."""
    assert (PKG / family / "__init__.py").exists()
    assert (PKG / "theory" / f"{family}.py").exists()
    tests = list((ROOT / "tests").rglob(f"test_{family}*.py"))
    assert tests, f"no tests/**/test_{family}*.py"
    if family != "audit":  # the audit's claim is THEORY §9's routing_precision (validation round 2)
        assert (PKG / "validation" / f"{family}.py").exists()
    for layer in ("_kernels", "_cuda"):
        here = {p.stem for p in (PKG / layer).iterdir() if not p.stem.startswith("__")}
        # a family's kernels are found under its own word and under no other family word
        assert not here & {"volume", "hitting", "paths", "first_hit", "overhead", "occupation", "tube",
                           "uniform", "alpha"}, here


def test_no_old_family_words_in_module_names():
    old = {"hitting", "volume", "first_hit", "claims", "constants_old"}
    names = {p.stem for p in PKG.rglob("*.py")} | {p.name for p in PKG.rglob("*") if p.is_dir()}
    assert not names & old
