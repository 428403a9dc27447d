"""The audit of real routers (THEORY §9): margins, slice constants and flips under bf16/fp16
rounding, per layer of a checkpoint (:mod:`.estimators`)."""

from discosim.audit.estimators import (AuditResult, FlipAudit, LayerAudit, audit_checkpoint, audit_layers,
                                       flip_agreement)

__all__ = ["audit_checkpoint", "audit_layers", "AuditResult", "LayerAudit", "FlipAudit", "flip_agreement"]
