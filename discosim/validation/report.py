"""The validation report: terminal table, ``validate.json``, ``REPORT.md``, figures, README block.

Everything here reads what the claims returned (:class:`discosim.validation.ClaimOutput`: rows and
figure series); nothing is recomputed, and figures are redrawn from ``validate.json`` alone.
Every row shows its rule, its resolution (the smallest deviation its rule detects with >= 95%
power under normal errors, see :mod:`discosim.validation.rules`), its power below / above the
prediction measured by simulating its statistic (:mod:`discosim.validation.power`) and its
verdict; rows ``derived`` from another are shown but not counted. The header states the
family-wise false-alarm rate of the counted rows, ``1 - prod(1 - sides Phi(-Z_VERDICT))``, and,
when the seed study's ``familywise/familywise.json`` lies in the report's folder, the rate it
measured (``studies/familywise.py``).

``python -m discosim.validation.report --readme README.md`` rewrites the generated blocks of the README
(claims table and figure list, between ``<!-- claims:start -->``/``<!-- claims:end -->`` and
``<!-- figures:start -->``/``<!-- figures:end -->``) from the registry, and the measured
family-wise rate (``<!-- familywise:start -->``/``<!-- familywise:end -->``) from the seed
study's ``figures/familywise/familywise.json`` when it exists.
"""

import json
import os
import sys
import time

from discosim._core.errors import InputError
from discosim._core.io import write_atomic

__all__ = ["run_validation", "build_payload", "format_table", "write_report", "write_json",
           "redraw_figures", "readme_blocks", "update_readme", "format_resolution",
           "merge_payloads", "merge_validations", "check_payload", "format_power",
           "familywise_summary"]




def _not_counted(derived, suffix=": not counted"):
    """How a row left out of the count says why: ``derived from <row>: not counted``, or a
    reported-only row's own words (``reported, not counted: ...``)."""
    if derived.startswith("reported"):
        return derived
    return f"derived from {derived}{suffix}"

def format_resolution(row):
    """``1.3% rel`` or ``0.052 abs``."""
    res, kind = row["resolution"], row["resolution_kind"]
    if res is None or res != res or res == float("inf"):
        return "n/a"
    return f"{100 * res:.2g}% rel" if kind == "relative" else f"{res:.2g} abs"


def format_power(row):
    """``-1.3% / +1.4% rel`` or ``none / +0.052 abs`` (none: no detection on that side)."""
    lo, hi, kind = row.get("power_low"), row.get("power_high"), row["resolution_kind"]
    if lo is None and hi is None and not row.get("power_method"):
        return "n/a"  # a file from before issue 23

    def one(x, sign):
        if x is None or x != x or x == float("inf"):
            return "none"
        return f"{sign}{100 * x:.2g}%" if kind == "relative" else f"{sign}{x:.2g}"
    return f"{one(lo, '-')} / {one(hi, '+')} {'rel' if kind == 'relative' else 'abs'}"


def _counted(rows):
    return [r for r in rows if not r.get("derived")]


def build_payload(outputs, ctx, elapsed_s, timings=None, complete=True):
    """The ``validate.json`` document of ``{name: ClaimOutput}`` run under ``ctx``.

    ``complete=False`` marks the copy saved after each claim while later claims still run.
    """
    from discosim._core.cache import code_version
    from discosim.validation import Z_POWER, Z_VERDICT, family_false_alarm

    from discosim.validation.power import with_power

    # rows that did not come through run_claims get their power here
    rows = [r.to_dict() for out in outputs.values()
            for r in (out.rows if all(r.power_method for r in out.rows)
                      else with_power(out.rows, ctx.seed))]
    counted = _counted(rows)
    return {"code_version": code_version(), "seed": ctx.seed, "quick": ctx.quick, "scale": ctx.scale,
            "n_jobs": ctx.n_jobs, "device": ctx.device, "device_scale": ctx.device_scale, "complete": complete,
            "elapsed_s": elapsed_s, "claim_elapsed_s": dict(timings or {}),
            "z_verdict": Z_VERDICT, "z_power": Z_POWER, "n_rows": len(counted),
            "n_derived": len(rows) - len(counted),
            "family_false_alarm": family_false_alarm(counted),
            "all_passed": all(r["passed"] for r in counted),
            "claims": rows,
            "series": {name: out.series for name, out in outputs.items()}}


