"""The one rank-straddle test (issue 20: five copies became ``tie_straddles_cut``)."""

import itertools

import numpy as np

from discosim._kernels.pointstats import tie_straddles_cut as compiled
from discosim.model.selection import tie_straddles_cut


def _by_ranks(above, size, k, ties):
    # the tie (with the experts level with it) holds ranks above+1 .. above+size+ties
    ranks = range(above + 1, above + size + ties + 1)
    return k in ranks and k + 1 in ranks


CASES = list(itertools.product(range(6), range(2, 5), range(1, 5), range(3)))


def test_plain_and_compiled_agree_with_the_ranks():
    for above, size, k, ties in CASES:
        want = _by_ranks(above, size, k, ties)
        assert bool(tie_straddles_cut(above, size, k, ties)) == want
        assert compiled(above, size, k, ties) == want


def test_elementwise_on_arrays():
    above = np.array([c[0] for c in CASES])
    for size, k in ((2, 1), (3, 2), (4, 4)):
        got = tie_straddles_cut(above, size, k)
        assert got.dtype == bool
        assert got.tolist() == [_by_ranks(a, size, k, 0) for a in above]
