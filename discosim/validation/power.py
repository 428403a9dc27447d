"""The power of each validation row, measured by simulating its own statistic (issue 23).

For every :class:`~discosim.validation.rules.Row`, ``power_low`` and ``power_high`` are the
smallest deviations of the truth below / above the prediction that the row's own rule
(:func:`~discosim.validation.rules.accepts`: its band, its sides) detects in at least 95% of
re-simulated measurements, in the row's resolution units: relative (the truth is
``predicted * (1 + delta)``) or absolute (``predicted + delta``); low is ``delta < 0``, high
``delta > 0`` (for a relative row with a negative prediction, low is toward zero).

How a measurement is re-simulated (``power_method``):

- ``"simulated: <what>"``: the row's ``draw(rng, delta, size)``, the row's statistic re-simulated
  at its own sample size when the truth is off by ``delta`` (e.g. binomial counts, a refit);
  ``<what>`` is the first line of the draw's docstring (give it one). A draw raises
  ``ValueError`` for a truth it cannot simulate (a probability above 1): that side is ``inf``
  if 95% detection was not reached before it. A draw
  may return ``(measured, stderr)`` when the rule's standard error is recomputed per draw (a
  fit's); otherwise every draw is judged with the row's own ``stderr``.
- ``"normal model"``: no ``draw``; the measurement is normal about the truth with the row's
  ``stderr``. Its power is ``band + (Z_VERDICT + Z_POWER) SE`` up to simulation error (the
  analytic ``resolution``), which a test checks.

The search: :data:`N_DRAWS` (10,000) draws from one fixed stream per row (common random numbers: every
``delta`` judges the same underlying draws, so the detected fraction is monotone in ``delta``
for a location family and the bisection is stable), a bracket from the analytic resolution
doubled or halved, then bisection to 0.2% of ``delta``. The value reported is the bracket's
upper end: detected at >= 95% in the draws. Seeded from the run's seed, the claim and the
row's quantity: the same seed gives the same numbers.

Sides that cannot be detected: the far side of a one-sided rule (a measurement below an upper
bound is no violation) is ``inf``; so is a side where the truth leaves the quantity's range
(a relative deviation below -100%, a draw that refuses the truth) before 95% detection. An
exact row (``sides == 0``: an identity counted without sampling error) has its exact
resolution on both sides. A row without a finite standard error (and no draw) is not measured
(NaN, ``null`` in JSON).
"""

import math
import zlib
from dataclasses import replace

import numpy as np

from discosim._core.runtime import derive_seed
from discosim._core.seeding import as_seed_sequence
from discosim.validation.rules import Z_POWER, Z_VERDICT, accepts

__all__ = ["TARGET", "N_DRAWS", "detection_rate", "side_power", "row_power", "with_power",
           "POWER_TAG"]

TARGET = 0.95  # detection frequency that defines the power
# binomial SE of the detected fraction at 95%: 0.0022, so the 95% point is found to 0.02 SE
# (0.4% of a plain row's power); a planted check of 4000 fresh draws then sees 95% +- 0.4%
N_DRAWS = 10_000
POWER_TAG = 23  # the first tag of the power streams (issue 23)
_REL_TOL = 2e-3  # bisection stops at this relative width of the bracket
_MAX_DOUBLINGS = 40


def row_stream(row, seed, index=0):
    """The SeedSequence of ``row``'s power draws: ``(POWER_TAG, crc32(claim/quantity), index)``
    under the run's seed.

    Parameters
    ----------
    row : Row
        The validation row; its ``claim`` and ``quantity`` name the stream.
    seed : int, SeedSequence or None
        The run's seed.
    index : int, optional
        The row's place among its claim's rows, in ``[0, 2**32)``.

    Returns
    -------
    numpy.random.SeedSequence
        The stream's seed sequence: the same arguments give the same draws.

    Raises
    ------
    InputError
        ``index`` is outside ``[0, 2**32)``.

    Examples
    --------
    >>> from discosim.validation.rules import close_to
    >>> row = close_to("c", "§5", "q", 1.0, 1.0, 0.01)
    >>> row_stream(row, seed=0, index=1).spawn_key == (POWER_TAG, zlib.crc32(b"c\\0q"), 1)
    True
    >>> a, b = (row_stream(row, 0, i).generate_state(2).tolist() for i in (1, 2))
    >>> a == row_stream(row, 0, 1).generate_state(2).tolist(), a == b
    (True, False)
    """
    key = zlib.crc32(f"{row.claim}\0{row.quantity}".encode())
    return derive_seed(as_seed_sequence(seed), POWER_TAG, key, int(index))


