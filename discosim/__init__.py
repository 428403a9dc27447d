"""discosim: geometry and stochastics of discontinuities in sparse Mixture-of-Experts routers.

Implements and verifies the formulas of THEORY.md (arXiv 2606.19036) with Monte Carlo estimators
that work in the router's reduced coordinates, so routers of real size (D up to 8192, M up to 256)
cost little more than toy ones. Everything below is importable from ``discosim`` itself.

Model
-----
Router                 -- a linear top-k router ``x -> top_k(W x + b)`` (THEORY §2)
InputError             -- the one-line error raised for every bad input

Tube volumes (THEORY §5, §8) -- :mod:`discosim.volumes`
------------------------------------------------------
estimate_volumes       -- fractions of the ball within ε of Γ^(r), uniform or tube sampler
estimate_slice_volume  -- the ε-tube of one slice Γ_J
slice_constants        -- the slice constants A_r = Σ_J α_J (exact or Monte Carlo)
slice_alpha            -- one slice's α_J
VolumeResult, OrderResult, SliceConstants, SliceAlpha

Diffusion (THEORY §6) -- :mod:`discosim.diffusion`
-------------------------------------------------
estimate_first_hit     -- P(τ ≤ t) and the order of the first surface hit
simulate_first_exit    -- first-exit times from a start point, paths stepped exactly or bridged
estimate_occupation    -- occupation times within ε of each order
hit_order_wos          -- the first-hit order by walk on spheres
PathOptions            -- the process (bm, ou) and its time stepping (dt, bridge, depth)
HitResult, FirstExitResult, OccupationResult, WosResult

Smoothing (THEORY §7) -- :mod:`discosim.smoothing`
-------------------------------------------------
SMoE                   -- a layer with the smoothing gate
estimate_overhead      -- the extra active experts E N_η
measure_continuity     -- jump exponents across Γ^(1) and the band edge
calibrate_eta          -- the band width η for a target overhead
mean_pointwise_slope   -- the mean Lipschitz slope of the gate
OverheadResult, ContinuityResult, Calibration, PointwiseSlope

Audit of real routers (THEORY §9) -- :mod:`discosim.audit`, :mod:`discosim.checkpoints`
---------------------------------------------------------------------------------------
open_checkpoint        -- every router of a safetensors checkpoint, norms folded in
audit_checkpoint       -- margins, slice constants, flips under bf16/fp16 per layer
audit_layers           -- the same for routers already in memory
Checkpoint, RouterLayer, AuditResult, LayerAudit, FlipAudit

Results and runs
----------------
RunOptions             -- seed, n_jobs, backend, progress, device(s): ``options=`` of every estimator
progress               -- ``with progress(False):`` progress bars off (True: on) for a block
Estimate               -- a value, its standard error and its confidence interval
ConfidenceInterval     -- a named (low, high) pair
run_study              -- a parameter study (``discosim study``), resumable
run_validation         -- every claim of THEORY.md (``discosim validate``)

The closed forms are in :mod:`discosim.theory` (``volumes``, ``alpha``, ``diffusion``,
``smoothing``, ``audit``); the exact cases shared by claims and studies in :mod:`discosim.cases`.
"""

import importlib

from discosim import _compat
from discosim._core.version import __version__

_compat.install()

# name -> module that defines it; imported on first use so `import discosim` stays light
_API = {
    "InputError": "discosim._core.errors",
    "Estimate": "discosim._core.results",
    "ConfidenceInterval": "discosim._core.results",
    "RunOptions": "discosim._core.runtime",
    "progress": "discosim._core.runtime",
    "Router": "discosim.model.router",
    "estimate_volumes": "discosim.volumes",
    "estimate_slice_volume": "discosim.volumes",
    "slice_constants": "discosim.volumes",
    "slice_alpha": "discosim.volumes",
    "VolumeResult": "discosim.volumes",
    "OrderResult": "discosim.volumes",
    "SliceConstants": "discosim.volumes",
    "SliceAlpha": "discosim.volumes",
    "estimate_first_hit": "discosim.diffusion",
    "simulate_first_exit": "discosim.diffusion",
    "estimate_occupation": "discosim.diffusion",
    "hit_order_wos": "discosim.diffusion",
    "PathOptions": "discosim.diffusion",
    "HitResult": "discosim.diffusion",
    "FirstExitResult": "discosim.diffusion",
    "OccupationResult": "discosim.diffusion",
    "WosResult": "discosim.diffusion",
    "SMoE": "discosim.smoothing",
    "estimate_overhead": "discosim.smoothing",
    "measure_continuity": "discosim.smoothing",
    "calibrate_eta": "discosim.smoothing",
    "mean_pointwise_slope": "discosim.smoothing",
    "OverheadResult": "discosim.smoothing",
    "ContinuityResult": "discosim.smoothing",
    "Calibration": "discosim.smoothing",
    "PointwiseSlope": "discosim.smoothing",
    "open_checkpoint": "discosim.checkpoints",
    "Checkpoint": "discosim.checkpoints",
    "RouterLayer": "discosim.checkpoints",
    "audit_checkpoint": "discosim.audit",
    "audit_layers": "discosim.audit",
    "AuditResult": "discosim.audit",
    "LayerAudit": "discosim.audit",
    "FlipAudit": "discosim.audit",
    "run_study": "discosim.app.studies",
    "run_validation": "discosim.validation.report",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name):
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'discosim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
