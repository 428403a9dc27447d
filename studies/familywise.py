"""Seed study: the family-wise false-alarm rate of ``discosim validate``, measured (issue 23).

Runs ``discosim validate --quick`` (as a user runs it, one process per seed, each with
``--n-jobs 1``) on N seeds, records which rows failed on each, and writes to ``--out``:

- ``familywise.json``: every run's failed rows, each row's failures over the seeds, the measured
  family-wise rate (runs with at least one failing counted row) with its 95% Clopper-Pearson
  interval, the rates predicted for the quick table and the full run, and ``summary``: the
  sentence that the report header and the README quote;
- ``familywise_rows.csv`` (one line per row) and ``familywise_seeds.csv`` (one line per run);
- ``familywise.png``: failures per row over the seeds, and the measured rate with its interval
  beside the predicted ones.

The predictions. *Independent normal rows* is ``family_false_alarm`` of the table: each correct
row fails with ``sides * Phi(-4)``. *Offsets measured* keeps the rows independent and normal but
lets each row's deviation ``m - p`` have a mean ``b`` (a neglected bias: a next-order term, a
time step), estimated across the seeds by the method of moments, ``b = sign(d) sqrt(max(d^2 -
s^2 / N, 0))`` (d, s: mean and sd of ``m - p`` over the N seeds; the subtraction removes the
noise d carries, which would otherwise inflate every row's rate); a row then fails with
``P(N(b, SE) outside its acceptance window)``, window and SE its own (two-sided, one-sided or
asymmetric, band included). For the quick table the SE is the row's SE in each run; the full
run is extrapolated with the same offsets ``b`` (a bias does not shrink with samples) and each
row's SE and band from the committed full run ``--full-json`` (default
``figures/validate.json``; a row not found there: its quick SE times sqrt(QUICK_SCALE), the SE
of four times the samples). The measured quick rate checks the offset model where it is
measured; the full run's rate is that model's extrapolation. Noise in the estimated offsets
only raises a row's failure probability (it is convex in ``b``), and more so at the full run's
smaller SE, so the extrapolation is stated as a range: its lower end keeps only the offsets
significant over the seeds (``|t| = |d| / (s / sqrt(N)) > 3``), its upper end every offset.

    python studies/familywise.py [--n-seeds 24] [--jobs 16] [--out figures/familywise]
                                 [--first-seed 20260623] [--claims NAME ...] [--smoke]

``--jobs``: parallel processes (separate seeds, each ``--n-jobs 1``; one core each).
``--smoke``: 2 seeds of one cheap claim into a temporary folder (seconds; checks the script).
"""

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SEED = 20260623
SMOKE_CLAIM = "slice_exact"


def run_one(seed, claims, work, timeout):
    """``discosim validate --quick --seed SEED`` in a fresh process; its rows and status."""
    out = os.path.join(work, f"seed_{seed}")
    cmd = [sys.executable, "-m", "discosim", "validate", "--quick", "--seed", str(seed),
           "--n-jobs", "1", "--out", out, "--quiet"]
    if claims:
        cmd += ["--claims", *claims]
    # one core per process: --jobs processes share the machine
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t
    path = os.path.join(out, "validate.json")
    if proc.returncode not in (0, 1) or not os.path.isfile(path):
        return {"seed": seed, "exit_status": proc.returncode, "elapsed_s": elapsed,
                "error": proc.stderr.strip().splitlines()[-1:] or ["no output"]}
    with open(path) as fh:
        doc = json.load(fh)
    return {"seed": seed, "exit_status": proc.returncode, "elapsed_s": elapsed,
            "family_false_alarm": doc["family_false_alarm"], "rows": doc["claims"]}


def _row_keys(rows):
    """(claim, index within the claim) of each row: quantities can carry seed-dependent numbers."""
    seen, keys = {}, []
    for r in rows:
        i = seen[r["claim"]] = seen.get(r["claim"], -1) + 1
        keys.append((r["claim"], i))
    return keys


