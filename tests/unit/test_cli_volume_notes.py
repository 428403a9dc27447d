"""issue 23 item 5: ``discosim volume`` says how far the leading order is from the exact tube."""

import json
import math

from discosim.app.cli.volumes import LEADING_NOTE_AT, leading_order_note
from discosim.theory import volumes as tv


def test_note_quotes_the_exact_correction_and_stays_silent_below_one_percent():
    D, r = 4096, 2
    eps = math.sqrt(0.4 / (D - r))
    corr = float(tv.exact_relative_correction(eps, 1.0, D, r))
    note = leading_order_note(eps, 1.0, D, r, "normal")
    assert f"{-corr / (1 + corr):.0%} above" in note and "0.4" in note
    # at D = 10, eps = 1e-3 the correction is 1e-5: nothing to say
    assert abs(float(tv.exact_relative_correction(1e-3, 1.0, 10, 1))) < LEADING_NOTE_AT
    assert leading_order_note(1e-3, 1.0, 10, 1, "normal") is None


def test_cli_prints_the_note_next_to_the_leading_order(capsys):
    from discosim.app.cli.main import main

    argv = ["volume", "--router", "orthonormal", "--M", "4", "--D", "4096", "--k", "2", "--eps",
            "0.01", "0.0001", "--orders", "1", "--metric", "normal", "--n-samples", "2000",
            "--seed", "1", "--quiet"]
    assert main(argv) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith(("0.01", "0.0001"))]
    assert "leading order" in lines[0] and "above the exact tube" in lines[0]
    assert "leading order" not in lines[1]
    assert main(argv + ["--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    notes = [item["orders"]["1"]["leading_note"] for item in doc["results"]]
    assert notes[0].startswith("leading order") and notes[1] is None
