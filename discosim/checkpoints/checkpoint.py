"""Every router of a checkpoint, read lazily and folded with its norm (THEORY §9, issue 10).

``open_checkpoint`` reads only headers and ``config.json``: it finds the family (config first,
tensor names second), the router tensors in layer order, the norm and bias tensors each needs,
checks every shape and the routing settings, and returns a :class:`Checkpoint`. Indexing it reads
one layer's tensors (router, router bias, selection bias, norm weight and bias: a few MB even for
DeepSeek-V3) and returns a :class:`RouterLayer` whose ``weight`` is the gate that acts on the
normalised input, ``W diag(γ)``.
"""

import os
import re
from dataclasses import dataclass, field

import numpy as np

from discosim._core.errors import InputError, printable
from discosim._core.memory import check_memory
from discosim.checkpoints.config import (check_identity, check_shape_against_config, lookup_eps,
                                         lookup_int, resolve_settings)
from discosim.checkpoints.families import (FAMILIES, KEY_ONLY_ORDER, family_from_config,
                                           layer_number, template_regex)
from discosim.checkpoints.folding import fold_norm
from discosim.checkpoints.store import open_store
from discosim.model.safetensors import DTYPE_NAMES, read_tensor

__all__ = ["open_checkpoint", "Checkpoint", "RouterLayer"]


