"""Rows, rules and the registry behind ``discosim validate`` (THEORY §8).

A claim is a pure function ``func(ctx) -> ClaimOutput``: it measures, judges each measured
quantity with one of the rules below and returns its rows with the series its figures are drawn
from. Nothing is kept between calls.

Rules and their resolution
--------------------------
- :func:`close_to` (two-sided): PASS iff ``|m - p| <= Z_VERDICT * SE + band``; with an
  asymmetric band (``band_low=``, ``band_high=``: a next-order term of known sign excuses a
  deviation on its own side only) PASS iff ``-(Z_VERDICT * SE + band_low) <= m - p <=
  Z_VERDICT * SE + band_high``.
- :func:`at_most` / :func:`at_least` (one-sided): PASS iff ``m <= p + Z_VERDICT * SE + band``
  (resp. ``m >= p - Z_VERDICT * SE - band``).

The *resolution* of a row is the smallest deviation of the checked quantity from the prediction
that its rule detects with probability >= 95% (normal errors): ``band + (Z_VERDICT + Z_POWER) SE``
(``Z_POWER`` = the one-sided 95% quantile; the far side of a two-sided rule adds less than
``Phi(-7.6)``). It is relative (divided by ``|p|``) for constants and probabilities and absolute
for exponents and slopes. A band wider than ``Z_VERDICT`` standard errors must name the
next-order term that justifies it, with its size.

False alarms: a correct row fails with probability ``2 Phi(-Z_VERDICT)`` (two-sided) or
``Phi(-Z_VERDICT)`` (one-sided), so a table of n two-sided rows fails somewhere with probability
``1 - (1 - 2 Phi(-4))^n`` (:func:`family_false_alarm`). Rows marked ``derived`` (they follow
from another row and carry no power of their own) are shown but left out of the count.

Measured power
--------------
:func:`accepts` is each row's rule as a function of its measurement (vectorised): what
:mod:`discosim.validation.power` applies to re-simulated measurements to find ``power_low`` and
``power_high``, the deviations below / above the prediction detected in 95% of draws.
"""

import math
from dataclasses import dataclass, field, asdict, replace

from discosim._core.errors import InputError

__all__ = ["Z_VERDICT", "Z_POWER", "Row", "close_to", "at_most", "at_least", "accepts", "Context",
           "ClaimOutput", "Claim", "claim", "CLAIMS", "run_claims", "family_false_alarm", "counted",
           "figure", "points", "curve", "band_layer", "vline", "claim_names"]

Z_VERDICT = 4.0  # a correct row fails with probability 2 Phi(-4) = 6.3e-5
Z_POWER = 1.645  # one-sided 95% normal quantile: detection power of the resolution


