/* py_image.c: CPython/NumPy glue of the image kernels (affine.c). */
#include "glue.h" /* first: Python.h must precede the system headers */

#include <math.h>
#include <string.h>

/* The one function of this file, for error messages. */
static const char func[] = "affine_warp";

/* The index of str obj in names[0..n), or -1 with TypeError/ValueError "arg must be one of ...". */
static int parse_choice(PyObject *obj, const char *arg, const char *const *names, int n)
{
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be a str, got %.200s", func, arg,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char *name = PyUnicode_AsUTF8(obj);
    if (name == NULL)
        return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    PyObject *choices = PyList_New(n);
    for (int i = 0; choices != NULL && i < n; i++) {
        PyObject *v = PyUnicode_FromString(names[i]);
        if (v == NULL)
            Py_CLEAR(choices);
        else
            PyList_SET_ITEM(choices, i, v);
    }
    if (choices != NULL)
        PyErr_Format(PyExc_ValueError, "%s: %s must be one of %R, got %R", func, arg, choices, obj);
    Py_XDECREF(choices);
    return -1;
}

/* The matrices as a C-contiguous float64 array of shape (n, 2 or 3, 3) with finite entries. Any
 * real numeric dtype is accepted (a matrix is small; converting it costs nothing). */
static PyArrayObject *matrices_array(PyObject *obj, npy_intp n)
{
    PyArrayObject *probe = (PyArrayObject *)PyArray_FROM_O(obj);
    if (probe == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: matrices must be a real array, got %.200s", func,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    const char kind = PyArray_DESCR(probe)->kind;
    if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
        PyObject *dtype = PyObject_Str((PyObject *)PyArray_DESCR(probe));
        if (dtype != NULL)
            PyErr_Format(PyExc_TypeError,
                         "%s: matrices must be a real (float or int) array, got dtype %U", func,
                         dtype);
        Py_XDECREF(dtype);
        Py_DECREF(probe);
        return NULL;
    }
    PyArrayObject *m = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)probe, NPY_DOUBLE,
                                                         NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(probe);
    if (m == NULL)
        return NULL;
    if (PyArray_NDIM(m) != 3 || PyArray_DIM(m, 0) != n ||
        (PyArray_DIM(m, 1) != 2 && PyArray_DIM(m, 1) != 3) || PyArray_DIM(m, 2) != 3) {
        PyObject *shape = PyArray_NDIM(m) == 0
                              ? PyTuple_New(0)
                              : PyArray_IntTupleFromIntp(PyArray_NDIM(m), PyArray_DIMS(m));
        if (shape != NULL)
            PyErr_Format(
                PyExc_ValueError,
                "%s: matrices must have shape (%zd, 2, 3) or (%zd, 3, 3) (one output->input "
                "matrix per image), got shape %R",
                func, (Py_ssize_t)n, (Py_ssize_t)n, shape);
        Py_XDECREF(shape);
        Py_DECREF(m);
        return NULL;
    }
    const double *v = (const double *)PyArray_DATA(m);
    for (npy_intp i = 0; i < PyArray_SIZE(m); i++)
        if (!isfinite(v[i])) {
            PyErr_Format(PyExc_ValueError,
                         "%s: matrices must be finite, got a non-finite entry in matrix %zd", func,
                         (Py_ssize_t)(i / (PyArray_DIM(m, 1) * 3)));
            Py_DECREF(m);
            return NULL;
        }
    return m;
}

PyDoc_STRVAR(affine_warp_doc,
             "affine_warp(images, matrices, order, fill_mode, cval, channels_first, out, /)\n"
             "--\n\n"
             "Warp a batch of float32/float64 images (N, H, W, C) or (N, C, H, W), one "
             "output->input matrix\n"
             "(N, 2|3, 3) per image: output pixel (row, col) samples the input at M[:2, :2] @ "
             "(row, col) + M[:2, 2],\n"
             "as scipy.ndimage.affine_transform. order 0: nearest; 1: bilinear. Returns out.\n"
             "Use bnpy.ops.affine_warp.");

