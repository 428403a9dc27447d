"""numba kernels: deterministic, no validation, outputs written into preallocated arrays.

Layout (one family per module):

- :mod:`.codes` -- the metric-code table (plain Python);
- :mod:`.sampling` -- draws from an explicit ``numpy.random.Generator`` (ball points, chi^2);
- :mod:`.geometry` -- reduced-coordinate linear algebra (scores, tie-set projections);
- :mod:`.pointstats` -- order-r tube statistics of one point or a block of points;
- :mod:`.uniform` -- the uniform-in-the-ball volume sampler;
- :mod:`.tube` -- the importance (tube) volume sampler of THEORY §8;
- :mod:`.alpha` -- Monte Carlo of the slice constants of THEORY §5 (b);
- :mod:`.paths` -- Brownian / OU paths, exits, occupation times, walk on spheres.

Every kernel is ``@njit(cache=True, nogil=True)``: ``cache`` so a run does not recompile,
``nogil`` so chunks can run on threads of one process (a kernel touches only its arguments and
its own locals, so releasing the GIL is safe). None uses ``parallel=True``: parallelism is over
chunks in :mod:`discosim.parallel`, each chunk with its own random stream, which keeps results
bit-identical for any number of workers.
"""
