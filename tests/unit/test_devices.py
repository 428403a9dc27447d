"""numba-cuda's numpy alias exists only while numba.cuda is imported: the user's numpy is left as
it was (the 0.1 shim added ``np.row_stack`` to the whole process)."""

import sys
import types

import numpy as np

from discosim._core import devices


def test_row_stack_alias_is_scoped_to_the_import(monkeypatch):
    monkeypatch.delattr(np, "row_stack", raising=False)
    seen = []
    fake = types.ModuleType("numba.cuda")
    # a stand-in numba.cuda whose import needs the alias, as numba-cuda 0.30's does
    monkeypatch.setitem(sys.modules, "numba.cuda", fake)
    monkeypatch.setattr(devices.importlib, "import_module",
                        lambda name: seen.append(hasattr(np, "row_stack")) or fake)
    assert devices.import_numba_cuda() is fake
    assert seen == [True, True]           # present while numba.cuda (and its arrayobj) load
    assert not hasattr(np, "row_stack")   # and gone afterwards


def test_an_existing_row_stack_is_left_alone(monkeypatch):
    sentinel = object()
    monkeypatch.setattr(np, "row_stack", sentinel, raising=False)
    with devices._numpy_row_stack():
        assert np.row_stack is sentinel
    assert np.row_stack is sentinel
