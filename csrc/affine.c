/* affine.c: affine warps of image batches (ImageDataGenerator's rotation/shift/shear/zoom).
 *
 * Semantics are scipy.ndimage.affine_transform's for order 0 and 1, which is what Keras 2.0 calls
 * once per channel: the output pixel at (row, col) samples the input at
 *     r = m00*row + m01*col + m02,   c = m10*row + m11*col + m12.
 * Each axis is first mapped into the input by the fill mode (map_coordinate, the same formulas
 * as scipy's map_coordinate), then rounded (order 0: floor(x + 0.5)) or split into two
 * neighbours and a weight (order 1); a neighbour index that lands one past an edge is mapped by
 * map_index. In constant mode a coordinate outside [0, size - 1] on either axis gives cval (scipy
 * treats the pixel centres 0 and size - 1, not the pixel edges, as the image's extent).
 *
 * A coordinate pair inside the image (and, for bilinear, with both neighbours inside) takes a fast
 * path without the boundary logic; it computes the same index and weights as the general path.
 *
 * One output pixel is computed from its coordinates alone, so the loops over (image, row) are
 * split among threads freely and results never depend on the thread count.
 */
#include <math.h>

#include "kernels.h"
#include "simd.h"

/* Map one continuous coordinate x on an axis of `len` pixels into the range the fill mode reads:
 * the result lies in [-1, len] (constant and nearest: x itself or the clamped edge). These are
 * scipy's formulas; trunc() stands in for its integer casts so far-away coordinates cannot
 * overflow an integer. */
static inline double map_coordinate(double x, ptrdiff_t len, int fill_mode)
{
    const double last = (double)(len - 1);
    if (x < 0) {
        switch (fill_mode) {
        case BNPY_FILL_NEAREST:
            return 0.0;
        case BNPY_FILL_REFLECT: { /* half-sample symmetric, period 2*len: x -> -x - 1 */
            if (len <= 1)
                return 0.0;
            const double period = 2.0 * (double)len;
            if (x < -period)
                x = period * trunc(-x / period) + x;
            return x < -(double)len ? x + period : -x - 1.0;
        }
        case BNPY_FILL_WRAP: { /* scipy's legacy wrap: period len - 1 */
            if (len <= 1)
                return 0.0;
            return x + last * (trunc(-x / last) + 1.0);
        }
        default:
            return x;
        }
    }
    if (x > last) {
        switch (fill_mode) {
        case BNPY_FILL_NEAREST:
            return last;
        case BNPY_FILL_REFLECT: {
            if (len <= 1)
                return 0.0;
            const double period = 2.0 * (double)len;
            x -= period * trunc(x / period);
            return x >= (double)len ? period - x - 1.0 : x;
        }
        case BNPY_FILL_WRAP:
            if (len <= 1)
                return 0.0;
            return x - last * trunc(x / last);
        default:
            return x;
        }
    }
    return x;
}

/* A pixel index one step outside [0, len) (a rounded or neighbouring coordinate) mapped into it. */
static inline ptrdiff_t map_index(ptrdiff_t i, ptrdiff_t len, int fill_mode)
{
    if (i >= 0 && i < len)
        return i;
    if (fill_mode == BNPY_FILL_REFLECT) {
        const ptrdiff_t period = 2 * len;
        i %= period;
        if (i < 0)
            i += period;
        return i >= len ? period - 1 - i : i;
    }
    if (fill_mode == BNPY_FILL_WRAP) {
        i %= len;
        return i < 0 ? i + len : i;
    }
    return i < 0 ? 0 : len - 1; /* nearest; constant (only the zero-weight neighbour gets here) */
}

/* The sampling position of one axis: 0 if it is outside the image in constant mode, else 1 with
 * the mapped coordinate in *mapped (within [-1, len] even for absurd coordinates). */
static inline int axis_position(double x, ptrdiff_t len, int fill_mode, double *mapped)
{
    if (fill_mode == BNPY_FILL_CONSTANT) {
        if (!(x >= 0.0 && x <= (double)(len - 1))) /* also NaN */
            return 0;
        *mapped = x;
        return 1;
    }
    x = map_coordinate(x, len, fill_mode);
    if (!(x >= -1.0 && x <= (double)len)) /* unreachable for sane inputs: guards the casts below */
        x = x > 0 ? (double)len : -1.0;
    *mapped = x;
    return 1;
}

/* floor(y) as an index, exact, for |y| < 2^62 (libm's floor is a call without SSE4.1). */
static inline ptrdiff_t floor_index(double y)
{
    const ptrdiff_t i = (ptrdiff_t)y; /* truncates toward zero */
    return i - ((double)i > y);
}

