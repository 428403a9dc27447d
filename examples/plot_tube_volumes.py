"""
Tube volumes against eps, with the leading order
================================================

The fraction of the ball ``B_D(0, 1)`` within eps of the order-r discontinuity set
``Gamma^(r)`` of a top-2 router, for r = 1, 2, 3, against the slice sum
``sum_J alpha_J I_{eps^2}(r/2, d/2+1)`` and its leading order
``A_r omega_r omega_{D-r} eps^r / omega_D`` (THEORY §5). The importance (tube) sampler of
THEORY §8 keeps the relative error bounded as eps shrinks, so even the order-3 tube, which
holds a few parts in 1e9 of the ball at eps = 1e-3, is resolved.
"""

import matplotlib.pyplot as plt
import numpy as np

import discosim as ds

router = ds.Router.orthonormal(6, 10, k=2, seed=0)  # orthonormal rows: exact slice constants
eps = np.geomspace(1e-3, 1e-1, 5)
res = ds.estimate_volumes(router, 1.0, eps, orders=[1, 2, 3], method="tube", n_samples=4000,
                          seed=1)

fig, ax = plt.subplots(figsize=(6, 4.5))
for j, r in enumerate(res.orders):
    line = ax.errorbar(eps, res.fraction[:, j], yerr=2 * res.stderr[:, j], fmt="o",
                       label=f"r = {r}: tube sampler (±2 SE)")
    ax.plot(eps, res.predicted_slice_sum[:, j], "-", color=line[0].get_color(), alpha=0.6,
            label=f"r = {r}: slice sum")
    ax.plot(eps, res.predicted_leading[:, j], ":", color=line[0].get_color(),
            label=f"r = {r}: leading order")
ax.set(xscale="log", yscale="log", xlabel="eps / R", ylabel="fraction of the ball in the tube",
       title="M = 6, D = 10, k = 2 (orthonormal)")
ax.legend(fontsize=7, ncol=1)
fig.tight_layout()

# %%
# Order by order the union approaches the slice sum as eps -> 0 (the overlaps are
# ``O(eps^{r+1})``), and the slice sum approaches the leading order (relative correction
# ``-r d eps^2 / (2 (r+2) R^2)``):
for j, r in enumerate(res.orders):
    rel = res.fraction[:, j] / res.predicted_slice_sum[:, j] - 1
    print(f"r = {r}: union / slice sum - 1 =", np.array2string(rel, precision=3))
