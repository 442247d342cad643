/* conv_direct.c: a direct (no im2col) float32 channels-last convolution with AVX2/FMA, for
 * convolutions with few input channels and large kernels (the article's 11x11 conv over RGB),
 * where the im2col matrix is kh*kw times larger than x and 16% of its taps read zero padding.
 *
 * Forward, for output pixel (n, i, j) and output channel o:
 *     y[n,i,j,o] = b[o] + sum_(di,dj,c) xpad[n, i*sh+di, j*sw+dj, c] * K[di,dj,c,o]
 * over the taps whose input cell is real (taps that only read padding are skipped; the padded
 * copy xpad makes the remaining boundary taps branch-free). Register blocking: 4 output pixels x
 * 24 output channels (12 AVX accumulators); each tap loads 3 kernel vectors and broadcasts 4
 * input values.
 * Kernel gradient:
 *     dK[di,dj,c,o] = sum_(n,i,j) xpad[n, i*sh+di, j*sw+dj, c] * dy[n,i,j,o]
 * blocked as 4 taps x 24 channels per pass over one output row's pixels whose cells are real for
 * one of the taps; each image is summed in float, and the images' sums are added in double in
 * image order (the same result for any thread count).
 * Both need Cout % 8 == 0 and a CPU with AVX2 and FMA (checked at run time); otherwise the
 * glue falls back to im2col + matmul.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "parallel.h"

void bnpy_pad_nhwc_f32(float *xpad, const float *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                       ptrdiff_t C, ptrdiff_t pad_top, ptrdiff_t pad_bottom, ptrdiff_t pad_left,
                       ptrdiff_t pad_right)
{
    const ptrdiff_t Hp = H + pad_top + pad_bottom, Wp = W + pad_left + pad_right;
    const int nt = bnpy_threads_for((double)N * Hp * Wp * C);
    BNPY_OMP_FOR(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        float *dst = xpad + n * Hp * Wp * C;
        const float *src = x + n * H * W * C;
        memset(dst, 0, (size_t)(pad_top * Wp * C) * sizeof(float));
        for (ptrdiff_t h = 0; h < H; h++) {
            float *row = dst + (pad_top + h) * Wp * C;
            memset(row, 0, (size_t)(pad_left * C) * sizeof(float));
            memcpy(row + pad_left * C, src + h * W * C, (size_t)(W * C) * sizeof(float));
            memset(row + (pad_left + W) * C, 0, (size_t)(pad_right * C) * sizeof(float));
        }
        memset(dst + (pad_top + H) * Wp * C, 0, (size_t)(pad_bottom * Wp * C) * sizeof(float));
    }
}

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#include <immintrin.h>
#define TARGET __attribute__((target("avx2,fma")))

int bnpy_conv_direct_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* The range [lo, hi) of output indices i (0 <= i < out) whose input index i*s + d lies in the real
 * cells [pad, pad + n) of the padded axis. */
static inline void real_outputs(ptrdiff_t d, ptrdiff_t s, ptrdiff_t pad, ptrdiff_t n, ptrdiff_t out,
                                ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = pad - d, b = pad + n - d; /* need a <= i*s < b */
    ptrdiff_t l = a <= 0 ? 0 : (a + s - 1) / s;
    ptrdiff_t h = b <= 0 ? 0 : (b + s - 1) / s;
    *lo = l;
    *hi = h < out ? h : out;
}

/* The hot forward block: 4 output pixels x 24 output channels in 12 named accumulators (GCC keeps
 * named __m256 locals in registers; an array of them is spilled to the stack on every FMA).
 * For a fixed kernel row di, the taps (dj, c) for dj in [dj0, dj1) are contiguous in both xpad
 * and the packed kernel, so the inner loop runs over (dj1 - dj0) * C taps without index math. */
