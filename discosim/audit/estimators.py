"""The per-layer audit of a real MoE checkpoint: margins, slice constants and precision (THEORY §9).

For every router layer (gate ``W`` of shape (M, D) with the RMSNorm weight folded in, optional
router bias ``b``, routing function of :mod:`discosim.model.selection`) and an input model

* ``sphere`` (default): x uniform on ``S^{D-1}(R)``, ``R = sqrt(D)`` (an RMSNorm output of rms 1).
  In the reduced coordinates of THEORY §3 a sphere point is ``z = R G / sqrt(|G|^2 + chi2_{D-M})``
  and the exact logits are ``s = Rm^T z + b``: O(M^2) per input, whatever D;
* ``ball``: x uniform in ``B_D(0, R)``, ``z = R G / sqrt(|G|^2 + chi2_{D+2-M})``;
* hidden states (an (N, D) array, ``.npy``, or ``.npz`` with one key per layer): the rows (the
  input of the norm), normalised as the model does when the norm is folded into W (the router
  sees ``h / sqrt(mean(h^2) + eps)`` with the model's eps); fractions are proportions over those
  points with binomial errors,

the audit reports

* shape and geometry: M, k, D, the spread of the row norms ``|w_i|``, the smallest ``|w_i - w_j|``;
* linear families only: the slice constants ``A_r = sum_J alpha_J`` (r = 1..3) and
  ``B_1 = sum_{i<j} 2 alpha_ij / |w_i - w_j|`` with standard errors, by the Monte Carlo route of
  :func:`discosim.volumes.constants.slice_constants` (exact Genz sums over ``C(M, r+1)`` slices are
  impossible at M = 256);
* the decision margin ``g`` (THEORY §9): quantiles, and the tube fractions ``P(g <= eps)`` with
  binomial errors; for linear families with b = 0 and sphere (ball) inputs the leading order of
  §5/§9 for the order-1 score tube, ``(B_1 / 2) (eps / R) Gamma(D/2) / (Gamma(3/2) Gamma((D-1)/2))``
  (ball: ``Gamma(D/2+1) / (Gamma(3/2) Gamma((D+1)/2))``);
* the precision audit, per float format, in two modes (issue 22):

  - ``bf16``, ``fp16``, ``fp32`` (logits only): the fraction of inputs whose selected set differs
    between exact logits and logits rounded to the format (round to nearest even; sigmoid, bias
    and groups exact), measured directly, and predicted to leading order in the unit roundoff.
    What a router computed in fp32 whose logits are stored in the format does;
  - ``bf16-router``, ... (the whole router as a model in the format runs it: norm output and
    weight rounded, fp32 accumulation, logits rounded; :mod:`discosim.audit.whole_router`, where
    its prediction is derived), from fewer inputs drawn in the full D dimensions
    (``router_samples``). What a bf16/fp16 serving stack does.

Flip prediction
    Linear families (THEORY §9): ``P(flip) = (1/4) lim_{eps->0} E[ulp(v) 1{g <= eps}] / eps``, v the
    tie level ``g_k``. DeepSeek-V3: the two tied selection scores sit on different logits, so their
    rounding errors are independent; a selection score moves by ``sigma'(l) delta``, and
    ``P(flip) = lim E[phi 1{g <= eps}] / eps`` with ``phi = E[X^+]`` for X the change of the
    margin (expert ties: two independent uniform rounding errors, closed form; group ties: four,
    by Monte Carlo over the offsets). The §5 closed forms do not apply to DeepSeek-V3: its ties are
    curved, so its slice constants and margin predictions are not reported.

    The limit is estimated from the same samples with a window proportional to each sample's own
    scale ``s`` (``s = ulp(v)`` for linear gates): ``F(h) = mean(phi 1{g <= h s} / (h s))`` has
    bias ``c_1 h`` from the slope of the margin density, and the Richardson combination
    ``2 F(h) - F(2h)`` (h = 1/2) removes it, leaving O(h^2). ``window_correction = F(h) - (2F(h) -
    F(2h))`` is reported: when it exceeds the standard error the ulp is not small against the
    margin scale and the leading order itself is in doubt (``leading_order_ok``). The agreement
    rule compares measured and predicted with the standard error of their per-sample difference
    (both come from the same inputs), within ``AGREEMENT_SE`` = 4 of them.

Reproducible for any ``n_jobs``: chunk i of layer j draws from ``derive_seed(seed, j, i)``.

Speed (issue 22): DeepSeek-V3 chunk statistics run in numba
(:func:`discosim._kernels.audit.logit_stats`; its NumPy twin ``logit_stats_numpy`` gives the same
numbers bit for bit), and layers without slice constants are reduced without forming the basis Q
(:func:`_reduce_light`, the same R).
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np

from discosim._core.errors import InputError, check_int
from discosim._core.memory import check_memory, max_entries
from discosim._core.results import ResultMixin, mean_and_stderr, to_jsonable
from discosim._core.runtime import RUN_DEFAULT, check_n_jobs, derive_seed, resolve_run_options, run_chunks
from discosim.model.router import Router
from discosim.model.selection import FORMATS, Routing
from discosim._core.seeding import as_seed_sequence
from discosim._kernels.audit import logit_stats
from discosim.theory.audit import margin_leading
import discosim.audit.whole_router as WR

__all__ = ["audit_checkpoint", "audit_layers", "study_rows", "default_n_samples", "AuditResult", "LayerAudit", "FlipAudit",
           "DEFAULT_EPS", "DEFAULT_N_SAMPLES", "QUANTILE_LEVELS", "AGREEMENT_SE", "flip_agreement"]

DEFAULT_EPS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# Default inputs per layer (n_samples=None): 100k for M >= 64, up to 400k for small M, where a
# sample costs far less (O(M^2)) and flips are rarer. Measured (studies/benchmark_audit.py):
# DeepSeek-V3 shape (M=256), bf16 flip rate 2.5% +- 2% relative, fp16 0.31% +- 6%; Mixtral shape
# (M=8, 400k) bf16 0.19% +- 3.5%, fp16 0.025% +- 10%; both well inside the time targets.
DEFAULT_N_SAMPLES = 100_000


# The margin of every input is kept for the quantiles: about 17 bytes per input at the peak
# (measured, _core.memory.COST): 1e8 inputs of one layer peak near 1.6 GB with everything else.
MAX_SAMPLES_PER_LAYER = min(10 ** 8, max_entries("audit_sample"))


def default_n_samples(n_experts):
    """Inputs per layer when ``n_samples`` is None: ``100000 * clip(64 // M, 1, 4)``."""
    return DEFAULT_N_SAMPLES * min(4, max(1, 64 // int(n_experts)))
QUANTILE_LEVELS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5)
AGREEMENT_SE = 4.0
CHUNK = 1 << 13       # inputs per chunk (memory: a few (CHUNK, M) float64 arrays)
INPUT_MODELS = ("sphere", "ball")
CONSTANT_ORDERS = (1, 2, 3)
SERVING_NOTE = ("precision modes: FMT rounds only the logits (a router run in fp32 whose logits "
                "are stored in FMT); FMT-router runs the whole router in FMT (norm output and "
                "weight in FMT, fp32 accumulation, logits in FMT: a bf16/fp16 serving stack), "
                "from fewer inputs drawn in the full dimension")
CURVED_NOTE = ("curved ties (scores with a selection bias, or group-limited selection: "
               "DeepSeek-V2/V3-style routing): THEORY §5 closed forms (slice constants, tube "
               "leading orders) do not apply; margins and flip rates are Monte Carlo only")


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class FlipAudit(ResultMixin):
    """Precision audit of one float format on one layer.

    ``measured`` is the fraction of inputs whose selected set changes when the logits are rounded
    to ``format`` (or, for ``"bf16-router"`` and the like, when the whole router runs in the
    format: :mod:`discosim.audit.whole_router`); ``predicted`` the leading-order prediction (see
    the module docstring; NaN where none is derived); ``difference_stderr`` the standard error of
    ``measured - predicted`` from the paired samples.

    Parameters
    ----------
    format : {"bf16", "fp16", "fp32", "bf16-router", "fp16-router", "fp32-router"}
        The float format the logits are rounded to (round to nearest even); with ``-router``, the
        format the whole router runs in.
    measured : float
        Fraction of inputs whose selected set changes.
    stderr : float
        Its binomial standard error.
    n_flips : int
        Inputs that changed experts.
    n_samples : int
        Inputs.
    predicted : float
        THEORY §9 (linear gates): ``(1/4) lim_{eps->0} E[ulp(v) 1{g <= eps}] / eps``, estimated
        from the same inputs.
    predicted_stderr : float
        Its standard error.
    difference_stderr : float
        Standard error of ``measured - predicted`` (paired samples).
    window_correction : float
        The Richardson correction of the limit's window; above ``predicted_stderr`` the leading
        order itself is in doubt (``leading_order_ok`` is False).
    model : str
        The rounding model behind ``predicted``.
    claim : bool
        Whether the prediction is a claim of THEORY (linear gates) or only reported.
    sums : tuple
        Sums behind the paired agreement rule.

    Attributes
    ----------
    agrees : bool
        ``|measured - predicted| <= 4 difference_stderr``.
    leading_order_ok : bool
        ``|window_correction| <= predicted_stderr``.

    Examples
    --------
    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=8, dim=64, k=2)
    >>> res = ds.audit_checkpoint(path, n_samples=20_000, seed=0, constants_samples=0)
    >>> flip = res.layers[0].flip("bf16")
    >>> flip.format, flip.n_samples, flip.claim, flip.agrees
    ('bf16', 20000, True, True)
    >>> tmp.cleanup()
    """

    format: str
    measured: float
    stderr: float
    n_flips: int
    n_samples: int
    predicted: float
    predicted_stderr: float
    difference_stderr: float
    window_correction: float
    model: str
    claim: bool
    # sums behind the paired rule, so a planted constant can be tested with the same rule
    sums: tuple = field(repr=False, default=())

    @property
    def leading_order_ok(self):
        return abs(self.window_correction) <= max(self.predicted_stderr, 0.0)

    @property
    def agrees(self):
        return flip_agreement(self, 1.0)

    @property
    def prediction_note(self):
        """Why the printed prediction is outside the regime where it holds, or None (issue 23
        item 5): a negative estimate (the window terms at few inputs), or a window correction
        larger than the prediction's own error (the unit roundoff is not small against the
        margin scale)."""
        pred = self.predicted
        if pred is None or pred != pred:
            return None
        if pred < 0:
            return ("negative: the window estimate at this many inputs is noise; the leading order "
                    "is out of its regime (audit more inputs)")
        if not self.leading_order_ok:
            return ("the window correction exceeds the prediction's error: the unit roundoff is "
                    "not small against the margin scale, the leading order is in doubt")
        return None

    def to_dict(self):
        return {"measured": self.measured, "stderr": self.stderr, "predicted": self.predicted,
                "predicted_stderr": self.predicted_stderr,
                "difference_stderr": self.difference_stderr, "n_flips": self.n_flips,
                "n_samples": self.n_samples, "window_correction": self.window_correction,
                "leading_order_ok": self.leading_order_ok, "model": self.model,
                "claim": self.claim, "agrees": self.agrees,
                "prediction_note": self.prediction_note}

    def to_rows(self):
        """One row ``flip_rate`` of this format, in the shape of :meth:`AuditResult.tidy_rows`."""
        return to_jsonable([{"quantity": "flip_rate", "parameter": self.format,
                             "value": self.measured, "stderr": self.stderr,
                             "predicted": self.predicted,
                             "predicted_stderr": self.predicted_stderr,
                             "n_samples": self.n_samples, "n_flips": self.n_flips,
                             "agrees": self.agrees if self.claim else None}])


def flip_agreement(flip, scale=1.0, n_se=AGREEMENT_SE):
    """Whether ``measured`` and ``scale * predicted`` agree within ``n_se`` paired standard errors.

    ``scale`` lets a test plant a wrong constant (e.g. 1/6 instead of 1/4: ``scale = 2/3``) and
    check that the same rule rejects it.
    """
    n, sf, sy, syy, sfy = flip.sums
    if not math.isfinite(sy):  # no prediction
        return False
    diff = (sf - scale * sy) / n
    second = (sf - 2 * scale * sfy + scale * scale * syy) / n  # E[(f - c y)^2], f^2 = f
    se = math.sqrt(max(second - diff * diff, 0.0) * n / max(n - 1, 1) / n)
    return bool(abs(diff) <= n_se * se) if se > 0 else bool(diff == 0)


@dataclass(frozen=True)
class LayerAudit(ResultMixin):
    """Audit of one router layer (see the module docstring for every quantity).

    Parameters
    ----------
    name : str
        Tensor name of the router weight.
    index : int
        Position in the checkpoint's router order.
    family : str
        Router family (``mixtral``, ``deepseek_v3``, ...).
    routing : {"topk", "deepseek_v3"}
        The routing function.
    M, k, D : int
        Experts, active experts, input dimension.
    n_group, topk_group : int or None
        Group-limited selection (DeepSeek-V3).
    has_bias, has_selection_bias : bool
        Whether a router bias or a selection-only bias is present.
    norm_folded : bool
        Whether the norm in front of the router was folded into W (THEORY §9).
    n_samples : int
        Inputs audited.
    row_norm_min, row_norm_max, row_norm_mean : float
        Spread of the row norms ``|w_i|``.
    min_pair_distance : float
        The smallest ``|w_i - w_j|``.
    closed_forms_apply : bool
        Linear families: the §5 closed forms apply (False for DeepSeek-V3's curved ties).
    constants : dict
        ``{r: {"A": (value, stderr), "B": (value, stderr), "method": str}}`` for r = 1..3
        (empty when not computed or not applicable).
    eps : ndarray
        Margins of the tube fractions.
    margin_fraction, margin_fraction_stderr : ndarray, shape (len(eps),)
        ``P(g <= eps)`` for the decision margin g, and its standard error.
    margin_fraction_predicted : ndarray or None
        The leading order ``(B_1/2) (eps/R) Gamma(D/2) / (Gamma(3/2) Gamma((D-1)/2))`` (sphere
        inputs, linear gates, b = 0; None otherwise).
    quantile_levels, margin_quantiles : ndarray
        Quantiles of the margin.
    flips : tuple of FlipAudit
        The precision audit, one per format.
    note : str
        Why a prediction is missing, where one is.
    layer_number : int or None
        The model's layer number as the checkpoint reader parsed it (``RouterLayer.layer``).

    Attributes
    ----------
    model_layer : int or None
        ``layer_number``, else the layer number read from the tensor name.

    Examples
    --------
    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=8, dim=64, k=2)
    >>> res = ds.audit_checkpoint(path, n_samples=20_000, seed=0, constants_samples=2000)
    >>> layer = res.layers[0]
    >>> layer.M, layer.k, layer.D, layer.model_layer, layer.closed_forms_apply
    (8, 2, 64, 0, True)
    >>> import numpy as np                    # P(g <= eps) near its leading order
    >>> bool(np.all(abs(layer.margin_fraction / layer.margin_fraction_predicted - 1) < 0.3))
    True
    >>> tmp.cleanup()
    """

    name: str
    index: int
    family: str
    routing: str
    M: int
    k: int
    D: int
    n_group: object
    topk_group: object
    has_bias: bool
    has_selection_bias: bool
    norm_folded: bool
    n_samples: int
    row_norm_min: float
    row_norm_max: float
    row_norm_mean: float
    min_pair_distance: float
    closed_forms_apply: bool
    constants: dict          # order -> {"A": (v, se), "B": (v, se), "method": str}; {} for curved
    eps: np.ndarray
    margin_fraction: np.ndarray
    margin_fraction_stderr: np.ndarray
    margin_fraction_predicted: object   # ndarray or None
    quantile_levels: np.ndarray
    margin_quantiles: np.ndarray
    flips: tuple             # FlipAudit per format
    note: str = ""
    layer_number: object = None  # the model's layer, as the checkpoint reader parsed it

    @property
    def model_layer(self):
        """The model's layer number: the checkpoint's (``RouterLayer.layer``), else read from the
        router tensor's name (None if it has none)."""
        if self.layer_number is not None:
            return self.layer_number
        from discosim.checkpoints.families import GENERIC_LAYER, layer_number

        return layer_number(GENERIC_LAYER.search(self.name), self.name)

    def flip(self, fmt):
        for f in self.flips:
            if f.format == fmt:
                return f
        raise KeyError(fmt)

    def to_dict(self):
        pred = (None if self.margin_fraction_predicted is None
                else {"1": list(map(float, self.margin_fraction_predicted))})
        return {
            "name": self.name, "index": self.index, "layer": self.model_layer,
            "family": self.family, "routing": self.routing,
            "M": self.M, "k": self.k, "D": self.D, "n_group": self.n_group,
            "topk_group": self.topk_group, "bias": self.has_bias,
            "selection_bias": self.has_selection_bias, "norm_folded": self.norm_folded,
            "n_samples": self.n_samples,
            "row_norms": {"min": self.row_norm_min, "max": self.row_norm_max,
                          "mean": self.row_norm_mean},
            "min_pair_distance": self.min_pair_distance,
            "closed_forms_apply": self.closed_forms_apply,
            "A": {str(r): list(c["A"]) for r, c in self.constants.items()},
            "B": {str(r): list(c["B"]) for r, c in self.constants.items()},
            "constants_method": {str(r): c["method"] for r, c in self.constants.items()},
            "eps": list(map(float, self.eps)),
            "margin_fraction": {"1": list(map(float, self.margin_fraction))},
            "margin_fraction_stderr": {"1": list(map(float, self.margin_fraction_stderr))},
            "margin_fraction_predicted": pred,
            "margin_quantiles": {f"{q:g}": float(v) for q, v in
                                 zip(self.quantile_levels, self.margin_quantiles)},
            "flip": {f.format: f.to_dict() for f in self.flips},
            "note": self.note,
        }

    def to_rows(self):
        """The layer's rows of :meth:`AuditResult.tidy_rows` (model and inputs left empty)."""
        return AuditResult("", self.family, "", (self,), self.n_samples, self.eps, (),
                           None).to_rows()


@dataclass(frozen=True)
class AuditResult(ResultMixin):
    """Audit of every selected router layer of one model.

    ``to_dict()`` gives plain JSON types (what ``discosim audit --json`` prints);
    :meth:`tidy_rows` one row per layer and quantity (what its CSV holds).

    Parameters
    ----------
    model : str
        Model name (config.json's ``_name_or_path`` or the directory name).
    family : str
        Router family.
    inputs : str
        The input model: ``sphere``, ``ball`` or a hidden-states file.
    layers : tuple of LayerAudit
        One audit per router layer.
    n_samples : int or "auto"
        Inputs per layer (``auto``: the per-layer default).
    eps : ndarray
        Margins of the tube fractions.
    formats : tuple of str
        Float formats of the precision audit.
    seed_entropy : int
        Entropy of the seed.
    notes : tuple of str
        Caveats that apply to the whole model.

    Examples
    --------
    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=8, dim=64, k=2)
    >>> res = ds.audit_checkpoint(path, n_samples=5000, seed=0, constants_samples=0)
    >>> res.family, len(res.layers), res.formats
    ('mixtral', 2, ('bf16', 'fp16'))
    >>> res.tidy_rows()[0]["quantity"]
    'M'
    >>> tmp.cleanup()
    """

    model: str
    family: str
    inputs: str
    layers: tuple
    n_samples: object        # int, or "auto" (per layer: LayerAudit.n_samples)
    eps: np.ndarray
    formats: tuple
    seed_entropy: object
    notes: tuple = ()

    def to_dict(self):
        return {"model": self.model, "family": self.family, "inputs": self.inputs,
                "n_samples": self.n_samples, "formats": list(self.formats),
                "eps": list(map(float, self.eps)), "seed_entropy": self.seed_entropy,
                "notes": list(self.notes), "layers": [l.to_dict() for l in self.layers]}

    def tidy_rows(self):
        """One row per layer x quantity: model, layer, index, family, quantity, parameter, value,
        stderr, predicted, predicted_stderr."""
        rows = []

        def add(layer, quantity, param, value, stderr=None, pred=None, pred_se=None):
            rows.append({"model": self.model, "layer": layer.name, "layer_index": layer.index,
                         "family": layer.family, "inputs": self.inputs, "quantity": quantity,
                         "parameter": param, "value": value, "stderr": stderr, "predicted": pred,
                         "predicted_stderr": pred_se})

        for L in self.layers:
            for q in ("M", "k", "D"):
                add(L, q, "", getattr(L, q))
            add(L, "row_norm_min", "", L.row_norm_min)
            add(L, "row_norm_max", "", L.row_norm_max)
            add(L, "min_pair_distance", "", L.min_pair_distance)
            for r, c in L.constants.items():
                add(L, "A", r, c["A"][0], c["A"][1])
                add(L, "B", r, c["B"][0], c["B"][1])
            for i, e in enumerate(L.eps):
                pred = None if L.margin_fraction_predicted is None else L.margin_fraction_predicted[i]
                add(L, "margin_fraction", float(e), L.margin_fraction[i],
                    L.margin_fraction_stderr[i], pred)
            for q, v in zip(L.quantile_levels, L.margin_quantiles):
                add(L, "margin_quantile", float(q), v)
            for f in L.flips:
                known = math.isfinite(f.predicted)  # the whole-router mode of curved routings
                add(L, "flip_rate", f.format, f.measured, f.stderr,
                    f.predicted if known else None, f.predicted_stderr if known else None)
        return rows

    def to_rows(self):
        """:meth:`tidy_rows` (one row per layer x quantity) in plain JSON types."""
        return to_jsonable(self.tidy_rows())


# --------------------------------------------------------------------------- validation
def _check_eps(eps):
    arr = np.atleast_1d(np.asarray(eps, dtype=float)) if not isinstance(eps, str) else None
    if arr is None or arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"eps must be a non-empty list of finite numbers > 0, got {eps!r}")
    return np.sort(arr)


def _check_formats(formats):
    if formats is None or not isinstance(formats, (str, list, tuple)):
        raise InputError(f"formats must be a list of float formats such as ('bf16', 'fp16'), "
                         f"got {formats!r}")
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f]
    formats = tuple(formats)
    if not formats:
        raise InputError("formats must name at least one float format")
    if len(set(formats)) != len(formats):
        raise InputError(f"formats are named twice: {list(formats)}")
    for f in formats:
        if f not in FORMATS:
            raise InputError(f"unknown float format {f!r}; choose from {', '.join(FORMATS)}")
    return formats


