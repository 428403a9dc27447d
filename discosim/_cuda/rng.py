"""Random numbers in registers for the CUDA kernels (device functions only).

Generator: xoroshiro128** (Blackman & Vigna 2018), 128 bits of state held in two uint64
registers and passed through the device functions as tuples (no state array in memory: the
stock ``numba.cuda.random`` generator keeps its state in global memory and was measured 4x
slower at M = 8). Each *stream* is seeded by splitmix64 from the run's 128-bit key (drawn from
the run's SeedSequence) and the stream's index, so stream i is the same on any launch shape.

Draw layout (one 64-bit output ``r``):

- two uniforms: ``u1 = (hi32(r) + 1/2) 2^-32`` in (0, 1) (never 0, so ``log u1`` is finite)
  and ``u2 = lo32(r) 2^-32`` in [0, 1);
- two normals by Box-Muller from (u1, u2), both outputs used. The smallest u1, 2^-33, caps
  ``|N|`` at 6.77 sigma (probability 1.3e-11 of a draw beyond it); the hardware log/sin/cos
  (about 2^-21 absolute error) move a normal by ~1e-6: both far below any resolution here, and
  the host's float64 recomputation of a sample uses the very float32 normals drawn.
- chi-square(df) = 2 Gamma(df/2) by Marsaglia & Tsang (2000), exact. Its rare slow acceptance
  test ``log u < x^2/2 + d (1 - v + log v)`` cancels catastrophically in float32 for large d
  (d ~ D/2 = 2048), so that branch is evaluated in float64.

Everything is float32 except the rejection test above: the quantities drawn (normals, gamma
variates) are then *exactly* representable, and the host can recompute any sample in float64
from the very same values (see :mod:`discosim._cuda.volumes.uniform`).
"""

import math

import numpy as np

from discosim._core.devices import import_numba_cuda

cuda = import_numba_cuda()
from numba import config, float32, float64, uint32, uint64  # noqa: E402  (after numba.cuda)

if config.ENABLE_CUDASIM:  # the simulator has no libdevice: same formulas, numpy accuracy
    _logf, _sinf, _cosf = math.log, math.sin, math.cos
else:
    from numba.cuda import libdevice

    # hardware approximations (lg2.approx, sin/cos.approx): about 2^-21 absolute error on the
    # arguments used here, against ~100 instructions each for the accurate libdevice versions
    _logf, _sinf, _cosf = libdevice.fast_logf, libdevice.fast_sinf, libdevice.fast_cosf

# numba types int literals as int64, and int64 op uint64 as float64: every constant is uint64.
_GOLDEN = uint64(0x9E3779B97F4A7C15)
_M1 = uint64(0xBF58476D1CE4E5B9)
_M2 = uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = uint64(30), uint64(27), uint64(31)
_FIVE, _NINE = uint64(5), uint64(9)
_R7, _R57 = uint64(7), uint64(57)
_R24, _R40, _L16 = uint64(24), uint64(40), uint64(16)
_R37, _R27 = uint64(37), uint64(27)
_LO32 = uint64(0xFFFFFFFF)
_SH32 = uint64(32)
_INV32 = np.float32(2.0 ** -32)
_HALF = np.float32(0.5)
_TWO_PI = np.float32(2.0 * math.pi)
_MINUS_TWO = np.float32(-2.0)
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)
_SQUEEZE = np.float32(0.0331)


@cuda.jit(device=True, inline=True)
def splitmix64(x):
    """One splitmix64 output for the state value ``x`` (already advanced by the caller)."""
    z = x
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@cuda.jit(device=True, inline=True)
def stream_state(key0, key1, stream):
    """Initial xoroshiro128** state of stream ``stream`` (uint64) under the key (key0, key1)."""
    base = key0 ^ splitmix64(key1 + stream * _GOLDEN)
    s0 = splitmix64(base + _GOLDEN)
    s1 = splitmix64(base + _GOLDEN + _GOLDEN)
    if s0 == uint64(0) and s1 == uint64(0):  # the one forbidden state (probability 2^-128)
        s1 = _GOLDEN
    return s0, s1


