"""``discosim hit`` says so next to a hit-order prediction outside the regime where it holds
(issue 23 item 5): pi/theta* is a delta -> 0 law near the widest ridge."""

import json

import numpy as np

from discosim import Router, cases
from discosim.app.cli.hit import _hit_order_regime
from discosim.app.cli.main import main

SEED = 20260623
DELTAS = [0.003, 0.03, 0.3]


def test_regime_of_the_validate_starts_and_of_far_ones():
    orth = Router.orthonormal(6, 10, 2, seed=SEED)
    # the hit_order claim's start: rho = 1, other facets >= 30 rho, delta <= 0.3 rho
    assert _hit_order_regime(orth, cases.ridge_start(orth, 0, 1, 2, 1.0, spread=30.0), DELTAS) is None
    gauss = Router.gaussian(6, 10, 2, seed=SEED)
    i, j, j2 = cases.widest_ridge(gauss)
    assert _hit_order_regime(gauss, cases.ridge_start(gauss, i, j, j2, 1.0, spread=30.0), DELTAS) is None
    # near facets (the claim's agreement start), deltas up to rho, a start far from the widest ridge
    assert "another facet" in _hit_order_regime(orth, cases.ridge_start(orth, 0, 1, 2, 1.0, spread=3.0), DELTAS)
    assert "max delta" in _hit_order_regime(orth, cases.ridge_start(orth, 0, 1, 2, 1.0, spread=30.0), [0.01, 1.0])
    if (i, j, j2) != (0, 1, 2):
        assert "outside" in _hit_order_regime(gauss, cases.ridge_start(gauss, 0, 1, 2, 1.0, spread=30.0), DELTAS)
    assert "random starts" in _hit_order_regime(orth, None, DELTAS)


def test_cli_prints_the_note_next_to_the_exponent(tmp_path, capsys):
    router = Router.orthonormal(6, 10, 2, seed=0)
    args = ["hit", "--router", "orthonormal", "--M", "6", "--D", "10", "--k", "2", "--router-seed", "0",
            "--sigma", "1", "--t-max", "20", "--dt", "0.04", "--n-paths", "200", "--times", "1",
            "--deltas", *map(str, DELTAS), "--quiet"]
    for spread, inside in ((30.0, True), (3.0, False)):
        path = tmp_path / f"x0_{spread:g}.npy"
        np.save(path, cases.ridge_start(router, 0, 1, 2, 1.0, spread=spread))
        assert main([*args, "--x0", str(path)]) == 0
        line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("exponent:")][0]
        assert ("outside the regime" in line) is not inside
        assert main([*args, "--x0", str(path), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert (doc["hit_order_regime"] is None) is inside
