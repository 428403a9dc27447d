"""numba kernels of the volume samplers (uniform, tube, slice constants)."""
