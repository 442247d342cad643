/* py_window.h: the window geometry shared by the convolution and pooling glue (py_conv.c,
 * py_pool.c): parsing the window arguments, checking them against the input, and the output
 * size. Included by glue files only, after glue.h. */
#ifndef BNPY_PY_WINDOW_H
#define BNPY_PY_WINDOW_H

#include <math.h>

#include "glue.h"

/* The geometry of a window sweep over an image batch (see kernels.h). */
typedef struct {
    npy_intp N, H, W, C;     /* logical sizes, whatever the layout */
    npy_intp kh, kw, sh, sw; /* window and strides */
    npy_intp dh, dw;         /* kernel dilation (1: none); the window spans (kh-1)*dh + 1 rows */
    npy_intp pt, pb, pl, pr; /* zero padding: top, bottom, left, right */
    npy_intp out_h, out_w;
    int channels_first;
} geometry;

/* The sizes of g from the dims of an image batch, (N, H, W, C) or (N, C, H, W). */
static inline void shape_from_dims(geometry *g, const npy_intp *d, int channels_first)
{
    g->channels_first = channels_first;
    g->N = d[0];
    if (channels_first) {
        g->C = d[1];
        g->H = d[2];
        g->W = d[3];
    } else {
        g->H = d[1];
        g->W = d[2];
        g->C = d[3];
    }
}

/* The window and its placement from n consecutive integer arguments: kh, kw (named as `window`
 * says), then, if n > 2, sh, sw and the four pads. Dilation is 1 unless set after. */
static inline int parse_window(PyObject *const *args, int n, geometry *g, const char *func,
                               int pool)
{
    static const char *const conv_names[] = {"kh",      "kw",         "sh",       "sw",
                                             "pad_top", "pad_bottom", "pad_left", "pad_right"};
    static const char *const pool_names[] = {"ph",      "pw",         "sh",       "sw",
                                             "pad_top", "pad_bottom", "pad_left", "pad_right"};
    npy_intp *fields[] = {&g->kh, &g->kw, &g->sh, &g->sw, &g->pt, &g->pb, &g->pl, &g->pr};
    for (int i = 0; i < n; i++) {
        Py_ssize_t v;
        if (bnpy_parse_ssize(args[i], func, (pool ? pool_names : conv_names)[i], &v) < 0)
            return -1;
        *fields[i] = v;
    }
    g->dh = g->dw = 1;
    return 0;
}

/* The optional trailing (out, dh, dw) of im2col and col2im, from args[first] on. */
static inline int parse_out_dilation(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t first,
                                     geometry *g, const char *func, PyObject **out)
{
    Py_ssize_t dh = 1, dw = 1;
    *out = nargs > first ? args[first] : Py_None;
    if ((nargs > first + 1 && bnpy_parse_ssize(args[first + 1], func, "dh", &dh) < 0) ||
        (nargs > first + 2 && bnpy_parse_ssize(args[first + 2], func, "dw", &dw) < 0))
        return -1;
    g->dh = dh;
    g->dw = dw;
    return 0;
}

/* Validate window, strides and padding, and compute the output size. pool != 0 also requires each
 * pad to be smaller than the window (every pooling window must hold a real cell). */
