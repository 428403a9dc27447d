"""Slow, obviously correct full-dimensional twins of the fast kernels (plain NumPy / SciPy).

Nothing here uses reduced coordinates for geometry: points live in R^D, scores are ``W x + b``,
distances are found by projecting in R^D or by a generic constrained optimiser. A reduced point
``z`` of a kernel is the full point ``x = Q z`` (``Q = router.basis``, THEORY §3), which is where
the twins start.

The chunk twins replay the kernel's random stream: numba's ``Generator`` methods give the same
numbers as NumPy's for the same calls in the same order, so a twin that makes those calls sees
the same points as the kernel and must give the same statistics. Floyd's subset draw is
transcribed below; the chi^2 draw (a rejection sampler) is taken from the kernel as data, its law
being tested against scipy's on its own.
"""

import itertools
import math

import numpy as np
from scipy import optimize

from discosim._kernels.diffusion import bridge

METRICS = ("euclidean", "normal", "score")


# ------------------------------------------------------------------------------------ sampling
def uniform_ball_points(rng, n, dim, radius):
    """Uniform points of B_D(0, R): Gaussian direction times R U^(1/D)."""
    g = rng.standard_normal((n, dim))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g * radius * rng.random(n)[:, None] ** (1.0 / dim)


def chi_square(rng, df):
    """The kernel's chi^2 draw, used as data: its law is tested against scipy's chi^2 on its own
    (test_chi_square_law); a Python transcription would only copy the algorithm."""
    from discosim._kernels.sampling import chi_square as kernel_chi_square
    return kernel_chi_square(rng, float(df))


def random_subset(rng, n, size):
    """Floyd's algorithm (the kernel's draws), as a sorted list."""
    chosen = []
    for j in range(n - size, n):
        t = int(rng.integers(0, j + 1))
        chosen.append(j if t in chosen else t)
    return sorted(chosen)


# ------------------------------------------------------------------------------------ geometry
def scores(W, b, X):
    return X @ W.T + b


def embed(router, z):
    """The full point ``x = Q z`` of reduced coordinates z (shape (M,) or (n, M))."""
    return np.asarray(z) @ router.basis.T


def normal_to_rows(router):
    """A unit vector orthogonal to every row of W (exists since M < D)."""
    q, _ = np.linalg.qr(np.column_stack([router.basis, np.ones(router.dim)]))
    return q[:, -1]


def normal_basis(W, J):
    """Orthonormal rows spanning N_J = span{w_j - w_j0}, Gram-Schmidt order (QR, diag > 0)."""
    J = list(J)
    A = W[J[1:]] - W[J[0]]
    q, rr = np.linalg.qr(A.T)
    return (q * np.sign(np.diag(rr))).T


def gram_det(W, J):
    J = list(J)
    A = W[J[1:]] - W[J[0]]
    return float(np.linalg.det(A @ A.T))


def project_on_tie_subspace(W, b, x, J):
    """Projection of x on S_J = {s_j = s_j0, j in J} in R^D, by least squares."""
    J = list(J)
    A = W[J[1:]] - W[J[0]]
    c = b[J[1:]] - b[J[0]]
    # y = x - A^T lam with A y + c = 0
    lam = np.linalg.lstsq(A @ A.T, A @ x + c, rcond=None)[0]
    return x - A.T @ lam


def straddles(s, J, k, tol=1e-9):
    """Whether the experts J (tied in s) sit across ranks k and k+1."""
    v = np.mean(s[list(J)])
    others = np.array([i for i in range(len(s)) if i not in J])
    above = int(np.sum(s[others] > v + tol)) if others.size else 0
    ties = int(np.sum(np.abs(s[others] - v) <= tol)) if others.size else 0
    return above <= k - 1 and above + len(J) + ties >= k + 1


# ------------------------------------------------------------------------------ point statistics
def score_window_stat(s, k, r):
    """min over windows of r+1 consecutive sorted scores holding ranks k, k+1 of the spread."""
    g = np.sort(s)[::-1]
    M = len(g)
    spreads = [g[p - 1] - g[p + r - 1] for p in range(1, M - r + 1) if p <= k and p + r >= k + 1]
    return min(spreads) if spreads else np.inf


def normal_fibre_distance(W, b, k, x, r):
    """min over |J| = r+1 whose projection of x straddles, of |x - proj|: the normal tube stat."""
    best = np.inf
    for J in itertools.combinations(range(W.shape[0]), r + 1):
        y = project_on_tie_subspace(W, b, x, J)
        if straddles(W @ y + b, J, k):
            best = min(best, np.linalg.norm(x - y))
    return best


