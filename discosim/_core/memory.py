"""The memory budget of one discosim process, and what each code path costs per entry (issue 21).

Every request a command accepts stays below :data:`BUDGET_BYTES` of peak resident memory (VmHWM)
per process (a study with ``--n-jobs N`` runs N such processes). A request is refused in one line
when its predicted peak is larger, before anything is allocated. The prediction is
``BASE_BYTES`` (interpreter, numpy, numba kernels, matplotlib) plus, for each array that grows with
the request, its number of entries times the bytes per entry *measured* for that code path: peak
RSS at two sizes in a fresh process, the slope between them (``studies/benchmark_memory.py``
re-measures every constant below; ``tests/slow/test_memory_caps.py`` runs the largest request of
each command and checks its peak against the budget).

Bytes per entry count every copy a path makes, not just the stored array: a gate matrix of
M x D float64 entries (8 bytes each) costs the :class:`~discosim.model.router.Router` about 47,
because validation, the SVD and the QR each hold their own copy for a moment.
"""

from discosim._core.errors import InputError

__all__ = ["BUDGET_BYTES", "BASE_BYTES", "AVAILABLE_BYTES", "COST", "max_entries", "check_memory",
           "MAX_ARRAY_ENTRIES"]

BUDGET_BYTES = 2 << 30
# The fixed part of the heaviest command (audit --out: numba kernels and matplotlib loaded).
BASE_BYTES = 400 << 20
AVAILABLE_BYTES = BUDGET_BYTES - BASE_BYTES

# Measured bytes per entry of each code path (studies/benchmark_memory.py, numpy 2.4, Linux).
COST = {
    # Router(W) of M x D entries: W, its copy, the row-norm scratch, SVD and QR workspaces, Q
    "router": 48,
    # an array read from .npy/.npz/.safetensors and converted to float64 (stored + float64)
    "array": 16,
    # smooth: each continuity point is a D-vector, held with its normal and shifted copies
    "continuity_point": 64,
    # smooth: linear experts A (M, out_dim, D) and MLP experts C (M, hidden, D), float64
    "expert_weight": 8,
    # smooth: the experts' outputs (n, M, out_dim) at each side of each continuity point
    "expert_output": 32,
    # audit: the margin of each input is kept for the quantiles (chunks, merged, sorted in place)
    "audit_sample": 17,
    # audit: a router tensor read, widened, folded with its norm, centred, reduced
    "audit_router": 40,
    # audit: a hidden state as stored (itemsize) plus its float64 copy, normalised by chunks
    "hidden_state": 8,
    # the synthetic checkpoint writer: values drawn, rounded and encoded in memory
    "synthetic": 64,
    # diffusion.simulate_first_exit: every path's exit time and reduced exit point (M + 1
    # float64), per chunk and merged
    "exit_point": 16,
    # plain bytes (an array held as stored, whatever its dtype)
    "bytes": 1,
}


def max_entries(path, share=1.0):
    """The most entries code path ``path`` may hold within ``share`` of the available memory."""
    return int(AVAILABLE_BYTES * share) // COST[path]


MAX_ARRAY_ENTRIES = max_entries("array")


def _gib(n):
    return f"{n / 2 ** 30:.3g} GiB"


def check_memory(parts, advice):
    """Raise a one-line :class:`InputError` when a request's arrays exceed the budget.

    Parameters
    ----------
    parts : list of (str, int, str)
        ``(what, entries, path)``: ``entries`` entries at the cost of code path ``path``.
        Python ints, so no product can overflow.
    advice : str
        What to lower, for the message.

    Returns
    -------
    int
        The predicted bytes beyond ``BASE_BYTES``.
    """
    total = sum(int(n) * COST[path] for _, n, path in parts)
    if total > AVAILABLE_BYTES:
        big = max(parts, key=lambda p: int(p[1]) * COST[p[2]])
        raise InputError(f"this request needs about {_gib(total + BASE_BYTES)} of memory ({big[0]}: "
                         f"{_gib(int(big[1]) * COST[big[2]])}), over discosim's budget of "
                         f"{_gib(BUDGET_BYTES)} per process; {advice}")
    return total
