"""GPU kernels of the diffusion family (first exits, occupation)."""
