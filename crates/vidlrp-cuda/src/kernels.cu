// vidlrp CUDA kernels, compiled at run time by NVRTC.
//
// Every kernel is a grid-stride loop in which one thread computes one output element from its
// inputs (a gather): no atomics, no shared memory, so results do not depend on the launch shape
// and are identical from run to run. The same source also compiles as plain C++ with
// VIDLRP_HOST_EMULATION defined (one "thread" walks the whole loop), which lets the tests check
// the indexing on machines without a GPU.

#ifdef VIDLRP_HOST_EMULATION
#include <math.h>
struct VidlrpDim3 {
    unsigned int x, y, z;
};
static const VidlrpDim3 threadIdx = {0, 0, 0};
static const VidlrpDim3 blockIdx = {0, 0, 0};
static const VidlrpDim3 blockDim = {1, 1, 1};
static const VidlrpDim3 gridDim = {1, 1, 1};
#define __global__
#define __device__
#define VIDLRP_INF INFINITY
#else
#define VIDLRP_INF __int_as_float(0x7f800000)
#endif

typedef long long i64;

#define FOR_EACH_INDEX(i, n)                                                                   \
    for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                          \
         i += (i64)blockDim.x * gridDim.x)

// Geometry of one 3-d convolution; axes are (t, h, w). Mirrors `plan::ConvDims`.
struct ConvDims {
    int c_in;
    int in[3];
    int kernel[3];
    int stride[3];
    int padding[3];
    int out[3];
};

// Geometry of one 3-d pooling over (t, h, w) planes. Mirrors `plan::PoolDims`.
struct PoolDims {
    int in[3];
    int kernel[3];
    int stride[3];
    int padding[3];
    int out[3];
};

// ---- elementwise ----

// Op codes mirror `plan::unary_code`.
__device__ float apply_unary(int op, float k, float x) {
    switch (op) {
    case 0: return fmaxf(x, 0.0f);
    case 1: return fminf(x, 0.0f);
    case 2: return x * x;
    case 3: return 1.0f;
    case 4: return k * x;
    case 5: return x > 0.0f ? 1.0f : 0.0f;
    case 6: return x < 0.0f ? 1.0f : 0.0f;
    case 7: return x + k * fmaxf(x, 0.0f);
    default: return x + k * fminf(x, 0.0f);
    }
}

extern "C" __global__ void vidlrp_unary(const float* x, float* y, i64 n, int op, float k) {
    FOR_EACH_INDEX(i, n) { y[i] = apply_unary(op, k, x[i]); }
}

// Op codes mirror `plan::binary_code`; 3 is a / stab(b), stab(b) = b + eps sign(b), sign(0) = 1;
// 4 is a times the step of b (a ReLU's gradient a at input b).
extern "C" __global__ void vidlrp_binary(const float* a, const float* b, float* y, i64 n, int op,
                                         float eps) {
    FOR_EACH_INDEX(i, n) {
        float u = a[i], v = b[i];
        float r;
        switch (op) {
        case 0: r = u + v; break;
        case 1: r = u - v; break;
        case 2: r = u * v; break;
        case 4: r = u * (v > 0.0f ? 1.0f : 0.0f); break;
        default: r = u / (v >= 0.0f ? v + eps : v - eps); break;
        }
        y[i] = r;
    }
}

// y[i] = values[c] (or y[i] += values[c] when accumulate != 0), c = (i / inner) % channels.
extern "C" __global__ void vidlrp_channels(float* y, const float* values, i64 n, i64 channels,
                                           i64 inner, int accumulate) {
    FOR_EACH_INDEX(i, n) {
        float v = values[(i / inner) % channels];
        y[i] = accumulate ? y[i] + v : v;
    }
}

// ---- reductions (partials; the host combines them in order) ----

// partial[s * chunks + c] = sum of x[s * per + c * chunk .. min(+chunk, per)) in double.
extern "C" __global__ void vidlrp_partial_sums(const float* x, double* partial, i64 samples,
                                               i64 per, i64 chunk) {
    i64 chunks = (per + chunk - 1) / chunk;
    FOR_EACH_INDEX(i, samples * chunks) {
        i64 s = i / chunks, c = i % chunks;
        i64 begin = s * per + c * chunk;
        i64 end = s * per + (c + 1) * chunk < (s + 1) * per ? s * per + (c + 1) * chunk
                                                             : (s + 1) * per;
        double acc = 0.0;
        for (i64 e = begin; e < end; ++e) acc += (double)x[e];
        partial[i] = acc;
    }
}

