"""Gates of an SMoE layer: plain top-k softmax and the smoothing gate of THEORY §7.

Vectorised NumPy over a batch of score vectors; safe for any scores (no NaN from log 0 or
-inf arithmetic: excluded experts get weight exactly 0).
"""

import numpy as np

from discosim._core.errors import check_positive

__all__ = ["topk_gate", "smooth_gate", "kth_largest", "log_band_factor"]


def log_band_factor(u, a_s=1.0, b_s=50.0):
    """``S(u) = log e^{S(u)}``: -inf for u <= 0, 0 for u >= 1, else
    ``a log u - logaddexp(a log u, b log(1-u))`` (never NaN)."""
    u = np.asarray(u, dtype=float)
    out = np.where(u >= 1.0, 0.0, -np.inf)
    inside = (u > 0.0) & (u < 1.0)
    if np.any(inside):
        ui = u[inside]
        la = a_s * np.log(ui)
        lb = b_s * np.log1p(-ui)
        out = out.copy()
        out[inside] = la - np.logaddexp(la, lb)
    return out


def kth_largest(scores, k):
    """g_k per row of ``scores`` (n, M)."""
    M = scores.shape[-1]
    return np.partition(scores, M - k, axis=-1)[..., M - k]


def _softmax_masked(logits):
    finite = np.isfinite(logits)
    m = np.max(np.where(finite, logits, -np.inf), axis=-1, keepdims=True)
    e = np.where(finite, np.exp(np.where(finite, logits - m, 0.0)), 0.0)
    return e / np.sum(e, axis=-1, keepdims=True)


def topk_gate(scores, k):
    """Softmax over the top-k scores of each row, 0 elsewhere (ties broken by index order)."""
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    order = np.argsort(-s, axis=-1, kind="stable")
    mask = np.zeros_like(s, dtype=bool)
    np.put_along_axis(mask, order[:, :k], True, axis=-1)
    return _softmax_masked(np.where(mask, s, -np.inf))


def smooth_gate(scores, k, eta, a_s=1.0, b_s=50.0):
    """``p = softmax(s + S(u))``, ``u_i = (s_i - g_k + eta)/eta`` (THEORY §7)."""
    eta = check_positive("eta", eta)
    a_s = check_positive("a_s", a_s)
    b_s = check_positive("b_s", b_s)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    gk = kth_largest(s, k)[:, None]
    with np.errstate(over="ignore"):  # u = +-inf is fine: the band factor is 0 or 1 there
        u = (s - gk + eta) / eta
    return _softmax_masked(s + log_band_factor(u, a_s, b_s))
