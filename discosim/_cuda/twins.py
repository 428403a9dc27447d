"""Device twins of the CPU kernels' numba functions: the same source, compiled for the GPU.

A CPU kernel function (``@njit``) that allocates nothing and draws no random numbers is valid
device code as it stands. :func:`device_twin` compiles its Python source with ``cuda.jit(device=True)``
after pointing every ``@njit`` function it calls at that function's own twin (recursively), so
the GPU runs the very statistics the CPU kernels and their full-dimensional twins in the tests
were checked with, not a second implementation of them.
"""

import functools
import types

from discosim._core.devices import import_numba_cuda

cuda = import_numba_cuda()
from numba.core.registry import CPUDispatcher  # noqa: E402


@functools.lru_cache(maxsize=None)
def device_twin(dispatcher):
    """The ``cuda.jit(device=True)`` compilation of an ``@njit`` function's source."""
    py = dispatcher.py_func
    scope = dict(py.__globals__)
    for name in py.__code__.co_names:
        if isinstance(scope.get(name), CPUDispatcher):
            scope[name] = device_twin(scope[name])
    clone = types.FunctionType(py.__code__, scope, py.__name__, py.__defaults__, py.__closure__)
    clone.__doc__ = py.__doc__
    return cuda.jit(device=True)(clone)
