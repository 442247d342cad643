/* py_bn_variants.c: CPython/NumPy glue of the batch-norm variants' kernels: Batch Renormalization
 * (csrc/bn_renorm.h) and ghost batches (csrc/bn_ghost.h). Same conventions as py_batchnorm.c:
 * positional arguments (METH_FASTCALL; bnpy.ops.batchnorm gives the keywords), inputs converted
 * once to C-contiguous native float32/float64, every shape, dtype, scalar and aliasing rule
 * checked before anything is written, the GIL released around the kernel, one exit path (`fail:`).
 *
 * The argument helpers below are local copies of py_batchnorm.c's static ones (same behaviour and
 * messages); they go once glue.c exports shared ones.
 */
#include "glue.h" /* Python.h first */

#include <math.h>

/* The channel axis of an array of rank ndim (negative counts from the end) into *axis. */
static int variant_parse_axis(PyObject *obj, int ndim, const char *func, int *axis)
{
    Py_ssize_t v;
    if (bnpy_parse_ssize(obj, func, "axis", &v) < 0)
        return -1;
    if (v < -ndim || v >= ndim) {
        PyErr_Format(PyExc_ValueError, "%s: axis %zd is out of range for an array of rank %d", func,
                     v, ndim);
        return -1;
    }
    *axis = (int)(v < 0 ? v + ndim : v);
    return 0;
}

/* A real number in [lo, hi] into *out: NaN is rejected, infinity only when allow_inf. */
static int variant_parse_real(PyObject *obj, double lo, double hi, int allow_inf, const char *func,
                              const char *arg, double *out)
{
    double v = PyBool_Check(obj) ? -1.0 : PyFloat_AsDouble(obj);
    if (PyBool_Check(obj) || (v == -1.0 && PyErr_Occurred())) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be a real number, got %.200s", func, arg,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    if (!(v >= lo && v <= hi && (allow_inf || isfinite(v)))) {
        PyObject *lo_obj = PyFloat_FromDouble(lo), *hi_obj = PyFloat_FromDouble(hi);
        if (lo_obj != NULL && hi_obj != NULL)
            PyErr_Format(PyExc_ValueError, "%s: %s must be a %snumber in [%R, %R], got %R", func,
                         arg, allow_inf ? "" : "finite ", lo_obj, hi_obj, obj);
        bnpy_release(2, lo_obj, hi_obj);
        return -1;
    }
    *out = v;
    return 0;
}

/* obj as a (channels,) array of typenum into *out; None gives NULL when optional. */
static int variant_channel_vector(PyObject *obj, int typenum, npy_intp channels, int optional,
                                  const char *func, const char *arg, PyArrayObject **out)
{
    *out = NULL;
    if (obj == Py_None && optional)
        return 0;
    if (obj == Py_None) {
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
        bnpy_release(2, shape, (PyObject *)a);
        return -1;
    }
    *out = a;
    return 0;
}

/* x or dy: a float array with at least one dimension. */
static PyArrayObject *variant_main_input(PyObject *obj, int typenum, const char *func,
                                         const char *arg)
{
    PyArrayObject *a = bnpy_input_array(obj, typenum, func, arg);
    if (a != NULL && PyArray_NDIM(a) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have at least one dimension, got a 0-d array",
                     func, arg);
        Py_CLEAR(a);
    }
    return a;
}

/* A backward's dy and x (args[0], args[1]) into *dy, *x: two main inputs of the same shape. On
 * failure what was converted stays in *dy / *x for the caller's release. */
static int variant_dy_and_x(PyObject *const *args, int typenum, const char *func,
                            PyArrayObject **dy, PyArrayObject **x)
{
    if ((*dy = variant_main_input(args[0], typenum, func, "dy")) == NULL ||
        (*x = variant_main_input(args[1], typenum, func, "x")) == NULL)
        return -1;
    if (PyArray_SAMESHAPE(*x, *dy))
        return 0;
    PyObject *xs = bnpy_shape_tuple(*x), *ds = bnpy_shape_tuple(*dy);
    if (xs != NULL && ds != NULL)
        PyErr_Format(PyExc_ValueError, "%s: x must have the shape of dy %R, got shape %R", func, ds,
                     xs);
    bnpy_release(2, xs, ds);
    return -1;
}

