"""Run control (issue 20): RunOptions and PathOptions, the shared thread pool under concurrent
callers, the progress context manager, and the limits of derive_seed."""

import threading

import numpy as np
import pytest

import discosim
from discosim import InputError, PathOptions, Router, RunOptions
from discosim._core import runtime
from discosim._core.results import dumps
from discosim.diffusion import estimate_first_hit, estimate_occupation, simulate_first_exit
from discosim.smoothing import SMoE, estimate_overhead, measure_continuity
from discosim.volumes import estimate_volumes, slice_alpha

R4 = Router.gaussian(4, 8, 2, seed=0)
X0 = np.random.default_rng(0).standard_normal(8) * 0.3


def _same(a, b):
    da, db = a.to_dict(), b.to_dict()
    for d in (da, db):
        d.pop("elapsed_s", None)
    assert dumps(da) == dumps(db)


# ------------------------------------------------------------------ RunOptions
@pytest.mark.parametrize("kw,word", [
    (dict(seed=-1), "seed"), (dict(seed="1"), "seed"), (dict(seed=1.5), "seed"),
    (dict(n_jobs=0), "n_jobs"), (dict(n_jobs="2"), "n_jobs"), (dict(backend="mpi"), "backend"),
    (dict(progress="yes"), "progress"), (dict(device="tpu"), "device"),
    (dict(devices=0), "devices"), (dict(devices=[-1]), "devices"), (dict(devices="0"), "devices"),
    (dict(devices=[]), "devices"), (dict(force_jobs="no"), "force_jobs"),
])
def test_run_options_reject_bad_values_in_one_line(kw, word):
    with pytest.raises(InputError, match=word) as info:
        RunOptions(**kw)
    assert "\n" not in str(info.value)


def test_run_options_draw_nothing_from_a_generator():
    g = np.random.default_rng(5)
    state = g.bit_generator.state
    RunOptions(seed=g)
    assert g.bit_generator.state == state


def test_options_give_the_numbers_of_the_keywords():
    kw = dict(eps=[0.05, 0.1], n_samples=200_000)
    _same(estimate_volumes(R4, 1.0, seed=3, n_jobs=2, force_jobs=True, **kw),
          estimate_volumes(R4, 1.0, options=RunOptions(seed=3, n_jobs=2, force_jobs=True), **kw))
    _same(slice_alpha(R4, [0, 1], "mc", n_samples=5000, seed=2),
          slice_alpha(R4, [0, 1], "mc", n_samples=5000, options=RunOptions(seed=2)))


@pytest.mark.parametrize("call", [
    lambda o: estimate_volumes(R4, 1.0, [0.1], n_samples=100, n_jobs=1, options=o),
    lambda o: estimate_overhead(R4, 1.0, [0.1], n_samples=100, n_jobs=1, options=o),
    lambda o: estimate_first_hit(R4, X0, 1.0, 1.0, 0.01, 10, [0.5], n_jobs=1, options=o),
], ids=["volumes", "overhead", "first_hit"])
def test_a_keyword_also_set_in_options_is_an_error_naming_it(call, no_work):
    with pytest.raises(InputError, match="n_jobs is given twice") as info:
        call(RunOptions(n_jobs=2, force_jobs=True))
    assert "\n" not in str(info.value)


def test_a_device_the_estimator_lacks_is_an_error_and_speed_settings_are_ignored(no_work):
    model = SMoE(R4, seed=0)
    with pytest.raises(InputError, match="measure_continuity has no device"):
        measure_continuity(model, [1e-3], 0.05, n_points=10, options=RunOptions(device="cuda"))
    with pytest.raises(InputError, match="options must be a discosim.RunOptions"):
        measure_continuity(model, [1e-3], 0.05, n_points=10, options={"seed": 1})


def test_speed_settings_do_not_change_a_single_stream_estimator():
    model = SMoE(R4, seed=0)
    a = measure_continuity(model, [1e-3, 1e-2], 0.05, n_points=10, seed=4)
    b = measure_continuity(model, [1e-3, 1e-2], 0.05, n_points=10,
                           options=RunOptions(seed=4, n_jobs=2, force_jobs=True, progress=False))
    _same(a, b)