static TARGET void forward_block_4x24(float *y, ptrdiff_t Cout, const float *x,
                                      ptrdiff_t pixel_step, const float *kp, const float *bias,
                                      ptrdiff_t di0, ptrdiff_t di1, ptrdiff_t dj0, ptrdiff_t dj1,
                                      ptrdiff_t kw, ptrdiff_t Wp, ptrdiff_t C)
{
    const __m256 b0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    const __m256 b1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
    const __m256 b2 = bias ? _mm256_loadu_ps(bias + 16) : _mm256_setzero_ps();
    __m256 a00 = b0, a01 = b1, a02 = b2, a10 = b0, a11 = b1, a12 = b2;
    __m256 a20 = b0, a21 = b1, a22 = b2, a30 = b0, a31 = b1, a32 = b2;
    const ptrdiff_t run = (dj1 - dj0) * C;
    const float *x0 = x, *x1 = x + pixel_step, *x2 = x + 2 * pixel_step, *x3 = x + 3 * pixel_step;
    for (ptrdiff_t di = di0; di < di1; di++) {
        const ptrdiff_t xoff = (di * Wp + dj0) * C;
        const float *kt = kp + ((di * kw + dj0) * C) * 24;
        /* One line per output pixel, its three accumulators side by side: */
        /* clang-format off */
        for (ptrdiff_t t = 0; t < run; t++, kt += 24) {
            const __m256 k0 = _mm256_loadu_ps(kt), k1 = _mm256_loadu_ps(kt + 8), k2 = _mm256_loadu_ps(kt + 16);
            __m256 v = _mm256_broadcast_ss(x0 + xoff + t);
            a00 = _mm256_fmadd_ps(v, k0, a00); a01 = _mm256_fmadd_ps(v, k1, a01); a02 = _mm256_fmadd_ps(v, k2, a02);
            v = _mm256_broadcast_ss(x1 + xoff + t);
            a10 = _mm256_fmadd_ps(v, k0, a10); a11 = _mm256_fmadd_ps(v, k1, a11); a12 = _mm256_fmadd_ps(v, k2, a12);
            v = _mm256_broadcast_ss(x2 + xoff + t);
            a20 = _mm256_fmadd_ps(v, k0, a20); a21 = _mm256_fmadd_ps(v, k1, a21); a22 = _mm256_fmadd_ps(v, k2, a22);
            v = _mm256_broadcast_ss(x3 + xoff + t);
            a30 = _mm256_fmadd_ps(v, k0, a30); a31 = _mm256_fmadd_ps(v, k1, a31); a32 = _mm256_fmadd_ps(v, k2, a32);
        }
    }
    _mm256_storeu_ps(y, a00); _mm256_storeu_ps(y + 8, a01); _mm256_storeu_ps(y + 16, a02);
    y += Cout;
    _mm256_storeu_ps(y, a10); _mm256_storeu_ps(y + 8, a11); _mm256_storeu_ps(y + 16, a12);
    y += Cout;
    _mm256_storeu_ps(y, a20); _mm256_storeu_ps(y + 8, a21); _mm256_storeu_ps(y + 16, a22);
    y += Cout;
    _mm256_storeu_ps(y, a30); _mm256_storeu_ps(y + 8, a31); _mm256_storeu_ps(y + 16, a32);
    /* clang-format on */
}

