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

# Measured bytes per entry of each code path (studies/benchmark_memory.py: numpy 2.4, Linux x86-64,
# one thread; the slope of peak RSS between two sizes, in brackets, rounded up).
COST = {
    # Router(W) of M x D entries: W, its copy, the row-norm scratch, SVD and QR workspaces, Q
    # (volume, hit and smooth with a random or a file router: 47.4, 48.1, 47.3)
    "router": 48,
    # an array read from .npy/.npz/.safetensors and converted to float64: stored + float64
    # (by construction: the data are read into one array of their dtype, then converted)
    "array": 16,
    # smooth: each continuity point is a D-vector, held with its normal and shifted copies (48.0)
    "continuity_point": 48,
    # smooth: linear experts A (M, out_dim, D) and MLP experts C (M, hidden, D), float64 (8.0)
    "expert_weight": 8,
    # smooth: the experts' outputs (n, M, out_dim) at each side of each continuity point (6.7)
    "expert_output": 8,
    # audit: the margin of each input, kept for the quantiles: per chunk, merged, then
    # partitioned in place (16.1)
    "audit_sample": 17,
    # audit: a router tensor read, widened from bf16, folded with its norm, then reduced by a
    # Router (SVD and QR, while the folded W is held) (51.5; 21.3 with the former Cholesky)
    "audit_router": 52,
    # the synthetic checkpoint writer: values drawn, rounded and encoded in memory (11.7)
    "synthetic": 12,
    # diffusion.simulate_first_exit: every path's exit time and reduced exit point (M + 1
    # float64), per chunk and merged (16.5)
    "exit_point": 17,
    # plain bytes: hidden states held as stored (in memory or mapped) while the audit converts
    # them to float64 by blocks of ~32 MB (1.00 per byte of .npz float32 and of .npy float64)
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
