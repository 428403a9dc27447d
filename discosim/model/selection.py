"""Routing functions on exact logits, decision margins and rounding to bf16/fp16 (THEORY §9).

All functions take logits ``l`` of shape (N, M) in float64 (one row per input) and work row-wise.

Selection
    * linear top-k (Mixtral, OLMoE, Qwen-MoE, DBRX, Jamba, Arctic, Phi-3.5-MoE, Granite-MoE,
      gpt-oss, Switch): the k largest logits. Softmax, softmax-then-renormalise and sigmoid are
      strictly monotone, so they select the same set as the raw logits.
    * DeepSeek-V3 (``noaux_tc``): selection scores ``s = sigma(l) + c`` (c the score-correction
      bias); the M experts form ``n_group`` contiguous groups, each group scores the sum of its two
      largest ``s``, the ``topk_group`` best groups are kept, and the top-k of ``s`` among the kept
      experts is selected (dropped experts count as ``-inf``, as in DeepSeek's reference inference
      code; Hugging Face's implementation fills them with 0.0, which differs only when a kept
      expert's selection score is negative; the gate weights use the unbiased ``sigma(l)`` and do
      not affect the selected set). ``scoring_func: softmax`` replaces ``sigma(l)`` by the
      softmax probabilities (ERNIE-4.5-MoE: softmax plus ``e_score_correction_bias``).
    * DeepSeek-V2 (``topk_method = group_limited_greedy``): softmax scores, each group scores its
      *largest* member, the ``topk_group`` best groups are kept and the top-k of the kept scores
      selected (``Routing('deepseek_v2', ...)``; ``greedy`` is plain top-k).

    Ties are broken by index: the lower expert (or group) index wins, as a stable sort does
    (THEORY §9 convention; ``torch.topk`` leaves it unspecified). This matters only for rounded
    logits, which tie with positive probability.

Decision margin (THEORY §9)
    The smallest change of one selection score that changes the selected set: ``g_k - g_{k+1}``
    of the selection scores (among the kept experts for grouped routing) and, for group-limited
    routing, also the gap between the last kept and the first dropped group score when swapping
    those two groups changes the selected set (when it does not, the group tie is no boundary of
    the routing map). For linear gates this is the order-1 score-metric statistic of §5.

Rounding
    ``round_to_format(v, fmt)`` rounds float64 values to nearest, ties to even, on the grid of a
    binary format with p bits of precision (bf16 p = 8, fp16 p = 11, fp32 p = 24), subnormals
    included; values that would overflow the format raise :class:`~discosim._core.errors.InputError`.
    ``ulp(v, fmt) = 2^(floor(log2|v|) + 1 - p)``, the grid spacing at v (the subnormal spacing
    below the smallest normal).
"""

from dataclasses import dataclass

import numpy as np

from discosim._core.errors import InputError, check_choice, check_int

__all__ = ["FORMATS", "FloatFormat", "round_to_format", "ulp", "topk_mask", "topk_margin",
           "deepseek_v3_mask", "deepseek_v3_margin", "Routing", "ROUTINGS", "SCORE_FUNCS", "sigmoid",
           "softmax", "tie_straddles_cut"]

ROUTINGS = ("topk", "deepseek_v3", "deepseek_v2")
SCORE_FUNCS = ("softmax", "sigmoid")


@dataclass(frozen=True)
class FloatFormat:
    """A binary floating-point format: ``precision`` p (with the hidden bit), smallest normal
    exponent ``emin`` and largest finite value ``max_value``."""

    name: str
    precision: int
    emin: int
    max_value: float


FORMATS = {
    "bf16": FloatFormat("bf16", 8, -126, float((2 - 2.0 ** -7) * 2.0 ** 127)),
    "fp16": FloatFormat("fp16", 11, -14, 65504.0),
    "fp32": FloatFormat("fp32", 24, -126, float((2 - 2.0 ** -23) * 2.0 ** 127)),
}


def _format(fmt):
    if isinstance(fmt, FloatFormat):
        return fmt
    return FORMATS[check_choice("float format", fmt, tuple(FORMATS))]


def _exponent(values, f):
    """floor(log2|v|) clamped below at emin (subnormals share the spacing of the smallest normal)."""
    _, e = np.frexp(values)  # v = m 2^e with 0.5 <= |m| < 1, so floor(log2|v|) = e - 1
    e = np.maximum(e.astype(np.int64) - 1, f.emin)
    return np.where(values == 0, f.emin, e)  # frexp(0) gives e = 0, not -infinity


