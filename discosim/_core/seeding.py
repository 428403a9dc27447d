"""One place that turns a user's ``seed`` into a :class:`numpy.random.SeedSequence`.

``seed`` is ``None`` (fresh OS entropy, never numpy's global state), an integer >= 0, a
``SeedSequence``, or a ``numpy.random.Generator`` (scipy's ``rng`` convention): a Generator is
turned into a SeedSequence by drawing 128 bits from it, so the same Generator state gives the
same numbers, and the entropy recorded in the result replays the run with ``seed=entropy``.
"""

import numpy as np

from discosim._core.errors import InputError

__all__ = ["as_seed_sequence"]


def as_seed_sequence(seed, name="seed"):
    """Normalise ``seed`` (None, int >= 0, SeedSequence, Generator) to a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int.from_bytes(seed.bytes(16), "little"))
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"{name} must be a non-negative integer, a SeedSequence, a numpy "
                         f"Generator or None, got {seed!r}")
    if seed < 0:
        raise InputError(f"{name} must be a non-negative integer or None, got {seed}")
    return np.random.SeedSequence(int(seed))

