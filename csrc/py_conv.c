/* py_conv.c: CPython/NumPy glue of the convolution kernels (conv.c, conv_direct.c).
 *
 * Each function takes its arguments positionally (METH_FASTCALL; bnpy.ops.conv gives keywords and
 * defaults, and builds the public API on these): parse, convert inputs once (C-contiguous, native,
 * float32/float64), validate the geometry and every shape before anything is written, allocate
 * the output, release the GIL, call the kernel. One `fail:` exit path each.
 */
#include "glue.h"
#include "py_window.h"

#include <math.h>

/* ---- im2col / col2im ------------------------------------------------------------------------- */

/* im2col(x, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, channels_first[, out[, dh[, dw]]]) */
static PyObject *py_im2col(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "im2col";
    PyObject *result = NULL, *out_obj;
    PyArrayObject *x = NULL, *col = NULL;
    geometry g;
    int cf;
    if (bnpy_check_nargs(nargs, 10, 13, func) < 0 || parse_window(args + 1, 8, &g, func, 0) < 0 ||
        bnpy_parse_flag(args[9], func, "channels_first", &cf) < 0 ||
        parse_out_dilation(args, nargs, 10, &g, func, &out_obj) < 0)
        return NULL;
    if ((x = input_with_rank(args[0], -1, 4, func, "x", "(N, H, W, C) or (N, C, H, W)")) == NULL)
        goto fail;
    shape_from_dims(&g, PyArray_DIMS(x), cf);
    if (check_geometry(&g, func, 0) < 0 ||
        check_size((double)g.N * g.out_h * g.out_w * g.kh * g.kw * g.C, func, "the column matrix") <
            0)
        goto fail;
    npy_intp dims[2] = {g.N * g.out_h * g.out_w, g.kh * g.kw * g.C};
    col = bnpy_output_array(out_obj, PyArray_TYPE(x), 2, dims, func, "out");
    if (col == NULL || bnpy_check_overlap(col, x, 0, func, "out", "x") < 0)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    BNPY_CALL_FOR_TYPE(PyArray_TYPE(x), bnpy_im2col, PyArray_DATA(col), PyArray_DATA(x), g.N, g.H,
                       g.W, g.C, cf, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.out_h, g.out_w, g.dh,
                       g.dw);
    Py_END_ALLOW_THREADS
    result = bnpy_take(&col);
fail:
    bnpy_release(2, x, col);
    return result;
}

/* col2im(dcol, x_shape, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, channels_first[, out[, dh[, dw]]]) */
static PyObject *py_col2im(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "col2im";
    PyObject *result = NULL, *out_obj;
    PyArrayObject *dcol = NULL, *dx = NULL;
    geometry g;
    npy_intp xd[4];
    int cf;
    if (bnpy_check_nargs(nargs, 11, 14, func) < 0 || parse_window(args + 2, 8, &g, func, 0) < 0 ||
        bnpy_parse_flag(args[10], func, "channels_first", &cf) < 0 ||
        parse_out_dilation(args, nargs, 11, &g, func, &out_obj) < 0 ||
        parse_shape4(args[1], xd, func, "x_shape") < 0)
        return NULL;
    if ((dcol = input_with_rank(args[0], -1, 2, func, "dcol", "(N*out_h*out_w, kh*kw*C)")) == NULL)
        goto fail;
    shape_from_dims(&g, xd, cf);
    if (check_geometry(&g, func, 0) < 0)
        goto fail;
    if (PyArray_DIM(dcol, 0) != g.N * g.out_h * g.out_w ||
        PyArray_DIM(dcol, 1) != g.kh * g.kw * g.C) {
        PyErr_Format(PyExc_ValueError,
                     "%s: dcol must have shape (%zd, %zd) for this geometry, got (%zd, %zd)", func,
                     (Py_ssize_t)(g.N * g.out_h * g.out_w), (Py_ssize_t)(g.kh * g.kw * g.C),
                     (Py_ssize_t)PyArray_DIM(dcol, 0), (Py_ssize_t)PyArray_DIM(dcol, 1));
        goto fail;
    }
    dx = bnpy_output_array(out_obj, PyArray_TYPE(dcol), 4, xd, func, "out");
    if (dx == NULL || bnpy_check_overlap(dx, dcol, 0, func, "out", "dcol") < 0)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    BNPY_CALL_FOR_TYPE(PyArray_TYPE(dcol), bnpy_col2im, PyArray_DATA(dx), PyArray_DATA(dcol), g.N,
                       g.H, g.W, g.C, cf, g.kh, g.kw, g.sh, g.sw, g.pt, g.pl, g.out_h, g.out_w,
                       g.dh, g.dw);
    Py_END_ALLOW_THREADS
    result = bnpy_take(&dx);
fail:
    bnpy_release(2, dcol, dx);
    return result;
}

