"""Every row of the README's "CLI conventions" table, checked on every command the row names.

The table is generated from the parsers (discosim.app.cli._common.CONVENTIONS); the first test
holds the README to it, the second holds every row to a check here. Commands run in this process
through ``main([...])`` with tiny sizes.
"""

import argparse
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import discosim
from discosim._core import runtime
from discosim.app.cli import _common, main as cli_main, validate as cli_validate
from discosim.app.cli.main import build_parser, command_parsers, conventions_markdown, main
from discosim.app.cli.report import CLI_MARKERS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(ROOT, "README.md")
COMMANDS = command_parsers()

ROUTER = ["--M", "4", "--D", "8", "--k", "2"]
# capture runs a model only with the [capture] extra (transformers, torch); CI has neither
CAPTURE = all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
# a working, tiny run of each command; {name} are paths from the `files` fixture
RUNS = {
    "volume": ["volume", *ROUTER, "--eps", "0.1", "0.2", "--n-samples", "2e3", "--no-predict"],
    "hit": ["hit", *ROUTER, "--sigma", "1", "--t-max", "0.1", "--dt", "0.01", "--times", "0.05",
            "0.1", "--n-paths", "1e2"],
    "smooth": ["smooth", *ROUTER, "--etas", "0.01", "0.02", "--deltas", "1e-4", "1e-3",
               "--n-samples", "2e3", "--n-points", "10"],
    "audit": ["audit", "{ckpt}", "--n-samples", "1e3", "--constants-samples", "0", "--eps", "0.01",
              "0.1"],
    # {model}: a tiny transformers model where transformers and torch are installed (the
    # [capture] extra), else a path that does not exist: the runs of capture then skip
    "capture": ["capture", "{model}", "--texts", "{texts}", "--out", "{tmp}/states.npz",
                "--max-tokens", "100", "--batch-tokens", "64", "--max-length", "32"],
    "study": ["study", "volume_ratios", "--set", "eps=0.1", "0.2", "--set", "n_samples=200",
              "--backend", "threading"],
    "figures": ["figures", "--validation", "{src}"],
    "validate": ["validate", "--quick", "--claims", "slice_exact"],
    "report merge": ["report", "merge", "{src}/validate.json"],
    "report readme": ["report", "readme", "{readme}", "--check"],
}
# a bad input of each command: one line, exit 2, before any work
BAD = {
    "volume": RUNS["volume"] + ["--n-jobs", "0"],
    "hit": RUNS["hit"] + ["--sigma", "0"],
    "smooth": RUNS["smooth"] + ["--eta", "-1"],
    "audit": ["audit", "/no/such/model"],
    "capture": ["capture", "/no/such/model", "--texts", "/no/such/texts.txt", "--out",
                "{tmp}/s.npz"],
    "study": ["study", "no_such_study"],
    "figures": ["figures", "--results", "/no/such/dir"],
    "validate": ["validate", "--claims", "nope"],
    "report merge": ["report", "merge", "/no/such/validate.json", "--out", "{tmp}/m"],
    "report readme": ["report", "readme", "/no/such/README.md"],
}
# keys of a JSON document that may differ between two runs of the same seed
VOLATILE = {"elapsed_s", "claim_elapsed_s", "n_jobs", "wall_seconds_this_run", "out", "results_csv",
            "results_json", "code_version"}


