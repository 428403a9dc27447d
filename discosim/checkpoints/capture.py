"""Hidden states from real text: every router's input, captured by running the model (issue 22).

:func:`capture_states` loads a model directory with ``transformers`` (``local_files_only``: no
network), runs it on texts and saves, for every router the checkpoint reader finds
(:func:`~discosim.checkpoints.checkpoint.open_checkpoint`), the hidden state of every real token
*entering the norm in front of that router* (the residual stream at that point; for a family with
no norm in front of its router, the router's own input). The audit applies the model's own norm
(its weight, its eps, centring for a LayerNorm) to these states, so they must be the norm's input,
not its output: ``discosim audit MODEL --inputs STATES.npz`` then routes exactly as the model does.

The ``.npz`` holds one ``(N, D)`` member per router, named by the router's tensor name (the first
key :func:`discosim.audit.estimators.audit_layers` looks up), float32 for bf16/fp16/fp32 models
(a lossless widening), float64 for float64 models. Rows are streamed: each layer's rows go to a
scratch file beside the output as each batch runs, and the ``.npz`` is assembled from them
(uncompressed, ZIP64) and moved into place atomically (:func:`discosim._core.io.open_atomic`),
so memory holds one batch and an interrupted run leaves no half-written file.

``transformers`` and ``torch`` are the optional extra ``pip install 'discosim[capture]'``; they are
imported only by :func:`capture_states`, and their absence is one line naming the extra.
"""

import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass

import numpy as np

from discosim._core.errors import InputError, check_int, printable
from discosim._core.io import open_atomic
from discosim._core.memory import AVAILABLE_BYTES, COST, check_memory

__all__ = ["capture_states", "CaptureResult", "StatesWriter", "read_texts", "hook_points",
           "audit_rows_limit", "EXTRA", "DEFAULT_MAX_TOKENS", "DEFAULT_MAX_LENGTH",
           "DEFAULT_BATCH_TOKENS", "DTYPES"]

EXTRA = "pip install 'discosim[capture]'"
DEFAULT_MAX_TOKENS = 50_000     # tokens per router (the audit's hidden-state rows)
DEFAULT_MAX_LENGTH = 512        # tokens per text (longer texts are cut)
DEFAULT_BATCH_TOKENS = 4096     # tokens per forward pass, padding included
DTYPES = ("auto", "float32", "bfloat16", "float16", "float64")
_COPY_BLOCK = 1 << 22           # bytes copied at a time from a scratch file into the .npz
_MAX_TEXT_BYTES = 1 << 30       # a texts file larger than this is refused (it is read whole)


