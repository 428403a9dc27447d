"""The one table of tube-metric codes shared by the public wrappers and the numba kernels.

Plain Python (no numba import), so the public modules can import it at load time; kernels
receive the integer code as an argument and compare it with the module constants below.
"""

METRIC_EUCLIDEAN = 0
METRIC_NORMAL = 1
METRIC_SCORE = 2

METRIC_CODE = {"euclidean": METRIC_EUCLIDEAN, "normal": METRIC_NORMAL, "score": METRIC_SCORE}
METRICS = tuple(METRIC_CODE)  # ("euclidean", "normal", "score"): the order users see
