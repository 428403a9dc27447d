"""No two claims of ``discosim validate``, and no two purposes inside one, draw the same stream
(issue 23: numpy pads entropy lists, so ``SeedSequence([s, 1])`` is ``SeedSequence([s, 1, 0])``,
and claims that passed the run's seed to one estimator drew identical paths).

Every seed the claims build is recorded while they run (``np.random.SeedSequence`` and
``np.random.default_rng`` patched to note their argument) and compared by its state
(``generate_state``): a state reached by two claims, or inside one claim by two different
seeds (entropy, spawn key), is a shared stream. The same seed built twice inside one claim is
one stream used twice on purpose (common random numbers, a chunk regenerated) and allowed.
"""

import numpy as np

from discosim.validation import CLAIMS, Context, run_claims


def _record(monkeypatch):
    seen = []  # (claim, (entropy, spawn_key), state)
    current = {"claim": None}
    base_ss, base_rng = np.random.SeedSequence, np.random.default_rng

    def note(ss):
        if current["claim"] is not None:
            ent = ss.entropy if isinstance(ss.entropy, int) else tuple(int(e) for e in ss.entropy)
            seen.append((current["claim"], (ent, tuple(ss.spawn_key)),
                         tuple(ss.generate_state(4).tolist())))

    class Recorded(base_ss):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            note(self)

    def default_rng(seed=None):
        if seed is not None and not isinstance(seed, (np.random.Generator, np.random.BitGenerator)):
            note(seed if isinstance(seed, base_ss) else base_ss(seed))
        return base_rng(seed)

    monkeypatch.setattr(np.random, "SeedSequence", Recorded)
    monkeypatch.setattr(np.random, "default_rng", default_rng)
    return seen, current


def shared_streams(seen):
    """``[(state, claims and seeds)]`` of states reached by two claims, or by two different
    seeds inside one claim."""
    by_state = {}
    for claim, key, state in seen:
        by_state.setdefault(state, set()).add((claim, key))
    return [(s, sorted(map(str, v))) for s, v in by_state.items()
            if len({c for c, _ in v}) > 1 or len(v) > 1]


def test_shared_streams_finds_the_padding_alias(monkeypatch):
    seen, current = _record(monkeypatch)
    current["claim"] = "a"
    np.random.default_rng([7, 1])
    np.random.SeedSequence([7, 1, 0])  # the old _ss(seed, r, inputs == "sphere") for a ball
    assert len(shared_streams(seen)) == 1
    current["claim"] = "b"
    np.random.default_rng(11)
    current["claim"] = "c"
    np.random.default_rng(11)  # two claims on one seed
    assert len(shared_streams(seen)) == 2


def test_no_two_claims_or_purposes_share_a_stream(monkeypatch):
    seen, current = _record(monkeypatch)
    ctx = Context(scale=0.01, quick=True, seed=20260623)
    for c in CLAIMS:
        current["claim"] = c.name
        run_claims([c.name], ctx, progress=False)
    current["claim"] = None
    assert len({c for c, _, _ in seen}) == len(CLAIMS)  # every claim seeded something
    # the run's seed itself: the root the power streams (validation.power) derive from, built
    # after each claim and never drawn from; the claims run under their own seeds
    seen = [s for s in seen if s[1] != (ctx.seed, ())]
    shared = shared_streams(seen)
    assert not shared, "\n".join(f"{s[:1]}: {v}" for s, v in shared[:10])