/* ---- bias and layout helpers ------------------------------------------------------------------ */

/* 0 if b is a vector of `size` values, else ValueError and -1. */
static int check_bias_shape(PyArrayObject *b, npy_intp size, const char *func)
{
    if (PyArray_NDIM(b) == 1 && PyArray_DIM(b, 0) == size)
        return 0;
    PyErr_Format(PyExc_ValueError,
                 "%s: bias must have shape (%zd,), got a %d-D array of %zd values", func,
                 (Py_ssize_t)size, PyArray_NDIM(b), (Py_ssize_t)PyArray_SIZE(b));
    return -1;
}

/* A bias vector of `size` values (typenum), or NULL with ValueError/TypeError. */
static PyArrayObject *bias_vector(PyObject *obj, int typenum, npy_intp size, const char *func)
{
    PyArrayObject *b = bnpy_input_array(obj, typenum, func, "bias");
    if (b != NULL && check_bias_shape(b, size, func) < 0)
        Py_CLEAR(b);
    return b;
}

/* conv_output(y, bias, images, channels_first) -> y in the data format
 * The output stage of a convolution computed as a product y (rows, Cout), rows = images·P with
 * P = out_h·out_w pixels, bias (Cout,) or None: channels-last, bias added in place (y C-contiguous
 * and writeable) and y itself returned; channels-first, a new (images, Cout, P) array, each
 * image's (P, Cout) block transposed with bias added. */
static PyObject *py_conv_output(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "conv_output";
    PyObject *result = NULL;
    PyArrayObject *y = NULL, *bias = NULL, *out = NULL;
    const npy_intp any[2] = {-1, -1};
    Py_ssize_t N;
    int typenum, cf;
    if (bnpy_check_nargs(nargs, 4, 4, func) < 0 ||
        bnpy_parse_ssize(args[2], func, "images", &N) < 0 ||
        bnpy_parse_flag(args[3], func, "channels_first", &cf) < 0 ||
        (typenum = bnpy_float_typenum(args[0], func, "y")) < 0)
        return NULL;
    y = cf ? input_with_rank(args[0], typenum, 2, func, "y", "(rows, Cout)")
           : bnpy_inplace_array(args[0], typenum, 2, any, func, "y");
    if (y == NULL ||
        (args[1] != Py_None &&
         (bias = bias_vector(args[1], typenum, PyArray_DIM(y, 1), func)) == NULL) ||
        (!cf && bnpy_check_overlap(y, bias, 0, func, "y", "bias") < 0))
        goto fail;
    const npy_intp rows = PyArray_DIM(y, 0), Cout = PyArray_DIM(y, 1);
    if (N < 0 || (N == 0 ? rows != 0 : rows % N != 0)) {
        PyErr_Format(PyExc_ValueError, "%s: y's %zd rows are not %zd images of equal size", func,
                     (Py_ssize_t)rows, N);
        goto fail;
    }
    const npy_intp P = N > 0 ? rows / N : 0, dims[3] = {N, Cout, P};
    if (cf && (out = (PyArrayObject *)PyArray_EMPTY(3, dims, typenum, 0)) == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    if (cf)
        BNPY_CALL_FOR_TYPE(typenum, bnpy_batch_transpose, PyArray_DATA(out), PyArray_DATA(y),
                           bias ? PyArray_DATA(bias) : NULL, N, P, Cout);
    else if (bias != NULL)
        BNPY_CALL_FOR_TYPE(typenum, bnpy_add_bias_rows, PyArray_DATA(y), PyArray_DATA(bias), rows,
                           Cout);
    Py_END_ALLOW_THREADS
    result = cf ? bnpy_take(&out) : bnpy_take(&y);
fail:
    bnpy_release(3, y, bias, out);
    return result;
}

/* conv_output_backward(dy, with_bias, channels_first) -> (dy_rows, dbias or None)
 * The gradient through conv_output: dy in the data format, (N, H, W, Cout) or (N, Cout, H, W),
 * as the product's (N·H·W, Cout) rows (C-contiguous; a view of dy for channels-last, transposed
 * for channels-first), and with_bias dbias[c] = Σ over batch and pixels of dy (summed in
 * double). */
static PyObject *py_conv_output_backward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "conv_output_backward";
    PyObject *result = NULL;
    PyArrayObject *dy = NULL, *rows = NULL, *dbias = NULL;
    int with_bias, cf, rc = 0;
    if (bnpy_check_nargs(nargs, 3, 3, func) < 0 ||
        bnpy_parse_flag(args[1], func, "with_bias", &with_bias) < 0 ||
        bnpy_parse_flag(args[2], func, "channels_first", &cf) < 0)
        return NULL;
    dy = input_with_rank(args[0], -1, 4, func, "dy", cf ? "(N, Cout, H, W)" : "(N, H, W, Cout)");
    if (dy == NULL)
        goto fail;
    const int typenum = PyArray_TYPE(dy);
    const npy_intp *d = PyArray_DIMS(dy), N = d[0], Cout = d[cf ? 1 : 3];
    const npy_intp P = cf ? d[2] * d[3] : d[1] * d[2];
    npy_intp dims[2] = {N * P, Cout};
    PyArray_Dims shape = {dims, 2};
    rows = cf ? (PyArrayObject *)PyArray_EMPTY(2, dims, typenum, 0)
              : (PyArrayObject *)PyArray_Newshape(dy, &shape, NPY_CORDER); /* a view */
    if (rows == NULL ||
        (with_bias && (dbias = (PyArrayObject *)PyArray_EMPTY(1, dims + 1, typenum, 0)) == NULL))
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    if (cf)
        BNPY_CALL_FOR_TYPE(typenum, bnpy_batch_transpose, PyArray_DATA(rows), PyArray_DATA(dy),
                           NULL, N, Cout, P);
    if (with_bias)
        rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_sum_rows, PyArray_DATA(dbias), PyArray_DATA(rows),
                                N * P, Cout);
    Py_END_ALLOW_THREADS
    if (bnpy_kernel_status(rc) == 0)
        result = Py_BuildValue("OO", rows, with_bias ? (PyObject *)dbias : Py_None);