def euclidean_distance_bruteforce(W, b, k, x, r, only_within=np.inf):
    """dist(x, cl Gamma^(r)) = min over J, |J| = r+1, and admissible above-sets A of the distance
    to the convex cone {s_J equal, s_A >= v, s_rest <= v} (THEORY §4.1), each by SLSQP.

    ``only_within``: skip slices whose subspace is already farther (a lower bound) — exactness
    is kept since dist to the cone >= dist to S_J.
    """
    M = W.shape[0]
    best = np.inf
    for J in itertools.combinations(range(M), r + 1):
        J = list(J)
        y0 = project_on_tie_subspace(W, b, x, J)
        if np.linalg.norm(x - y0) > min(best, only_within):
            continue
        rest = [i for i in range(M) if i not in J]
        for c in range(max(0, k - r), min(k - 1, len(rest)) + 1):
            for A in itertools.combinations(rest, c):
                cons = [{"type": "eq", "fun": (lambda y, j=j: (W[j] - W[J[0]]) @ y + b[j] - b[J[0]])}
                        for j in J[1:]]
                for a in rest:
                    sign = 1.0 if a in A else -1.0
                    cons.append({"type": "ineq",
                                 "fun": (lambda y, a=a, sg=sign: sg * ((W[a] - W[J[0]]) @ y + b[a] - b[J[0]]))})
                res = optimize.minimize(lambda y: 0.5 * np.sum((y - x) ** 2), y0,
                                        jac=lambda y: y - x, constraints=cons, method="SLSQP",
                                        options={"ftol": 1e-14, "maxiter": 500})
                y = res.x
                ok = all(cn["fun"](y) >= -1e-7 if cn["type"] == "ineq" else abs(cn["fun"](y)) <= 1e-7
                         for cn in cons)
                if ok:
                    best = min(best, np.linalg.norm(y - x))
    return best


def order1_facet_distance(W, b, k, x):
    """THEORY §4.1: dist(x, Gamma) = min_{i in K, j not in K} (s_i - s_j) / |w_i - w_j|."""
    s = W @ x + b
    order = np.argsort(-s)
    K, rest = order[:k], order[k:]
    return min((s[i] - s[j]) / np.linalg.norm(W[i] - W[j]) for i in K for j in rest)


def tube_stat(router, x, r, metric, eps_max=np.inf):
    """The order-r statistic of the full point x: membership at eps is ``stat <= eps``.

    Values above ``eps_max`` may be reported as ``inf`` (as the kernels do).
    """
    W, b, k = router.tie_weights, router.bias, router.k
    if metric == "score":
        return score_window_stat(router.scores(x), k, r)
    if metric == "normal":
        d = normal_fibre_distance(W, b, k, x, r)  # slices of size exactly r+1
    else:
        d = euclidean_distance_bruteforce(W, b, k, x, r, only_within=eps_max)
    return d if d <= eps_max else np.inf


# ------------------------------------------------------------------------------ chunk twins
def uniform_chunk(router, rng, n, rmax, radius, metric, eps_sorted):
    """Twin of ``uniform.uniform_chunk``: hist[r-1, j] over the same points, in full D."""
    M, D = router.n_experts, router.dim
    cosine = router.kind == "cosine"
    df = D - M if cosine else D + 2 - M
    hist = np.zeros((rmax, len(eps_sorted) + 1), dtype=np.int64)
    for _ in range(n):
        g = rng.standard_normal(M)
        z = g / math.sqrt(g @ g + chi_square(rng, df))
        if cosine:  # a unit vector with reduced part z: cosine scores see only the direction
            x = embed(router, z) + math.sqrt(max(1.0 - z @ z, 0.0)) * normal_to_rows(router)
        else:
            x = embed(router, radius * z)
        for r in range(1, rmax + 1):
            st = tube_stat(router, x, r, metric, eps_sorted[-1])
            hist[r - 1, int(np.searchsorted(eps_sorted, st, side="left"))] += 1
    return hist


def fibre_circumradius2(W, J, eps):
    """max |n|^2 over {n in N_J : max_J s(n) - min_J s(n) <= eps}, from the polytope's
    H-representation: every vertex is where r independent constraints ``s_a - s_b <= eps`` are
    active; enumerate them all, keep the feasible ones (the max of a convex function over a
    polytope is at a vertex)."""
    J = list(J)
    B = normal_basis(W, J)  # n = B^T u, u in R^r
    r = B.shape[0]
    rows = [(W[a] - W[c]) @ B.T for a in J for c in J if a != c]  # (s_a - s_c)(u) <= eps
    best = 0.0
    for act in itertools.combinations(range(len(rows)), r):
        A = np.array([rows[i] for i in act])
        if abs(np.linalg.det(A)) < 1e-12:
            continue
        u = np.linalg.solve(A, np.full(r, eps))
        if all(row @ u <= eps * (1 + 1e-9) for row in rows):
            best = max(best, float(u @ u))
    return best


