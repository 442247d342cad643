/* conv.c: the memory-bound halves of a 2-D convolution (the matrix products are BLAS's, via NumPy).
 *
 * A convolution y = x ⋆ K is computed as one matrix product over an "im2col" matrix:
 *     col[(n, i, j), (di, dj, c)] = x[n, i*sh + di*dh - pad_top, j*sw + dj*dw - pad_left, c]
 * (0 outside x; dh = dw = 1 but for a dilated kernel)
 *     y[(n, i, j), o] = Σ_(di,dj,c) col[(n,i,j), (di,dj,c)] · K[(di,dj,c), o] + b[o]
 * and its backward as  dK = colᵀ·dy,  db = Σ_rows dy,  dcol = dy·Kᵀ,  dx = col2im(dcol)  (the
 * adjoint of im2col: every column entry is added back to the input cell it was copied from).
 * Keras's kernel layout (kh, kw, Cin, Cout) is, read as a matrix, exactly (kh·kw·Cin, Cout) in
 * this column order, so no kernel transpose is ever needed.
 *
 * x is C-contiguous, either channels-last (N, H, W, C) or channels-first (N, C, H, W); the
 * channels-last path copies runs of kw·C contiguous values per kernel row (memcpy), the
 * channels-first path gathers element by element. Work is split over (image, output row) for
 * im2col and over images for col2im (each image is written by one thread: no races, no atomics).
 *
 * This file is compiled once and includes itself twice through twin.h, for float (_f32) and
 * double (_f64).
 */
#ifndef BNPY_TWIN_BODY

#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "parallel.h"

#define BNPY_TWIN_FILE "conv.c"
#include "twin.h"

#else /* ------------------------------------------------------------ the body, once per type */

void SUF(bnpy_im2col)(T *col, const T *x, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
                      int channels_first, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                      ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h, ptrdiff_t out_w,
                      ptrdiff_t dh, ptrdiff_t dw)
{
    const ptrdiff_t row_len = kh * kw * C; /* one output pixel's receptive field */
    const int nt = bnpy_threads_for((double)N * out_h * out_w * row_len);
    BNPY_OMP_FOR2(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        for (ptrdiff_t i = 0; i < out_h; i++) {
            const T *image = x + n * H * W * C;
            T *dst = col + ((n * out_h + i) * out_w) * row_len;
            for (ptrdiff_t j = 0; j < out_w; j++) {
                const ptrdiff_t w0 = j * sw - pad_left;
                for (ptrdiff_t di = 0; di < kh; di++) {
                    const ptrdiff_t h = i * sh + di * dh - pad_top;
                    if (h < 0 || h >= H) {
                        memset(dst, 0, (size_t)(kw * C) * sizeof(T));
                        dst += kw * C;
                        continue;
                    }
                    if (!channels_first) {
                        const T *src = image + (h * W) * C;
                        if (dw == 1 && w0 >= 0 && w0 + kw <= W) { /* the kernel row: one run of x */
                            memcpy(dst, src + w0 * C, (size_t)(kw * C) * sizeof(T));
                            dst += kw * C;
                        } else {
                            for (ptrdiff_t dj = 0; dj < kw; dj++, dst += C) {
                                const ptrdiff_t w = w0 + dj * dw;
                                if (w < 0 || w >= W)
                                    memset(dst, 0, (size_t)C * sizeof(T));
                                else
                                    memcpy(dst, src + w * C, (size_t)C * sizeof(T));
                            }
                        }
                    } else {
                        for (ptrdiff_t dj = 0; dj < kw; dj++, dst += C) {
                            const ptrdiff_t w = w0 + dj * dw;
                            if (w < 0 || w >= W) {
                                memset(dst, 0, (size_t)C * sizeof(T));
                                continue;
                            }
                            const T *src = image + h * W + w;
                            for (ptrdiff_t c = 0; c < C; c++)
                                dst[c] = src[c * H * W];
                        }
                    }
                }
            }
        }
    }
}