@dataclass(frozen=True, eq=False)  # arrays: identity equality and hashing, not elementwise
class RouterLayer:
    """One router of a checkpoint, as the routing function sees it.

    Read from a :class:`Checkpoint` (``ckpt[i]``); not made by hand. ``M`` and ``D`` give the
    weight's shape, ``to_dict()`` the metadata without arrays.

    Parameters
    ----------
    name : str
        Tensor name of the router weight.
    index : int
        Position in the checkpoint's router order (``ckpt[index]``).
    family : str
        Router family (``'<name> (guessed)'`` when it was guessed from tensor names).
    weight : ndarray of float64, shape (M, D)
        ``W diag(γ)`` (``W diag(1 + γ)`` for a ``(1 + w)`` norm) when ``norm_folded``, else the
        stored W (read-only).
    bias : ndarray of float64, shape (M,), or None
        Router bias plus ``W β`` from a LayerNorm bias (read-only); added to the logits.
    selection_bias : ndarray of float64, shape (M,), or None
        A selection-only bias added to the scores (DeepSeek-V3, GLM-4-MoE, EXAONE-MoE and
        MiniMax-M2 ``e_score_correction_bias``; ERNIE-4.5's ``moe_statics``).
    k : int
        Active experts per token.
    routing : {'topk', 'deepseek_v3', 'deepseek_v2'}
        The routing function (THEORY §9): top-k of the logits; scores plus selection bias with
        groups scored by their top-2 sum; softmax scores with groups scored by their largest.
    score_func : {'softmax', 'sigmoid'}
        The score transform (top-k of a monotone transform has the linear gate's ties).
    n_group, topk_group : int or None
        Group-limited selection; None when every group is kept.
    norm_folded : bool
        Whether the norm weight was folded into ``weight``.
    norm_key : str or None
        Tensor name of the norm weight folded in.
    dtype : str
        Stored dtype of the router weight ('bfloat16', 'float16', 'float32', 'float64').
    layer : int or None
        The model's layer (block) number taken from the tensor name.
    norm_type : {'rmsnorm', 'layernorm'} or None
        Kind of norm in front of the router; a LayerNorm also centres its input, so the
        normalised inputs lie in the hyperplane orthogonal to the all-ones vector.
    norm_form : {'rmsnorm', 'rmsnorm_1p', 'layernorm'} or None
        The norm's form: ``w x̂``, ``(1 + w) x̂`` (folded as ``W diag(1 + w)``), LayerNorm, or
        None when nothing normalises the router's input (FlexOlmo, a ``key_pattern``).
    norm_eps : float or None
        The eps of ``sqrt(mean(h^2) + eps)``, from the family's config field.

    Examples
    --------
    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=8, dim=64, k=2)
    >>> layer = ds.open_checkpoint(path)[1]
    >>> layer.name, layer.index, layer.layer
    ('model.layers.1.block_sparse_moe.gate.weight', 1, 1)
    >>> layer.weight.shape, layer.dtype, layer.norm_folded
    ((8, 64), 'bfloat16', True)

    The experts the model selects for residual-stream states (the input of the norm):

    >>> import numpy as np
    >>> hidden = np.random.default_rng(0).standard_normal((3, 64))
    >>> layer.select(hidden).sum(axis=1).tolist(), layer.norm_eps
    ([2, 2, 2], 1e-05)
    >>> tmp.cleanup()
    """

    name: str
    index: int
    family: str
    weight: np.ndarray = field(repr=False)
    bias: np.ndarray = field(repr=False)
    selection_bias: np.ndarray = field(repr=False)
    k: int
    routing: str
    score_func: str
    n_group: int
    topk_group: int
    norm_folded: bool
    norm_key: str
    dtype: str
    layer: int = None
    norm_type: str = None
    norm_form: str = None
    norm_eps: float = None

    @property
    def M(self):
        return self.weight.shape[0]

    @property
    def D(self):
        return self.weight.shape[1]

    def to_dict(self):
        """Metadata of the layer (no arrays), JSON-serialisable."""
        return {"name": self.name, "index": self.index, "family": self.family, "M": self.M,
                "D": self.D, "k": self.k, "routing": self.routing, "score_func": self.score_func,
                "n_group": self.n_group, "topk_group": self.topk_group,
                "norm_folded": self.norm_folded, "norm_key": self.norm_key, "dtype": self.dtype,
                "layer": self.layer, "norm_type": self.norm_type,
                "norm_form": self.norm_form, "norm_eps": self.norm_eps,
                "has_bias": self.bias is not None,
                "has_selection_bias": self.selection_bias is not None}

    def normalise(self, hidden):
        """The router's input without the norm weight: ``h / sqrt(mean(h^2) + eps)`` (after
        centring, for a LayerNorm), or ``h`` itself when no norm is folded in (the weight of the
        norm, or ``1 + w``, is in :attr:`weight`). float64, shape (N, D)."""
        h = np.asarray(hidden, dtype=np.float64)
        if h.ndim != 2 or h.shape[1] != self.D:
            raise InputError(f"hidden states for {self.name} must have shape (N, {self.D}), got "
                             f"{h.shape}")
        if not np.all(np.isfinite(h)):
            raise InputError(f"hidden states for {self.name} have non-finite entries")
        if not self.norm_folded or self.norm_form is None:
            return h
        if self.norm_form == "layernorm":
            h = h - h.mean(axis=1, keepdims=True)
        scale = np.sqrt(np.mean(h * h, axis=1) + self.norm_eps)
        if np.any(scale == 0):
            raise InputError(f"hidden states for {self.name} have a zero row and the norm's eps "
                             f"is 0: the norm is undefined there")
        return h / scale[:, None]

    def logits(self, hidden):
        """Router logits (N, M) in float64 for residual-stream states ``hidden`` (N, D), the
        input of the norm in front of the router (the router's own input where there is none):
        the model's norm with its eps, then ``W x + b``."""
        out = self.normalise(hidden) @ self.weight.T
        if self.bias is not None:
            out += self.bias
        return out

    def select(self, hidden):
        """Boolean (N, M): the experts the model selects for residual-stream states ``hidden``
        (score function, selection bias, groups and top-k of :attr:`routing`, in float64; ties go
        to the lower expert index)."""
        from discosim.model.selection import Routing

        return Routing.of(self).select(self.logits(hidden))


@dataclass(frozen=True)
class _Plan:
    """What to read for one router (tensor names; None where absent)."""

    name: str
    layer: int
    bias: str
    selection_bias: str
    norm_weight: str
    norm_bias: str
    plus_one: bool = False


