/* py_batchnorm.c: CPython/NumPy glue of the batchnorm kernels (csrc/batchnorm.c).
 *
 * Each function takes its arguments positionally (METH_FASTCALL: bnpy.ops.batchnorm gives the
 * keywords), converts the inputs once to C-contiguous native float32/float64, validates every
 * shape, dtype, scalar and aliasing rule before anything is written, releases the GIL around the
 * kernel, and has one exit path (`fail:`).
 */
#include "glue.h" /* Python.h first */

#include <math.h>

/* ---- small helpers --------------------------------------------------------------------------- */

/* A per-channel vector: obj converted to a (C,) array of typenum. None is allowed (and gives
 * *out = NULL) when optional. 0 on success, -1 with an error set. */
static int channel_vector(PyObject *obj, int typenum, npy_intp channels, int optional,
                          const char *func, const char *arg, PyArrayObject **out)
{
    *out = NULL;
    if (obj == Py_None) {
        if (optional)
            return 0;
        PyErr_Format(PyExc_TypeError, "%s: %s must be an array of shape (%zd,), got None", func,
                     arg, (Py_ssize_t)channels);
        return -1;
    }
    PyArrayObject *a = bnpy_input_array(obj, typenum, func, arg);
    if (a == NULL)
        return -1;
    if (PyArray_NDIM(a) != 1 || PyArray_DIM(a, 0) != channels) {
        PyObject *shape = bnpy_shape_tuple(a);
        if (shape != NULL)
            PyErr_Format(PyExc_ValueError,
                         "%s: %s must have shape (%zd,) (one value per channel), got shape %R",
                         func, arg, (Py_ssize_t)channels, shape);
        Py_XDECREF(shape);
        Py_DECREF(a);
        return -1;
    }
    *out = a;
    return 0;
}

/* The channel axis of an array of rank ndim, from a Python integer. */
static int parse_axis(PyObject *obj, int ndim, const char *func, int *axis)
{
    if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: axis must be an int, got %.200s", func,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t v = PyNumber_AsSsize_t(obj, NULL); /* clamps huge values: still out of range */
    if (v == -1 && PyErr_Occurred()) {
        /* an index-like object that is no integer scalar (an array of several values) */
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: axis must be an int, got %.200s", func,
                         Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    if (v < -ndim || v >= ndim) {
        PyErr_Format(PyExc_ValueError, "%s: axis %zd is out of range for an array of rank %d", func,
                     v, ndim);
        return -1;
    }
    *axis = (int)(v < 0 ? v + ndim : v);
    return 0;
}

/* A real number in [lo, hi] (NaN is rejected; hi may be INFINITY, then the number must be finite). */
static int parse_real(PyObject *obj, double lo, double hi, const char *func, const char *arg,
                      double *out)
{
    double v = PyBool_Check(obj) ? -1.0 : PyFloat_AsDouble(obj);
    if (PyBool_Check(obj) || (v == -1.0 && PyErr_Occurred())) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be a real number, got %.200s", func, arg,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (!(v >= lo && v <= hi && isfinite(v))) {
        PyObject *lo_obj = PyFloat_FromDouble(lo), *hi_obj = PyFloat_FromDouble(hi);
        if (lo_obj != NULL && hi_obj != NULL) {
            if (isinf(hi))
                PyErr_Format(PyExc_ValueError, "%s: %s must be a finite number >= %R, got %R", func,
                             arg, lo_obj, obj);
            else
                PyErr_Format(PyExc_ValueError, "%s: %s must be in [%R, %R], got %R", func, arg,
                             lo_obj, hi_obj, obj);
        }
        bnpy_release(2, (PyObject *)lo_obj, (PyObject *)hi_obj);
        return -1;
    }
    *out = v;
    return 0;
}

