"""The SMoE's experts draw from their own stream, not the router's (issue 20).

The ``smooth`` command and the ``smooth_continuity`` claim pass one integer seed to
``Router.gaussian`` and to ``SMoE``; both drew from the seed's root stream, so the first expert's
map was the gate matrix itself (linear experts) or a scaled copy of it (mlp experts).
"""

import numpy as np
import pytest

from discosim import Router
from discosim.smoothing.estimators import SMoE


def _max_abs_cosine(rows, W):
    """Largest |cos| between any row of ``rows`` (n, D) and any row of ``W`` (M, D)."""
    a = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    b = W / np.linalg.norm(W, axis=1, keepdims=True)
    return float(np.max(np.abs(a @ b.T)))


@pytest.mark.parametrize("seed", [0, 7, 20260623])
def test_linear_experts_are_not_the_gate_rows(seed):
    router = Router.gaussian(8, 64, 2, seed=seed)
    model = SMoE(router, "linear", 8, seed=seed)
    rows = model.A.reshape(-1, router.dim)
    # independent Gaussian directions in D=64: |cos| of 64 x 8 pairs stays far below 0.9; a copy
    # (the bug: A[0] == W) or a scaled copy gives 1
    assert _max_abs_cosine(rows, router.weights) < 0.9


@pytest.mark.parametrize("seed", [0, 7, 20260623])
def test_mlp_experts_are_not_scaled_gate_rows(seed):
    router = Router.gaussian(8, 64, 2, seed=seed)
    model = SMoE(router, "mlp", 8, seed=seed, hidden=16)
    assert _max_abs_cosine(model.C.reshape(-1, router.dim), router.weights) < 0.9


def test_expert_seed_still_replays():
    router = Router.gaussian(4, 16, 2, seed=3)
    a = SMoE(router, seed=5)
    b = SMoE(router, seed=a.seed_entropy)
    c = SMoE(router, seed=np.random.SeedSequence(5))
    assert np.array_equal(a.A, b.A) and np.array_equal(a.A, c.A)
    assert not np.array_equal(a.A, SMoE(router, seed=6).A)
