"""The seed study of the family-wise false-alarm rate (studies/familywise.py): its analysis, and
the report header and README block quoting its file.

The script's run is tested in smoke mode by test_study_scripts.py; here its arithmetic is checked
against slow twins: each row's failure probability against the row's own rule applied to normal
draws (``accepts``), the offset estimator on synthetic runs, the Clopper-Pearson interval against
its definition.
"""

import importlib.util
import json
import math
import os

import numpy as np
import pytest
from scipy import stats

from discosim.validation import ClaimOutput, Context, Z_VERDICT
from discosim.validation.report import (build_payload, familywise_summary, update_readme,
                                        write_report, MARKERS)
from discosim.validation.rules import accepts, at_least, at_most, close_to

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def fw():
    spec = importlib.util.spec_from_file_location("familywise", os.path.join(ROOT, "studies", "familywise.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ROWS = [close_to("c", "§5", "q", 1.0, 1.0, 0.01),
        close_to("c", "§5", "q", 1.0, 1.0, 0.01, band=0.02, band_reason="x"),
        close_to("c", "§5", "q", 1.0, 1.0, 0.01, band_low=0.0, band_high=0.02, band_reason="x"),
        at_most("c", "§6", "q", 1.0, 1.0, 0.01), at_least("c", "§6", "q", 1.0, 1.0, 0.01)]


@pytest.mark.parametrize("i", range(len(ROWS)))
@pytest.mark.parametrize("offset", [-0.045, 0.0, 0.03])
def test_fail_probability_is_the_rule_applied_to_normal_draws(fw, i, offset):
    row = ROWS[i]
    d = row.to_dict()
    p = fw.fail_probability(d, offset, 0.01, Z_VERDICT)
    n = 400_000
    m = 1.0 + offset + 0.01 * np.random.default_rng(i).standard_normal(n)
    mc = 1 - accepts(row, m).mean()
    assert abs(p - mc) <= 5 * math.sqrt(max(p, 1 / n) * (1 - p) / n) + 1e-6, (p, mc)


def _run(seed, devs, passed=None):
    rows = [{"claim": "c", "quantity": f"q{j}", "measured": 1.0 + d, "predicted": 1.0,
             "stderr": 0.01, "passed": True if passed is None else passed[j], "sides": 2,
             "band": 0.0} for j, d in enumerate(devs)]
    return {"seed": seed, "exit_status": 0, "elapsed_s": 1.0, "family_false_alarm": 1e-4,
            "rows": rows}


def test_offsets_are_estimated_without_the_noise_and_extrapolated(fw):
    rng = np.random.default_rng(3)
    n = 400
    # row 0: no bias; row 1: a bias of 2 quick SE; row 2: derived from row 1
    runs = [_run(s, [0.01 * rng.standard_normal(), 0.02 + 0.01 * rng.standard_normal(), 0.0],
                 [True, True, False]) for s in range(n)]
    for r in runs:
        r["rows"][2]["derived"] = "c: q1"
    rows, fam = fw.analyse(runs, None, 0.25, Z_VERDICT)
    assert abs(rows[0]["offset"]) < 3 * 0.01 / math.sqrt(n)
    assert rows[1]["offset"] == pytest.approx(0.02, abs=4 * 0.01 / math.sqrt(n))
    # the full run: SE halves (quick scale 1/4), the bias stays: 4 SE_full off, so about half fail
    assert rows[1]["se_full"] == pytest.approx(0.005)
    assert 0.3 < rows[1]["p_fail_full_offset"] < 0.7
    assert rows[1]["offset_t"] > 3 and rows[1]["p_fail_full_significant"] == rows[1]["p_fail_full_offset"]
    # the unbiased row: its offset is noise, so the lower end of the range drops it
    assert rows[0]["p_fail_full_significant"] == pytest.approx(2 * stats.norm.sf(Z_VERDICT))
    assert fam["rows_counted"] == 2 and fam["rows_derived"] == 1
    assert fam["runs_with_a_failing_row"] == 0  # the derived row's failures are not counted
    lo, hi = fam["ci95"]
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / n))


def test_clopper_pearson_is_exact(fw):
    lo, hi = fw.clopper_pearson(3, 24)
    assert stats.binom.sf(2, 24, lo) == pytest.approx(0.025, rel=1e-6)
    assert stats.binom.cdf(3, 24, hi) == pytest.approx(0.025, rel=1e-6)


def _write_study(folder, sentence, rows=(("slice_exact", 0, 2),)):
    os.makedirs(os.path.join(folder, "familywise"), exist_ok=True)
    with open(os.path.join(folder, "familywise", "familywise.json"), "w") as fh:
        json.dump({"summary": sentence, "rows": [{"claim": c, "index": i, "sides": s}
                                                 for c, i, s in rows]}, fh)


def test_report_and_readme_quote_the_study_file(tmp_path):
    row = close_to("slice_exact", "§5", "q", 1.0, 1.0, 0.01)
    payload = build_payload({"slice_exact": ClaimOutput((row,), {})}, Context(), 1.0)
    out = tmp_path / "figures"
    out.mkdir()
    assert familywise_summary(str(out)) is None
    assert "measured by the seed study" not in open(write_report(payload, [], str(out))).read()
    _write_study(str(out), "1 of 24 seeds had a failing counted row")
    report = open(write_report(payload, [], str(out))).read()
    assert "measured by the seed study: 1 of 24 seeds had a failing counted row" in report
    readme = tmp_path / "README.md"
    readme.write_text("\n".join(f"{a}\nold\n{b}" for a, b in MARKERS.values()) + "\n")
    update_readme(str(readme))
    assert "`figures/familywise/familywise.json`): 1 of 24 seeds" in readme.read_text()


def test_a_study_of_other_rows_is_not_quoted(tmp_path):
    """The rate a seed study measured belongs to its table: a report whose rows differ (a row
    more, another claim, a one-sided rule) says the study is not quoted instead of quoting it."""
    row = close_to("slice_exact", "§5", "q", 1.0, 1.0, 0.01)
    payload = build_payload({"slice_exact": ClaimOutput((row,), {})}, Context(), 1.0)
    out = str(tmp_path / "figures")
    for rows in ((("slice_exact", 0, 2), ("slice_exact", 1, 2)), (("biased_slice", 0, 2),),
                 (("slice_exact", 0, 1),)):
        _write_study(out, "1 of 24 seeds had a failing counted row", rows)
        assert familywise_summary(out, payload) is None
        report = open(write_report(payload, [], out)).read()
        assert "1 of 24 seeds" not in report
        assert "the seed study beside it ran on other rows and is not quoted" in report
    _write_study(out, "1 of 24 seeds had a failing counted row")
    assert familywise_summary(out, payload) == "1 of 24 seeds had a failing counted row"