def _summary(payload):
    """First sentence of the header: rows held, seed, kind of run, device, time."""
    n_pass = sum(c["passed"] for c in _counted(payload["claims"]))
    derived = [c for c in payload["claims"] if c.get("derived")]
    held = (f" (and {sum(c['passed'] for c in derived)}/{len(derived)} derived rows, not "
            f"counted)" if derived else "")
    device = payload.get("device", "cpu")
    on = (f", device {device}: the estimator calls that run there take "
          f"{payload.get('device_scale', 1.0):g}x the samples" if device != "cpu" else "")
    part = "" if payload.get("complete", True) else ", INCOMPLETE: a later claim did not finish"
    if payload.get("merged_from"):
        part += f", merged from {len(payload['merged_from'])} files (`merged_from` in validate.json)"
    return (f"{n_pass}/{payload['n_rows']} rows hold{held} (seed {payload['seed']}, "
            f"{'quick' if payload['quick'] else 'full'} run{on}{part}, {payload['elapsed_s']:.1f} s)")


def familywise_summary(folder, payload=None):
    """One sentence quoting the seed study's measured family-wise rate from
    ``folder/familywise/familywise.json`` (``studies/familywise.py``), or None without it.

    Parameters
    ----------
    folder : str
        The report's folder.
    payload : dict, optional
        A validation table (``validate.json``). Given, the sentence is returned only where the
        study's rows are this table's (claim, place in the claim, sides): a rate measured on
        another table is not quoted for this one (None).

    Returns
    -------
    str or None

    Raises
    ------
    InputError
        The file is not the seed study's output.

    Examples
    --------
    >>> import json, os, tempfile
    >>> from discosim.validation.report import familywise_summary
    >>> folder = tempfile.mkdtemp()
    >>> familywise_summary(folder) is None
    True
    >>> os.makedirs(os.path.join(folder, "familywise"))
    >>> study = {"summary": "0 of 40 seeds had a failing counted row",
    ...          "rows": [{"claim": "slice_exact", "index": 0, "sides": 2}]}
    >>> with open(os.path.join(folder, "familywise", "familywise.json"), "w") as fh:
    ...     json.dump(study, fh)
    >>> familywise_summary(folder)
    '0 of 40 seeds had a failing counted row'
    >>> familywise_summary(folder, {"claims": [{"claim": "biased_slice", "sides": 2}]}) is None
    True
    """
    path = os.path.join(folder, "familywise", "familywise.json")
    if not os.path.isfile(path):
        return None
    try:
        doc = _read_json(path)
        summary = doc["summary"]
        study = [(r["claim"], r["index"], r["sides"]) for r in doc["rows"]]
    except (InputError, KeyError, TypeError):
        raise InputError(f"{path} is not the seed study's output: rerun studies/familywise.py")
    if payload is not None and study != _table_keys(payload):
        return None
    return summary


def _table_keys(payload):
    """(claim, index within the claim, sides) of each row, as the seed study keys its rows."""
    seen, keys = {}, []
    for r in payload["claims"]:
        i = seen[r["claim"]] = seen.get(r["claim"], -1) + 1
        keys.append((r["claim"], i, r.get("sides", 2)))
    return keys


def _header(payload, folder=None):
    fw = familywise_summary(folder, payload) if folder else None
    stale = (folder is not None and fw is None
             and os.path.isfile(os.path.join(folder, "familywise", "familywise.json")))
    return (f"{_summary(payload)}. "
            f"Family-wise false-alarm rate of this table: {payload['family_false_alarm']:.2g} "
            f"predicted for independent rows with normal errors (each correct two-sided row "
            f"fails with probability 2 Phi(-{payload['z_verdict']:g}), a bound with "
            f"Phi(-{payload['z_verdict']:g}); derived rows not counted)"
            + (f"; measured by the seed study: {fw}" if fw else "")
            + ("; the seed study beside it ran on other rows and is not quoted (rerun "
               "studies/familywise.py)" if stale else "") + ". "
            f"Resolution: the smallest deviation from the prediction the row's rule detects "
            f"with 95% power under normal errors, band + ({payload['z_verdict']:g} + "
            f"{payload['z_power']:g}) SE. Power -/+: the deviation below / above the prediction "
            f"that the rule detects in 95% of re-simulated measurements of the row's statistic "
            f"(power_method: the row's own draw, or a normal model with its SE); none: no "
            f"detection on that side (the far side of a bound).")


