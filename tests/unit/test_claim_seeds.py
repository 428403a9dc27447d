"""The claims' seeds (issue 23): each claim its own seed, tagged streams that never alias.

numpy zero-pads an entropy list, so ``SeedSequence([s, 1])`` and ``SeedSequence([s, 1, 0])``
were one stream (validation.volumes' ``_ss``); and every claim ran under the run's seed. The
slow tier's tests/slow/test_claim_streams.py records every seed of a whole quick run.
"""

import itertools

import numpy as np
import pytest

from discosim._core.seeding import claim_seed, stream_seed
from discosim.validation import CLAIMS, rules
from discosim.validation.volumes import _ss


def _state(ss):
    return tuple(ss.generate_state(4).tolist())


def test_the_padding_alias_exists_in_numpy():
    # the bug this fixes: if numpy stops padding, this test says the workaround is moot
    assert _state(np.random.SeedSequence([7, 1])) == _state(np.random.SeedSequence([7, 1, 0]))


def test_stream_seeds_of_distinct_tag_tuples_differ():
    tuples = [t for n in range(4) for t in itertools.product((0, 1, 2), repeat=n)]
    states = [_state(stream_seed(20260623, *t)) for t in tuples]
    assert len(set(states)) == len(tuples)
    # ... and their derived streams: (1,) + (0, i) is not (1, 0) + (i,)
    from discosim._core.runtime import derive_seed

    assert _state(derive_seed(stream_seed(5, 1), 0, 3)) != _state(derive_seed(stream_seed(5, 1, 0), 3))
    assert _state(_ss(5, 1)) != _state(_ss(5, 1, 0))


def test_stream_seed_refuses_tags_numpy_would_split():
    from discosim import InputError

    with pytest.raises(InputError, match="2\\*\\*32"):
        stream_seed(1, 1 << 32)


def test_claim_seeds_are_distinct_small_and_fixed():
    seeds = [claim_seed(20260623, c.name) for c in CLAIMS]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= s < 1 << 31 for s in seeds)
    assert seeds == [claim_seed(20260623, c.name) for c in CLAIMS]
    assert claim_seed(1, "slice_exact") != claim_seed(2, "slice_exact")


def test_run_claims_hands_each_claim_its_own_seed_alone_or_together(monkeypatch):
    got = {}

    def make(name):
        def func(ctx):
            got.setdefault(name, []).append(ctx.seed)
            return rules.ClaimOutput(())
        return rules.Claim(name, "§0", "test", func)

    monkeypatch.setattr(rules, "CLAIMS", [make("a"), make("b")])
    rules.run_claims(None, rules.Context(seed=3), progress=False)
    rules.run_claims(["b"], rules.Context(seed=3), progress=False)
    assert got["a"] == [claim_seed(3, "a")]
    assert got["b"] == [claim_seed(3, "b")] * 2 and got["a"] != got["b"]
