"""One place that turns a user's ``seed`` into a :class:`numpy.random.SeedSequence`.

``None`` means fresh OS entropy (never numpy's global state); the entropy actually used is
recorded in every result so that any run can be replayed exactly.
"""

import numpy as np

from .errors import InputError

__all__ = ["as_seed_sequence", "chunk_generators"]


def as_seed_sequence(seed):
    """Normalise ``seed`` (None, int >= 0, SeedSequence) to a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be a non-negative integer or None, got {seed!r}")
    if seed < 0:
        raise InputError(f"seed must be a non-negative integer or None, got {seed}")
    return np.random.SeedSequence(int(seed))


def chunk_generators(seed_seq, n_chunks):
    """One independent PCG64 Generator per chunk, spawned in chunk order.

    Spawning per chunk (not per worker) is what makes results identical for any ``n_jobs``.
    """
    return [np.random.Generator(np.random.PCG64(s)) for s in seed_seq.spawn(n_chunks)]