def format_table(payload, folder=None):
    """The terminal table (one line per row) with the header line (``folder``: where to look
    for the seed study's ``familywise/familywise.json``)."""
    w = (20, 44, 11, 22, 12, 22, 9)
    head = (f"{'claim':<{w[0]}} {'quantity':<{w[1]}} {'predicted':>{w[2]}} "
            f"{'measured ± 95% CI':>{w[3]}} {'resolution':>{w[4]}} {'power -/+':>{w[5]}} "
            f"{'verdict':>{w[6]}}  rule")
    lines = [head, "-" * len(head)]
    for c in payload["claims"]:
        meas = f"{c['measured']:.5g} ± {1.96 * c['stderr']:.2g}"
        verdict = f"({c['verdict']})" if c.get("derived") else c["verdict"]
        rule = c["rule"] + (f" [{_not_counted(c['derived'])}]" if c.get("derived") else "")
        lines.append(f"{c['claim']:<{w[0]}} {c['quantity']:<{w[1]}} {c['predicted']:>{w[2]}.5g} "
                     f"{meas:>{w[3]}} {format_resolution(c):>{w[4]}} {format_power(c):>{w[5]}} "
                     f"{verdict:>{w[6]}}  {rule}")
    lines += ["", _header(payload, folder)]
    return "\n".join(lines)


def write_json(payload, out_dir):
    from discosim._core.results import dumps

    path = os.path.join(out_dir, "validate.json")
    write_atomic(path, dumps(payload, indent=1))
    return path


