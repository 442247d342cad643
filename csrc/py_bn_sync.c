/* py_bn_sync.c: CPython/NumPy glue of the synchronized batch-norm phases (csrc/bn_sync.c).
 *
 * Positional arguments (METH_FASTCALL; bnpy.ops.batchnorm gives the keywords). x, dy, gamma, beta
 * and out share the call's dtype (float32 or float64); every per-channel statistic or sum that
 * crosses processes is float64 whatever that dtype is. Every argument is checked before anything
 * is written; the GIL is released around the kernels.
 */
#include "glue.h" /* Python.h first */

#include <math.h>

/* ---- small helpers (the shared ones of the batch-norm glue are in glue.c) ------------------- */

/* An array of typenum with exactly the dims given (ndim of them), or None when optional
 * (*out = NULL). 0, or -1 with an error. */
static int sync_shaped(PyObject *obj, int typenum, int ndim, const npy_intp *dims, int optional,
                       const char *func, const char *arg, PyArrayObject **out)
{
    *out = NULL;
    if (obj == Py_None && optional)
        return 0;
    PyArrayObject *a = bnpy_input_array(obj, typenum, func, arg);
    if (a == NULL)
        return -1;
    int ok = PyArray_NDIM(a) == ndim;
    for (int d = 0; ok && d < ndim; d++)
        ok = PyArray_DIM(a, d) == dims[d];
    if (!ok) {
        PyObject *got = bnpy_shape_tuple(a);
        PyObject *want = PyTuple_New(ndim);
        for (int d = 0; want != NULL && d < ndim; d++)
            PyTuple_SET_ITEM(want, d, PyLong_FromSsize_t(dims[d]));
        if (got != NULL && want != NULL)
            PyErr_Format(PyExc_ValueError, "%s: %s must have shape %R, got shape %R", func, arg,
                         want, got);
        Py_DECREF(a);
        Py_XDECREF(got);
        Py_XDECREF(want);
        return -1;
    }
    *out = a;
    return 0;
}

/* A finite real number >= 0 (epsilon, count). */
static int sync_nonnegative(PyObject *obj, const char *func, const char *arg, double *out)
{
    return bnpy_parse_real(obj, 0.0, INFINITY, func, arg, out);
}

/* x (and dy when given) converted, of one shape; the (outer, C, inner) split at args[axis_at]. */
static int sync_inputs(PyObject *const *args, int dy_at, int x_at, int axis_at, int typenum,
                       const char *func, PyArrayObject **dy, PyArrayObject **x, npy_intp *outer,
                       npy_intp *channels, npy_intp *inner)
{
    int axis;
    if ((dy_at >= 0 && (*dy = bnpy_data_input(args[dy_at], typenum, func, "dy")) == NULL) ||
        (*x = bnpy_data_input(args[x_at], typenum, func, "x")) == NULL ||
        (dy_at >= 0 && bnpy_check_same_shape(*x, "x", *dy, "dy", func) < 0) ||
        bnpy_parse_axis(args[axis_at], PyArray_NDIM(*x), func, &axis) < 0)
        return -1;
    bnpy_split_at_axis(*x, axis, outer, channels, inner);
    return 0;
}

/* Two new float64 vectors of `channels` values into *a and *b: 0, or -1 with the error set (what
 * was made is in *a and *b either way, for the caller to release). */
static int sync_new_vectors(npy_intp channels, PyArrayObject **a, PyArrayObject **b)
{
    *a = (PyArrayObject *)PyArray_EMPTY(1, &channels, NPY_DOUBLE, 0);
    *b = (PyArrayObject *)PyArray_EMPTY(1, &channels, NPY_DOUBLE, 0);
    return *a != NULL && *b != NULL ? 0 : -1;
}

#define DATA(a) ((a) != NULL ? PyArray_DATA(a) : NULL)

/* ---- batch_norm_local_stats(x, axis) -> (count, mean, m2) ------------------------------------ */

static PyObject *batch_norm_local_stats(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_norm_local_stats";
    PyArrayObject *x = NULL, *mean = NULL, *m2 = NULL;
    PyObject *result = NULL;
    npy_intp outer, channels, inner;
    int typenum, rc;
    static const char *const arrays[] = {"x"};
    if (bnpy_check_nargs(nargs, 2, 2, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 1, func)) < 0 ||
        sync_inputs(args, -1, 0, 1, typenum, func, NULL, &x, &outer, &channels, &inner) < 0)
        goto fail;
    if (sync_new_vectors(channels, &mean, &m2) < 0)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_local_stats, PyArray_DATA(mean), PyArray_DATA(m2),
                            PyArray_DATA(x), outer, channels, inner);
    Py_END_ALLOW_THREADS
    if (bnpy_kernel_status(rc) == 0)
        result = Py_BuildValue("nOO", (Py_ssize_t)(outer * inner), mean, m2);
fail:
    bnpy_release(3, x, mean, m2);
    return result;
}

/* ---- batch_norm_merge_stats(counts, means, m2s) -> (count, mean, var) ------------------------ */