/* affine_warp(images, matrices, order, fill_mode, cval, channels_first, out) */
static PyObject *affine_warp(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* the order of enum bnpy_fill_mode */
    static const char *const fill_modes[] = {"constant", "nearest", "reflect", "wrap"};
    PyArrayObject *images = NULL, *matrices = NULL, *out = NULL;
    PyObject *result = NULL;
    Py_ssize_t order;
    int fill_mode, channels_first;
    if (bnpy_check_nargs(nargs, 7, 7, func) < 0)
        return NULL;
    PyObject *images_obj = args[0], *matrices_obj = args[1], *cval_obj = args[4],
             *out_obj = args[6];
    if (bnpy_parse_ssize(args[2], func, "order", &order) < 0)
        goto fail;
    if (order != 0 && order != 1) {
        PyErr_Format(PyExc_ValueError, "%s: order must be 0 (nearest) or 1 (bilinear), got %zd",
                     func, order);
        goto fail;
    }
    if ((fill_mode = parse_choice(args[3], "fill_mode", fill_modes, 4)) < 0 ||
        bnpy_parse_flag(args[5], func, "channels_first", &channels_first) < 0)
        goto fail;
    if (!PyFloat_Check(cval_obj) && !PyLong_Check(cval_obj) &&
        !PyArray_IsScalar(cval_obj, Number)) {
        PyErr_Format(PyExc_TypeError, "%s: cval must be a real number, got %.200s", func,
                     Py_TYPE(cval_obj)->tp_name);
        goto fail;
    }
    double cval = PyFloat_AsDouble(cval_obj);
    if (cval == -1.0 && PyErr_Occurred())
        goto fail;

    images = bnpy_input_array(images_obj, -1, func, "images");
    if (images == NULL)
        goto fail;
    if (PyArray_NDIM(images) != 4) {
        PyErr_Format(PyExc_ValueError,
                     "%s: images must have rank 4, (N, H, W, C) or (N, C, H, W), got rank %d", func,
                     PyArray_NDIM(images));
        goto fail;
    }
    const npy_intp *dims = PyArray_DIMS(images);
    const npy_intp n = dims[0];
    const npy_intp height = channels_first ? dims[2] : dims[1];
    const npy_intp width = channels_first ? dims[3] : dims[2];
    const npy_intp channels = channels_first ? dims[1] : dims[3];
    matrices = matrices_array(matrices_obj, n);
    if (matrices == NULL)
        goto fail;
    const int typenum = PyArray_TYPE(images);
    out = bnpy_output_array(out_obj, typenum, 4, dims, func, "out");
    if (out == NULL)
        goto fail;
    if (bnpy_may_overlap(out, images) || bnpy_may_overlap(out, matrices)) {
        PyErr_Format(
            PyExc_ValueError,
            "%s: out must not share memory with images or matrices (a warp reads any pixel)", func);
        goto fail;
    }

    const npy_intp matrix_rows = PyArray_DIM(matrices, 1);
    const double *m = (const double *)PyArray_DATA(matrices);
    Py_BEGIN_ALLOW_THREADS
    BNPY_CALL_FOR_TYPE(typenum, bnpy_affine_warp, PyArray_DATA(out), PyArray_DATA(images), m, n,
                       height, width, channels, matrix_rows, channels_first, (int)order, fill_mode,
                       cval);
    Py_END_ALLOW_THREADS

    result = (PyObject *)out;
    Py_INCREF(result);
fail:
    bnpy_release(3, images, matrices, out);
    return result;
}

PyMethodDef bnpy_image_methods[] = {
    BNPY_FASTCALL("affine_warp", affine_warp, affine_warp_doc),
    {NULL, NULL, 0, NULL},
};
