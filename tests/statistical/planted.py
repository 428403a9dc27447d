"""Planted errors of exactly a row's stated power: the row's own rule must fail in >= 95% of draws.

Issue 23's test machinery for every judge of ``discosim validate``. Use it from any test
(``tests/conftest.py`` puts this folder on the path)::

    from planted import assert_planted_fails

    row = judge_something(..., draw=draw)           # the row as validate builds it
    assert_planted_fails(row)                       # both sides, at its measured power
    assert_planted_fails(row, draw=through_estimator)  # plant through the estimator instead
    assert_planted_fails(row, at={"high": row.resolution})  # plant a stated number

or, judging with the row builder itself (its whole verdict, extra conditions included)::

    from planted import assert_builder_fails

    def build(rng, delta):                          # one row, truth off by delta
        m = estimator(..., planted=delta, rng=rng)  # cheap: the rule's statistic
        return judge_something(..., m)
    assert_builder_fails(build, {"low": row.power_low, "high": row.power_high})

The row's own ``draw`` only checks the power search against the model it was measured with;
the check with teeth plants the error through the estimator or the formula (a ``draw=`` or a
``build`` of its own). To plant into the formula, scale it by ``(1 - delta)`` (relative rows) or
shift it by ``-delta`` (absolute): the truth then lies ``delta * |p|`` (``delta``) from the planted
prediction, the deviation the stated power refers to. (Not ``p / (1 + delta)``: its deviation is
``p delta / (1 + delta)``, a few percent short of the stated one, which matters at 95%.) A row's
``draw`` moves the truth, so its measurement scatters as it would at the moved truth; a formula
error leaves the scatter at the real truth. For a binomial the two differ by O(delta) in the SE
(about 1% of the power at a 4% deviation, enough to read 93-94% at the stated power): plant the
way the row's power was measured (``draw``: through the estimator), or state the power for
formula errors with a draw that keeps the scatter (the normal model does).

``draw(rng, delta, size) -> ndarray (size,)`` (or ``(measured, stderr)`` arrays) re-simulates
the row's ``measured`` statistic at its own sample size when the truth is off by ``delta``
(relative rows: ``predicted * (1 + delta)``; absolute rows: ``predicted + delta``): the
contract of :class:`discosim.validation.rules.Row`'s ``draw``. Draw the rule's statistic (a
binomial count, a refit of the fit's points), not a whole claim.

What is asserted, per side: among ``n`` draws with the error planted at exactly the stated
power (``power_low`` below, ``power_high`` above: :func:`discosim.validation.power.row_power`
when the row does not carry them), the number the rule fails is not significantly below 95%:
``P(Binomial(n, 0.95) <= failures) >= alpha`` (one-sided binomial test, default alpha 1e-4; at
n = 4000 it fails below about 93.7%: a statistic whose scatter is 30% above the row's SE reads
about 90% and fails; the power's own simulation error (0.2% in frequency) and the check's (0.34%)
leave a correct row failing it with probability about 1e-3). The planted draws use a stream independent of the one the
power was measured on. A side whose stated power is ``inf`` (the far side of a bound) is
skipped, unless asked for by name, which fails: no power is claimed there.
"""

import math

from scipy import stats

from discosim.validation.power import TARGET, detection_rate, row_power

__all__ = ["planted_failures", "assert_planted_fails", "assert_builder_fails", "PLANTED_SEED",
           "normal_draw", "binomial_draw"]

PLANTED_SEED = 0x91A7ED  # not the power streams' seed: the check uses fresh draws


def planted_failures(row, delta, draw=None, n=4000, seed=PLANTED_SEED):
    """Number of ``n`` draws at deviation ``delta`` that the row's own rule fails."""
    rate = detection_rate(row, delta, draw=draw, n=n, seed=seed)
    return int(round(rate * n))


