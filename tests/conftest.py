"""Shared test set-up: the tiers on the path, the slow tier by directory, the no-work guard.

Tiers, by directory: ``unit/`` (fast, deterministic), ``statistical/`` (closed forms, planted
errors, estimator agreement), ``integration/`` (CLI subprocesses, ``validate --quick``, studies,
dask, GPU under the ``cuda`` marker) and ``slow/`` (many samples or long subprocesses): every test
under ``slow/`` is marked ``slow``, so ``pytest -m "not slow"`` (CI) leaves it out.
"""

import os
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# tests import reference.py and checkpoint_factory.py beside this file, and the slow tier imports
# helpers of the tier it was split from
for _d in ("", "unit", "statistical", "integration"):
    sys.path.insert(0, os.path.join(HERE, _d))
# an empty constants cache per test session: tests never read or write the user's cache
os.environ["DISCOSIM_CACHE_DIR"] = tempfile.mkdtemp(prefix="discosim-test-cache-")


def pytest_collection_modifyitems(config, items):
    slow = os.path.join(HERE, "slow") + os.sep
    for item in items:
        if str(item.fspath).startswith(slow):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def no_work(monkeypatch):
    """Any chunk of Monte Carlo work (or study point) fails the test: input is checked first."""
    import discosim.volumes.constants
    import discosim.diffusion.estimators
    import discosim.smoothing.estimators
    import discosim.app.studies.runner
    import discosim.volumes.estimators

    def refuse(*a, **k):
        raise AssertionError("computation started before the input was checked")

    for mod in (discosim.volumes.estimators, discosim.diffusion.estimators, discosim.smoothing.estimators, discosim.volumes.constants):
        monkeypatch.setattr(mod, "run_chunks", refuse)
    monkeypatch.setattr(discosim.app.studies.runner, "_run_point", refuse)