# ------------------------------------------------------------------ PathOptions
def test_path_options_give_the_numbers_of_the_keywords():
    args = (R4, X0, 1.0, 0.5, 0.01, 128, [0.25, 0.5])
    old = estimate_first_hit(*args, deltas=[0.05, 0.2], seed=1, bridge=False, depth=5,
                             process="ou", theta=2.0)
    new = estimate_first_hit(*args, deltas=[0.05, 0.2], path=PathOptions(
        bridge=False, depth=5, process="ou", theta=2.0), options=RunOptions(seed=1))
    _same(old, new)
    via_dt = estimate_first_hit(R4, X0, 1.0, 0.5, None, 128, [0.25, 0.5], deltas=[0.05, 0.2],
                                path=PathOptions(dt=0.01, bridge=False, depth=5, process="ou",
                                                 theta=2.0), seed=1)
    _same(old, via_dt)
    a = simulate_first_exit(R4, X0, 1.0, 0.5, 0.01, 64, seed=2, bridge=False)
    b = simulate_first_exit(R4, X0, 1.0, 0.5, 0.01, 64, path=PathOptions(bridge=False),
                            options=RunOptions(seed=2))
    assert np.array_equal(a.tau, b.tau)
    c = estimate_occupation(R4, X0, 1.0, 0.5, 0.01, 64, [0.1], seed=2, process="ou")
    d = estimate_occupation(R4, X0, 1.0, 0.5, 0.01, 64, [0.1], seed=2,
                            path=PathOptions(process="ou"))
    _same(c, d)