def _phi_tail(z):
    """Phi(-z), the upper normal tail."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True)
class Row:
    """One row of the validation table: a prediction, a measurement and the rule that judges it.

    ``resolution`` is the smallest deviation from ``predicted`` the rule detects with >= 95% power
    (``resolution_kind`` "relative": as a fraction of ``|predicted|``; "absolute": in the units of
    the quantity). ``sides`` is 2 for two-sided rules, 1 for bounds, 0 for exact identities
    (no sampling error, so no false alarms).
    """

    claim: str
    section: str
    quantity: str
    predicted: float
    measured: float
    stderr: float
    rule: str
    resolution: float
    resolution_kind: str
    passed: bool
    band: float = 0.0
    band_reason: str = None
    data: dict = field(default_factory=dict)
    sides: int = 2
    # issue 23: a row that follows from another carries no power of its own; it is reported
    # with ``derived`` naming the row it follows from and left out of the count and the
    # family-wise rate
    derived: str = None
    # the detected deviation below / above the prediction with 95% power, measured by
    # simulating the row's statistic (``draw``); filled in by validation.power
    power_low: float = None
    power_high: float = None
    power_method: str = None
    # asymmetric band (close_to's band_low / band_high); None: ``band`` on that side
    band_low: float = None
    band_high: float = None
    # "upper" (at_most: ``predicted`` bounds from above), "lower" (at_least), None (two-sided)
    bound: str = None
    # ``draw(rng, delta, size) -> ndarray (size,)``: the row's ``measured`` statistic re-simulated
    # at the row's sample size when the truth deviates from ``predicted`` by ``delta`` (relative
    # for relative rows, absolute otherwise); None: a normal model with ``stderr``. Not saved.
    draw: object = field(default=None, repr=False, compare=False)

    @property
    def ci_low(self):
        return self.measured - 1.96 * self.stderr

    @property
    def ci_high(self):
        return self.measured + 1.96 * self.stderr

    @property
    def verdict(self):
        return "PASS" if self.passed else "FAIL"

    def to_dict(self):
        d = asdict(self)
        d.pop("draw")
        d.update(ci_low=self.ci_low, ci_high=self.ci_high, verdict=self.verdict)
        return d


def _resolution(predicted, stderr, band, relative):
    res = band + (Z_VERDICT + Z_POWER) * stderr
    if relative:
        return res / abs(predicted) if predicted else math.inf
    return res


def _check_band(band, stderr, band_reason):
    if band < 0 or not math.isfinite(band):
        raise InputError(f"band must be finite and >= 0, got {band!r}")
    if band > Z_VERDICT * stderr and not band_reason:
        raise AssertionError(f"a band of {band:.3g} > {Z_VERDICT:g} SE = {Z_VERDICT * stderr:.3g} "
                             "must name the next-order term that justifies it (band_reason)")


def _fmt(x):
    return f"{x:.3g}"


def _row(claim, section, quantity, predicted, measured, stderr, rule, relative, ok, band,
         band_reason, data, sides, derived, draw, band_low=None, band_high=None, bound=None):
    worst = max(band if band_low is None else band_low, band if band_high is None else band_high)
    return Row(claim, section, quantity, predicted, measured, stderr, rule,
               _resolution(predicted, stderr, worst, relative),
               "relative" if relative else "absolute", bool(ok), band, band_reason, dict(data),
               sides, derived=derived, draw=draw, band_low=band_low, band_high=band_high,
               bound=bound)


def close_to(claim, section, quantity, predicted, measured, stderr, *, relative=True, band=0.0,
             band_reason=None, draw=None, derived=None, band_low=None, band_high=None, **data):
    """Two-sided row: PASS iff ``|measured - predicted| <= Z_VERDICT * stderr + band``.

    ``band_low`` / ``band_high`` (instead of ``band``): an asymmetric band, for a next-order
    term of known sign: PASS iff ``-(Z SE + band_low) <= measured - predicted <= Z SE +
    band_high`` (e.g. ``band_high=b, band_low=0`` when the neglected term can only raise the
    measurement). The row's ``resolution`` is that of its wider side.

    Examples
    --------
    >>> from discosim.validation.rules import close_to
    >>> close_to("c", "§5", "q", 1.0, 1.05, 0.01).passed
    False
    >>> row = close_to("c", "§5", "q", 1.0, 1.05, 0.01, band_low=0.0, band_high=0.02,
    ...                band_reason="a positive eps^2 term, 2%")
    >>> row.passed, close_to("c", "§5", "q", 1.0, 0.95, 0.01, band_low=0.0, band_high=0.02,
    ...                      band_reason="a positive eps^2 term, 2%").passed
    (True, False)
    """
    predicted, measured, stderr, band = map(float, (predicted, measured, stderr, band))
    if band_low is not None or band_high is not None:
        if band:
            raise InputError("give band (symmetric) or band_low/band_high, not both")
        band_low, band_high = float(band_low or 0.0), float(band_high or 0.0)
        for b in (band_low, band_high):
            _check_band(b, stderr, band_reason)
        band = max(band_low, band_high)
        ok = math.isfinite(measured) and math.isfinite(stderr) and \
            -(Z_VERDICT * stderr + band_low) <= measured - predicted <= Z_VERDICT * stderr + band_high
        rule = (f"-({Z_VERDICT:g} SE + {_fmt(band_low)}) <= meas - pred <= {Z_VERDICT:g} SE + "
                f"{_fmt(band_high)}" + (f" ({band_reason})" if band_reason else ""))
        return _row(claim, section, quantity, predicted, measured, stderr, rule, relative, ok,
                    band, band_reason, data, 2, derived, draw, band_low, band_high)
    _check_band(band, stderr, band_reason)
    ok = math.isfinite(measured) and math.isfinite(stderr) and \
        abs(measured - predicted) <= Z_VERDICT * stderr + band
    rule = f"|meas - pred| <= {Z_VERDICT:g} SE" + (f" + {_fmt(band)} ({band_reason})" if band else "")
    return _row(claim, section, quantity, predicted, measured, stderr, rule, relative, ok, band,
                band_reason, data, 2, derived, draw)


def at_most(claim, section, quantity, predicted, measured, stderr, *, relative=True, band=0.0,
            band_reason=None, draw=None, derived=None, **data):
    """One-sided row (``predicted`` is an upper bound): PASS iff ``m <= p + Z SE + band``."""
    predicted, measured, stderr, band = map(float, (predicted, measured, stderr, band))
    _check_band(band, stderr, band_reason)
    ok = math.isfinite(measured) and measured <= predicted + Z_VERDICT * stderr + band
    rule = f"meas <= bound + {Z_VERDICT:g} SE" + (f" + {_fmt(band)} ({band_reason})" if band else "")
    return _row(claim, section, quantity, predicted, measured, stderr, rule, relative, ok, band,
                band_reason, data, 1, derived, draw, bound="upper")


def at_least(claim, section, quantity, predicted, measured, stderr, *, relative=True, band=0.0,
             band_reason=None, draw=None, derived=None, **data):
    """One-sided row (``predicted`` is a lower bound): PASS iff ``m >= p - Z SE - band``."""
    predicted, measured, stderr, band = map(float, (predicted, measured, stderr, band))
    _check_band(band, stderr, band_reason)
    ok = math.isfinite(measured) and measured >= predicted - Z_VERDICT * stderr - band
    rule = f"meas >= bound - {Z_VERDICT:g} SE" + (f" - {_fmt(band)} ({band_reason})" if band else "")
    return _row(claim, section, quantity, predicted, measured, stderr, rule, relative, ok, band,
                band_reason, data, 1, derived, draw, bound="lower")


def accepts(row, measured, stderr=None):
    """The row's rule applied to other measurements: a bool array, True where it would PASS.

    ``measured`` (array) are re-simulated values of the row's statistic; ``stderr`` their
    standard errors (array or scalar; default the row's own). Rows are judged exactly as their
    builder judged ``row.measured``: the two-sided window ``-(Z SE + band_low) <= m - p <= Z SE
    + band_high``, open on the far side of a bound (:func:`at_most`, :func:`at_least`); a
    non-finite measurement fails. (A claim that adds a condition of its own to ``passed`` (a
    fit's chi^2) is judged here on its rule alone.)

    Examples
    --------
    >>> import numpy as np
    >>> from discosim.validation.rules import accepts, at_most, close_to
    >>> accepts(close_to("c", "§5", "q", 1.0, 1.0, 0.01), np.array([0.95, 1.03, 1.05])).tolist()
    [False, True, False]
    >>> accepts(at_most("c", "§6", "q", 1.0, 1.0, 0.01), np.array([0.5, 1.05])).tolist()
    [True, False]
    """
    import numpy as np

    m = np.asarray(measured, dtype=float)
    se = np.asarray(row.stderr if stderr is None else stderr, dtype=float)
    band_low = row.band if row.band_low is None else row.band_low
    band_high = row.band if row.band_high is None else row.band_high
    dev = m - row.predicted
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(m) & np.isfinite(se)
        if row.bound != "upper":
            ok &= dev >= -(Z_VERDICT * se + band_low)
        if row.bound != "lower":
            ok &= dev <= Z_VERDICT * se + band_high
    return ok


def family_false_alarm(rows):
    """Probability that a table of correct rows shows at least one FAIL (predicted, assuming
    independent rows with normal errors; the seed study ``studies/familywise.py`` measures it).

    ``1 - prod (1 - sides * Phi(-Z_VERDICT))``: ``1 - (1 - 2 Phi(-4))^n`` for n two-sided rows.
    Rows (:class:`Row` or their dicts) marked ``derived`` are left out: they follow from a
    counted row.
    """
    p = _phi_tail(Z_VERDICT)
    log_keep = sum(math.log1p(-_get(r, "sides", 2) * p) for r in rows if not _get(r, "derived"))
    return -math.expm1(log_keep)


def _get(row, key, default=None):
    """A field of a Row or of its dict (a saved validate.json row)."""
    return row.get(key, default) if isinstance(row, dict) else getattr(row, key, default)


def counted(rows):
    """The rows that count (pass count, ``n_rows``, family-wise rate): all but ``derived`` ones."""
    return [r for r in rows if not _get(r, "derived")]


@dataclass(frozen=True)
class Context:
    """Settings every claim reads: sample scale, seed, workers, device, quick mode.

    ``seed`` is the run's; :func:`run_claims` hands each claim its own (``claim_seed``).
    """

    scale: float = 1.0
    seed: int = 20260623
    n_jobs: int = 1
    device: str = "cpu"
    quick: bool = False
    device_scale: float = 1.0

    def samples(self, n, floor=1000):
        """``n * scale`` samples, at least ``floor``."""
        return max(int(floor), int(round(n * self.scale)))

    def device_samples(self, n, floor=1000):
        """Samples for an estimator call that runs on ``device``: ``device_scale`` times
        :meth:`samples` off the CPU. Only calls that do run there take it (the uniform volume
        sampler): a CPU-bound claim given 100x the samples would run for hours."""
        gain = self.device_scale if self.device != "cpu" else 1.0
        return max(int(floor), int(round(n * self.scale * gain)))

    def estimator_kwargs(self):
        """Keyword arguments for the estimators: ``n_jobs``, and ``device`` off the CPU."""
        kw = {"n_jobs": self.n_jobs}
        if self.device != "cpu":
            kw["device"] = self.device
        return kw


@dataclass(frozen=True)
class ClaimOutput:
    """What a claim returns: its rows (tuple of :class:`Row`) and its figure series.

    ``series`` maps a figure name to a figure spec (see :func:`figure`); :mod:`discosim.plotting.figures`
    draws every figure from these specs alone.
    """

    rows: tuple
    series: dict = field(default_factory=dict)

    def to_dict(self):
        return {"rows": [r.to_dict() for r in self.rows], "series": self.series}


@dataclass(frozen=True)
class Claim:
    """A registered claim: name, THEORY section, one-line summary, ``func(ctx) -> ClaimOutput``.

    ``figures`` maps the names of the figures the claim draws to their captions (README list).
    """

    name: str
    section: str
    summary: str
    func: object
    figures: tuple = ()


CLAIMS = []


def claim(name, section, summary, figures=None):
    """Register ``func(ctx) -> ClaimOutput`` as a claim (registration order = report order).

    ``figures``: optional ``{figure name: caption}`` of the series it returns.
    """
    def deco(func):
        if any(c.name == name for c in CLAIMS):
            raise ValueError(f"claim {name!r} registered twice")
        CLAIMS.append(Claim(name, section, summary, func, tuple((figures or {}).items())))
        return func
    return deco


def claim_names():
    return [c.name for c in CLAIMS]


def _select(names):
    if names is None:
        return list(CLAIMS)
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    names = [n.strip() for n in names]
    known = claim_names()
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise InputError(f"claims: unknown claim {', '.join(bad) or '(none given)'}; "
                         f"known: {', '.join(known)}")
    return [c for c in CLAIMS if c.name in names]


def run_claims(names=None, ctx=None, progress=None):
    """Run the registered claims (all, or those named) and return ``{name: ClaimOutput}``.

    Each claim runs under its own seed, :func:`discosim._core.seeding.claim_seed` of ``ctx.seed``
    and its name (the same whether it runs alone or with others). The rows' measured power
    (``power_low``, ``power_high``, ``power_method``) is added by
    :func:`discosim.validation.power.with_power`, which ``discosim validate``
    (:func:`discosim.validation.report.run_validation`) applies to every claim's rows.
    """
    from discosim._core.runtime import _progress_bar
    from discosim._core.seeding import claim_seed

    ctx = Context() if ctx is None else ctx
    selected = _select(names)
    out = {}
    bar = _progress_bar(len(selected), "validate", progress)
    try:
        for c in selected:
            if bar is not None:
                bar.set_postfix_str(c.name)
            # each claim under its own seed, keyed by its name: no two claims draw one stream
            res = c.func(replace(ctx, seed=claim_seed(ctx.seed, c.name)))
            if not isinstance(res, ClaimOutput):
                raise TypeError(f"claim {c.name} returned {type(res).__name__}, not ClaimOutput")
            out[c.name] = res
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


# ------------------------------------------------------------------ figure specs (plain data)
def _list(a):
    import numpy as np

    return [float(v) if v is not None else None for v in np.asarray(a, dtype=float).ravel()]


def points(x, y, se, label, group=None):
    """Measured points with standard errors (drawn with 95% error bars)."""
    return {"kind": "points", "x": _list(x), "y": _list(y), "se": _list(se), "label": label,
            "group": group}


def curve(x, y, label, group=None, style="-"):
    """A predicted curve; ``group`` gives it the colour of the points of the same group."""
    return {"kind": "curve", "x": _list(x), "y": _list(y), "label": label, "group": group,
            "style": style}


def band_layer(x, lo, hi, label):
    """A shaded region between two curves (bounds)."""
    return {"kind": "band", "x": _list(x), "lo": _list(lo), "hi": _list(hi), "label": label}


def vline(x, label):
    return {"kind": "vline", "x": float(x), "label": label}


def figure(title, xlabel, ylabel, layers, logx=True, logy=True):
    """A figure spec: plain JSON data that :func:`discosim.plotting.figures.plot_series` draws."""
    return {"title": title, "xlabel": xlabel, "ylabel": ylabel, "logx": bool(logx),
            "logy": bool(logy), "layers": list(layers)}
