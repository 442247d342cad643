/* py_image.c: CPython/NumPy glue of the image kernels (affine.c). */
#include "glue.h" /* first: Python.h must precede the system headers */

#include <math.h>
#include <string.h>

#define FUNC "affine_warp"

/* fill_mode name -> enum bnpy_fill_mode, or -1 with TypeError/ValueError set. */
static int parse_fill_mode(PyObject *obj)
{
    static const struct {
        const char *name;
        int mode;
    } modes[] = {{"constant", BNPY_FILL_CONSTANT},
                 {"nearest", BNPY_FILL_NEAREST},
                 {"reflect", BNPY_FILL_REFLECT},
                 {"wrap", BNPY_FILL_WRAP}};
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, FUNC ": fill_mode must be a str, got %.200s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char *name = PyUnicode_AsUTF8(obj);
    if (name == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(name, modes[i].name) == 0)
            return modes[i].mode;
    PyErr_Format(PyExc_ValueError,
                 FUNC ": fill_mode must be one of 'constant', 'nearest', 'reflect', 'wrap', got %R", obj);
    return -1;
}

/* data_format name -> 1 (channels_last) / 0 (channels_first), or -1 with an error set. */
static int parse_data_format(PyObject *obj)
{
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, FUNC ": data_format must be a str, got %.200s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    const char *name = PyUnicode_AsUTF8(obj);
    if (name == NULL)
        return -1;
    if (strcmp(name, "channels_last") == 0)
        return 1;
    if (strcmp(name, "channels_first") == 0)
        return 0;
    PyErr_Format(PyExc_ValueError,
                 FUNC ": data_format must be 'channels_last' or 'channels_first', got %R", obj);
    return -1;
}

/* The matrices as a C-contiguous float64 array of shape (n, 2 or 3, 3) with finite entries. Any
 * real numeric dtype is accepted (a matrix is small; converting it costs nothing). */
