"""The whole router in a float format: the precision audit's second mode (issue 22, THEORY §9).

The logits-only mode of :mod:`discosim.audit.estimators` (``bf16``, ``fp16``) rounds the exact
logits to the format: what a router run in fp32 (or wider) with its logits stored in the format
does. A model run in the format (``bf16-router``, ``fp16-router``) also rounds the router's input
and weights:

1. ``x`` is the normalised input ``h / rms(h)`` (sphere or ball in the full D dimensions; a
   LayerNorm centres it first), and the norm's output is ``y = round(gamma * x + beta)``: the norm
   weight is applied as the model applies it, so with the fold ``W diag(gamma)`` of THEORY §9 the
   rounded quantity is ``gamma * x``, not ``x`` (gamma recovered exactly from the folded and the
   stored weight; beta the LayerNorm bias, 0 for an RMSNorm);
2. the stored weight ``W`` is rounded to the format (a no-op for a checkpoint stored in it);
3. the products ``W_aj y_j`` are exact in fp32 (two significands of at most 11 bits) and are
   accumulated in fp32: here by a float32 matrix product (OpenBLAS sgemm: blocked, vectorised
   partial sums, not left-to-right). The order changes the accumulated value by about
   ``sqrt(D) 2^-24 sum_j |W_aj y_j|``, some 2^-15 of the input-rounding error below, so the flip
   rate does not depend on it at the resolution of any audit (tests/statistical/test_audit.py
   compares with left-to-right float32 summation);
4. the router bias (rounded to the format) is added in fp32 and the logits are rounded to the
   format; then the same selection as the exact routing (sigmoid, selection bias and groups
   exact).

The flip rate is the fraction of inputs whose selected set differs from the exact float64
routing of the same input ``W diag(gamma) x + b``.

Leading-order prediction (linear gates)
    Write ``y_j = gamma_j x_j + beta_j + e_j`` with ``e_j`` the rounding error of the norm's output.
    The logit gap of the k-th and (k+1)-th experts a, b at margin g becomes (products exact)
    ``g + E``, ``E = sum_j (W_aj - W_bj) e_j = sum_j (w_aj - w_bj) x_j delta_j`` with
    ``delta_j = e_j / (gamma_j x_j)`` the relative rounding error and ``w = W diag(gamma)``.
    Near a tie the inputs vary on scales far above the grid spacing ``u_j = ulp(gamma_j x_j +
    beta_j)``, so the ``e_j`` are independent and uniform on ``[-u_j/2, u_j/2]``: ``E`` has mean 0
    and variance ``sigma^2 = sum_j (W_aj - W_bj)^2 u_j^2 / 12``, and is Gaussian to leading order
    (Lindeberg: it needs ``max_j |W_aj - W_bj| u_j << sigma``, i.e. no few coordinates dominate
    the gap; it holds for dense gates with D in the thousands and fails for a gate supported on a
    handful of coordinates). The logits are then rounded at the tie level v with spacing
    ``u = ulp(v)``: a gap ``t = g + E`` rounds to a merged tie with probability ``(1 - |t|/u)^+``,
    which the tie-break resolves against the exact order for one side of each facet, i.e. half the
    time; a negative t that does not merge is a flip. So ``P(flip | t) = 1{t < 0} - 1{t < 0}
    h(t) + 1{t > 0} h(t)`` with ``h(t) = (1 - |t|/u)^+ / 2``, and integrating g over the margin
    density near 0 (density ``f(0)``, as THEORY §9's window),

    ``int_0^inf P(flip | g + E) dg = (-E)^+ + u/4 - H(|E|)``, ``H(a) = int_0^min(a,u) h``,

    whose mean over E is ``phi = u/4 + E[psi(|E|)]``, ``psi(a) = a^2/(4u)`` (a <= u),
    ``a/2 - u/4`` (a > u), in closed form for Gaussian E
    (:func:`discosim.theory.audit.whole_router_weight`). Hence

    ``P(flip) ~ lim_{eps->0} E[phi(x) 1{g <= eps}] / eps``,

    estimated from the same inputs with the Richardson window of the logits-only mode and the
    per-sample scale ``s = u + sigma``. With ``sigma = 0`` it is THEORY §9's ``u/4`` rule; with
    ``sigma >> u`` the input rounding dominates and ``phi -> sigma / sqrt(2 pi)``. The prediction
    is a claim (checked with the same paired rule, :data:`AGREEMENT_SE`) for linear gates whose
    stored weight is representable in the format (otherwise the weight rounding adds a static
    error this model leaves out); for DeepSeek-V3's curved ties it is not derived and not
    reported.

Which one a serving stack matches: logits-only rounding is a router computed in fp32 (or from
fp32 master weights) whose logits are stored in the format; the whole-router mode is a model
whose weights and activations are in the format, with fp32 accumulation (the usual bf16 GEMM).
(DeepSeek-V3's reference code runs its gate in fp32 on bf16 hidden states: its rounding is the
input's alone, between the two.)

Reproducibility: chunk i of layer j draws from ``derive_seed(seed, j, 1 << 22, i)``, a stream
apart from the logits-only mode's, so adding this mode changes no other number.
"""

