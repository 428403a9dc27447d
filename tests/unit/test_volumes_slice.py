"""``estimate_slice_volume`` refuses a batch that would never finish (issue 20)."""

import pytest

import discosim.volumes.estimators as ve
from discosim import InputError, Router

R4 = Router.gaussian(4, 8, 2, seed=0)


@pytest.fixture
def no_points(monkeypatch):
    """Drawing the first batch fails the test: batch is checked before any work."""
    def refuse(*a, **k):
        raise AssertionError("points drawn before batch was checked")

    monkeypatch.setattr(ve, "reduced_points", refuse)


@pytest.mark.parametrize("batch", [0, -1, 0.5, None, "8"])
def test_bad_batch_is_one_line_input_error(batch, no_points):
    with pytest.raises(InputError, match="batch") as info:
        ve.estimate_slice_volume(R4, [0, 1], 1.0, 0.1, 100, seed=0, batch=batch)
    assert "\n" not in str(info.value)



def test_batch_of_one_runs():
    est = ve.estimate_slice_volume(R4, [0, 1], 1.0, 0.3, 50, seed=2, batch=1)
    assert est.n_samples == 50 and 0 <= est.value <= 1