def tube_draw_slices(router, rng, n, r, eps, metric):
    """Twin of ``tube.tube_draw_slices``: (J, rho2, u)."""
    M, W = router.n_experts, router.tie_weights
    J = np.empty((n, r + 1), dtype=np.int64)
    rho2, u = np.empty(n), np.empty(n)
    for i in range(n):
        J[i] = random_subset(rng, M, r + 1)
        rho2[i] = fibre_circumradius2(W, J[i], eps) if metric == "score" else eps * eps
        u[i] = rng.random()
    return J, rho2, u


def tube_chunk(router, rng, r, radius, metric, eps, J, beta, factor):
    """Twin of ``tube.tube_chunk`` (b = 0): [sum w, sum w^2, hits, sum overlap, its squares]."""
    M, D, k = router.n_experts, router.dim, router.k
    W, b = router.tie_weights, router.bias
    Q = router.basis
    total = total2 = osum = osum2 = 0.0
    hits = 0
    for i in range(J.shape[0]):
        Ji = list(J[i])
        B = normal_basis(W, Ji)  # (r, D), inside the row space
        dirn = rng.standard_normal(r)
        normal = radius * math.sqrt(beta[i]) * (dirn / np.linalg.norm(dirn)) @ B
        y = Q @ rng.standard_normal(M)
        y -= B.T @ (B @ y)  # Gaussian in S_J (within the row space)
        y *= radius * math.sqrt(1.0 - beta[i]) / math.sqrt(y @ y + chi_square(rng, D + 2 - M))
        x = y + normal
        s = W @ x + b
        in_tube = tube_stat(router, x, r, metric, eps) <= eps
        if metric == "score":
            in_tube = in_tube and np.ptp(s[Ji]) <= eps
        w = 0.0
        if in_tube:
            if metric == "score":
                count = sum(1 for T in itertools.combinations(range(M), r + 1)
                            if np.ptp(s[list(T)]) <= eps)
            else:
                count = sum(1 for T in itertools.combinations(range(M), r + 1)
                            if np.linalg.norm(x - project_on_tie_subspace(W, b, x, T)) <= eps)
            w = factor[i] / max(count, 1)
            total += w
            total2 += w * w
            hits += 1
        if metric != "score":
            p = project_on_tie_subspace(W, b, x, Ji)
            own = straddles(W @ p + b, Ji, k)
            dlt = (factor[i] if own else 0.0) - w
            osum += dlt
            osum2 += dlt * dlt
    return np.array([total, total2, hits, osum, osum2])


def alpha_mc_chunk(router, rng, r, n, fixed_J, halo):
    """Twin of ``alpha.alpha_mc_chunk``: [sum f/q, sum (f/q)^2, sum f w/q, sum (f w/q)^2]."""
    M, k, W = router.n_experts, router.k, router.tie_weights
    zero = np.zeros(M)
    n_all = math.comb(M, r + 1)
    lo, hi = max(0, k - r - 1 - halo), min(M, k + r + 1 + halo)
    n_win = math.comb(hi - lo, r + 1)
    out = np.zeros(4)
    for _ in range(n):
        x = embed(router, rng.standard_normal(M))
        inv_q = 1.0
        J = list(fixed_J)
        if not J:
            order = np.argsort(-(W @ x))
            if rng.random() < 0.5:
                J = sorted(order[lo + p] for p in random_subset(rng, hi - lo, r + 1))
            else:
                J = random_subset(rng, M, r + 1)
            inside = set(J) <= set(order[lo:hi].tolist())
            inv_q = 1.0 / (0.5 / n_all + (0.5 / n_win if inside else 0.0))
        t = W @ project_on_tie_subspace(W, zero, x, J)
        above = sum(1 for a in range(M) if a not in J and t[a] > np.mean(t[J]))
        if k - r <= above <= k - 1:
            w = inv_q / math.sqrt(gram_det(W, J))
            out += [inv_q, inv_q * inv_q, w, w * w]
    return out