def write_report(payload, figs, out_dir, reference=None):
    """``REPORT.md``: header, verdict table with rule and resolution, claims, every figure.

    ``reference``: another run's payload (the CPU run beside a ``--device cuda`` one); its
    resolution of the same row (same claim, same place among the claim's rows) gets a column.
    """
    from discosim.validation import CLAIMS

    ref = {}
    for c in (reference or {}).get("claims", []):
        ref.setdefault(c["claim"], []).append(c)
    head = ("| claim | THEORY | quantity | predicted | measured ± 95% CI | rule | resolution | "
            "power -/+ (measured) |")
    if reference is not None:
        head += " resolution, reference run |"
    lines = ["# discosim validation report", "",
             _header(payload, out_dir) + " Each row compares a formula of THEORY.md with a Monte Carlo "
             "estimate. Numbers: `validate.json`."
             + (f" Reference run: {_summary(reference)}." if reference else ""), "",
             head + " verdict |", "|---" * head.count("|") + "|"]
    seen = {}
    for c in payload["claims"]:
        rule = c["rule"].replace("|", "\\|")  # a bare | would split the markdown cell
        i = seen[c["claim"]] = seen.get(c["claim"], -1) + 1
        other = ref.get(c["claim"], [])
        extra = ""
        if reference is not None:
            extra = f" {format_resolution(other[i]) if i < len(other) else '—'} |"
        verdict = "PASS" if c["passed"] else "**FAIL**"
        quantity = c["quantity"]
        if c.get("derived"):
            verdict = f"({verdict}, not counted)"
            quantity += f" ({_not_counted(c['derived'], '')})"
        lines.append(f"| {c['claim']} | {c['section']} | {quantity} | {c['predicted']:.5g} | "
                     f"{c['measured']:.5g} ± {1.96 * c['stderr']:.2g} | {rule} | "
                     f"{format_resolution(c)} | {format_power(c)} |{extra} {verdict} |")
    ran = set(payload.get("series", {}))
    lines += ["", "## Claims", ""]
    took = payload.get("claim_elapsed_s", {})
    lines += [f"- **{c.name}** ({c.section}): {c.summary}"
              + (f" ({took[c.name]:.1f} s)" if c.name in took else "")
              for c in CLAIMS if not ran or c.name in ran]
    lines += ["", "## Figures", ""]
    for p in figs:
        if p.endswith(".png"):
            name = os.path.basename(p)
            lines += [f"### {name[:-4].replace('_', ' ')}", "", f"![{name}]({name})", ""]
    path = os.path.join(out_dir, "REPORT.md")
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def run_validation(names=None, ctx=None, out_dir="figures", as_json=False, progress=None,
                   stream=None):
    """Run the claims, save ``validate.json`` first, then figures and ``REPORT.md``, print.

    Returns the process exit status: 0 iff every counted row passes (a row ``derived`` from
    another is shown, not counted).

    What ``discosim validate`` runs: every claim of THEORY.md checked numerically against its
    closed form, each row with its rule, verdict and resolution. ``validate.json`` is rewritten
    after each claim (``"complete": false`` until the last), so a claim that fails or a run that
    is killed keeps the finished rows.

    Parameters
    ----------
    names : sequence of str, optional
        Claims to run (default: all), e.g. ``["slice_exact", "first_hit_bounds"]``; an unknown
        name is refused before any work.
    ctx : discosim.validation.Context, optional
        Sample scale, seed, workers, device and quick mode (default: ``Context()``).
    out_dir : str or path-like
        Directory of ``validate.json``, ``REPORT.md`` and the figures (created).
    as_json : bool
        Print the JSON document instead of the verdict table.
    progress : bool or None
        Progress bars (None: when stderr is a terminal).
    stream : file-like, optional
        Where to print (default: standard output).

    Returns
    -------
    int
        0 if every row holds, else 1.

    Examples
    --------
    One fast claim (the euclidean tube is the union of the normal fibre tubes, THEORY §5), in
    quick mode:

    >>> import io
    >>> import os
    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.validation import Context
    >>> tmp = tempfile.TemporaryDirectory()
    >>> table = io.StringIO()
    >>> ds.run_validation(["euclidean_normal"], Context(quick=True, seed=0), out_dir=tmp.name,
    ...                   stream=table, progress=False)
    0
    >>> sorted(f for f in os.listdir(tmp.name) if f.endswith((".json", ".md")))
    ['REPORT.md', 'validate.json']
    >>> "3/3 rows hold" in table.getvalue()
    True
    >>> tmp.cleanup()
    """
    from dataclasses import replace

    from discosim.validation import Context, run_claims
    from discosim.validation.power import with_power
    from discosim.validation.rules import _select
    from discosim._core.results import dumps
    from discosim.plotting.figures import plot_validation

    ctx = Context() if ctx is None else ctx
    stream = sys.stdout if stream is None else stream
    selected = _select(names)  # unknown names fail here, before any work
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"--out {out_dir} is a file, not a directory")
    os.makedirs(out_dir, exist_ok=True)
    outputs, timings = {}, {}
    t0 = time.perf_counter()
    for c in selected:
        t1 = time.perf_counter()
        out = run_claims([c.name], ctx, progress)[c.name]
        # each row's power, measured by simulating its statistic (validation.power)
        outputs[c.name] = replace(out, rows=with_power(out.rows, ctx.seed))
        timings[c.name] = time.perf_counter() - t1
        if c is not selected[-1]:  # a later claim that fails or is killed keeps these rows
            write_json(build_payload(outputs, ctx, time.perf_counter() - t0, timings, False), out_dir)
    payload = build_payload(outputs, ctx, time.perf_counter() - t0, timings)
    json_path = write_json(payload, out_dir)  # the numbers first: a plotting failure keeps them
    figs = plot_validation(payload, out_dir)
    report = write_report(payload, figs, out_dir)
    if as_json:
        stream.write(dumps(payload) + "\n")
    else:
        stream.write(format_table(payload, out_dir) + "\n")
        stream.write(f"Report: {report}; numbers: {json_path}; figures: {len(figs) // 2} "
                     f"(PNG + SVG) in {out_dir}/\n")
    return 0 if payload["all_passed"] else 1


_SAME_RUN_KEYS = ("seed", "quick", "scale", "device", "device_scale")


