"""Where a checkpoint's tensors are: a sharded index, a single file, or a directory of shards.

Layouts (the Hugging Face conventions):

* a directory with ``model.safetensors.index.json`` whose ``weight_map`` maps each tensor name to
  its shard file (``model-00001-of-00005.safetensors`` ...);
* a directory with one ``model.safetensors``;
* a directory with other ``*.safetensors`` files and no index (their headers are merged);
* one ``.safetensors`` file, or an ``*.index.json`` file named directly.

``config.json`` is looked up beside the tensors. Only headers are read here: opening a 100 GB
checkpoint reads a few MB.
"""

import glob
import os
from dataclasses import dataclass, field

from discosim._core.errors import InputError
from discosim._core.io import safe_name
from discosim.model.safetensors import MAX_HEADER_BYTES, parse_json, read_header

__all__ = ["TensorStore", "open_store"]

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


@dataclass(frozen=True)
class TensorStore:
    """The tensors of a checkpoint by name (``infos``: name -> TensorInfo), its directory, the
    files they come from, the parsed ``config.json`` (``{}`` when absent) and the index read
    (None for unsharded checkpoints)."""

    root: str
    files: tuple
    infos: dict = field(repr=False)
    config: dict = field(repr=False)
    config_path: str = None
    index_path: str = None

    @property
    def input_files(self):
        """Every file that opening this checkpoint reads: the index, the shards, config.json."""
        return tuple(f for f in (self.index_path, *self.files, self.config_path) if f)

    def __contains__(self, name):
        return name in self.infos

    def keys(self):
        return self.infos.keys()


def _read_json(path, what, strict):
    """The JSON document at ``path``, at most ``MAX_HEADER_BYTES`` long (an index of DeepSeek-V3's
    91k tensors is 9 MB); NaN and Infinity refused when ``strict``."""
    try:
        if os.path.getsize(path) > MAX_HEADER_BYTES:
            raise InputError(f"{what} {path} is larger than {MAX_HEADER_BYTES} bytes")
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return parse_json(raw, f"{what} {path}", strict=strict)


def _from_index(index_path):
    index = _read_json(index_path, "checkpoint index", strict=True)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise InputError(f"checkpoint index {index_path} has no weight_map")
    root = os.path.dirname(os.path.abspath(index_path))
    # a shard is a plain file name beside the index: never a path that leaves the directory
    for name, shard in weight_map.items():
        safe_name(shard, f"shard file name (of tensor {name!r} in {index_path})")
    shards = sorted(set(weight_map.values()))
    missing = [s for s in shards if not os.path.isfile(os.path.join(root, s))]
    if missing:
        n = sum(1 for s in weight_map.values() if s == missing[0])
        more = f" (and {len(missing) - 1} more shards)" if len(missing) > 1 else ""
        raise InputError(f"missing shard {missing[0]} in {root}: the index maps {n} tensors to it"
                         f"{more}")
    headers = {s: read_header(os.path.join(root, s)) for s in shards}
    infos = {}
    for name, shard in weight_map.items():
        info = headers[shard].get(name)
        if info is None:
            raise InputError(f"the index maps tensor {name!r} to shard {shard}, which does not "
                             f"hold it")
        infos[name] = info
    return root, tuple(os.path.join(root, s) for s in shards), infos


def _from_files(root, files):
    infos = {}
    for f in files:
        for name, info in read_header(f).items():
            if name in infos:
                raise InputError(f"tensor {name!r} is stored twice: in {infos[name].file} and {f}")
            infos[name] = info
    return root, tuple(files), infos


def open_store(path):
    """Locate the tensors and ``config.json`` of the checkpoint at ``path`` (headers only).

    Parameters
    ----------
    path : str or path-like
        A model directory, a ``.safetensors`` file or a ``*.safetensors.index.json`` file.

    Returns
    -------
    TensorStore
    """
    path = os.fspath(path)
    index_path = None
    if os.path.isdir(path):
        root = os.path.abspath(path)
        if os.path.isfile(os.path.join(root, INDEX_NAME)):
            index_path = os.path.join(root, INDEX_NAME)
            root, files, infos = _from_index(index_path)
        elif os.path.isfile(os.path.join(root, SINGLE_NAME)):
            root, files, infos = _from_files(root, [os.path.join(root, SINGLE_NAME)])
        else:
            indexes = sorted(glob.glob(os.path.join(root, "*.safetensors.index.json")))
            found = sorted(glob.glob(os.path.join(root, "*.safetensors")))
            if len(indexes) == 1:
                index_path = indexes[0]
                root, files, infos = _from_index(index_path)
            elif found:
                root, files, infos = _from_files(root, found)
            else:
                raise InputError(f"no {INDEX_NAME} and no .safetensors files in {path}")
    elif os.path.isfile(path):
        root = os.path.dirname(os.path.abspath(path))
        if path.endswith(".index.json"):
            index_path = os.path.abspath(path)
            root, files, infos = _from_index(path)
        elif path.endswith(".safetensors"):
            root, files, infos = _from_files(root, [os.path.abspath(path)])
        else:
            raise InputError(f"checkpoint path must be a model directory, a .safetensors file or "
                             f"an index .json, got {path}")
    else:
        raise InputError(f"checkpoint path not found: {path}")
    config_path = os.path.join(root, "config.json")
    if os.path.isfile(config_path):
        config = _read_json(config_path, "config", strict=False)
        if not isinstance(config, dict):
            raise InputError(f"config {config_path} is not a JSON object")
    else:
        config, config_path = {}, None
    return TensorStore(root=root, files=files, infos=infos, config=config, config_path=config_path,
                       index_path=index_path)