def ulp(values, fmt):
    """Grid spacing ``2^(floor(log2|v|) + 1 - p)`` of format ``fmt`` at each value (THEORY §9).

    Zero and subnormal values get the subnormal spacing ``2^(emin + 1 - p)``.
    """
    f = _format(fmt)
    v = np.asarray(values, dtype=np.float64)
    return np.ldexp(1.0, _exponent(v, f) + 1 - f.precision)


def round_to_format(values, fmt):
    """Round float64 values to the nearest value of format ``fmt``, ties to even.

    Exact: scaling by a power of two is exact in float64, ``np.round`` rounds half to even, and
    the rounded integer times the spacing is representable. Raises InputError when a value is not
    finite or rounds beyond the format's largest finite value.
    """
    f = _format(fmt)
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise InputError(f"logits to round to {f.name} must be finite")
    shift = _exponent(v, f) + 1 - f.precision
    out = np.ldexp(np.round(np.ldexp(v, -shift)), shift)
    if out.size and np.max(np.abs(out)) > f.max_value:
        raise InputError(f"logits exceed the {f.name} range (|v| up to {np.max(np.abs(v)):.6g} > "
                         f"{f.max_value:.6g}): rounding to {f.name} would overflow")
    return out


def sigmoid(x):
    """Logistic function (scipy.special.expit: no overflow for either sign)."""
    from scipy.special import expit  # imported on use: the CLI imports this module

    return expit(np.asarray(x, dtype=np.float64))


def softmax(x):
    """Row-wise softmax in float64 (the largest logit subtracted first: no overflow)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


def sigmoid_slope(x):
    """``sigma'(x) = sigma(x) sigma(-x)`` (both factors to full relative precision)."""
    x = np.asarray(x, dtype=np.float64)
    return sigmoid(x) * sigmoid(-x)


# --------------------------------------------------------------------------- linear top-k
def tie_straddles_cut(above, size, k, ties=0):
    """Whether a tie of ``size`` experts spans ranks k and k+1: the top-k cut falls inside it.

    ``above`` experts score strictly above the tie and ``ties`` more are level with it (within a
    caller's tolerance): a point whose scores tie on J lies on ``Gamma_J`` exactly when
    ``above <= k - 1`` and ``above + size + ties >= k + 1`` (THEORY §2; with ``size = r + 1``
    and no ties, ``k - r <= above <= k - 1``). Plain Python on integers or integer arrays
    (elementwise); the numba kernels compile it (:mod:`discosim._kernels.pointstats`), so every
    sampler, closed form and claim asks the same question.
    """
    return (above <= k - 1) & (above + size + ties >= k + 1)


def _kth_values(x, k):
    """(g_k, g_{k+1}) per row: the k-th and (k+1)-th largest entries (g_{k+1} = -inf if k = M)."""
    M = x.shape[1]
    if k == M:
        return np.min(x, axis=1), np.full(x.shape[0], -np.inf)
    part = np.partition(x, (M - k - 1, M - k), axis=1)
    return part[:, M - k], part[:, M - k - 1]


def _mask_and_gaps(x, k):
    """(mask, g_k, g_{k+1}) from one partition; see :func:`topk_mask`."""
    gk, gk1 = _kth_values(x, k)
    above = x > gk[:, None]
    tied = x == gk[:, None]
    mask = above | tied
    multi = np.nonzero(np.sum(mask, axis=1) > k)[0]
    if multi.size:  # ties at g_k straddle the cut (rounded logits): lowest indices first
        t = tied[multi]
        free = k - np.sum(above[multi], axis=1)
        mask[multi] = above[multi] | (t & (np.cumsum(t, axis=1) <= free[:, None]))
    return mask, gk, gk1