def merge_payloads(named):
    """One ``validate.json`` document from ``[(source name, payload), ...]`` of runs that split
    the claims between them (a job limit, a lost machine).

    The runs must share seed, quick, scale, device and device_scale, and no claim may appear
    twice; rows come in registry order. ``merged_from`` keeps each run's source, code version,
    claims and time: runs of different code versions are merged but say so.
    """
    from discosim.validation import CLAIMS, family_false_alarm

    if not named:
        raise InputError("nothing to merge")
    first = named[0][1]
    by_claim, series, took, sources = {}, {}, {}, []
    for name, p in named:
        for key in _SAME_RUN_KEYS:
            if p.get(key) != first.get(key):
                raise InputError(f"{name}: {key}={p.get(key)!r}, but {named[0][0]} has "
                                 f"{first.get(key)!r}: not parts of one run")
        claims = list(dict.fromkeys(r["claim"] for r in p["claims"]))
        for c in claims:
            if c in by_claim:
                raise InputError(f"claim {c} is in {by_claim[c][0]} and in {name}")
            by_claim[c] = (name, [r for r in p["claims"] if r["claim"] == c])
        series.update(p.get("series", {}))
        took.update(p.get("claim_elapsed_s", {}))
        sources.append({"source": name, "code_version": p.get("code_version", "unknown"),
                        "claims": claims, "elapsed_s": p.get("elapsed_s"),
                        "complete": p.get("complete", True)})
    order = [c.name for c in CLAIMS if c.name in by_claim]
    rows = [r for c in order for r in by_claim[c][1]]
    out = {k: first.get(k) for k in ("seed", "quick", "scale", "n_jobs") + _SAME_RUN_KEYS[3:]}
    out.update(code_version=sorted({s["code_version"] for s in sources}),
               complete=all(s["complete"] for s in sources),
               # two files of one run (one per claim) would count its time twice
               elapsed_s=(sum(took.values()) if set(took) >= set(order)
                          else sum(s["elapsed_s"] or 0.0 for s in sources)), claim_elapsed_s=took,
               z_verdict=first["z_verdict"], z_power=first["z_power"],
               n_rows=len(_counted(rows)), n_derived=len(rows) - len(_counted(rows)),
               family_false_alarm=family_false_alarm(rows),  # leaves derived rows out
               all_passed=all(r["passed"] for r in _counted(rows)), claims=rows,
               series={c: series[c] for c in order if c in series}, merged_from=sources)
    return out


def merge_validations(paths, out_dir, reference=None):
    """Merge the ``validate.json`` files at ``paths`` into ``out_dir`` (validate.json, REPORT.md,
    figures); ``reference``: a validate.json whose resolutions REPORT.md shows beside.

    Every file is read and checked whole (:func:`check_payload`: fields, rows, figure names)
    and the runs are matched before anything is written.
    """
    named = []
    for path in list(paths) + ([reference] if reference else []):
        try:
            doc = _read_json(path)
        except OSError as exc:
            raise InputError(f"{path}: {exc.strerror or exc}") from None
        named.append((path, check_payload(doc, path)))
    ref = named.pop()[1] if reference else None
    from discosim.validation import claim_names

    known = set(claim_names())
    for path, doc in named:  # merge_payloads keeps registered claims only: never drop one silently
        unknown = sorted({r["claim"] for r in doc["claims"]} - known)
        if unknown:
            raise InputError(f"{path}: {', '.join(map(repr, unknown))} is not a claim of this "
                             f"discosim version; known: {', '.join(sorted(known))}")
    payload = merge_payloads(named)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise InputError(f"--out {out_dir} exists and is not a directory")
    os.makedirs(out_dir, exist_ok=True)
    write_json(payload, out_dir)
    figs = _plot_saved(payload, out_dir, ", ".join(paths))
    write_report(payload, figs, out_dir, reference=ref)
    return payload


def redraw_figures(out_dir, source=None):
    """Redraw the validation figures and ``REPORT.md`` from ``source/validate.json`` (default
    ``out_dir``) into ``out_dir``; returns the written figure paths ([] when there is no file).

    A copy of the file goes beside them when ``source`` is another folder. The file is checked
    whole (:func:`check_payload`, figure names included) before anything is written.
    """
    source = out_dir if source is None else source
    path = os.path.join(source, "validate.json")
    if not os.path.isfile(path):
        return []
    payload = check_payload(_read_json(path), path)
    os.makedirs(out_dir, exist_ok=True)
    if os.path.realpath(source) != os.path.realpath(out_dir):
        write_json(payload, out_dir)
    figs = _plot_saved(payload, out_dir, path)
    write_report(payload, figs, out_dir)
    return figs


