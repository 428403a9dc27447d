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
        audit_layers([_layer(W, name="gate7")], n_samples=100, constants_samples=0, progress=False)
    assert "\n" not in str(info.value)
