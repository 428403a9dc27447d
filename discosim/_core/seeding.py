"""One ``seed`` convention for the whole package, and the table of derived random streams.

``seed`` is ``None`` (fresh OS entropy, never numpy's global state), an integer >= 0, a
``SeedSequence``, or a ``numpy.random.Generator`` (scipy's ``rng`` convention), for estimators
and for the closed forms of :mod:`discosim.theory` that integrate by (quasi-)Monte Carlo alike:

- an estimator splits its work into streams (:func:`as_seed_sequence`): a Generator is turned
  into a SeedSequence by drawing 128 bits from it, so the same Generator state gives the same
  numbers, and the entropy recorded in the result replays the run with ``seed=entropy``;
- a theory function draws from one stream (:func:`as_generator`): a Generator is used as it is
  (and advances), anything else seeds a fresh one, ``np.random.default_rng(seed)``.

Derived streams
---------------
Inside one run, every purpose draws from its own stream ``derive_seed(seed_seq, *tags)``
(:func:`discosim._core.runtime.derive_seed`): the tags are appended to the SeedSequence's spawn
key. :data:`STREAM_TAGS` names every tag used at a ``derive_seed`` call of the package, per
module: the literal first tag of the call (an int), or the name of the variable that is (a
chunk, unit or layer index). A unit test walks every call and checks it against this table.

Collisions numpy's SeedSequence allows (and how the package avoids them):

- an integer spawn-key entry >= 2**32 is split into 32-bit words, so ``(2**32 + j,)`` and
  ``(j, 1)`` are the same key: ``derive_seed`` refuses tags outside ``[0, 2**32)`` and
  ``run_chunks`` more than 2**32 chunks (no stream of the package changes: none reached it);
- an *entropy* given as a sequence is zero-padded to four words, so ``SeedSequence([s, r, 0])``
  is ``SeedSequence([s, r])``; and a spawn key extends the (padded) entropy words, so
  ``SeedSequence(s, spawn_key=(t,))`` equals ``SeedSequence(s + t * 2**128)`` for ``s < 2**128``.
  Both are properties of the caller's seed, not of ``derive_seed``: avoid building seeds from
  tuples of small integers (use ``derive_seed`` on one SeedSequence instead).

Claim streams (issue 23)
------------------------
``discosim validate`` once seeded its measurements with ``SeedSequence([seed, tag, ...])``, and
the padding made ``[seed, 1]`` and ``[seed, 1, 0]`` one stream; every claim also used the run's
seed itself, so two claims that called one estimator with ``ctx.seed`` drew the same paths.
Both are fixed at the root:

- :func:`claim_seed`: each claim runs under its own integer seed, derived from the run's seed
  and the claim's *name* (not its place in the registry: a claim run alone, or in a split run
  merged later, draws what it draws in the full run);
- :func:`stream_seed`: a claim's tagged streams live in the spawn key ``(CLAIM_STREAM_TAG, n,
  t_1, ..., t_n)``. A spawn key is not padded (a trailing 0 is a word of its own), and the
  length ``n`` makes the tags self-delimiting, so a tag tuple is never a prefix of another's
  streams: ``(1,)`` followed by an estimator's ``(0, i)`` is not ``(1, 0)`` followed by ``(i,)``.
"""

import numpy as np

from discosim._core.errors import InputError

__all__ = ["as_seed_sequence", "as_generator", "check_seed", "STREAM_TAGS", "Stream",
           "claim_seed", "stream_seed", "CLAIM_STREAM_TAG", "CLAIM_SEED_TAG"]

# first spawn-key words of the claims' seeds: above every first tag of STREAM_TAGS, so no
# estimator's derived stream of an integer seed starts with them
CLAIM_SEED_TAG = 0xC1A1
CLAIM_STREAM_TAG = 0xC1A2


