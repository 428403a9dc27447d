"""Folding the norm in front of a router into the router (THEORY §9).

A router sees ``n(h) = γ ⊙ h / rms(h) (+ β)``, so its logits are ``W n(h) = (W diag γ) h / rms(h)
+ W β``: the gate that acts on the normalised direction is ``W diag(γ)`` and a LayerNorm bias β
adds the router bias ``W β``.

Exactness: every entry of ``W diag(γ)`` is one product ``w_ij γ_j``. bfloat16, float16 and
float32 have at most 24 significant bits (8, 11, 24), so the product has at most 48 and is exact in
float64 (53 bits), and float64's exponent range holds any product of two of them. (Only a
checkpoint stored in float64 gets one rounding per entry, relative error <= 2^-53.) ``W β`` is a
sum, rounded in float64 (error <= D · 2^-53 · Σ_j |w_ij β_j|).

``(1 + w)`` norms (Qwen3-Next, Qwen3.5-MoE: ``Qwen3NextRMSNorm`` multiplies by ``1 + weight``):
the gate is ``W diag(1 + γ)``. ``1 + γ`` is exact in float64 when γ's last significant bit is at
least ``2^-52`` (any fp16 γ; a bf16 or fp32 γ with |γ| >= 2^-45 or 2^-29), and the product
``w_ij (1 + γ_j)`` is exact when the significant bits of the two factors add up to at most 53
(bf16 w and bf16 γ with |γ| >= 2^-37, for instance; the tests check every entry with rational
arithmetic). The model forms ``1 + γ`` in float32; THEORY §9 routes with exact arithmetic.
"""

import numpy as np

from discosim._core.errors import InputError

__all__ = ["fold_norm"]


def fold_norm(weight, gamma, beta=None, *, where="router", plus_one=False):
    """Return ``(W diag(gamma), W @ beta or None)`` in float64 (``W diag(1 + gamma)`` with
    ``plus_one``).

    Parameters
    ----------
    weight : ndarray, shape (M, D)
    gamma : ndarray, shape (D,)
        Norm weight.
    beta : ndarray, shape (D,), optional
        LayerNorm bias.
    where : str
        Name used in error messages.
    plus_one : bool
        The norm multiplies by ``1 + gamma`` (Gemma / Qwen3-Next style).

    Examples
    --------
    >>> import numpy as np
    >>> w = np.array([[1.0, 2.0], [3.0, -1.0]])
    >>> fold_norm(w, np.array([0.5, -0.25]), plus_one=True)[0].tolist()
    [[1.5, 1.5], [4.5, -0.75]]
    """
    weight = np.asarray(weight, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    D = weight.shape[1]
    if gamma.shape != (D,):
        raise InputError(f"norm weight of {where} has shape {list(gamma.shape)}, expected [{D}]")
    if not np.all(np.isfinite(gamma)):
        raise InputError(f"norm weight of {where} has non-finite entries (NaN or inf)")
    scale = 1.0 + gamma if plus_one else gamma
    folded = weight * scale[None, :]
    extra = None
    if beta is not None:
        beta = np.asarray(beta, dtype=np.float64)
        if beta.shape != (D,):
            raise InputError(f"norm bias of {where} has shape {list(beta.shape)}, expected [{D}]")
        if not np.all(np.isfinite(beta)):
            raise InputError(f"norm bias of {where} has non-finite entries (NaN or inf)")
        extra = weight @ beta
    return folded, extra
