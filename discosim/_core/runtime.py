"""Chunked, seeded, streamed execution: the same numbers for any ``n_jobs`` and any backend.

Work is cut into fixed-size chunks; chunk ``i`` draws from ``derive_seed(seed_seq, i)`` whatever
worker runs it, and chunk results are folded in chunk order, so a run is bit-identical for any
``n_jobs``. Nothing is built per chunk up front: seeds are derived when a chunk is dispatched and
at most a few chunks per worker are in flight, so memory does not grow with the number of chunks
(a 1e13-sample run starts at once). Ctrl-C stops after the chunks already running (milliseconds).

Backends: ``threads`` (default; one persistent thread pool, no start-up per call; the numba
kernels release the GIL), ``loky`` (joblib processes), ``threading`` (joblib threads) and
``dask`` (a ``distributed.Client`` must exist; see the README).
"""

import math
import os
import sys
import threading
from collections import deque

import numpy as np

from discosim._core.errors import InputError, check_int

__all__ = ["derive_seed", "run_chunks", "check_n_jobs", "check_backend", "add", "BACKENDS",
           "PROGRESS_DEFAULT", "FORCE_JOBS_ENV"]

BACKENDS = ("threads", "loky", "threading", "dask")
# None: show bars when stderr is a terminal; the CLI sets False under --json / --quiet.
PROGRESS_DEFAULT = None
# Set to 1 to allow more workers than cores (e.g. on a cluster scheduler that lies about cores).
FORCE_JOBS_ENV = "DISCOSIM_FORCE_JOBS"


def derive_seed(seed_seq, *tags):
    """A SeedSequence for one sub-computation, independent of how often ``seed_seq`` was spawned."""
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=tuple(seed_seq.spawn_key) + tuple(tags))


def check_n_jobs(n_jobs, force=False):
    """Workers to use: an integer >= 1, or -1 for all cores; capped at the cores unless forced.

    More workers than cores only slow a CPU-bound run down (1000 processes stall a laptop), and
    the numbers do not depend on n_jobs, so the cap changes nothing but the speed. ``force=True``
    or the environment variable ``DISCOSIM_FORCE_JOBS=1`` lifts it (a scheduler that hides
    cores, dask workers on other machines).
    """
    cores = os.cpu_count() or 1
    if n_jobs is None:
        return 1
    v = check_int("n_jobs", n_jobs)
    if v == -1:
        return cores
    if v < 1:
        raise InputError(f"n_jobs must be a positive integer or -1 (all cores), got {v}")
    if force or os.environ.get(FORCE_JOBS_ENV, "") == "1":
        return v
    return min(v, cores)


def check_backend(backend):
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def add(acc, x):
    """Fold for chunk results that are arrays or tuples of arrays: elementwise sum."""
    if isinstance(acc, tuple):
        return tuple(a + b for a, b in zip(acc, x))
    return acc + x


def _chunk(func, args, seed_seq, i, n_total, chunk_size):
    n = min(chunk_size, n_total - i * chunk_size)
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed_seq, i)))
    return func(rng, n, *args)


def _run_group(func, args, seed_seq, first, last, n_total, chunk_size):
    return [_chunk(func, args, seed_seq, i, n_total, chunk_size) for i in range(first, last)]


def _progress_bar(total, desc, progress, unit="chunk"):
    if progress is None:
        progress = PROGRESS_DEFAULT
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar, same numbers
        return None
    # unit_scale: 1e13 samples read as "10.0T"; tqdm shows the rate and the expected time left
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, file=sys.stderr)


_POOL = None
_POOL_LOCK = threading.Lock()


def _thread_pool(workers):
    """One persistent pool for the process: threads start once, not per call."""
    global _POOL
    from concurrent.futures import ThreadPoolExecutor

    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="discosim")
        return _POOL


def _groups(n_chunks, group):
    for a in range(0, n_chunks, group):
        yield a, min(a + group, n_chunks)


