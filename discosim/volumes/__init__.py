"""Tube volumes around the tie surfaces Γ^(r) (THEORY §5, §8): the uniform and importance (tube)
samplers of :mod:`.estimators` and the slice constants α_J of :mod:`.constants`."""

from discosim.volumes.constants import SliceAlpha, SliceConstants, is_orthonormal, slice_alpha, slice_constants
from discosim.volumes.estimators import (METHODS, METRICS, OrderResult, VolumeResult, estimate_slice_volume,
                                         estimate_volumes)

__all__ = ["estimate_volumes", "estimate_slice_volume", "VolumeResult", "OrderResult", "METRICS", "METHODS",
           "slice_constants", "slice_alpha", "SliceConstants", "SliceAlpha", "is_orthonormal"]
