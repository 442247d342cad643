/* py_batchnorm.c: CPython/NumPy glue of the batchnorm kernels (csrc/batchnorm.c).
 *
 * Each function takes its arguments positionally (METH_FASTCALL: bnpy.ops.batchnorm gives the
 * keywords), converts the inputs once to C-contiguous native float32/float64, validates every
 * shape, dtype, scalar and aliasing rule before anything is written, releases the GIL around the
 * kernel, and has one exit path (`fail:`).
 */
#include "glue.h" /* Python.h first */

#include <math.h>

#define DATA(a) ((a) != NULL ? PyArray_DATA(a) : NULL)

/* ---- the two forwards -------------------------------------------------------------------------
 *   batch_norm_forward(x, gamma, beta, axis, epsilon, out) -> (y, mean, var)   (batch statistics)
 *   batch_norm_inference(x, gamma, beta, mean, var, axis, epsilon, out) -> y   (given statistics) */

static PyObject *forward_common(PyObject *const *args, Py_ssize_t nargs, const char *func,
                                int training)
{
    static const char *const names[] = {"x", "gamma", "beta", "mean", "var"};
    PyArrayObject *x = NULL, *gamma = NULL, *beta = NULL, *mean = NULL, *var = NULL, *y = NULL;
    PyObject *result = NULL;
    bnpy_channel_layout L;
    const int n_arrays = training ? 3 : 5; /* training computes mean and var */
    int rc;

    if (bnpy_channel_call(args, nargs, n_arrays + 3, names, n_arrays, n_arrays, func, &L, &x) < 0 ||
        bnpy_channel_vectors(args + 1, names + 1, n_arrays - 1, 0x3, L.typenum, L.channels, func,
                             &gamma, &beta, &mean, &var) < 0)
        goto fail;
    if (training && L.outer * L.inner == 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: x has no values per channel (shape with a zero outside axis %d): the "
                     "batch statistics are undefined",
                     func, L.axis);
        goto fail;
    }
    /* out may be x itself (in place), never a parameter or statistic (NULL ones are skipped) */
    if ((y = bnpy_output_like(args[n_arrays + 2], x,
                              (PyArrayObject *const[]){x, gamma, beta, mean, var}, names, 5, 1,
                              func)) == NULL)
        goto fail;
    if (training &&
        ((mean = (PyArrayObject *)PyArray_EMPTY(1, &L.channels, L.typenum, 0)) == NULL ||
         (var = (PyArrayObject *)PyArray_EMPTY(1, &L.channels, L.typenum, 0)) == NULL))
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    if (training)
        rc = BNPY_CALL_FOR_TYPE(L.typenum, bnpy_bn_forward, PyArray_DATA(y), PyArray_DATA(mean),
                                PyArray_DATA(var), PyArray_DATA(x), DATA(gamma), DATA(beta),
                                L.outer, L.channels, L.inner, L.epsilon);
    else
        rc = BNPY_CALL_FOR_TYPE(L.typenum, bnpy_bn_inference, PyArray_DATA(y), PyArray_DATA(x),
                                DATA(gamma), DATA(beta), PyArray_DATA(mean), PyArray_DATA(var),
                                L.outer, L.channels, L.inner, L.epsilon);
    Py_END_ALLOW_THREADS
    result = training ? bnpy_results(rc, 3, y, mean, var) : bnpy_result(rc, &y);
fail:
    bnpy_release(6, x, gamma, beta, mean, var, y);
    return result;
}

static PyObject *batch_norm_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return forward_common(args, nargs, "batch_norm_forward", 1);
}

static PyObject *batch_norm_inference(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return forward_common(args, nargs, "batch_norm_inference", 0);
}

/* ---- the two backwards: (dy, x, gamma, mean, var, axis, epsilon, out) -> (dx, dgamma, dbeta) --- */

static PyObject *backward_common(PyObject *const *args, Py_ssize_t nargs, const char *func,
                                 int training)
{
    static const char *const names[] = {"dy", "x", "gamma", "mean", "var"};
    PyArrayObject *dy = NULL, *x = NULL, *gamma = NULL, *mean = NULL, *var = NULL, *dx = NULL,
                  *dgamma = NULL, *dbeta = NULL;
    PyObject *result = NULL;
    bnpy_channel_layout L;
    int rc;

    /* the layout comes from dy, which x must match */
    if (bnpy_channel_call(args, nargs, 8, names, 5, 5, func, &L, &dy) < 0 ||
        (x = bnpy_data_input(args[1], L.typenum, func, "x")) == NULL)
        goto fail;
    if (bnpy_check_same_shape(x, "x", dy, "dy", func) < 0)
        goto fail;
    if (bnpy_channel_vectors(args + 2, names + 2, 3, 0x1, L.typenum, L.channels, func, &gamma,
                             &mean, &var) < 0 ||
        (dx = bnpy_output_like(args[7], x, (PyArrayObject *const[]){dy, x, gamma, mean, var}, names,
                               5, 2, func)) == NULL)
        goto fail;
    dgamma = (PyArrayObject *)PyArray_EMPTY(1, &L.channels, L.typenum, 0);
    dbeta = (PyArrayObject *)PyArray_EMPTY(1, &L.channels, L.typenum, 0);
    if (dgamma == NULL || dbeta == NULL)
        goto fail;

    void *outs[3] = {PyArray_DATA(dx), PyArray_DATA(dgamma), PyArray_DATA(dbeta)};
    const void *ins[5] = {PyArray_DATA(dy), PyArray_DATA(x), DATA(gamma), PyArray_DATA(mean),
                          PyArray_DATA(var)};
    Py_BEGIN_ALLOW_THREADS
    if (training)
        rc = BNPY_CALL_FOR_TYPE(L.typenum, bnpy_bn_backward, outs[0], outs[1], outs[2], ins[0],
                                ins[1], ins[2], ins[3], ins[4], L.outer, L.channels, L.inner,
                                L.epsilon);
    else
        rc = BNPY_CALL_FOR_TYPE(L.typenum, bnpy_bn_inference_backward, outs[0], outs[1], outs[2],
                                ins[0], ins[1], ins[2], ins[3], ins[4], L.outer, L.channels,
                                L.inner, L.epsilon);
    Py_END_ALLOW_THREADS
    result = bnpy_results(rc, 3, dx, dgamma, dbeta);
fail:
    bnpy_release(8, dy, x, gamma, mean, var, dx, dgamma, dbeta);
    return result;
}

