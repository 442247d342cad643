/* kernels.h: the pure-C contract of bnpy's core.
 *
 * Every kernel is a plain C function on plain pointers and sizes: no Python.h, no PyObject, no
 * allocation of Python objects, so the glue (csrc/py_*.c) can release the GIL around any call.
 * Argument order: outputs, then inputs, then sizes, then scalars. Gradients are named d<name>;
 * inputs are const. Each prototype's comment gives every argument's shape.
 *
 * Sections: threads; batch normalization (batchnorm.c); convolution and pooling (conv.c, pool.c);
 * image warps (affine.c). Each family appends its prototypes in its own section.
 */
#ifndef BNPY_KERNELS_H
#define BNPY_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- threads (threads.c) -------------------------------------------------------------------- */

/* Number of threads kernels use: set by bnpy_set_num_threads, initially OMP_NUM_THREADS or the
 * OpenMP default; always 1 in a serial build. */
int bnpy_get_num_threads(void);
/* n >= 1. Returns the previous value. */
int bnpy_set_num_threads(int n);
/* 1 when built with OpenMP. */
int bnpy_have_openmp(void);

/* ---- batch normalization (batchnorm.c) ------------------------------------------------------ */

/* ---- convolution and pooling (conv.c, pool.c) ----------------------------------------------- */

/* ---- image warps (affine.c) ----------------------------------------------------------------- */

/* How a warp samples outside the input image (scipy.ndimage's mode names, as Keras 2.0 passes
 * them): constant fills with cval; nearest repeats the edge pixel; reflect mirrors about the edge
 * of the image (d c b a | a b c d | d c b a); wrap is scipy's legacy periodic extension, whose
 * period is (size - 1) pixels, not size. */
enum bnpy_fill_mode {
    BNPY_FILL_CONSTANT = 0,
    BNPY_FILL_NEAREST = 1,
    BNPY_FILL_REFLECT = 2,
    BNPY_FILL_WRAP = 3,
};

/* Affine warp of a batch of images, one matrix per image; each output pixel at (row, col) samples
 * the input at the output->input map
 *     r = m[0]*row + m[1]*col + m[2],   c = m[3]*row + m[4]*col + m[5]
 * (scipy.ndimage.affine_transform's convention: matrix m[0..1, 0..1], offset m[0..1, 2]).
 *   out       (n, height, width, channels) if channels_last else (n, channels, height, width)
 *   images    same shape as out; must not overlap out
 *   matrices  (n, matrix_rows, 3) row-major, matrix_rows 2 or 3 (a 3rd homogeneous row is ignored)
 *   order     0: nearest, the pixel at floor(r + 0.5), floor(c + 0.5) (scipy's order=0; ties round
 *                up); 1: bilinear (scipy's order=1)
 *   fill_mode enum bnpy_fill_mode; cval is the constant-mode fill value
 * Coordinates are computed in double for both dtypes; bilinear blends in double.
 * Threads: OpenMP over (image, output row); results do not depend on the thread count. */
void bnpy_affine_warp_f32(float *out, const float *images, const double *matrices, ptrdiff_t n,
                          ptrdiff_t height, ptrdiff_t width, ptrdiff_t channels, ptrdiff_t matrix_rows,
                          int channels_last, int order, int fill_mode, double cval);
void bnpy_affine_warp_f64(double *out, const double *images, const double *matrices, ptrdiff_t n,
                          ptrdiff_t height, ptrdiff_t width, ptrdiff_t channels, ptrdiff_t matrix_rows,
                          int channels_last, int order, int fill_mode, double cval);

#endif /* BNPY_KERNELS_H */