def _load_inputs(inputs):
    """('sphere'|'ball', None) or ('points', {key or None: array-like}) without reading data."""
    if isinstance(inputs, str) and inputs in INPUT_MODELS:
        return inputs, None, inputs
    if isinstance(inputs, np.ndarray):
        return "points", {None: inputs}, f"points[{inputs.shape[0]}]"
    if isinstance(inputs, (str, os.PathLike)):
        path = os.fspath(inputs)
        if not os.path.isfile(path):
            raise InputError(f"inputs must be sphere, ball or a .npy/.npz file of hidden states; "
                             f"no file {path!r}")
        from discosim.model.weights import NpzArrays, map_npy

        # headers only: an .npy is mapped, an .npz member is read when its layer comes
        if path.endswith(".npy"):
            return "points", {None: map_npy(path)}, path
        if path.endswith(".npz"):
            return "points", NpzArrays(path, max_entries=None), path
        raise InputError(f"inputs file must end in .npy or .npz, got {path!r}")
    raise InputError(f"inputs must be 'sphere', 'ball', an (N, D) array or a .npy/.npz path, "
                     f"got {type(inputs).__name__}")


def _points_key(layer, table):
    if None in table:
        return None
    for key in (layer.name, str(layer.index), f"layer_{layer.index}"):
        if key in table:
            return key
    if len(table) == 1:
        return next(iter(table))
    raise InputError(f"inputs npz has no key for layer {layer.name!r} (tried the name, "
                     f"{layer.index!r} and 'layer_{layer.index}'); keys: {sorted(table)[:8]}")


