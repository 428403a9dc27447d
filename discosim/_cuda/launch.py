"""Spreading work units over GPUs: one worker thread per device entry, results in unit order.

A run is cut into *units* of a fixed number of chunks (a chunk is a fixed number of samples or
paths, drawn from its own RNG streams, see :mod:`discosim._cuda.rng`), so what a unit computes
depends only on its index, never on which GPU or how many GPUs ran it. Workers pull unit indices
from a shared counter; the caller gets the per-unit results back sorted by unit index and merges
them in that order, so the numbers are the same for any device list (and bit-identical, since the
merges are integer sums or concatenations in unit order).
"""

import threading

import numpy as np


def run_units(n_units, devices, make_worker):
    """Run ``n_units`` units over ``devices`` (GPU ids, repeats allowed); results in unit order.

    ``make_worker(device_id)`` is called inside the device's context in the worker's thread and
    returns ``work(unit_index) -> result`` (it allocates the device's buffers once).
    """
    from discosim._core.devices import cuda_module

    cuda = cuda_module()
    lock = threading.Lock()
    state = {"next": 0, "error": None}
    results = [None] * n_units

    def loop(dev):
        try:
            with cuda.gpus[dev]:
                work = make_worker(dev)
                while True:
                    with lock:
                        if state["error"] is not None or state["next"] >= n_units:
                            return
                        u = state["next"]
                        state["next"] += 1
                    results[u] = work(u)
        except BaseException as exc:  # re-raised in the caller's thread
            with lock:
                if state["error"] is None:
                    state["error"] = exc

    if len(devices) == 1:
        loop(devices[0])
    else:
        threads = [threading.Thread(target=loop, args=(d,), daemon=True) for d in devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if state["error"] is not None:
        raise state["error"]
    return results


def path_starts(router, pp, start_seed, u, n):
    """Start points (n, M) of the n paths of unit u: the fixed ``pp.z0``, or random starts drawn
    on the host from ``derive_seed(start_seed, u)`` (so a fixed unit size gives the same starts
    on any device list). ``pp``: the validated path settings of :mod:`discosim.diffusion.estimators`."""
    from discosim._core.runtime import derive_seed
    from discosim.model.inputs import reduced_points

    if pp.z0 is None:
        rng = np.random.Generator(np.random.PCG64(derive_seed(start_seed, u)))
        Z0 = reduced_points(rng, n, router.n_experts, router.dim, pp.radius, pp.inputs)
    else:
        Z0 = np.broadcast_to(pp.z0, (n, router.n_experts))
    return np.ascontiguousarray(Z0, dtype=np.float64)


def router_arrays(cuda, router):
    """The reduced weights, bias and Gram matrix of ``router`` on the current device (float64)."""
    return tuple(cuda.to_device(np.ascontiguousarray(a, dtype=np.float64))
                 for a in (router.reduced_weights, router.bias, router.gram))