static inline int check_geometry(geometry *g, const char *func, int pool)
{
    const char *window = pool ? "pool_size" : "kernel size";
    if (g->kh < 1 || g->kw < 1) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be >= 1, got (%zd, %zd)", func, window,
                     (Py_ssize_t)g->kh, (Py_ssize_t)g->kw);
        return -1;
    }
    if (g->dh < 1 || g->dw < 1 || (double)(g->kh - 1) * (double)g->dh >= 0x1p60 ||
        (double)(g->kw - 1) * (double)g->dw >= 0x1p60) {
        PyErr_Format(PyExc_ValueError,
                     "%s: dilation must be >= 1 and (kernel size - 1) * dilation "
                     "below 2**60, got (%zd, %zd) for a kernel of (%zd, %zd)",
                     func, (Py_ssize_t)g->dh, (Py_ssize_t)g->dw, (Py_ssize_t)g->kh,
                     (Py_ssize_t)g->kw);
        return -1;
    }
    /* The window's extent: the kernel's taps spread dh (dw) apart. */
    const npy_intp ekh = (g->kh - 1) * g->dh + 1, ekw = (g->kw - 1) * g->dw + 1;
    if (g->sh < 1 || g->sw < 1) {
        PyErr_Format(PyExc_ValueError, "%s: strides must be >= 1, got (%zd, %zd)", func,
                     (Py_ssize_t)g->sh, (Py_ssize_t)g->sw);
        return -1;
    }
    if (g->pt < 0 || g->pb < 0 || g->pl < 0 || g->pr < 0) {
        PyErr_Format(PyExc_ValueError, "%s: padding must be >= 0, got ((%zd, %zd), (%zd, %zd))",
                     func, (Py_ssize_t)g->pt, (Py_ssize_t)g->pb, (Py_ssize_t)g->pl,
                     (Py_ssize_t)g->pr);
        return -1;
    }
    if (pool && (g->pt >= g->kh || g->pb >= g->kh || g->pl >= g->kw || g->pr >= g->kw)) {
        PyErr_Format(
            PyExc_ValueError,
            "%s: padding ((%zd, %zd), (%zd, %zd)) must be smaller than pool_size (%zd, %zd)", func,
            (Py_ssize_t)g->pt, (Py_ssize_t)g->pb, (Py_ssize_t)g->pl, (Py_ssize_t)g->pr,
            (Py_ssize_t)g->kh, (Py_ssize_t)g->kw);
        return -1;
    }
    if (pool && (g->H == 0 || g->W == 0)) { /* no window would hold a real cell (padding only) */
        PyErr_Format(PyExc_ValueError, "%s: the image plane (%zd, %zd) is empty: nothing to pool",
                     func, (Py_ssize_t)g->H, (Py_ssize_t)g->W);
        return -1;
    }
    /* Every index product below (N*out_h*out_w, times kh*kw*C for a column matrix) must fit in
     * npy_intp: checked in double first, so a huge pad or stride cannot wrap a shape check around
     * to a value that happens to match (e.g. 16 * (2**62 + 3) == 48 mod 2**64). */
    if ((double)g->H + (double)g->pt + (double)g->pb >= 0x1p60 ||
        (double)g->W + (double)g->pl + (double)g->pr >= 0x1p60 ||
        fmax((double)g->N, 1.0) * fmax((double)g->C, 1.0) * (double)g->kh * (double)g->kw *
                ((double)g->H + (double)g->pt + (double)g->pb) *
                ((double)g->W + (double)g->pl + (double)g->pr) >=
            0x1p60) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the geometry is too large (padding ((%zd, %zd), (%zd, %zd)), %s "
                     "(%zd, %zd) over an input of %zd x %zd)",
                     func, (Py_ssize_t)g->pt, (Py_ssize_t)g->pb, (Py_ssize_t)g->pl,
                     (Py_ssize_t)g->pr, window, (Py_ssize_t)g->kh, (Py_ssize_t)g->kw,
                     (Py_ssize_t)g->H, (Py_ssize_t)g->W);
        return -1;
    }
    if (g->H + g->pt + g->pb < ekh || g->W + g->pl + g->pr < ekw) {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s%s (%zd, %zd) is larger than the padded input (%zd, %zd)", func,
                     ekh != g->kh || ekw != g->kw ? "dilated " : "", window, (Py_ssize_t)ekh,
                     (Py_ssize_t)ekw, (Py_ssize_t)(g->H + g->pt + g->pb),
                     (Py_ssize_t)(g->W + g->pl + g->pr));
        return -1;
    }
    g->out_h = (g->H + g->pt + g->pb - ekh) / g->sh + 1;
    g->out_w = (g->W + g->pl + g->pr - ekw) / g->sw + 1;
    if (pool && (double)g->H * (double)g->W >= 2147483647.0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: an image plane of %zd x %zd cells is too large (argmax is int32)", func,
                     (Py_ssize_t)g->H, (Py_ssize_t)g->W);
        return -1;
    }
    return 0;
}

/* dims of an image-batch array in g's layout with the given spatial size. */
static inline void image_dims(const geometry *g, npy_intp h, npy_intp w, npy_intp c, npy_intp *dims)
{
    dims[0] = g->N;
    if (g->channels_first) {
        dims[1] = c;
        dims[2] = h;
        dims[3] = w;
    } else {
        dims[1] = h;
        dims[2] = w;
        dims[3] = c;
    }
}

static inline int check_rank(PyArrayObject *a, int ndim, const char *func, const char *arg,
                             const char *what)
{
    if (PyArray_NDIM(a) != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be a %d-D array %s, got %d-D", func, arg, ndim,
                     what, PyArray_NDIM(a));
        return -1;
    }
    return 0;
}

/* An input (bnpy_input_array) that must have rank ndim (`what` names the layout in the error).
 * New reference, or NULL with an error. */
