"""Every public estimator refuses a non-router with a one-line InputError (issue 20).

A list, an array or None where a :class:`Router` belongs used to raise AttributeError
(``'list' object has no attribute 'n_experts'``) from deep inside; every entry now calls
:func:`discosim.model.router.check_router` first.
"""

import dataclasses
import inspect

import numpy as np
import pytest

import discosim
from discosim import InputError, Router
from discosim.model.router import check_router

NOT_ROUTERS = [[[1.0, 0.0], [0.0, 1.0]], np.eye(2, 4), None, "router.npy"]


def _router_entries():
    """Public callables of ``import discosim`` whose first parameter is ``router``."""
    out = []
    for name in discosim.__all__:
        obj = getattr(discosim, name)
        # results (dataclasses) hold a router's summary, not a router
        if not callable(obj) or name == "Router" or dataclasses.is_dataclass(obj):
            continue
        try:
            params = list(inspect.signature(obj).parameters.values())
        except (TypeError, ValueError):
            continue
        if params and params[0].name == "router":
            out.append((name, obj, params))
    return out


ENTRIES = _router_entries()


def test_every_estimator_taking_a_router_is_found():
    assert {name for name, _, _ in ENTRIES} >= {
        "estimate_volumes", "estimate_slice_volume", "slice_constants", "slice_alpha",
        "estimate_first_hit", "simulate_first_exit", "estimate_occupation", "hit_order_wos",
        "SMoE", "estimate_overhead", "calibrate_eta"}


@pytest.mark.parametrize("bad", NOT_ROUTERS, ids=["list", "ndarray", "None", "str"])
@pytest.mark.parametrize("name,func,params", ENTRIES, ids=[e[0] for e in ENTRIES])
def test_non_router_is_one_line_input_error(name, func, params, bad, no_work):
    # the other required arguments get placeholders: the router is checked before them
    rest = [1.0 for p in params[1:] if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    with pytest.raises(InputError, match="router must be a discosim.Router") as info:
        func(bad, *rest)
    assert "\n" not in str(info.value)


def test_check_router_returns_the_router_and_names_the_parameter():
    r = Router.gaussian(3, 6, 1, seed=0)
    assert check_router(r) is r
    with pytest.raises(InputError, match="^gate must be a discosim.Router.*got list$"):
        check_router([1, 2], "gate")
