"""
Auditing a checkpoint: margins and flip rates
=============================================

:func:`discosim.audit_checkpoint` reads every router of a safetensors checkpoint (the norm in
front of each folded into its weight) and reports, per layer, the decision margin
``g = g_k - g_{k+1}`` of inputs on the sphere of radius sqrt(D), and how many inputs change
experts when the logits are rounded to bf16 or fp16, next to THEORY §9's prediction
``P(flip) ~ (1/4) lim_{eps->0} E[ulp(v) 1{g <= eps}] / eps``.

Here the checkpoint is synthetic: :func:`discosim.checkpoints.synthetic.make_checkpoint` writes
what a Hugging Face model directory holds (``config.json``, ``model.safetensors.index.json``,
bf16 shards with Mixtral's real tensor names, the RMSNorm weights, attention and expert tensors
that must not be taken for routers). Point ``audit_checkpoint`` at a downloaded model directory
to audit a real one.
"""

import tempfile

import matplotlib.pyplot as plt
import numpy as np

import discosim as ds
from discosim.checkpoints.synthetic import make_checkpoint

tmp = tempfile.TemporaryDirectory()
path = make_checkpoint(tmp.name, "mixtral", n_layers=4, n_experts=8, dim=256, k=2,
                       dtype="bfloat16", shards=2, seed=0)
ckpt = ds.open_checkpoint(path)
print(ckpt)
res = ds.audit_checkpoint(ckpt, n_samples=40_000, seed=6, constants_samples=5000)

# %%
# Margins: the fraction of inputs within eps of a tie, against the order-1 score-tube leading
# order (THEORY §5, §9); then the flip rate per layer and format.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
for layer in res.layers:
    line = ax1.errorbar(layer.eps, layer.margin_fraction, yerr=2 * layer.margin_fraction_stderr,
                        fmt="o", ms=4, label=f"layer {layer.index}")
    ax1.plot(layer.eps, layer.margin_fraction_predicted, "-", color=line[0].get_color(), lw=0.8)
ax1.set(xscale="log", yscale="log", xlabel="eps (logit units)", ylabel="P(margin <= eps)",
        title="decision margins (lines: leading order)")
ax1.legend(fontsize=8)

index = np.array([layer.index for layer in res.layers])
for shift, fmt in ((-0.1, "bf16"), (0.1, "fp16")):
    flips = [layer.flip(fmt) for layer in res.layers]
    line = ax2.errorbar(index + shift, [f.measured for f in flips],
                        yerr=[2 * f.stderr for f in flips], fmt="o", label=f"{fmt}: measured")
    ax2.plot(index + shift, [f.predicted for f in flips], "_", ms=14, mew=2,
             color=line[0].get_color(), label=f"{fmt}: predicted (1/4 rule)")
ax2.set(yscale="log", xlabel="router layer", ylabel="fraction of inputs that change experts",
        xticks=index, title="flips when logits are rounded")
ax2.legend(fontsize=8)
fig.tight_layout()

# %%
# The rule of the audit: measured and predicted agree within 4 standard errors of their paired
# difference.
for layer in res.layers:
    print(f"layer {layer.index}:", ", ".join(
        f"{f.format} {f.measured:.2e} vs {f.predicted:.2e} ({'agrees' if f.agrees else 'DIFFERS'})"
        for f in layer.flips))
tmp.cleanup()
