/* pool.c: 2-D max and average pooling, forward and backward.
 *
 * Window (i, j) of an output covers input rows i*sh - pad_top .. + ph - 1 and columns
 * j*sw - pad_left .. + pw - 1; only cells inside x take part (TensorFlow's 'same' rule):
 *     max:  y = max over the real cells; argmax = h*W + w of the FIRST maximum in row-major
 *           window order (a NaN counts as the maximum, so it propagates); backward adds dy to
 *           that one cell.
 *     avg:  y = (Σ real cells) / (number of real cells); backward adds dy / count to each.
 * The glue guarantees pad_top, pad_bottom < ph and pad_left, pad_right < pw, so every window holds
 * at least one real cell. x and y are C-contiguous, both channels-last (N, H, W, C) or both
 * channels-first (N, C, H, W); argmax has y's shape. Work is split over images (backward: each
 * image is written by one thread, so the scattered additions never race).
 *
 * Compiled once, including itself twice through twin.h: float (_f32) and double (_f64).
 */
#ifndef BNPY_TWIN_BODY

#include <string.h>

#include "kernels.h"
#include "parallel.h"

/* The real rows [*lo, *hi) of window index i along one axis. */
static inline void window_range(ptrdiff_t i, ptrdiff_t stride, ptrdiff_t pad, ptrdiff_t size,
                                ptrdiff_t n, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = i * stride - pad, b = a + size;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

#define BNPY_TWIN_FILE "pool.c"
#include "twin.h"

#else /* ------------------------------------------------------------ the body, once per type */

void SUF(bnpy_max_pool2d)(T *y, int32_t *argmax, const T *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                          ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t sh,
                          ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                          ptrdiff_t out_w)
{
    const int nt = bnpy_threads_for((double)N * out_h * out_w * C * ph * pw);
    BNPY_OMP_FOR2(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        for (ptrdiff_t i = 0; i < out_h; i++) {
            const T *image = x + n * H * W * C;
            ptrdiff_t h0, h1, w0, w1;
            window_range(i, sh, pad_top, ph, H, &h0, &h1);
            for (ptrdiff_t j = 0; j < out_w; j++) {
                window_range(j, sw, pad_left, pw, W, &w0, &w1);
                if (!channels_first) {
                    /* channels-last: the channel loop is innermost and contiguous. */
                    T *yrow = y + ((n * out_h + i) * out_w + j) * C;
                    int32_t *arow = argmax + ((n * out_h + i) * out_w + j) * C;
                    const T *first = image + (h0 * W + w0) * C;
                    for (ptrdiff_t c = 0; c < C; c++) {
                        yrow[c] = first[c];
                        arow[c] = (int32_t)(h0 * W + w0);
                    }
                    for (ptrdiff_t h = h0; h < h1; h++)
                        for (ptrdiff_t w = (h == h0 ? w0 + 1 : w0); w < w1; w++) {
                            const T *cell = image + (h * W + w) * C;
                            const int32_t where = (int32_t)(h * W + w);
                            /* Branch-free selects so the channel loop vectorizes. Strictly
                             * greater keeps the first maximum; a NaN wins once (propagates). */
                            for (ptrdiff_t c = 0; c < C; c++) {
                                const T v = cell[c], best = yrow[c];
                                const int take = (v > best) | ((v != v) & (best == best));
                                yrow[c] = take ? v : best;
                                arow[c] = take ? where : arow[c];
                            }
                        }
                } else {
                    for (ptrdiff_t c = 0; c < C; c++) {
                        const T *plane = image + c * H * W;
                        const ptrdiff_t o = ((n * C + c) * out_h + i) * out_w + j;
                        T best = plane[h0 * W + w0];
                        int32_t where = (int32_t)(h0 * W + w0);
                        for (ptrdiff_t h = h0; h < h1; h++)
                            for (ptrdiff_t w = w0; w < w1; w++) {
                                const T v = plane[h * W + w];
                                if (v > best || (v != v && best == best)) {
                                    best = v;
                                    where = (int32_t)(h * W + w);
                                }
                            }
                        y[o] = best;
                        argmax[o] = where;
                    }
                }
            }
        }
    }
}

void SUF(bnpy_max_pool2d_backward)(T *dx, const T *dy, const int32_t *argmax, ptrdiff_t N,
                                   ptrdiff_t H, ptrdiff_t W, ptrdiff_t C, int channels_first,
                                   ptrdiff_t out_h, ptrdiff_t out_w)
{
    const ptrdiff_t P = out_h * out_w;
    const int nt = bnpy_threads_for((double)N * H * W * C);
    BNPY_OMP_FOR(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        T *image = dx + n * H * W * C;
        memset(image, 0, (size_t)(H * W * C) * sizeof(T));
        const T *g = dy + n * P * C;
        const int32_t *a = argmax + n * P * C;
        if (!channels_first) {
            for (ptrdiff_t p = 0; p < P; p++)
                for (ptrdiff_t c = 0; c < C; c++)
                    image[(ptrdiff_t)a[p * C + c] * C + c] += g[p * C + c];
        } else {
            for (ptrdiff_t c = 0; c < C; c++)
                for (ptrdiff_t p = 0; p < P; p++)
                    image[c * H * W + a[c * P + p]] += g[c * P + p];
        }
    }
}

void SUF(bnpy_avg_pool2d)(T *y, const T *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
                          int channels_first, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t sh,
                          ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                          ptrdiff_t out_w)
{
    const int nt = bnpy_threads_for((double)N * out_h * out_w * C * ph * pw);
    BNPY_OMP_FOR2(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        for (ptrdiff_t i = 0; i < out_h; i++) {
            const T *image = x + n * H * W * C;
            ptrdiff_t h0, h1, w0, w1;
            window_range(i, sh, pad_top, ph, H, &h0, &h1);
            for (ptrdiff_t j = 0; j < out_w; j++) {
                window_range(j, sw, pad_left, pw, W, &w0, &w1);
                const T inv_count = (T)(1.0 / (double)((h1 - h0) * (w1 - w0)));
                if (!channels_first) {
                    T *yrow = y + ((n * out_h + i) * out_w + j) * C;
                    for (ptrdiff_t c = 0; c < C; c++)
                        yrow[c] = 0;
                    for (ptrdiff_t h = h0; h < h1; h++)
                        for (ptrdiff_t w = w0; w < w1; w++) {
                            const T *cell = image + (h * W + w) * C;
                            for (ptrdiff_t c = 0; c < C; c++)
                                yrow[c] += cell[c];
                        }
                    for (ptrdiff_t c = 0; c < C; c++)
                        yrow[c] *= inv_count;
                } else {
                    for (ptrdiff_t c = 0; c < C; c++) {
                        const T *plane = image + c * H * W;
                        T s = 0;
                        for (ptrdiff_t h = h0; h < h1; h++)
                            for (ptrdiff_t w = w0; w < w1; w++)
                                s += plane[h * W + w];
                        y[((n * C + c) * out_h + i) * out_w + j] = s * inv_count;
                    }
                }
            }
        }
    }
}

void SUF(bnpy_avg_pool2d_backward)(T *dx, const T *dy, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                                   ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw,
                                   ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                                   ptrdiff_t pad_left, ptrdiff_t out_h, ptrdiff_t out_w)
{
    const int nt = bnpy_threads_for((double)N * (H * W + out_h * out_w * ph * pw) * C);
    BNPY_OMP_FOR(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        T *image = dx + n * H * W * C;
        memset(image, 0, (size_t)(H * W * C) * sizeof(T));
        for (ptrdiff_t i = 0; i < out_h; i++) {
            ptrdiff_t h0, h1, w0, w1;
            window_range(i, sh, pad_top, ph, H, &h0, &h1);
            for (ptrdiff_t j = 0; j < out_w; j++) {
                window_range(j, sw, pad_left, pw, W, &w0, &w1);
                const T inv_count = (T)(1.0 / (double)((h1 - h0) * (w1 - w0)));
                if (!channels_first) {
                    const T *g = dy + ((n * out_h + i) * out_w + j) * C;
                    for (ptrdiff_t h = h0; h < h1; h++)
                        for (ptrdiff_t w = w0; w < w1; w++) {
                            T *cell = image + (h * W + w) * C;
                            for (ptrdiff_t c = 0; c < C; c++)
                                cell[c] += g[c] * inv_count;
                        }
                } else {
                    for (ptrdiff_t c = 0; c < C; c++) {
                        const T g = dy[((n * C + c) * out_h + i) * out_w + j] * inv_count;
                        T *plane = image + c * H * W;
                        for (ptrdiff_t h = h0; h < h1; h++)
                            for (ptrdiff_t w = w0; w < w1; w++)
                                plane[h * W + w] += g;
                    }
                }
            }
        }
    }
}

#endif /* BNPY_TWIN_BODY */
