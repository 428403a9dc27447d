"""The diffusion kernels' step logic is one code for the CPU and the GPU (issue 20).

:mod:`discosim._kernels.diffusion.steps` is compiled by ``njit`` for the CPU kernels and by
:func:`discosim._cuda.twins.device_twin` for the GPU kernels. In numba's CUDA simulator (runs
anywhere, in a subprocess) the device compilation of every step function must give the host's
numbers bit for bit on random inputs, and the GPU first-exit and occupation kernels must run
end to end and agree with the CPU kernels' estimates.
"""

import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run_in_simulator(code, timeout):
    env = {**os.environ, "PYTHONPATH": ROOT, "NUMBA_ENABLE_CUDASIM": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=timeout)
    assert out.stdout.strip().endswith("ok"), out.stdout[-2000:] + out.stderr[-2000:]


def test_step_functions_on_the_device_equal_the_host():
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("ignore")
        import numpy as np
        from discosim._core.devices import import_numba_cuda
        cuda = import_numba_cuda()
        from discosim import Router
        from discosim._kernels.diffusion import steps as S
        from discosim._kernels.pointstats import point_workspace, sort_pairs_for
        from discosim._cuda.twins import device_twin

        M, k, D = 5, 2, 12
        r = Router(Router.gaussian(M, D, k, seed=3).weights, k, bias=np.linspace(-0.1, 0.1, M))
        Wr, b, gram = r.reduced_weights, r.bias, r.gram
        npair = k * (M - k)
        tw = {name: device_twin(getattr(S, name)) for name in (
            "exit_step", "facet_norms2", "facet_gaps", "facet_weights", "pick_facet",
            "bridge_midpoint", "midpoint_crossing", "plain_midpoint", "keep_half",
            "occupation_step", "gap_variances")}
        step, norms2, gaps = tw["exit_step"], tw["facet_norms2"], tw["facet_gaps"]
        weights, pick, midpoint = tw["facet_weights"], tw["pick_facet"], tw["bridge_midpoint"]
        crossing, plain, keep = tw["midpoint_crossing"], tw["plain_midpoint"], tw["keep_half"]
        occ_step, variances = tw["occupation_step"], tw["gap_variances"]

        def run(Z0, K, R, xi, xm, u, y, left, sigma, dt, decay, noise, s_mid, eps, pairs,
                z, z1, zm, s, d, ga, gb, gm, var, dn2, cw, out, ws_G, ws_v, ws_i, stat, occ,
                use_bridge, metric, impl):
            (step, norms2, gaps, weights, pick, midpoint, crossing, plain, keep, occ_step,
             variances) = impl
            norms2(gram, K, R, dn2)
            for m in range(M):
                z[m] = Z0[0, m]
            gaps(Wr, b, z, K, R, s, ga)
            sure, prob = step(Wr, b, K, R, Z0, 0, z, xi, decay, noise, sigma, dt, dn2,
                              use_bridge, z1, s, ga, gb, var)
            out[0] = 1.0 if sure else 0.0
            out[1] = prob
            variances(dn2, sigma, 0.5 * dt, var)  # a refinement level's
            C = weights(ga, gb, var, cw)
            q = pick(cw, u * C)
            out[2] = C
            out[3] = q
            midpoint(Wr, b, K, R, q, y, z, z1, ga, gb, s_mid, xm, d, zm, s, gm)
            qs, pl, qc = crossing(ga, gb, gm, var)
            out[4] = qs
            out[5] = pl
            out[6] = qc
            out[7] = plain(Wr, b, K, R, z, z1, s_mid, xm, d, s, gm)
            keep(left, z, z1, zm, ga, gb, gm)
            occ_step(Wr, b, gram, k, 3, metric, eps, r.max_row_norm, pairs, z, s, stat, ws_G,
                     ws_v, ws_i, occ, 1)

        host = (S.exit_step, S.facet_norms2, S.facet_gaps, S.facet_weights, S.pick_facet,
                S.bridge_midpoint, S.midpoint_crossing, S.plain_midpoint, S.keep_half,
                S.occupation_step, S.gap_variances)
        dev = (step, norms2, gaps, weights, pick, midpoint, crossing, plain, keep, occ_step,
               variances)
        # the host version runs the same driver with the njit functions (plain Python driver)
        kernel = cuda.jit(lambda *a: run(*a, dev))
        rng = np.random.default_rng(0)
        pairs = sort_pairs_for(M)
        checked = 0
        for trial in range(40):
            z0 = rng.standard_normal(M) * 0.3
            order = np.argsort(-(Wr @ z0 + b))
            K, R = order[:k].astype(np.int64), order[k:].astype(np.int64)
            metric = trial % 3
            args = [z0[None].copy(), K, R, rng.standard_normal(M), rng.standard_normal(M),
                    rng.random(), 0.05 * rng.standard_normal(), bool(trial % 2), 1.0, 0.01,
                    1.0 if trial % 4 < 2 else 0.97, 0.1, 0.05, np.array([0.02, 0.1, 0.4]), pairs]
            work = [np.zeros(M) for _ in range(5)] + [np.zeros(npair) for _ in range(6)]
            work += [np.zeros(8)] + [np.zeros(a.shape, a.dtype) for a in point_workspace(M)]
            work += [np.zeros(3), np.zeros((3, 3), dtype=np.int64)]
            flags = [trial % 3 != 2, metric]
            h = [np.array(a) if isinstance(a, np.ndarray) else a for a in work]
            g = [np.array(a) if isinstance(a, np.ndarray) else a for a in work]
            run(*args, *h, *flags, host)
            dargs = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
            dwork = [cuda.to_device(a) for a in g]
            kernel[1, 1](*dargs, *dwork, *flags)
            g = [a.copy_to_host() for a in dwork]
            for a, c in zip(h, g):
                assert np.array_equal(a, c, equal_nan=True), (trial, a, c)
            checked += int(h[-1].sum() > 0) + int(h[11][0])
        assert checked > 5  # some points fell in a tube, some steps crossed
        print("ok")
    """)
    _run_in_simulator(code, timeout=300)


def test_gpu_diffusion_kernels_agree_with_the_cpu_in_the_simulator():
    code = textwrap.dedent("""
        import warnings
        warnings.simplefilter("ignore")
        import numpy as np
        from discosim import Router
        from discosim.diffusion.estimators import estimate_first_hit, estimate_occupation

        def agree(a, b, sa, sb):
            return np.all(np.abs(a - b) <= 4 * np.hypot(sa, sb) + 1e-12)

        r = Router.gaussian(4, 8, 2, seed=7)
        x0 = np.random.default_rng(7).standard_normal(8) * 0.3
        kw = dict(deltas=[0.05, 0.3], seed=2, depth=4)
        for bridge in (True, False):
            g = estimate_first_hit(r, x0, 0.5, 0.3, 0.02, 200, [0.1, 0.3], device="cuda",
                                   bridge=bridge, **kw)
            c = estimate_first_hit(r, x0, 0.5, 0.3, 0.02, 4000, [0.1, 0.3], bridge=bridge, **kw)
            v = lambda e: np.array([x.value for x in e])
            s = lambda e: np.array([x.stderr for x in e])
            assert 0.05 < g.cdf[-1].value < 0.95, g.cdf
            assert agree(v(g.cdf), v(c.cdf), s(g.cdf), s(c.cdf)), (bridge, g.cdf, c.cdf)
            assert agree(v(g.q), v(c.q), s(g.q), s(c.q)), (bridge, g.q, c.q)
        kw = dict(orders=(1, 2), metric="normal", n_checkpoints=2, seed=4)
        g = estimate_occupation(r, x0, 0.5, 0.2, 0.02, 200, [0.05, 0.2], device="cuda", **kw)
        c = estimate_occupation(r, x0, 0.5, 0.2, 0.02, 3000, [0.05, 0.2], **kw)
        assert np.all(g.mean[-1] > 0)
        assert agree(g.mean, c.mean, g.stderr, c.stderr), (g.mean, c.mean)
        print("ok")
    """)
    _run_in_simulator(code, timeout=600)
