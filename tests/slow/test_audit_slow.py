"""Slow tier of statistical/test_audit.py (marked ``slow`` by directory: see tests/conftest.py)."""




from discosim.audit.estimators import audit_layers, flip_agreement
from test_audit import gaussian_layer


def test_fp16_planted_one_sixth_fails_with_more_samples():
    """fp16 flips are 8x rarer than bf16: with 3M inputs the 1/6 model fails there too."""
    res = audit_layers([gaussian_layer()], n_samples=3_000_000, seed=12, formats=["fp16"],
                       constants_samples=0)
    f = res.layers[0].flip("fp16")
    assert flip_agreement(f, 1.0)
    assert not flip_agreement(f, (1 / 6) / (1 / 4))