class Checkpoint:
    """The routers of one checkpoint, in layer order; ``ckpt[i]`` reads layer i lazily.

    Made by :func:`open_checkpoint`; not constructed by hand. ``len(ckpt)`` routers; indexing
    (also negative, or a slice) and iteration read :class:`RouterLayer` objects one at a time, and
    only the router and norm tensors (expert weights are never touched).

    Parameters
    ----------
    path : str or path-like
        The path given to :func:`open_checkpoint`.
    store : object
        The opened tensor store (index, shards, config.json).
    family_name : str
        The family's name.
    family : object
        Its entry in the family table.
    plans : sequence
        Per router: the tensors to read.
    settings : object
        k, routing, score function and groups.
    M, D : int
        Shape of every router.
    fold : bool
        Whether norms are folded into the routers.
    detected_by : {'argument', 'config', 'keys', 'key_pattern'}
        How the family was found.
    norm : tuple
        ``(norm_form, eps)`` of the norm folded in front of every router, ``(None, None)`` when
        none is.

    Attributes
    ----------
    path, root : str
        As given; the directory holding the tensors and config.json.
    family : str
    model_name : str
    config : dict
    layer_names : list of str
        Router tensor names in layer order.
    detected_by : {'argument', 'config', 'keys', 'key_pattern'}
        How the family was found; 'keys' means config.json named no model_type (or there is no
        config.json) and the family was *guessed* from tensor names: ``guessed`` is True and
        ``family`` reads ``'<name> (guessed)'`` (so every report shows it).
    family_name : str
        The registry name ('custom' for a key_pattern), without the label.
    guessed : bool
        True when the family comes from tensor names alone.
    M, D, k, routing, score_func, n_group, topk_group, norm_type, norm_form, norm_eps, fold_norm
        Settings shared by every layer.

    Examples
    --------
    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=8, dim=64, k=2)
    >>> ckpt = ds.open_checkpoint(path)
    >>> ckpt
    Checkpoint('synthetic/mixtral', family='mixtral', routers=2, M=8, D=64, k=2)
    >>> len(ckpt), ckpt.detected_by, [layer.index for layer in ckpt]
    (2, 'config', [0, 1])
    >>> tmp.cleanup()
    """

    def __init__(self, path, store, family_name, family, plans, settings, M, D, fold,
                 detected_by, norm=(None, None)):
        self.path = os.fspath(path)
        self.root = store.root
        self.config = store.config
        self.family_name = family_name
        self.guessed = detected_by == "keys"
        self.family = f"{family_name} (guessed)" if self.guessed else family_name
        self.detected_by = detected_by
        self._family = family
        self._store = store
        self._plans = tuple(plans)
        self.layer_names = [p.name for p in plans]
        self.layer_numbers = [p.layer for p in plans]  # the model's layer of each router
        self.M, self.D = M, D
        self.k = settings.k
        self.routing = settings.routing
        self.score_func = settings.score_func
        self.n_group = settings.n_group
        self.topk_group = settings.topk_group
        self.fold_norm = fold
        form = norm[0] if (family is not None and fold) else None
        self.norm_form = form
        self.norm_type = "rmsnorm" if form == "rmsnorm_1p" else form
        self.norm_eps = norm[1] if form is not None else None
        name = self.config.get("_name_or_path")
        if not isinstance(name, str) or not name:
            name = os.path.basename(store.root.rstrip(os.sep)) or self.config.get("model_type")
        self.model_name = str(name)

    def __len__(self):
        return len(self._plans)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self):
        return (f"Checkpoint({self.model_name!r}, family={self.family!r}, routers={len(self)}, "
                f"M={self.M}, D={self.D}, k={self.k})")

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise InputError(f"router index must be an integer in [{-n}, {n - 1}], got {i!r}")
        i = int(i) % n
        return self._read(i)

    def _tensor(self, name):
        return read_tensor(self._store.infos[name])

    def _read(self, i):
        plan = self._plans[i]
        weight = self._tensor(plan.name)
        _finite(weight, f"router {plan.name}")
        bias = None
        if plan.bias is not None:
            bias = self._tensor(plan.bias)
            _finite(bias, f"router bias {plan.bias}")
        selection_bias = None
        if plan.selection_bias is not None:
            selection_bias = self._tensor(plan.selection_bias).reshape(-1)  # ERNIE stores (1, M)
            _finite(selection_bias, f"selection bias {plan.selection_bias}")
        if plan.norm_weight is not None:
            gamma = self._tensor(plan.norm_weight)
            beta = self._tensor(plan.norm_bias) if plan.norm_bias is not None else None
            weight, extra = fold_norm(weight, gamma, beta, where=plan.name,
                                      plus_one=plan.plus_one)
            if extra is not None:
                bias = extra if bias is None else bias + extra
        for a in (weight, bias, selection_bias):
            if a is not None:
                a.setflags(write=False)
        return RouterLayer(
            name=plan.name, index=i, family=self.family, weight=weight, bias=bias,
            selection_bias=selection_bias, k=self.k, routing=self.routing,
            score_func=self.score_func, n_group=self.n_group, topk_group=self.topk_group,
            norm_folded=plan.norm_weight is not None, norm_key=plan.norm_weight,
            dtype=DTYPE_NAMES[self._store.infos[plan.name].dtype], layer=plan.layer,
            norm_type=self.norm_type if plan.norm_weight is not None else None,
            norm_form=self.norm_form if plan.norm_weight is not None else None,
            norm_eps=self.norm_eps if plan.norm_weight is not None else None)


