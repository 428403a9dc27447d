"""Memory caps (issue 21): each cap sits where the measured cost of its path meets the budget, and
a refused request is refused before its memory is spent.

The largest request each command accepts is run, and its peak measured, in
``tests/slow/test_memory_caps_slow.py`` (minutes); here the boundaries and the refusals.
"""

import json
import math
import struct
import tracemalloc
import types
import zipfile

import numpy as np
import pytest

from discosim._core import memory
from discosim._core.errors import InputError


def _peak(fn):
    """(result or the InputError raised, peak bytes traced by tracemalloc) of ``fn()``."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except InputError as exc:
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_budget_arithmetic():
    assert memory.AVAILABLE_BYTES == memory.BUDGET_BYTES - memory.BASE_BYTES > 0
    for path, cost in memory.COST.items():
        n = memory.max_entries(path)
        assert n * cost <= memory.AVAILABLE_BYTES < (n + 1) * cost
        memory.check_memory([("x", n, path)], "")
        with pytest.raises(InputError, match="budget") as err:
            memory.check_memory([("x", n + 1, path)], "lower it")
        assert "\n" not in str(err.value) and "lower it" in str(err.value)
    # parts add up: two halves fit, two halves and one entry do not
    half = memory.max_entries("router") // 2
    memory.check_memory([("a", half, "router"), ("b", half, "router")], "")
    with pytest.raises(InputError):
        memory.check_memory([("a", half, "router"), ("b", half + 2, "router")], "")


def test_router_cap_is_the_boundary_and_nothing_is_drawn_beyond_it():
    from discosim.model.router import MAX_ROUTER_ENTRIES, Router, _check_shape

    n = MAX_ROUTER_ENTRIES
    assert _check_shape(2, n // 2) == (2, n // 2)
    out, peak = _peak(lambda: Router.gaussian(2, n // 2 + 1, 1))
    assert isinstance(out, InputError) and "memory" in str(out)
    assert peak < 1 << 20
    # the same cap for a matrix given directly (a file, an array)
    big = np.broadcast_to(np.ones(1), (2, n // 2 + 1))  # no memory behind it
    with pytest.raises(InputError, match="memory"):
        Router(big, 1)


def test_the_declared_width_of_a_weights_file_is_refused_before_reading(tmp_path):
    from discosim.model.router import MAX_ROUTER_ENTRIES, Router

    D = MAX_ROUTER_ENTRIES // 2 + 1
    head = json.dumps({"g": {"dtype": "F32", "shape": [2, D], "data_offsets": [0, 8 * D]}})
    path = tmp_path / "wide.safetensors"
    with open(path, "wb") as fh:  # sparse: the data are never written, never read
        fh.write(struct.pack("<Q", len(head)) + head.encode())
        fh.truncate(8 + len(head) + 8 * D)
    out, peak = _peak(lambda: Router.from_file(path, 1))
    assert isinstance(out, InputError) and "memory budget" in str(out)
    assert peak < 1 << 20
    buf = np.lib.format.header_data_from_array_1_0(np.zeros((2, 1)))
    buf["shape"] = (2, D)
    npy = tmp_path / "wide.npy"
    with open(npy, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, buf)
        fh.truncate(fh.tell() + 16 * D)
    out, peak = _peak(lambda: Router.from_file(npy, 1))
    assert isinstance(out, InputError) and "memory budget" in str(out)
    assert peak < 1 << 20


def test_npz_members_are_read_one_at_a_time_and_checked_before_inflating(tmp_path):
    from discosim.model.weights import NpzArrays, load_weights

    arrays = {f"layer_{i}": np.full((1000, 1000), float(i)) for i in range(4)}  # 8 MB each
    np.savez_compressed(tmp_path / "h.npz", **arrays)
    table, peak = _peak(lambda: NpzArrays(tmp_path / "h.npz"))
    assert peak < 1 << 20  # headers only
    assert sorted(table) == sorted(arrays) and table.shape("layer_2") == (1000, 1000)
    one, peak = _peak(lambda: table["layer_2"])
    # one member (8 MB) and the inflater's 1 MB pieces: no other member, no second copy
    assert np.array_equal(one, arrays["layer_2"]) and peak < 8e6 + (4 << 20)
    # a member whose header and zip directory declare 1.6 GB: refused before inflating
    head = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1)))
    head["shape"] = (2, 10 ** 8)
    import io

    raw = io.BytesIO()
    np.lib.format.write_array_header_1_0(raw, head)
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("gate.npy", raw.getvalue() + bytes(64))
    data = bytearray((tmp_path / "bomb.npz").read_bytes())
    declared = len(raw.getvalue()) + 16 * 10 ** 8
    struct.pack_into("<I", data, 22, declared)
    struct.pack_into("<I", data, data.find(b"PK\x01\x02") + 24, declared)
    (tmp_path / "bomb.npz").write_bytes(bytes(data))
    out, peak = _peak(lambda: load_weights(tmp_path / "bomb.npz", max_entries=10 ** 8))
    assert isinstance(out, InputError) and "memory budget" in str(out) and peak < 1 << 20


def test_audit_caps_count_samples_router_and_hidden_states():
    from discosim.audit.estimators import MAX_SAMPLES_PER_LAYER, _check_points

    assert MAX_SAMPLES_PER_LAYER == min(10 ** 8, memory.max_entries("audit_sample"))
    assert MAX_SAMPLES_PER_LAYER * memory.COST["audit_sample"] + memory.BASE_BYTES \
        <= memory.BUDGET_BYTES
    layer = types.SimpleNamespace(name="L", index=0, weight=np.zeros((8, 64)))
    per_row = 64 * 4 + memory.COST["audit_sample"]
    rows = (memory.AVAILABLE_BYTES - 8 * 64 * memory.COST["audit_router"]) // per_row
    table = {None: np.broadcast_to(np.float32(1), (rows, 64))}
    assert _check_points(layer, table).shape == (rows, 64)
    with pytest.raises(InputError, match="memory"):
        _check_points(layer, {None: np.broadcast_to(np.float32(1), (rows + 1, 64))})


def test_smooth_cap_counts_every_array():
    from discosim.smoothing.estimators import MAX_POINTS, check_continuity_memory

    r = types.SimpleNamespace(n_experts=2, dim=1000)
    per_point = 1000 * memory.COST["continuity_point"] + 2 * 8 * memory.COST["expert_output"]
    fixed = 2000 * memory.COST["router"] + 2 * 8 * 1000 * memory.COST["expert_weight"]
    n = (memory.AVAILABLE_BYTES - fixed) // per_point
    assert n < MAX_POINTS
    check_continuity_memory(r, n, "linear", 8)
    with pytest.raises(InputError, match="continuity points"):
        check_continuity_memory(r, n + 1, "linear", 8)
    with pytest.raises(InputError, match="experts' weights"):
        check_continuity_memory(types.SimpleNamespace(n_experts=16, dim=10 ** 6), 2, "mlp", 1)


def test_header_size_cap_and_its_cost():
    from discosim.model.safetensors import MAX_HEADER_BYTES

    # parsing costs 9.4 bytes per header byte (studies/benchmark_memory.py)
    assert math.ceil(9.4 * MAX_HEADER_BYTES) <= memory.AVAILABLE_BYTES


@pytest.mark.parametrize("make", [
    lambda a: a, lambda a: np.asfortranarray(a), lambda a: a.astype(">f8"),
    lambda a: a.astype(np.float16), lambda a: (a * 100).astype(np.int32), lambda a: a[:, :0],
])
def test_reading_by_headers_gives_what_numpy_loads(tmp_path, make):
    """The header-first reader (npy, npz stored and compressed) against np.load."""
    from discosim.model.weights import NpzArrays, load_weights, map_npy

    a = make(np.random.default_rng(0).standard_normal((5, 7)))
    np.save(tmp_path / "a.npy", a)
    np.savez(tmp_path / "a.npz", w=a, other=a[:1])
    np.savez_compressed(tmp_path / "c.npz", w=a)
    for got in (load_weights(tmp_path / "a.npy"), load_weights(tmp_path / "a.npz", "w"),
                load_weights(tmp_path / "c.npz"), NpzArrays(tmp_path / "c.npz")["w"],
                np.asarray(map_npy(tmp_path / "a.npy"))):
        assert got.shape == a.shape and np.array_equal(got, a.astype(np.float64))