/* The (outer, C, inner) view of a C-contiguous array around axis. */
static void variant_split_at_axis(PyArrayObject *a, int axis, npy_intp *outer, npy_intp *channels,
                                  npy_intp *inner)
{
    npy_intp o = 1, i = 1;
    for (int k = 0; k < axis; k++)
        o *= PyArray_DIM(a, k);
    for (int k = axis + 1; k < PyArray_NDIM(a); k++)
        i *= PyArray_DIM(a, k);
    *outer = o;
    *channels = PyArray_DIM(a, axis);
    *inner = i;
}

/* A backward's outputs: *dx from out_obj (None: a new array) of x's shape, which may be dy or x
 * itself but must not overlap them otherwise nor any of the n per-channel params (NULL ones
 * skipped), and new (C,) *dgamma, *dbeta. On failure what was made stays for the caller's
 * release. */
static int variant_backward_outputs(PyObject *out_obj, int typenum, PyArrayObject *dy,
                                    PyArrayObject *x, PyArrayObject *const *params,
                                    const char *const *names, int n, npy_intp channels,
                                    const char *func, PyArrayObject **dx, PyArrayObject **dgamma,
                                    PyArrayObject **dbeta)
{
    *dx = bnpy_output_array(out_obj, typenum, PyArray_NDIM(x), PyArray_DIMS(x), func, "out");
    if (*dx == NULL || bnpy_check_overlap(*dx, dy, 1, func, "out", "dy") < 0 ||
        bnpy_check_overlap(*dx, x, 1, func, "out", "x") < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (bnpy_check_overlap(*dx, params[i], 0, func, "out", names[i]) < 0)
            return -1;
    *dgamma = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    *dbeta = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    return *dgamma == NULL || *dbeta == NULL ? -1 : 0;
}

#define DATA(a) ((a) != NULL ? PyArray_DATA(a) : NULL)

/* ---- batch_renorm_forward(x, gamma, beta, renorm_mean, renorm_stddev, axis, epsilon, rmin, rmax,
 *      dmax, out) -> (y, mean, var, r, d) ---------------------------------------------------- */

static PyObject *batch_renorm_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_renorm_forward";
    PyArrayObject *x = NULL, *gamma = NULL, *beta = NULL, *renorm_mean = NULL,
                  *renorm_stddev = NULL, *y = NULL, *mean = NULL, *var = NULL, *r = NULL, *d = NULL;
    PyObject *result = NULL;
    int axis, rc;
    double epsilon, rmin, rmax, dmax;
    npy_intp outer, channels, inner;

    static const char *const arrays[] = {"x", "gamma", "beta", "renorm_mean", "renorm_stddev"};
    int typenum;
    if (bnpy_check_nargs(nargs, 11, 11, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 5, func)) < 0 ||
        (x = variant_main_input(args[0], typenum, func, "x")) == NULL ||
        variant_parse_axis(args[5], PyArray_NDIM(x), func, &axis) < 0)
        goto fail;
    variant_split_at_axis(x, axis, &outer, &channels, &inner);
    if (variant_channel_vector(args[1], typenum, channels, 1, func, "gamma", &gamma) < 0 ||
        variant_channel_vector(args[2], typenum, channels, 1, func, "beta", &beta) < 0 ||
        variant_channel_vector(args[3], typenum, channels, 0, func, "renorm_mean", &renorm_mean) <
            0 ||
        variant_channel_vector(args[4], typenum, channels, 0, func, "renorm_stddev",
                               &renorm_stddev) < 0 ||
        variant_parse_real(args[6], 0.0, INFINITY, 0, func, "epsilon", &epsilon) < 0 ||
        variant_parse_real(args[7], 0.0, INFINITY, 1, func, "rmin", &rmin) < 0 ||
        variant_parse_real(args[8], rmin, INFINITY, 1, func, "rmax (>= rmin)", &rmax) < 0 ||
        variant_parse_real(args[9], 0.0, INFINITY, 1, func, "dmax", &dmax) < 0)
        goto fail;
    if (outer * inner == 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: x has no values per channel (shape with a zero outside axis %d): the "
                     "batch statistics are undefined",
                     func, axis);
        goto fail;
    }
    y = bnpy_output_array(args[10], typenum, PyArray_NDIM(x), PyArray_DIMS(x), func, "out");
    if (y == NULL || bnpy_check_overlap(y, x, 1, func, "out", "x") < 0 ||
        bnpy_check_overlap(y, gamma, 0, func, "out", "gamma") < 0 ||
        bnpy_check_overlap(y, beta, 0, func, "out", "beta") < 0 ||
        bnpy_check_overlap(y, renorm_mean, 0, func, "out", "renorm_mean") < 0 ||
        bnpy_check_overlap(y, renorm_stddev, 0, func, "out", "renorm_stddev") < 0)
        goto fail;
    mean = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    var = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    r = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    d = (PyArrayObject *)PyArray_EMPTY(1, &channels, typenum, 0);
    if (mean == NULL || var == NULL || r == NULL || d == NULL)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_renorm_forward, PyArray_DATA(y), PyArray_DATA(mean),
                            PyArray_DATA(var), PyArray_DATA(r), PyArray_DATA(d), PyArray_DATA(x),
                            DATA(gamma), DATA(beta), PyArray_DATA(renorm_mean),
                            PyArray_DATA(renorm_stddev), outer, channels, inner, epsilon, rmin,
                            rmax, dmax);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    result = PyTuple_Pack(5, (PyObject *)y, (PyObject *)mean, (PyObject *)var, (PyObject *)r,
                          (PyObject *)d);