def alpha_pairs_chunk(router, rng, n):
    """Twin of ``alpha.alpha_pairs_chunk``: per direction every pair's straddle indicator."""
    M, k, W = router.n_experts, router.k, router.tie_weights
    zero = np.zeros(M)
    out = np.zeros(4)
    for _ in range(n):
        x = embed(router, rng.standard_normal(M))
        F = Fw = 0.0
        for i, j in itertools.combinations(range(M), 2):
            t = W @ project_on_tie_subspace(W, zero, x, (i, j))
            above = sum(1 for a in range(M) if a not in (i, j) and t[a] > 0.5 * (t[i] + t[j]))
            if above == k - 1:
                F += 1.0
                Fw += 1.0 / np.linalg.norm(W[i] - W[j])
        out += [F, F * F, Fw, Fw * Fw]
    return out


def hit_point_stats(router, Zhit, tau, metric, eps_max):
    """Twin of ``paths.hit_point_stats``: order-2 statistic at each finite hit point."""
    return np.array([tube_stat(router, embed(router, z), 2, metric, eps_max) if np.isfinite(t)
                     else np.inf for z, t in zip(Zhit, tau)])


def ou_coefficients(theta, sigma, dt):
    """Exact OU step in law: decay e^{-theta dt}, noise^2 = sigma^2 int_0^dt e^{-2 theta s} ds."""
    from scipy import integrate
    if theta == 0.0:
        return 1.0, sigma * math.sqrt(dt)
    var = sigma ** 2 * integrate.quad(lambda s: math.exp(-2 * theta * s), 0.0, dt)[0]
    return math.exp(-theta * dt), math.sqrt(var)


def occupation_chunk(router, rng, Z0, rmax, metric, eps_sorted, sigma, dt, n_steps, theta,
                     checkpoints):
    """Twin of ``paths.occupation_chunk``: (sum, sum of squares) of the running occupations."""
    M = router.n_experts
    decay, noise = ou_coefficients(theta, sigma, dt)
    out_sum = np.zeros((len(checkpoints), rmax, len(eps_sorted)))
    out_sq = np.zeros_like(out_sum)
    for z0 in Z0:
        x0 = embed(router, z0)
        x = x0.copy()
        occ = np.zeros((rmax, len(eps_sorted)))
        for step in range(n_steps):
            for r in range(1, rmax + 1):
                occ[r - 1] += dt * (tube_stat(router, x, r, metric, eps_sorted[-1]) <= eps_sorted)
            for c, cp in enumerate(checkpoints):
                if cp == step + 1:
                    out_sum[c] += occ
                    out_sq[c] += occ * occ
            x = x0 + decay * (x - x0) + noise * embed(router, rng.standard_normal(M))
    return out_sum, out_sq


def walk_on_spheres_chunk(router, rng, Z0, tol, max_steps):
    """Twin of ``paths.walk_on_spheres_chunk``: exit points (reduced) and step counts.

    In full D: the distance to the cell boundary is the least facet distance (THEORY §4.1); the
    sphere's uniform point is x + d G/|G| with G Gaussian in the row space (the rest of R^D does
    not move any score, and the kernel's walk lives in the reduced cross-section).
    """
    M, k = router.n_experts, router.k
    W, b = router.tie_weights, router.bias
    zexit, steps_out = np.empty((len(Z0), M)), np.empty(len(Z0), dtype=np.int64)
    for p, z0 in enumerate(Z0):
        x = embed(router, z0)
        order = np.argsort(-(W @ x + b))
        K, rest = order[:k], order[k:]
        steps = 0
        while True:
            s = W @ x + b
            dist = {(i, j): (s[i] - s[j]) / np.linalg.norm(W[i] - W[j]) for i in K for j in rest}
            (i, j), best = min(dist.items(), key=lambda kv: kv[1])
            if best < tol or steps >= max_steps:
                u = W[i] - W[j]
                x = x - (s[i] - s[j]) / (u @ u) * u
                break
            g = rng.standard_normal(M)
            x = x + best * embed(router, g) / np.linalg.norm(g)
            steps += 1
        zexit[p] = router.to_reduced(x)
        steps_out[p] = steps
    return zexit, steps_out


def _cross_prob(ga, gb, var):
    """P(some facet gap crosses 0 between end gaps ga, gb): 1 on a sign change, else one minus
    the product of the Brownian-bridge survival probabilities."""
    if np.any(ga <= 0.0) or np.any(gb <= 0.0):
        return 1.0
    return 1.0 - float(np.prod(1.0 - np.exp(-2.0 * ga * gb / var)))


def _tn_above(rng, mu, tau):
    a = -mu / tau
    if a < bridge.TN_SWITCH:
        while True:
            x = rng.standard_normal()
            if x > a:
                return mu + tau * x
    lam = bridge.tn_rate(a)
    while True:
        x = a - math.log(1.0 - rng.random()) / lam
        if rng.random() <= math.exp(-0.5 * (x - lam) ** 2):
            return mu + tau * x


