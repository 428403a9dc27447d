"""Chunked, seeded, streamed execution: the same numbers for any ``n_jobs`` and any backend.

Work is cut into fixed-size chunks; chunk ``i`` draws from ``derive_seed(seed_seq, i)`` whatever
worker runs it, and chunk results are folded in chunk order, so a run is bit-identical for any
``n_jobs``. Nothing is built per chunk up front: seeds are derived when a chunk is dispatched and
at most a few chunks per worker are in flight, so memory does not grow with the number of chunks
(a 1e13-sample run starts at once). Ctrl-C stops after the chunks already running (milliseconds).

Backends: ``threads`` (default; one persistent thread pool, no start-up per call; the numba
kernels release the GIL), ``loky`` (joblib processes), ``threading`` (joblib threads) and
``dask`` (a ``distributed.Client`` must exist; see the README).

Run control travels as :class:`RunOptions` (seed, workers, backend, progress bar, device); every
public estimator takes ``options=RunOptions(...)`` or the same names as keywords. Progress bars
default to "on a terminal only"; :func:`progress` switches them on or off for a block of code.
"""

import contextlib
import contextvars
import dataclasses
import math
import os
import sys
import threading
from collections import deque

import numpy as np
from threadpoolctl import threadpool_limits

from discosim._core.devices import check_device, check_devices
from discosim._core.errors import InputError, check_bool, check_int
from discosim._core.seeding import check_seed

__all__ = ["derive_seed", "run_chunks", "check_n_jobs", "check_backend", "add", "BACKENDS",
           "FORCE_JOBS_ENV", "RunOptions", "RUN_FIELDS", "resolve_run_options", "progress",
           "progress_bar", "MAX_TAG", "RUN_DEFAULT", "Keyword"]

BACKENDS = ("threads", "loky", "threading", "dask")
# Set to 1 to allow more workers than cores (e.g. on a cluster scheduler that lies about cores).
FORCE_JOBS_ENV = "DISCOSIM_FORCE_JOBS"
# numpy splits an integer spawn-key entry into 32-bit words, so a tag >= 2**32 would be the same
# words as two tags (2**32 + j == (j, 1)); every tag of the package stays below.
MAX_TAG = 1 << 32