def _phi(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def fail_probability(row, offset, se, z):
    """P(a measurement N(predicted + offset, se) fails the row's rule)."""
    band = row.get("band") or 0.0
    lo = row.get("band_low")
    hi = row.get("band_high")
    lo, hi = (band if lo is None else lo), (band if hi is None else hi)
    if not se or not math.isfinite(se) or se <= 0:
        return 0.0
    p = 0.0
    if row.get("bound") != "lower":  # an upper limit exists
        p += 1 - _phi((z * se + hi - offset) / se)
    if row.get("bound") != "upper":
        p += _phi((-(z * se + lo) - offset) / se)
    if row.get("sides", 2) == 1 and row.get("bound") is None:  # a file from before `bound`
        p = 1 - _phi((z * se + band - offset) / se)
    return p


def _family(ps):
    return 0.0 - math.expm1(sum(math.log1p(-min(p, 1 - 1e-16)) for p in ps))


def clopper_pearson(k, n, level=0.95):
    from scipy import stats

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def analyse(runs, full_rows, quick_scale, z):
    """Per-row failures and offsets, the measured and predicted family-wise rates."""
    ok = [r for r in runs if "rows" in r]
    n = len(ok)
    table = {}
    for run in ok:
        for key, row in zip(_row_keys(run["rows"]), run["rows"]):
            t = table.setdefault(key, {"claim": key[0], "index": key[1], "quantity": row["quantity"],
                                       "sides": row.get("sides", 2), "derived": row.get("derived"),
                                       "row": row, "dev": [], "se": [], "fails": 0, "seen": 0})
            t["seen"] += 1
            t["fails"] += not row["passed"]
            t["dev"].append(row["measured"] - row["predicted"])
            t["se"].append(row["stderr"])
    full = dict(zip(_row_keys(full_rows), full_rows)) if full_rows else {}
    rows = []
    for key, t in table.items():
        devs = [d for d in t["dev"] if math.isfinite(d)]
        m = len(devs)
        d = sum(devs) / m if m else 0.0
        s2 = sum((x - d) ** 2 for x in devs) / (m - 1) if m > 1 else 0.0
        b = math.copysign(math.sqrt(max(d * d - s2 / max(m, 1), 0.0)), d)
        t_stat = abs(d) / math.sqrt(s2 / m) if m > 1 and s2 > 0 else 0.0
        b_sig = b if t_stat > 3 else 0.0
        se_q = [x for x in t["se"] if math.isfinite(x)]
        p_quick = (sum(fail_probability(t["row"], b, x, z) for x in se_q) / len(se_q)) if se_q else 0.0
        frow = full.get(key)
        if frow is not None and math.isfinite(frow.get("stderr", math.nan)):
            se_f, src, ref = frow["stderr"], "full run", frow
        else:
            se_f = (sum(se_q) / len(se_q)) * math.sqrt(quick_scale) if se_q else math.nan
            src, ref = "quick SE x sqrt(quick scale)", t["row"]
        rows.append({"claim": t["claim"], "index": t["index"], "quantity": t["quantity"],
                     "sides": t["sides"], "derived": t["derived"], "runs": t["seen"],
                     "fails": t["fails"], "mean_dev": d, "sd_dev": math.sqrt(s2), "offset": b,
                     "offset_t": t_stat,
                     "se_quick": (sum(se_q) / len(se_q)) if se_q else math.nan,
                     "se_full": se_f, "se_full_from": src,
                     # the table's own prediction (family_false_alarm): sides * Phi(-z)
                     "p_fail_quick_null": t["sides"] * (1 - _phi(z)),
                     "p_fail_quick_offset": p_quick if t["sides"] else 0.0,
                     "p_fail_full_offset": fail_probability(ref, b, se_f, z) if t["sides"] else 0.0,
                     "p_fail_full_significant": (fail_probability(ref, b_sig, se_f, z)
                                                 if t["sides"] else 0.0)})
    counted = [r for r in rows if not r["derived"]]
    failing = [run for run in ok
               if any(not row["passed"] and not row.get("derived") for row in run["rows"])]
    k = len(failing)
    lo, hi = clopper_pearson(k, n) if n else (math.nan, math.nan)
    return rows, {
        "runs": n, "runs_with_a_failing_row": k, "rate": k / n if n else math.nan, "ci95": [lo, hi],
        "predicted_quick_null": (sum(r["family_false_alarm"] for r in ok) / n) if n else math.nan,
        "predicted_quick_offset": _family(r["p_fail_quick_offset"] for r in counted),
        "predicted_full_null": _family(r["p_fail_quick_null"] for r in counted),
        "predicted_full_offset": _family(r["p_fail_full_offset"] for r in counted),
        "predicted_full_significant": _family(r["p_fail_full_significant"] for r in counted),
        "rows_counted": len(counted), "rows_derived": len(rows) - len(counted)}


def summary_sentence(fw, claims):
    what = "validate --quick" + (f" --claims {' '.join(claims)}" if claims else "")
    return (f"{fw['runs_with_a_failing_row']} of {fw['runs']} seeds of `{what}` had a failing "
            f"counted row: measured rate {fw['rate']:.2g} (95% CI {fw['ci95'][0]:.2g}-"
            f"{fw['ci95'][1]:.2g}) against {fw['predicted_quick_null']:.2g} predicted for "
            f"independent normal rows and {fw['predicted_quick_offset']:.2g} with each row's "
            f"offset measured over the seeds; the full run's rate predicted from those offsets: "
            f"{fw['predicted_full_significant']:.2g} (significant offsets only) to "
            f"{fw['predicted_full_offset']:.2g} (every offset) (independent normal rows: "
            f"{fw['predicted_full_null']:.2g})")


def plot(rows, fw, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    x = range(len(rows))
    a.bar(x, [r["fails"] for r in rows],
          color=["0.6" if r["derived"] else "C3" for r in rows])
    starts = [i for i, r in enumerate(rows) if r["index"] == 0]
    a.set_xticks(starts, [rows[i]["claim"] for i in starts], rotation=90, fontsize=6)
    a.set_xlabel("rows by claim, registry order (grey: derived, not counted)")
    a.set_ylabel(f"failures in {fw['runs']} seeds")
    a.set_title("failures per row over the seeds")
    for i, r in enumerate(rows):
        if r["fails"]:
            a.annotate(f"{r['claim']}[{r['index']}]", (i, r["fails"]), rotation=60, fontsize=7,
                       ha="left", va="bottom")
    a.plot(list(x), [r["runs"] * r["p_fail_quick_offset"] for r in rows], "_", color="C1",
           markersize=8, label="expected (offset model)")
    a.legend(fontsize=7, loc="upper right")
    a.set_ylim(0, max([1] + [r["fails"] for r in rows]) * 1.6)
    lo, hi = fw["ci95"]
    b.errorbar([0], [fw["rate"]], yerr=[[fw["rate"] - lo], [hi - fw["rate"]]], fmt="o", color="k",
               capsize=4, label="measured (95% CI)")
    b.plot([0], [fw["predicted_quick_null"]], "s", color="C0", label="predicted, normal rows")
    b.plot([0], [fw["predicted_quick_offset"]], "D", color="C1", label="predicted, offsets")
    b.plot([1, 1], [fw["predicted_full_significant"], fw["predicted_full_offset"]], "-D",
           color="C1")
    b.plot([1], [fw["predicted_full_null"]], "s", color="C0")
    for xv, v in ((0, fw["rate"]), (0, fw["predicted_quick_offset"]),
                  (1, fw["predicted_full_significant"]), (1, fw["predicted_full_offset"])):
        b.annotate(f"{v:.2g}", (xv, v), xytext=(6, 0), textcoords="offset points", fontsize=7)
    b.set_xticks([0, 1], ["quick", "full\n(extrapolated)"])
    b.set_xlim(-0.6, 1.6)
    b.set_ylim(0, max(hi, fw["predicted_full_offset"], 0.05) * 1.2)
    b.set_ylabel("family-wise false-alarm rate")
    b.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out, args, runs, rows, fw, elapsed):
    os.makedirs(out, exist_ok=True)
    doc = {"study": "familywise", "quick": True, "n_seeds": len(runs),
           "seeds": [r["seed"] for r in runs], "claims": args.claims, "jobs": args.jobs,
           "elapsed_s": elapsed, "z_verdict": args.z,
           "model": __doc__.split("The predictions. ")[1].split("\n\n")[0].replace("\n", " "),
           "familywise": fw, "summary": summary_sentence(fw, args.claims), "rows": rows,
           "runs": [{"seed": r["seed"], "exit_status": r["exit_status"], "elapsed_s": r["elapsed_s"],
                     "error": r.get("error"),
                     "failed": [{"claim": c["claim"], "quantity": c["quantity"],
                                 "derived": c.get("derived"),
                                 "z": ((c["measured"] - c["predicted"]) / c["stderr"]
                                       if c["stderr"] else None)}
                                for c in r.get("rows", []) if not c["passed"]]}
                    for r in runs]}
    with open(os.path.join(out, "familywise.json"), "w") as fh:
        json.dump(_clean(doc), fh, indent=1, allow_nan=False)  # strict JSON: NaN, inf -> null
    fields = ["claim", "index", "quantity", "sides", "derived", "runs", "fails", "mean_dev",
              "sd_dev", "offset", "offset_t", "se_quick", "se_full", "se_full_from",
              "p_fail_quick_offset", "p_fail_full_offset", "p_fail_full_significant"]
    with open(os.path.join(out, "familywise_rows.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "familywise_seeds.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "exit_status", "elapsed_s", "n_failed", "failed_rows"])
        for r in doc["runs"]:
            w.writerow([r["seed"], r["exit_status"], f"{r['elapsed_s']:.1f}", len(r["failed"]),
                        "; ".join(f"{f['claim']}: {f['quantity']}" for f in r["failed"])])
    plot(rows, fw, os.path.join(out, "familywise.png"))
    return doc


def _clean(obj):
    """NaN and inf to None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-seeds", type=int, default=24)
    ap.add_argument("--first-seed", type=int, default=DEFAULT_SEED,
                    help="seeds first-seed, first-seed + 1, ...")
    ap.add_argument("--jobs", type=int, default=1, help="parallel validate processes")
    ap.add_argument("--out", help="default figures/familywise (--smoke: a temporary folder)")
    ap.add_argument("--claims", nargs="+", metavar="NAME", help="default: every claim")
    ap.add_argument("--full-json", default=os.path.join(ROOT, "figures", "validate.json"),
                    help="the committed full run: each row's full-run SE and band")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per validate run")
    ap.add_argument("--keep-runs", action="store_true",
                    help="keep each run's folder (validate.json, figures) under OUT/runs")
    ap.add_argument("--smoke", action="store_true",
                    help=f"2 seeds of {SMOKE_CLAIM} into a temporary folder")
    args = ap.parse_args(argv)
    from discosim.app.cli.validate import QUICK_SCALE
    from discosim.validation import Z_VERDICT

    args.z = Z_VERDICT
    tmp = tempfile.TemporaryDirectory(prefix="familywise-")
    if args.smoke:
        args.n_seeds, args.claims = 2, [SMOKE_CLAIM]
        args.out = args.out or os.path.join(tmp.name, "out")
    args.out = args.out or os.path.join(ROOT, "figures", "familywise")
    if args.n_seeds < 1 or args.jobs < 1:
        ap.error("--n-seeds and --jobs must be >= 1")
    work = os.path.join(args.out, "runs") if args.keep_runs else os.path.join(tmp.name, "runs")
    seeds = [args.first_seed + i for i in range(args.n_seeds)]
    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda s: run_one(s, args.claims, work, args.timeout), seeds))
    elapsed = time.perf_counter() - t
    full_rows = None
    if os.path.isfile(args.full_json):
        with open(args.full_json) as fh:
            full_rows = json.load(fh).get("claims")
        if args.claims:
            full_rows = [r for r in full_rows if r["claim"] in args.claims]
    rows, fw = analyse(runs, full_rows, QUICK_SCALE, Z_VERDICT)
    doc = write_outputs(args.out, args, runs, rows, fw, elapsed)
    for r in runs:
        if "error" in r:
            print(f"seed {r['seed']}: validate exited {r['exit_status']}: {r['error'][0]}")
    print(f"familywise: {doc['summary']} ({elapsed:.0f} s, {args.jobs} jobs): "
          f"{os.path.join(args.out, 'familywise.json')}")
    tmp.cleanup()
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
