"""The result type of every Monte Carlo estimate, and JSON encoding (THEORY §8).

An :class:`Estimate` carries its value, standard error, sample size, the seed entropy that
produced it and whether its error bar can be trusted. Proportions (indicator means) use the
Wilson score interval, which stays honest when there are few or no hits; means of general
weights use the normal interval.

Every result class of the package inherits :class:`ResultMixin`: ``to_dict()`` (plain JSON types,
whatever the class's own ``to_dict`` builds), ``to_rows()`` (a tidy table) and ``to_frame()``.
Rows have one shape per kind of quantity:

- a Monte Carlo estimate (:func:`estimate_row`): ``quantity``, its index columns (``eps``,
  ``order``, ``time``, ...), then the columns of :meth:`Estimate.to_dict` (``value``, ``stderr``,
  ``n_samples``, ``n_hits``, ``interval``, ``seed_entropy``, ``ci_low``, ``ci_high``,
  ``ci_level``, ``reliable``);
- any other measured or fitted number (:func:`value_row`): ``quantity``, index columns,
  ``value``, ``stderr`` (None when it has none);
- predictions of THEORY next to either: ``predicted`` (and ``predicted_stderr``, or named
  bounds such as ``lower_bound``), added to the same row.
"""

import functools
import json
import math
from dataclasses import dataclass, asdict, fields, is_dataclass
from typing import NamedTuple

from statistics import NormalDist

import numpy as np

__all__ = ["Estimate", "ConfidenceInterval", "ResultMixin", "tidy_rows", "estimate_row",
           "value_row", "proportion_estimate", "mean_estimate", "mean_and_stderr", "to_jsonable",
           "dumps", "MIN_RELIABLE_HITS"]

# Below this many nonzero samples the CLT behind a stderr is not to be trusted.
MIN_RELIABLE_HITS = 20


class ConfidenceInterval(NamedTuple):
    """A two-sided confidence interval ``(low, high)``: a plain pair that also has names.

    Returned by :meth:`Estimate.confidence_interval`; unpacks, indexes and compares like the
    tuple ``(low, high)`` and serialises as ``{"low": ..., "high": ...}``.

    Parameters
    ----------
    low : float
        Lower end of the interval.
    high : float
        Upper end of the interval.

    Examples
    --------
    >>> import discosim as ds
    >>> ci = ds.ConfidenceInterval(0.1, 0.3)
    >>> ci.low, ci.high
    (0.1, 0.3)
    >>> low, high = ci
    >>> ci == (0.1, 0.3)
    True
    """

    low: float
    high: float


def tidy_rows(doc, prefix=""):
    """Flatten a :meth:`ResultMixin.to_dict` document into one row of ``column -> scalar``.

    Nested dicts join their keys with ``.``; lists of scalars become ``key[i]``; a list of dicts
    (per order, per layer) becomes one row each, with the shared scalars repeated.
    """
    row, many = {}, []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            sub = tidy_rows(value, name + ".")
            if len(sub) == 1:
                row.update(sub[0])
            else:
                many.append(sub)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
            many.append([r for i, v in enumerate(value) for r in tidy_rows(v, name + ".")])
        elif isinstance(value, (list, tuple)):
            row.update({f"{name}[{i}]": v for i, v in enumerate(value)})
        else:
            row[name] = value
    if not many:
        return [row]
    return [dict(row, **r) for group in many for r in group]


class ResultMixin:
    """``to_dict()`` (plain JSON types: ``json.dumps`` accepts it), ``to_rows()`` (tidy rows) and
    ``to_frame()`` (a pandas DataFrame of those rows, when pandas is installed) for every result.

    A subclass's own ``to_dict`` may build numpy arrays, numpy scalars or nested results: it is
    wrapped so that what it returns goes through :func:`to_jsonable` (arrays become lists, numpy
    scalars Python ones, results their ``to_dict()``; NaN stays a float, as before, and
    :func:`dumps` writes it as ``null``). Rows (``to_rows``) hold None for NaN and inf.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("to_dict")
        if own is not None and not getattr(own, "_jsonable", False):
            @functools.wraps(own)
            def to_dict(self, *args, **kw):
                return to_jsonable(own(self, *args, **kw), finite=False)

            to_dict._jsonable = True
            cls.to_dict = to_dict

    def to_dict(self):
        doc = {f.name: getattr(self, f.name) for f in fields(self)} if is_dataclass(self) \
            else vars(self)
        return to_jsonable(doc, finite=False)

    def to_rows(self):
        """The result as a list of flat dicts, one per row of a tidy table."""
        return tidy_rows(to_jsonable(self.to_dict()))

    def to_frame(self):
        """The tidy rows as a ``pandas.DataFrame`` (pandas is optional: an ImportError names it)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("to_frame() needs pandas; use to_rows() for plain dicts") from e
        return pd.DataFrame(self.to_rows())