def derive_seed(seed_seq, *tags):
    """A SeedSequence for one sub-computation, independent of how often ``seed_seq`` was spawned.

    The tags are appended to the spawn key: ``derive_seed(derive_seed(s, a), b)`` is
    ``derive_seed(s, a, b)``. Each tag is an integer in ``[0, 2**32)``: numpy would split a larger
    one into 32-bit words and ``2**32 + j`` would collide with the pair ``(j, 1)``. The tags the
    package uses are listed in :data:`discosim._core.seeding.STREAM_TAGS`.
    """
    for t in tags:
        if not 0 <= t < MAX_TAG:
            raise InputError(f"stream tag {t} is outside [0, 2**32) (it would collide with a pair "
                             f"of tags)")
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


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How an estimator runs, apart from what it estimates: one object for every estimator.

    Every public estimator takes ``options=RunOptions(...)``, or the same names as keywords (a
    name given both ways is an error). The numbers depend on ``seed`` only: ``n_jobs``,
    ``backend``, ``force_jobs`` and ``progress`` change the speed and the display, never a result
    (the device does: the GPU draws from its own streams, with the same law).

    Parameters
    ----------
    seed : None, int >= 0, SeedSequence or numpy Generator
        None draws fresh entropy (recorded in the result's ``seed_entropy``).
    n_jobs : int
        Workers (-1: all cores); capped at the cores unless ``force_jobs``.
    backend : {"threads", "loky", "threading", "dask"}
    progress : bool or None
        A progress bar on stderr; None follows :func:`progress`, then shows one on a terminal.
    device : {"cpu", "cuda"}
    devices : None, int or sequence of int
        GPUs for ``device="cuda"``: None all visible, n the first n, or their ids.
    force_jobs : bool
        Allow more workers than cores.

    Notes
    -----
    An estimator that has no use for ``n_jobs``, ``backend``, ``progress`` or ``force_jobs``
    (e.g. :func:`~discosim.volumes.estimate_slice_volume`) ignores them, so one RunOptions serves
    every call; a ``device`` it has no route for is an error.

    Examples
    --------
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(4, 8, k=2, seed=0)
    >>> run = ds.RunOptions(seed=7, n_jobs=2, progress=False)
    >>> a = ds.estimate_volumes(router, 1.0, [0.1], n_samples=20_000, options=run)
    >>> b = ds.estimate_volumes(router, 1.0, [0.1], n_samples=20_000, seed=7)
    >>> bool((a.fraction == b.fraction).all())   # the same numbers for any n_jobs
    True
    >>> ds.estimate_overhead(router, 1.0, [0.01], seed=1, options=run)
    Traceback (most recent call last):
    ...
    discosim._core.errors.InputError: estimate_overhead: seed is given twice, as a keyword (1) and in options (7); give it once
    """

    seed: object = None
    n_jobs: int = 1
    backend: str = "threads"
    progress: object = None
    device: str = "cpu"
    devices: object = None
    force_jobs: bool = False

    def __post_init__(self):
        check_seed(self.seed)
        force = check_bool("force_jobs", self.force_jobs)
        object.__setattr__(self, "force_jobs", force)
        check_n_jobs(self.n_jobs, force)
        check_backend(self.backend)
        if self.progress is not None:
            object.__setattr__(self, "progress", check_bool("progress", self.progress))
        check_device(self.device)
        object.__setattr__(self, "devices", check_devices(self.devices))

    def to_dict(self):
        """The options as plain JSON types (the seed as its entropy when it is a SeedSequence)."""
        seed = self.seed
        if isinstance(seed, np.random.SeedSequence):
            seed = {"entropy": seed.entropy, "spawn_key": list(seed.spawn_key)}
        elif isinstance(seed, np.random.Generator):
            seed = "Generator"
        return {"seed": seed, "n_jobs": self.n_jobs, "backend": self.backend,
                "progress": self.progress, "device": self.device,
                "devices": list(self.devices) if isinstance(self.devices, tuple) else self.devices,
                "force_jobs": self.force_jobs}


RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunOptions))
_RUN_DEFAULTS = RunOptions()
# fields that change only the speed or the display: ignored by estimators that have no use for them
_ADVISORY = ("n_jobs", "backend", "progress", "force_jobs")


class Keyword:
    """The default of a run-control keyword left out by the caller (it prints as its value).

    Estimators use these as defaults so that a keyword the caller wrote, even one equal to the
    default, can be told from one left out, and clash with ``options``.
    """

    __slots__ = ("name", "value")

    def __init__(self, name, value):
        self.name, self.value = name, value

    def __repr__(self):
        return repr(self.value)


class _KeywordDefaults:
    def __init__(self, defaults):
        for name, value in defaults.items():
            setattr(self, name, Keyword(name, value))


#: ``seed=RUN_DEFAULT.seed`` etc. in estimator signatures (see :class:`Keyword`)
RUN_DEFAULT = _KeywordDefaults({f: getattr(_RUN_DEFAULTS, f) for f in RUN_FIELDS})


def _is_default(name, value):
    default = getattr(_RUN_DEFAULTS, name)
    if default is None:
        return value is None
    return isinstance(value, (bool, int, str, np.integer, np.bool_)) and value == default


def resolve_run_options(where, options, **keywords):
    """Merge an estimator's run-control keywords with ``options`` into one validated RunOptions.

    Parameters
    ----------
    where : str
        The estimator's name, for the error messages.
    options : RunOptions or None
    **keywords
        The run-control keywords the estimator takes, as the caller passed them: a
        :class:`Keyword` (left out) or a value. Fields of RunOptions not passed here are ones the
        estimator does not take.

    Raises
    ------
    InputError
        A name both given as a keyword and set in ``options``; ``options`` that is not a
        RunOptions; a ``device`` (or ``devices``) set in ``options`` for an estimator without a
        GPU route.
    """
    if options is not None and not isinstance(options, RunOptions):
        raise InputError(f"{where}: options must be a discosim.RunOptions, got "
                         f"{type(options).__name__}")
    base = _RUN_DEFAULTS if options is None else options
    values = {}
    for name in RUN_FIELDS:
        set_in_options = options is not None and not _is_default(name, getattr(options, name))
        if name not in keywords:
            if set_in_options and name not in _ADVISORY:
                raise InputError(f"{where} has no {name} option (options.{name}="
                                 f"{getattr(options, name)!r})")
            values[name] = getattr(_RUN_DEFAULTS, name)
            continue
        given = keywords[name]
        if isinstance(given, Keyword):
            values[name] = getattr(base, name)
        elif set_in_options:
            raise InputError(f"{where}: {name} is given twice, as a keyword ({given!r}) and in "
                             f"options ({getattr(options, name)!r}); give it once")
        else:
            values[name] = given
    return RunOptions(**values)


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


# The progress default of the current context: None (bars only when stderr is a terminal), True
# or False. A ContextVar, not a module global: each thread (and asyncio task) sees its own, so a
# ``with progress(False)`` in one thread never silences or forces bars in another.
_PROGRESS = contextvars.ContextVar("discosim_progress", default=None)


@contextlib.contextmanager
def progress(enabled=True):
    """Switch progress bars on (``True``), off (``False``) or back to "on a terminal" (``None``).

    A context manager for a block of code in the current thread; a call's own ``progress=``
    argument still wins inside it. It replaces the module global ``PROGRESS_DEFAULT`` of 0.1.

    Parameters
    ----------
    enabled : bool or None
        Bars on, off, or (None) only when stderr is a terminal.

    Returns
    -------
    contextlib.AbstractContextManager
        Entered, it sets the default for the block and gives ``enabled`` back (checked).

    Examples
    --------
    >>> import discosim as ds
    >>> router = ds.Router.gaussian(4, 8, k=2, seed=0)
    >>> with ds.progress(False):              # no bar, even on a terminal
    ...     res = ds.estimate_volumes(router, 1.0, [0.1], n_samples=10_000, seed=1)
    >>> res.n_samples
    10000
    """
    if enabled is not None:
        enabled = check_bool("progress", enabled)
    token = _PROGRESS.set(enabled)
    try:
        yield enabled
    finally:
        _PROGRESS.reset(token)


def progress_bar(total, desc, enabled=None, unit="chunk"):
    """A tqdm bar on stderr, or None: ``enabled`` None follows :func:`progress`, then the terminal."""
    if enabled is None:
        enabled = _PROGRESS.get()
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional: no bar, same numbers
        return None
    # unit_scale: 1e13 samples read as "10.0T"; tqdm shows the rate and the expected time left
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False, file=sys.stderr)


_progress_bar = progress_bar  # the name the families and the app import

_POOL = None
_POOL_LOCK = threading.Lock()
_WORKER = threading.local()


def _mark_worker():
    _WORKER.active = True


def _in_worker():
    return getattr(_WORKER, "active", False)


def _thread_pool(workers):
    """The process's persistent pool, with at least ``workers`` threads: threads start once.

    A caller that needs more threads than the pool has gets a new, larger pool that becomes the
    shared one; the old pool is never shut down, since another thread may be submitting to it at
    that moment (``shutdown`` would make its next ``submit`` raise). It lives while a caller
    still holds it, and its idle threads exit when it is garbage-collected. Callers share a pool
    safely: each keeps its own tasks in flight and folds its own results in chunk order.
    """
    global _POOL
    from concurrent.futures import ThreadPoolExecutor

    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < workers:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="discosim",
                                       initializer=_mark_worker)
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
    if n_chunks > MAX_TAG:
        raise InputError(f"{n_total} items in chunks of {chunk_size} make more than 2**32 chunks")
    if _in_worker():
        # called from a task of the shared pool: waiting there on tasks of the same pool could
        # block every worker, and the numbers do not depend on n_jobs, so run in this thread
        n_jobs = 1
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

    bar = progress_bar(n_total, desc, progress, unit)
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
            # n_jobs worker threads each calling a BLAS that starts its own threads oversubscribe
            # the cores (OpenBLAS busy-waits: the DeepSeek-V3 audit took 77 s instead of 52 s on
            # 2 cores); one BLAS thread per worker while they run
            blas = threadpool_limits(limits=1, user_api="blas")
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
            finally:
                blas.restore_original_limits()
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