def _scale(row):
    """Deviation of the truth per unit of ``delta`` (|predicted| for relative rows)."""
    return abs(row.predicted) if row.resolution_kind == "relative" else 1.0


def _normal_draw(row):
    se, scale = row.stderr, _scale(row)
    sign = math.copysign(1.0, row.predicted) if row.resolution_kind == "relative" else 1.0

    def draw(rng, delta, size):
        return row.predicted + sign * scale * delta + se * rng.standard_normal(size)
    return draw


def detection_rate(row, delta, draw=None, n=N_DRAWS, seed=0):
    """Fraction of ``n`` re-simulated measurements at deviation ``delta`` that the row's rule
    fails.

    Parameters
    ----------
    row : Row
        The validation row whose rule judges the draws (:func:`~discosim.validation.rules.accepts`).
    delta : float
        Deviation of the truth from the prediction, in the row's resolution units (relative or
        absolute, see the module notes).
    draw : callable, optional
        ``draw(rng, delta, size)`` returning ``size`` measurements, or ``(measured, stderr)``;
        default the row's own ``draw``, else the normal model with the row's ``stderr``.
    n : int, optional
        Number of re-simulated measurements.
    seed : int, SeedSequence or Generator, optional
        Seed of the draws (:func:`numpy.random.default_rng`'s argument).

    Returns
    -------
    float
        The detected fraction, in [0, 1].

    Raises
    ------
    ValueError
        Raised by the draw for a truth it cannot simulate (a probability above 1).
    TypeError
        The draw returned a number of measurements other than ``n`` (a bug of the draw).

    Examples
    --------
    >>> from discosim.validation.rules import close_to
    >>> row = close_to("c", "§5", "q", 1.0, 1.0, 0.01)
    >>> detection_rate(row, 0.0) < 0.01, detection_rate(row, 0.1) == 1.0
    (True, True)
    """
    draw = draw or row.draw or _normal_draw(row)
    rng = np.random.default_rng(seed)
    out = draw(rng, float(delta), int(n))
    if isinstance(out, tuple):
        m, se = out
        ok = accepts(row, m, se)
    else:
        ok = accepts(row, out)
    if np.shape(ok) != (int(n),):
        # a bug of the draw, not a truth it refuses (ValueError): never read as "not detected"
        raise TypeError(f"{row.claim}: {row.quantity}: draw returned shape {np.shape(ok)}, "
                         f"not ({int(n)},)")
    return float(1.0 - np.mean(ok))


def _guess(row, side):
    band = row.band if (row.band_high if side > 0 else row.band_low) is None else \
        (row.band_high if side > 0 else row.band_low)
    g = (band + (Z_VERDICT + Z_POWER) * row.stderr) / _scale(row) if _scale(row) else math.inf
    return g if math.isfinite(g) and g > 0 else 1e-3


def side_power(row, side, draw=None, n=N_DRAWS, seed=0, target=TARGET):
    """Smallest ``delta >= 0`` with detection rate >= ``target`` at ``side * delta``.

    Parameters
    ----------
    row : Row
        The validation row.
    side : {-1, +1}
        -1: the truth below the prediction; +1: above.
    draw : callable, optional
        As for :func:`detection_rate`.
    n : int, optional
        Draws per evaluated ``delta`` (the same stream at every ``delta``: common random numbers).
    seed : int, SeedSequence or Generator, optional
        Seed of the draws.
    target : float, optional
        The detection frequency that defines the power (:data:`TARGET`).

    Returns
    -------
    float
        The upper end of the final bisection bracket (detected at >= ``target``), within
        ``0.2%`` of the smallest such ``delta``; ``inf`` where none is reached (the truth leaves
        the quantity's range, or a draw refuses it, first), 0.0 where any deviation is detected.

    Raises
    ------
    TypeError
        The draw returned the wrong number of measurements (:func:`detection_rate`).

    Examples
    --------
    >>> from discosim.validation.rules import Z_POWER, Z_VERDICT, close_to
    >>> row = close_to("c", "§5", "slope", 2.0, 2.0, 0.01, relative=False)
    >>> round(side_power(row, +1, seed=1) / ((Z_VERDICT + Z_POWER) * 0.01), 1)
    1.0
    """
    cap = 1.0 if (side < 0 and row.resolution_kind == "relative") else math.inf

    def rate(x):
        try:
            return detection_rate(row, side * x, draw, n, seed)
        except ValueError:  # the draw refuses this truth (a probability above 1)
            return None

    lo, hi = 0.0, min(_guess(row, side), cap)
    r = rate(hi)
    for _ in range(_MAX_DOUBLINGS):
        if r is None:
            return math.inf
        if r >= target:
            break
        if hi >= cap:
            return math.inf
        lo, hi = hi, min(2 * hi, cap)
        r = rate(hi)
    else:
        return math.inf
    if lo == 0.0:  # detected at the guess already: halve down to a miss
        for _ in range(_MAX_DOUBLINGS):
            r = rate(hi / 2)
            if r is None or r < target:
                lo = hi / 2
                break
            hi /= 2
        else:
            return 0.0  # any deviation fails (no error, no band: an identity)
    while hi - lo > _REL_TOL * hi:
        mid = 0.5 * (lo + hi)
        r = rate(mid)
        if r is not None and r >= target:
            hi = mid
        else:
            lo = mid
    return hi


