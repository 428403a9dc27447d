"""Chunked, seeded execution: the same numbers for any ``n_jobs`` and any joblib backend.

Work is cut into fixed-size chunks; chunk ``i`` draws from the i-th child of the run's
SeedSequence, whatever worker runs it, and chunk results are merged in chunk order. Workers get
contiguous groups of chunks (a few per worker) so a run of many small chunks is not dominated by
task overhead. ``backend`` is any joblib backend name: ``loky`` (processes, default),
``threading``, or ``dask`` (a ``distributed.Client`` must exist; see the README).
"""

import math
import sys

import numpy as np

from .errors import InputError, check_int

__all__ = ["derive_seed", "run_chunks", "check_n_jobs", "chunk_sizes", "PROGRESS_DEFAULT"]

# None: show bars when stderr is a terminal; the CLI sets False under --json / --quiet.
PROGRESS_DEFAULT = None


def derive_seed(seed_seq, *tags):
    """A SeedSequence for one sub-computation, independent of how often ``seed_seq`` was spawned."""
    return np.random.SeedSequence(seed_seq.entropy, spawn_key=tuple(seed_seq.spawn_key) + tuple(tags))


def check_n_jobs(n_jobs):
    if n_jobs is None:
        return 1
    v = check_int("n_jobs", n_jobs)
    if v == 0 or v < -1:
        raise InputError(f"n_jobs must be a positive integer or -1 (all cores), got {v}")
    return v


def chunk_sizes(n_total, chunk_size):
    n_chunks = max(1, math.ceil(n_total / chunk_size))
    sizes = [chunk_size] * (n_chunks - 1) + [n_total - chunk_size * (n_chunks - 1)]
    return sizes


def _run_group(func, args, seeds, sizes):
    out = []
    for ss, n in zip(seeds, sizes):
        rng = np.random.Generator(np.random.PCG64(ss))
        out.append(func(rng, n, *args))
    return out


def _progress_bar(total, desc, progress):
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
    return tqdm(total=total, desc=desc, unit="chunk", leave=False, file=sys.stderr)


def run_chunks(func, args, n_total, chunk_size, seed_seq, n_jobs=1, backend="loky",
               progress=None, desc=None):
    """Run ``func(rng, n, *args)`` over chunks of ``n_total`` items; results in chunk order.

    Parameters
    ----------
    func : callable
        Module-level function (picklable) returning the chunk's statistics.
    seed_seq : SeedSequence
        Chunk i uses ``derive_seed(seed_seq, i)``.
    n_jobs : int
        Workers (-1: all cores). 1 runs in this process.
    progress : bool or None
        tqdm bar on stderr; None shows it only when stderr is a terminal.
    """
    n_jobs = check_n_jobs(n_jobs)
    sizes = chunk_sizes(n_total, chunk_size)
    seeds = [derive_seed(seed_seq, i) for i in range(len(sizes))]
    bar = _progress_bar(len(sizes), desc, progress)
    try:
        if n_jobs == 1 or len(sizes) == 1:
            results = []
            for ss, n in zip(seeds, sizes):
                results.extend(_run_group(func, args, [ss], [n]))
                if bar is not None:
                    bar.update(1)
            return results
        import joblib

        workers = joblib.effective_n_jobs(n_jobs)
        n_groups = min(len(sizes), 4 * workers)
        bounds = np.linspace(0, len(sizes), n_groups + 1).astype(int)
        tasks = [joblib.delayed(_run_group)(func, args, seeds[a:b], sizes[a:b])
                 for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        results = []
        parallel = joblib.Parallel(n_jobs=n_jobs, backend=backend, return_as="generator")
        for group in parallel(tasks):
            results.extend(group)
            if bar is not None:
                bar.update(len(group))
        return results
    finally:
        if bar is not None:
            bar.close()