def _finite(a, what):
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what} has non-finite entries (NaN or inf)")


_ROUTER_LIKE = re.compile(r"router|gate|e_score_correction|moe_statics", re.IGNORECASE)
_NOT_ROUTER = re.compile(r"gate_proj|gate_up_proj|up_gate", re.IGNORECASE)


def _router_like(keys, limit=6):
    """Distinct router-like tensor names with layer numbers replaced by {i}, for error messages."""
    seen = []
    for key in sorted(keys):
        if _ROUTER_LIKE.search(key) and not _NOT_ROUTER.search(key):
            generic = re.sub(r"\.\d+\.", ".{i}.", key)
            if generic not in seen:
                seen.append(generic)
    if not seen:
        return f"no router-like tensor names among {len(keys)} tensors"
    more = f" (+{len(seen) - limit} more)" if len(seen) > limit else ""
    return "router-like tensors seen: " + ", ".join(seen[:limit]) + more


def _order(match, key):
    # encoder before decoder (Switch), then the numbers in the name in order; a run of digits
    # sorts by (length, digits) without leading zeros: numeric order, and no int() of a name's
    # 5000-digit run (Python refuses those)
    stack = 1 if key.startswith("decoder") else 0
    parts = re.split(r"([0-9]+)", key)
    return (stack,) + tuple((len(t.lstrip("0")), t.lstrip("0"), t) if i % 2 else t
                            for i, t in enumerate(parts))


def _match(regex, keys):
    found = []
    for key in keys:
        m = regex.fullmatch(key)
        if m is not None:
            found.append((key, m))
    return found


def _selection_bias_key(family, match, keys):
    """The first of the family's selection-bias templates present in ``keys``, else None."""
    groups = match.groupdict()
    for template in family.selection_bias:
        name = template.format(**{g: v or "" for g, v in groups.items()})
        if name in keys:
            return name
    return None


def _tell_holds(family, found, keys, norm_present=True):
    """Key-only detection: the family's telling tensor is present and (first pass) its norm is
    where it says (Jamba's ``pre_ff_layernorm`` vs Llama-4's ``post_attention_layernorm``,
    Cohere's ``input_layernorm``)."""
    if norm_present and family.norm is not None and not any(
            family.norm.format(**m.groupdict()) + ".weight" in keys for _, m in found):
        return False
    if family.tell == "selection_bias":
        return any(_selection_bias_key(family, m, keys) is not None for _, m in found)
    if family.tell == "norm_bias":
        return any(family.norm.format(**m.groupdict()) + ".bias" in keys for _, m in found)
    return True


def _sibling(router_key, suffix):
    return router_key[: -len("weight")] + suffix if router_key.endswith("weight") else None


_NAME_ONE = ("name the family with family= (--family) only if the model's modeling code routes "
             "exactly as that family's row of the README family table says")


