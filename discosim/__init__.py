"""discosim: geometry and stochastics of discontinuities in sparse Mixture-of-Experts routers.

Implements and verifies the formulas of THEORY.md (arXiv 2606.19036) with Monte Carlo estimators
that work in the router's reduced coordinates, so routers of real size (D up to 8192, M up to 256)
cost little more than toy ones.
"""

from .errors import InputError
from .router import Router
from .estimates import Estimate
from .volume import estimate_volumes, VolumeResult

__all__ = ["InputError", "Router", "Estimate", "estimate_volumes", "VolumeResult"]
__version__ = "0.1.0"