/* The (outer, C, inner) view of a C-contiguous array around axis. */
static void split_at_axis(PyArrayObject *a, int axis, npy_intp *outer, npy_intp *channels,
                          npy_intp *inner)
{
    npy_intp o = 1, i = 1;
    for (int d = 0; d < axis; d++)
        o *= PyArray_DIM(a, d);
    for (int d = axis + 1; d < PyArray_NDIM(a); d++)
        i *= PyArray_DIM(a, d);
    *outer = o;
    *channels = PyArray_DIM(a, axis);
    *inner = i;
}

/* The main elementwise input (x or dy): any array of float32/float64 with at least one dim. */
static PyArrayObject *main_input(PyObject *obj, int typenum, const char *func, const char *arg)
{
    PyArrayObject *a = bnpy_input_array(obj, typenum, func, arg);
    if (a != NULL && PyArray_NDIM(a) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have at least one dimension, got a 0-d array",
                     func, arg);
        Py_CLEAR(a);
    }
    return a;
}

#define DATA(a) ((a) != NULL ? PyArray_DATA(a) : NULL)

/* ---- batch_norm_forward(x, gamma, beta, axis, epsilon, out) -> (y, mean, var) ---------------- */

static PyObject *batch_norm_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_norm_forward";
    PyArrayObject *x = NULL, *gamma = NULL, *beta = NULL, *y = NULL, *mean = NULL, *var = NULL;
    PyObject *result = NULL;
    int axis, rc;
    double epsilon;
    npy_intp outer, channels, inner;

    static const char *const arrays[] = {"x", "gamma", "beta"};
    int typenum;
    if (bnpy_check_nargs(nargs, 6, 6, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 3, func)) < 0 ||
        (x = main_input(args[0], typenum, func, "x")) == NULL)
        goto fail;
    if (parse_axis(args[3], PyArray_NDIM(x), func, &axis) < 0)
        goto fail;
    split_at_axis(x, axis, &outer, &channels, &inner);
    if (channel_vector(args[1], typenum, channels, 1, func, "gamma", &gamma) < 0 ||
        channel_vector(args[2], typenum, channels, 1, func, "beta", &beta) < 0 ||
        parse_real(args[4], 0.0, INFINITY, func, "epsilon", &epsilon) < 0)
        goto fail;
    if (outer * inner == 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: x has no values per channel (shape with a zero outside axis %d): the "
                     "batch statistics are undefined",
                     func, axis);
        goto fail;
    }
    y = bnpy_output_array(args[5], typenum, PyArray_NDIM(x), PyArray_DIMS(x), func, "out");
    if (y == NULL || bnpy_check_overlap(y, x, 1, func, "out", "x") < 0 ||
        bnpy_check_overlap(y, gamma, 0, func, "out", "gamma") < 0 ||
        bnpy_check_overlap(y, beta, 0, func, "out", "beta") < 0)
        goto fail;
    mean = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    var = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    if (mean == NULL || var == NULL)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_forward, PyArray_DATA(y), PyArray_DATA(mean),
                            PyArray_DATA(var), PyArray_DATA(x), DATA(gamma), DATA(beta), outer,
                            channels, inner, epsilon);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    result = PyTuple_Pack(3, (PyObject *)y, (PyObject *)mean, (PyObject *)var);
fail:
    bnpy_release(6, (PyObject *)x, (PyObject *)gamma, (PyObject *)beta, (PyObject *)y,
                 (PyObject *)mean, (PyObject *)var);
    return result;
}

/* ---- batch_norm_inference(x, gamma, beta, mean, var, axis, epsilon, out) -> y ----------------- */