def run_chunks(func, args, n_total, chunk_size, seed_seq, n_jobs=1, backend="threads",
               progress=None, desc=None, reduce=None, unit="sample", force_jobs=False,
               warm=False):
    """Run ``func(rng, n, *args)`` over chunks of ``n_total`` items, folded in chunk order.

    Parameters
    ----------
    func : callable
        Module-level function (picklable for process backends) returning the chunk's statistics.
    n_total, chunk_size : int
        Items in all and per chunk; the last chunk takes the remainder.
    seed_seq : SeedSequence
        Chunk i uses ``derive_seed(seed_seq, i)``.
    n_jobs : int
        Workers (-1: all cores). 1 runs in this thread.
    backend : {"threads", "loky", "threading", "dask"}
    progress : bool or None
        tqdm bar on stderr (items done, rate, expected time); None: only on a terminal.
    reduce : callable or None
        ``reduce(acc, chunk_result)`` folds results in chunk order (memory independent of the
        number of chunks; :func:`add` sums arrays). None returns the list of chunk results.
    warm : bool
        Threads backend: call ``func(rng, 0, *args)`` in this thread before the workers start
        (``func`` must accept zero items; its result is discarded and no chunk's stream is used).

    Returns
    -------
    The folded result, or the list of chunk results in chunk order.
    """
    n_jobs = check_n_jobs(n_jobs, force_jobs)
    backend = check_backend(backend)
    n_total = check_int("n_total", n_total, 1)
    n_chunks = math.ceil(n_total / chunk_size)
    state = {"acc": None, "list": [] if reduce is None else None, "first": True}

    def take(result, n_items):
        if reduce is None:
            state["list"].append(result)
        elif state["first"]:
            state["acc"], state["first"] = result, False
        else:
            state["acc"] = reduce(state["acc"], result)
        if bar is not None:
            bar.update(n_items)

    def items(a, b):
        return min(b * chunk_size, n_total) - a * chunk_size

    bar = _progress_bar(n_total, desc, progress, unit)
    try:
        if n_jobs == 1 or n_chunks == 1:
            for i in range(n_chunks):
                take(_chunk(func, args, seed_seq, i, n_total, chunk_size), items(i, i + 1))
        elif backend == "threads":
            if warm:
                # a zero-item call here first: numba loads a kernel (types, cached code) on its
                # first call, and that took ~50 ms longer in a worker thread than here
                func(np.random.default_rng(0), 0, *args)
            # groups of a few chunks keep the per-task overhead small; the size does not depend
            # on n_jobs and chunk results are folded one by one, so the sums are the same
            group = max(1, min(16, n_chunks // (4 * n_jobs)))
            pool = _thread_pool(n_jobs)
            pending = deque()
            try:
                for a, b in _groups(n_chunks, group):
                    pending.append((pool.submit(_run_group, func, args, seed_seq, a, b, n_total,
                                                chunk_size), a, b))
                    while len(pending) >= 2 * n_jobs:
                        fut, fa, fb = pending.popleft()
                        for j, res in enumerate(fut.result()):
                            take(res, items(fa + j, fa + j + 1))
                while pending:
                    fut, fa, fb = pending.popleft()
                    for j, res in enumerate(fut.result()):
                        take(res, items(fa + j, fa + j + 1))
            except BaseException:
                for fut, _, _ in pending:
                    fut.cancel()  # not-yet-started groups never run; running ones end in ms
                raise
        else:
            import joblib

            group = max(1, min(64, n_chunks // (4 * n_jobs)))
            tasks = (joblib.delayed(_run_group)(func, args, seed_seq, a, b, n_total, chunk_size)
                     for a, b in _groups(n_chunks, group))
            parallel = joblib.Parallel(n_jobs=n_jobs, backend=backend, return_as="generator",
                                       pre_dispatch="2*n_jobs")
            i = 0
            for chunk_results in parallel(tasks):
                for res in chunk_results:
                    take(res, items(i, i + 1))
                    i += 1
    finally:
        if bar is not None:
            bar.close()
    return state["list"] if reduce is None else state["acc"]