/* Order 0: the source pixel index along one axis. */
static inline ptrdiff_t nearest_index(double mapped, ptrdiff_t len, int fill_mode)
{
    return map_index(floor_index(mapped + 0.5), len, fill_mode);
}

/* Order 1: the two neighbours along one axis and the weight of the second, x = i0 + t. */
static inline void linear_neighbours(double mapped, ptrdiff_t len, int fill_mode, ptrdiff_t *i0,
                                     ptrdiff_t *i1, double *t)
{
    const ptrdiff_t i = floor_index(mapped);
    *t = mapped - (double)i;
    *i0 = map_index(i, len, fill_mode);
    *i1 = map_index(i + 1, len, fill_mode);
}

/* Below this many output values a thread team costs more than it saves: a CIFAR-sized batch of
 * 32 images (98k values) stays on one thread, where a late-scheduled worker on a busy machine
 * cannot stall it by a scheduler slice. Higher than parallel.h's threshold because a warped
 * value costs several loads and a few multiplications, not one. */
#define PARALLEL_MIN_VALUES ((ptrdiff_t)1 << 18)

/* One body for both dtypes. A pixel (row, col) of an image starts at
 * base + row*row_stride + col*col_stride and its channels are channel_stride apart. warp_row is
 * always inlined with constant order and fill_mode, so each of the 8 cases is its own loop. */