fail:
    bnpy_release(3, dy, rows, dbias);
    return result;
}

/* ---- conv2d_setup: every argument of a convolution checked once ------------------------------- */

/* conv2d_setup(caller, x, kernel, bias, strides, padding, dilation_rate, channels_first)
 *   -> (x, kernel, bias, (kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right), (dh, dw),
 *       (out_h, out_w))
 * Every argument of a 2-D convolution as bnpy.ops.conv takes it, checked here and only here:
 * x (N, H, W, C) or (N, C, H, W) and kernel (kh, kw, C, Cout) of one float dtype, bias (Cout,)
 * or None, strides and dilation_rate an int or a pair (>= 1), padding 'valid', 'same' or
 * explicit; errors name `caller`. The arrays come back C-contiguous; a 1-wide kernel axis has no
 * taps to spread, so its dilation is 1 whatever was asked. */
static PyObject *py_conv2d_setup(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *const names[] = {"x", "kernel", "bias"};
    PyObject *result = NULL;
    /* the arguments as given (views: checked before anything is copied), then converted */
    PyArrayObject *xv = NULL, *kv = NULL, *bv = NULL, *x = NULL, *kernel = NULL, *bias = NULL;
    geometry g;
    npy_intp dilation[2];
    int typenum, cf;
    const char *func = parse_caller(args, nargs, 8, "conv2d_setup");
    if (func == NULL)
        return NULL;
    if ((typenum = bnpy_call_typenum(args + 1, names, 3, func)) < 0 ||
        (xv = view_with_rank(args[1], typenum, 4, func, "x", "(N, H, W, C) or (N, C, H, W)")) ==
            NULL ||
        (kv = view_with_rank(args[2], typenum, 4, func, "kernel", "(kh, kw, Cin, Cout)")) == NULL ||
        bnpy_parse_flag(args[7], func, "channels_first", &cf) < 0)
        goto fail;
    shape_from_dims(&g, PyArray_DIMS(xv), cf);
    const npy_intp *kd = PyArray_DIMS(kv);
    if (kd[2] != g.C) {
        PyErr_Format(PyExc_ValueError,
                     "%s: kernel (%zd, %zd, %zd, %zd) expects %zd input channels, x has %zd "
                     "(x of shape (%zd, %zd, %zd, %zd), %s)",
                     func, (Py_ssize_t)kd[0], (Py_ssize_t)kd[1], (Py_ssize_t)kd[2],
                     (Py_ssize_t)kd[3], (Py_ssize_t)kd[2], (Py_ssize_t)g.C,
                     (Py_ssize_t)PyArray_DIM(xv, 0), (Py_ssize_t)PyArray_DIM(xv, 1),
                     (Py_ssize_t)PyArray_DIM(xv, 2), (Py_ssize_t)PyArray_DIM(xv, 3),
                     cf ? "channels_first" : "channels_last");
        goto fail;
    }
    if (kd[0] < 1 || kd[1] < 1 || kd[3] < 1) {
        PyErr_Format(PyExc_ValueError,
                     "%s: kernel must have a non-empty shape, got (%zd, %zd, %zd, %zd)", func,
                     (Py_ssize_t)kd[0], (Py_ssize_t)kd[1], (Py_ssize_t)kd[2], (Py_ssize_t)kd[3]);
        goto fail;
    }
    if (args[3] != Py_None &&
        ((bv = view_with_rank(args[3], typenum, 1, func, "bias", "(Cout,)")) == NULL ||
         check_bias_shape(bv, kd[3], func) < 0))
        goto fail;
    if (parse_pair(args[6], func, "dilation_rate", dilation) < 0)
        goto fail;
    if (dilation[0] < 1 || dilation[1] < 1) {
        PyErr_Format(PyExc_ValueError, "%s: dilation_rate must be >= 1, got (%zd, %zd)", func,
                     (Py_ssize_t)dilation[0], (Py_ssize_t)dilation[1]);
        goto fail;
    }
    g.kh = kd[0];
    g.kw = kd[1];
    g.dh = g.kh > 1 ? dilation[0] : 1;
    g.dw = g.kw > 1 ? dilation[1] : 1;
    if (place_window(&g, args[4], args[5], 0, func) < 0 ||
        (x = bnpy_input_array(args[1], typenum, func, "x")) == NULL ||
        (kernel = bnpy_input_array(args[2], typenum, func, "kernel")) == NULL ||
        (args[3] != Py_None && (bias = bnpy_input_array(args[3], typenum, func, "bias")) == NULL))
        goto fail;
    if (bias == NULL) {
        bias = (PyArrayObject *)Py_None;
        Py_INCREF(Py_None);
    }
    result = Py_BuildValue("OOO(nnnnnnnn)(nn)(nn)", x, kernel, bias, g.kh, g.kw, g.sh, g.sw, g.pt,
                           g.pb, g.pl, g.pr, g.dh, g.dw, g.out_h, g.out_w);
fail:
    bnpy_release(6, xv, kv, bv, x, kernel, bias);
    return result;
}