static PyArrayObject *matrices_array(PyObject *obj, npy_intp n)
{
    PyArrayObject *probe = (PyArrayObject *)PyArray_FROM_O(obj);
    if (probe == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, FUNC ": matrices must be a real array, got %.200s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    const char kind = PyArray_DESCR(probe)->kind;
    if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
        PyObject *dtype = PyObject_Str((PyObject *)PyArray_DESCR(probe));
        if (dtype != NULL)
            PyErr_Format(PyExc_TypeError, FUNC ": matrices must be a real (float or int) array, got dtype %U",
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
        PyObject *shape = PyArray_NDIM(m) == 0 ? PyTuple_New(0) : PyArray_IntTupleFromIntp(PyArray_NDIM(m), PyArray_DIMS(m));
        if (shape != NULL)
            PyErr_Format(PyExc_ValueError,
                         FUNC ": matrices must have shape (%zd, 2, 3) or (%zd, 3, 3) (one output->input "
                         "matrix per image), got shape %R",
                         (Py_ssize_t)n, (Py_ssize_t)n, shape);
        Py_XDECREF(shape);
        Py_DECREF(m);
        return NULL;
    }
    const double *v = (const double *)PyArray_DATA(m);
    for (npy_intp i = 0; i < PyArray_SIZE(m); i++)
        if (!isfinite(v[i])) {
            PyErr_Format(PyExc_ValueError, FUNC ": matrices must be finite, got a non-finite entry in matrix %zd",
                         (Py_ssize_t)(i / (PyArray_DIM(m, 1) * 3)));
            Py_DECREF(m);
            return NULL;
        }
    return m;
}

PyDoc_STRVAR(affine_warp_doc,
"affine_warp(images, matrices, order=0, fill_mode='nearest', cval=0.0, data_format='channels_last', out=None)\n"
"--\n\n"
"Warp a batch of float32/float64 images (N, H, W, C) or (N, C, H, W), one output->input matrix\n"
"(N, 2|3, 3) per image: output pixel (row, col) samples the input at M[:2, :2] @ (row, col) + M[:2, 2],\n"
"as scipy.ndimage.affine_transform. order 0: nearest; 1: bilinear. Returns out.");

static PyObject *affine_warp(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"images", "matrices", "order", "fill_mode", "cval", "data_format", "out", NULL};
    PyObject *images_obj, *matrices_obj, *order_obj = NULL, *fill_obj = NULL, *cval_obj = NULL,
                                         *format_obj = NULL, *out_obj = NULL;
    PyArrayObject *images = NULL, *matrices = NULL, *out = NULL;
    PyObject *result = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|OOOOO:" FUNC, kwlist, &images_obj, &matrices_obj,
                                     &order_obj, &fill_obj, &cval_obj, &format_obj, &out_obj))
        return NULL;

    long order = 0;
    if (order_obj != NULL) {
        if (!PyIndex_Check(order_obj) || PyBool_Check(order_obj)) { /* ints and NumPy ints */
            PyErr_Format(PyExc_TypeError, FUNC ": order must be an int (0 or 1), got %.200s",
                         Py_TYPE(order_obj)->tp_name);
            goto fail;
        }
        order = (long)PyNumber_AsSsize_t(order_obj, NULL); /* clamps, never overflows */
        if (order == -1 && PyErr_Occurred())
            goto fail;
        if (order != 0 && order != 1) {
            PyErr_Format(PyExc_ValueError, FUNC ": order must be 0 (nearest) or 1 (bilinear), got %ld", order);
            goto fail;
        }
    }
    int fill_mode = BNPY_FILL_NEAREST;
    if (fill_obj != NULL && (fill_mode = parse_fill_mode(fill_obj)) < 0)
        goto fail;
    double cval = 0.0;
    if (cval_obj != NULL) {
        if (!PyFloat_Check(cval_obj) && !PyLong_Check(cval_obj) && !PyArray_IsScalar(cval_obj, Number)) {
            PyErr_Format(PyExc_TypeError, FUNC ": cval must be a real number, got %.200s",
                         Py_TYPE(cval_obj)->tp_name);
            goto fail;
        }
        cval = PyFloat_AsDouble(cval_obj);
        if (cval == -1.0 && PyErr_Occurred())
            goto fail;
    }
    int channels_last = 1;
    if (format_obj != NULL && (channels_last = parse_data_format(format_obj)) < 0)
        goto fail;

    images = bnpy_input_array(images_obj, -1, FUNC, "images");
    if (images == NULL)
        goto fail;
    if (PyArray_NDIM(images) != 4) {
        PyErr_Format(PyExc_ValueError,
                     FUNC ": images must have rank 4, (N, H, W, C) or (N, C, H, W), got rank %d",
                     PyArray_NDIM(images));
        goto fail;
    }
    const npy_intp *dims = PyArray_DIMS(images);
    const npy_intp n = dims[0];
    const npy_intp height = channels_last ? dims[1] : dims[2];
    const npy_intp width = channels_last ? dims[2] : dims[3];
    const npy_intp channels = channels_last ? dims[3] : dims[1];
    matrices = matrices_array(matrices_obj, n);
    if (matrices == NULL)
        goto fail;
    const int typenum = PyArray_TYPE(images);
    out = bnpy_output_array(out_obj, typenum, 4, dims, FUNC, "out");
    if (out == NULL)
        goto fail;
    if (bnpy_may_overlap(out, images) || bnpy_may_overlap(out, matrices)) {
        PyErr_SetString(PyExc_ValueError,
                        FUNC ": out must not share memory with images or matrices (a warp reads any pixel)");
        goto fail;
    }

    const npy_intp matrix_rows = PyArray_DIM(matrices, 1);
    const double *m = (const double *)PyArray_DATA(matrices);
    Py_BEGIN_ALLOW_THREADS
    if (typenum == NPY_FLOAT)
        bnpy_affine_warp_f32((float *)PyArray_DATA(out), (const float *)PyArray_DATA(images), m, n, height,
                             width, channels, matrix_rows, channels_last, (int)order, fill_mode, cval);
    else
        bnpy_affine_warp_f64((double *)PyArray_DATA(out), (const double *)PyArray_DATA(images), m, n, height,
                             width, channels, matrix_rows, channels_last, (int)order, fill_mode, cval);
    Py_END_ALLOW_THREADS

    result = (PyObject *)out;
    Py_INCREF(result);
fail:
    Py_XDECREF(images);
    Py_XDECREF(matrices);
    Py_XDECREF(out);
    return result;
}

PyMethodDef bnpy_image_methods[] = {
    {"affine_warp", (PyCFunction)(void (*)(void))affine_warp, METH_VARARGS | METH_KEYWORDS, affine_warp_doc},
    {NULL, NULL, 0, NULL},
};