def _choose(store, family, key_pattern, path):
    """(family name, Family or None, [(key, match)], how) for the routers of the checkpoint."""
    keys = store.infos
    if key_pattern is not None:
        if family is not None:
            raise InputError("pass family or key_pattern, not both")
        if not isinstance(key_pattern, str) or not key_pattern:
            raise InputError(f"key_pattern must be a non-empty string, got {key_pattern!r}")
        try:
            regex = template_regex(key_pattern)
        except re.error as exc:
            raise InputError(f"key_pattern {key_pattern!r} is not a valid regex: {exc}") from None
        found = _match(regex, keys)
        if not found:
            raise InputError(f"no tensor in {path} matches key_pattern {key_pattern!r}; "
                             f"{_router_like(keys)}")
        return "custom", None, found, "key_pattern"
    if family is not None:
        if not isinstance(family, str) or family not in FAMILIES:
            raise InputError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
        fam = FAMILIES[family]
        found = _match(fam.router_regex, keys)
        if not found:
            raise InputError(f"no {family} router ({fam.router}) in {path}; {_router_like(keys)}")
        return fam.name, fam, found, "argument"
    fam = family_from_config(store.config)
    if fam is not None:
        found = _match(fam.router_regex, keys)
        if not found:
            raise InputError(f"config.json names a {fam.name} model but no tensor in {path} "
                             f"matches {fam.router}; {_router_like(keys)}")
        return fam.name, fam, found, "config"
    model_type = store.config.get("model_type")
    if model_type is not None:
        # a model type we have not read the modeling code of: its norm, scores or selection bias
        # may differ from any family whose tensor names it shares, so never guess
        raise InputError(f"config.json model_type {printable(model_type)!r} is not a known router "
                         f"family; {_router_like(keys)}; {_NAME_ONE}")
    for norm_present in (True, False):  # a family whose norm is there first
        for name in KEY_ONLY_ORDER:
            fam = FAMILIES[name]
            found = _match(fam.router_regex, keys)
            if found and _tell_holds(fam, found, keys, norm_present):
                return fam.name, fam, found, "keys"
    raise InputError(f"no router found in {path} (unknown layout); {_router_like(keys)}; "
                     f"{_NAME_ONE} (key_pattern audits named tensors as a plain top-k of W x, "
                     f"no norm folded: the model's routing only if it has no norm weight, bias "
                     f"or selection bias)")


def _check_float(store, name, what):
    info = store.infos[name]
    if info.dtype not in DTYPE_NAMES:
        raise InputError(f"{what} {name} is stored as {info.dtype}; only "
                         f"{', '.join(DTYPE_NAMES)} can be read exactly")
    return info


