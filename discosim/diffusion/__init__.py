"""Brownian and Ornstein-Uhlenbeck input perturbations (THEORY §6): first hits of Γ^(1), their
order, first-exit times and occupation times near each order (:mod:`.estimators`)."""

from discosim.diffusion.estimators import (FirstExitResult, HitResult, OccupationResult, WosResult,
                                           estimate_first_hit, estimate_occupation, hit_order_wos,
                                           simulate_first_exit)
from discosim.diffusion.options import PathOptions

__all__ = ["estimate_first_hit", "HitResult", "simulate_first_exit", "FirstExitResult", "estimate_occupation",
           "OccupationResult", "hit_order_wos", "WosResult", "PathOptions"]
