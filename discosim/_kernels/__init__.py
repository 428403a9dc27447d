"""numba kernels: deterministic, no validation, outputs written into preallocated arrays.

Layout: shared modules at the top, one package or module per family, named like the family:

- :mod:`.codes` -- the metric-code table (plain Python);
- :mod:`.sampling` -- draws from an explicit ``numpy.random.Generator`` (ball points, chi^2);
- :mod:`.geometry` -- reduced-coordinate linear algebra (scores, tie-set projections);
- :mod:`.pointstats` -- order-r tube statistics of one point or a block of points;
- :mod:`.volumes` -- ``uniform`` (the uniform-in-the-ball sampler), ``tube`` (the importance
  sampler of THEORY §8), ``alpha`` (Monte Carlo of the slice constants of THEORY §5 (b));
- :mod:`.diffusion` -- ``paths`` (Brownian / OU paths, exits, occupation times, walk on spheres)
  and ``bridge`` (the bridge step, plain Python compiled for the CPU and the GPU);
- :mod:`.audit` -- the audit's per-chunk statistics (NumPy, vectorised; shared with the GPU path).

Every kernel is ``@njit(cache=True, nogil=True)``: ``cache`` so a run does not recompile,
``nogil`` so chunks can run on threads of one process (a kernel touches only its arguments and
its own locals, so releasing the GIL is safe). None uses ``parallel=True``: parallelism is over
chunks in :mod:`discosim._core.runtime`, each chunk with its own random stream, which keeps results
bit-identical for any number of workers.
"""
