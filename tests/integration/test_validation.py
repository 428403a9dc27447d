import io
import json
import math
import os
import subprocess
import sys

import pytest

from discosim.validation import (CLAIMS, Z_POWER, Z_VERDICT, ClaimOutput, Context, at_least, at_most,
                             close_to, family_false_alarm, run_claims)
from discosim._core.errors import InputError


def test_registry_names_sections():
    assert len({c.name for c in CLAIMS}) == len(CLAIMS)
    assert all(c.section.startswith("§") for c in CLAIMS)


def test_close_to_rule_and_resolution():
    ok = close_to("c", "§5", "q", 1.0, 1.0 + 3.9 * 0.01, 0.01)
    bad = close_to("c", "§5", "q", 1.0, 1.0 + 4.1 * 0.01, 0.01)
    assert ok.passed and not bad.passed
    assert ok.resolution == pytest.approx((Z_VERDICT + Z_POWER) * 0.01)
    assert ok.resolution_kind == "relative"
    slope = close_to("c", "§5", "slope", 2.0, 2.0, 0.01, relative=False, band=0.02)
    assert slope.resolution == pytest.approx(0.02 + (Z_VERDICT + Z_POWER) * 0.01)
    assert slope.resolution_kind == "absolute"
    # relative resolution is divided by |predicted|
    assert close_to("c", "§5", "q", 2.0, 2.0, 0.01).resolution == pytest.approx(ok.resolution / 2)


def test_resolution_has_95_percent_power():
    # a deviation equal to the resolution is detected in >= 95% of normal draws
    import numpy as np

    rng = np.random.default_rng(1)
    se, p = 0.01, 1.0
    res = close_to("c", "§5", "q", p, p, se).resolution * p
    draws = p + res + se * rng.standard_normal(20000)
    detected = np.mean([not close_to("c", "§5", "q", p, m, se).passed for m in draws[:4000]])
    # binomial SE of the detection rate at 4000 draws is 0.0034; 0.95 - 4 SE
    assert detected >= 0.95 - 4 * math.sqrt(0.95 * 0.05 / 4000)


def test_band_of_known_sign_applies_on_its_side_only():
    # band_low: the next-order term only lowers the measurement; above the prediction the row is
    # judged without it (issue 23: a band on both sides halves the high side's power)
    why = "next-order term of known sign"
    row = close_to("c", "§6", "q", 1.0, 1.0 - 0.05 - 3.9 * 0.01, 0.01, band_low=0.05, band_reason=why)
    assert row.passed and row.band_low == 0.05 and row.band_high == 0.0
    assert not close_to("c", "§6", "q", 1.0, 1.0 - 0.05 - 4.1 * 0.01, 0.01, band_low=0.05, band_reason=why).passed
    assert not close_to("c", "§6", "q", 1.0, 1.0 + 4.1 * 0.01, 0.01, band_low=0.05, band_reason=why).passed
    assert close_to("c", "§6", "q", 1.0, 1.0 + 0.05 + 3.9 * 0.01, 0.01, band_high=0.05, band_reason=why).passed
    assert row.resolution == pytest.approx(0.05 + (Z_VERDICT + Z_POWER) * 0.01)
    with pytest.raises(InputError):
        close_to("c", "§6", "q", 1.0, 1.0, 0.01, band=0.01, band_low=0.01)


def test_one_sided_rules():
    assert at_most("c", "§6", "q", 1.0, 1.03, 0.01).passed
    assert not at_most("c", "§6", "q", 1.0, 1.05, 0.01).passed
    assert at_least("c", "§6", "q", 1.0, 0.97, 0.01).passed
    assert not at_least("c", "§6", "q", 1.0, 0.95, 0.01).passed
    assert at_most("c", "§6", "q", 1.0, 0.0, 0.01).sides == 1


def test_wide_band_needs_a_reason():
    with pytest.raises(AssertionError):
        close_to("c", "§5", "q", 1.0, 1.0, 0.01, band=0.05)
    row = close_to("c", "§5", "q", 1.0, 1.0, 0.01, band=0.05, band_reason="O(eps) overlap, 5%")
    assert row.band_reason and "O(eps)" in row.rule


def test_family_false_alarm():
    rows = [close_to("c", "§5", "q", 1.0, 1.0, 0.01)] * 10
    p = math.erfc(Z_VERDICT / math.sqrt(2))  # 2 Phi(-4)
    assert family_false_alarm(rows) == pytest.approx(1 - (1 - p) ** 10)