fail:
    bnpy_release(10, (PyObject *)x, (PyObject *)gamma, (PyObject *)beta, (PyObject *)renorm_mean,
                 (PyObject *)renorm_stddev, (PyObject *)y, (PyObject *)mean, (PyObject *)var,
                 (PyObject *)r, (PyObject *)d);
    return result;
}

/* ---- batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis, epsilon, out)
 *      -> (dx, dgamma, dbeta) --------------------------------------------------------------------- */

static PyObject *batch_renorm_backward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_renorm_backward";
    PyArrayObject *dy = NULL, *x = NULL, *gamma = NULL, *mean = NULL, *var = NULL, *r = NULL,
                  *d = NULL, *dx = NULL, *dgamma = NULL, *dbeta = NULL;
    PyObject *result = NULL;
    int axis, rc;
    double epsilon;
    npy_intp outer, channels, inner;

    static const char *const arrays[] = {"dy", "x", "gamma", "mean", "var", "r", "d"};
    int typenum;
    if (bnpy_check_nargs(nargs, 10, 10, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 7, func)) < 0 ||
        variant_dy_and_x(args, typenum, func, &dy, &x) < 0)
        goto fail;
    if (variant_parse_axis(args[7], PyArray_NDIM(x), func, &axis) < 0)
        goto fail;
    variant_split_at_axis(x, axis, &outer, &channels, &inner);
    if (variant_channel_vector(args[2], typenum, channels, 1, func, "gamma", &gamma) < 0 ||
        variant_channel_vector(args[3], typenum, channels, 0, func, "mean", &mean) < 0 ||
        variant_channel_vector(args[4], typenum, channels, 0, func, "var", &var) < 0 ||
        variant_channel_vector(args[5], typenum, channels, 0, func, "r", &r) < 0 ||
        variant_channel_vector(args[6], typenum, channels, 0, func, "d", &d) < 0 ||
        variant_parse_real(args[8], 0.0, INFINITY, 0, func, "epsilon", &epsilon) < 0)
        goto fail;
    PyArrayObject *const params[] = {gamma, mean, var, r, d};
    static const char *const param_names[] = {"gamma", "mean", "var", "r", "d"};
    if (variant_backward_outputs(args[9], typenum, dy, x, params, param_names, 5, channels, func,
                                 &dx, &dgamma, &dbeta) < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_renorm_backward, PyArray_DATA(dx),
                            PyArray_DATA(dgamma), PyArray_DATA(dbeta), PyArray_DATA(dy),
                            PyArray_DATA(x), DATA(gamma), PyArray_DATA(mean), PyArray_DATA(var),
                            PyArray_DATA(r), PyArray_DATA(d), outer, channels, inner, epsilon);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    result = PyTuple_Pack(3, (PyObject *)dx, (PyObject *)dgamma, (PyObject *)dbeta);
fail:
    bnpy_release(10, (PyObject *)dy, (PyObject *)x, (PyObject *)gamma, (PyObject *)mean,
                 (PyObject *)var, (PyObject *)r, (PyObject *)d, (PyObject *)dx, (PyObject *)dgamma,
                 (PyObject *)dbeta);
    return result;
}

/* ---- ghost batches: the split of x's batch axis ------------------------------------------------- */

/* The virtual batches of x: *virtual_batch (V) from obj, *groups = N/V, and the per-sample
 * (outer, C, inner) view around axis, which must not be the batch axis 0. */
