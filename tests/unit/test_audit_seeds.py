"""``audit_checkpoint`` reads a caller's numpy Generator once (issue 20).

It turned ``seed`` into a SeedSequence to check it and then passed the raw Generator on, which
drew 128 more bits: the run did not use the stream the check consumed, and the caller's
Generator advanced twice.
"""

import copy

import numpy as np
import pytest

from checkpoint_factory import make_checkpoint
from discosim._core.seeding import as_seed_sequence
from discosim.audit.estimators import audit_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("audit_seed") / "mix", "mixtral", n_layers=1,
                           n_experts=4, dim=16, k=2)


def test_generator_seed_is_read_once(checkpoint):
    rng = np.random.default_rng(1)
    twin = copy.deepcopy(rng)
    res = audit_checkpoint(checkpoint, n_samples=500, seed=rng, constants_samples=0)
    # the run uses the SeedSequence that one read of the Generator gives ...
    ss = as_seed_sequence(twin)
    assert res.seed_entropy == ss.entropy
    same = audit_checkpoint(checkpoint, n_samples=500, seed=ss, constants_samples=0)
    assert res.to_dict() == same.to_dict()
    # ... and the caller's Generator has advanced by exactly that one read
    assert rng.bit_generator.state == twin.bit_generator.state