static PyObject *batch_norm_merge_stats(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_norm_merge_stats";
    PyArrayObject *counts = NULL, *means = NULL, *m2s = NULL, *mean = NULL, *var = NULL;
    PyObject *result = NULL;
    double count;
    if (bnpy_check_nargs(nargs, 3, 3, func) < 0 ||
        (counts = bnpy_input_array(args[0], NPY_DOUBLE, func, "counts")) == NULL)
        goto fail;
    if (PyArray_NDIM(counts) != 1) {
        PyErr_Format(PyExc_ValueError, "%s: counts must be 1-d (one count per shard), got %d dims",
                     func, PyArray_NDIM(counts));
        goto fail;
    }
    npy_intp parts = PyArray_DIM(counts, 0);
    const double *c = PyArray_DATA(counts);
    for (npy_intp r = 0; r < parts; r++)
        if (!(c[r] >= 0.0 && isfinite(c[r]))) {
            PyErr_Format(PyExc_ValueError, "%s: counts must be finite and >= 0, got %R", func,
                         args[0]);
            goto fail;
        }
    if ((means = bnpy_input_array(args[1], NPY_DOUBLE, func, "means")) == NULL)
        goto fail;
    if (PyArray_NDIM(means) != 2 || PyArray_DIM(means, 0) != parts) {
        PyObject *got = bnpy_shape_tuple(means);
        if (got != NULL)
            PyErr_Format(PyExc_ValueError,
                         "%s: means must have shape (%zd, channels) (a row per count), got %R",
                         func, (Py_ssize_t)parts, got);
        Py_XDECREF(got);
        goto fail;
    }
    npy_intp channels = PyArray_DIM(means, 1);
    if (sync_shaped(args[2], NPY_DOUBLE, 2, PyArray_DIMS(means), 0, func, "m2s", &m2s) < 0)
        goto fail;
    if (sync_new_vectors(channels, &mean, &var) < 0)
        goto fail;
    bnpy_bn_merge_stats(&count, PyArray_DATA(mean), PyArray_DATA(var), c, PyArray_DATA(means),
                        PyArray_DATA(m2s), parts, channels);
    PyObject *count_obj = PyLong_FromDouble(count);
    if (count_obj == NULL)
        goto fail;
    result = Py_BuildValue("NOO", count_obj, mean, var);
fail:
    bnpy_release(5, counts, means, m2s, mean, var);
    return result;
}

/* ---- batch_norm_normalize(x, gamma, beta, mean, var, axis, epsilon, out) -> y ---------------- */

static PyObject *batch_norm_normalize(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_norm_normalize";
    PyArrayObject *x = NULL, *gamma = NULL, *beta = NULL, *mean = NULL, *var = NULL, *y = NULL;
    PyObject *result = NULL;
    npy_intp outer, channels, inner;
    double epsilon;
    int typenum, rc;
    static const char *const arrays[] = {"x", "gamma", "beta"};
    if (bnpy_check_nargs(nargs, 8, 8, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 3, func)) < 0 ||
        sync_inputs(args, -1, 0, 5, typenum, func, NULL, &x, &outer, &channels, &inner) < 0 ||
        sync_shaped(args[1], typenum, 1, &channels, 1, func, "gamma", &gamma) < 0 ||
        sync_shaped(args[2], typenum, 1, &channels, 1, func, "beta", &beta) < 0 ||
        sync_shaped(args[3], NPY_DOUBLE, 1, &channels, 0, func, "mean", &mean) < 0 ||
        sync_shaped(args[4], NPY_DOUBLE, 1, &channels, 0, func, "var", &var) < 0 ||
        sync_nonnegative(args[6], func, "epsilon", &epsilon) < 0 ||
        (y = bnpy_output_like(args[7], x, (PyArrayObject *const[]){x, gamma, beta}, arrays, 3, 1,
                              func)) == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_normalize, PyArray_DATA(y), PyArray_DATA(x),
                            DATA(gamma), DATA(beta), PyArray_DATA(mean), PyArray_DATA(var), outer,
                            channels, inner, epsilon);
    Py_END_ALLOW_THREADS
    result = bnpy_result(rc, &y);
fail:
    bnpy_release(6, x, gamma, beta, mean, var, y);
    return result;
}

/* ---- batch_norm_grad_sums(dy, x, mean, axis) -> (sum_dy, sum_dyxc) --------------------------- */

static PyObject *batch_norm_grad_sums(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_norm_grad_sums";
    PyArrayObject *dy = NULL, *x = NULL, *mean = NULL, *sum_dy = NULL, *sum_dyxc = NULL;
    PyObject *result = NULL;
    npy_intp outer, channels, inner;
    int typenum, rc;
    static const char *const arrays[] = {"dy", "x"};
    if (bnpy_check_nargs(nargs, 4, 4, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 2, func)) < 0 ||
        sync_inputs(args, 0, 1, 3, typenum, func, &dy, &x, &outer, &channels, &inner) < 0 ||
        sync_shaped(args[2], NPY_DOUBLE, 1, &channels, 0, func, "mean", &mean) < 0)
        goto fail;
    if (sync_new_vectors(channels, &sum_dy, &sum_dyxc) < 0)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_grad_sums, PyArray_DATA(sum_dy),
                            PyArray_DATA(sum_dyxc), PyArray_DATA(dy), PyArray_DATA(x),
                            PyArray_DATA(mean), outer, channels, inner);
    Py_END_ALLOW_THREADS
    result = bnpy_results(rc, 2, sum_dy, sum_dyxc);