def check_seed(seed, name="seed"):
    """Raise a one-line InputError unless ``seed`` is None, an int >= 0, a SeedSequence or a
    Generator. Draws nothing from a Generator."""
    if seed is None or isinstance(seed, (np.random.SeedSequence, np.random.Generator)):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"{name} must be a non-negative integer, a SeedSequence, a numpy "
                         f"Generator or None, got {seed!r}")
    if seed < 0:
        raise InputError(f"{name} must be a non-negative integer or None, got {seed}")
    return seed


def as_seed_sequence(seed, name="seed"):
    """Normalise ``seed`` (None, int >= 0, SeedSequence, Generator) to a SeedSequence."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    check_seed(seed, name)
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int.from_bytes(seed.bytes(16), "little"))
    return np.random.SeedSequence(int(seed))


def as_generator(seed, name="seed"):
    """One Generator for a computation that draws from a single stream.

    A Generator is returned as it is (the caller's stream advances: pass the same one through a
    loop and each call continues where the last stopped); None, an int or a SeedSequence seed a
    fresh one, exactly ``np.random.default_rng(seed)``.
    """
    check_seed(seed, name)
    return np.random.default_rng(seed)


def claim_seed(seed, name):
    """The integer seed a claim of ``discosim validate`` runs under: from the run's ``seed`` and
    the claim's ``name`` (CRC-32), below 2**31 so that the claims' ``seed + offset`` seeds stay
    single 32-bit words (a larger integer would be split into words and could equal a list seed).

    Examples
    --------
    >>> from discosim._core.seeding import claim_seed
    >>> claim_seed(1, "slice_exact") == claim_seed(1, "slice_exact") != claim_seed(1, "scaling_law")
    True
    """
    import zlib

    check_seed(seed)
    ss = np.random.SeedSequence(int(seed), spawn_key=(CLAIM_SEED_TAG, zlib.crc32(name.encode())))
    return int(ss.generate_state(1)[0] >> 1)


def stream_seed(seed, *tags):
    """A claim's stream for ``tags`` (non-negative integers below 2**32) under the integer
    ``seed``: spawn key ``(CLAIM_STREAM_TAG, len(tags), *tags)`` (see the module notes: no
    padding, no prefix between tag tuples).

    Examples
    --------
    >>> from discosim._core.seeding import stream_seed
    >>> a, b = stream_seed(7, 1), stream_seed(7, 1, 0)
    >>> bool((a.generate_state(4) == b.generate_state(4)).all())
    False
    """
    check_seed(seed)
    tags = tuple(int(t) for t in tags)
    if any(not 0 <= t < 1 << 32 for t in tags):
        raise InputError(f"stream tags must lie in [0, 2**32), got {tags}")
    return np.random.SeedSequence(int(seed), spawn_key=(CLAIM_STREAM_TAG, len(tags)) + tags)


def seed_or_rng(seed, rng, where):
    """The one seed of a function that takes ``seed`` and, for scipy's convention, ``rng``."""
    if rng is not None and seed is not None:
        raise InputError(f"{where}: give seed or rng, not both (they are the same argument)")
    return seed if rng is None else rng


class Stream(tuple):
    """``(users, purpose)`` of one tag: the functions that derive it and what they draw from it."""

    __slots__ = ()

    def __new__(cls, users, purpose):
        return super().__new__(cls, (tuple(users), purpose))

    @property
    def users(self):
        return self[0]

    @property
    def purpose(self):
        return self[1]