static PyObject *batch_norm_backward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return backward_common(args, nargs, "batch_norm_backward", 1);
}

static PyObject *batch_norm_inference_backward(PyObject *module, PyObject *const *args,
                                               Py_ssize_t nargs)
{
    return backward_common(args, nargs, "batch_norm_inference_backward", 0);
}

/* ---- update_moving_stats(moving_mean, moving_var, mean, var, momentum, count) -> None -------- */

/* count: None (0: no correction) or an int >= 1, the values per channel of the batch. */
static int parse_count(PyObject *obj, const char *func, Py_ssize_t *count)
{
    *count = 0;
    if (obj == Py_None)
        return 0;
    if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: count must be an int or None, got %.200s", func,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (bnpy_parse_ssize(obj, func, "count", count) < 0) /* no batch has more values than bytes */
        return -1;
    if (*count < 1) {
        PyErr_Format(PyExc_ValueError,
                     "%s: count (values per channel in the batch) must be >= 1, got %zd", func,
                     *count);
        return -1;
    }
    return 0;
}

static PyObject *update_moving_stats(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "update_moving_stats";
    static const char *const names[] = {"mean", "var", "moving_var"};
    PyArrayObject *moving_mean = NULL, *moving_var = NULL, *mean = NULL, *var = NULL;
    PyObject *result = NULL;
    double momentum;
    Py_ssize_t count;
    npy_intp any_size = -1, channels;
    int typenum;

    if (bnpy_check_nargs(nargs, 6, 6, func) < 0)
        goto fail;
    if (!PyArray_Check(args[0])) {
        PyErr_Format(PyExc_TypeError,
                     "%s: moving_mean must be a numpy.ndarray (it is updated in place), got %.200s",
                     func, Py_TYPE(args[0])->tp_name);
        goto fail;
    }
    if ((typenum = bnpy_float_typenum(args[0], func, "moving_mean")) < 0 ||
        (moving_mean = bnpy_inplace_array(args[0], typenum, 1, &any_size, func, "moving_mean")) ==
            NULL)
        goto fail;
    channels = PyArray_DIM(moving_mean, 0);
    if ((moving_var = bnpy_inplace_array(args[1], typenum, 1, &channels, func, "moving_var")) ==
            NULL ||
        bnpy_channel_vectors(args + 2, names, 2, 0x0, typenum, channels, func, &mean, &var) < 0 ||
        bnpy_parse_real(args[4], 0.0, 1.0, func, "momentum", &momentum) < 0 ||
        parse_count(args[5], func, &count) < 0)
        goto fail;
    /* mean and var may be the very arrays updated (their values are read before the write) */
    if (bnpy_check_overlaps(moving_mean, "moving_mean",
                            (PyArrayObject *const[]){mean, var, moving_var}, names, 3, 2,
                            func) < 0 ||
        bnpy_check_overlaps(moving_var, "moving_var", (PyArrayObject *const[]){mean, var}, names, 2,
                            2, func) < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_update_moving_stats, PyArray_DATA(moving_mean),
                       PyArray_DATA(moving_var), PyArray_DATA(mean), PyArray_DATA(var), channels,
                       momentum, count);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
fail:
    bnpy_release(4, moving_mean, moving_var, mean, var);
    return result;
}

PyMethodDef bnpy_batchnorm_methods[] = {
    BNPY_FASTCALL(
        "batch_norm_forward", batch_norm_forward,
        "batch_norm_forward(x, gamma, beta, axis, epsilon, out, /)\n--\n\n"
        "Training-mode batch normalization: (y, mean, var). Use bnpy.ops.batch_norm_forward."),
    BNPY_FASTCALL("batch_norm_inference", batch_norm_inference,
                  "batch_norm_inference(x, gamma, beta, mean, var, axis, epsilon, out, /)\n--\n\n"
                  "Inference-mode batch normalization: y. Use bnpy.ops.batch_norm_inference."),
    BNPY_FASTCALL(
        "batch_norm_backward", batch_norm_backward,
        "batch_norm_backward(dy, x, gamma, mean, var, axis, epsilon, out, /)\n--\n\n"
        "Gradient of the training forward: (dx, dgamma, dbeta). Use bnpy.ops.batch_norm_backward."),
    BNPY_FASTCALL(
        "batch_norm_inference_backward", batch_norm_inference_backward,
        "batch_norm_inference_backward(dy, x, gamma, mean, var, axis, epsilon, out, /)\n--\n\n"
        "Gradient of the inference forward: (dx, dgamma, dbeta). "
        "Use bnpy.ops.batch_norm_inference_backward."),
    BNPY_FASTCALL(
        "update_moving_stats", update_moving_stats,
        "update_moving_stats(moving_mean, moving_var, mean, var, momentum, count, /)\n--\n\n"
        "In-place moving-statistics update. Use bnpy.ops.update_moving_stats."),
    {NULL, NULL, 0, NULL},
};