/* ---- the direct float32 channels-last convolution (conv_direct.c) ------------------------------ */

static PyObject *py_conv_direct_available(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(bnpy_conv_direct_available());
}

static int require_direct(const char *func)
{
    if (bnpy_conv_direct_available())
        return 0;
    PyErr_Format(PyExc_RuntimeError, "%s: this CPU (or build) has no AVX2/FMA direct convolution",
                 func);
    return -1;
}

/* conv2d_direct(x, kernel, bias, sh, sw, pad_top, pad_bottom, pad_left, pad_right) -> (y, xpad) */
static PyObject *py_conv2d_direct(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "conv2d_direct";
    PyObject *result = NULL;
    PyArrayObject *x = NULL, *kernel = NULL, *bias = NULL, *y = NULL, *xpad = NULL;
    geometry g;
    int rc = 0;
    /* the kernel's size comes from the kernel array: parse (sh, ..., pad_right) into its slots */
    if (bnpy_check_nargs(nargs, 9, 9, func) < 0 || require_direct(func) < 0)
        return NULL;
    {
        static const char *const names[] = {"sh",         "sw",       "pad_top",
                                            "pad_bottom", "pad_left", "pad_right"};
        npy_intp *fields[] = {&g.sh, &g.sw, &g.pt, &g.pb, &g.pl, &g.pr};
        for (int i = 0; i < 6; i++) {
            Py_ssize_t v;
            if (bnpy_parse_ssize(args[3 + i], func, names[i], &v) < 0)
                return NULL;
            *fields[i] = v;
        }
        g.dh = g.dw = 1;
    }
    if ((x = input_with_rank(args[0], NPY_FLOAT, 4, func, "x", "(N, H, W, C)")) == NULL)
        goto fail;
    if ((kernel = input_with_rank(args[1], NPY_FLOAT, 4, func, "kernel", "(kh, kw, C, Cout)")) ==
        NULL)
        goto fail;
    shape_from_dims(&g, PyArray_DIMS(x), 0);
    g.kh = PyArray_DIM(kernel, 0);
    g.kw = PyArray_DIM(kernel, 1);
    const npy_intp cout = PyArray_DIM(kernel, 3);
    if (PyArray_DIM(kernel, 2) != g.C || g.C < 1 || cout % 8 != 0 || cout == 0) {
        PyErr_Format(
            PyExc_ValueError,
            "%s: kernel must be (kh, kw, %zd, Cout) with Cin >= 1 and Cout a multiple of 8, "
            "got Cin %zd, Cout %zd",
            func, (Py_ssize_t)g.C, (Py_ssize_t)PyArray_DIM(kernel, 2), (Py_ssize_t)cout);
        goto fail;
    }
    if (args[2] != Py_None && (bias = bias_vector(args[2], NPY_FLOAT, cout, func)) == NULL)
        goto fail;
    if (check_geometry(&g, func, 0) < 0)
        goto fail;
    npy_intp ydims[4] = {g.N, g.out_h, g.out_w, cout};
    npy_intp pdims[4] = {g.N, g.H + g.pt + g.pb, g.W + g.pl + g.pr, g.C};
    y = (PyArrayObject *)PyArray_EMPTY(4, ydims, NPY_FLOAT, 0);
    xpad = (PyArrayObject *)PyArray_EMPTY(4, pdims, NPY_FLOAT, 0);
    if (y == NULL || xpad == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    bnpy_pad_nhwc_f32(PyArray_DATA(xpad), PyArray_DATA(x), g.N, g.H, g.W, g.C, g.pt, g.pb, g.pl,
                      g.pr);
    rc = bnpy_conv2d_direct_f32(PyArray_DATA(y), PyArray_DATA(xpad), PyArray_DATA(kernel),
                                bias ? PyArray_DATA(bias) : NULL, g.N, g.H, g.W, g.C, g.kh, g.kw,
                                g.sh, g.sw, g.pt, g.pb, g.pl, g.pr, g.out_h, g.out_w, cout);
    Py_END_ALLOW_THREADS
    result = bnpy_results(rc, 2, y, xpad);
fail:
    bnpy_release(5, x, kernel, bias, y, xpad);
    return result;
}

/* conv2d_direct_dkernel(dy, xpad, x_shape, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right) */
static PyObject *py_conv2d_direct_dkernel(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "conv2d_direct_dkernel";
    PyObject *result = NULL;
    PyArrayObject *dy = NULL, *xpad = NULL, *dk = NULL;
    geometry g;
    npy_intp xd[4];
    int rc = 0;
    if (bnpy_check_nargs(nargs, 11, 11, func) < 0 || require_direct(func) < 0 ||
        parse_window(args + 3, 8, &g, func, 0) < 0 ||
        parse_shape4(args[2], xd, func, "x_shape") < 0)
        return NULL;
    shape_from_dims(&g, xd, 0);
    if (check_geometry(&g, func, 0) < 0)
        return NULL;
    if ((dy = input_with_rank(args[0], NPY_FLOAT, 4, func, "dy", "(N, out_h, out_w, Cout)")) ==
        NULL)
        goto fail;
    if ((xpad = input_with_rank(args[1], NPY_FLOAT, 4, func, "xpad", "(N, Hp, Wp, C)")) == NULL)
        goto fail;
    const npy_intp cout = PyArray_DIM(dy, 3);
    if (PyArray_DIM(dy, 0) != g.N || PyArray_DIM(dy, 1) != g.out_h ||
        PyArray_DIM(dy, 2) != g.out_w || cout % 8 != 0 || cout == 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: dy must have shape (%zd, %zd, %zd, Cout), Cout a multiple of 8", func,
                     (Py_ssize_t)g.N, (Py_ssize_t)g.out_h, (Py_ssize_t)g.out_w);
        goto fail;
    }
    if (PyArray_DIM(xpad, 0) != g.N || PyArray_DIM(xpad, 1) != g.H + g.pt + g.pb ||
        PyArray_DIM(xpad, 2) != g.W + g.pl + g.pr || PyArray_DIM(xpad, 3) != g.C) {
        PyErr_Format(PyExc_ValueError, "%s: xpad must have shape (%zd, %zd, %zd, %zd)", func,
                     (Py_ssize_t)g.N, (Py_ssize_t)(g.H + g.pt + g.pb),
                     (Py_ssize_t)(g.W + g.pl + g.pr), (Py_ssize_t)g.C);
        goto fail;
    }
    npy_intp kdims[4] = {g.kh, g.kw, g.C, cout};
    dk = (PyArrayObject *)PyArray_EMPTY(4, kdims, NPY_FLOAT, 0);
    if (dk == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = bnpy_conv2d_direct_dkernel_f32(PyArray_DATA(dk), PyArray_DATA(xpad), PyArray_DATA(dy), g.N,
                                        g.H, g.W, g.C, g.kh, g.kw, g.sh, g.sw, g.pt, g.pb, g.pl,
                                        g.pr, g.out_h, g.out_w, cout);
    Py_END_ALLOW_THREADS
    result = bnpy_result(rc, &dk);
fail:
    bnpy_release(3, dy, xpad, dk);
    return result;
}

PyMethodDef bnpy_conv_methods[] = {
    BNPY_FASTCALL(
        "conv2d_setup", py_conv2d_setup,
        "conv2d_setup(caller, x, kernel, bias, strides, padding, dilation_rate, channels_first, "
        "/)\n--\n\n"
        "Every argument of a 2-D convolution checked once (errors name caller): (x, kernel, bias, "
        "geometry, dilation, (out_h, out_w))."),
    BNPY_FASTCALL(
        "im2col", py_im2col,
        "im2col(x, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, channels_first, "
        "out=None, dh=1, dw=1, /)\n--\n\n"
        "The (N*out_h*out_w, kh*kw*C) column matrix of a convolution over x (see csrc/conv.c)."),
    BNPY_FASTCALL(
        "col2im", py_col2im,
        "col2im(dcol, x_shape, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, pad_right, "
        "channels_first, out=None, dh=1, dw=1, /)\n--\n\n"
        "The adjoint of im2col: dx of shape x_shape, each cell the sum of the dcol entries copied "
        "from it."),
    BNPY_FASTCALL("conv_output", py_conv_output,
                  "conv_output(y, bias, images, channels_first, /)\n--\n\n"
                  "A convolution's (images*pixels, Cout) product in its data format, bias added: "
                  "channels-last in place (y returned), channels-first transposed to "
                  "(images, Cout, pixels)."),
    BNPY_FASTCALL("conv_output_backward", py_conv_output_backward,
                  "conv_output_backward(dy, with_bias, channels_first, /)\n--\n\n"
                  "(dy_rows, dbias): dy as the product's (N*pixels, Cout) rows and, with_bias, "
                  "its sums over batch and pixels (in double); else None."),
    {"conv_direct_available", py_conv_direct_available, METH_NOARGS,
     "conv_direct_available()\n--\n\nTrue when conv2d_direct can run (x86 with AVX2 and FMA)."},
    BNPY_FASTCALL("conv2d_direct", py_conv2d_direct,
                  "conv2d_direct(x, kernel, bias, sh, sw, pad_top, pad_bottom, pad_left, "
                  "pad_right, /)\n--\n\n"
                  "(y, xpad): float32 channels-last convolution without im2col (Cout % 8 == 0), "
                  "and the padded x."),
    BNPY_FASTCALL(
        "conv2d_direct_dkernel", py_conv2d_direct_dkernel,
        "conv2d_direct_dkernel(dy, xpad, x_shape, kh, kw, sh, sw, pad_top, pad_bottom, pad_left, "
        "pad_right, /)\n--\n\n"
        "The kernel gradient of conv2d_direct from its padded x and dy."),
    {NULL, NULL, 0, NULL},
};