def payload(series=None, claim="slice_exact"):
    """A small validate.json document of the current format (one row, one figure)."""
    row = {"claim": claim, "section": "§5", "quantity": "q", "predicted": 1.0, "measured": 1.01,
           "stderr": 0.01, "rule": "|meas - pred| <= 4 SE", "resolution": 0.06,
           "resolution_kind": "relative", "passed": True, "sides": 2, "verdict": "PASS",
           "ci_low": 0.99, "ci_high": 1.03}
    spec = {"title": "t", "xlabel": "x", "ylabel": "y", "logx": True, "logy": True,
            "layers": [{"kind": "points", "x": [1, 2], "y": [1, 2], "se": [0.1, 0.1], "label": "a"},
                       {"kind": "curve", "x": [1, 2], "y": [1, 2], "label": "b", "style": "--"}]}
    return {"code_version": "test", "seed": 1, "quick": True, "scale": 0.25, "n_jobs": 1,
            "device": "cpu", "device_scale": 1.0, "complete": True, "elapsed_s": 1.0,
            "claim_elapsed_s": {claim: 1.0}, "z_verdict": 4.0, "z_power": 1.645, "n_rows": 1,
            "family_false_alarm": 6.3e-5, "all_passed": True, "claims": [row],
            "series": {claim: series if series is not None else {"test_figure": spec}}}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A checkpoint, a validate.json folder and a copy of the README, shared by the module."""
    from discosim.checkpoints.synthetic import make_checkpoint

    d = tmp_path_factory.mktemp("cli")
    ckpt = make_checkpoint(str(d / "ckpt"), "mixtral", n_layers=1, n_experts=4, dim=16, k=2,
                           shards=1)
    (d / "src").mkdir()
    (d / "src" / "validate.json").write_text(json.dumps(payload()))
    shutil.copy(README, d / "README.md")
    (d / "texts.txt").write_text("w1 w2 w3 w4\nw5 w6 w7\n")
    model = str(d / "no-capture-extra")
    if CAPTURE:
        from tiny_transformers import make_tiny

        model = make_tiny(str(d / "tiny"), "mixtral")
    return {"ckpt": str(ckpt), "src": str(d / "src"), "readme": str(d / "README.md"),
            "model": model, "texts": str(d / "texts.txt")}


@pytest.fixture
def files(saved, tmp_path):
    return {**saved, "tmp": str(tmp_path)}


@pytest.fixture(autouse=True)
def small_validate(monkeypatch):
    # validate --quick at a hundredth of its quick size: the conventions, not the numbers
    monkeypatch.setattr(cli_validate, "QUICK_SCALE", 0.01)


_FRESH = itertools.count()


def argv(name, files, *extra, out=True):
    """The tiny run of ``name`` with ``extra``; ``--out`` into a fresh folder where it has one."""
    args = [a.format(**files) for a in RUNS[name]]
    if out and _common.has_out_dir(COMMANDS[name]):
        args += ["--out", os.path.join(files["tmp"], f"out{next(_FRESH)}")]
    return args + list(extra)


def run(args, capsys):
    """Exit status, stdout and stderr of ``discosim args`` in this process."""
    try:
        code = main(args)
    except SystemExit as exc:  # argparse: usage errors, --help, --version
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, err):
    return (code == 2 and err.count("\n") == 1 and err.startswith("discosim: error: ")
            and "Traceback" not in err)


def applies(key):
    spec = next(a for k, _, a in _common.CONVENTIONS if k == key)
    return [n for n, p in COMMANDS.items() if spec is None or spec(p)]


# ------------------------------------------------------------------ the table itself
def test_readme_table_is_generated_from_the_parsers():
    text = open(README).read()
    start, end = CLI_MARKERS
    block = text[text.index(start) + len(start):text.index(end)].strip()
    assert block == conventions_markdown(), "README out of date: discosim report readme README.md"


def test_every_row_of_the_table_has_a_check_here():
    checked = {name[len("test_convention_"):] for name in globals()
               if name.startswith("test_convention_")}
    assert checked == {key for key, _, _ in _common.CONVENTIONS}
    assert set(COMMANDS) == set(RUNS) == set(BAD)  # every command has a run and a bad input


# ------------------------------------------------------------------ one test per row
@pytest.mark.parametrize("name", applies("help"))
def test_convention_help(name, capsys):
    code, out, _ = run([*name.split(), "--help"], capsys)
    assert code == 0
    text = " ".join(out.split())  # argparse wraps lines anywhere
    for action in COMMANDS[name]._actions:
        d = action.default
        if action.option_strings and not (d is None or d is False or d is argparse.SUPPRESS):
            shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
            assert f"(default: {shown})" in text, (name, action.dest)
        if action.choices and not isinstance(action.choices, dict):  # dict: subcommands
            assert "{" + ",".join(action.choices) + "}" in text, (name, action.dest)


@pytest.mark.parametrize("name", applies("errors"))
def test_convention_errors(name, files, capsys, monkeypatch, no_work):
    code, out, err = run([a.format(**files) for a in BAD[name]], capsys)
    assert one_line_error(code, err), err
    code, _, err = run([*name.split(), "--no-such-option"], capsys)
    assert one_line_error(code, err), err
    if _common.has_out_dir(COMMANDS[name]):  # an --out that is a file
        f = os.path.join(files["tmp"], "a_file")
        open(f, "w").close()
        code, _, err = run(argv(name, files, out=False) + ["--out", f], capsys)
        assert one_line_error(code, err) and "not a directory" in err, err
    # Ctrl-C inside the command: one line, 130
    module = cli_main.COMMANDS[name.split()[0]]

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", interrupted)
    code, _, err = run(argv(name, files), capsys)
    assert code == 130 and err == "discosim: interrupted\n"


@pytest.fixture(scope="module")
def json_runs(saved, tmp_path_factory):
    """``--json`` output of every command that has it: seed 1, once with one worker and once with
    two forced ones (where the command takes them). {name: [(code, out, err), ...]}."""
    mp = pytest.MonkeyPatch()
    mp.setattr(cli_validate, "QUICK_SCALE", 0.01)
    res = {}
    try:
        for name in applies("json"):
            if name == "capture" and not CAPTURE:
                continue
            files = {**saved, "tmp": str(tmp_path_factory.mktemp(name.replace(" ", "_")))}
            variants = [[]]
            if _common.option(COMMANDS[name], "--seed") is not None:
                variants = [["--seed", "1", "--n-jobs", "1"],
                            ["--seed", "1", "--n-jobs", "2", "--force-jobs"]]
            res[name] = []
            for extra in variants:
                res[name].append(_captured(argv(name, files, "--json", *extra)))
    finally:
        mp.undo()
    return res


def _captured(args):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _numbers(doc):
    if isinstance(doc, dict):
        return {k: _numbers(v) for k, v in doc.items() if k not in VOLATILE}
    if isinstance(doc, list):
        return [_numbers(v) for v in doc]
    return doc


def _needs_extra(name):
    if name == "capture" and not CAPTURE:
        pytest.skip("capture runs a model: needs transformers and torch (the [capture] extra)")


@pytest.mark.parametrize("name", applies("json"))
def test_convention_json(name, json_runs):
    _needs_extra(name)
    for code, out, err in json_runs[name]:
        assert code == 0, err
        json.loads(out)  # the whole of stdout is one JSON document
        assert out.count("\n") == 1 and err == "", err


@pytest.mark.parametrize("name", applies("seed"))
def test_convention_seed(name, json_runs):
    (_, a, _), (_, b, _) = json_runs[name]
    a, b = json.loads(a), json.loads(b)
    if name == "study":  # the numbers are in the results it wrote
        a, b = (open(d["results_csv"]).read() for d in (a, b))
    else:
        a, b = _numbers(a), _numbers(b)
    assert a == b


@pytest.mark.parametrize("name", applies("jobs"))
def test_convention_jobs(name, files, capsys, monkeypatch):
    """--force-jobs reaches every worker count check (DISCOSIM_FORCE_JOBS for the run only)."""
    monkeypatch.delenv(runtime.FORCE_JOBS_ENV, raising=False)
    module = cli_main.COMMANDS[name]
    seen = []

    def record(args):
        seen.append((args.n_jobs, runtime.check_n_jobs(args.n_jobs)))
        return 0

    monkeypatch.setattr(module, "run", record)
    many = str(10 * (os.cpu_count() or 1))
    code, _, err = run(argv(name, files, "--n-jobs", many, "--force-jobs"), capsys)
    assert code == 0, err
    code, _, err = run(argv(name, files, "--n-jobs", many), capsys)
    assert code == 0, err
    assert seen == [(int(many), int(many)), (int(many), os.cpu_count())]
    assert runtime.FORCE_JOBS_ENV not in os.environ


@pytest.mark.parametrize("name", applies("quiet"))
def test_convention_quiet(name, files, capsys, monkeypatch):
    _needs_extra(name)
    with runtime.progress(True):  # bars on, as on a terminal
        code, out, err = run(argv(name, files, "--quiet"), capsys)
        assert runtime._PROGRESS.get() is True  # restored for the next command
    assert code == 0 and err == "", err


def test_progress_bar_shows_without_quiet(files, capsys, monkeypatch):
    # the check above can fail: without --quiet the same run draws a bar on stderr
    with runtime.progress(True):
        code, _, err = run(argv("volume", files, "--n-samples", "2e5"), capsys)
    assert code == 0 and "volume" in err


@pytest.mark.parametrize("name", applies("counts"))
def test_convention_counts(name, files, capsys):
    parser = build_parser()
    base = argv(name, files)
    for action in _common._counts(COMMANDS[name]):
        flag = action.option_strings[0]
        for text in ("1e5", "100_000", "100000", "1E5"):
            assert getattr(parser.parse_args(base + [flag, text]), action.dest) == 100_000
        assert getattr(parser.parse_args(base + [flag, "1e13"]), action.dest) == 10 ** 13
        for bad in ("1.5", "-1", "1e5.5", "abc", "inf"):
            code, _, err = run(base + [flag, bad], capsys)
            assert one_line_error(code, err) and flag in err, (flag, bad, err)


@pytest.mark.parametrize("name", applies("lists"))
def test_convention_lists(name, files, capsys):
    parser = build_parser()
    base = argv(name, files)
    lists = _common._lists(COMMANDS[name])
    assert lists
    for action in lists:
        flag = action.option_strings[0]
        values = {"--set": ["eps=0.1", "0.2"], "--formats": ["bf16", "fp16"],
                  "--claims": ["slice_exact", "hit_order"]}.get(flag, ["1", "2"])
        got = getattr(parser.parse_args(base + [flag, *values]), action.dest)
        assert len(got[-1] if flag == "--set" else got) == 2
        code, _, err = run(base + [flag, ",".join(values)], capsys)
        assert one_line_error(code, err) and "spaces" in err and " ".join(values) in err, err


@pytest.mark.parametrize("name", applies("out"))
def test_convention_out(name, files, capsys, monkeypatch, tmp_path):
    out = tmp_path / "chosen"
    code, _, err = run(argv(name, files, out=False) + ["--out", str(out)], capsys)
    assert code == 0, err
    assert os.listdir(out)
    if name in ("validate", "figures"):  # the default: ./discosim-results/ of the working folder
        cwd = tmp_path / "cwd"
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        if name == "figures":
            (cwd / _common.DEFAULT_OUT).mkdir()
            shutil.copy(os.path.join(files["src"], "validate.json"), cwd / _common.DEFAULT_OUT)
            args = ["figures"]
        else:
            args = argv(name, files, out=False)
        code, _, err = run(args, capsys)
        assert code == 0, err
        assert os.listdir(cwd) == [_common.DEFAULT_OUT]
        assert {"REPORT.md", "validate.json"} <= set(os.listdir(cwd / _common.DEFAULT_OUT))


def test_convention_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out == f"discosim {discosim.__version__}\n"
    p = subprocess.run([sys.executable, "-m", "discosim", "--version"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stdout == out


def test_choices_of_slow_modules_match_their_families():
    from discosim.diffusion.estimators import PROCESSES
    from discosim.smoothing.estimators import EXPERTS

    assert _common.PROCESSES == PROCESSES and _common.EXPERTS == EXPERTS
    assert re.fullmatch(r"[a-z-]+", _common.DEFAULT_OUT)


def test_study_grid_values_take_the_count_forms():
    from discosim.app.cli.study import parse_sets

    grid = parse_sets([["n_samples=100_000", "1e5", "100000"], ["bridge=false"], ["metric=score"]])
    assert grid == {"n_samples": [100_000] * 3, "bridge": False, "metric": "score"}