# ------------------------------------------------------------------ reading a saved validate.json
def _read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    # JSONDecodeError is a ValueError; RecursionError: nested past the parser's limit
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{path} is not a validate.json of this discosim version "
                         f"({type(exc).__name__}: {exc}): rerun discosim validate") from None


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_numbers(v):
    """A number or a list of numbers (None: a NaN that strict JSON wrote as null)."""
    if isinstance(v, list):
        return all(x is None or _is_number(x) for x in v)
    return _is_number(v)


_TOP_FIELDS = {"seed": int, "quick": bool, "elapsed_s": _is_number, "z_verdict": _is_number,
               "z_power": _is_number, "n_rows": int, "family_false_alarm": _is_number,
               "claims": list, "series": dict}
_ROW_FIELDS = {"claim": str, "section": str, "quantity": str, "rule": str, "resolution_kind": str,
               "passed": bool, "predicted": _is_number, "measured": _is_number,
               "stderr": _is_number, "resolution": lambda v: v is None or _is_number(v)}
# issue 23's fields: optional (a file from before them is still read); null power: no detection
_OPTIONAL_ROW_FIELDS = {"power_low": lambda v: v is None or _is_number(v),
                        "power_high": lambda v: v is None or _is_number(v),
                        "power_method": lambda v: v is None or isinstance(v, str),
                        "derived": lambda v: v is None or isinstance(v, str),
                        "band_low": lambda v: v is None or _is_number(v),
                        "band_high": lambda v: v is None or _is_number(v),
                        "bound": lambda v: v in (None, "upper", "lower")}
# the arrays of each kind of figure layer (plotting.figures.plot_series), all of one length
_LAYER_ARRAYS = {"points": ("x", "y", "se"), "curve": ("x", "y"), "band": ("x", "lo", "hi"),
                 "vline": ("x",)}


def _fits(value, kind):
    if isinstance(kind, type):
        return isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    return kind(value)


def check_payload(doc, source):
    """``doc`` if it is a ``validate.json`` document that the report and the figures can use;
    otherwise a one-line :class:`InputError` naming ``source`` and what is wrong.

    Checked before anything is written: the fields the report reads and their types, every row,
    and every figure: its name a plain file name (:func:`discosim._core.io.safe_name`: no
    folder, no ``..``, no NUL), its layers of known kinds with numeric arrays of one length.
    """
    from discosim._core.io import safe_name

    def bad(what):
        raise InputError(f"{source} is not a validate.json of this discosim version ({what}): "
                         f"rerun discosim validate")

    if not isinstance(doc, dict):
        bad(f"a JSON {type(doc).__name__}, not an object")
    for key, kind in _TOP_FIELDS.items():
        if key not in doc:
            bad(f"no field {key!r}")
        if not _fits(doc[key], kind):
            bad(f"field {key!r} is {doc[key]!r:.40}")
    for i, row in enumerate(doc["claims"]):
        if not isinstance(row, dict):
            bad(f"claims[{i}] is not an object")
        for key, kind in _ROW_FIELDS.items():
            if key not in row or not _fits(row[key], kind):
                bad(f"claims[{i}] has no valid {key!r}")
        for key, kind in _OPTIONAL_ROW_FIELDS.items():
            if key in row and not _fits(row[key], kind):
                bad(f"claims[{i}] has an invalid {key!r}")
    for claim, figures in doc["series"].items():
        if not isinstance(figures, dict):
            bad(f"series[{claim!r}] is not an object")
        for name, spec in figures.items():
            safe_name(name, what=f"figure name in {source}:")
            if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list) or not all(
                    isinstance(spec.get(k), str) for k in ("xlabel", "ylabel")):
                bad(f"figure {name}: no xlabel, ylabel and layers")
            for layer in spec["layers"]:
                kind = layer.get("kind") if isinstance(layer, dict) else None
                arrays = _LAYER_ARRAYS.get(kind) if isinstance(kind, str) else None
                if (arrays is None or not isinstance(layer.get("label"), str)
                        or not isinstance(layer.get("style", "-"), str)):
                    bad(f"figure {name}: a layer of unknown kind, or a label or style that is "
                        f"not text")
                if not all(_is_numbers(layer.get(k)) for k in arrays) or len(
                        {len(layer[k]) if isinstance(layer[k], list) else -1 for k in arrays}) != 1:
                    bad(f"figure {name}: a {layer['kind']} layer whose {', '.join(arrays)} are "
                        f"not numbers of one length")
    return doc


