"""The on-disk cache of slice constants: hits, misses on any change of key, corrupt files, off."""

import json
import os

import numpy as np
import pytest

from discosim._core import cache
from discosim.volumes import constants as C
from discosim.model.router import Router


@pytest.fixture
def disk(tmp_path, monkeypatch):
    monkeypatch.setenv("DISCOSIM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(C, "_CACHE", {})  # the in-process cache would hide the disk
    return tmp_path


def _router(seed=0, k=2, bias=None):
    return Router(np.random.default_rng(seed).standard_normal((5, 9)), k, bias=bias)


def _files(d):
    return sorted(p for p in os.listdir(d) if p.endswith(".json"))


def test_second_call_reads_the_disk_and_gives_the_same_numbers(disk, monkeypatch):
    a = C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=3)
    assert len(_files(disk)) == 1
    monkeypatch.setattr(C, "_CACHE", {})

    def refuse(*args, **kw):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(C, "_slice_constants", refuse)
    assert C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=3) == a


@pytest.mark.parametrize("change", [
    dict(router=_router(seed=1)), dict(router=_router(k=3)), dict(router=_router(bias=np.ones(5))),
    dict(order=2), dict(method="genz"), dict(n_samples=3000), dict(seed=4)])
def test_any_change_of_key_misses(disk, change):
    base = dict(router=_router(), order=1, method="mc", n_samples=2000, seed=3)
    C.slice_constants(**base)
    C.slice_constants(**{**base, **change})
    assert len(_files(disk)) == 2


def test_another_code_version_misses(disk, monkeypatch):
    C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=3)
    monkeypatch.setattr(C, "_CACHE", {})
    monkeypatch.setattr(cache, "_CODE_VERSION", "0.0.0+other")
    C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=3)
    assert len(_files(disk)) == 2


@pytest.mark.parametrize("content", ["{not json", json.dumps({"ident": "x", "value": {}}),
                                     json.dumps([1, 2]), ""])
def test_corrupt_file_is_ignored_and_rewritten(disk, monkeypatch, content):
    a = C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=3)
    (name,) = _files(disk)
    (disk / name).write_text(content)
    monkeypatch.setattr(C, "_CACHE", {})
    assert C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=3) == a
    assert json.loads((disk / name).read_text())["value"]["alpha_sum"] == a.alpha_sum


def test_fresh_entropy_and_off_write_nothing(disk, monkeypatch):
    C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=None)
    assert _files(disk) == []
    monkeypatch.setenv("DISCOSIM_CACHE_DIR", "off")
    C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=3)
    assert _files(disk) == []


def test_unwritable_cache_does_not_stop_the_computation(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DISCOSIM_CACHE_DIR", str(blocker / "sub"))
    monkeypatch.setattr(C, "_CACHE", {})
    assert C.slice_constants(_router(), 1, method="mc", n_samples=2000, seed=3).alpha_sum > 0