def test_context_samples_and_kwargs():
    assert Context(scale=0.25).samples(40_000) == 10_000
    assert Context(scale=1e-6).samples(40_000) == 1000
    assert Context(n_jobs=2).estimator_kwargs() == {"n_jobs": 2}
    assert Context(device="cuda").estimator_kwargs() == {"n_jobs": 1, "device": "cuda"}
    # only calls that run on the device take the device's extra samples
    gpu = Context(scale=0.25, device="cuda", device_scale=100.0)
    assert gpu.samples(40_000) == 10_000 and gpu.device_samples(40_000) == 1_000_000
    assert Context(scale=0.25, device_scale=100.0).device_samples(40_000) == 10_000


def test_unknown_claim_name_is_input_error():
    with pytest.raises(InputError, match="unknown claim"):
        run_claims(["no_such_claim"])


def test_claims_are_pure():
    # the same context twice gives identical rows: no state survives between calls
    ctx = Context(scale=0.05)
    a = run_claims(["slice_exact"], ctx)["slice_exact"]
    b = run_claims(["slice_exact"], ctx)["slice_exact"]
    assert isinstance(a, ClaimOutput)
    assert [r.to_dict() for r in a.rows] == [r.to_dict() for r in b.rows]


def test_validate_quick_writes_numbers_and_figures(tmp_path):
    p = subprocess.run([sys.executable, "-m", "discosim", "validate", "--quick", "--out", str(tmp_path),
                        "--n-jobs", "1"], capture_output=True, text=True, timeout=600)
    doc = json.load(open(tmp_path / "validate.json"))
    assert p.returncode == (0 if doc["all_passed"] else 1)
    assert doc["all_passed"], [c for c in doc["claims"] if not c["passed"]]
    for c in doc["claims"]:
        assert {"rule", "resolution", "verdict"} <= set(c)
        assert c["ci_low"] <= c["measured"] <= c["ci_high"]
    assert 0 < doc["family_false_alarm"] < 1
    report = open(tmp_path / "REPORT.md").read()
    assert "resolution" in report and "false-alarm" in report
    for name in ("volume_fraction_vs_eps.png", "volume_ratios_vs_eps.svg"):
        assert os.path.getsize(tmp_path / name) > 1000
    # figures are redrawn from validate.json alone
    os.remove(tmp_path / "volume_ratios_vs_eps.svg")
    q = subprocess.run([sys.executable, "-m", "discosim", "figures", "--validation", str(tmp_path),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert q.returncode == 0, q.stderr
    assert os.path.getsize(tmp_path / "volume_ratios_vs_eps.svg") > 1000


def test_validate_claims_filter_rejects_unknown(tmp_path):
    p = subprocess.run([sys.executable, "-m", "discosim", "validate", "--claims", "nope",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "unknown claim" in p.stderr and "Traceback" not in p.stderr


def test_redraw_from_a_corrupt_validate_json_is_input_error(tmp_path):
    from discosim.validation.report import redraw_figures

    (tmp_path / "validate.json").write_text('{"claims": [], "series": 3')
    with pytest.raises(InputError, match="validate.json"):
        redraw_figures(str(tmp_path))
    (tmp_path / "validate.json").write_text('{"claims": []}')  # an old payload without series
    with pytest.raises(InputError, match="validate.json"):
        redraw_figures(str(tmp_path))
    assert redraw_figures(str(tmp_path / "absent")) == []


def test_table_and_report_show_rule_resolution_verdict(tmp_path):
    from discosim.validation.report import build_payload, format_table, write_report

    row = close_to("slice_exact", "§5", "q", 1.0, 1.001, 0.001)
    payload = build_payload({"slice_exact": ClaimOutput((row,), {})}, Context(), 1.0, {"slice_exact": 1.0})
    table = format_table(payload)
    assert "resolution" in table and "0.56% rel" in table and "PASS" in table and row.rule in table
    report = open(write_report(payload, [], str(tmp_path))).read()
    assert "| rule | resolution | power -/+ (measured) | verdict |" in report and "0.56% rel" in report
    assert f"{payload['family_false_alarm']:.2g}" in report
    # the measured power beside the resolution (a normal row: the resolution on both sides)
    c = payload["claims"][0]
    assert c["power_method"] == "normal model"
    assert c["power_low"] == pytest.approx(c["resolution"], rel=0.03)
    assert c["power_high"] == pytest.approx(c["resolution"], rel=0.03)
    assert "power -/+" in table and "-0.5" in table


def test_derived_rows_are_shown_not_counted(tmp_path):
    from discosim.validation.report import build_payload, format_table, merge_payloads, write_report

    rows = (close_to("slice_exact", "§5", "q", 1.0, 1.001, 0.001),
            close_to("slice_exact", "§5", "q twice", 1.0, 1.1, 0.001, derived="slice_exact: q"),
            at_most("slice_exact", "§5", "bound", 1.0, 0.5, 0.001))
    payload = build_payload({"slice_exact": ClaimOutput(rows, {})}, Context(), 1.0)
    assert payload["n_rows"] == 2 and payload["n_derived"] == 1
    assert payload["all_passed"]  # the failing row is derived: shown, not counted
    assert payload["family_false_alarm"] == pytest.approx(family_false_alarm(rows[:1] + rows[2:]))
    table = format_table(payload)
    assert "2/2 rows hold (and 0/1 derived rows, not counted)" in table
    assert "(FAIL)" in table and "derived from slice_exact: q" in table
    assert "none / +" in table  # an upper bound: no power below
    report = open(write_report(payload, [], str(tmp_path))).read()
    assert "(derived from slice_exact: q)" in report and "(**FAIL**, not counted)" in report
    import json as _json
    from discosim._core.results import dumps

    saved = _json.loads(dumps(payload))
    assert saved["claims"][2]["power_low"] is None  # inf: strict JSON null
    merged = merge_payloads([("a", saved)])
    assert merged["n_rows"] == 2 and merged["all_passed"]
    assert [c["power_high"] for c in merged["claims"]] == [c["power_high"] for c in saved["claims"]]


def test_claim_rows_identical_for_any_n_jobs():
    # chunk i draws from the i-th child seed: the same rows with 1 or 2 workers
    a = run_claims(["scaling_law"], Context(scale=0.01, n_jobs=1))["scaling_law"]
    b = run_claims(["scaling_law"], Context(scale=0.01, n_jobs=2))["scaling_law"]
    assert [r.to_dict() for r in a.rows] == [r.to_dict() for r in b.rows]


def test_every_device_estimator_call_of_the_claims_takes_the_device(monkeypatch):
    # under `validate --device cuda` each call to an estimator that has a GPU path must go there
    # (issue 11 item 6); the calls are recorded, then run on the CPU at a small scale
    import inspect

    import discosim.validation.volumes as cv
    import discosim.diffusion.estimators as hitting
    import discosim.smoothing.estimators as smoothing
    import discosim.volumes.estimators as volume

    calls = []

    def recording(name, func):
        def wrapped(*a, **kw):
            calls.append((name, kw.pop("device", "cpu")))
            return func(*a, **kw)
        return wrapped

    gpu_estimators = [(volume, "estimate_volumes"), (cv, "estimate_volumes"),
                      (hitting, "estimate_first_hit"), (hitting, "estimate_occupation"),
                      (smoothing, "estimate_overhead")]
    for mod, name in gpu_estimators:
        params = inspect.signature(getattr(mod, name)).parameters
        # a named keyword, or (path estimators) RunOptions' names through **keywords
        assert "device" in params or ("options" in params and any(
            p.kind is p.VAR_KEYWORD for p in params.values()))
        monkeypatch.setattr(mod, name, recording(name, getattr(mod, name)))
    ctx = Context(scale=0.01, device="cuda", device_scale=1.0, quick=True)
    names = ["scaling_law", "importance_sampler", "hit_order", "first_hit_exact", "first_hit_bounds",
             "occupation", "smooth_overhead"]
    run_claims(names, ctx)
    called = {n for n, _ in calls}
    assert called == {"estimate_volumes", "estimate_first_hit", "estimate_occupation",
                      "estimate_overhead"}
    assert [c for c in calls if c[1] != "cuda"] == []


def test_validate_keeps_the_rows_of_finished_claims_when_a_later_claim_fails(tmp_path, monkeypatch):
    import discosim.validation as claims_pkg
    from discosim.validation.report import run_validation

    real = claims_pkg.run_claims

    def failing_second(names, ctx=None, progress=None):
        if names == ["euclidean_normal"]:
            raise RuntimeError("killed")
        return real(names, ctx, progress)

    monkeypatch.setattr(claims_pkg, "run_claims", failing_second)
    with pytest.raises(RuntimeError, match="killed"):
        run_validation(["slice_exact", "euclidean_normal"], Context(scale=0.01, quick=True),
                       str(tmp_path), stream=io.StringIO())
    saved = json.loads((tmp_path / "validate.json").read_text())
    assert saved["complete"] is False
    assert {r["claim"] for r in saved["claims"]} == {"slice_exact"}


def test_merge_of_a_split_run_and_its_refusals(tmp_path):
    from discosim.validation.report import main as report_main, merge_validations

    ctx = Context(scale=0.01, quick=True)
    from discosim.validation.report import run_validation

    for name in ("euclidean_normal", "slice_exact"):
        run_validation([name], ctx, str(tmp_path / name), stream=io.StringIO())
    parts = [str(tmp_path / n / "validate.json") for n in ("euclidean_normal", "slice_exact")]
    merged = merge_validations(parts, str(tmp_path / "m"), reference=parts[1])
    # registry order (slice_exact is registered first), counts and sources recomputed
    assert [r["claim"] for r in merged["claims"]][:4] == ["slice_exact"] * 4
    assert merged["n_rows"] == len(merged["claims"]) == 7
    assert [s["claims"] for s in merged["merged_from"]] == [["euclidean_normal"], ["slice_exact"]]
    report = (tmp_path / "m" / "REPORT.md").read_text()
    assert "merged from 2 files" in report and "resolution, reference run" in report
    # the reference has no euclidean_normal rows: a dash, not another row's resolution
    assert sum(line.count("| — |") for line in report.splitlines() if "euclidean_normal" in line) == 3
    # parts of different runs, a claim twice, no --out: one-line errors, exit 2
    other = json.loads(open(parts[0]).read())
    other["seed"] += 1
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(InputError, match="seed"):
        merge_validations([parts[1], str(tmp_path / "other.json")], str(tmp_path / "x"))
    with pytest.raises(InputError, match="euclidean_normal"):
        merge_validations([parts[0], parts[0]], str(tmp_path / "x"))
    assert report_main(["--merge", parts[0]]) == 2


def test_check_payload_reads_the_power_fields_and_refuses_bad_ones():
    from discosim._core.results import dumps
    from discosim.validation.report import build_payload, check_payload

    rows = (close_to("slice_exact", "§5", "q", 1.0, 1.0, 0.01),
            at_most("slice_exact", "§5", "b", 1.0, 1.0, 0.01, derived="slice_exact: q"))
    doc = json.loads(dumps(build_payload({"slice_exact": ClaimOutput(rows, {})}, Context(), 1.0)))
    assert check_payload(doc, "x") is doc
    old = json.loads(json.dumps(doc))  # a file from before issue 23: no power fields
    for r in old["claims"]:
        for k in ("power_low", "power_high", "power_method", "derived", "band_low", "band_high", "bound"):
            r.pop(k)
    assert check_payload(old, "x") is old
    for key, bad in (("power_low", "small"), ("derived", 3), ("bound", "sideways")):
        broken = json.loads(json.dumps(doc))
        broken["claims"][0][key] = bad
        with pytest.raises(InputError, match=key):
            check_payload(broken, "x")


def test_volume_rows_carry_independent_sides_derived_marks_and_draws():
    # issue 23: the volume claims' rows at a small scale: exact forms without bands, the
    # construction-bound rows marked derived, and every fit's draw giving its statistic
    import math

    import numpy as np

    from discosim.theory import volumes as tv
    from discosim.theory.alpha import orthonormal_alpha

    names = ["real_sizes", "slice_sum_vs_union", "ratio_theorem", "scaling_law",
             "importance_sampler"]
    out = run_claims(names, Context(scale=0.05, quick=True))
    rows = {n: out[n].rows for n in names}
    for r in rows["real_sizes"]:
        assert r.band == 0.0 and r.sides == 2 and r.derived is None and r.draw is not None
        D, order = int(r.quantity.split()[0][2:]), int(r.quantity.split()[1][2])
        eps = math.sqrt(0.4 / (D - order))
        assert r.predicted == orthonormal_alpha(4, 2, order) * float(tv.tube_fraction(eps, 1.0, D, order))
    assert [r.data["eps"][0] for r in rows["slice_sum_vs_union"]] == [0.2, 0.1]
    derived = {n: [r.derived is not None for r in rows[n]] for n in names}
    assert derived["ratio_theorem"] == [True, False, True, False]  # slope, constant per order
    assert all(derived["scaling_law"]) and not any(derived["importance_sampler"])
    growth = [r for r in rows["importance_sampler"] if "growth exponent" in r.quantity]
    assert len(growth) == 3 and all(r.predicted == 0.0 and r.resolution_kind == "absolute"
                                    for r in growth)
    assert all("full-D NumPy" in r.quantity for r in rows["importance_sampler"][:2])
    rng = np.random.default_rng(0)
    for n in names:
        for r in rows[n]:
            if r.draw is not None:
                x = np.asarray(r.draw(rng, 0.0, 50))
                assert x.shape == (50,) and np.all(np.isfinite(x))
                # the draws scatter about the prediction with about the row's SE
                assert abs(np.median(x) - r.predicted) < 2 * r.stderr + 1e-12
