"""Folding the norm in front of a router into the router (THEORY §9).

A router sees ``n(h) = γ ⊙ h / rms(h) (+ β)``, so its logits are ``W n(h) = (W diag γ) h / rms(h)
+ W β``: the gate that acts on the normalised direction is ``W diag(γ)`` and a LayerNorm bias β
adds the router bias ``W β``.

Exactness: every entry of ``W diag(γ)`` is one product ``w_ij γ_j``. bfloat16, float16 and
float32 have at most 24 significant bits (8, 11, 24), so the product has at most 48 and is exact in
float64 (53 bits), and float64's exponent range holds any product of two of them. (Only a
checkpoint stored in float64 gets one rounding per entry, relative error <= 2^-53.) ``W β`` is a
sum, rounded in float64 (error <= D · 2^-53 · Σ_j |w_ij β_j|).
"""

import numpy as np

from discosim._core.errors import InputError

__all__ = ["fold_norm"]


def fold_norm(weight, gamma, beta=None, *, where="router"):
    """Return ``(W diag(gamma), W @ beta or None)`` in float64.

    Parameters
    ----------
    weight : ndarray, shape (M, D)
    gamma : ndarray, shape (D,)
        Norm weight.
    beta : ndarray, shape (D,), optional
        LayerNorm bias.
    where : str
        Name used in error messages.
    """
    weight = np.asarray(weight, dtype=np.float64)
    gamma = np.asarray(gamma, dtype=np.float64)
    D = weight.shape[1]
    if gamma.shape != (D,):
        raise InputError(f"norm weight of {where} has shape {list(gamma.shape)}, expected [{D}]")
    if not np.all(np.isfinite(gamma)):
        raise InputError(f"norm weight of {where} has non-finite entries (NaN or inf)")
    folded = weight * gamma[None, :]
    extra = None
    if beta is not None:
        beta = np.asarray(beta, dtype=np.float64)
        if beta.shape != (D,):
            raise InputError(f"norm bias of {where} has shape {list(beta.shape)}, expected [{D}]")
        if not np.all(np.isfinite(beta)):
            raise InputError(f"norm bias of {where} has non-finite entries (NaN or inf)")
        extra = weight @ beta
    return folded, extra