def _point_rows(D):
    """Rows of hidden states converted to float64 at a time: CHUNK, or fewer so that one block
    stays near 32 MB (the chunks, and so the random streams, are those of CHUNK rows)."""
    return max(1, min(CHUNK, (1 << 22) // max(D, 1)))


def _check_points(layer, table):
    key = _points_key(layer, table)
    if hasattr(table, "shape"):  # an .npz: shape and dtype from the member's header
        shape, dtype = tuple(table.shape(key)), table.dtype(key)
    else:  # an array in memory, or an .npy mapped
        shape, dtype = table[key].shape, table[key].dtype
    D = layer.weight.shape[1]
    if len(shape) != 2 or shape[1] != D:
        raise InputError(f"hidden states for layer {layer.name} must have shape (N, {D}), "
                         f"got {shape}")
    if shape[0] < 2:
        raise InputError(f"hidden states for layer {layer.name} need at least 2 rows")
    # checked here, before any arithmetic, so a bad file is one line and never a cast warning
    if dtype.kind not in "fiu":
        raise InputError(f"hidden states for layer {layer.name} must be real numbers, "
                         f"got dtype {dtype}")
    # held as stored (in memory or mapped), converted to float64 by blocks of rows; the margin
    # of every row is kept for the quantiles
    check_memory([(f"hidden states of layer {layer.name!r}", shape[0] * D * dtype.itemsize,
                   "bytes"), (f"the margins of {shape[0]} rows", shape[0], "audit_sample"),
                  (f"router {layer.name!r}", layer.weight.size, "audit_router")],
                 "audit fewer hidden states per layer")
    pts = table[key]
    step = _point_rows(D)
    biggest = 0.0
    for a in range(0, shape[0], step):
        block = np.asarray(pts[a:a + step])
        bad = ~np.all(np.isfinite(block), axis=1)
        if bad.any():
            raise InputError(f"hidden states for layer {layer.name} have non-finite entries "
                             f"(first in row {a + int(np.argmax(bad))})")
        biggest = max(biggest, float(np.max(np.abs(block))) if block.size else 0.0)
    if biggest > 1e150:
        raise InputError(f"hidden states for layer {layer.name} hold values up to {biggest:.3g}: "
                         f"too large to normalise (rescale them)")
    return _Points(pts, getattr(layer, "norm_eps", None))


class _Points:
    """Hidden states as stored, with the eps of the model's norm in front of the router (the
    checkpoint's ``RouterLayer.norm_eps``; None for layers without one: eps 0)."""

    def __init__(self, rows, eps):
        self.rows, self.eps = rows, float(eps or 0.0)
        self.shape = rows.shape

    def __getitem__(self, item):
        return self.rows[item]


def _point_logits(pts, a, b, W, bias, name, folded, layernorm):
    """Logits of hidden-state rows a..b normalised the model's way when the norm is folded into
    W: ``h / sqrt(mean(h^2) + eps)`` (after centring, for a LayerNorm) with the model's eps;
    float64 blocks of :func:`_point_rows` rows."""
    logits = np.empty((b - a, W.shape[0]))
    step = _point_rows(W.shape[1])
    eps = getattr(pts, "eps", 0.0)
    for s in range(a, b, step):
        e = min(b, s + step)
        p = np.asarray(pts[s:e], dtype=np.float64)
        if folded:
            if layernorm:
                p = p - p.mean(axis=1, keepdims=True)
            rms = np.sqrt(np.mean(p * p, axis=1) + eps)
            # a zero row has no direction (every logit equals its bias): refused with or without eps
            if np.any(np.all(p == 0, axis=1)) or not np.all(np.isfinite(rms)):
                raise InputError(f"hidden states for layer {name} have zero or non-finite rows")
            p = p / rms[:, None]
        logits[s - a:e - a] = p @ W.T
    if bias is not None:
        logits += bias
    return logits


# --------------------------------------------------------------------------- per-chunk statistics
def _sphere_or_ball(rng, n, M, D, radius, distribution):
    g = rng.standard_normal((n, M))
    extra = D - M + (2 if distribution == "ball" else 0)
    c = rng.chisquare(extra, size=n) if extra > 0 else np.zeros(n)
    den = np.sqrt(np.sum(g * g, axis=1) + c)
    # radius * g / den, in place: the same two roundings per entry, no temporaries
    np.multiply(g, radius, out=g)
    np.divide(g, den[:, None], out=g)
    return g


def _sample_task(rng, n, Rt, bias, routing, radius, dim, distribution, eps, formats):
    z = _sphere_or_ball(rng, n, Rt.shape[0], dim, radius, distribution)
    logits = z @ Rt.T
    if bias is not None:
        logits += bias
    return logit_stats(rng, logits, routing, eps, formats)


# --------------------------------------------------------------------------- one layer
def _reduce(W, k, name):
    """The gate's :class:`~discosim.model.router.Router` (the one reduction of THEORY §3), its
    errors named by the layer. No bias: the slice constants are properties of the cones of W."""
    try:
        return Router(W, k)
    except InputError as e:
        raise InputError(f"layer {name}: {e}") from None


@dataclass(frozen=True)
class _Reduction:
    reduced_weights: np.ndarray
    gram: np.ndarray


def _reduce_light(W, k, name):
    """``reduced_weights`` and ``gram`` of :func:`_reduce` without the basis Q, bit for bit.

    ``Router`` takes ``W^T = Q R`` with Q formed explicitly (LAPACK dgeqrf then dorgqr); R is the
    upper triangle of dgeqrf's output whether Q is formed or not, so ``qr(W^T, mode="r")`` gives
    the same R (tests/unit/test_audit_reduction.py compares the two). At 256 x 7168 forming Q was
    most of a layer's set-up (and OpenBLAS' threaded dorgqr slowed down by 10-50x on a loaded
    2-core machine). The checks are Router's, with its messages.
    """
    from discosim.model.router import ROW_NORM_RANGE

    def fail(msg):
        raise InputError(f"layer {name}: {msg}")

    M, D = W.shape
    if M < 2:
        fail(f"W must have at least 2 rows (experts), got {M}")
    if M >= D:
        fail(f"need M < D (THEORY §1), got M={M}, D={D}")
    amax = np.max(np.abs(W), axis=1, keepdims=True)
    norms = amax[:, 0] * np.linalg.norm(np.divide(W, amax, out=np.zeros_like(W), where=amax > 0),
                                        axis=1)
    if np.any(norms > ROW_NORM_RANGE[1]) or np.any((norms < ROW_NORM_RANGE[0]) & (norms > 0)):
        fail(f"W has row norms {norms.min():.3g}..{norms.max():.3g}, outside "
             f"[{ROW_NORM_RANGE[0]:g}, {ROW_NORM_RANGE[1]:g}]: rescale W (and b) by one common "
             "factor")
    r = np.linalg.qr(W.T, mode="r")
    sv = np.linalg.svd(r, compute_uv=False)
    tol = sv[0] * max(M, D) * np.finfo(float).eps
    if sv[-1] <= tol:
        rank = int(np.sum(sv > tol))
        fail(f"W is rank-deficient (rank {rank} < M={M}); THEORY §1 needs full row rank")
    signs = np.where(np.diag(r) < 0, -1.0, 1.0)
    r = r * signs[:, None]
    return _Reduction(np.ascontiguousarray(r.T), np.ascontiguousarray(W @ W.T))


def _geometry(gram):
    """Row norms of W and the least distance between two rows, from ``gram = W W^T``."""
    sq = np.diag(gram)
    norms = np.sqrt(sq)
    d2 = sq[:, None] + sq[None, :] - 2 * gram
    iu = np.triu_indices(gram.shape[0], 1)
    return norms, float(np.sqrt(max(np.min(d2[iu]), 0.0)))


def _flip_audit(fmt, sums, n, model, claim, predicted=True):
    """A :class:`FlipAudit` from the summed chunk statistics ``[sum f, sum y, sum y^2, sum f y,
    sum plain, sum plain^2]`` of ``n`` inputs (``predicted`` False: no prediction, NaN)."""
    sf, sy, syy, sfy, sp, spp = sums
    p = sf / n
    if not predicted:
        nan = float("nan")
        return FlipAudit(fmt, float(p), math.sqrt(p * (1 - p) / n), int(sf), int(n), nan, nan,
                         nan, nan, model, False, (int(n), float(sf), nan, nan, nan))
    pred, pred_se = mean_and_stderr(sy, syy, n)
    plain, _ = mean_and_stderr(sp, spp, n)
    second = (sf - 2 * sfy + syy) / n
    diff = p - pred
    dse = math.sqrt(max(second - diff * diff, 0.0) / max(n - 1, 1))
    return FlipAudit(fmt, float(p), math.sqrt(p * (1 - p) / n), int(sf), int(n), float(pred),
                     float(pred_se), dse, float(plain - pred), model, claim,
                     (int(n), float(sf), float(sy), float(syy), float(sfy)))


def _audit_layer(layer, index, mode, table, eps, formats, n_samples, seed_seq, n_jobs,
                 constants_samples, devices=None, router_samples=None, operands=None):
    W = np.asarray(layer.weight, dtype=np.float64)
    M, D = W.shape
    if not np.all(np.isfinite(W)):
        raise InputError(f"layer {layer.name}: gate weight has non-finite entries")
    routing = Routing.of(layer).check(M)
    bias = None if layer.bias is None else np.asarray(layer.bias, dtype=np.float64)
    has_bias = bias is not None and bool(np.any(bias != 0))
    sel_bias = getattr(layer, "selection_bias", None)
    layernorm = bool(getattr(layer, "norm_folded", False)) and getattr(layer, "norm_type", None) == "layernorm"
    if layernorm:
        # a LayerNorm output is centred: it lies on the sphere of radius sqrt(D) in the
        # hyperplane orthogonal to the all-ones vector, so the gate acting on it is W P
        W = W - W.mean(axis=1, keepdims=True)
    if W.shape[0] >= (W.shape[1] - 1 if layernorm else W.shape[1]):
        raise InputError(f"layer {layer.name}: need M < D (THEORY §1), got M={M}, D={D}")
    # the basis Q is needed only by the slice constants (linear families)
    reduced = (_reduce(W, routing.k, layer.name) if routing.linear and constants_samples
               else _reduce_light(W, routing.k, layer.name))
    norms, min_pair = _geometry(reduced.gram)
    # seeded by the checkpoint position: auditing a subset of layers reproduces their numbers
    position = int(getattr(layer, "index", index))
    lseed = derive_seed(seed_seq, position)
    constants = {}
    predicted = None
    note = "" if routing.linear else CURVED_NOTE
    radius = math.sqrt(D)
    dim = D - 1 if layernorm else D  # dimension of the input sphere (or ball)
    if mode == "points":
        pts = _check_points(layer, table)
        folded = bool(getattr(layer, "norm_folded", False))
        chunks = []
        for i, a in enumerate(range(0, pts.shape[0], CHUNK)):
            rng = np.random.Generator(np.random.PCG64(derive_seed(lseed, i)))
            logits = _point_logits(pts, a, min(a + CHUNK, pts.shape[0]), W, bias, layer.name,
                                   folded, layernorm)
            chunks.append(logit_stats(rng, logits, routing, eps, formats))
        del pts
    else:
        n_draw = default_n_samples(M) if n_samples is None else n_samples
        if devices is not None:  # device="cuda": its own streams (discosim._cuda.audit)
            from discosim._cuda.audit import audit_chunks

            chunks = audit_chunks(reduced.reduced_weights, bias, routing, radius, dim, mode, eps,
                                  formats, n_draw, derive_seed(lseed, 1 << 21), devices,
                                  n_jobs=n_jobs)
        else:
            chunks = run_chunks(_sample_task, (reduced.reduced_weights, bias, routing, radius, dim,
                                           mode, eps, formats), n_draw, CHUNK, lseed,
                            n_jobs=n_jobs, progress=False)
    if routing.linear and constants_samples:
        # properties of W alone (cones of THEORY §2), whatever the input model
        from discosim.volumes.constants import slice_constants

        for r in CONSTANT_ORDERS:
            if r > M - 1:
                break
            c = slice_constants(reduced, r, method="mc", n_samples=constants_samples,
                                seed=derive_seed(lseed, 1 << 20, r), n_jobs=n_jobs)
            constants[r] = {"A": (c.alpha_sum, c.alpha_sum_stderr),
                            "B": (c.score_weight_sum, c.score_weight_stderr), "method": c.method}
        if has_bias:
            note = ("router bias: slice constants are the R -> infinity limit (THEORY §2); "
                    "no margin prediction")
        elif mode != "points" and 1 in constants:
            predicted = margin_leading(constants[1]["B"][0], eps, radius, dim, mode)
    n = sum(c["n"] for c in chunks)
    # memory (17 bytes per input at the peak, _core.memory.COST): the chunks' margins are freed
    # once merged, and the quantiles partition the merged array in place
    margins = np.concatenate([c.pop("margin") for c in chunks])
    below = np.sum([c["below"] for c in chunks], axis=0)
    frac = below / n
    frac_se = np.sqrt(frac * (1 - frac) / n)
    keep = np.isfinite(margins)
    finite = margins if keep.all() else margins[keep]
    del keep, margins
    quant = (np.quantile(finite, QUANTILE_LEVELS, overwrite_input=True) if finite.size
             else np.full(len(QUANTILE_LEVELS), np.inf))
    del finite
    flips = []
    if routing.linear:
        model = "tie merge, 1/4 (THEORY §9)"
    elif routing.scores == "softmax":
        model = "softmax scores: no prediction (every input rounded and selected again)"
    else:
        model = "independent rounding errors through the sigmoid (reported, no claim)"
    for fmt in formats:
        flips.append(_flip_audit(fmt, np.sum([c["flip"][fmt] for c in chunks], axis=0), n, model,
                                 routing.linear))
    del chunks
    if mode == "points" and router_samples != 0:
        note = (note + "; " if note else "") + (
            "whole-router mode (FMT-router) not run on hidden states: sphere and ball inputs only")
    elif router_samples != 0:
        ops = WR.router_operands(layer, **(operands or {}))
        if ops is None:
            note = (note + "; " if note else "") + (
                "whole-router mode left out: the stored router weight is unknown (give "
                "stored_weight)")
        else:
            n_router = (WR.default_router_samples(M, D) if router_samples is None
                        else router_samples)
            claims = {fmt: routing.linear and ops.representable(fmt) for fmt in formats}
            rchunks = run_chunks(WR.sample_task, (ops, routing, mode, formats, routing.linear),
                                 n_router, WR.ROUTER_CHUNK, derive_seed(lseed, 1 << 22),
                                 n_jobs=n_jobs, progress=False)
            for fmt in formats:
                model = ("input rounding (Gaussian) + tie merge (issue 22, "
                         "discosim.audit.whole_router)" if routing.linear
                         else "not derived for curved ties (no prediction)")
                flips.append(_flip_audit(fmt + WR.SUFFIX,
                                         np.sum([c["flip"][fmt] for c in rchunks], axis=0),
                                         n_router, model, claims[fmt],
                                         predicted=routing.linear))
    return LayerAudit(
        name=layer.name, index=int(getattr(layer, "index", index)),
        family=str(getattr(layer, "family", "")), routing=routing.kind, M=M, k=routing.k, D=D,
        n_group=getattr(layer, "n_group", None), topk_group=getattr(layer, "topk_group", None),
        has_bias=has_bias, has_selection_bias=sel_bias is not None,
        norm_folded=bool(getattr(layer, "norm_folded", False)), n_samples=int(n),
        row_norm_min=float(norms.min()), row_norm_max=float(norms.max()),
        row_norm_mean=float(norms.mean()), min_pair_distance=min_pair,
        closed_forms_apply=routing.linear, constants=constants, eps=eps, margin_fraction=frac,
        margin_fraction_stderr=frac_se, margin_fraction_predicted=predicted,
        quantile_levels=np.asarray(QUANTILE_LEVELS), margin_quantiles=quant, flips=tuple(flips),
        note=note, layer_number=getattr(layer, "layer", None))


# --------------------------------------------------------------------------- public entry points
def audit_layers(layers, *, model="", family="", inputs="sphere", eps=DEFAULT_EPS,
                 n_samples=None, seed=RUN_DEFAULT.seed, n_jobs=RUN_DEFAULT.n_jobs,
                 formats=("bf16", "fp16"), progress=RUN_DEFAULT.progress,
                 constants_samples=20_000, notes=(), device=RUN_DEFAULT.device,
                 devices=RUN_DEFAULT.devices, options=None, router_samples=None):
    """Audit a sequence of router layers (objects with the attributes of a checkpoint
    ``RouterLayer``: name, index, family, weight, bias, selection_bias, k, routing, n_group,
    topk_group, norm_folded). See :func:`audit_checkpoint` for the parameters.

    Parameters
    ----------
    layers : sequence of RouterLayer
        The layers (or objects with the same attributes); read one at a time.
    model : str
        Model name for the result.
    family : str
        Family name for the result.
    inputs : {"sphere", "ball"}, ndarray (N, D), or path to ``.npy`` / ``.npz``
        Input model, as in :func:`audit_checkpoint`.
    eps : sequence of float
        Margins of the tube fractions ``P(g <= eps)``.
    n_samples : int or None
        Random inputs per layer (None: the per-layer default).
    seed : int, SeedSequence or None
        Seed; layer i draws from a stream derived from its index, so a subset of layers
        reproduces their numbers.
    n_jobs : int
        Workers; the numbers do not depend on it.
    formats : sequence of {"bf16", "fp16", "fp32"}
        Float formats of the precision audit.
    progress : bool or None
        Progress bar over layers (None: when stderr is a terminal).
    constants_samples : int
        Monte Carlo size of the slice constants (0 skips them).
    notes : sequence of str
        Caveats recorded in the result.
    device : {"cpu", "cuda"}
        Where random inputs and their logits are drawn.
    devices : None, int or list of int
        GPUs for ``device="cuda"``.
    options : RunOptions, optional
        seed, n_jobs, progress, device and devices in one object (a name given both ways is an
        error; its backend and force_jobs do not apply).
    router_samples : int or None
        Inputs per layer of the whole-router mode (``bf16-router``, ...; sphere and ball inputs:
        :mod:`discosim.audit.whole_router`); None: its default, 0: left out. A layer whose norm
        is folded needs its stored weight: the attribute ``stored_weight`` (a checkpoint's
        layers are read with it).

    Returns
    -------
    AuditResult
        One :class:`LayerAudit` per layer.

    Examples
    --------
    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=8, dim=64, k=2)
    >>> ckpt = ds.open_checkpoint(path)
    >>> res = ds.audit_layers(ckpt[:1], model="first layer only", n_samples=5000, seed=0,
    ...                       constants_samples=0)
    >>> res.model, [layer.name for layer in res.layers]
    ('first layer only', ['model.layers.0.block_sparse_moe.gate.weight'])
    >>> tmp.cleanup()
    """
    run = resolve_run_options("audit_layers", options, seed=seed, n_jobs=n_jobs,
                              progress=progress, device=device, devices=devices)
    seed, n_jobs, progress = run.seed, run.n_jobs, run.progress
    device, devices = run.device, run.devices
    eps = _check_eps(eps)
    formats = _check_formats(formats)
    if n_samples is not None:
        # each layer keeps its inputs' margins (for the quantiles): memory grows with n_samples
        n_samples = check_int("n_samples", n_samples, 100, MAX_SAMPLES_PER_LAYER)
    n_jobs = check_n_jobs(n_jobs)
    constants_samples = check_int("constants_samples", constants_samples, 0)
    if router_samples is not None:
        router_samples = (0 if router_samples == 0 else
                          check_int("router_samples", router_samples, 100, MAX_SAMPLES_PER_LAYER))
    ss = as_seed_sequence(seed)
    mode, table, label = _load_inputs(inputs)
    from discosim._core.devices import check_device, resolve_devices

    devices = None if check_device(device) == "cpu" else resolve_devices(devices)
    if not hasattr(layers, "__getitem__"):
        layers = list(layers)
    if len(layers) == 0:
        raise InputError("no router layers to audit")
    # Checks before any work. Layers may be read lazily (a checkpoint): with hidden states every
    # layer is read once here to check the shapes, one at a time, never all held at once.
    for j in (range(len(layers)) if mode == "points" else range(1)):
        layer = layers[j]
        W = np.asarray(layer.weight)
        if W.ndim != 2:
            raise InputError(f"layer {layer.name}: gate weight must be 2-dimensional, got {W.shape}")
        Routing.of(layer).check(W.shape[0])
        if mode == "points":
            _check_points(layer, table)
        else:
            n_draw = default_n_samples(W.shape[0]) if n_samples is None else n_samples
            parts = [(f"margins of {n_draw} inputs", n_draw, "audit_sample"),
                     (f"router {layer.name!r}", W.size, "audit_router")]
            if router_samples != 0:
                # whole-router mode: chunks of full-D inputs (x, gamma x, its rounding, exact
                # and model logits) and the stored weight with its copies in each format
                parts += [(f"whole-router inputs ({WR.ROUTER_CHUNK} x {W.shape[1]})",
                           WR.ROUTER_CHUNK * (W.shape[1] + W.shape[0]) * 36, "bytes"),
                          (f"router {layer.name!r} in {len(formats)} formats",
                           W.size * (16 + 12 * len(formats)), "bytes")]
            check_memory(parts, "lower n_samples (or router_samples=0)")
        del layer, W
    from discosim._core.runtime import _progress_bar

    bar = _progress_bar(len(layers), "audit", progress)
    out = []
    try:
        for i in range(len(layers)):
            layer = layers[i]
            ops = layers.operands(i, layer) if hasattr(layers, "operands") else None
            out.append(_audit_layer(layer, i, mode, table, eps, formats, n_samples, ss, n_jobs,
                                    constants_samples, devices, router_samples, ops))
            del layer
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    notes = list(notes)
    if any(not l.closed_forms_apply for l in out):
        notes.append(CURVED_NOTE)
    if any(f.format.endswith(WR.SUFFIX) for l in out for f in l.flips):
        notes.append(SERVING_NOTE)
    return AuditResult(model=str(model), family=str(family), inputs=label, layers=tuple(out),
                       n_samples=(out[0].n_samples if mode == "points" else
                                  n_samples if n_samples is not None else "auto"), eps=eps,
                       formats=formats, seed_entropy=ss.entropy, notes=tuple(notes))


class _LazyLayers:
    """The chosen layers of a checkpoint, read when indexed (one layer in memory at a time)."""

    def __init__(self, ckpt, idx):
        self._ckpt, self._idx = ckpt, list(idx)

    def __len__(self):
        return len(self._idx)

    def __getitem__(self, j):
        return self._ckpt[self._idx[j]]

    def operands(self, j, layer):
        """The stored router weight, LayerNorm bias and router bias of layer j, for the
        whole-router mode (None where the checkpoint object cannot give them)."""
        if not getattr(layer, "norm_folded", False):
            return None
        try:
            plan = self._ckpt._plans[self._idx[j]]
            out = {"stored": self._ckpt._tensor(plan.name)}
            if getattr(plan, "norm_bias", None) is not None:
                out["beta"] = self._ckpt._tensor(plan.norm_bias)
                out["router_bias"] = (None if plan.bias is None else
                                      np.asarray(self._ckpt._tensor(plan.bias), dtype=np.float64))
            return out
        except (AttributeError, KeyError):
            return None


def audit_checkpoint(path_or_checkpoint, *, inputs="sphere", eps=DEFAULT_EPS,
                     n_samples=None, seed=RUN_DEFAULT.seed, n_jobs=RUN_DEFAULT.n_jobs,
                     formats=("bf16", "fp16"), layers=None, progress=RUN_DEFAULT.progress,
                     constants_samples=20_000, device=RUN_DEFAULT.device,
                     devices=RUN_DEFAULT.devices, options=None, router_samples=None, **open_kw):
    """Audit every router of a checkpoint (THEORY §9; see the module docstring).

    For each router layer (the norm in front of it folded into ``W``) and inputs uniform on the
    sphere of radius ``sqrt(D)`` (an RMSNorm output of rms 1; or the ball, or your own hidden
    states), drawn in reduced coordinates: the row-norm geometry; for linear families the slice
    constants ``A_r``, ``B_r`` (r = 1..3, Monte Carlo); the decision margin ``g = g_k - g_{k+1}``
    of the selection scores, its quantiles and ``P(g <= eps)`` next to its leading order; and,
    per float format, the fraction of inputs whose selected experts change when the logits are
    rounded, next to THEORY §9's ``P(flip) ~ (1/4) lim_{eps->0} E[ulp(v) 1{g <= eps}] / eps``.

    Parameters
    ----------
    path_or_checkpoint : str, path or opened checkpoint
        A model directory, a ``.safetensors`` file, or the result of
        :func:`discosim.checkpoints.open_checkpoint`.
    inputs : {"sphere", "ball"}, ndarray (N, D), or path to ``.npy`` / ``.npz``
        Input model (an npz holds one (N, D) array per layer, keyed by the router tensor's name
        or the layer index).
    eps : sequence of float
        Margins at which the tube fractions ``P(g <= eps)`` are reported (selection-score units).
    n_samples : int or None
        Random inputs per layer (sphere and ball); None: :func:`default_n_samples` of the
        layer's M (100k for M >= 64, up to 400k for small M).
    seed : int, SeedSequence or None
        None draws fresh entropy; it is recorded in ``seed_entropy``.
    n_jobs : int
        Workers for the chunks of each layer; the numbers do not depend on it.
    formats : sequence of {"bf16", "fp16", "fp32"}
        Float formats of the precision audit.
    layers : sequence of int, optional
        Positions of the layers to audit (default all).
    progress : bool or None
        Progress bar over layers (None: when stderr is a terminal).
    constants_samples : int
        Monte Carlo size of the slice constants (0 skips them).
    device : {"cpu", "cuda"}
        ``cuda``: random inputs (sphere, ball), their exact float64 logits and margins are
        computed on the GPUs ``devices`` (:mod:`discosim._cuda.audit`; its own random streams,
        the same law); hidden-state inputs and the slice constants stay on the CPU.
    devices : None, int or list of int
        GPUs for ``device="cuda"`` (None: every visible one).
    options : RunOptions, optional
        seed, n_jobs, progress, device and devices in one object (a name given both ways is an
        error; its backend and force_jobs do not apply).
    router_samples : int or None
        Inputs per layer of the whole-router mode: each format f of ``formats`` is also audited
        as ``f-router``, the router as a model in f runs it (input and weight rounded to f,
        fp32 accumulation, logits in f; :mod:`discosim.audit.whole_router`), from inputs drawn
        in the full D dimensions (sphere and ball inputs only). None:
        :func:`~discosim.audit.whole_router.default_router_samples` (585 at 256 x 7168, 20,000
        at 8 x 4096); 0 leaves the mode out. On the CPU whatever ``device``.
    **open_kw
        Passed to ``open_checkpoint`` (family, key_pattern, fold_norm, k, n_group, topk_group).

    Returns
    -------
    AuditResult
        Per layer: geometry, slice constants, margins and the precision audit.

    See Also
    --------
    open_checkpoint : the reader behind it.
    audit_layers : the same for routers already in memory.

    Examples
    --------
    A synthetic Mixtral-like checkpoint (real tensor names, two bf16 shards and a config.json):

    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=8, dim=64, k=2)
    >>> res = ds.audit_checkpoint(path, n_samples=20_000, seed=0, constants_samples=0)
    >>> [layer.name for layer in res.layers]
    ['model.layers.0.block_sparse_moe.gate.weight', 'model.layers.1.block_sparse_moe.gate.weight']

    The measured bf16 flip rate agrees with the THEORY §9 prediction on every layer:

    >>> [layer.flip("bf16").agrees for layer in res.layers]
    [True, True]
    >>> tmp.cleanup()
    """
    run = resolve_run_options("audit_checkpoint", options, seed=seed, n_jobs=n_jobs,
                              progress=progress, device=device, devices=devices)
    seed, n_jobs, progress = run.seed, run.n_jobs, run.progress
    device, devices = run.device, run.devices
    eps = _check_eps(eps)
    formats = _check_formats(formats)
    if n_samples is not None:
        check_int("n_samples", n_samples, 100, MAX_SAMPLES_PER_LAYER)
    if router_samples is not None and router_samples != 0:
        check_int("router_samples", router_samples, 100, MAX_SAMPLES_PER_LAYER)
    check_n_jobs(n_jobs)
    from discosim._core.devices import check_device

    check_device(device)
    # once, here: a caller's Generator is read once, and audit_layers gets the SeedSequence
    seed = as_seed_sequence(seed)
    _load_inputs(inputs)
    if path_or_checkpoint is None or isinstance(path_or_checkpoint, (int, float, bytes)):
        raise InputError(f"path_or_checkpoint must be a model directory, a .safetensors file or an "
                         f"opened checkpoint, got {type(path_or_checkpoint).__name__}")
    if layers is not None and (isinstance(layers, (str, bytes))
                               or not hasattr(layers, "__iter__")):
        raise InputError(f"layers must be a list of layer positions, got {layers!r}")
    if isinstance(path_or_checkpoint, (str, os.PathLike)):
        from discosim.checkpoints import open_checkpoint

        ckpt = open_checkpoint(path_or_checkpoint, **open_kw)
    else:
        if open_kw:
            raise InputError(f"options {sorted(open_kw)} apply only when a path is given")
        ckpt = path_or_checkpoint
    n = len(ckpt)
    if layers is None:
        idx = list(range(n))
    else:
        idx = [check_int("layers", i, 0, n - 1) for i in layers]
        if not idx:
            raise InputError("layers must name at least one layer")
        if len(set(idx)) != len(idx):
            raise InputError(f"layers are named twice: {idx}")
    notes = []
    numbers = [x for x in getattr(ckpt, "layer_numbers", []) if x is not None]
    if numbers:
        gaps = sorted(set(range(min(numbers), max(numbers) + 1)) - set(numbers))
        if gaps:  # dense layers, or router tensors missing from the files: never silent
            notes.append(f"{len(numbers)} routers found at model layers {min(numbers)}..{max(numbers)}; "
                         f"layers {gaps} have none (dense layers, or missing router tensors)")
    return audit_layers(_LazyLayers(ckpt, idx), notes=notes,
                        model=getattr(ckpt, "model_name", "") or "",
                        family=getattr(ckpt, "family", "") or "", inputs=inputs, eps=eps,
                        n_samples=n_samples, seed=seed, n_jobs=n_jobs, formats=formats,
                        progress=progress, constants_samples=constants_samples, device=device,
                        devices=devices, router_samples=router_samples)


def study_rows(params, seed_seq, device="cpu"):
    """Rows of the ``audit`` study (``discosim study audit --set path=A B``): per model and layer,
    the flip rate of each format and the margin fraction at ``eps``, tidy (one row per quantity)."""
    path = params.get("path")
    if not path:
        raise InputError("study audit needs checkpoints: --set path=DIR1 DIR2")
    open_kw = {key: params[key] for key in ("family", "k") if params.get(key)}
    eps = float(params.get("eps", 0.01))
    res = audit_checkpoint(str(path), inputs=params.get("inputs", "sphere"), eps=[eps],
                           n_samples=params.get("n_samples"), seed=seed_seq,
                           router_samples=params.get("router_samples"),
                           progress=False, constants_samples=params.get("constants_samples", 0),
                           device=device, **open_kw)
    rows = []
    for L in res.layers:
        base = {"model": res.model, "family": L.family, "layer": L.name, "layer_index": L.index,
                "M": L.M, "k": L.k, "D": L.D}
        for f in L.flips:
            rows.append({**base, "quantity": "flip_rate", "parameter": f.format, "value": f.measured,
                         "stderr": f.stderr,
                         "predicted": f.predicted if math.isfinite(f.predicted) else None,
                         "agrees": f.agrees if f.claim else None})
        pred = None if L.margin_fraction_predicted is None else float(L.margin_fraction_predicted[0])
        rows.append({**base, "quantity": "margin_fraction", "parameter": eps,
                     "value": float(L.margin_fraction[0]),
                     "stderr": float(L.margin_fraction_stderr[0]), "predicted": pred, "agrees": None})
    return rows