def assert_planted_fails(row, sides=None, *, draw=None, at=None, n=4000, seed=PLANTED_SEED,
                         alpha=1e-4, target=TARGET):
    """Assert the row's rule fails in >= ``target`` of the draws planted at its stated power.

    Parameters
    ----------
    row : Row
        As the claim builds it; its ``draw`` is used unless ``draw`` is given.
    sides : iterable of {"low", "high"}, optional
        Default: both, skipping a side whose stated power is ``inf``.
    draw : callable, optional
        ``draw(rng, delta, size)``: plants the error through the estimator or the formula.
    at : dict, optional
        ``{"low": x, "high": y}``: plant these (positive) deviations instead of the row's
        ``power_low`` / ``power_high``.
    n, seed, alpha, target
        Draws, their seed, the binomial test's level, the detection frequency asserted.

    Returns
    -------
    dict
        ``{side: (planted delta, failure frequency)}`` of the sides checked.
    """
    low, high = row.power_low, row.power_high
    if low is None or high is None:
        low, high, _ = row_power(row)
    stated = {"low": low, "high": high}
    stated.update(at or {})
    explicit = sides is not None
    sides = ("low", "high") if sides is None else tuple(sides)
    out = {}
    for side in sides:
        x = stated[side]
        if not math.isfinite(x):
            assert not explicit, (f"{row.claim}: {row.quantity}: no power is stated on the "
                                  f"{side} side ({x})")
            continue
        assert x >= 0, f"planted deviations are positive sizes, got {side}={x}"
        delta = -x if side == "low" else x
        k = planted_failures(row, delta, draw=draw, n=n, seed=seed)
        out[side] = (delta, k / n)
        _check(k, n, target, alpha, f"{row.claim}: {row.quantity}: an error of {delta:+.4g} "
                                    f"({row.resolution_kind}) planted on the {side} side")
    return out


def _check(k, n, target, alpha, what):
    p_value = stats.binom.cdf(k, n, target)
    assert p_value >= alpha, (
        f"{what} fails the rule in only {k}/{n} = {k / n:.2%} of draws (binomial p = "
        f"{p_value:.2g} against {target:.0%}): the stated power is not met")


def assert_builder_fails(build, deltas, *, n=2000, seed=PLANTED_SEED, alpha=1e-4, target=TARGET):
    """Assert that rows built with the error planted at ``deltas`` FAIL in >= ``target`` of
    ``n`` builds each.

    Parameters
    ----------
    build : callable
        ``build(rng, delta) -> Row``: the row as its claim judges it, with the truth ``delta``
        from the prediction (the Row contract's delta, signed), its statistic drawn from ``rng``.
    deltas : dict
        ``{"low": x, "high": y}``: positive sizes planted at ``-x`` and ``+y`` (usually the
        ``power_low`` / ``power_high`` that validate states for the row); ``inf`` sides skipped.
    n, seed, alpha, target
        Builds per side, their seed, the binomial test's level, the frequency asserted.

    Returns
    -------
    dict
        ``{side: (planted delta, failure frequency)}``.
    """
    import numpy as np

    out = {}
    for i, (side, x) in enumerate(sorted(deltas.items())):
        if not math.isfinite(x):
            continue
        assert side in ("low", "high") and x >= 0, (side, x)
        delta = -x if side == "low" else x
        rng = np.random.default_rng([seed, i + 1])
        k = sum(not build(rng, delta).passed for _ in range(n))
        out[side] = (delta, k / n)
        _check(k, n, target, alpha, f"an error of {delta:+.4g} planted on the {side} side")
    return out


def normal_draw(predicted, stderr, relative=True):
    """A draw of a normal statistic about the truth (for tests of the machinery itself)."""
    scale = abs(predicted) if relative else 1.0

    def draw(rng, delta, size):
        return predicted + scale * delta + stderr * rng.standard_normal(size)
    return draw


def binomial_draw(n_samples, p):
    """A proportion of ``n_samples`` Bernoulli draws with truth ``p * (1 + delta)``."""
    def draw(rng, delta, size):
        q = p * (1 + delta)
        if not 0 <= q <= 1:
            raise ValueError(f"truth {q} is not a probability")
        return rng.binomial(n_samples, q, size) / n_samples
    return draw

