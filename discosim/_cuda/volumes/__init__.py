"""GPU kernels of the volume samplers (uniform with NVRTC selection, tube)."""
