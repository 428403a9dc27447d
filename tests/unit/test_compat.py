"""Old import paths (0.1) work for one release: the same module object, with a DeprecationWarning."""

import importlib
import subprocess
import sys
import warnings

import pytest

import discosim
from discosim._compat import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_path_is_the_new_module_and_warns(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(MOVED[old])
    assert any(issubclass(w.category, DeprecationWarning) and MOVED[old] in str(w.message) for w in caught)


def test_from_import_of_an_old_name():
    with pytest.warns(DeprecationWarning, match="discosim.volumes.estimators"):
        sys.modules.pop("discosim.volume", None)
        from discosim.volume import estimate_volumes
    assert estimate_volumes is discosim.estimate_volumes


def test_python_m_old_report_runs_the_new_module():
    p = subprocess.run([sys.executable, "-m", "discosim.report", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "usage" in p.stdout.lower()


def test_the_public_api_is_complete():
    """Every estimator, result class and entry point of the catalogue resolves from ``discosim``."""
    for name in discosim.__all__:
        assert getattr(discosim, name) is not None, name
        if name != "__version__":
            assert name in discosim.__doc__, f"{name} missing from the catalogue"
    with pytest.raises(AttributeError):
        discosim.no_such_name
