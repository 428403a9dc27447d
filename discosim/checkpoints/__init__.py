"""Reading the routers of real MoE checkpoints (THEORY §9, issue 10).

``open_checkpoint(path)`` finds every router of a safetensors checkpoint (sharded with an index,
or a single file), its family (Mixtral, Arctic, Phi-3.5-MoE, OLMoE, Qwen2/3-MoE, DeepSeek-V3, DBRX,
Jamba, Granite-MoE, gpt-oss, Switch, or the user's own key pattern), k and groups from
config.json, and folds the norm in front of each router into its weight. Tensors are read lazily,
one layer at a time, and only the router and norm tensors: expert weights are never touched.

Modules: :mod:`discosim.model.safetensors` (the format: headers, byte ranges, exact widening to
float64; shared with :mod:`discosim.model.weights`), ``store``
(index / shards / single file / config.json), ``families`` (the family table, as data),
``config`` (k, groups, score function), ``folding`` (W diag γ, W β), ``checkpoint`` (the API).
"""

from discosim.checkpoints.checkpoint import Checkpoint, RouterLayer, open_checkpoint
from discosim.checkpoints.families import FAMILIES, Family
from discosim.model.safetensors import read_header, read_tensor

__all__ = ["open_checkpoint", "Checkpoint", "RouterLayer", "FAMILIES", "Family", "read_header",
           "read_tensor"]
