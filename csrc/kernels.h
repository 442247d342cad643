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

#endif /* BNPY_KERNELS_H */