#: module -> {first tag: Stream}. A first tag is the literal int of a ``derive_seed`` call, or the
#: name of the variable passed there. Tags after the first are listed in the purpose.
#: Streams of one module never share a first tag unless they are one purpose (the same paths
#: from two estimators); a tag that roots chunk streams ``(tag, i)`` is no prefix of another.
STREAM_TAGS = {
    "discosim._core.runtime": {
        "i": Stream(["_chunk"], "chunk i of every run_chunks call: (i,) under the run's stream"),
    },
    "discosim._cuda.launch": {
        "u": Stream(["path_starts"], "(u,) under the start seed: the random start points of "
                    "GPU work unit u, drawn on the host"),
    },
    "discosim._cuda.audit": {
        0: Stream(["audit_chunks"], "(0,): the Philox key of the GPU audit inputs"),
        1: Stream(["audit_chunks"], "(1, u): the host generator of GPU unit u (rounding "
                  "statistics of the sigmoid families)"),
    },
    "discosim.volumes.estimators": {
        0: Stream(["estimate_volumes"], "uniform sampler: chunk i at (0, i) on the CPU, the "
                  "Philox key on the GPU"),
        1: Stream(["estimate_volumes"], "tube sampler: (1, r, i) for order r and eps index i, "
                  "then its chunks (CPU) or the Philox key (GPU)"),
        2: Stream(["estimate_slice_volume"], "the slice-volume sampler (one stream)"),
        8: Stream(["estimate_volumes"], "seed of the slice constants behind the predictions"),
        99: Stream(["check_tie_enumeration"], "the probe points of the tie-enumeration check"),
    },
    "discosim.volumes.constants": {
        7919: Stream(["_slice_constants"], "(7919, r): the Monte Carlo route of the order-r "
                     "constants (chunks below it); Genz uses the seed itself"),
    },
    "discosim.diffusion.estimators": {
        5: Stream(["simulate_first_exit", "estimate_first_hit"],
                  "the first-exit paths, shared so both give the same paths for one seed: "
                  "chunk i at (5, i) on the CPU; on the GPU the Philox key from (5,) and the "
                  "start points of unit u from (5, 1, u)"),
        6: Stream(["estimate_occupation"], "occupation paths: chunk i at (6, i) on the CPU; on "
                  "the GPU the Philox key from (6, 1) and the starts of unit u from (6, 2, u)"),
        7: Stream(["hit_order_wos"], "walk-on-spheres paths: chunk i at (7, i)"),
        99: Stream(["_probe_tie_enumeration"], "the probe points of the tie-enumeration check"),
    },
    "discosim.smoothing.estimators": {
        0: Stream(["measure_continuity"], "points of Gamma^(1) and their normals"),
        1: Stream(["measure_continuity"], "points of the band edge and their normals"),
        3: Stream(["estimate_overhead"], "overhead samples: chunk i at (3, i) on the CPU, the "
                  "Philox key on the GPU"),
        4: Stream(["calibrate_eta"], "calibration samples, regenerated on every pass (common "
                  "random numbers): chunk i at (4, i)"),
        8: Stream(["_c1"], "seed of the order-1 slice constants behind c_1"),
        10: Stream(["__init__"], "SMoE's expert weights (apart from the router's own stream, so "
                   "expert 0 is not a copy of W for the same integer seed)"),
    },
    "discosim.validation.power": {
        "POWER_TAG": Stream(["row_stream"], "(POWER_TAG = 23, crc32(claim, quantity), row index) "
                            "under the run's seed: the draws that measure a validation row's "
                            "power (the claims themselves run under claim_seed)"),
    },
    "discosim.validation.precision": {
        23: Stream(["measure_dsv3", "routing_precision"], "(23, M) the claim's Gaussian router of "
                   "M experts, (23, M, 1) its input directions, (23, 1) the DeepSeek-V3-style "
                   "router's inputs; under the claim's own seed (claim_seed)"),
    },
    "discosim.audit.estimators": {
        "position": Stream(["_audit_layer"], "the layer at this checkpoint position: auditing "
                           "a subset of layers reproduces their numbers"),
        "i": Stream(["_audit_layer"], "(position, i): chunk i of the layer's inputs (hidden "
                    "states; random inputs through run_chunks), i < 2**20 since a layer holds at "
                    "most 1e8 inputs in chunks of 8192"),
        1 << 20: Stream(["_audit_layer"], "(position, 2**20, r): the layer's order-r slice "
                        "constants"),
        1 << 21: Stream(["_audit_layer"], "(position, 2**21): the layer's GPU inputs"),
        1 << 22: Stream(["_audit_layer"], "(position, 2**22, i): chunk i of the layer's "
                        "whole-router inputs (full dimension; discosim.audit.whole_router)"),
    },
}
