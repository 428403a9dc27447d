"""Reading the routers of real MoE checkpoints (THEORY §9, issue 10).

``open_checkpoint(path)`` finds every router of a safetensors checkpoint (sharded with an index,
or a single file), its family (the 27 of :data:`FAMILIES`, each read from its modeling code; an
unknown ``model_type`` is refused, a family guessed from tensor names is labelled so, or the user's
own key pattern), k, groups, score function and the norm's eps from config.json, and folds the
norm in front of each router into its weight. Tensors are read lazily, one layer at a time, and
only the router and norm tensors: expert weights are never touched. ``RouterLayer.select(h)``
routes residual-stream states as the model does.

Modules: :mod:`discosim.model.safetensors` (the format: headers, byte ranges, exact widening to
float64; shared with :mod:`discosim.model.weights`), ``store``
(index / shards / single file / config.json), ``families`` (the family table, as data),
``config`` (k, groups, score function, eps), ``folding`` (W diag γ, W diag(1 + γ), W β),
``checkpoint`` (the API), ``family_table`` (the README's table).
"""

from discosim.checkpoints.checkpoint import Checkpoint, RouterLayer, open_checkpoint
from discosim.checkpoints.families import FAMILIES, Family
from discosim.model.safetensors import read_header, read_tensor

__all__ = ["open_checkpoint", "Checkpoint", "RouterLayer", "FAMILIES", "Family", "read_header",
           "read_tensor"]