@dataclass(frozen=True)
class Estimate(ResultMixin):
    """A Monte Carlo estimate: value, standard error and how far its error bar can be trusted.

    Every estimator of discosim reports its numbers as Estimates (or as arrays with the same
    fields). THEORY §8: an error bar backed by fewer than ``MIN_RELIABLE_HITS`` (20) nonzero
    samples is flagged by ``reliable = False`` rather than printed as if it were fine.

    Parameters
    ----------
    value : float
        The estimate.
    stderr : float
        Its standard error.
    n_samples : int
        Number of samples behind it.
    n_hits : int
        Number of samples that contributed a nonzero term.
    interval : {"normal", "wilson"}
        The confidence interval: Wilson's for proportions, the normal one for means.
    seed_entropy : int or None
        Entropy of the SeedSequence that drew the samples.

    Attributes
    ----------
    reliable : bool
        ``n_hits >= 20``: enough nonzero samples for the standard error to mean something.
    relative_stderr : float
        ``stderr / |value|`` (inf for a zero value).

    See Also
    --------
    ConfidenceInterval : what :meth:`confidence_interval` returns.

    Examples
    --------
    A proportion (250 hits in 1000 samples) with its Wilson interval:

    >>> import discosim as ds
    >>> e = ds.Estimate(0.25, 0.0137, n_samples=1000, n_hits=250, interval="wilson")
    >>> e.reliable
    True
    >>> lo, hi = e.confidence_interval(0.95)
    >>> print(f"{lo:.4f} {hi:.4f}")
    0.2242 0.2778

    One hit is not enough to trust the error bar:

    >>> ds.Estimate(0.001, 0.001, n_samples=1000, n_hits=1, interval="wilson").reliable
    False
    """

    value: float
    stderr: float
    n_samples: int
    n_hits: int
    interval: str = "normal"
    seed_entropy: object = None

    @property
    def reliable(self):
        """False when too few samples hit for the error bar to mean anything."""
        return self.n_hits >= MIN_RELIABLE_HITS

    @property
    def relative_stderr(self):
        return self.stderr / abs(self.value) if self.value else math.inf

    def confidence_interval(self, level=0.95):
        """Two-sided interval at ``level``: Wilson for proportions, normal for means.

        Parameters
        ----------
        level : float
            Coverage, e.g. 0.95.

        Returns
        -------
        ConfidenceInterval
        """
        z = NormalDist().inv_cdf(0.5 + level / 2)
        if self.interval == "wilson":
            n, p = self.n_samples, self.value
            denom = 1 + z * z / n
            centre = (p + z * z / (2 * n)) / denom
            half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
            return ConfidenceInterval(max(0.0, centre - half), min(1.0, centre + half))
        return ConfidenceInterval(self.value - z * self.stderr, self.value + z * self.stderr)

    def to_dict(self, level=0.95):
        lo, hi = self.confidence_interval(level)
        d = asdict(self)
        d.update(ci_low=lo, ci_high=hi, ci_level=level, reliable=self.reliable)
        return d

    def to_rows(self):
        return [estimate_row("estimate", self)]


def estimate_row(quantity, estimate, **index):
    """The row of one Monte Carlo estimate: ``quantity``, ``index`` columns, then
    :meth:`Estimate.to_dict` (value, stderr, n_samples, n_hits, interval, seed_entropy, ci_low,
    ci_high, ci_level, reliable)."""
    return {"quantity": quantity, **to_jsonable(index), **estimate.to_dict()}


def value_row(quantity, value, stderr=None, **index):
    """The row of a measured or fitted number without an :class:`Estimate`: ``quantity``,
    ``index`` columns, ``value``, ``stderr``."""
    return to_jsonable({"quantity": quantity, **index, "value": value, "stderr": stderr})


def proportion_estimate(hits, n, seed_entropy=None):
    """Estimate of ``hits / n`` from an indicator count (binomial stderr)."""
    p = hits / n
    return Estimate(p, math.sqrt(p * (1 - p) / n), int(n), int(hits), "wilson", seed_entropy)


def mean_and_stderr(total, total_sq, n):
    """Sample mean and its standard error from a sum and a sum of squares over ``n`` samples.

    Works elementwise on arrays; uses the unbiased variance ``n/(n-1)`` correction.
    """
    mean = np.asarray(total, dtype=float) / n
    var = np.maximum(np.asarray(total_sq, dtype=float) / n - mean * mean, 0.0) * n / max(n - 1, 1)
    se = np.sqrt(var / n)
    if mean.ndim == 0:
        return float(mean), float(se)
    return mean, se


def mean_estimate(value, stderr, n, hits, seed_entropy=None):
    return Estimate(float(value), float(stderr), int(n), int(hits), "normal", seed_entropy)


def to_jsonable(obj, finite=True):
    """Convert results (dataclasses, numpy scalars/arrays, inf/nan) to plain JSON types.

    Non-finite floats become ``null`` so the output is strict JSON that any tool reads;
    ``finite=False`` keeps them as Python floats (what ``to_dict()`` returns: ``json.dumps``
    writes them as ``NaN``/``Infinity``, :func:`dumps` as ``null``).
    """
    if hasattr(obj, "to_dict"):
        return to_jsonable(obj.to_dict(), finite)
    if isinstance(obj, ConfidenceInterval):
        return obj._asdict()
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, finite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, finite) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), finite)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) or not finite else None
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj


def dumps(obj, **kw):
    """Strict JSON text of ``obj`` (see :func:`to_jsonable`)."""
    return json.dumps(to_jsonable(obj), allow_nan=False, **kw)