// partial[c] = min of x[c * chunk .. min(+chunk, n)) (NaN ignored, as fminf does).
extern "C" __global__ void vidlrp_partial_min(const float* x, float* partial, i64 n, i64 chunk) {
    i64 chunks = (n + chunk - 1) / chunk;
    FOR_EACH_INDEX(i, chunks) {
        i64 end = (i + 1) * chunk < n ? (i + 1) * chunk : n;
        float m = VIDLRP_INF;
        for (i64 e = i * chunk; e < end; ++e) m = fminf(m, x[e]);
        partial[i] = m;
    }
}

// ---- convolution: im2col / col2im over a tile of output columns ----

// cols[r, q] (row-major, pt columns) = x[ci, t, h, w] for r = (ci, a, b, c), p = p0 + q = (ot, oh,
// ow), t = ot s_t + a - p_t, ...; zero outside the input.
extern "C" __global__ void vidlrp_vol2col(const float* x, i64 x_offset, float* cols, ConvDims d,
                                          i64 p0, i64 pt) {
    i64 kvol = (i64)d.kernel[0] * d.kernel[1] * d.kernel[2];
    i64 rows = d.c_in * kvol;
    FOR_EACH_INDEX(i, rows * pt) {
        i64 r = i / pt, p = p0 + i % pt;
        int ow = (int)(p % d.out[2]);
        int oh = (int)((p / d.out[2]) % d.out[1]);
        int ot = (int)(p / ((i64)d.out[2] * d.out[1]));
        int ci = (int)(r / kvol);
        int a = (int)((r / ((i64)d.kernel[1] * d.kernel[2])) % d.kernel[0]);
        int b = (int)((r / d.kernel[2]) % d.kernel[1]);
        int c = (int)(r % d.kernel[2]);
        int t = ot * d.stride[0] + a - d.padding[0];
        int h = oh * d.stride[1] + b - d.padding[1];
        int w = ow * d.stride[2] + c - d.padding[2];
        float v = 0.0f;
        if (t >= 0 && t < d.in[0] && h >= 0 && h < d.in[1] && w >= 0 && w < d.in[2]) {
            v = x[x_offset + (((i64)ci * d.in[0] + t) * d.in[1] + h) * d.in[2] + w];
        }
        cols[i] = v;
    }
}

// x[ci, t, h, w] += sum of cols[r, q] over the (a, b, c) whose output column p = p0 + q lies in
// the tile: the transpose of vol2col, written as a gather.
extern "C" __global__ void vidlrp_col2vol(const float* cols, float* x, i64 x_offset, ConvDims d,
                                          i64 p0, i64 pt) {
    i64 in_vol = (i64)d.in[0] * d.in[1] * d.in[2];
    FOR_EACH_INDEX(i, d.c_in * in_vol) {
        int w = (int)(i % d.in[2]);
        int h = (int)((i / d.in[2]) % d.in[1]);
        int t = (int)((i / ((i64)d.in[2] * d.in[1])) % d.in[0]);
        int ci = (int)(i / in_vol);
        float acc = 0.0f;
        for (int a = 0; a < d.kernel[0]; ++a) {
            int tt = t + d.padding[0] - a;
            if (tt < 0 || tt % d.stride[0] != 0) continue;
            int ot = tt / d.stride[0];
            if (ot >= d.out[0]) continue;
            for (int b = 0; b < d.kernel[1]; ++b) {
                int hh = h + d.padding[1] - b;
                if (hh < 0 || hh % d.stride[1] != 0) continue;
                int oh = hh / d.stride[1];
                if (oh >= d.out[1]) continue;
                for (int c = 0; c < d.kernel[2]; ++c) {
                    int ww = w + d.padding[2] - c;
                    if (ww < 0 || ww % d.stride[2] != 0) continue;
                    int ow = ww / d.stride[2];
                    if (ow >= d.out[2]) continue;
                    i64 p = ((i64)ot * d.out[1] + oh) * d.out[2] + ow;
                    if (p < p0 || p >= p0 + pt) continue;
                    i64 r = (((i64)ci * d.kernel[0] + a) * d.kernel[1] + b) * d.kernel[2] + c;
                    acc += cols[r * pt + (p - p0)];
                }
            }
        }
        x[x_offset + i] += acc;
    }
}

// ---- pooling over clipped windows ----

// The window of output o along axis ax, clipped to [0, len): [*lo, *hi).
__device__ void pool_window(const PoolDims& d, int ax, int o, int* lo, int* hi) {
    int start = o * d.stride[ax] - d.padding[ax];
    int end = start + d.kernel[ax];
    *lo = start > 0 ? start : 0;
    *hi = end < d.in[ax] ? end : d.in[ax];
}

