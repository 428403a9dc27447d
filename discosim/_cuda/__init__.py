"""CUDA kernels of discosim (numba-cuda), one family per module; imported only for device="cuda"."""