#define DEFINE_AFFINE_WARP(SUFFIX, T)                                                              \
    BNPY_ALWAYS_INLINE void warp_row_##SUFFIX(                                                     \
        T *dst, const T *src, const double *m, ptrdiff_t row, ptrdiff_t height, ptrdiff_t width,   \
        ptrdiff_t channels, ptrdiff_t channel_stride, ptrdiff_t row_stride, ptrdiff_t col_stride,  \
        T fill, const int order, const int fill_mode)                                              \
    {                                                                                              \
        const double last_row = (double)(height - 1), last_col = (double)(width - 1);              \
        for (ptrdiff_t col = 0; col < width; col++, dst += col_stride) {                           \
            const double r = m[0] * (double)row + m[1] * (double)col + m[2];                       \
            const double c = m[3] * (double)row + m[4] * (double)col + m[5];                       \
            if (order == 0 && r >= 0.0 && r <= last_row && c >= 0.0 && c <= last_col) {            \
                /* inside the image every fill mode agrees: floor(x + 0.5) of a positive x is a */ \
                /* truncation. The common case, without the boundary logic. */                     \
                const T *p =                                                                       \
                    src + (ptrdiff_t)(r + 0.5) * row_stride + (ptrdiff_t)(c + 0.5) * col_stride;   \
                for (ptrdiff_t ch = 0; ch < channels; ch++)                                        \
                    dst[ch * channel_stride] = p[ch * channel_stride];                             \
                continue;                                                                          \
            }                                                                                      \
            if (order == 1 && r >= 0.0 && r < last_row && c >= 0.0 && c < last_col) {              \
                /* both neighbours inside on both axes: no boundary logic either */                \
                const ptrdiff_t r0 = (ptrdiff_t)r, c0 = (ptrdiff_t)c;                              \
                const double tr = r - (double)r0, tc = c - (double)c0;                             \
                const T *p00 = src + r0 * row_stride + c0 * col_stride;                            \
                for (ptrdiff_t ch = 0; ch < channels; ch++) {                                      \
                    const ptrdiff_t k = ch * channel_stride;                                       \
                    const double top =                                                             \
                        (1.0 - tc) * (double)p00[k] + tc * (double)p00[k + col_stride];            \
                    const double bottom = (1.0 - tc) * (double)p00[k + row_stride] +               \
                                          tc * (double)p00[k + row_stride + col_stride];           \
                    dst[k] = (T)((1.0 - tr) * top + tr * bottom);                                  \
                }                                                                                  \
                continue;                                                                          \
            }                                                                                      \
            double rm, cm;                                                                         \
            if (!axis_position(r, height, fill_mode, &rm) ||                                       \
                !axis_position(c, width, fill_mode, &cm)) {                                        \
                for (ptrdiff_t ch = 0; ch < channels; ch++)                                        \
                    dst[ch * channel_stride] = fill;                                               \
                continue;                                                                          \
            }                                                                                      \
            if (order == 0) {                                                                      \
                const T *p = src + nearest_index(rm, height, fill_mode) * row_stride +             \
                             nearest_index(cm, width, fill_mode) * col_stride;                     \
                for (ptrdiff_t ch = 0; ch < channels; ch++)                                        \
                    dst[ch * channel_stride] = p[ch * channel_stride];                             \
            } else {                                                                               \
                ptrdiff_t r0, r1, c0, c1;                                                          \
                double tr, tc;                                                                     \
                linear_neighbours(rm, height, fill_mode, &r0, &r1, &tr);                           \
                linear_neighbours(cm, width, fill_mode, &c0, &c1, &tc);                            \
                const T *p00 = src + r0 * row_stride + c0 * col_stride;                            \
                const T *p01 = src + r0 * row_stride + c1 * col_stride;                            \
                const T *p10 = src + r1 * row_stride + c0 * col_stride;                            \
                const T *p11 = src + r1 * row_stride + c1 * col_stride;                            \
                for (ptrdiff_t ch = 0; ch < channels; ch++) {                                      \
                    const ptrdiff_t k = ch * channel_stride;                                       \
                    /* tests/reference_image.py blends in this same order */                       \
                    const double top = (1.0 - tc) * (double)p00[k] + tc * (double)p01[k];          \
                    const double bottom = (1.0 - tc) * (double)p10[k] + tc * (double)p11[k];       \
                    dst[k] = (T)((1.0 - tr) * top + tr * bottom);                                  \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    void bnpy_affine_warp_##SUFFIX(T *out, const T *images, const double *matrices, ptrdiff_t n,   \
                                   ptrdiff_t height, ptrdiff_t width, ptrdiff_t channels,          \
                                   ptrdiff_t matrix_rows, int channels_first, int order,           \
                                   int fill_mode, double cval)                                     \
    {                                                                                              \
        const ptrdiff_t image_size = height * width * channels;                                    \
        const ptrdiff_t channel_stride = channels_first ? height * width : 1;                      \
        const ptrdiff_t col_stride = channels_first ? 1 : channels;                                \
        const ptrdiff_t row_stride = width * col_stride;                                           \
        const T fill = (T)cval;                                                                    \
        const ptrdiff_t total_rows = n * height;                                                   \
        const int parallel =                                                                       \
            total_rows * width * (channels > 0 ? channels : 1) >= PARALLEL_MIN_VALUES;             \
        (void)parallel; /* unused in a serial build */                                             \
        BNPY_OMP_FOR_ROWS                                                                          \
        for (ptrdiff_t image_row = 0; image_row < total_rows; image_row++) {                       \
            const ptrdiff_t img = image_row / height, row = image_row % height;                    \
            const double *m = matrices + img * matrix_rows * 3;                                    \
            const T *src = images + img * image_size;                                              \
            T *dst = out + img * image_size + row * row_stride;                                    \
            switch (order * 4 + fill_mode) {                                                       \
                WARP_CASE(SUFFIX, 0, BNPY_FILL_CONSTANT)                                           \
                WARP_CASE(SUFFIX, 0, BNPY_FILL_NEAREST)                                            \
                WARP_CASE(SUFFIX, 0, BNPY_FILL_REFLECT)                                            \
                WARP_CASE(SUFFIX, 0, BNPY_FILL_WRAP)                                               \
                WARP_CASE(SUFFIX, 1, BNPY_FILL_CONSTANT)                                           \
                WARP_CASE(SUFFIX, 1, BNPY_FILL_NEAREST)                                            \
                WARP_CASE(SUFFIX, 1, BNPY_FILL_REFLECT)                                            \
                WARP_CASE(SUFFIX, 1, BNPY_FILL_WRAP)                                               \
            default:                                                                               \
                break; /* the glue validates order and fill_mode */                                \
            }                                                                                      \
        }                                                                                          \
    }

#define WARP_CASE(SUFFIX, ORDER, MODE)                                                             \
    case ORDER * 4 + MODE:                                                                         \
        warp_row_##SUFFIX(dst, src, m, row, height, width, channels, channel_stride, row_stride,   \
                          col_stride, fill, ORDER, MODE);                                          \
        break;

#ifdef BNPY_OPENMP
#define BNPY_PRAGMA(x) _Pragma(#x)
#define BNPY_OMP_FOR_ROWS                                                                          \
    BNPY_PRAGMA(omp parallel for if (parallel) num_threads(bnpy_get_num_threads()) schedule(static))
#else
#define BNPY_OMP_FOR_ROWS
#endif

DEFINE_AFFINE_WARP(f32, float)
DEFINE_AFFINE_WARP(f64, double)
