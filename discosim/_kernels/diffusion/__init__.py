"""numba kernels of the diffusion family (paths, exits, occupation; the bridge step)."""