def row_power(row, seed=0, index=0, n=N_DRAWS):
    """``(power_low, power_high, power_method)`` of ``row`` (see the module notes).

    Parameters
    ----------
    row : Row
        The validation row.
    seed : int, SeedSequence or None, optional
        The run's seed (the row's stream is :func:`row_stream` of it).
    index : int, optional
        The row's place among its claim's rows.
    n : int, optional
        Draws per evaluated deviation.

    Returns
    -------
    power_low, power_high : float
        Smallest detected deviations below / above the prediction (:func:`side_power`): ``inf``
        on the far side of a bound, the exact resolution for an exact row, NaN for a row with no
        finite standard error and no draw.
    power_method : str
        How the measurements were re-simulated (``"normal model"``, ``"simulated: ..."``,
        ``"exact: ..."``, ``"not measured: ..."``), with the one-sided note where it applies.

    Raises
    ------
    InputError
        ``index`` is outside ``[0, 2**32)``.
    TypeError
        The row's draw returned the wrong number of measurements.

    Examples
    --------
    >>> from discosim.validation.rules import at_most, close_to
    >>> lo, hi, how = row_power(close_to("c", "§5", "q", 1.0, 1.0, 0.01))
    >>> round(lo, 2), round(hi, 2), how          # the analytic (4 + 1.645) SE = 0.056
    (0.06, 0.06, 'normal model')
    >>> row_power(at_most("c", "§6", "q", 1.0, 1.0, 0.01))[0]
    inf
    """
    if row.sides == 0 and row.draw is None:
        return (row.resolution, row.resolution,
                "exact: no sampling error; the exact resolution on both sides")
    if row.draw is None and not (math.isfinite(row.stderr) and row.stderr >= 0):
        return math.nan, math.nan, "not measured: the row has no finite standard error"
    ss = row_stream(row, seed, index)
    what = getattr(row.draw, "__doc__", None) if row.draw is not None else None
    method = ("simulated: " + (what.strip().splitlines()[0] if what else "the row's draw")
              if row.draw is not None else "normal model")
    out = []
    for side, far in ((-1, "upper"), (+1, "lower")):
        if row.bound == far:
            out.append(math.inf)  # a deviation toward the far side of a bound is no violation
            continue
        out.append(side_power(row, side, n=n, seed=ss))
    if row.bound:
        method += (f"; one-sided ({row.bound} bound): the "
                   f"{'low' if row.bound == 'upper' else 'high'} side is no violation (inf)")
    return out[0], out[1], method


def with_power(rows, seed):
    """``rows`` (a claim's, in order) with ``power_low``, ``power_high``, ``power_method`` set.

    Parameters
    ----------
    rows : sequence of Row
        One claim's rows, in their order (the order seeds each row's draws).
    seed : int
        The run's seed.

    Returns
    -------
    tuple of Row
        Copies of the rows with their measured power (:func:`row_power`).

    Examples
    --------
    >>> from discosim.validation.rules import close_to
    >>> row, = with_power([close_to("c", "§5", "q", 1.0, 1.0, 0.01)], seed=0)
    >>> round(row.power_low, 2), round(row.power_high, 2), row.power_method
    (0.06, 0.06, 'normal model')
    """
    return tuple(replace(r, **dict(zip(("power_low", "power_high", "power_method"),
                                       row_power(r, seed, i))))
                 for i, r in enumerate(rows))
