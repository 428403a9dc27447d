"""Shared test set-up: tests/ on the path (reference.py), and the no-work guard."""

import os
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests import reference.py beside them
# an empty constants cache per test session: tests never read or write the user's cache
os.environ["DISCOSIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="discosim-test-cache-")


@pytest.fixture
def no_work(monkeypatch):
    """Any chunk of Monte Carlo work (or study point) fails the test: input is checked first."""
    import discosim.constants
    import discosim.hitting
    import discosim.smoothing
    import discosim.studies
    import discosim.volume

    def refuse(*a, **k):
        raise AssertionError("computation started before the input was checked")

    for mod in (discosim.volume, discosim.hitting, discosim.smoothing, discosim.constants):
        monkeypatch.setattr(mod, "run_chunks", refuse)
    monkeypatch.setattr(discosim.studies, "_run_point", refuse)
