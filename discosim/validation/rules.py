"""Rows, rules and the registry behind ``discosim validate`` (THEORY §8).

A claim is a pure function ``func(ctx) -> ClaimOutput``: it measures, judges each measured
quantity with one of the rules below and returns its rows with the series its figures are drawn
from. Nothing is kept between calls.

Rules and their resolution
--------------------------
- :func:`close_to` (two-sided): PASS iff ``|m - p| <= Z_VERDICT * SE + band``.
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
``1 - (1 - 2 Phi(-4))^n`` (:func:`family_false_alarm`).
"""

import math
from dataclasses import dataclass, field, asdict

from discosim._core.errors import InputError

__all__ = ["Z_VERDICT", "Z_POWER", "Row", "close_to", "at_most", "at_least", "Context",
           "ClaimOutput", "Claim", "claim", "CLAIMS", "run_claims", "family_false_alarm",
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


def close_to(claim, section, quantity, predicted, measured, stderr, *, relative=True, band=0.0,
             band_reason=None, draw=None, derived=None, band_low=None, band_high=None, **data):
    """Two-sided row: PASS iff ``|measured - predicted| <= Z_VERDICT * stderr + band``.

    ``band_low`` / ``band_high`` (instead of ``band``): a band of known sign, applied on its own
    side only: PASS iff ``-(Z SE + band_low) <= measured - predicted <= Z SE + band_high``.
    """
    if band_low is not None or band_high is not None:
        if band:
            raise InputError("give band, or band_low / band_high, not both")
        lo, hi = float(band_low or 0.0), float(band_high or 0.0)
        for b in (lo, hi):
            _check_band(b, float(stderr), band_reason)
        predicted, measured, stderr = map(float, (predicted, measured, stderr))
        dev = measured - predicted
        ok = math.isfinite(measured) and math.isfinite(stderr) and \
            -(Z_VERDICT * stderr + lo) <= dev <= Z_VERDICT * stderr + hi
        rule = (f"-({Z_VERDICT:g} SE + {_fmt(lo)}) <= meas - pred <= {Z_VERDICT:g} SE + {_fmt(hi)}"
                + (f" ({band_reason})" if band_reason else ""))
        return Row(claim, section, quantity, predicted, measured, stderr, rule,
                   _resolution(predicted, stderr, max(lo, hi), relative),
                   "relative" if relative else "absolute", bool(ok), max(lo, hi), band_reason,
                   dict(data, band_low=lo, band_high=hi), 2, derived=derived, draw=draw)
    predicted, measured, stderr, band = map(float, (predicted, measured, stderr, band))
    _check_band(band, stderr, band_reason)
    ok = math.isfinite(measured) and math.isfinite(stderr) and \
        abs(measured - predicted) <= Z_VERDICT * stderr + band
    rule = f"|meas - pred| <= {Z_VERDICT:g} SE" + (f" + {_fmt(band)} ({band_reason})" if band else "")
    return Row(claim, section, quantity, predicted, measured, stderr, rule,
               _resolution(predicted, stderr, band, relative),
               "relative" if relative else "absolute", bool(ok), band, band_reason, dict(data), 2,
               derived=derived, draw=draw)


def at_most(claim, section, quantity, predicted, measured, stderr, *, relative=True, band=0.0,
            band_reason=None, draw=None, derived=None, **data):
    """One-sided row (``predicted`` is an upper bound): PASS iff ``m <= p + Z SE + band``."""
    predicted, measured, stderr, band = map(float, (predicted, measured, stderr, band))
    _check_band(band, stderr, band_reason)
    ok = math.isfinite(measured) and measured <= predicted + Z_VERDICT * stderr + band
    rule = f"meas <= bound + {Z_VERDICT:g} SE" + (f" + {_fmt(band)} ({band_reason})" if band else "")
    return Row(claim, section, quantity, predicted, measured, stderr, rule,
               _resolution(predicted, stderr, band, relative),
               "relative" if relative else "absolute", bool(ok), band, band_reason, dict(data), 1,
               derived=derived, draw=draw)


def at_least(claim, section, quantity, predicted, measured, stderr, *, relative=True, band=0.0,
             band_reason=None, draw=None, derived=None, **data):
    """One-sided row (``predicted`` is a lower bound): PASS iff ``m >= p - Z SE - band``."""
    predicted, measured, stderr, band = map(float, (predicted, measured, stderr, band))
    _check_band(band, stderr, band_reason)
    ok = math.isfinite(measured) and measured >= predicted - Z_VERDICT * stderr - band
    rule = f"meas >= bound - {Z_VERDICT:g} SE" + (f" - {_fmt(band)} ({band_reason})" if band else "")
    return Row(claim, section, quantity, predicted, measured, stderr, rule,
               _resolution(predicted, stderr, band, relative),
               "relative" if relative else "absolute", bool(ok), band, band_reason, dict(data), 1,
               derived=derived, draw=draw)


def family_false_alarm(rows):
    """Probability that a table of correct rows shows at least one FAIL.

    ``1 - prod (1 - sides * Phi(-Z_VERDICT))``: ``1 - (1 - 2 Phi(-4))^n`` for n two-sided rows.
    """
    p = _phi_tail(Z_VERDICT)
    log_keep = sum(math.log1p(-getattr(r, "sides", 2) * p) for r in rows)
    return -math.expm1(log_keep)


@dataclass(frozen=True)
class Context:
    """Settings every claim reads: sample scale, seed, workers, device, quick mode."""

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
    """Run the registered claims (all, or those named) and return ``{name: ClaimOutput}``."""
    from discosim._core.runtime import _progress_bar

    ctx = Context() if ctx is None else ctx
    selected = _select(names)
    out = {}
    bar = _progress_bar(len(selected), "validate", progress)
    try:
        for c in selected:
            if bar is not None:
                bar.set_postfix_str(c.name)
            res = c.func(ctx)
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