/* The tails (a last 1..3 pixels, a last 8 channels): generic, rarely hot. */
/* One block of RR output pixels x NV*8 output channels of the forward. */
#define DEFINE_FORWARD_BLOCK(RR, NV)                                                               \
    static TARGET void forward_block_##RR##_##NV(                                                  \
        float *y, ptrdiff_t Cout, const float *x, ptrdiff_t pixel_step, const float *kp,           \
        const float *bias, ptrdiff_t di0, ptrdiff_t di1, ptrdiff_t dj0, ptrdiff_t dj1,             \
        ptrdiff_t kw, ptrdiff_t Wp, ptrdiff_t C)                                                   \
    {                                                                                              \
        __m256 acc[RR][NV];                                                                        \
        for (int v = 0; v < NV; v++) {                                                             \
            __m256 b0 = bias ? _mm256_loadu_ps(bias + 8 * v) : _mm256_setzero_ps();                \
            for (int r = 0; r < RR; r++)                                                           \
                acc[r][v] = b0;                                                                    \
        }                                                                                          \
        for (ptrdiff_t di = di0; di < di1; di++)                                                   \
            for (ptrdiff_t dj = dj0; dj < dj1; dj++) {                                             \
                const float *xt = x + (di * Wp + dj) * C;                                          \
                const float *kt = kp + ((di * kw + dj) * C) * (8 * NV);                            \
                for (ptrdiff_t c = 0; c < C; c++, kt += 8 * NV) {                                  \
                    __m256 k[NV];                                                                  \
                    for (int v = 0; v < NV; v++)                                                   \
                        k[v] = _mm256_loadu_ps(kt + 8 * v);                                        \
                    for (int r = 0; r < RR; r++) {                                                 \
                        __m256 xb = _mm256_broadcast_ss(xt + r * pixel_step + c);                  \
                        for (int v = 0; v < NV; v++)                                               \
                            acc[r][v] = _mm256_fmadd_ps(xb, k[v], acc[r][v]);                      \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        for (int r = 0; r < RR; r++)                                                               \
            for (int v = 0; v < NV; v++)                                                           \
                _mm256_storeu_ps(y + r * Cout + 8 * v, acc[r][v]);                                 \
    }
DEFINE_FORWARD_BLOCK(1, 3)
DEFINE_FORWARD_BLOCK(4, 1)
DEFINE_FORWARD_BLOCK(1, 1)

/* kpack: the kernel regrouped per output-channel block: for the block starting at o0 of width
 * 8*NV, taps (kh*kw*C) x 8*NV contiguous, so one block's kernel is one sequential stream. */
static void pack_kernel(float *kpack, const float *kernel, ptrdiff_t taps, ptrdiff_t Cout)
{
    float *dst = kpack;
    for (ptrdiff_t o0 = 0; o0 < Cout;) {
        ptrdiff_t width = Cout - o0 >= 24 ? 24 : 8;
        for (ptrdiff_t t = 0; t < taps; t++, dst += width)
            memcpy(dst, kernel + t * Cout + o0, (size_t)width * sizeof(float));
        o0 += width;
    }
}

int bnpy_conv2d_direct_f32(float *y, const float *xpad, const float *kernel, const float *bias,
                           ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t kh,
                           ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                           ptrdiff_t pad_bottom, ptrdiff_t pad_left, ptrdiff_t pad_right,
                           ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t Cout)
{
    const ptrdiff_t Hp = H + pad_top + pad_bottom, Wp = W + pad_left + pad_right;
    const ptrdiff_t taps = kh * kw * C;
    float *kpack = malloc((size_t)(taps * Cout) * sizeof(float));
    if (kpack == NULL)
        return -1;
    pack_kernel(kpack, kernel, taps, Cout);
    const int nt = bnpy_threads_for((double)N * out_h * out_w * Cout * taps);
    BNPY_OMP_FOR_DYNAMIC(nt)
    for (ptrdiff_t row = 0; row < N * out_h; row++) {
        const ptrdiff_t n = row / out_h, i = row % out_h;
        /* taps di whose input row i*sh + di is real: pad_top <= i*sh + di < pad_top + H */
        const ptrdiff_t di0 = pad_top - i * sh > 0 ? pad_top - i * sh : 0;
        const ptrdiff_t di1 = pad_top + H - i * sh < kh ? pad_top + H - i * sh : kh;
        const float *xrow = xpad + ((n * Hp + i * sh) * Wp) * C;
        float *yrow = y + row * out_w * Cout;
        const float *kp = kpack;
        for (ptrdiff_t o0 = 0; o0 < Cout;) {
            const int wide = Cout - o0 >= 24;
            const float *b = bias ? bias + o0 : NULL;
            for (ptrdiff_t j = 0; j < out_w;) {
                const int four = out_w - j >= 4;
                const ptrdiff_t last = j + (four ? 3 : 0);
                /* the union over the block's pixels of the taps dj reading a real column */
                const ptrdiff_t dj0 = pad_left - last * sw > 0 ? pad_left - last * sw : 0;
                const ptrdiff_t dj1 = pad_left + W - j * sw < kw ? pad_left + W - j * sw : kw;
                const float *xp = xrow + j * sw * C;
                float *yp = yrow + j * Cout + o0;
                if (four && wide)
                    forward_block_4x24(yp, Cout, xp, sw * C, kp, b, di0, di1, dj0, dj1, kw, Wp, C);
                else if (four)
                    forward_block_4_1(yp, Cout, xp, sw * C, kp, b, di0, di1, dj0, dj1, kw, Wp, C);
                else if (wide)
                    forward_block_1_3(yp, Cout, xp, sw * C, kp, b, di0, di1, dj0, dj1, kw, Wp, C);
                else
                    forward_block_1_1(yp, Cout, xp, sw * C, kp, b, di0, di1, dj0, dj1, kw, Wp, C);
                j += four ? 4 : 1;
            }
            kp += taps * (wide ? 24 : 8);
            o0 += wide ? 24 : 8;
        }
    }
    free(kpack);
    return 0;
}

/* The hot kernel-gradient block: 4 taps x 24 output channels in 12 named accumulators, loaded from
 * and stored back to the image's float accumulator acc (taps x Cout), over the output pixels
 * [j0, j1) of ONE output row, whose dy (out_w x Cout floats) stays in L1 across all tap blocks. */
static TARGET void dkernel_row_4x24(float *acc, ptrdiff_t Cout, const float *xrow,
                                    const ptrdiff_t *tap_offset, const float *dyrow, ptrdiff_t j0,
                                    ptrdiff_t j1, ptrdiff_t step)
{
    float *a0 = acc, *a1 = acc + Cout, *a2 = acc + 2 * Cout, *a3 = acc + 3 * Cout;
    __m256 s00 = _mm256_loadu_ps(a0), s01 = _mm256_loadu_ps(a0 + 8), s02 = _mm256_loadu_ps(a0 + 16);
    __m256 s10 = _mm256_loadu_ps(a1), s11 = _mm256_loadu_ps(a1 + 8), s12 = _mm256_loadu_ps(a1 + 16);
    __m256 s20 = _mm256_loadu_ps(a2), s21 = _mm256_loadu_ps(a2 + 8), s22 = _mm256_loadu_ps(a2 + 16);
    __m256 s30 = _mm256_loadu_ps(a3), s31 = _mm256_loadu_ps(a3 + 8), s32 = _mm256_loadu_ps(a3 + 16);
    const ptrdiff_t o0 = tap_offset[0], o1 = tap_offset[1], o2 = tap_offset[2], o3 = tap_offset[3];
    const float *xr = xrow + j0 * step, *g = dyrow + j0 * Cout;
    /* One line per output pixel, its three accumulators side by side: */
    /* clang-format off */
    for (ptrdiff_t j = j0; j < j1; j++, xr += step, g += Cout) {
        const __m256 d0 = _mm256_loadu_ps(g), d1 = _mm256_loadu_ps(g + 8), d2 = _mm256_loadu_ps(g + 16);
        __m256 v = _mm256_broadcast_ss(xr + o0);
        s00 = _mm256_fmadd_ps(v, d0, s00); s01 = _mm256_fmadd_ps(v, d1, s01); s02 = _mm256_fmadd_ps(v, d2, s02);
        v = _mm256_broadcast_ss(xr + o1);
        s10 = _mm256_fmadd_ps(v, d0, s10); s11 = _mm256_fmadd_ps(v, d1, s11); s12 = _mm256_fmadd_ps(v, d2, s12);
        v = _mm256_broadcast_ss(xr + o2);
        s20 = _mm256_fmadd_ps(v, d0, s20); s21 = _mm256_fmadd_ps(v, d1, s21); s22 = _mm256_fmadd_ps(v, d2, s22);
        v = _mm256_broadcast_ss(xr + o3);
        s30 = _mm256_fmadd_ps(v, d0, s30); s31 = _mm256_fmadd_ps(v, d1, s31); s32 = _mm256_fmadd_ps(v, d2, s32);
    }
    _mm256_storeu_ps(a0, s00); _mm256_storeu_ps(a0 + 8, s01); _mm256_storeu_ps(a0 + 16, s02);
    _mm256_storeu_ps(a1, s10); _mm256_storeu_ps(a1 + 8, s11); _mm256_storeu_ps(a1 + 16, s12);
    _mm256_storeu_ps(a2, s20); _mm256_storeu_ps(a2 + 8, s21); _mm256_storeu_ps(a2 + 16, s22);
    _mm256_storeu_ps(a3, s30); _mm256_storeu_ps(a3 + 8, s31); _mm256_storeu_ps(a3 + 16, s32);
    /* clang-format on */
}

/* The same for any TT taps x NV vectors (the tails). */
#define DEFINE_DKERNEL_ROW(TT, NV)                                                                 \
    static TARGET void dkernel_row_##TT##_##NV(float *acc, ptrdiff_t Cout, const float *xrow,      \
                                               const ptrdiff_t *tap_offset, const float *dyrow,    \
                                               ptrdiff_t j0, ptrdiff_t j1, ptrdiff_t step)         \
    {                                                                                              \
        for (int t = 0; t < TT; t++)                                                               \
            for (int v = 0; v < NV; v++) {                                                         \
                __m256 sum = _mm256_loadu_ps(acc + t * Cout + 8 * v);                              \
                const float *xr = xrow + j0 * step + tap_offset[t],                                \
                            *g = dyrow + j0 * Cout + 8 * v;                                        \
                for (ptrdiff_t j = j0; j < j1; j++, xr += step, g += Cout)                         \
                    sum = _mm256_fmadd_ps(_mm256_broadcast_ss(xr), _mm256_loadu_ps(g), sum);       \
                _mm256_storeu_ps(acc + t * Cout + 8 * v, sum);                                     \
            }                                                                                      \
    }
DEFINE_DKERNEL_ROW(4, 1)
DEFINE_DKERNEL_ROW(1, 3)
DEFINE_DKERNEL_ROW(1, 1)

int bnpy_conv2d_direct_dkernel_f32(float *dkernel, const float *xpad, const float *dy, ptrdiff_t N,
                                   ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t kh,
                                   ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                                   ptrdiff_t pad_bottom, ptrdiff_t pad_left, ptrdiff_t pad_right,
                                   ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t Cout)
{
    const ptrdiff_t Hp = H + pad_top + pad_bottom, Wp = W + pad_left + pad_right;
    const ptrdiff_t taps = kh * kw * C, tap_blocks = (taps + 3) / 4;
    /* Images are handed out dynamically (a thread slowed by other processes does not hold the
     * others up); each image's float sums go to its own slot of a group buffer, and the slots are
     * added in double in image order: the result is the same for every thread count and run. */
    const int nt = bnpy_threads_for((double)N * out_h * out_w * Cout * taps);
    const ptrdiff_t size = taps * Cout, group = N < 64 ? (N > 0 ? N : 1) : 64;
    double *total = calloc((size_t)size, sizeof(double));
    float *image_sums = malloc((size_t)(group * size) * sizeof(float));
    ptrdiff_t *tap_offset = malloc((size_t)taps * sizeof(ptrdiff_t));
    ptrdiff_t *ranges = malloc((size_t)(4 * tap_blocks) * sizeof(ptrdiff_t));
    if (total == NULL || image_sums == NULL || tap_offset == NULL || ranges == NULL) {
        free(total);
        free(image_sums);
        free(tap_offset);
        free(ranges);
        return -1;
    }
    for (ptrdiff_t t = 0; t < taps; t++) {
        const ptrdiff_t di = t / (kw * C), dj = (t / C) % kw, c = t % C;
        tap_offset[t] = (di * Wp + dj) * C + c;
    }
    /* per block of 4 taps: the union of the output rows [i0, i1) and columns [j0, j1) that read a
     * real cell for one of its taps (the others read xpad's zeros) */
    for (ptrdiff_t b = 0; b < tap_blocks; b++) {
        ptrdiff_t i0 = out_h, i1 = 0, j0 = out_w, j1 = 0, lo, hi;
        for (ptrdiff_t t = 4 * b; t < 4 * b + 4 && t < taps; t++) {
            real_outputs(t / (kw * C), sh, pad_top, H, out_h, &lo, &hi);
            if (lo < i0)
                i0 = lo;
            if (hi > i1)
                i1 = hi;
            real_outputs((t / C) % kw, sw, pad_left, W, out_w, &lo, &hi);
            if (lo < j0)
                j0 = lo;
            if (hi > j1)
                j1 = hi;
        }
        ranges[4 * b] = i0, ranges[4 * b + 1] = i1, ranges[4 * b + 2] = j0, ranges[4 * b + 3] = j1;
    }
    for (ptrdiff_t g0 = 0; g0 < N; g0 += group) {
        const ptrdiff_t count = N - g0 < group ? N - g0 : group;
        BNPY_OMP_FOR_DYNAMIC(nt)
        for (ptrdiff_t slot = 0; slot < count; slot++) {
            const ptrdiff_t n = g0 + slot;
            float *img = image_sums + slot * size;
            memset(img, 0, (size_t)size * sizeof(float));
            for (ptrdiff_t i = 0; i < out_h; i++) {
                const float *xrow = xpad + ((n * Hp + i * sh) * Wp) * C;
                const float *dyrow = dy + ((n * out_h + i) * out_w) * Cout;
                for (ptrdiff_t b = 0; b < tap_blocks; b++) {
                    const ptrdiff_t *r = ranges + 4 * b;
                    if (i < r[0] || i >= r[1] || r[2] >= r[3])
                        continue;
                    const ptrdiff_t t0 = 4 * b;
                    const int four = taps - t0 >= 4;
                    for (ptrdiff_t o0 = 0; o0 < Cout;) {
                        const int wide = Cout - o0 >= 24;
                        float *a = img + t0 * Cout + o0;
                        if (four && wide)
                            dkernel_row_4x24(a, Cout, xrow, tap_offset + t0, dyrow + o0, r[2], r[3],
                                             sw * C);
                        else if (four)
                            dkernel_row_4_1(a, Cout, xrow, tap_offset + t0, dyrow + o0, r[2], r[3],
                                            sw * C);
                        else
                            for (ptrdiff_t t = t0; t < taps; t++) { /* the last 1..3 taps */
                                if (wide)
                                    dkernel_row_1_3(img + t * Cout + o0, Cout, xrow, tap_offset + t,
                                                    dyrow + o0, r[2], r[3], sw * C);
                                else
                                    dkernel_row_1_1(img + t * Cout + o0, Cout, xrow, tap_offset + t,
                                                    dyrow + o0, r[2], r[3], sw * C);
                            }
                        o0 += wide ? 24 : 8;
                    }
                }
            }
        }
        /* the group's image sums into the double total, in image order, split over elements */
        const int nt_sum = bnpy_threads_for((double)count * size);
        BNPY_OMP_FOR(nt_sum)
        for (ptrdiff_t k = 0; k < size; k++) {
            double s = total[k];
            for (ptrdiff_t slot = 0; slot < count; slot++)
                s += image_sums[slot * size + k];
            total[k] = s;
        }
    }
    for (ptrdiff_t k = 0; k < size; k++)
        dkernel[k] = (float)total[k];
    free(total);
    free(image_sums);
    free(tap_offset);
    free(ranges);
    return 0;
}
#else /* no x86 GCC/Clang: the glue never calls the direct kernels (available() == 0) */
int bnpy_conv_direct_available(void)
{
    return 0;
}
int bnpy_conv2d_direct_f32(float *y, const float *xpad, const float *kernel, const float *bias,
                           ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t kh,
                           ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                           ptrdiff_t pad_bottom, ptrdiff_t pad_left, ptrdiff_t pad_right,
                           ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t Cout)
{
    return -2;
}
int bnpy_conv2d_direct_dkernel_f32(float *dkernel, const float *xpad, const float *dy, ptrdiff_t N,
                                   ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, ptrdiff_t kh,
                                   ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                                   ptrdiff_t pad_bottom, ptrdiff_t pad_left, ptrdiff_t pad_right,
                                   ptrdiff_t out_h, ptrdiff_t out_w, ptrdiff_t Cout)
{
    return -2;
}
#endif
