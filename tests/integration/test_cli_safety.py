"""The error boundary of the three entry points (``discosim``, ``python -m
discosim.validation.report``, ``python -m discosim.checkpoints.synthetic``) and what a crafted
file can and cannot do: known failures are one escaped line and exit 2, a figure name from a
validate.json never writes outside ``--out``, and programming errors keep their traceback."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from discosim._core import runtime
from discosim._core.errors import printable
from discosim.app.cli import volumes as cli_volumes
from discosim.app.cli.main import main
from discosim.checkpoints import synthetic
from discosim.validation import report
from test_cli_conventions import ROUTER, one_line_error, payload, run

VOLUME = ["volume", *ROUTER, "--eps", "0.1", "--n-samples", "2e3", "--no-predict", "--seed", "1"]
FORGED = "gate.weight\ndiscosim: error: forged\x1b[2J\u202e"


def tree(root):
    """Every path under ``root``, relative."""
    return {os.path.relpath(os.path.join(d, f), root) for d, dirs, files in os.walk(root)
            for f in dirs + files}


def write_json(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(doc, fh)
    return path


def report_main(argv):
    try:
        return report.main(argv)
    except SystemExit as exc:
        return exc.code


# the three ways to redraw or merge a validate.json into --out
def via_figures(src, out):
    return main(["figures", "--validation", os.path.dirname(src), "--out", out])


def via_report_merge(src, out):
    return main(["report", "merge", src, "--out", out])


def via_module_merge(src, out):
    return report_main(["--merge", src, "--out", out])


ENTRIES = [via_figures, via_report_merge, via_module_merge]


def _spec():
    return payload()["series"]["slice_exact"]["test_figure"]


# ------------------------------------------------------------------ path traversal (issue 21)
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("name", ["../escaped", "../../escaped", "../../../escaped",
                                  "/ABS/escaped", "sub/escaped", "nul\x00escaped", "..",
                                  ".hidden", "", "back\\escaped"])
def test_figure_names_from_a_crafted_file_write_nothing(entry, name, tmp_path, capsys):
    work = tmp_path / "work"  # ../../ reaches tmp_path, ../../../ its parent
    name = name.replace("/ABS", str(tmp_path))
    doc = payload({name: _spec()})
    doc["series"] = {"drawn_first": {"fine": _spec()}, **doc["series"]}
    src = write_json(str(work / "src" / "validate.json"), doc)
    before, beside = tree(tmp_path), set(os.listdir(tmp_path.parent))
    code = entry(src, str(work / "out"))
    err = capsys.readouterr().err
    assert one_line_error(code, err) and "unsafe figure name" in err, err
    assert tree(tmp_path) == before  # nothing anywhere: not even the fine figure inside --out
    assert set(os.listdir(tmp_path.parent)) == beside


def test_module_merge_refuses_a_traversal_in_a_fresh_process(tmp_path):
    src = write_json(str(tmp_path / "a" / "validate.json"), payload({"../escaped": _spec()}))
    before = tree(tmp_path)
    p = subprocess.run([sys.executable, "-m", "discosim.validation.report", "--merge", src,
                        "--out", str(tmp_path / "a" / "out")], capture_output=True, text=True,
                       timeout=120)
    assert one_line_error(p.returncode, p.stderr), p.stderr
    assert tree(tmp_path) == before


# ------------------------------------------------------------------ malformed validate.json
MALFORMED = {
    "a list": [1, 2],
    "no claims": {k: v for k, v in payload().items() if k != "claims"},
    "a row without passed": {**payload(), "claims": [{"claim": "slice_exact"}]},
    "a row that is a string": {**payload(), "claims": ["slice_exact"]},
    "series not an object": {**payload(), "series": [1]},
    "a figure not an object": payload({"fig": [1, 2]}),
    "a layer of unknown kind": payload({"fig": {**_spec(), "layers": [{"kind": "pie",
                                                                          "label": "a"}]}}),
    "a kind that is a list": payload({"fig": {**_spec(), "layers": [{"kind": ["points"]}]}}),
    "arrays of two lengths": payload({"fig": {**_spec(), "layers": [
        {"kind": "points", "x": [1, 2], "y": [1], "se": [0, 0], "label": "a"}]}}),
    "text where numbers belong": payload({"fig": {**_spec(), "layers": [
        {"kind": "curve", "x": ["a"], "y": ["b"], "label": "a"}]}}),
    "a label matplotlib cannot parse": payload({"fig": {**_spec(), "xlabel": "$\\frac{$"}}),
    "a line style matplotlib does not know": payload({"fig": {**_spec(), "layers": [
        {"kind": "curve", "x": [1, 2], "y": [1, 2], "label": "a", "style": "qq"}]}}),
}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("what", sorted(MALFORMED))
def test_malformed_validate_json_is_one_line(entry, what, tmp_path, capsys):
    src = write_json(str(tmp_path / "src" / "validate.json"), MALFORMED[what])
    code = entry(src, str(tmp_path / "out"))
    err = capsys.readouterr().err
    assert one_line_error(code, err), err


def test_broken_json_and_a_missing_file_are_one_line(tmp_path, capsys):
    src = tmp_path / "src" / "validate.json"
    src.parent.mkdir()
    src.write_text('{"claims": [')
    for entry in ENTRIES:
        assert one_line_error(entry(str(src), str(tmp_path / "out")), capsys.readouterr().err)
    code = via_report_merge(str(tmp_path / "none.json"), str(tmp_path / "out"))
    assert one_line_error(code, capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ names from files are escaped
def test_tensor_name_with_a_newline_cannot_forge_a_line(tmp_path, capsys):
    import safetensors.numpy

    path = str(tmp_path / "evil.safetensors")
    safetensors.numpy.save_file({f"model.layers.0.mlp.{FORGED}": np.ones((4, 8), np.float32)},
                                path)
    code, _, err = run(["audit", path, "--n-samples", "1e3"], capsys)
    assert one_line_error(code, err), err
    assert "\\ndiscosim: error: forged\\x1b[2J\\u202e" in err and "\x1b" not in err


def test_claim_name_with_a_newline_cannot_forge_a_line(tmp_path, capsys):
    evil = write_json(str(tmp_path / "a" / "validate.json"), payload(claim=FORGED))
    code = main(["report", "merge", evil, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert one_line_error(code, err) and "not a claim" in err and printable(FORGED) in err, err
    assert not (tmp_path / "out").exists()


def test_usage_errors_are_escaped_too(capsys):
    code, _, err = run(VOLUME + ["--metric", FORGED], capsys)
    assert one_line_error(code, err) and "\x1b" not in err, err


def test_printable_leaves_ordinary_text_alone():
    assert printable("Gating ε, |w| ≤ 1 [ok]") == "Gating ε, |w| ≤ 1 [ok]"
    assert printable("a\tb\rc\x7f") == "a\\tb\\rc\\x7f"


# ------------------------------------------------------------------ operating-system failures
def test_out_under_a_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "a_file"
    f.write_text("")
    code, _, err = run(["validate", "--quick", "--claims", "slice_exact", "--out",
                        str(f / "sub")], capsys)
    assert one_line_error(code, err) and str(f) in err, err


def test_read_only_output_folder_is_one_line(tmp_path, capsys, monkeypatch):
    # root ignores permission bits, so the refusal is simulated where the folder is made
    real = os.makedirs

    def read_only(path, *a, **k):
        if str(path).startswith(str(tmp_path / "ro")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(os, "makedirs", read_only)
    src = write_json(str(tmp_path / "src" / "validate.json"), payload())
    for argv in (["report", "merge", src, "--out", str(tmp_path / "ro")],
                 ["figures", "--validation", str(tmp_path / "src"), "--out", str(tmp_path / "ro")]):
        code, _, err = run(argv, capsys)
        assert one_line_error(code, err) and "Permission denied" in err, err
    assert report_main(["--merge", src, "--out", str(tmp_path / "ro")]) == 2
    assert synthetic.main([str(tmp_path / "ro")]) == 2
    assert capsys.readouterr().err.count("Permission denied") == 2


def test_full_disk_is_one_line(tmp_path, capsys, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(report, "write_atomic", full)
    src = write_json(str(tmp_path / "src" / "validate.json"), payload())
    code, _, err = run(["report", "merge", src, "--out", str(tmp_path / "out")], capsys)
    assert one_line_error(code, err) and "No space left" in err, err


def test_a_thread_the_system_refuses_is_one_line(capsys, monkeypatch):
    def refuse(workers):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(runtime, "_thread_pool", refuse)
    code, _, err = run(VOLUME + ["--n-samples", "2e5", "--n-jobs", "100000", "--force-jobs"], capsys)
    assert one_line_error(code, err) and "--n-jobs" in err, err


# ------------------------------------------------------------------ bugs keep their traceback
@pytest.mark.parametrize("exc", [RuntimeError("some other failure"), TypeError("a bug"),
                                 KeyError("a bug"), AttributeError("a bug")])
def test_programming_errors_are_not_swallowed(exc, monkeypatch):
    def buggy(args):
        raise exc

    monkeypatch.setattr(cli_volumes, "run", buggy)
    with pytest.raises(type(exc)):
        main(VOLUME)
    monkeypatch.setattr(synthetic, "make_checkpoint", lambda *a, **k: buggy(None))
    with pytest.raises(type(exc)):
        synthetic.main(["/tmp/never-written"])


# ------------------------------------------------------------------ the other two entry points
def test_synthetic_entry_point(tmp_path, capsys, monkeypatch):
    f = tmp_path / "a_file"
    f.write_text("")
    p = subprocess.run([sys.executable, "-m", "discosim.checkpoints.synthetic", str(f)],
                       capture_output=True, text=True, timeout=120)
    assert one_line_error(p.returncode, p.stderr), p.stderr
    try:
        code = synthetic.main([str(tmp_path / "x"), "--family", FORGED])
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert one_line_error(code, err) and "\x1b" not in err, err

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "make_checkpoint", interrupted)
    assert synthetic.main([str(tmp_path / "y")]) == 130
    assert capsys.readouterr().err == "discosim: interrupted\n"


def test_report_entry_point(tmp_path, capsys):
    assert report_main(["--merge", str(tmp_path / "none.json")]) == 2  # no --out
    assert report_main(["--bogus"]) == 2
    assert report_main([]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and err.count("discosim: error: ") == 3 and "Traceback" not in err


def test_interrupt_while_the_parser_loads_is_one_line(monkeypatch, capsys):
    from discosim.app.cli import main as cli_main

    def interrupted():
        raise KeyboardInterrupt  # Ctrl-C during the imports behind the parser

    monkeypatch.setattr(cli_main, "build_parser", interrupted)
    assert main(VOLUME) == 130 and capsys.readouterr().err == "discosim: interrupted\n"


def test_merged_table_prints_names_from_files_escaped(tmp_path, capsys):
    doc = payload()
    doc["claims"][0]["quantity"] = FORGED  # a registered claim; its row's text from the file
    evil = write_json(str(tmp_path / "a" / "validate.json"), doc)
    code, out, err = run(["report", "merge", evil, "--out", str(tmp_path / "out")], capsys)
    assert code == 0, err
    assert "\x1b" not in out and "\u202e" not in out and printable(FORGED) in out
    assert not any(line.startswith("discosim: error: forged") for line in out.splitlines())