static PyObject *batch_norm_inference(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_norm_inference";
    PyArrayObject *x = NULL, *gamma = NULL, *beta = NULL, *mean = NULL, *var = NULL, *y = NULL;
    PyObject *result = NULL;
    int axis, rc;
    double epsilon;
    npy_intp outer, channels, inner;

    static const char *const arrays[] = {"x", "gamma", "beta", "mean", "var"};
    int typenum;
    if (bnpy_check_nargs(nargs, 8, 8, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 5, func)) < 0 ||
        (x = main_input(args[0], typenum, func, "x")) == NULL)
        goto fail;
    if (parse_axis(args[5], PyArray_NDIM(x), func, &axis) < 0)
        goto fail;
    split_at_axis(x, axis, &outer, &channels, &inner);
    if (channel_vector(args[1], typenum, channels, 1, func, "gamma", &gamma) < 0 ||
        channel_vector(args[2], typenum, channels, 1, func, "beta", &beta) < 0 ||
        channel_vector(args[3], typenum, channels, 0, func, "mean", &mean) < 0 ||
        channel_vector(args[4], typenum, channels, 0, func, "var", &var) < 0 ||
        parse_real(args[6], 0.0, INFINITY, func, "epsilon", &epsilon) < 0)
        goto fail;
    y = bnpy_output_array(args[7], typenum, PyArray_NDIM(x), PyArray_DIMS(x), func, "out");
    if (y == NULL || bnpy_check_overlap(y, x, 1, func, "out", "x") < 0 ||
        bnpy_check_overlap(y, gamma, 0, func, "out", "gamma") < 0 ||
        bnpy_check_overlap(y, beta, 0, func, "out", "beta") < 0 ||
        bnpy_check_overlap(y, mean, 0, func, "out", "mean") < 0 ||
        bnpy_check_overlap(y, var, 0, func, "out", "var") < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_inference, PyArray_DATA(y), PyArray_DATA(x),
                            DATA(gamma), DATA(beta), PyArray_DATA(mean), PyArray_DATA(var), outer,
                            channels, inner, epsilon);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    result = (PyObject *)y;
    y = NULL;
fail:
    bnpy_release(6, (PyObject *)x, (PyObject *)gamma, (PyObject *)beta, (PyObject *)mean,
                 (PyObject *)var, (PyObject *)y);
    return result;
}

/* ---- the two backwards: (dy, x, gamma, mean, var, axis, epsilon, out) -> (dx, dgamma, dbeta) --- */

typedef int (*backward_f32)(float *, float *, float *, const float *, const float *, const float *,
                            const float *, const float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, double);
typedef int (*backward_f64)(double *, double *, double *, const double *, const double *,
                            const double *, const double *, const double *, ptrdiff_t, ptrdiff_t,
                            ptrdiff_t, double);

static PyObject *backward_common(PyObject *const *args, Py_ssize_t nargs, const char *func,
                                 backward_f32 kernel_f32, backward_f64 kernel_f64)
{
    PyArrayObject *dy = NULL, *x = NULL, *gamma = NULL, *mean = NULL, *var = NULL, *dx = NULL,
                  *dgamma = NULL, *dbeta = NULL;
    PyObject *result = NULL;
    int axis, rc;
    double epsilon;
    npy_intp outer, channels, inner;

    static const char *const arrays[] = {"dy", "x", "gamma", "mean", "var"};
    int typenum;
    if (bnpy_check_nargs(nargs, 8, 8, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 5, func)) < 0 ||
        (dy = main_input(args[0], typenum, func, "dy")) == NULL)
        goto fail;
    if ((x = main_input(args[1], typenum, func, "x")) == NULL)
        goto fail;
    if (!PyArray_SAMESHAPE(x, dy)) {
        PyObject *xs = bnpy_shape_tuple(x), *ds = bnpy_shape_tuple(dy);
        if (xs != NULL && ds != NULL)
            PyErr_Format(PyExc_ValueError, "%s: x must have the shape of dy %R, got shape %R", func,
                         ds, xs);
        bnpy_release(2, (PyObject *)xs, (PyObject *)ds);
        goto fail;
    }
    if (parse_axis(args[5], PyArray_NDIM(x), func, &axis) < 0)
        goto fail;
    split_at_axis(x, axis, &outer, &channels, &inner);
    if (channel_vector(args[2], typenum, channels, 1, func, "gamma", &gamma) < 0 ||
        channel_vector(args[3], typenum, channels, 0, func, "mean", &mean) < 0 ||
        channel_vector(args[4], typenum, channels, 0, func, "var", &var) < 0 ||
        parse_real(args[6], 0.0, INFINITY, func, "epsilon", &epsilon) < 0)
        goto fail;
    dx = bnpy_output_array(args[7], typenum, PyArray_NDIM(x), PyArray_DIMS(x), func, "out");
    if (dx == NULL || bnpy_check_overlap(dx, dy, 1, func, "out", "dy") < 0 ||
        bnpy_check_overlap(dx, x, 1, func, "out", "x") < 0 ||
        bnpy_check_overlap(dx, gamma, 0, func, "out", "gamma") < 0 ||
        bnpy_check_overlap(dx, mean, 0, func, "out", "mean") < 0 ||
        bnpy_check_overlap(dx, var, 0, func, "out", "var") < 0)
        goto fail;
    dgamma = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    dbeta = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    if (dgamma == NULL || dbeta == NULL)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    if (typenum == NPY_FLOAT)
        rc = kernel_f32(PyArray_DATA(dx), PyArray_DATA(dgamma), PyArray_DATA(dbeta),
                        PyArray_DATA(dy), PyArray_DATA(x), DATA(gamma), PyArray_DATA(mean),
                        PyArray_DATA(var), outer, channels, inner, epsilon);
    else
        rc = kernel_f64(PyArray_DATA(dx), PyArray_DATA(dgamma), PyArray_DATA(dbeta),
                        PyArray_DATA(dy), PyArray_DATA(x), DATA(gamma), PyArray_DATA(mean),
                        PyArray_DATA(var), outer, channels, inner, epsilon);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    result = PyTuple_Pack(3, (PyObject *)dx, (PyObject *)dgamma, (PyObject *)dbeta);