void SUF(bnpy_col2im)(T *dx, const T *dcol, ptrdiff_t N, ptrdiff_t H, ptrdiff_t W, ptrdiff_t C,
                      int channels_first, ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t sh, ptrdiff_t sw,
                      ptrdiff_t pad_top, ptrdiff_t pad_left, ptrdiff_t out_h, ptrdiff_t out_w,
                      ptrdiff_t dh, ptrdiff_t dw)
{
    const ptrdiff_t row_len = kh * kw * C;
    const int nt = bnpy_threads_for((double)N * out_h * out_w * row_len);
    BNPY_OMP_FOR(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        T *image = dx + n * H * W * C;
        memset(image, 0, (size_t)(H * W * C) * sizeof(T));
        const T *src = dcol + (n * out_h * out_w) * row_len;
        for (ptrdiff_t i = 0; i < out_h; i++) {
            for (ptrdiff_t j = 0; j < out_w; j++) {
                const ptrdiff_t w0 = j * sw - pad_left;
                for (ptrdiff_t di = 0; di < kh; di++) {
                    const ptrdiff_t h = i * sh + di * dh - pad_top;
                    if (h < 0 || h >= H) {
                        src += kw * C;
                        continue;
                    }
                    for (ptrdiff_t dj = 0; dj < kw; dj++, src += C) {
                        const ptrdiff_t w = w0 + dj * dw;
                        if (w < 0 || w >= W)
                            continue;
                        if (!channels_first) {
                            T *dst = image + (h * W + w) * C;
                            for (ptrdiff_t c = 0; c < C; c++)
                                dst[c] += src[c];
                        } else {
                            T *dst = image + h * W + w;
                            for (ptrdiff_t c = 0; c < C; c++)
                                dst[c * H * W] += src[c];
                        }
                    }
                }
            }
        }
    }
}

void SUF(bnpy_add_bias_rows)(T *y, const T *bias, ptrdiff_t rows, ptrdiff_t C)
{
    const int nt = bnpy_threads_for((double)rows * C);
    BNPY_OMP_FOR(nt)
    for (ptrdiff_t r = 0; r < rows; r++) {
        T *row = y + r * C;
        for (ptrdiff_t c = 0; c < C; c++)
            row[c] += bias[c];
    }
}

int SUF(bnpy_sum_rows)(T *dbias, const T *dy, ptrdiff_t rows, ptrdiff_t C)
{
    /* Row blocks whose number follows from the sizes alone (about 32K values each, at most 64),
     * each summed in double into its own partial, then the partials added in block order: the
     * same bits for any thread count. */
    enum { BLOCK_VALUES = 32768, MAX_BLOCKS = 64 };
    ptrdiff_t blocks = (ptrdiff_t)((double)rows * (double)C / BLOCK_VALUES);
    blocks = blocks > MAX_BLOCKS ? MAX_BLOCKS : blocks;
    blocks = blocks > rows ? rows : blocks;
    blocks = blocks < 1 ? 1 : blocks;
    double *partial = calloc((size_t)(blocks * C), sizeof(double));
    if (partial == NULL)
        return -1;
    const int nt = blocks > 1 ? bnpy_threads_for((double)rows * C) : 1;
    BNPY_OMP_FOR(nt)
    for (ptrdiff_t b = 0; b < blocks; b++) {
        double *acc = partial + b * C;
        const ptrdiff_t r0 = rows * b / blocks, r1 = rows * (b + 1) / blocks;
        for (ptrdiff_t r = r0; r < r1; r++) {
            const T *row = dy + r * C;
            for (ptrdiff_t c = 0; c < C; c++)
                acc[c] += row[c];
        }
    }
    for (ptrdiff_t c = 0; c < C; c++) {
        double s = 0.0;
        for (ptrdiff_t b = 0; b < blocks; b++)
            s += partial[b * C + c];
        dbias[c] = (T)s;
    }
    free(partial);
    return 0;
}

void SUF(bnpy_batch_transpose)(T *b, const T *a, const T *bias, ptrdiff_t N, ptrdiff_t A,
                               ptrdiff_t B)
{
    /* Tiles of 16x16 keep both the reads and the writes within a few cache lines. */
    enum { TILE = 16 };
    const ptrdiff_t tiles_a = (A + TILE - 1) / TILE;
    const int nt = bnpy_threads_for((double)N * A * B);
    BNPY_OMP_FOR2(nt)
    for (ptrdiff_t n = 0; n < N; n++) {
        for (ptrdiff_t ta = 0; ta < tiles_a; ta++) {
            const T *an = a + n * A * B;
            T *bn = b + n * A * B;
            const ptrdiff_t i0 = ta * TILE, i1 = i0 + TILE < A ? i0 + TILE : A;
            for (ptrdiff_t j0 = 0; j0 < B; j0 += TILE) {
                const ptrdiff_t j1 = j0 + TILE < B ? j0 + TILE : B;
                for (ptrdiff_t j = j0; j < j1; j++) {
                    const T add = bias ? bias[j] : (T)0;
                    for (ptrdiff_t i = i0; i < i1; i++)
                        bn[j * A + i] = an[i * B + j] + add;
                }
            }
        }
    }
}

#endif /* BNPY_TWIN_BODY */
