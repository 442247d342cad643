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
 * channels-first (N, C, H, W); argmax has y's shape. The forwards split the work over output rows
 * (n, i); the backwards over images (each image is written by one thread, so the scattered
 * additions never race).
 *
 * Compiled once, including itself twice through twin.h: float (_f32) and double (_f64).
 */
#ifndef BNPY_TWIN_BODY

#include <string.h>

#include "kernels.h"
#include "parallel.h"
#include "simd.h" /* BNPY_ALWAYS_INLINE */

/* The real rows [*lo, *hi) of window index i along one axis. */
static inline void window_range(ptrdiff_t i, ptrdiff_t stride, ptrdiff_t pad, ptrdiff_t size,
                                ptrdiff_t n, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t a = i * stride - pad, b = a + size;
    *lo = a < 0 ? 0 : a;
    *hi = b > n ? n : b;
}

/* The real cells [h0, h1) x [w0, w1) of one window. */
typedef struct {
    ptrdiff_t h0, h1, w0, w1;
} pool_window;

/* The sizes of one pooling call (see kernels.h). */
typedef struct {
    ptrdiff_t N, H, W, C;
    int channels_first;
    ptrdiff_t ph, pw, sh, sw, pad_top, pad_left, out_h, out_w;
} pool_geometry;

#define BNPY_TWIN_FILE "pool.c"
#include "twin.h"

#else /* ------------------------------------------------------------ the body, once per type */

/* ---- one window of the forward, per layout; y (and argmax) point at the window's output cell,
 * channel 0, the next channel 1 apart (channels-last) or `plane` apart (channels-first) ---- */

/* Channels-last max: the channel loop is innermost and contiguous. */
BNPY_ALWAYS_INLINE void SUF(max_window_last)(T *y, int32_t *argmax, const T *image, ptrdiff_t W,
                                             ptrdiff_t C, const pool_window *win)
{
    const T *first = image + (win->h0 * W + win->w0) * C;
    for (ptrdiff_t c = 0; c < C; c++) {
        y[c] = first[c];
        argmax[c] = (int32_t)(win->h0 * W + win->w0);
    }
    for (ptrdiff_t h = win->h0; h < win->h1; h++)
        for (ptrdiff_t w = (h == win->h0 ? win->w0 + 1 : win->w0); w < win->w1; w++) {
            const T *cell = image + (h * W + w) * C;
            const int32_t where = (int32_t)(h * W + w);
            /* Branch-free selects so the channel loop vectorizes. Strictly greater keeps the
             * first maximum; a NaN wins once (propagates). */
            for (ptrdiff_t c = 0; c < C; c++) {
                const T v = cell[c], best = y[c];
                const int take = (v > best) | ((v != v) & (best == best));
                y[c] = take ? v : best;
                argmax[c] = take ? where : argmax[c];
            }
        }
}

BNPY_ALWAYS_INLINE void SUF(max_window_first)(T *y, int32_t *argmax, const T *image, ptrdiff_t H,
                                              ptrdiff_t W, ptrdiff_t C, ptrdiff_t plane,
                                              const pool_window *win)
{
    for (ptrdiff_t c = 0; c < C; c++) {
        const T *cells = image + c * H * W;
        T best = cells[win->h0 * W + win->w0];
        int32_t where = (int32_t)(win->h0 * W + win->w0);
        for (ptrdiff_t h = win->h0; h < win->h1; h++)
            for (ptrdiff_t w = win->w0; w < win->w1; w++) {
                const T v = cells[h * W + w];
                if (v > best || (v != v && best == best)) {
                    best = v;
                    where = (int32_t)(h * W + w);
                }
            }
        y[c * plane] = best;
        argmax[c * plane] = where;
    }
}

/* 1 / (number of real cells of the window). */
BNPY_ALWAYS_INLINE T SUF(inv_count)(const pool_window *win)
{
    return (T)(1.0 / (double)((win->h1 - win->h0) * (win->w1 - win->w0)));
}

BNPY_ALWAYS_INLINE void SUF(avg_window_last)(T *y, const T *image, ptrdiff_t W, ptrdiff_t C,
                                             const pool_window *win)
{
    for (ptrdiff_t c = 0; c < C; c++)
        y[c] = 0;
    for (ptrdiff_t h = win->h0; h < win->h1; h++)
        for (ptrdiff_t w = win->w0; w < win->w1; w++) {
            const T *cell = image + (h * W + w) * C;
            for (ptrdiff_t c = 0; c < C; c++)
                y[c] += cell[c];
        }
    const T inv_count = SUF(inv_count)(win);
    for (ptrdiff_t c = 0; c < C; c++)
        y[c] *= inv_count;
}

BNPY_ALWAYS_INLINE void SUF(avg_window_first)(T *y, const T *image, ptrdiff_t H, ptrdiff_t W,
                                              ptrdiff_t C, ptrdiff_t plane, const pool_window *win)
{
    const T inv_count = SUF(inv_count)(win);
    for (ptrdiff_t c = 0; c < C; c++) {
        const T *cells = image + c * H * W;
        T s = 0;
        for (ptrdiff_t h = win->h0; h < win->h1; h++)
            for (ptrdiff_t w = win->w0; w < win->w1; w++)
                s += cells[h * W + w];
        y[c * plane] = s * inv_count;
    }
}

/* Output row r = n*out_h + i (image n, row i) of max pooling (is_max) or average pooling. Every
 * call passes is_max as a literal, inside its own OpenMP loop, so each inlined copy keeps one
 * kind: one outlined region shared by both kinds, with is_max a variable there, measured slower. */