def test_path_option_clashes_and_misspellings(no_work):
    args = (R4, X0, 1.0, 0.5, 0.01, 64, [0.25])
    with pytest.raises(InputError, match="bridge is given twice"):
        estimate_first_hit(*args, bridge=True, path=PathOptions(bridge=False))
    with pytest.raises(InputError, match="dt is given twice"):
        estimate_first_hit(*args, path=PathOptions(dt=0.02))
    with pytest.raises(InputError, match="dt is missing"):
        estimate_first_hit(R4, X0, 1.0, 0.5, None, 64, [0.25])
    with pytest.raises(InputError, match="estimate_occupation has no depth"):
        estimate_occupation(R4, X0, 1.0, 0.5, 0.01, 64, [0.1], path=PathOptions(depth=3))
    with pytest.raises(TypeError, match="unexpected keyword argument 'sed'"):
        estimate_first_hit(*args, sed=1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'bridge'"):
        estimate_occupation(R4, X0, 1.0, 0.5, 0.01, 64, [0.1], bridge=False)
    for kw, word in ((dict(depth=61), "depth"), (dict(bridge="no"), "bridge"),
                     (dict(process="levy"), "process"), (dict(process="ou", theta=0), "theta"),
                     (dict(dt=-1.0), "dt")):
        with pytest.raises(InputError, match=word):
            PathOptions(**kw)


# ------------------------------------------------------------------ the shared pool
def _sum_chunk(rng, n, gate=None):
    if gate is not None:
        gate.wait()
    return rng.random(n).sum()


def test_a_larger_pool_never_breaks_a_run_in_flight(monkeypatch):
    """Thread A is mid-run on a 2-thread pool when thread B asks for 4 threads: A must go on
    (the old pool was shut down under it: 'cannot schedule new futures after shutdown')."""
    monkeypatch.setattr(runtime, "_POOL", None)
    ss = np.random.SeedSequence(1)
    ref_a = runtime.run_chunks(_sum_chunk, (), 64, 1, ss, n_jobs=1, reduce=runtime.add)
    ref_b = runtime.run_chunks(_sum_chunk, (), 40, 1, ss, n_jobs=1, reduce=runtime.add)
    b_has_its_pool = threading.Event()
    out = {}

    def run_a():
        try:  # every chunk of A waits until B has grown the pool: A still has groups to submit
            out["a"] = runtime.run_chunks(_sum_chunk, (b_has_its_pool,), 64, 1, ss, n_jobs=2,
                                          reduce=runtime.add, force_jobs=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            out["a"] = exc
        finally:
            b_has_its_pool.set()

    def run_b():
        runtime._thread_pool(4)
        b_has_its_pool.set()
        out["b"] = runtime.run_chunks(_sum_chunk, (), 40, 1, ss, n_jobs=4, reduce=runtime.add,
                                      force_jobs=True)

    ta = threading.Thread(target=run_a)
    ta.start()
    while runtime._POOL is None:  # A holds its 2-thread pool before B grows it
        threading.Event().wait(0.001)
    tb = threading.Thread(target=run_b)
    tb.start()
    ta.join()
    tb.join()
    assert not isinstance(out["a"], BaseException), repr(out["a"])
    assert out["a"] == ref_a and out["b"] == ref_b


def test_two_estimators_in_two_threads_with_different_n_jobs_match_their_serial_runs(monkeypatch):
    vol = dict(eps=[0.05, 0.1], n_samples=600_000, predict=False, seed=7)
    over = dict(n_samples=600_000, seed=8)
    serial_vol = estimate_volumes(R4, 1.0, n_jobs=1, **vol)
    serial_over = estimate_overhead(R4, 1.0, [0.01, 0.1], n_jobs=1, **over)
    for _ in range(3):
        monkeypatch.setattr(runtime, "_POOL", None)  # the pool is created and grown in the race
        start = threading.Barrier(2)
        out = {}

        def run(name, call):
            start.wait()
            try:
                out[name] = call()
            except BaseException as exc:  # noqa: BLE001 - reported below
                out[name] = exc

        threads = [threading.Thread(target=run, args=("vol", lambda: estimate_volumes(
                       R4, 1.0, n_jobs=2, force_jobs=True, **vol))),
                   threading.Thread(target=run, args=("over", lambda: estimate_overhead(
                       R4, 1.0, [0.01, 0.1], n_jobs=3, force_jobs=True, **over)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for res in out.values():
            assert not isinstance(res, BaseException), repr(res)
        _same(out["vol"], serial_vol)
        _same(out["over"], serial_over)


def _nested_chunk(rng, n):
    # a chunk that itself runs chunks: inside a pool task it runs inline (no self-deadlock)
    inner = runtime.run_chunks(_sum_chunk, (), 8, 2, runtime.derive_seed(
        np.random.SeedSequence(int(rng.integers(1 << 30))), 0), n_jobs=2, reduce=runtime.add,
        force_jobs=True)
    return np.array([inner, runtime._in_worker()])


def test_run_chunks_inside_a_pool_task_runs_inline_with_the_same_numbers():
    ss = np.random.SeedSequence(3)
    serial = runtime.run_chunks(_nested_chunk, (), 6, 1, ss, n_jobs=1, reduce=None)
    pooled = runtime.run_chunks(_nested_chunk, (), 6, 1, ss, n_jobs=2, reduce=None,
                                force_jobs=True)
    assert [s[0] for s in serial] == [p[0] for p in pooled]
    assert not any(s[1] for s in serial) and all(p[1] for p in pooled)


# ------------------------------------------------------------------ progress
def test_progress_context_manager_sets_the_default_for_this_thread_only():
    pytest.importorskip("tqdm")
    assert runtime.progress_bar(10, "x") is None  # not a terminal under pytest
    seen = {}
    with discosim.progress(True):
        bar = runtime.progress_bar(10, "x")
        assert bar is not None
        bar.close()
        assert runtime.progress_bar(10, "x", enabled=False) is None  # the call's own wins
        t = threading.Thread(target=lambda: seen.update(other=runtime.progress_bar(10, "x")))
        t.start()
        t.join()
        with discosim.progress(False):
            assert runtime.progress_bar(10, "x") is None
            bar = runtime.progress_bar(10, "x", enabled=True)
            assert bar is not None
            bar.close()
    assert seen["other"] is None
    assert runtime.progress_bar(10, "x") is None
    assert not hasattr(runtime, "PROGRESS_DEFAULT")
    with pytest.raises(InputError, match="progress"):
        with discosim.progress("sometimes"):
            pass


# ------------------------------------------------------------------ derive_seed limits
def test_derive_seed_refuses_tags_numpy_would_split_into_words():
    ss = np.random.SeedSequence(0)
    # the collision the check prevents: numpy reads 2**32 + j as the words (j, 1)
    a = np.random.SeedSequence(0, spawn_key=(2 ** 32 + 5,)).generate_state(4)
    b = np.random.SeedSequence(0, spawn_key=(5, 1)).generate_state(4)
    assert np.array_equal(a, b)
    runtime.derive_seed(ss, 2 ** 32 - 1)
    for bad in (2 ** 32, -1):
        with pytest.raises(InputError, match="stream tag"):
            runtime.derive_seed(ss, bad)
    with pytest.raises(InputError, match="2\\*\\*32 chunks"):
        runtime.run_chunks(_sum_chunk, (), 2 ** 33, 1, ss)