static int ghost_split(PyArrayObject *x, PyObject *v_obj, int axis, const char *func,
                       Py_ssize_t *virtual_batch, npy_intp *groups, npy_intp *outer,
                       npy_intp *channels, npy_intp *inner)
{
    if (PyArray_NDIM(x) < 2) {
        PyErr_Format(PyExc_ValueError,
                     "%s: x needs a batch axis and a channel axis, got a %d-d array", func,
                     PyArray_NDIM(x));
        return -1;
    }
    if (axis == 0) {
        PyErr_Format(PyExc_ValueError, "%s: axis 0 is the batch axis; virtual batches split axis 0",
                     func);
        return -1;
    }
    if (bnpy_parse_ssize(v_obj, func, "virtual_batch_size", virtual_batch) < 0)
        return -1;
    npy_intp batch = PyArray_DIM(x, 0);
    if (*virtual_batch < 1 || batch == 0 || batch % *virtual_batch != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the batch size %zd must be a positive multiple of virtual_batch_size %zd",
                     func, (Py_ssize_t)batch, *virtual_batch);
        return -1;
    }
    *groups = batch / *virtual_batch;
    npy_intp o = 1, i = 1;
    for (int k = 1; k < axis; k++)
        o *= PyArray_DIM(x, k);
    for (int k = axis + 1; k < PyArray_NDIM(x); k++)
        i *= PyArray_DIM(x, k);
    *outer = o;
    *channels = PyArray_DIM(x, axis);
    *inner = i;
    if (o * i == 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: x has no values per channel (shape with a zero outside axis %d): the "
                     "batch statistics are undefined",
                     func, axis);
        return -1;
    }
    return 0;
}

/* A (groups, C) matrix of statistics: obj converted to typenum, checked. */
static PyArrayObject *group_matrix(PyObject *obj, int typenum, npy_intp groups, npy_intp channels,
                                   const char *func, const char *arg)
{
    if (obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be an array of shape (%zd, %zd), got None", func,
                     arg, (Py_ssize_t)groups, (Py_ssize_t)channels);
        return NULL;
    }
    PyArrayObject *a = bnpy_input_array(obj, typenum, func, arg);
    if (a != NULL &&
        (PyArray_NDIM(a) != 2 || PyArray_DIM(a, 0) != groups || PyArray_DIM(a, 1) != channels)) {
        PyObject *shape = bnpy_shape_tuple(a);
        if (shape != NULL)
            PyErr_Format(PyExc_ValueError,
                         "%s: %s must have shape (%zd, %zd) (one row per virtual batch), got "
                         "shape %R",
                         func, arg, (Py_ssize_t)groups, (Py_ssize_t)channels, shape);
        bnpy_release(2, shape, (PyObject *)a);
        return NULL;
    }
    return a;
}

/* ---- ghost_batch_norm_forward(x, gamma, beta, virtual_batch_size, axis, epsilon, out)
 *      -> (y, mean, var) ------------------------------------------------------------------------ */

static PyObject *ghost_batch_norm_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "ghost_batch_norm_forward";
    PyArrayObject *x = NULL, *gamma = NULL, *beta = NULL, *y = NULL, *mean = NULL, *var = NULL;
    PyObject *result = NULL;
    int axis, rc;
    double epsilon;
    Py_ssize_t virtual_batch;
    npy_intp groups, outer, channels, inner;

    static const char *const arrays[] = {"x", "gamma", "beta"};
    int typenum;
    if (bnpy_check_nargs(nargs, 7, 7, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 3, func)) < 0 ||
        (x = variant_main_input(args[0], typenum, func, "x")) == NULL ||
        variant_parse_axis(args[4], PyArray_NDIM(x), func, &axis) < 0 ||
        ghost_split(x, args[3], axis, func, &virtual_batch, &groups, &outer, &channels, &inner) <
            0 ||
        variant_channel_vector(args[1], typenum, channels, 1, func, "gamma", &gamma) < 0 ||
        variant_channel_vector(args[2], typenum, channels, 1, func, "beta", &beta) < 0 ||
        variant_parse_real(args[5], 0.0, INFINITY, 0, func, "epsilon", &epsilon) < 0)
        goto fail;
    y = bnpy_output_array(args[6], typenum, PyArray_NDIM(x), PyArray_DIMS(x), func, "out");
    if (y == NULL || bnpy_check_overlap(y, x, 1, func, "out", "x") < 0 ||
        bnpy_check_overlap(y, gamma, 0, func, "out", "gamma") < 0 ||
        bnpy_check_overlap(y, beta, 0, func, "out", "beta") < 0)
        goto fail;
    npy_intp stats_dims[2] = {groups, channels};
    mean = (PyArrayObject *)PyArray_EMPTY(2, stats_dims, typenum, 0);
    var = (PyArrayObject *)PyArray_EMPTY(2, stats_dims, typenum, 0);
    if (mean == NULL || var == NULL)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_ghost_forward, PyArray_DATA(y), PyArray_DATA(mean),
                            PyArray_DATA(var), PyArray_DATA(x), DATA(gamma), DATA(beta),
                            virtual_batch, groups, outer, channels, inner, epsilon);
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