fail:
    bnpy_release(5, dy, x, mean, sum_dy, sum_dyxc);
    return result;
}

/* ---- batch_norm_backward_apply(dy, x, gamma, mean, var, sum_dy, sum_dyxc, count, axis,
 *      epsilon, out) -> dx ----------------------------------------------------------------- */

static PyObject *batch_norm_backward_apply(PyObject *module, PyObject *const *args,
                                           Py_ssize_t nargs)
{
    static const char *func = "batch_norm_backward_apply";
    PyArrayObject *dy = NULL, *x = NULL, *gamma = NULL, *mean = NULL, *var = NULL, *sum_dy = NULL,
                  *sum_dyxc = NULL, *dx = NULL;
    PyObject *result = NULL;
    npy_intp outer, channels, inner;
    double count, epsilon;
    int typenum, rc;
    static const char *const arrays[] = {"dy", "x", "gamma"};
    if (bnpy_check_nargs(nargs, 11, 11, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 3, func)) < 0 ||
        sync_inputs(args, 0, 1, 8, typenum, func, &dy, &x, &outer, &channels, &inner) < 0 ||
        sync_shaped(args[2], typenum, 1, &channels, 1, func, "gamma", &gamma) < 0 ||
        sync_shaped(args[3], NPY_DOUBLE, 1, &channels, 0, func, "mean", &mean) < 0 ||
        sync_shaped(args[4], NPY_DOUBLE, 1, &channels, 0, func, "var", &var) < 0 ||
        sync_shaped(args[5], NPY_DOUBLE, 1, &channels, 0, func, "sum_dy", &sum_dy) < 0 ||
        sync_shaped(args[6], NPY_DOUBLE, 1, &channels, 0, func, "sum_dyxc", &sum_dyxc) < 0 ||
        sync_nonnegative(args[7], func, "count", &count) < 0 ||
        sync_nonnegative(args[9], func, "epsilon", &epsilon) < 0)
        goto fail;
    if (count < (double)(outer * inner)) {
        PyErr_Format(PyExc_ValueError,
                     "%s: count (values per channel in the whole batch) must be at least this "
                     "shard's %zd, got %R",
                     func, (Py_ssize_t)(outer * inner), args[7]);
        goto fail;
    }
    dx = bnpy_output_like(args[10], x, (PyArrayObject *const[]){dy, x, gamma}, arrays, 3, 2, func);
    if (dx == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_backward_apply, PyArray_DATA(dx), PyArray_DATA(dy),
                            PyArray_DATA(x), DATA(gamma), PyArray_DATA(mean), PyArray_DATA(var),
                            PyArray_DATA(sum_dy), PyArray_DATA(sum_dyxc), count, outer, channels,
                            inner, epsilon);
    Py_END_ALLOW_THREADS
    result = bnpy_result(rc, &dx);
fail:
    bnpy_release(8, dy, x, gamma, mean, var, sum_dy, sum_dyxc, dx);
    return result;
}

PyMethodDef bnpy_bn_sync_methods[] = {
    BNPY_FASTCALL("batch_norm_local_stats", batch_norm_local_stats,
                  "batch_norm_local_stats(x, axis, /)\n--\n\n"
                  "One shard's (count, mean, m2) in float64. Use bnpy.ops.batch_norm_local_stats."),
    BNPY_FASTCALL(
        "batch_norm_merge_stats", batch_norm_merge_stats,
        "batch_norm_merge_stats(counts, means, m2s, /)\n--\n\n"
        "Chan's merge in order: (count, mean, var). Use bnpy.ops.batch_norm_merge_stats."),
    BNPY_FASTCALL("batch_norm_normalize", batch_norm_normalize,
                  "batch_norm_normalize(x, gamma, beta, mean, var, axis, epsilon, out, /)\n--\n\n"
                  "Normalization with float64 statistics: y. Use bnpy.ops.batch_norm_normalize."),
    BNPY_FASTCALL("batch_norm_grad_sums", batch_norm_grad_sums,
                  "batch_norm_grad_sums(dy, x, mean, axis, /)\n--\n\n"
                  "(sum_dy, sum_dyxc) in float64. Use bnpy.ops.batch_norm_grad_sums."),
    BNPY_FASTCALL(
        "batch_norm_backward_apply", batch_norm_backward_apply,
        "batch_norm_backward_apply(dy, x, gamma, mean, var, sum_dy, sum_dyxc, count, axis, "
        "epsilon, out, /)\n--\n\n"
        "dx from the whole batch's statistics and sums. Use bnpy.ops.batch_norm_backward_apply."),
    {NULL, NULL, 0, NULL},
};