BNPY_ALWAYS_INLINE void SUF(pool_row)(int is_max, T *y, int32_t *argmax, const T *x,
                                      const pool_geometry *g, ptrdiff_t r)
{
    const ptrdiff_t n = r / g->out_h, i = r % g->out_h, plane = g->out_h * g->out_w;
    const T *image = x + n * g->H * g->W * g->C;
    pool_window win;
    window_range(i, g->sh, g->pad_top, g->ph, g->H, &win.h0, &win.h1);
    for (ptrdiff_t j = 0; j < g->out_w; j++) {
        window_range(j, g->sw, g->pad_left, g->pw, g->W, &win.w0, &win.w1);
        /* the window's output cell, channel 0: (n, i, j, 0) or (n, 0, i, j) */
        const ptrdiff_t o =
            g->channels_first ? n * g->C * plane + i * g->out_w + j : (r * g->out_w + j) * g->C;
        if (is_max && !g->channels_first)
            SUF(max_window_last)(y + o, argmax + o, image, g->W, g->C, &win);
        else if (is_max)
            SUF(max_window_first)(y + o, argmax + o, image, g->H, g->W, g->C, plane, &win);
        else if (!g->channels_first)
            SUF(avg_window_last)(y + o, image, g->W, g->C, &win);
        else
            SUF(avg_window_first)(y + o, image, g->H, g->W, g->C, plane, &win);
    }
}

/* The forward of max pooling (argmax != NULL) or average pooling, over output rows. */
static void SUF(pool_forward)(T *y, int32_t *argmax, const T *x, const pool_geometry *g)
{
    const ptrdiff_t rows = g->N * g->out_h;
    const int nt = bnpy_threads_for((double)rows * g->out_w * g->C * g->ph * g->pw);
    if (argmax != NULL) {
        BNPY_OMP_FOR(nt)
        for (ptrdiff_t r = 0; r < rows; r++)
            SUF(pool_row)(1, y, argmax, x, g, r);
    } else {
        BNPY_OMP_FOR(nt)
        for (ptrdiff_t r = 0; r < rows; r++)
            SUF(pool_row)(0, y, NULL, x, g, r);
    }
}

void SUF(bnpy_max_pool2d)(T *y, int32_t *argmax, const T *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                          ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t sh,
                          ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                          ptrdiff_t out_w)
{
    const pool_geometry g = {N,  H,  W,       C,        channels_first, ph,   pw,
                             sh, sw, pad_top, pad_left, out_h,          out_w};
    SUF(pool_forward)(y, argmax, x, &g);
}

void SUF(bnpy_avg_pool2d)(T *y, const T *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
                          int channels_first, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t sh,
                          ptrdiff_t sw, ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h,
                          ptrdiff_t out_w)
{
    const pool_geometry g = {N,  H,  W,       C,        channels_first, ph,   pw,
                             sh, sw, pad_top, pad_left, out_h,          out_w};
    SUF(pool_forward)(y, NULL, x, &g);
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

/* ---- one window of average pooling's backward: dy (the window's output cell, channel 0; the
 * channels as in the forward) / count added to each real cell ---- */

BNPY_ALWAYS_INLINE void SUF(avg_scatter_last)(T *image, const T *dy, ptrdiff_t W, ptrdiff_t C,
                                              const pool_window *win)
{
    const T inv_count = SUF(inv_count)(win);
    for (ptrdiff_t h = win->h0; h < win->h1; h++)
        for (ptrdiff_t w = win->w0; w < win->w1; w++) {
            T *cell = image + (h * W + w) * C;
            for (ptrdiff_t c = 0; c < C; c++)
                cell[c] += dy[c] * inv_count;
        }
}

BNPY_ALWAYS_INLINE void SUF(avg_scatter_first)(T *image, const T *dy, ptrdiff_t H, ptrdiff_t W,
                                               ptrdiff_t C, ptrdiff_t plane, const pool_window *win)
{
    const T inv_count = SUF(inv_count)(win);
    for (ptrdiff_t c = 0; c < C; c++) {
        const T g = dy[c * plane] * inv_count;
        T *cells = image + c * H * W;
        for (ptrdiff_t h = win->h0; h < win->h1; h++)
            for (ptrdiff_t w = win->w0; w < win->w1; w++)
                cells[h * W + w] += g;
    }
}

void SUF(bnpy_avg_pool2d_backward)(T *dx, const T *dy, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W,
                                   ptrdiff_t C, int channels_first, ptrdiff_t ph, ptrdiff_t pw,
                                   ptrdiff_t sh, ptrdiff_t sw, ptrdiff_t pad_top,
                                   ptrdiff_t pad_left, ptrdiff_t out_h, ptrdiff_t out_w)
{
    const ptrdiff_t plane = out_h * out_w;
    const int nt = bnpy_threads_for((double)N * (H * W + plane * ph * pw) * C);
    BNPY_OMP_FOR(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        T *image = dx + n * H * W * C;
        memset(image, 0, (size_t)(H * W * C) * sizeof(T));
        for (ptrdiff_t p = 0; p < plane; p++) { /* window p = i*out_w + j, in the forward's order */
            pool_window win;
            window_range(p / out_w, sh, pad_top, ph, H, &win.h0, &win.h1);
            window_range(p % out_w, sw, pad_left, pw, W, &win.w0, &win.w1);
            if (!channels_first)
                SUF(avg_scatter_last)(image, dy + (n * plane + p) * C, W, C, &win);
            else
                SUF(avg_scatter_first)(image, dy + n * C * plane + p, H, W, C, plane, &win);
        }
    }
}

#endif /* BNPY_TWIN_BODY */