/* ---- ghost_batch_norm_backward(dy, x, gamma, mean, var, virtual_batch_size, axis, epsilon, out)
 *      -> (dx, dgamma, dbeta) --------------------------------------------------------------------- */

static PyObject *ghost_batch_norm_backward(PyObject *module, PyObject *const *args,
                                           Py_ssize_t nargs)
{
    static const char *func = "ghost_batch_norm_backward";
    PyArrayObject *dy = NULL, *x = NULL, *gamma = NULL, *mean = NULL, *var = NULL, *dx = NULL,
                  *dgamma = NULL, *dbeta = NULL;
    PyObject *result = NULL;
    int axis, rc;
    double epsilon;
    Py_ssize_t virtual_batch;
    npy_intp groups, outer, channels, inner;

    static const char *const arrays[] = {"dy", "x", "gamma", "mean", "var"};
    int typenum;
    if (bnpy_check_nargs(nargs, 9, 9, func) < 0 ||
        (typenum = bnpy_call_typenum(args, arrays, 5, func)) < 0 ||
        variant_dy_and_x(args, typenum, func, &dy, &x) < 0)
        goto fail;
    if (variant_parse_axis(args[6], PyArray_NDIM(x), func, &axis) < 0 ||
        ghost_split(x, args[5], axis, func, &virtual_batch, &groups, &outer, &channels, &inner) <
            0 ||
        variant_channel_vector(args[2], typenum, channels, 1, func, "gamma", &gamma) < 0 ||
        (mean = group_matrix(args[3], typenum, groups, channels, func, "mean")) == NULL ||
        (var = group_matrix(args[4], typenum, groups, channels, func, "var")) == NULL ||
        variant_parse_real(args[7], 0.0, INFINITY, 0, func, "epsilon", &epsilon) < 0)
        goto fail;
    PyArrayObject *const params[] = {gamma, mean, var};
    static const char *const param_names[] = {"gamma", "mean", "var"};
    if (variant_backward_outputs(args[8], typenum, dy, x, params, param_names, 3, channels, func,
                                 &dx, &dgamma, &dbeta) < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(typenum, bnpy_bn_ghost_backward, PyArray_DATA(dx), PyArray_DATA(dgamma),
                            PyArray_DATA(dbeta), PyArray_DATA(dy), PyArray_DATA(x), DATA(gamma),
                            PyArray_DATA(mean), PyArray_DATA(var), virtual_batch, groups, outer,
                            channels, inner, epsilon);
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

PyMethodDef bnpy_bn_variants_methods[] = {
    {"batch_renorm_forward", (PyCFunction)(void (*)(void))batch_renorm_forward, METH_FASTCALL,
     "batch_renorm_forward(x, gamma, beta, renorm_mean, renorm_stddev, axis, epsilon, rmin, rmax, "
     "dmax, out, /)\n--\n\n"
     "Training-mode Batch Renormalization: (y, mean, var, r, d). Use "
     "bnpy.ops.batch_renorm_forward."},
    {"batch_renorm_backward", (PyCFunction)(void (*)(void))batch_renorm_backward, METH_FASTCALL,
     "batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis, epsilon, out, /)\n--\n\n"
     "Gradient of the renorm forward with r, d constant: (dx, dgamma, dbeta). Use "
     "bnpy.ops.batch_renorm_backward."},
    {"ghost_batch_norm_forward", (PyCFunction)(void (*)(void))ghost_batch_norm_forward,
     METH_FASTCALL,
     "ghost_batch_norm_forward(x, gamma, beta, virtual_batch_size, axis, epsilon, out, /)\n--\n\n"
     "Ghost batch normalization, tf.keras's grouping: (y, mean, var). Use "
     "bnpy.ops.ghost_batch_norm_forward."},
    {"ghost_batch_norm_backward", (PyCFunction)(void (*)(void))ghost_batch_norm_backward,
     METH_FASTCALL,
     "ghost_batch_norm_backward(dy, x, gamma, mean, var, virtual_batch_size, axis, epsilon, out, "
     "/)\n--\n\n"
     "Gradient of the ghost forward: (dx, dgamma, dbeta). Use "
     "bnpy.ops.ghost_batch_norm_backward."},
    {NULL, NULL, 0, NULL},
};