fail:
    bnpy_release(8, (PyObject *)dy, (PyObject *)x, (PyObject *)gamma, (PyObject *)mean,
                 (PyObject *)var, (PyObject *)dx, (PyObject *)dgamma, (PyObject *)dbeta);
    return result;
}

static PyObject *batch_norm_backward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return backward_common(args, nargs, "batch_norm_backward", bnpy_bn_backward_f32,
                           bnpy_bn_backward_f64);
}

static PyObject *batch_norm_inference_backward(PyObject *module, PyObject *const *args,
                                               Py_ssize_t nargs)
{
    return backward_common(args, nargs, "batch_norm_inference_backward",
                           bnpy_bn_inference_backward_f32, bnpy_bn_inference_backward_f64);
}

/* ---- update_moving_stats(moving_mean, moving_var, mean, var, momentum, count) -> None -------- */

static PyObject *update_moving_stats(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "update_moving_stats";
    PyArrayObject *moving_mean = NULL, *moving_var = NULL, *mean = NULL, *var = NULL;
    PyObject *result = NULL;
    double momentum;
    Py_ssize_t count = 0; /* 0: no correction */
    npy_intp any_size = -1, channels;

    if (bnpy_check_nargs(nargs, 6, 6, func) < 0)
        goto fail;
    if (!PyArray_Check(args[0])) {
        PyErr_Format(PyExc_TypeError,
                     "%s: moving_mean must be a numpy.ndarray (it is updated in place), got %.200s",
                     func, Py_TYPE(args[0])->tp_name);
        goto fail;
    }
    int typenum = bnpy_float_typenum(args[0], func, "moving_mean");
    if (typenum < 0 || (moving_mean = bnpy_inplace_array(args[0], typenum, 1, &any_size, func,
                                                         "moving_mean")) == NULL)
        goto fail;
    channels = PyArray_DIM(moving_mean, 0);
    if ((moving_var = bnpy_inplace_array(args[1], typenum, 1, &channels, func, "moving_var")) ==
            NULL ||
        channel_vector(args[2], typenum, channels, 0, func, "mean", &mean) < 0 ||
        channel_vector(args[3], typenum, channels, 0, func, "var", &var) < 0 ||
        parse_real(args[4], 0.0, 1.0, func, "momentum", &momentum) < 0)
        goto fail;
    if (args[5] != Py_None) {
        if (PyBool_Check(args[5]) || !PyIndex_Check(args[5])) {
            PyErr_Format(PyExc_TypeError, "%s: count must be an int or None, got %.200s", func,
                         Py_TYPE(args[5])->tp_name);
            goto fail;
        }
        count = PyNumber_AsSsize_t(args[5], PyExc_OverflowError);
        if (count == -1 && PyErr_Occurred()) {
            int overflow = PyErr_ExceptionMatches(PyExc_OverflowError);
            if (overflow || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                if (overflow) /* no batch has more values than an address space has bytes */
                    PyErr_Format(PyExc_ValueError, "%s: count is too large, got %R", func, args[5]);
                else /* an index-like object that is no integer scalar (an array) */
                    PyErr_Format(PyExc_TypeError, "%s: count must be an int or None, got %.200s",
                                 func, Py_TYPE(args[5])->tp_name);
            }
            goto fail;
        }
        if (count < 1) {
            PyErr_Format(PyExc_ValueError,
                         "%s: count (values per channel in the batch) must be >= 1, got %zd", func,
                         count);
            goto fail;
        }
    }
    if (bnpy_check_overlap(moving_mean, moving_var, 0, func, "moving_mean", "moving_var") < 0 ||
        bnpy_check_overlap(moving_mean, mean, 1, func, "moving_mean", "mean") < 0 ||
        bnpy_check_overlap(moving_mean, var, 1, func, "moving_mean", "var") < 0 ||
        bnpy_check_overlap(moving_var, mean, 1, func, "moving_var", "mean") < 0 ||
        bnpy_check_overlap(moving_var, var, 1, func, "moving_var", "var") < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_update_moving_stats, PyArray_DATA(moving_mean),
                       PyArray_DATA(moving_var), PyArray_DATA(mean), PyArray_DATA(var), channels,
                       momentum, count);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
fail:
    bnpy_release(4, (PyObject *)moving_mean, (PyObject *)moving_var, (PyObject *)mean,
                 (PyObject *)var);
    return result;
}