def _plot_saved(payload, out_dir, source):
    """plot_validation for a payload read from a file: a figure matplotlib refuses (a label it
    cannot parse, a line style it does not know) is the file's fault, one line naming it."""
    from discosim.plotting.figures import plot_validation

    try:
        return plot_validation(payload, out_dir)
    except ValueError as exc:
        raise InputError(f"{source}: a figure cannot be drawn ({exc})") from None


# ------------------------------------------------------------------ README generation
MARKERS = {"claims": ("<!-- claims:start -->", "<!-- claims:end -->"),
           "figures": ("<!-- figures:start -->", "<!-- figures:end -->"),
           "familywise": ("<!-- familywise:start -->", "<!-- familywise:end -->")}


def familywise_block(root):
    """The README's sentence on the measured family-wise rate, from the seed study's
    ``root/figures/familywise/familywise.json`` (``studies/familywise.py``), or what to run."""
    fw = familywise_summary(os.path.join(root, "figures"))
    if fw is None:
        return ("The seed study has not been run in this checkout: `python studies/familywise.py "
                "--jobs 16` writes `figures/familywise/` (then regenerate this block with "
                "`discosim report readme README.md`).")
    return (f"Measured by the seed study (`studies/familywise.py`, "
            f"`figures/familywise/familywise.json`): {fw}.")


def readme_blocks(root=None):
    """``{"claims": markdown, "figures": markdown, "familywise": markdown}``: generated from the
    claim registry, and from the seed study's file under ``root`` (the README's folder; default
    the working directory)."""
    from discosim.validation import CLAIMS

    claims = ["| claim | THEORY | what is checked |", "|---|---|---|"]
    claims += [f"| `{c.name}` | {c.section} | {c.summary.replace('|', chr(92) + '|')} |" for c in CLAIMS]
    figs = []
    for c in CLAIMS:
        for name, caption in c.figures:
            figs.append(f"- `figures/{name}.png` ({c.name}): {caption}")
    return {"claims": "\n".join(claims), "figures": "\n".join(figs),
            "familywise": familywise_block(os.getcwd() if root is None else root)}


def update_readme(path, check=False):
    """Rewrite the generated blocks of the README at ``path``; with ``check``, only compare.

    Returns True iff the file already matched the registry.
    """
    with open(path) as fh:
        text = fh.read()
    new = text
    for key, body in readme_blocks(os.path.dirname(os.path.abspath(path))).items():
        start, end = MARKERS[key]
        i, j = new.find(start), new.find(end)
        if i < 0 or j < i:
            raise InputError(f"{path} lacks the markers {start} ... {end}")
        new = new[:i + len(start)] + "\n" + body + "\n" + new[j:]
    if not check and new != text:
        write_atomic(path, new)
    return new == text


def main(argv=None):
    """``python -m discosim.validation.report --readme README.md [--check]`` or ``--merge A B
    --out DIR [--reference REF]``; the error boundary of ``discosim`` (one line, exit 2)."""
    from discosim._core.cli import ArgumentParser, HelpFormatter, run_guarded

    p = ArgumentParser(prog="python -m discosim.validation.report", formatter_class=HelpFormatter,
                       description="regenerate the README blocks from the claim registry, or "
                                   "merge validate.json files of one split run (the same as "
                                   "`discosim report merge`)")
    p.add_argument("--readme", metavar="README", help="README.md to rewrite")
    p.add_argument("--check", action="store_true", help="only check; exit 1 if out of date")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="validate.json files to merge")
    p.add_argument("--out", metavar="DIR",
                   help="directory for the merged validate.json, REPORT.md and figures")
    p.add_argument("--reference", metavar="JSON",
                   help="validate.json whose resolutions REPORT.md shows beside")
    return run_guarded(_main, p, argv)


def _main(parser, argv):
    args = parser.parse_args(argv)
    if args.merge:
        if not args.out:
            raise InputError("--merge needs --out")
        payload = merge_validations(args.merge, args.out, args.reference)
        return 0 if payload["all_passed"] else 1
    if not args.readme:
        raise InputError("give --readme or --merge")
    same = update_readme(args.readme, check=args.check)
    return 1 if (args.check and not same) else 0


if __name__ == "__main__":
    raise SystemExit(main())