def _conditioned_gap(rng, ga, gb, v):
    tau, ybar = math.sqrt(0.5 * v), 0.5 * (ga + gb)
    if gb <= 0.0:
        return ybar + tau * rng.standard_normal()
    w0, wa, wb = bridge.piece_weights(ga, gb, v)
    while True:
        u = rng.random() * (w0 + wa + wb)
        if u < w0:
            return -_tn_above(rng, -ybar, tau)
        y = _tn_above(rng, 0.5 * (gb - ga) if u < w0 + wa else 0.5 * (ga - gb), tau)
        if rng.random() < bridge.envelope_keep(y, ga, gb, v):
            return y


def _conditioned_midpoint(rng, router, pairs, gaps, x, x1, ga, gb, var, s_mid):
    """The bridge midpoint given a crossing, in R^D (the algorithm of ``discosim._kernels.diffusion.bridge``)."""
    W, M = router.tie_weights, router.n_experts
    cw = [bridge.facet_weight(a, b, v) for a, b, v in zip(ga, gb, var)]
    C = 0.0
    for c in cw:
        C += c
    while True:
        u = rng.random() * C
        q, acc = 0, cw[0]
        while acc <= u and q < len(cw) - 1:
            q += 1
            acc += cw[q]
        y = _conditioned_gap(rng, ga[q], gb[q], var[q])
        i, j = pairs[q]
        e = W[i] - W[j]  # the facet normal in R^D
        noise = embed(router, rng.standard_normal(M))
        noise = noise + ((y - 0.5 * (ga[q] + gb[q])) / s_mid - e @ noise) / (e @ e) * e
        xm = 0.5 * (x + x1) + s_mid * noise
        gm = gaps(xm)
        qs = sum(bridge.gap_crossing(a, b, c, v) for a, b, c, v in zip(gm, ga, gb, var))
        pl = _cross_prob(ga, gm, var)
        q_cross = 1.0 - (1.0 - pl) * (1.0 - _cross_prob(gm, gb, var))
        if rng.random() * qs < q_cross:
            return xm, gm, pl, q_cross


def first_exit_chunk(router, rng, rng_refine, Z0, sigma, dt, n_steps, theta, depth, use_bridge):
    """Twin of ``paths.first_exit_chunk`` in full D: (exit times, reduced exit points)."""
    M, k = router.n_experts, router.k
    W, b = router.tie_weights, router.bias
    decay, noise = ou_coefficients(theta, sigma, dt)
    tau_out, zhit = np.full(len(Z0), np.inf), np.full((len(Z0), M), np.nan)
    for p, z0 in enumerate(Z0):
        x0 = embed(router, z0)
        order = np.argsort(-(W @ x0 + b))
        pairs = [(i, j) for i in order[:k] for j in order[k:]]
        dn2 = np.array([np.sum((W[i] - W[j]) ** 2) for i, j in pairs])

        def gaps(x):
            s = W @ x + b
            return np.array([s[i] - s[j] for i, j in pairs])

        x, ga = x0, gaps(x0)
        for step in range(n_steps):
            x1 = x0 + decay * (x - x0) + noise * embed(router, rng.standard_normal(M))
            gb = gaps(x1)
            crossed = bool(np.any(gb <= 0.0))
            if not crossed and use_bridge:
                crossed = rng.random() < _cross_prob(ga, gb, sigma ** 2 * dn2 * dt)
            if crossed:
                t0, h = step * dt, dt
                for _ in range(depth):
                    hh = 0.5 * h
                    var = sigma ** 2 * dn2 * hh
                    s_mid = sigma * math.sqrt(0.25 * h)
                    if use_bridge:
                        xm, gm, pl, q_cross = _conditioned_midpoint(rng_refine, router, pairs, gaps, x, x1, ga,
                                                                    gb, var, s_mid)
                    else:  # flagged by a sign change at the end: every midpoint crosses
                        xm = 0.5 * (x + x1) + s_mid * embed(router, rng_refine.standard_normal(M))
                        gm = gaps(xm)
                        pl, q_cross = float(np.any(gm <= 0.0)), 1.0
                    if rng_refine.random() * q_cross < pl:  # the first crossing is in the left half
                        x1, gb = xm, gm
                    else:
                        x, ga, t0 = xm, gm, t0 + hh
                    h = hh
                tau_out[p] = t0 + 0.5 * h
                zhit[p] = router.to_reduced(0.5 * (x + x1))
                break
            x, ga = x1, gb
    return tau_out, zhit
