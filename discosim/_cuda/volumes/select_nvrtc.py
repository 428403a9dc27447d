"""Scores and top-k selection of the GPU volume sampler in one CUDA C++ kernel (NVRTC via CuPy).

The kernel reads the normals G (``GT[j, col]``, samples along columns, as the generator of
:mod:`.volume` writes them), their squared norm and the chi-square, and does per column what the
numba ``select`` kernel does after a cuBLAS SGEMM: the float32 scores ``s = scale W_r g + b``,
the top ``k + rmax`` by compare-exchange insertion, the window statistics, the counts and the
float32 band of :mod:`.volume` (a sample whose statistic lies within the error bound of an eps is
handed back for the float64 recomputation). Two forms:

- ``fused`` (M <= ``MAX_NVRTC_FUSED_M``): the weights and the bias are literals of the source
  (hex floats, exact), every loop is unrolled, so g[] and the top list live in registers and
  each score term is one FFMA with an immediate operand. Numba cannot keep g[] in registers at
  M = 64 without hand-unrolled Python whose compile takes minutes; NVRTC compiles the C++ in
  seconds and CuPy caches the binary on disk.
- ``select`` (any M): the scores come from the SGEMM (``S[a, col]``), the kernel scales them,
  adds the bias and selects.

Counts never depend on the form: the band makes them those of a float64 evaluation of the
same draws (:mod:`.volume`), whatever order float32 sums in.
"""

import functools

import numpy as np

MAX_NVRTC_FUSED_M = 128  # g[] in registers: 128 + the top list + counters < 255

_HEADER = r"""
#define NE {NE}
#define NC {NC}
#define L {L}
#define INF_F __int_as_float(0x7f800000)
extern "C" __global__ void {name}(const float* __restrict__ X, long long ld,
        const float* __restrict__ ssq, const float* __restrict__ chi,
        const float* __restrict__ bias, long long n_cols,
        float radius, const float* __restrict__ eps, float e1, float e0, float thr,
        unsigned long long* hist, long long* cand_idx, int* cand_n, int cap)
{{
    __shared__ int sh[NC > 0 ? NC : 1];
    int cnt[NC > 0 ? NC : 1];
    float ep[NE > 0 ? NE : 1];
#pragma unroll
    for (int q = 0; q < NC; ++q) cnt[q] = 0;
#pragma unroll
    for (int e = 0; e < NE; ++e) ep[e] = eps[e];
    for (int q = threadIdx.x; q < NC; q += blockDim.x) sh[q] = 0;
    __syncthreads();
    long long stride = (long long)gridDim.x * blockDim.x;
    for (long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x; col < n_cols;
         col += stride) {{
        float s2 = ssq[col];
        float scale = {scale_num} / sqrtf(s2 + chi[col]);
        float zn = scale * sqrtf(s2);
        float top[L];
#pragma unroll
        for (int q = 0; q < L; ++q) top[q] = -INF_F;
"""

_FOOTER = r"""
        float err = e1 * zn + e0;
        bool hand = false;
{stats}
{classify}
        if (hand) {{
            int slot = atomicAdd(cand_n, 1);
            if (slot < cap) cand_idx[slot] = col;
        }}
    }}
#pragma unroll
    for (int q = 0; q < NC; ++q)
        if (cnt[q] != 0) atomicAdd(&sh[q], cnt[q]);
    __syncthreads();
    for (int q = threadIdx.x; q < NC; q += blockDim.x)
        if (sh[q] != 0) atomicAdd(&hist[q], (unsigned long long)sh[q]);
}}
"""


def _lit(x):
    """Exact float32 literal of a float32 value."""
    return float(np.float32(x)).hex() + "f"


def _insert(v, L):
    lines = []
    for q in range(L):
        lines.append(f"{{ float h = top[{q}]; top[{q}] = fmaxf({v}, h); {v} = fminf({v}, h); }}")
    return " ".join(lines)


