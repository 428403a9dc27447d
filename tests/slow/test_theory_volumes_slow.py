"""Slow tier of statistical/test_theory_volumes.py (marked ``slow`` by directory: see tests/conftest.py)."""




from discosim import Router
from discosim.volumes.constants import slice_constants


def test_constants_at_real_size_use_monte_carlo():
    router = Router.gaussian(256, 2048, 8, seed=0)
    c = slice_constants(router, 1, n_samples=20_000, seed=0)
    assert c.method == "mc-pairs" and c.alpha_sum > 0 and 0 < c.alpha_sum_stderr < 0.1 * c.alpha_sum
    c = slice_constants(router, 2, n_samples=20_000, seed=0)
    # one sampled slice per direction is unbiased but slow at M=256: its error bar says so
    assert c.method == "mc" and c.alpha_sum > 0 and 0 < c.alpha_sum_stderr < c.alpha_sum