def open_checkpoint(path, *, family=None, key_pattern=None, fold_norm=True, k=None, n_group=None,
                    topk_group=None):
    """Open the routers of a checkpoint (headers and config only; layers are read on access).

    Parameters
    ----------
    path : str or path-like
        A model directory (``model.safetensors.index.json`` with its shards, or one
        ``model.safetensors``; ``config.json`` beside it when present), or one ``.safetensors``
        file.
    family : str, optional
        One of :data:`FAMILIES`; by default taken from config.json (``model_type``,
        ``architectures``), else from the tensor names.
    key_pattern : str, optional
        The user's own router tensors: a template with ``{i}`` for the layer number (e.g.
        ``'blocks.{i}.moe.router.weight'``) or a regex (full match). Family 'custom': top-k of
        logits, no norm folded, a ``.bias`` beside a ``.weight`` read as the router bias; k from
        the argument or config.json.
    fold_norm : bool
        Fold the weight of the norm in front of each router into W (and a LayerNorm bias into a
        router bias). False audits the stored W as is.
    k, n_group, topk_group : int, optional
        Override config.json (groups: DeepSeek-V3 only).

    Returns
    -------
    Checkpoint
        The routers in layer order, read lazily.

    Raises
    ------
    InputError
        One line for: a missing file or shard, an index naming a tensor its shard lacks, no
        router found, a router that is not 2-D, routers of different shapes, M >= D, a norm or
        bias of the wrong length, a missing norm (pass ``fold_norm=False``), a non-float dtype,
        k or groups out of range, a config.json whose expert count or width disagrees.

    Examples
    --------
    A synthetic checkpoint with Mixtral's tensor names, two bf16 shards and a config.json
    (:func:`discosim.checkpoints.synthetic.make_checkpoint`):

    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=8, dim=64, k=2)
    >>> ckpt = ds.open_checkpoint(path)
    >>> ckpt.family, ckpt.k, len(ckpt)
    ('mixtral', 2, 2)
    >>> ckpt.layer_names[0]
    'model.layers.0.block_sparse_moe.gate.weight'
    >>> ckpt[0].weight.shape                    # W diag(gamma): the RMSNorm weight folded in
    (8, 64)
    >>> tmp.cleanup()
    """
    if not isinstance(fold_norm, (bool, np.bool_)):
        raise InputError(f"fold_norm must be True or False, got {fold_norm!r}")
    store = open_store(path)
    check_identity(store.config)
    family_name, fam, found, how = _choose(store, family, key_pattern, os.fspath(path))
    keys = store.infos
    if fam is not None and fam.layer_limit_field is not None:
        _, limit = lookup_int(store.config, (fam.layer_limit_field,), fam.layer_limit_field)
        if limit is not None:
            found = [(key, m) for key, m in found if layer_number(m, key) < limit]
            if not found:
                raise InputError(f"every {family_name} router in {path} has a layer number >= "
                                 f"config.json {fam.layer_limit_field} = {limit}")
    found.sort(key=lambda km: _order(km[1], km[0]))

    shape = None
    for key, _ in found:
        info = _check_float(store, key, "router")
        if len(info.shape) != 2:
            raise InputError(f"router {key} must be 2-D (experts x width), got shape "
                             f"{list(info.shape)}")
        if shape is None:
            shape = info.shape
        elif info.shape != shape:
            raise InputError(f"routers have different shapes: {found[0][0]} is {list(shape)}, "
                             f"{key} is {list(info.shape)}")
    M, D = shape
    # one router layer is read at a time: its entries must fit, checked before any is read
    check_memory([(f"router {found[0][0]!r} of shape [{M}, {D}]", M * D, "audit_router")],
                 "this router is wider than discosim can read")
    form, eps = None, None
    if fold_norm and fam is not None and fam.norm is not None:
        form, eps_fields, eps_default = fam.resolve_norm(store.config)
        eps = lookup_eps(store.config, eps_fields, eps_default)[1]
    plans = []
    for key, m in found:
        bias = _sibling(key, "bias")
        bias = bias if bias in keys else None
        sel = _selection_bias_key(fam, m, keys) if fam is not None else None
        for extra, what in ((bias, "router bias"), (sel, "selection bias")):
            if extra is not None:
                e = _check_float(store, extra, what)
                if tuple(e.shape) not in ((M,), (1, M)):
                    raise InputError(f"{what} {extra} has shape {list(e.shape)}, expected [{M}] "
                                     f"(one per expert)")
        norm_w = norm_b = None
        if form is not None:
            base = fam.norm.format(**m.groupdict())
            norm_w = base + ".weight"
            if norm_w not in keys:
                raise InputError(f"norm weight {norm_w} in front of router {key} is not in the "
                                 f"checkpoint: a truncated checkpoint, or not a {fam.name} model "
                                 f"(fold_norm=False would audit W without the model's norm, not "
                                 f"its routing)")
            for name, what in ((norm_w, "norm weight"), (base + ".bias", "norm bias")):
                if name in keys:
                    e = _check_float(store, name, what)
                    if e.shape != (D,):
                        raise InputError(f"{what} {name} has shape {list(e.shape)}, expected "
                                         f"[{D}] (the router's width)")
            if base + ".bias" in keys and form == "layernorm":
                norm_b = base + ".bias"
        layer = layer_number(m, key)
        plans.append(_Plan(name=key, layer=layer, bias=bias, selection_bias=sel,
                           norm_weight=norm_w, norm_bias=norm_b,
                           plus_one=form == "rmsnorm_1p"))
    if M < 2:
        raise InputError(f"router {found[0][0]} has {M} expert; routing needs at least 2")
    if M >= D:
        raise InputError(f"router {found[0][0]} has M = {M} experts >= width D = {D}; THEORY "
                         f"assumes M < D (every real MoE model has it)")
    check_shape_against_config(store.config, fam, M, D, found[0][0])
    settings = resolve_settings(store.config, fam, M, k=k, n_group=n_group, topk_group=topk_group)
    return Checkpoint(path, store, family_name, fam, plans, settings, M, D, bool(fold_norm), how,
                      norm=(form, eps))