def kernel_source(name, M, K, RMAX, NE, SCREEN, COSINE, Wp=None, bias=None):
    """CUDA C++ source of the kernel: fused when ``Wp`` (packed lower triangle, row-major) and
    ``bias`` are given (baked in); otherwise ``X`` holds the scores and ``bias`` is an argument."""
    L = min(M, K + RMAX)
    src = [_HEADER.format(NE=NE, NC=RMAX * NE, L=L, name=name,
                          scale_num="1.0f" if COSINE else "radius")]
    ind = " " * 8
    if Wp is not None:
        src += [ind + f"float g{j} = X[{j} * ld + col];" for j in range(M)]
        o = 0
        for a in range(M):
            terms = [f"{_lit(Wp[o + j])} * g{j}" for j in range(a + 1)]
            o += a + 1
            src.append(ind + "{ float v = scale * (" + " + ".join(terms) + f") + {_lit(bias[a])}; "
                       + _insert("v", L) + " }")
    else:
        src.append(ind + "#pragma unroll 16")
        src.append(ind + f"for (int a = 0; a < {M}; ++a) {{ float v = scale * X[a * ld + col] + bias[a]; "
                   + _insert("v", L) + " }")
    stats = []
    for r in range(1, RMAX + 1):
        terms = [f"top[{p - 1}] - top[{p + r - 1}]" for p in range(max(1, K - r + 1), min(K, M - r) + 1)]
        expr = "INF_F"
        for t in terms:
            expr = f"fminf({expr}, {t})"
        stats.append(ind + f"float st{r} = {expr};")
    if SCREEN == 0:
        near = " || ".join(f"fabsf(st{r} - ep[{e}]) <= err" for r in range(1, RMAX + 1)
                           for e in range(NE)) or "false"
        cls = [ind + f"hand = {near};", ind + "if (!hand) {"]
        cls += [ind + f"    cnt[{(r - 1) * NE + e}] += st{r} <= ep[{e}];"
                for r in range(1, RMAX + 1) for e in range(NE)]
        cls.append(ind + "}")
    else:
        cls = [ind + "hand = st1 <= thr + err;"]
    src.append(_FOOTER.format(stats="\n".join(stats), classify="\n".join(cls)))
    return "\n".join(src)


@functools.lru_cache(maxsize=32)
def _module(src):
    import cupy as cp

    return cp.RawModule(code=src, options=("--std=c++17",))


def probe():
    """Compile and load an empty kernel: raises where CuPy or NVRTC cannot."""
    return _module('extern "C" __global__ void probe() {}').get_function("probe")


def select_kernel(M, K, RMAX, NE, SCREEN, COSINE, Wp=None, bias=None):
    """The compiled kernel (a ``cupy.RawKernel``); ``Wp`` given: the fused form for this router."""
    name = "score_select" if Wp is not None else "select_scores"
    src = kernel_source(name, M, K, RMAX, NE, SCREEN, COSINE, Wp, bias)
    return _module(src).get_function(name)


def launch(kern, n_sm, X, ssq, chi, bias, ncols, radius, eps, e1, e0, thr, hist, cand_idx, cand_n,
           block=256):
    """Launch over ``ncols`` columns of the C-contiguous ``X`` (grid-stride: the counts never
    depend on the grid); array arguments are CuPy arrays."""
    assert X.flags.c_contiguous
    grid = int(min(-(-ncols // block), 16 * n_sm))
    kern((grid,), (block,), (X, np.int64(X.shape[1]), ssq, chi, bias, np.int64(ncols),
                             np.float32(radius), eps, np.float32(e1), np.float32(e0),
                             np.float32(thr), hist, cand_idx, cand_n, np.int32(cand_idx.shape[0])))


_GATHER = r"""
extern "C" __global__ void gather_scale(const float* __restrict__ GT, long long ld,
        const float* __restrict__ chi, const long long* __restrict__ idx, long long n_c,
        double num, double* __restrict__ Z)
{
    // column q of Z: the handed-back sample idx[q] as a float64 point, scale * g
    long long q = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= n_c) return;
    long long col = idx[q];
    double ss = 0.0;
    for (int j = 0; j < M_; ++j) {
        double g = (double)GT[j * ld + col];
        ss += g * g;
    }
    double scale = num / sqrt(ss + (double)chi[col]);
    for (int j = 0; j < M_; ++j)
        Z[j * n_c + q] = scale * (double)GT[j * ld + col];
}
"""


def gather_kernel(M):
    """``Z[:, q] = scale_q G[:, idx[q]]`` in float64 (``scale = num / sqrt(|g|^2 + C)``, num = R
    or 1 for cosine scores): the float64 points of the handed-back columns in one pass, for the
    DGEMM of the refinement."""
    return _module(f"#define M_ {M}\n" + _GATHER).get_function("gather_scale")
