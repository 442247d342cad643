/* py_pool.c: CPython/NumPy glue of the pooling kernels (pool.c), with the conventions of
 * py_conv.c: positional METH_FASTCALL arguments (bnpy.ops.conv gives keywords and defaults), the
 * window checked by py_window.h before anything is written, one `fail:` exit each. */
#include "glue.h" /* Python.h first */
#include "py_window.h"

/* ---- pooling ---------------------------------------------------------------------------------- */

/* pool2d(x, take_max, ph, pw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, channels_first)
 *   -> (y, argmax) for max pooling (take_max true), (y, None) for average pooling */
static PyObject *py_pool2d(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "pool2d";
    PyObject *result = NULL;
    PyArrayObject *x = NULL, *y = NULL, *argmax = NULL;
    geometry g;
    int is_max, cf;
    if (bnpy_check_nargs(nargs, 11, 11, func) < 0 ||
        bnpy_parse_flag(args[1], func, "take_max", &is_max) < 0 ||
        parse_window(args + 2, 8, &g, func, 1) < 0 ||
        bnpy_parse_flag(args[10], func, "channels_first", &cf) < 0)
        return NULL;
    if ((x = input_with_rank(args[0], -1, 4, func, "x", "(N, H, W, C) or (N, C, H, W)")) == NULL)
        goto fail;
    shape_from_dims(&g, PyArray_DIMS(x), cf);
    if (check_geometry(&g, func, 1) < 0)
        goto fail;
    npy_intp dims[4];
    image_dims(&g, g.out_h, g.out_w, g.C, dims);
    y = (PyArrayObject *)PyArray_EMPTY(4, dims, PyArray_TYPE(x), 0);
    if (y == NULL)
        goto fail;
    if (is_max && (argmax = (PyArrayObject *)PyArray_EMPTY(4, dims, NPY_INT32, 0)) == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    if (is_max)
        BNPY_CALL_FOR_TYPE(PyArray_TYPE(x), bnpy_max_pool2d, PyArray_DATA(y), PyArray_DATA(argmax),
                           PyArray_DATA(x), g.N, g.H, g.W, g.C, cf, g.kh, g.kw, g.sh, g.sw, g.pt,
                           g.pl, g.out_h, g.out_w);
    else
        BNPY_CALL_FOR_TYPE(PyArray_TYPE(x), bnpy_avg_pool2d, PyArray_DATA(y), PyArray_DATA(x), g.N,
                           g.H, g.W, g.C, cf, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.out_h, g.out_w);
    Py_END_ALLOW_THREADS
    result = is_max ? bnpy_results(0, 2, y, argmax) : Py_BuildValue("OO", y, Py_None);
fail:
    bnpy_release(3, x, y, argmax);
    return result;
}

/* max pooling's argmax for pool2d_backward: the int32 array pool2d returned, shaped like dy
 * (y_dims), each index a cell of its image plane (the kernel writes there). New reference, or
 * NULL with an error. */
static PyArrayObject *checked_argmax(PyObject *obj, const npy_intp *y_dims, npy_intp cells,
                                     const char *func)
{
    if (!PyArray_Check(obj) || PyArray_TYPE((PyArrayObject *)obj) != NPY_INT32) {
        PyErr_Format(PyExc_TypeError, "%s: argmax must be the int32 array max pooling returned",
                     func);
        return NULL;
    }
    PyArrayObject *argmax = (PyArrayObject *)PyArray_FROM_OTF(obj, NPY_INT32, NPY_ARRAY_IN_ARRAY);
    if (argmax == NULL || bnpy_check_shape(argmax, 4, y_dims, func, "argmax") < 0)
        goto fail;
    const int32_t *a = PyArray_DATA(argmax);
    for (npy_intp k = 0, count = PyArray_SIZE(argmax); k < count; k++)
        if (a[k] < 0 || a[k] >= cells) {
            PyErr_Format(PyExc_ValueError, "%s: argmax holds %d, outside the %zd cells of a plane",
                         func, (int)a[k], (Py_ssize_t)cells);
            goto fail;
        }
    return argmax;
fail:
    Py_XDECREF(argmax);
    return NULL;
}

/* pool2d_backward(dy, argmax, x_shape, ph, pw, sh, sw, pad_top, pad_bottom, pad_left, pad_right,
 *                 channels_first) -> dx
 * argmax: max pooling's (each dy goes to its cell), or None for average pooling (each real cell
 * of a window gets dy / its number of real cells). dy must have the pooled output's shape. */
static PyObject *py_pool2d_backward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "pool2d_backward";
    PyObject *result = NULL;
    PyArrayObject *dy = NULL, *argmax = NULL, *dx = NULL;
    geometry g;
    npy_intp xd[4], yd[4];
    int cf;
    if (bnpy_check_nargs(nargs, 12, 12, func) < 0 ||
        parse_shape4(args[2], xd, func, "x_shape") < 0 ||
        parse_window(args + 3, 8, &g, func, 1) < 0 ||
        bnpy_parse_flag(args[11], func, "channels_first", &cf) < 0)
        return NULL;
    shape_from_dims(&g, xd, cf);
    if (check_geometry(&g, func, 1) < 0)
        return NULL;
    image_dims(&g, g.out_h, g.out_w, g.C, yd); /* the pooled output's shape */
    const int is_max = args[1] != Py_None;
    if ((dy = input_with_rank(args[0], -1, 4, func, "dy", "shaped like the pooled output")) ==
            NULL ||
        bnpy_check_shape(dy, 4, yd, func, "dy") < 0 ||
        (is_max && (argmax = checked_argmax(args[1], yd, g.H * g.W, func)) == NULL) ||
        (dx = (PyArrayObject *)PyArray_EMPTY(4, xd, PyArray_TYPE(dy), 0)) == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    if (is_max)
        BNPY_CALL_FOR_TYPE(PyArray_TYPE(dy), bnpy_max_pool2d_backward, PyArray_DATA(dx),
                           PyArray_DATA(dy), PyArray_DATA(argmax), g.N, g.H, g.W, g.C, cf, g.out_h,
                           g.out_w);
    else
        BNPY_CALL_FOR_TYPE(PyArray_TYPE(dy), bnpy_avg_pool2d_backward, PyArray_DATA(dx),
                           PyArray_DATA(dy), g.N, g.H, g.W, g.C, cf, g.kh, g.kw, g.sh, g.sw, g.pt,
                           g.pl, g.out_h, g.out_w);
    Py_END_ALLOW_THREADS
    result = bnpy_take(&dx);
fail:
    bnpy_release(3, dy, argmax, dx);
    return result;
}

/* pool2d_setup(caller, x, pool_size, strides, padding, channels_first)
 *   -> (x, (ph, pw, sh, sw, pad_top, pad_bottom, pad_left, pad_right))
 * Every argument of a 2-D pooling as bnpy.ops.conv takes it, checked here and only here: x
 * (N, H, W, C) or (N, C, H, W) float32/float64, pool_size and strides an int or a pair >= 1
 * (strides None: pool_size), padding 'valid' or 'same'; errors name `caller`. x comes back
 * C-contiguous, copied only once everything has passed. */
static PyObject *py_pool2d_setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result = NULL;
    PyArrayObject *xv = NULL, *x = NULL; /* x as given (checked first), then converted */
    geometry g;
    npy_intp window[2];
    int cf;
    const char *func = parse_caller(args, nargs, 6, "pool2d_setup");
    if (func == NULL)
        return NULL;
    if ((xv = view_with_rank(args[1], -1, 4, func, "x", "(N, H, W, C) or (N, C, H, W)")) == NULL ||
        bnpy_parse_flag(args[5], func, "channels_first", &cf) < 0 ||
        parse_pair(args[2], func, "pool_size", window) < 0)
        goto fail;
    if (window[0] < 1 || window[1] < 1) { /* before strides, which default to it */
        PyErr_Format(PyExc_ValueError, "%s: pool_size must be >= 1, got (%zd, %zd)", func,
                     (Py_ssize_t)window[0], (Py_ssize_t)window[1]);
        goto fail;
    }
    shape_from_dims(&g, PyArray_DIMS(xv), cf);
    g.kh = window[0];
    g.kw = window[1];
    g.dh = g.dw = 1;
    if (place_window(&g, args[3], args[4], 1, func) < 0 ||
        (x = bnpy_input_array(args[1], -1, func, "x")) == NULL)
        goto fail;
    result = Py_BuildValue("O(nnnnnnnn)", x, g.kh, g.kw, g.sh, g.sw, g.pt, g.pb, g.pl, g.pr);
fail:
    bnpy_release(2, xv, x);
    return result;
}

PyMethodDef bnpy_pool_methods[] = {
    BNPY_FASTCALL(
        "pool2d_setup", py_pool2d_setup,
        "pool2d_setup(caller, x, pool_size, strides, padding, channels_first, /)\n--\n\n"
        "Every argument of a 2-D pooling checked once (errors name caller): (x, geometry)."),
    BNPY_FASTCALL("pool2d", py_pool2d,
                  "pool2d(x, take_max, ph, pw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, "
                  "channels_first, /)\n--\n\n"
                  "(y, argmax) of max pooling: window maxima over the real cells and the plane "
                  "index h*W + w of the first maximum; (y, None) of average pooling: window means "
                  "over the real cells (TensorFlow's 'same' average pooling)."),
    BNPY_FASTCALL("pool2d_backward", py_pool2d_backward,
                  "pool2d_backward(dy, argmax, x_shape, ph, pw, sh, sw, pad_top, pad_bottom, "
                  "pad_left, pad_right, channels_first, /)\n--\n\n"
                  "dx: with max pooling's argmax, dy added to each argmax cell; with None, each "
                  "real cell of a window gets dy / (number of real cells)."),
    {NULL, NULL, 0, NULL},
};