PyMethodDef bnpy_batchnorm_methods[] = {
    {"batch_norm_forward", (PyCFunction)(void (*)(void))batch_norm_forward, METH_FASTCALL,
     "batch_norm_forward(x, gamma, beta, axis, epsilon, out, /)\n--\n\n"
     "Training-mode batch normalization: (y, mean, var). Use bnpy.ops.batch_norm_forward."},
    {"batch_norm_inference", (PyCFunction)(void (*)(void))batch_norm_inference, METH_FASTCALL,
     "batch_norm_inference(x, gamma, beta, mean, var, axis, epsilon, out, /)\n--\n\n"
     "Inference-mode batch normalization: y. Use bnpy.ops.batch_norm_inference."},
    {"batch_norm_backward", (PyCFunction)(void (*)(void))batch_norm_backward, METH_FASTCALL,
     "batch_norm_backward(dy, x, gamma, mean, var, axis, epsilon, out, /)\n--\n\n"
     "Gradient of the training forward: (dx, dgamma, dbeta). Use bnpy.ops.batch_norm_backward."},
    {"batch_norm_inference_backward", (PyCFunction)(void (*)(void))batch_norm_inference_backward,
     METH_FASTCALL,
     "batch_norm_inference_backward(dy, x, gamma, mean, var, axis, epsilon, out, /)\n--\n\n"
     "Gradient of the inference forward: (dx, dgamma, dbeta). "
     "Use bnpy.ops.batch_norm_inference_backward."},
    {"update_moving_stats", (PyCFunction)(void (*)(void))update_moving_stats, METH_FASTCALL,
     "update_moving_stats(moving_mean, moving_var, mean, var, momentum, count, /)\n--\n\n"
     "In-place moving-statistics update. Use bnpy.ops.update_moving_stats."},
    {NULL, NULL, 0, NULL},
};
