/* py_image.c: CPython/NumPy glue of the image kernels. */
#include "glue.h"

PyMethodDef bnpy_image_methods[] = {
    {NULL, NULL, 0, NULL},
};
