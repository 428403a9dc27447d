"""The smoothing gate of THEORY §7: an SMoE layer, its continuity and its overhead
(:mod:`.estimators`)."""

from discosim.smoothing.estimators import (SMoE, Calibration, ContinuityResult, OverheadResult, PointwiseSlope,
                                           calibrate_eta, estimate_overhead, mean_pointwise_slope,
                                           measure_continuity)

__all__ = ["SMoE", "estimate_overhead", "OverheadResult", "measure_continuity", "ContinuityResult",
           "calibrate_eta", "Calibration", "mean_pointwise_slope", "PointwiseSlope"]
