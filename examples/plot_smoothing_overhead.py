"""
Smoothing overhead against eta
==============================

The smoothing gate of THEORY §7 keeps the experts that score within eta below the k-th score
partly active. Its cost is the mean number of extra active experts,
``E N_eta = E #{i : g_k - eta < s_i < g_k}``, which for inputs uniform in the ball grows
linearly in eta: ``E N_eta = c_1 eta + O(eta^2)`` with
``c_1 = (2/R) (omega_{D-1} / omega_D) sum_{i<j} alpha_ij / |w_i - w_j|``.
:func:`discosim.calibrate_eta` inverts it: the eta that costs a given overhead.
"""

import matplotlib.pyplot as plt
import numpy as np

import discosim as ds

router = ds.Router.gaussian(8, 64, k=2, seed=0)
etas = np.geomspace(2e-3, 0.2, 7)
res = ds.estimate_overhead(router, 1.0, etas, n_samples=100_000, seed=4)
mean = np.array([e.value for e in res.estimates])
se = np.array([e.stderr for e in res.estimates])

cal = ds.calibrate_eta(router, 0.1, n_samples=100_000, seed=5)

fig, ax = plt.subplots(figsize=(6, 4.5))
ax.errorbar(etas, mean, yerr=2 * se, fmt="o", label="E N_eta, simulated (±2 SE)")
ax.plot(etas, res.predicted_leading, "k-", lw=1,
        label=f"leading order c_1 eta, c_1 = {res.coefficient:.2f}")
ax.axhline(0.1, color="0.6", lw=0.8)
ax.axvline(cal.eta, color="0.6", lw=0.8)
ax.annotate(f"eta = {cal.eta:.4f} costs 0.1 expert", (cal.eta, 0.1), xytext=(5, -25),
            textcoords="offset points", fontsize=8)
ax.set(xscale="log", yscale="log", xlabel="eta", ylabel="extra active experts",
       title="M = 8, D = 64, k = 2, inputs uniform in the ball")
ax.legend(fontsize=8)
fig.tight_layout()

# %%
# The remainder ``E N_eta - c_1 eta`` is of order eta^2: the ratio to the leading order grows
# about linearly in eta.
print("E N_eta / (c_1 eta) - 1 =", np.array2string(mean / res.predicted_leading - 1, precision=3))
print(f"calibrated eta {cal.eta:.5f}; leading-order guess target / c_1 = {cal.eta_first_guess:.5f}")