@cuda.jit(device=True, inline=True)
def next64(s0, s1):
    """xoroshiro128**: returns (s0', s1', output)."""
    x = s0 * _FIVE
    out = ((x << _R7) | (x >> _R57)) * _NINE
    s1 = s1 ^ s0
    s0 = ((s0 << _R24) | (s0 >> _R40)) ^ s1 ^ (s1 << _L16)
    s1 = (s1 << _R37) | (s1 >> _R27)
    return s0, s1, out


@cuda.jit(device=True, inline=True)
def uniform_pair(r):
    """(u1 in (0, 1), u2 in [0, 1)) from one 64-bit output."""
    u1 = (float32(uint32(r >> _SH32)) + _HALF) * _INV32
    u2 = float32(uint32(r & _LO32)) * _INV32
    return u1, u2


@cuda.jit(device=True, inline=True)
def normal_pair(s0, s1):
    """Two independent N(0, 1) (float32) by Box-Muller: returns (s0', s1', n1, n2)."""
    s0, s1, r = next64(s0, s1)
    u1, u2 = uniform_pair(r)
    m2l = _MINUS_TWO * _logf(u1)
    rad = math.sqrt(m2l if m2l > _ZERO else _ZERO)  # approximate log may round just above 0
    ang = _TWO_PI * (u2 - _HALF)  # in [-pi, pi): where the approximate sin/cos are accurate
    return s0, s1, rad * _cosf(ang), rad * _sinf(ang)


@cuda.jit(device=True, inline=True)
def normals64(s0, s1, buf, m):
    """Fill ``buf`` (even length) with N(0, 1) draws (float32 values, widened to float64);
    returns (s0', s1', sum of squares of the first ``m``)."""
    for j in range(0, buf.shape[0], 2):
        s0, s1, n1, n2 = normal_pair(s0, s1)
        buf[j] = float64(n1)
        buf[j + 1] = float64(n2)
    ss = 0.0
    for j in range(m):
        ss += buf[j] * buf[j]
    return s0, s1, ss


@cuda.jit(device=True, inline=True)
def gamma_mt(s0, s1, d, c, boost_inv_a):
    """Gamma(a, 1) by Marsaglia-Tsang with ``d = a' - 1/3``, ``c = 1/sqrt(9 d)`` (float32).

    ``a' = a`` if a >= 1; for a < 1 the caller passes ``a' = a + 1`` and ``boost_inv_a = 1/a``
    (the result is multiplied by ``U^(1/a)``); ``boost_inv_a = 0`` means no boost.
    Returns (s0', s1', value).
    """
    boost = _ONE
    if boost_inv_a > float32(0.0):
        s0, s1, r = next64(s0, s1)
        ub, _ = uniform_pair(r)
        boost = float32(math.pow(float64(ub), float64(boost_inv_a)))
    while True:
        s0, s1, x, _unused = normal_pair(s0, s1)
        v = _ONE + c * x
        if v <= float32(0.0):
            continue
        v = v * v * v
        s0, s1, r = next64(s0, s1)
        u, _ = uniform_pair(r)
        x2 = x * x
        if u < _ONE - _SQUEEZE * x2 * x2:
            return s0, s1, d * v * boost
        # slow path (rare): float64, the float32 form cancels catastrophically for large d
        vd = float64(v)
        dd = float64(d)
        if math.log(float64(u)) < 0.5 * float64(x2) + dd * (1.0 - vd + math.log(vd)):
            return s0, s1, d * v * boost


def gamma_params(shape):
    """Host side: float32 (d, c, boost_inv_a) for :func:`gamma_mt` of Gamma(shape)."""
    a = float(shape)
    boost = 0.0
    if a < 1.0:
        boost = 1.0 / a
        a += 1.0
    d = a - 1.0 / 3.0
    return np.float32(d), np.float32(1.0 / math.sqrt(9.0 * d)), np.float32(boost)


def run_key(seed_seq):
    """Host side: the 128-bit stream key (two uint64) of one run, from its SeedSequence."""
    st = seed_seq.generate_state(2, np.uint64)
    return np.uint64(st[0]), np.uint64(st[1])