import math

import numpy as np

from discosim._core.errors import InputError
from discosim._kernels.audit import _POW2, gap_rounding_sd, round_inputs, window_terms
from discosim.model.selection import FORMATS, round_to_format, ulp
from discosim.theory.audit import whole_router_weight

__all__ = ["ROUTER_CHUNK", "SUFFIX", "default_router_samples", "router_operands", "sample_task",
           "router_flips_slow"]

SUFFIX = "-router"
ROUTER_CHUNK = 256    # inputs per chunk: a few (256, D) arrays
# Default inputs per layer: a budget of 2^30 multiply-adds of the float64 product per layer
# (M D per input; each format adds a float32 product of the same size), between 500 and 20,000
# inputs. Measured (studies/benchmark_audit_speed.py, single-threaded BLAS): the mode costs
# ~0.5 ms of CPU per input at 256 x 7168 with bf16 and fp16, so the DeepSeek-V3-shape audit
# (58 layers) gains ~17 s of CPU over the ~81 s of the logits-only mode: ~49 s on 2 free cores.
ROUTER_BUDGET = 2 ** 30


def default_router_samples(M, D):
    """Inputs per layer of the whole-router mode when not given: ``2^30 / (M D)`` clipped to
    [500, 20000] (585 at DeepSeek-V3's 256 x 7168, 20,000 at Mixtral's 8 x 4096).

    Parameters
    ----------
    M, D : int
        Experts and width of the router.

    Returns
    -------
    int

    Examples
    --------
    >>> default_router_samples(256, 7168), default_router_samples(8, 4096)
    (585, 20000)
    """
    return int(min(20_000, max(500, ROUTER_BUDGET // (int(M) * int(D)))))


class Operands:
    """What the model multiplies: the stored weight ``W`` (M, D), the norm's multiplier
    ``gamma`` (D,) and bias ``beta`` (D,) (None: 1 and 0), the router's own bias (M,) or None,
    the exact folded weight and bias of the audit, and whether inputs are centred (LayerNorm)."""

    def __init__(self, stored, gamma, beta, router_bias, folded, folded_bias, centred):
        self.stored, self.gamma, self.beta = stored, gamma, beta
        self.router_bias, self.folded, self.folded_bias = router_bias, folded, folded_bias
        self.centred = centred
        self._cache = {}

    def quantised(self, fmt):
        """(W in the format as float64, as float32, router bias in the format as float32)."""
        if fmt not in self._cache:
            f = FORMATS[fmt]
            Wq32 = np.empty(self.stored.shape, dtype=np.float32)
            # round_to_format's numba twin (tests/unit/test_audit_kernels.py), to float32 at once
            if round_inputs(np.ascontiguousarray(self.stored), f.precision, f.emin,
                            Wq32) > f.max_value:
                raise InputError(f"router weight exceeds the {fmt} range: rounding to {fmt} "
                                 f"would overflow")
            bq = (None if self.router_bias is None
                  else round_to_format(self.router_bias, fmt).astype(np.float32))
            self._cache[fmt] = (Wq32.astype(np.float64), Wq32, bq)
        return self._cache[fmt]

    def representable(self, fmt):
        """Whether the stored weight and router bias are values of the format (the prediction's
        condition)."""
        Wq, _, bq = self.quantised(fmt)
        return bool(np.array_equal(Wq, self.stored)
                    and (bq is None or np.array_equal(bq.astype(np.float64), self.router_bias)))


def router_operands(layer, stored=None, beta=None, router_bias=None):
    """The :class:`Operands` of a layer, or None when the model's own weight is unknown.

    ``stored``: the router weight as stored (from the checkpoint), else the layer's
    ``stored_weight`` attribute; for a layer whose norm is not folded, its ``weight``. gamma is
    recovered exactly: every folded entry is the exact product ``W_aj gamma_j`` (see
    :mod:`discosim.checkpoints.folding`), so ``gamma_j = w_aj / W_aj`` at any ``W_aj != 0``.
    """
    folded = np.asarray(layer.weight, dtype=np.float64)
    bias = None if layer.bias is None else np.asarray(layer.bias, dtype=np.float64)
    is_folded = bool(getattr(layer, "norm_folded", False))
    if stored is None:
        stored = getattr(layer, "stored_weight", None)
    if beta is None:
        beta = getattr(layer, "norm_bias", None)
    if router_bias is None:
        router_bias = getattr(layer, "router_bias", None)
    centred = is_folded and getattr(layer, "norm_type", None) == "layernorm"
    if not is_folded:
        return Operands(folded, None, None, bias, folded, bias, False)
    if stored is None:
        return None
    stored = np.asarray(stored, dtype=np.float64)
    if stored.shape != folded.shape:
        raise InputError(f"layer {layer.name}: stored weight has shape {stored.shape}, expected "
                         f"{folded.shape}")
    pick = np.argmax(np.abs(stored), axis=0)
    cols = np.arange(stored.shape[1])
    den = stored[pick, cols]
    gamma = np.where(den != 0, folded[pick, cols] / np.where(den != 0, den, 1.0), 1.0)
    if beta is not None:
        beta = np.asarray(beta, dtype=np.float64)
        if router_bias is None:
            # the folded bias is W beta (plus the router's own): with a LayerNorm bias the
            # router's own bias must be given separately
            router_bias = None if bias is None else bias - stored @ beta
    elif router_bias is None:
        router_bias = bias
    return Operands(stored, gamma, beta, router_bias, folded, bias, centred)


def _inputs(rng, n, D, centred, distribution):
    """Normalised inputs x (n, D): uniform on the sphere of radius sqrt(D) (or in the ball), in
    the hyperplane orthogonal to the ones vector when a LayerNorm centres them."""
    g = rng.standard_normal((n, D))
    if centred:
        g -= g.mean(axis=1, keepdims=True)
    ss = np.sum(g * g, axis=1)
    if distribution == "ball":
        ss = ss + rng.chisquare(2, size=n)
    g *= (math.sqrt(D) / np.sqrt(ss))[:, None]
    return g


def model_logits(x, ops, fmt):
    """Logits of the router run in ``fmt`` (see the module docstring, steps 1-4)."""
    pre = x if ops.gamma is None else x * ops.gamma
    if ops.beta is not None:
        pre = pre + ops.beta
    f = FORMATS[fmt]
    y = np.empty(pre.shape, dtype=np.float32)                  # exact: the format fits fp32
    pre = np.ascontiguousarray(pre, dtype=np.float64)
    if round_inputs(pre, f.precision, f.emin, y) > f.max_value:
        raise InputError(f"router inputs gamma * x exceed the {fmt} range: rounding to {fmt} "
                         f"would overflow")
    _, Wq32, bq = ops.quantised(fmt)
    acc = y @ Wq32.T                                            # fp32 accumulation (sgemm)
    if bq is not None:
        acc += bq
    return round_to_format(acc.astype(np.float64), fmt), pre


def exact_logits(x, ops):
    out = x @ ops.folded.T
    if ops.folded_bias is not None:
        out += ops.folded_bias
    return out


def _prediction(routing, logits, pre, ops, fmt):
    """Per-sample (richardson, plain) terms of the whole-router prediction (linear gates)."""
    k = routing.k
    parts = routing.parts(logits)
    g, level = parts["margin"], parts["level"]
    ij = np.argpartition(-logits, (k - 1, k), axis=1)[:, k - 1:k + 1]
    Wq = ops.quantised(fmt)[0]
    f = FORMATS[fmt]
    sigma = np.empty(logits.shape[0])
    gap_rounding_sd(pre, Wq, np.ascontiguousarray(ij[:, 0]), np.ascontiguousarray(ij[:, 1]),
                    f.precision, f.emin, _POW2, sigma)
    u = ulp(level, fmt)
    phi = whole_router_weight(u, sigma)
    return window_terms(g, phi, u + sigma)


def sample_task(rng, n, ops, routing, distribution, formats, claims):
    """Chunk statistics of the whole-router mode: per format ``[sum f, sum y, sum y^2, sum f y,
    sum plain, sum plain^2]`` (f the flip indicator, y the Richardson prediction term; zeros for
    y where no prediction is made)."""
    D = ops.folded.shape[1]
    x = _inputs(rng, n, D, ops.centred, distribution)
    exact = exact_logits(x, ops)
    mask = routing.select(exact)
    out = {"n": n, "flip": {}}
    for fmt in formats:
        rounded, pre = model_logits(x, ops, fmt)
        f = np.any(routing.select(rounded) != mask, axis=1)
        if claims:
            y, plain = _prediction(routing, exact, pre, ops, fmt)
        else:
            y = plain = np.zeros(n)
        fy = np.where(f, y, 0.0)
        out["flip"][fmt] = np.array([f.sum(), y.sum(), (y * y).sum(), fy.sum(), plain.sum(),
                                     (plain * plain).sum()])
    return out


def router_flips_slow(x, ops, routing, fmt):
    """Slow twin of :func:`model_logits` and the flip indicator: every product and sum written
    out, float32 accumulation left to right (``np.float32`` scalars), for a few inputs.
    Returns (rounded logits, flips)."""
    M, D = ops.stored.shape
    exact = exact_logits(x, ops)
    flips = np.zeros(x.shape[0], dtype=bool)
    rounded = np.empty((x.shape[0], M))
    for i in range(x.shape[0]):
        y = [float(round_to_format(x[i, j] * (1.0 if ops.gamma is None else ops.gamma[j])
                                   + (0.0 if ops.beta is None else ops.beta[j]), fmt))
             for j in range(D)]
        row = np.empty(M)
        for a in range(M):
            acc = np.float32(0.0)
            for j in range(D):
                acc = np.float32(acc + np.float32(float(round_to_format(ops.stored[a, j], fmt))
                                                  * y[j]))
            if ops.router_bias is not None:
                acc = np.float32(acc + np.float32(float(round_to_format(ops.router_bias[a], fmt))))
            row[a] = float(round_to_format(float(acc), fmt))
        rounded[i] = row
        flips[i] = np.any(routing.select(row[None]) != routing.select(exact[i:i + 1]))
    return rounded, flips