static inline PyArrayObject *input_with_rank(PyObject *obj, int typenum, int ndim, const char *func,
                                             const char *arg, const char *what)
{
    PyArrayObject *a = bnpy_input_array(obj, typenum, func, arg);
    if (a != NULL && check_rank(a, ndim, func, arg, what) < 0)
        Py_CLEAR(a);
    return a;
}

/* obj as an array for checking its shape before anything is copied (an ndarray as it is, any
 * strides; a list converted), of the call's dtype (bnpy_check_dtype) and rank ndim. New reference
 * or NULL with an error. Convert it with bnpy_input_array once every check has passed: a huge
 * strided view with a bad argument beside it is then refused without allocating its copy. */
static inline PyArrayObject *view_with_rank(PyObject *obj, int typenum, int ndim, const char *func,
                                            const char *arg, const char *what)
{
    if (bnpy_check_dtype(obj, typenum, func, arg) < 0)
        return NULL;
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_O(obj);
    if (a != NULL && check_rank(a, ndim, func, arg, what) < 0)
        Py_CLEAR(a);
    return a;
}

/* A 4-item shape tuple of non-negative ints. */
static inline int parse_shape4(PyObject *obj, npy_intp *d, const char *func, const char *arg)
{
    /* the length first: PySequence_Fast would copy a huge sequence (or array) into a list */
    Py_ssize_t len = PySequence_Check(obj) ? PySequence_Size(obj) : -1;
    PyObject *seq = len == 4 ? PySequence_Fast(obj, "") : NULL;
    if (seq == NULL || PySequence_Fast_GET_SIZE(seq) != 4) {
        Py_XDECREF(seq);
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: %s must be a 4-item shape tuple, got %.200R", func, arg,
                     obj);
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        Py_ssize_t v = PyNumber_AsSsize_t(PySequence_Fast_GET_ITEM(seq, i), PyExc_OverflowError);
        if ((v == -1 && PyErr_Occurred()) || v < 0) {
            Py_DECREF(seq);
            PyErr_Clear();
            PyErr_Format(PyExc_ValueError, "%s: %s must hold 4 non-negative ints, got %.200R", func,
                         arg, obj);
            return -1;
        }
        d[i] = v;
    }
    Py_DECREF(seq);
    return 0;
}

/* An int or a pair of ints (any index-like objects but bools) into out[0], out[1]. TypeError
 * "func: arg must be an int or a pair of ints, got ..." for anything else; ValueError for an int
 * beyond Py_ssize_t. The length is asked first: a huge sequence is never copied. */
static inline int parse_pair(PyObject *obj, const char *func, const char *arg, npy_intp *out)
{
    Py_ssize_t v[2];
    if (!PyBool_Check(obj) && PyIndex_Check(obj) && !PySequence_Check(obj)) {
        if (bnpy_parse_ssize(obj, func, arg, &v[0]) < 0)
            return -1;
        out[0] = out[1] = v[0];
        return 0;
    }
    Py_ssize_t len = PySequence_Check(obj) && !PyUnicode_Check(obj) ? PySequence_Size(obj) : -1;
    PyErr_Clear();
    for (Py_ssize_t i = 0; len == 2 && i < 2; i++) {
        PyObject *item = PySequence_GetItem(obj, i);
        int ok = item != NULL && !PyBool_Check(item) && PyIndex_Check(item) &&
                 !PySequence_Check(item) && bnpy_parse_ssize(item, func, arg, &v[i]) == 0;
        Py_XDECREF(item);
        if (!ok && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_ValueError))
            return -1; /* an int too large: bnpy_parse_ssize said so */
        if (!ok)
            len = -1;
    }
    if (len != 2) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be an int or a pair of ints, got %.200R", func,
                     arg, obj);
        return -1;
    }
    out[0] = v[0];
    out[1] = v[1];
    return 0;
}

/* TensorFlow's 'same' padding along one axis of n cells, window extent k, stride s: (before, after)
 * with out = ceil(n / s) and before = total // 2 of total = max((out - 1)*s + k - n, 0). */
static inline void same_pads(npy_intp n, npy_intp k, npy_intp s, npy_intp *before, npy_intp *after)
{
    const npy_intp out = n / s + (n % s != 0);
    const npy_intp total = (out - 1) * s + k - n > 0 ? (out - 1) * s + k - n : 0;
    *before = total / 2;
    *after = total - total / 2;
}

/* The padding argument: 'valid' or 'same' (any case) into *mode (0 or 1, the pads then computed
 * by the caller), or, when explicit_ok, ((top, bottom), (left, right)) of ints into g's pads
 * (*mode = -1). */
