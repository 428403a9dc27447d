"""The synthetic checkpoint factory for tests: ``from checkpoint_factory import make_checkpoint``.

It lives in discosim.checkpoints.synthetic (so README examples and studies/ benchmarks can build
checkpoints too); that module shares no code with the reader it is used to test.
"""

from discosim.checkpoints.synthetic import (  # noqa: F401
    DTYPE_CODES, FAMILY_NAMES, encode, make_checkpoint, representable, write_safetensors)

__all__ = ["make_checkpoint", "write_safetensors", "representable", "encode", "FAMILY_NAMES",
           "DTYPE_CODES"]
