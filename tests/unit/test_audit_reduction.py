"""The audit reduces a gate with :class:`Router`, the package's one reduction (issue 20)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from discosim import InputError, Router
from discosim.audit.estimators import _reduce, audit_layers


def _layer(W, k=2, name="toy"):
    return SimpleNamespace(name=name, index=0, family="toy", weight=W, bias=None,
                           selection_bias=None, k=k, routing="topk", n_group=None,
                           topk_group=None, norm_folded=True, norm_type="rmsnorm")


def test_audit_reduction_is_the_routers():
    W = np.random.default_rng(0).standard_normal((6, 40)) / math.sqrt(40)
    red, router = _reduce(W, 2, "w"), Router(W, 2)
    for name in ("reduced_weights", "gram"):
        assert np.array_equal(getattr(red, name), getattr(router, name))


def test_rank_deficient_layer_is_named():
    W = np.random.default_rng(1).standard_normal((4, 16))
    W[3] = W[0] + W[1]
    with pytest.raises(InputError, match="^layer gate7: W is rank-deficient") as info:
        audit_layers([_layer(W, name="gate7")], n_samples=100, constants_samples=10, progress=False)
    assert "\n" not in str(info.value)


def test_light_reduction_is_the_routers_bit_for_bit():
    """``_reduce_light`` (R without forming Q) gives Router's reduced weights and Gram matrix."""
    from discosim.audit.estimators import _reduce_light

    for M, D, seed in ((6, 40, 0), (32, 300, 1), (8, 4096, 2)):
        W = np.random.default_rng(seed).standard_normal((M, D)) / math.sqrt(D)
        light, router = _reduce_light(W, 2, "w"), Router(W, 2)
        for name in ("reduced_weights", "gram"):
            assert np.array_equal(getattr(light, name), getattr(router, name)), (M, D, name)


def test_light_reduction_names_the_same_errors():
    from discosim.audit.estimators import _reduce_light

    W = np.random.default_rng(1).standard_normal((4, 16))
    W[3] = W[0] + W[1]
    with pytest.raises(InputError, match="^layer g: W is rank-deficient"):
        _reduce_light(W, 2, "g")
    with pytest.raises(InputError, match="^layer g: W has row norms"):
        _reduce_light(np.random.default_rng(2).standard_normal((4, 16)) * 1e120, 2, "g")
    # constants_samples=0 audits through the light reduction: the same one-line error
    W = np.random.default_rng(1).standard_normal((4, 16))
    W[3] = W[0] + W[1]
    with pytest.raises(InputError, match="^layer gate7: W is rank-deficient") as info:
        audit_layers([_layer(W, name="gate7")], n_samples=100, constants_samples=0,
                     progress=False)
    assert "\n" not in str(info.value)