// The plane index of the first maximum of window (ot, oh, ow) in scan order (NaN wins, as in
// PyTorch), or -1 if the window is empty.
__device__ i64 pool_argmax(const float* plane, const PoolDims& d, int ot, int oh, int ow) {
    int t0, t1, h0, h1, w0, w1;
    pool_window(d, 0, ot, &t0, &t1);
    pool_window(d, 1, oh, &h0, &h1);
    pool_window(d, 2, ow, &w0, &w1);
    i64 best = -1;
    float b = 0.0f;
    for (int t = t0; t < t1; ++t)
        for (int h = h0; h < h1; ++h)
            for (int w = w0; w < w1; ++w) {
                i64 j = ((i64)t * d.in[1] + h) * d.in[2] + w;
                float v = plane[j];
                if (best < 0 || v > b || v != v) {
                    best = j;
                    b = v;
                }
            }
    return best;
}

// The range of outputs along axis ax whose window contains input position x: [*lo, *hi).
__device__ void pool_outputs_covering(const PoolDims& d, int ax, int x, int* lo, int* hi) {
    // start(o) = o s - p <= x  and  start(o) + k > x
    int num = x + d.padding[ax] - d.kernel[ax] + 1;
    int first = num <= 0 ? 0 : (num + d.stride[ax] - 1) / d.stride[ax];
    int last = (x + d.padding[ax]) / d.stride[ax] + 1;
    *lo = first;
    *hi = last < d.out[ax] ? last : d.out[ax];
}

// mode 0: y = max over the window (-inf if empty); mode 1: y = sum over the window.
extern "C" __global__ void vidlrp_pool(const float* x, float* y, i64 planes, PoolDims d,
                                       int mode) {
    i64 in_vol = (i64)d.in[0] * d.in[1] * d.in[2];
    i64 out_vol = (i64)d.out[0] * d.out[1] * d.out[2];
    FOR_EACH_INDEX(i, planes * out_vol) {
        const float* plane = x + (i / out_vol) * in_vol;
        i64 j = i % out_vol;
        int ow = (int)(j % d.out[2]);
        int oh = (int)((j / d.out[2]) % d.out[1]);
        int ot = (int)(j / ((i64)d.out[2] * d.out[1]));
        if (mode == 0) {
            i64 best = pool_argmax(plane, d, ot, oh, ow);
            y[i] = best < 0 ? -VIDLRP_INF : plane[best];
        } else {
            int t0, t1, h0, h1, w0, w1;
            pool_window(d, 0, ot, &t0, &t1);
            pool_window(d, 1, oh, &h0, &h1);
            pool_window(d, 2, ow, &w0, &w1);
            float s = 0.0f;
            for (int t = t0; t < t1; ++t)
                for (int h = h0; h < h1; ++h)
                    for (int w = w0; w < w1; ++w) s += plane[((i64)t * d.in[1] + h) * d.in[2] + w];
            y[i] = s;
        }
    }
}

// The transposes, as gathers over the windows that contain each input, in output order:
// mode 0 routes g[j] to the first maximum of window j (x is read), mode 1 to every member.
extern "C" __global__ void vidlrp_pool_transposed(const float* x, const float* g, float* y,
                                                  i64 planes, PoolDims d, int mode) {
    i64 in_vol = (i64)d.in[0] * d.in[1] * d.in[2];
    i64 out_vol = (i64)d.out[0] * d.out[1] * d.out[2];
    FOR_EACH_INDEX(i, planes * in_vol) {
        i64 plane_index = i / in_vol;
        i64 own = i % in_vol;
        int w = (int)(own % d.in[2]);
        int h = (int)((own / d.in[2]) % d.in[1]);
        int t = (int)(own / ((i64)d.in[2] * d.in[1]));
        int t0, t1, h0, h1, w0, w1;
        pool_outputs_covering(d, 0, t, &t0, &t1);
        pool_outputs_covering(d, 1, h, &h0, &h1);
        pool_outputs_covering(d, 2, w, &w0, &w1);
        const float* plane = x + plane_index * in_vol;
        const float* gp = g + plane_index * out_vol;
        float acc = 0.0f;
        for (int ot = t0; ot < t1; ++ot)
            for (int oh = h0; oh < h1; ++oh)
                for (int ow = w0; ow < w1; ++ow) {
                    if (mode == 0 && pool_argmax(plane, d, ot, oh, ow) != own) continue;
                    acc += gp[((i64)ot * d.out[1] + oh) * d.out[2] + ow];
                }
        y[i] = acc;
    }
}