static inline int parse_padding(PyObject *obj, int explicit_ok, const char *func, geometry *g,
                                int *mode)
{
    if (PyUnicode_Check(obj)) {
        PyObject *lower = PyObject_CallMethod(obj, "lower", NULL);
        if (lower == NULL)
            return -1;
        *mode = PyUnicode_CompareWithASCIIString(lower, "valid") == 0  ? 0
                : PyUnicode_CompareWithASCIIString(lower, "same") == 0 ? 1
                                                                       : -2;
        Py_DECREF(lower);
    } else if (explicit_ok) {
        PyObject *rows = NULL, *cols = NULL;
        npy_intp p[2][2];
        *mode = -2;
        /* two pairs: each row a sequence itself (an int would pass parse_pair as (v, v)) */
        if (PySequence_Check(obj) && !PyUnicode_Check(obj) && PySequence_Size(obj) == 2 &&
            (rows = PySequence_GetItem(obj, 0)) != NULL && PySequence_Check(rows) &&
            (cols = PySequence_GetItem(obj, 1)) != NULL && PySequence_Check(cols) &&
            parse_pair(rows, func, "padding", p[0]) == 0 &&
            parse_pair(cols, func, "padding", p[1]) == 0) {
            g->pt = p[0][0];
            g->pb = p[0][1];
            g->pl = p[1][0];
            g->pr = p[1][1];
            *mode = -1;
        }
        bnpy_release(2, rows, cols);
        if (*mode == -2 && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_ValueError))
            return -1; /* a pad beyond Py_ssize_t: parse_pair said so */
    } else {
        *mode = -2;
    }
    if (*mode != -2)
        return 0;
    PyErr_Clear();
    PyErr_Format(PyExc_ValueError, "%s: padding must be %s, got %.200R", func,
                 explicit_ok ? "'valid', 'same' or ((top, bottom), (left, right))"
                             : "'valid' or 'same'",
                 obj);
    return -1;
}

/* Places a window whose size (kh, kw and the dilation dh, dw) is set in g over g's image, from
 * the arguments as Keras gives them: strides an int or a pair >= 1 (None, for pooling: the
 * window's size), padding 'valid', 'same' (TensorFlow's rule over the window's extent) or, for a
 * convolution (pool == 0), ((top, bottom), (left, right)); then check_geometry. 0, or -1 with an
 * error naming func. */
static inline int place_window(geometry *g, PyObject *strides_obj, PyObject *padding_obj, int pool,
                               const char *func)
{
    npy_intp strides[2] = {g->kh, g->kw};
    int mode;
    if ((strides_obj != Py_None || !pool) && parse_pair(strides_obj, func, "strides", strides) < 0)
        return -1;
    if (parse_padding(padding_obj, !pool, func, g, &mode) < 0)
        return -1;
    if (strides[0] < 1 || strides[1] < 1) {
        PyErr_Format(PyExc_ValueError, "%s: strides must be >= 1, got (%zd, %zd)", func,
                     (Py_ssize_t)strides[0], (Py_ssize_t)strides[1]);
        return -1;
    }
    g->sh = strides[0];
    g->sw = strides[1];
    if (mode >= 0) /* 'valid' or 'same' */
        g->pt = g->pb = g->pl = g->pr = 0;
    /* 'same' needs the window's extent: unless it is too large to compute (check_geometry then
     * says so, for the zero pads left here) */
    if (mode == 1 && (double)(g->kh - 1) * (double)g->dh < 0x1p60 &&
        (double)(g->kw - 1) * (double)g->dw < 0x1p60) {
        same_pads(g->H, (g->kh - 1) * g->dh + 1, g->sh, &g->pt, &g->pb);
        same_pads(g->W, (g->kw - 1) * g->dw + 1, g->sw, &g->pl, &g->pr);
    }
    return check_geometry(g, func, pool);
}

/* The head of a *_setup call (conv2d_setup, pool2d_setup): exactly n arguments, the first the
 * public function's name, which every error of the call names. That name, or NULL with
 * TypeError. */
static inline const char *parse_caller(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t n,
                                       const char *setup)
{
    if (bnpy_check_nargs(nargs, n, n, setup) < 0)
        return NULL;
    const char *func = PyUnicode_Check(args[0]) ? PyUnicode_AsUTF8(args[0]) : NULL;
    if (func == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "%s: caller must be a str", setup);
    return func;
}

static inline int check_size(double elements, const char *func, const char *what)
{
    if (elements * 8.0 >= (double)NPY_MAX_INTP) {
        PyErr_Format(PyExc_ValueError, "%s: %s would be too large", func, what);
        return -1;
    }
    return 0;
}

#endif /* BNPY_PY_WINDOW_H */