def audit_rows_limit(D, M, itemsize=4):
    """The most hidden-state rows of width ``D`` the audit reads for one router of ``M`` experts.

    The audit holds one layer's rows as stored (``itemsize`` bytes per entry), the margin of each
    row and the router (:func:`discosim.audit.estimators.audit_layers`, the same budget): a capture
    of more tokens would write a file the audit refuses.

    Parameters
    ----------
    D : int
        Width of a hidden state (the router's input dimension).
    M : int
        Experts of the router.
    itemsize : int, optional
        Bytes per stored entry (4 for the float32 states of a bf16/fp16/fp32 model, 8 for
        float64).

    Returns
    -------
    int
        The most rows (tokens) the audit accepts for such a router, >= 0.

    Examples
    --------
    >>> from discosim.checkpoints.capture import audit_rows_limit
    >>> audit_rows_limit(D=4096, M=8) > 100_000
    True
    >>> audit_rows_limit(D=4096, M=8, itemsize=8) < audit_rows_limit(D=4096, M=8)
    True
    """
    per_row = D * itemsize * COST["bytes"] + COST["audit_sample"]
    return max(0, (AVAILABLE_BYTES - M * D * COST["audit_router"]) // per_row)


def read_texts(path):
    """The texts of ``path``: one per non-empty line, or, for a ``.jsonl`` file, the ``"text"``
    field of one JSON object per line.

    Parameters
    ----------
    path : str or path-like
        A UTF-8 text file, or a ``.jsonl`` file (by its ending, in any case), of at most 1 GiB.

    Returns
    -------
    list of str
        The texts in file order; blank lines (and ``.jsonl`` texts that are blank) are skipped.

    Raises
    ------
    InputError
        A missing or unreadable file, invalid UTF-8, a ``.jsonl`` line that is not an object with
        a string ``"text"``, or no text at all.

    Examples
    --------
    >>> import os, tempfile
    >>> from discosim.checkpoints.capture import read_texts
    >>> d = tempfile.mkdtemp()
    >>> p = os.path.join(d, "texts.txt")
    >>> _ = open(p, "w").write("The cat sat.\\n\\nA second text.\\n")
    >>> read_texts(p)
    ['The cat sat.', 'A second text.']
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"texts file not found: {path}")
    size = os.path.getsize(path)
    if size > _MAX_TEXT_BYTES:
        raise InputError(f"texts file {path} holds {size} bytes; at most {_MAX_TEXT_BYTES} are "
                         f"read (split it, or cut it: --max-tokens stops early anyway)")
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"texts file {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"cannot read texts file {path}: {exc.strerror or exc}") from None
    texts = []
    jsonl = path.lower().endswith(".jsonl")
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if jsonl:
            try:
                obj = json.loads(line)
            except ValueError:
                raise InputError(f"{path} line {n} is not JSON") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise InputError(f"{path} line {n} must be an object with a string \"text\"")
            if obj["text"].strip():
                texts.append(obj["text"])
        else:
            texts.append(line)
    if not texts:
        raise InputError(f"texts file {path} holds no text")
    return texts


def hook_points(ckpt, layers=None):
    """``[(router tensor name, module path, where)]`` for the routers at positions ``layers``.

    ``where`` is ``'norm'`` (the module is the norm in front of the router, from the family
    registry's :attr:`~discosim.checkpoints.families.Family.norm` template) or ``'router'`` (a
    family with no norm there, or a router named by ``key_pattern``: the router module itself).
    Module paths are checkpoint names; :func:`capture_states` maps them onto the loaded model.

    Parameters
    ----------
    ckpt : Checkpoint
        An opened checkpoint (:func:`~discosim.checkpoints.checkpoint.open_checkpoint`).
    layers : sequence of int, optional
        Router positions ``0 <= i < len(ckpt)``, distinct (default: every router).

    Returns
    -------
    list of tuple of str
        ``(router tensor name, module path, where)`` for each position, in the order given.

    Raises
    ------
    InputError
        A position that is not an integer in ``[0, len(ckpt) - 1]``, or a repeated position.

    Examples
    --------
    >>> import tempfile
    >>> import discosim as ds
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> from discosim.checkpoints.capture import hook_points
    >>> tmp = tempfile.TemporaryDirectory()
    >>> ckpt = ds.open_checkpoint(make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=4,
    ...                                           dim=16, k=2))
    >>> name, module, where = hook_points(ckpt, [1])[0]
    >>> name, where
    ('model.layers.1.block_sparse_moe.gate.weight', 'norm')
    >>> module
    'model.layers.1.post_attention_layernorm'
    >>> tmp.cleanup()
    """
    from discosim.checkpoints.families import FAMILIES

    n = len(ckpt)
    positions = list(range(n)) if layers is None else list(layers)
    for i in positions:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < n:
            raise InputError(f"router position must be an integer in [0, {n - 1}], got {i!r}")
    if len(set(positions)) != len(positions):
        raise InputError(f"router positions repeat: {positions}")
    fam = FAMILIES.get(ckpt.family)
    out = []
    for i in positions:
        name = ckpt.layer_names[i]
        norm = getattr(fam, "norm", None) if fam is not None else None
        m = fam.router_regex.fullmatch(name) if fam is not None else None
        if norm is not None and m is not None:
            out.append((name, norm.format(**m.groupdict()), "norm"))
        else:
            base = name[:-len(".weight")] if name.endswith(".weight") else name
            out.append((name, base, "router"))
    return out


class StatesWriter:
    """Rows of hidden states per router, streamed to scratch files and assembled into one
    ``.npz`` moved into place atomically.

    Use as a context manager: leaving the block without an exception writes the file (every
    member must hold the same number of rows); an exception, Ctrl-C included, leaves no file and
    no scratch files. ``add(name, rows)`` appends ``(n, D)`` rows to one member.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` to write.
    names : sequence of str
        Member names (router tensor names), in order.
    D : int
        Width of every row.
    dtype : {'float32', 'float64'}
        Stored dtype (rows are converted to it).

    Raises
    ------
    InputError
        Member names that are empty, repeat or hold a NUL; ``D`` not a positive integer; another
        dtype. On entering, a folder that does not exist or cannot be written; on leaving,
        members with different numbers of rows, or none.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from discosim.checkpoints.capture import StatesWriter
    >>> d = tempfile.mkdtemp()
    >>> with StatesWriter(os.path.join(d, "s.npz"), ["a.weight", "b.weight"], D=3) as w:
    ...     for _ in range(2):
    ...         w.add("a.weight", np.ones((2, 3)))
    ...         w.add("b.weight", np.zeros((2, 3)))
    >>> z = np.load(os.path.join(d, "s.npz"))
    >>> sorted(z.files), z["a.weight"].shape, z["a.weight"].dtype
    (['a.weight', 'b.weight'], (4, 3), dtype('float32'))
    """

    def __init__(self, path, names, D, dtype="float32"):
        self.path = os.fspath(path)
        self.names = list(names)
        if not self.names or len(set(self.names)) != len(self.names):
            raise InputError(f"states need distinct member names, got {self.names[:4]}")
        for name in self.names:
            if not isinstance(name, str) or not name or "\x00" in name:
                raise InputError(f"bad member name {name!r}")
        self.D = check_int("D", D, 1)
        if dtype not in ("float32", "float64"):
            raise InputError(f"states dtype must be float32 or float64, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.rows = dict.fromkeys(self.names, 0)
        self._dir = None
        self._files = {}

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise InputError(f"folder of {self.path} does not exist")
        try:
            self._dir = tempfile.mkdtemp(prefix=".discosim-capture-", dir=folder)
            for j, name in enumerate(self.names):
                self._files[name] = open(os.path.join(self._dir, f"{j}.raw"), "wb")
        except OSError as exc:
            self._cleanup()
            raise InputError(f"cannot write beside {self.path}: {exc.strerror or exc}") from None
        return self

    def add(self, name, rows):
        """Append ``rows`` (array-like of shape ``(n, D)``) to member ``name``."""
        if name not in self._files:
            raise InputError(f"no member {name!r} in this states file")
        a = np.asarray(rows)
        if a.ndim != 2 or a.shape[1] != self.D:
            raise InputError(f"rows for {name} must have shape (n, {self.D}), got {a.shape}")
        a = np.ascontiguousarray(a, dtype=self.dtype)
        self._files[name].write(a.tobytes())  # C order, native little-endian on every target
        self.rows[name] += a.shape[0]

    def __exit__(self, kind, exc, tb):
        try:
            for fh in self._files.values():
                fh.close()
            if kind is None:
                self._assemble()
        finally:
            self._cleanup()
        return False

    def _assemble(self):
        counts = set(self.rows.values())
        if len(counts) != 1:
            raise InputError(f"routers captured different numbers of rows: "
                             f"{dict(list(self.rows.items())[:4])}")
        n = counts.pop()
        if n < 1:
            raise InputError("no rows were captured")
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (n, self.D)}
        with open_atomic(self.path) as fh, \
                zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for j, name in enumerate(self.names):
                with zf.open(name + ".npy", "w", force_zip64=True) as member, \
                        open(os.path.join(self._dir, f"{j}.raw"), "rb") as src:
                    np.lib.format.write_array_header_2_0(member, header)
                    shutil.copyfileobj(src, member, _COPY_BLOCK)

    def _cleanup(self):
        for fh in self._files.values():
            fh.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


@dataclass(frozen=True)
class CaptureResult:
    """What :func:`capture_states` wrote; ``to_dict()`` gives its fields as plain JSON types.

    Parameters
    ----------
    path : str
        The ``.npz`` written.
    model : str
        The model directory.
    family : str
        The checkpoint reader's router family.
    layers : tuple of str
        Member names (router tensor names), in router order.
    modules : tuple of str
        The module hooked for each (the norm in front of the router, or the router).
    where : tuple of str
        'norm' or 'router' for each.
    n_texts, n_tokens : int
        Texts run (the last possibly cut) and tokens captured per router.
    D : int
        Width of every row (the routers' input dimension).
    dtype : str
        Stored dtype of the rows.
    model_dtype : str
        The dtype the model ran in.
    bytes : int
        Size of the file.
    elapsed_s : float
        Wall time of the capture, in seconds.

    Examples
    --------
    >>> from discosim.checkpoints.capture import CaptureResult
    >>> r = CaptureResult(path="s.npz", model="m", family="mixtral", layers=("g.weight",),
    ...                   modules=("norm",), where=("norm",), n_texts=2, n_tokens=7, D=16,
    ...                   dtype="float32", model_dtype="bfloat16", bytes=1024, elapsed_s=0.5)
    >>> r.to_dict()["layers"], r.n_tokens
    (['g.weight'], 7)
    """

    path: str
    model: str
    family: str
    layers: tuple
    modules: tuple
    where: tuple
    n_texts: int
    n_tokens: int
    D: int
    dtype: str
    model_dtype: str
    bytes: int
    elapsed_s: float

    def to_dict(self):
        """Plain JSON-serialisable fields."""
        return {"path": self.path, "model": self.model, "family": self.family,
                "layers": list(self.layers), "modules": list(self.modules),
                "where": list(self.where), "n_texts": self.n_texts, "n_tokens": self.n_tokens,
                "D": self.D, "dtype": self.dtype, "model_dtype": self.model_dtype,
                "bytes": self.bytes, "elapsed_s": self.elapsed_s}


def _import_backend():
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise InputError(f"capture needs transformers and torch ({exc.name or exc} is missing): "
                         f"{EXTRA}") from None
    return torch, transformers


def _tokenize(tokenizer, texts, max_tokens, max_length):
    """Token ids per text (each cut at ``max_length``), stopping at ``max_tokens`` in all."""
    out, total = [], 0
    for text in texts:
        ids = list(tokenizer(text, truncation=True, max_length=max_length)["input_ids"])
        ids = ids[:max_tokens - total]
        if ids:
            out.append(ids)
            total += len(ids)
        if total >= max_tokens:
            break
    return out, total


def _batches(seqs, batch_tokens):
    """Consecutive texts grouped so that (texts x longest) <= batch_tokens (padding counted)."""
    batch, longest = [], 0
    for ids in seqs:
        width = max(longest, len(ids))
        if batch and width * (len(batch) + 1) > batch_tokens:
            yield batch
            batch, width = [], len(ids)
        batch.append(ids)
        longest = width
    if batch:
        yield batch


def _transformers_renaming(model):
    """transformers 5's own renaming of checkpoint keys at load (``block_sparse_moe`` ->
    ``mlp`` ...), as a function of one key, or None where this transformers has none."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import (WeightConverter, WeightRenaming,
                                                     rename_source_key)
    except ImportError:
        return None
    try:
        transforms = get_model_conversion_mapping(model)
    except Exception:  # noqa: BLE001 - an internal API: without it, the other lookups remain
        return None
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]

    def rename(key):
        try:
            return rename_source_key(key, renamings, converters)[0]
        except Exception:  # noqa: BLE001
            return key

    return rename


def _module_map(model):
    """``checkpoint name -> (module path, module)`` that follows transformers' renaming of keys
    at load (5.x: its conversion mapping; 4.x: ``_checkpoint_conversion_mapping``); (None, None)
    when no module of the model matches."""
    modules = dict(model.named_modules())
    rename = _transformers_renaming(model)
    legacy = []
    for attr in ("_checkpoint_conversion_mapping", "_key_mapping"):
        mapping = getattr(model, attr, None)
        if isinstance(mapping, dict):
            legacy.extend(mapping.items())

    def find(name):
        if name in modules:
            return name, modules[name]
        if rename is not None:
            # the renaming acts on tensor names: the module's weight, then back to the module
            new = rename(name + ".weight")
            new = new[:-len(".weight")] if new.endswith(".weight") else new
            if new in modules:
                return new, modules[new]
        for pattern, repl in legacy:
            try:
                new = re.sub(pattern, repl, name)
            except (re.error, TypeError):
                continue
            if new in modules:
                return new, modules[new]
        # a wrapper's prefix the mappings do not cover (``language_model.model.layers.3...`` read
        # as ``model.layers.3...``): the one module ending with the name from its block on
        m = _BLOCK.search(name)
        if m is not None:
            tail = name[m.start():]
            hits = [p for p in modules if p == tail or p.endswith("." + tail)]
            if len(hits) == 1:
                return hits[0], modules[hits[0]]
        return None, None

    return find


_BLOCK = re.compile(r"(?:^|(?<=\.))(?:layers|blocks|block|h)\.[0-9]+\.")


class _Stop(Exception):
    """Raised by the last hook of a batch: the rest of the model is not needed."""


def capture_states(model_dir, texts, out, *, max_tokens=DEFAULT_MAX_TOKENS,
                   max_length=DEFAULT_MAX_LENGTH, batch_tokens=DEFAULT_BATCH_TOKENS, layers=None,
                   family=None, dtype="auto", device="cpu", progress=None):
    """Run a model on texts and save every router's input per layer to an ``.npz``.

    Parameters
    ----------
    model_dir : str or path-like
        A local transformers model directory (``config.json``, safetensors weights, tokenizer
        files); nothing is downloaded.
    texts : str, path-like or sequence of str
        A texts file (:func:`read_texts`) or the texts themselves.
    out : str or path-like
        The ``.npz`` to write (atomically).
    max_tokens : int
        Tokens captured per router, in all (the last text is cut there); at most what the audit
        reads for this width (:func:`audit_rows_limit`).
    max_length : int
        Tokens per text (longer ones are cut), at most ``batch_tokens``.
    batch_tokens : int
        Tokens per forward pass, padding included; discosim holds one batch's states (budget of
        :mod:`discosim._core.memory`); the model's weights and its forward pass are torch's.
    layers : sequence of int, optional
        Router positions (``open_checkpoint(model_dir)[i]``) to capture; default all.
    family : str, optional
        The router family, as for :func:`~discosim.checkpoints.checkpoint.open_checkpoint`.
    dtype : {'auto', 'float32', 'bfloat16', 'float16', 'float64'}
        The dtype the model runs in ('auto': as stored; 'float64' for exact comparisons).
    device : {'cpu', 'cuda'}
        Where the model runs.
    progress : bool, optional
        A bar over tokens (None: on a terminal, as :func:`discosim.progress` says).

    Returns
    -------
    CaptureResult
        The file written and what went into it: routers, hooked modules, texts, tokens, dtypes.

    Raises
    ------
    InputError
        One line for: transformers or torch missing (naming the extra), a model directory the
        checkpoint reader or transformers cannot open, a router whose norm is not a module of the
        loaded model, bad sizes, no text, a request over the memory budget or the free disk.

    Notes
    -----
    Every token the model sees is captured (special tokens such as BOS included); padding is not.
    An encoder-decoder model (Switch) runs with the text as the encoder input and, teacher-forced,
    as the decoder input. The forward pass stops after the last router captured (no LM head).

    Examples
    --------
    Without the extra, one line names it (with it, see the README's "Hidden states from real
    text"):

    >>> import sys, tempfile
    >>> from discosim.checkpoints.capture import capture_states
    >>> from discosim.checkpoints.synthetic import make_checkpoint
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = make_checkpoint(tmp.name, "mixtral", n_layers=2, n_experts=4, dim=16, k=2)
    >>> saved = sys.modules.get("torch")
    >>> sys.modules["torch"] = None             # as if torch were not installed
    >>> try:
    ...     capture_states(path, ["some text"], tmp.name + "/states.npz")
    ... except Exception as exc:
    ...     print(str(exc).split(": ")[-1])
    pip install 'discosim[capture]'
    >>> if saved is None: del sys.modules["torch"]
    ... else: sys.modules["torch"] = saved
    >>> tmp.cleanup()
    """
    from discosim._core.devices import check_device
    from discosim._core.runtime import progress_bar
    from discosim.checkpoints.checkpoint import open_checkpoint

    t0 = time.perf_counter()
    max_tokens = check_int("max_tokens", max_tokens, 1)
    batch_tokens = check_int("batch_tokens", batch_tokens, 1)
    max_length = check_int("max_length", max_length, 1)
    if max_length > batch_tokens:
        raise InputError(f"max_length {max_length} is over batch_tokens {batch_tokens}: a text "
                         f"must fit one batch")
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    device = check_device(device)
    out = os.fspath(out)
    if not out.endswith(".npz"):
        raise InputError(f"the states file must end in .npz, got {out!r}")
    if os.path.isdir(out):
        raise InputError(f"{out} is a directory; name the .npz file to write")
    if isinstance(texts, (str, os.PathLike)):
        texts = read_texts(texts)
    elif not texts or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a file path or a non-empty list of strings")
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise InputError(f"model directory not found: {model_dir}")
    ckpt = open_checkpoint(model_dir, family=family)
    points = hook_points(ckpt, layers)
    D, M = ckpt.D, ckpt.M
    itemsize = 8 if dtype == "float64" else 4  # stored rows: float64 for float64 runs only
    limit = audit_rows_limit(D, M, itemsize)
    if max_tokens > limit:
        raise InputError(f"max_tokens {max_tokens} is over the {limit} rows of width {D} the audit "
                         f"reads per router; lower --max-tokens")
    # one batch in flight: each row as torch holds it, its float32 copy and the bytes written
    check_memory([(f"hidden states of a batch of {batch_tokens} tokens",
                   batch_tokens * D * 16, "bytes")], "lower --batch-tokens")
    need = max_tokens * D * itemsize * len(points) * 2  # scratch files, then the .npz
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(out)) or ".").free
    if need > free:
        raise InputError(f"capturing {max_tokens} tokens x {len(points)} routers x {D} needs "
                         f"about {need / 2 ** 30:.3g} GiB of disk beside {out}, "
                         f"{free / 2 ** 30:.3g} GiB free; lower --max-tokens or use --layers")

    # the extra after every check that needs none of it, before anything runs
    torch, transformers = _import_backend()
    model, tokenizer = _load(torch, transformers, model_dir, dtype, device)
    find = _module_map(model)
    hooked = []
    for name, module_name, where in points:
        found, module = find(module_name)
        if module is None:
            raise InputError(f"{where} {module_name!r} in front of router {name!r} is not a "
                             f"module of the loaded model")
        hooked.append((name, found, module))

    seqs, total = _tokenize(tokenizer, texts, max_tokens, max_length)
    if total == 0:
        raise InputError("the texts give no tokens")
    model_dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    store = "float64" if model_dtype == "float64" else "float32"
    if store == "float64" and total > audit_rows_limit(D, M, 8):  # a float64 model, 'auto'
        raise InputError(f"{total} float64 rows of width {D} are more than the audit reads per "
                         f"router; lower --max-tokens")
    encdec = bool(getattr(model.config, "is_encoder_decoder", False))
    bar = progress_bar(total, "capture", progress, unit="token")
    try:
        with StatesWriter(out, [n for n, _, _ in hooked], D, store) as writer:
            _run(torch, model, hooked, seqs, batch_tokens, writer, encdec, device, bar)
    finally:
        if bar is not None:
            bar.close()
    return CaptureResult(path=out, model=model_dir, family=ckpt.family,
                         layers=tuple(n for n, _, _ in hooked),
                         modules=tuple(m for _, m, _ in hooked),
                         where=tuple(w for _, _, w in points), n_texts=len(seqs),
                         n_tokens=total, D=D, dtype=store, model_dtype=model_dtype,
                         bytes=os.path.getsize(out), elapsed_s=time.perf_counter() - t0)


def _load(torch, transformers, model_dir, dtype, device):
    """The model (eval mode, on ``device``) and its tokenizer, from local files only."""
    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True)
    auto = (transformers.AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False)
            else transformers.AutoModelForCausalLM)
    want = "auto" if dtype == "auto" else getattr(torch, dtype)
    # transformers 5 names the argument dtype, 4.x torch_dtype
    key = "dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: torch sees no CUDA device")
    # transformers' own bars and warnings would break --json's one document (ours is the bar)
    tf_logging = transformers.utils.logging
    verbosity, bars = tf_logging.get_verbosity(), tf_logging.is_progress_bar_enabled()
    tf_logging.set_verbosity_error()
    tf_logging.disable_progress_bar()
    try:
        return _load_quietly(torch, transformers, model_dir, auto, want, key, device)
    finally:
        tf_logging.set_verbosity(verbosity)
        if bars:
            tf_logging.enable_progress_bar()


def _load_quietly(torch, transformers, model_dir, auto, want, key, device):
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"no tokenizer in {model_dir}: "
                         f"{printable(str(exc).splitlines()[0] if str(exc) else exc)}"[:300]) \
            from None
    try:
        extra = {key: want}
        if key == "dtype" and want is torch.float64:
            # transformers 5's grouped-GEMM experts take no float64; the loop over experts does
            extra["experts_implementation"] = "eager"
        model = auto.from_pretrained(model_dir, local_files_only=True, **extra)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"transformers cannot load {model_dir}: "
                         f"{printable(str(exc).splitlines()[0] if str(exc) else exc)}"[:300]) \
            from None
    model.eval()
    return model.to(device), tokenizer


def _run(torch, model, hooked, seqs, batch_tokens, writer, encdec, device, bar):
    state = {"mask": None, "fired": set()}

    def make_hook(name):
        def hook(module, args, kwargs):
            h = args[0] if args else kwargs.get("hidden_states")
            if name in state["fired"]:
                raise InputError(f"the module in front of router {name} ran twice in one pass; "
                                 f"capture cannot tell which call feeds the router")
            D = h.shape[-1]
            mask = state["mask"]
            rows = h.reshape(-1, D)
            if rows.shape[0] != mask.numel():
                raise InputError(f"the input of the module in front of router {name} has "
                                 f"{rows.shape[0]} rows for {mask.numel()} token positions")
            rows = rows[mask.reshape(-1)]
            writer.add(name, rows.detach().to(torch.float64 if writer.dtype == np.float64
                                              else torch.float32).cpu().numpy())
            state["fired"].add(name)
            if len(state["fired"]) == len(hooked):
                raise _Stop
        return hook

    handles = [module.register_forward_pre_hook(make_hook(name), with_kwargs=True)
               for name, _, module in hooked]
    try:
        with torch.inference_mode():
            for batch in _batches(seqs, batch_tokens):
                width = max(len(s) for s in batch)
                ids = torch.zeros((len(batch), width), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.bool)
                for r, s in enumerate(batch):  # right padding: causal states stay exact
                    ids[r, :len(s)] = torch.tensor(s, dtype=torch.long)
                    mask[r, :len(s)] = True
                state["mask"], state["fired"] = mask.to(device), set()
                kw = {"input_ids": ids.to(device), "attention_mask": mask.long().to(device)}
                if encdec:
                    kw["decoder_input_ids"] = kw["input_ids"]
                    kw["decoder_attention_mask"] = kw["attention_mask"]
                try:
                    model(**kw, use_cache=False)
                except _Stop:
                    pass
                if len(state["fired"]) != len(hooked):
                    missing = [n for n, _, _ in hooked if n not in state["fired"]]
                    raise InputError(f"the forward pass never reached the module in front of "
                                     f"router {missing[0]} ({len(missing)} routers not reached)")
                if bar is not None:
                    bar.update(sum(len(s) for s in batch))
    finally:
        for h in handles:
            h.remove()