def topk_mask(scores, k):
    """Boolean (N, M) mask of the k largest scores per row; among equal scores the lower index wins.

    O(M) per row: every score above the k-th largest value ``g_k`` is selected, and the remaining
    places go to the lowest-indexed scores equal to ``g_k`` (what a stable descending sort does).
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"scores must be 2-dimensional (N, M), got shape {x.shape}")
    k = check_int("k", k, 1, x.shape[1])
    return _mask_and_gaps(x, k)[0]


def topk_margin(scores, k):
    """Decision margin ``g_k - g_{k+1}`` of linear top-k per row (THEORY §9; §5's order-1 score
    statistic). ``inf`` when k = M (nothing can change)."""
    x = np.asarray(scores, dtype=np.float64)
    k = check_int("k", k, 1, x.shape[1])
    gk, gk1 = _kth_values(x, k)
    return gk - gk1


# --------------------------------------------------------------------------- DeepSeek-V3
def _check_groups(M, k, n_group, topk_group):
    if n_group is None or n_group == 1:
        return 1, 1
    G = check_int("n_group", n_group, 1)
    if M % G:
        raise InputError(f"n_group={G} must divide the number of experts M={M}")
    T = check_int("topk_group", topk_group if topk_group is not None else G, 1, G)
    if k > T * (M // G):
        raise InputError(f"k={k} exceeds the {T * (M // G)} experts of the topk_group={T} kept groups")
    return G, T


def _selection_scores(logits, selection_bias, score_func="sigmoid"):
    s = sigmoid(logits) if score_func == "sigmoid" else softmax(logits)
    if selection_bias is not None:
        s = s + np.asarray(selection_bias, dtype=np.float64)[None, :]
    return s


def _group_scores(s, G, group_score="top2"):
    """Per group of G contiguous groups, shape (N, G): the sum of its two largest selection
    scores (``'top2'``, DeepSeek-V3) or its largest (``'max'``, DeepSeek-V2)."""
    N, M = s.shape
    size = M // G
    if group_score == "max":
        return np.max(s.reshape(N, G, size), axis=2)
    if size == 1:
        return s.copy()
    part = np.partition(s.reshape(N, G, size), size - 2, axis=2)
    return part[:, :, size - 2] + part[:, :, size - 1]


def _expand_groups(group_mask, M):
    G = group_mask.shape[1]
    return np.repeat(group_mask, M // G, axis=1)


def deepseek_v3_parts(logits, k, selection_bias=None, n_group=None, topk_group=None,
                      score_func="sigmoid", group_score="top2"):
    """Selection and margins of DeepSeek-V3 routing in one pass.

    ``score_func`` ('sigmoid' or 'softmax') gives the scores the selection bias is added to;
    ``group_score`` how a group is scored: 'top2' (sum of its two largest, DeepSeek-V3) or 'max'
    (its largest, DeepSeek-V2's ``group_limited_greedy``).

    Returns
    -------
    dict with
        ``mask`` (N, M) bool: selected experts;
        ``scores`` (N, M): selection scores ``sigma(l) + c``;
        ``kept`` (N, M) bool: experts of the kept groups;
        ``expert_margin`` (N,): ``g_k - g_{k+1}`` of the selection scores among kept experts;
        ``group_gap`` (N,): last kept minus first dropped group score (inf without groups);
        ``group_changes`` (N,) bool: swapping those two groups changes the selected set
        (evaluated where the group gap is below the expert margin, False elsewhere);
        ``last_kept``, ``first_dropped`` (N,) int: those two groups;
        ``margin`` (N,): the decision margin (min of the expert margin and the group gap where it
        changes the set).
    """
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2:
        raise InputError(f"logits must be 2-dimensional (N, M), got shape {x.shape}")
    N, M = x.shape
    k = check_int("k", k, 1, M)
    G, T = _check_groups(M, k, n_group, topk_group)
    s = _selection_scores(x, selection_bias, score_func)
    inf = np.full(N, np.inf)
    if G == 1:
        return {"mask": topk_mask(s, k), "scores": s, "kept": np.ones_like(s, dtype=bool),
                "expert_margin": topk_margin(s, k) if k < M else inf, "group_gap": inf,
                "group_changes": np.zeros(N, dtype=bool), "last_kept": np.zeros(N, dtype=np.int64),
                "first_dropped": np.zeros(N, dtype=np.int64),
                "margin": topk_margin(s, k) if k < M else inf}
    gs = _group_scores(s, G, group_score)
    gmask = topk_mask(gs, T)
    kept = _expand_groups(gmask, M)
    masked = np.where(kept, s, -np.inf)
    mask, gk, gk1 = _mask_and_gaps(masked, k)
    expert_margin = gk - gk1  # inf when exactly k experts are kept
    if T < G:
        # stable descending order of the group scores: lower index first among equal scores
        order = np.argsort(-gs, axis=1, kind="stable")
        last_kept, first_dropped = order[:, T - 1], order[:, T]
        rows = np.arange(N)
        group_gap = gs[rows, last_kept] - gs[rows, first_dropped]
        changes = np.zeros(N, dtype=bool)
        # the swap only matters for the margin where the group gap is the smaller one
        sub = np.nonzero(group_gap < expert_margin)[0]
        if sub.size:
            alt = gmask[sub].copy()
            alt[np.arange(sub.size), last_kept[sub]] = False
            alt[np.arange(sub.size), first_dropped[sub]] = True
            alt_mask = topk_mask(np.where(_expand_groups(alt, M), s[sub], -np.inf), k)
            changes[sub] = np.any(alt_mask != mask[sub], axis=1)
    else:
        last_kept = first_dropped = np.zeros(N, dtype=np.int64)
        group_gap, changes = inf, np.zeros(N, dtype=bool)
    margin = np.minimum(expert_margin, np.where(changes, group_gap, np.inf))
    return {"mask": mask, "scores": s, "kept": kept, "expert_margin": expert_margin,
            "group_gap": group_gap, "group_changes": changes, "last_kept": last_kept,
            "first_dropped": first_dropped, "margin": margin}


def deepseek_v3_mask(logits, k, selection_bias=None, n_group=None, topk_group=None):
    """Selected experts (N, M) of DeepSeek-V3 routing (see the module docstring)."""
    return deepseek_v3_parts(logits, k, selection_bias, n_group, topk_group)["mask"]


def deepseek_v3_margin(logits, k, selection_bias=None, n_group=None, topk_group=None):
    """Decision margin of DeepSeek-V3 routing per row (THEORY §9)."""
    return deepseek_v3_parts(logits, k, selection_bias, n_group, topk_group)["margin"]


# --------------------------------------------------------------------------- one routing object
@dataclass(frozen=True)
class Routing:
    """A routing function: ``kind`` ('topk', 'deepseek_v3' or 'deepseek_v2'), ``k`` and the
    extras of the curved kinds: selection bias, groups and score function (sigmoid by default
    for 'deepseek_v3', softmax for 'deepseek_v2', whose groups score their largest member).

    Built from anything with the attributes of a checkpoint ``RouterLayer`` by :meth:`of`.
    """

    kind: str
    k: int
    selection_bias: np.ndarray = None
    n_group: int = None
    topk_group: int = None
    score_func: str = None

    def __post_init__(self):
        check_choice("routing", self.kind, ROUTINGS)
        check_int("k", self.k, 1)
        if self.score_func is not None:
            check_choice("score function", self.score_func, SCORE_FUNCS)

    @classmethod
    def of(cls, layer):
        kind = getattr(layer, "routing", "topk")
        if kind in ("deepseek_v3", "deepseek_v2"):
            return cls(kind, int(layer.k), getattr(layer, "selection_bias", None),
                       getattr(layer, "n_group", None), getattr(layer, "topk_group", None),
                       getattr(layer, "score_func", None))
        return cls(kind, int(layer.k))

    @property
    def linear(self):
        """True when ties are hyperplanes and selection is a top-k of them (THEORY §5 applies)."""
        return self.kind == "topk"

    @property
    def scores(self):
        """The score transform selection acts on: 'softmax' or 'sigmoid' (DeepSeek-V2 defaults to
        softmax, V3 to sigmoid; ``score_func`` overrides); 'logits' for linear top-k."""
        if self.linear:
            return "logits"
        return self.score_func or ("softmax" if self.kind == "deepseek_v2" else "sigmoid")

    def _curved(self):
        return {"score_func": self.scores,
                "group_score": "max" if self.kind == "deepseek_v2" else "top2"}

    def check(self, n_experts):
        """Validate against M experts (raises InputError)."""
        check_int("k", self.k, 1, n_experts - 1)
        if not self.linear:
            _check_groups(n_experts, self.k, self.n_group, self.topk_group)
            if self.selection_bias is not None and np.shape(self.selection_bias) != (n_experts,):
                raise InputError(f"selection bias must have shape ({n_experts},), "
                                 f"got {np.shape(self.selection_bias)}")
        return self

    def select(self, logits):
        """(N, M) bool mask of the selected experts."""
        if self.linear:
            return topk_mask(logits, self.k)
        return self.parts(logits)["mask"]

    def margin(self, logits):
        """(N,) decision margins in selection-score units."""
        if self.linear:
            return topk_margin(logits, self.k)
        return self.parts(logits)["margin"]

    def parts(self, logits):
        """Selection, margin and what the flip prediction needs (see :func:`deepseek_v3_parts`)."""
        if self.linear:
            x = np.asarray(logits, dtype=np.float64)
            mask, gk, gk1 = _mask_and_gaps(x, self.k)
            return {"mask": mask, "margin": gk - gk1, "level": gk}
        return deepseek_v3_parts(logits, self.k, self.selection_bias, self.n_group, self.topk_group,
                                 **self._curved())
