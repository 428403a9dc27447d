"""The float32 rounding bound of the GPU scores (stated and derived in :mod:`discosim._cuda.volumes.uniform`).

Plain Python: importing it loads no CUDA library, so the bound can be tested anywhere.
"""

U32 = 2.0 ** -24  # unit roundoff of float32


def score_error_coefficient(M):
    """``(2M + 16) u``: ``|s_i^(32) - s_i| <= (2M + 16) u (|w_i| |z| + |b_i|)``."""
    return (2 * M + 16) * U32


def spread_error(M, wmax, bmax, znorm):
    """ERR: float32 error bound on the spread of two scores, ``2 (2M + 16) u (max|w| |z| + max|b|)``."""
    return 2.0 * score_error_coefficient(M) * (wmax * znorm + bmax)
