/* py_bn_variants.c: CPython/NumPy glue of the batch-norm variants' kernels: Batch Renormalization
 * (csrc/bn_renorm.h) and ghost batches (csrc/bn_ghost.h). Same conventions as py_batchnorm.c:
 * positional arguments (METH_FASTCALL; bnpy.ops.batchnorm gives the keywords), inputs converted
 * once to C-contiguous native float32/float64, every shape, dtype, scalar and aliasing rule
 * checked before anything is written, the GIL released around the kernel, one exit path (`fail:`).
 *
 */
#include "glue.h" /* Python.h first */

#include <math.h>

/* A backward's dx and its (C,) dgamma, dbeta: dx from out_obj (None: a new array) shaped like x,
 * which may be dy or x itself but must overlap nothing else of ins[0..n) (dy, x, then the
 * per-channel arguments, named names[i]). On failure what was made stays for the caller's
 * release. */
static int backward_outputs(PyObject *out_obj, PyArrayObject *x, PyArrayObject *const *ins,
                            const char *const *names, int n, const bnpy_channel_layout *L,
                            const char *func, PyArrayObject **dx, PyArrayObject **dgamma,
                            PyArrayObject **dbeta)
{
    if ((*dx = bnpy_output_like(out_obj, x, ins, names, n, 2, func)) == NULL)
        return -1;
    *dgamma = (PyArrayObject *)PyArray_EMPTY(1, &L->channels, L->typenum, 0);
    *dbeta = (PyArrayObject *)PyArray_EMPTY(1, &L->channels, L->typenum, 0);
    return *dgamma == NULL || *dbeta == NULL ? -1 : 0;
}

#define DATA(a) ((a) != NULL ? PyArray_DATA(a) : NULL)

/* ---- batch_renorm_forward(x, gamma, beta, renorm_mean, renorm_stddev, axis, epsilon, rmin, rmax,
 *      dmax, out) -> (y, mean, var, r, d) ---------------------------------------------------- */

static PyObject *batch_renorm_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_renorm_forward";
    static const char *const names[] = {"x", "gamma", "beta", "renorm_mean", "renorm_stddev"};
    PyArrayObject *x = NULL, *gamma = NULL, *beta = NULL, *renorm_mean = NULL,
                  *renorm_stddev = NULL, *y = NULL, *mean = NULL, *var = NULL, *r = NULL, *d = NULL;
    PyObject *result = NULL;
    bnpy_channel_layout L;
    double rmin, rmax, dmax;
    int rc;

    if (bnpy_channel_call(args, nargs, 11, names, 5, 5, func, &L, &x) < 0 ||
        bnpy_channel_vectors(args + 1, names + 1, 4, 0x3, L.typenum, L.channels, func, &gamma,
                             &beta, &renorm_mean, &renorm_stddev) < 0 ||
        bnpy_parse_bound(args[7], 0.0, func, "rmin", &rmin) < 0 ||
        bnpy_parse_bound(args[8], rmin, func, "rmax (>= rmin)", &rmax) < 0 ||
        bnpy_parse_bound(args[9], 0.0, func, "dmax", &dmax) < 0)
        goto fail;
    if (L.outer * L.inner == 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: x has no values per channel (shape with a zero outside axis %d): the "
                     "batch statistics are undefined",
                     func, L.axis);
        goto fail;
    }
    if ((y = bnpy_output_like(args[10], x,
                              (PyArrayObject *const[]){x, gamma, beta, renorm_mean, renorm_stddev},
                              names, 5, 1, func)) == NULL)
        goto fail;
    mean = (PyArrayObject *)PyArray_EMPTY(1, &L.channels, L.typenum, 0);
    var = (PyArrayObject *)PyArray_EMPTY(1, &L.channels, L.typenum, 0);
    r = (PyArrayObject *)PyArray_EMPTY(1, &L.channels, L.typenum, 0);
    d = (PyArrayObject *)PyArray_EMPTY(1, &L.channels, L.typenum, 0);
    if (mean == NULL || var == NULL || r == NULL || d == NULL)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(L.typenum, bnpy_bn_renorm_forward, PyArray_DATA(y), PyArray_DATA(mean),
                            PyArray_DATA(var), PyArray_DATA(r), PyArray_DATA(d), PyArray_DATA(x),
                            DATA(gamma), DATA(beta), PyArray_DATA(renorm_mean),
                            PyArray_DATA(renorm_stddev), L.outer, L.channels, L.inner, L.epsilon,
                            rmin, rmax, dmax);
    Py_END_ALLOW_THREADS
    result = bnpy_results(rc, 5, y, mean, var, r, d);
fail:
    bnpy_release(10, x, gamma, beta, renorm_mean, renorm_stddev, y, mean, var, r, d);
    return result;
}

/* ---- batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis, epsilon, out)
 *      -> (dx, dgamma, dbeta) --------------------------------------------------------------------- */

static PyObject *batch_renorm_backward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "batch_renorm_backward";
    static const char *const names[] = {"dy", "x", "gamma", "mean", "var", "r", "d"};
    PyArrayObject *dy = NULL, *x = NULL, *gamma = NULL, *mean = NULL, *var = NULL, *r = NULL,
                  *d = NULL, *dx = NULL, *dgamma = NULL, *dbeta = NULL;
    PyObject *result = NULL;
    bnpy_channel_layout L;
    int rc;

    /* the layout comes from dy, which x must match */
    if (bnpy_channel_call(args, nargs, 10, names, 7, 7, func, &L, &dy) < 0 ||
        (x = bnpy_data_input(args[1], L.typenum, func, "x")) == NULL ||
        bnpy_check_same_shape(x, "x", dy, "dy", func) < 0 ||
        bnpy_channel_vectors(args + 2, names + 2, 5, 0x1, L.typenum, L.channels, func, &gamma,
                             &mean, &var, &r, &d) < 0 ||
        backward_outputs(args[9], x, (PyArrayObject *const[]){dy, x, gamma, mean, var, r, d}, names,
                         7, &L, func, &dx, &dgamma, &dbeta) < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(L.typenum, bnpy_bn_renorm_backward, PyArray_DATA(dx),
                            PyArray_DATA(dgamma), PyArray_DATA(dbeta), PyArray_DATA(dy),
                            PyArray_DATA(x), DATA(gamma), PyArray_DATA(mean), PyArray_DATA(var),
                            PyArray_DATA(r), PyArray_DATA(d), L.outer, L.channels, L.inner,
                            L.epsilon);
    Py_END_ALLOW_THREADS
    result = bnpy_results(rc, 3, dx, dgamma, dbeta);
fail:
    bnpy_release(10, dy, x, gamma, mean, var, r, d, dx, dgamma, dbeta);
    return result;
}

/* ---- ghost batches: the split of x's batch axis ------------------------------------------------- */

/* How a ghost call splits the batch: virtual batches of V samples, N / V of them. */
typedef struct {
    Py_ssize_t virtual_batch;
    npy_intp groups;
} ghost_batches;

/* The virtual batches of x (V from v_obj) into *G, and L's (outer, C, inner) replaced by the
 * per-sample view around L->axis, which must not be the batch axis 0. */
static int ghost_split(PyArrayObject *x, PyObject *v_obj, const char *func, bnpy_channel_layout *L,
                       ghost_batches *G)
{
    const int axis = L->axis;
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
    if (bnpy_parse_ssize(v_obj, func, "virtual_batch_size", &G->virtual_batch) < 0)
        return -1;
    const npy_intp batch = PyArray_DIM(x, 0), V = G->virtual_batch;
    if (V < 1 || batch == 0 || batch % V != 0) {
        PyErr_Format(PyExc_ValueError,
                     "%s: the batch size %zd must be a positive multiple of virtual_batch_size %zd",
                     func, (Py_ssize_t)batch, (Py_ssize_t)V);
        return -1;
    }
    G->groups = batch / V;
    npy_intp o = 1, i = 1;
    for (int k = 1; k < axis; k++)
        o *= PyArray_DIM(x, k);
    for (int k = axis + 1; k < PyArray_NDIM(x); k++)
        i *= PyArray_DIM(x, k);
    L->outer = o;
    L->channels = PyArray_DIM(x, axis);
    L->inner = i;
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
        Py_XDECREF(shape);
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* ---- ghost_batch_norm_forward(x, gamma, beta, virtual_batch_size, axis, epsilon, out)
 *      -> (y, mean, var) ------------------------------------------------------------------------ */

static PyObject *ghost_batch_norm_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "ghost_batch_norm_forward";
    static const char *const names[] = {"x", "gamma", "beta"};
    PyArrayObject *x = NULL, *gamma = NULL, *beta = NULL, *y = NULL, *mean = NULL, *var = NULL;
    PyObject *result = NULL;
    bnpy_channel_layout L;
    ghost_batches G;
    int rc;

    if (bnpy_channel_call(args, nargs, 7, names, 3, 4, func, &L, &x) < 0 ||
        ghost_split(x, args[3], func, &L, &G) < 0 ||
        bnpy_channel_vectors(args + 1, names + 1, 2, 0x3, L.typenum, L.channels, func, &gamma,
                             &beta) < 0 ||
        (y = bnpy_output_like(args[6], x, (PyArrayObject *const[]){x, gamma, beta}, names, 3, 1,
                              func)) == NULL)
        goto fail;
    npy_intp stats_dims[2] = {G.groups, L.channels};
    mean = (PyArrayObject *)PyArray_EMPTY(2, stats_dims, L.typenum, 0);
    var = (PyArrayObject *)PyArray_EMPTY(2, stats_dims, L.typenum, 0);
    if (mean == NULL || var == NULL)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(L.typenum, bnpy_bn_ghost_forward, PyArray_DATA(y), PyArray_DATA(mean),
                            PyArray_DATA(var), PyArray_DATA(x), DATA(gamma), DATA(beta),
                            G.virtual_batch, G.groups, L.outer, L.channels, L.inner, L.epsilon);
    Py_END_ALLOW_THREADS
    result = bnpy_results(rc, 3, y, mean, var);
fail:
    bnpy_release(6, x, gamma, beta, y, mean, var);
    return result;
}

/* ---- ghost_batch_norm_backward(dy, x, gamma, mean, var, virtual_batch_size, axis, epsilon, out)
 *      -> (dx, dgamma, dbeta) --------------------------------------------------------------------- */

static PyObject *ghost_batch_norm_backward(PyObject *module, PyObject *const *args,
                                           Py_ssize_t nargs)
{
    static const char *func = "ghost_batch_norm_backward";
    static const char *const names[] = {"dy", "x", "gamma", "mean", "var"};
    PyArrayObject *dy = NULL, *x = NULL, *gamma = NULL, *mean = NULL, *var = NULL, *dx = NULL,
                  *dgamma = NULL, *dbeta = NULL;
    PyObject *result = NULL;
    bnpy_channel_layout L;
    ghost_batches G;
    int rc;

    /* the layout comes from dy, which x must match */
    if (bnpy_channel_call(args, nargs, 9, names, 5, 6, func, &L, &dy) < 0 ||
        (x = bnpy_data_input(args[1], L.typenum, func, "x")) == NULL ||
        bnpy_check_same_shape(x, "x", dy, "dy", func) < 0 ||
        ghost_split(x, args[5], func, &L, &G) < 0 ||
        bnpy_channel_vectors(args + 2, names + 2, 1, 0x1, L.typenum, L.channels, func, &gamma) <
            0 ||
        (mean = group_matrix(args[3], L.typenum, G.groups, L.channels, func, "mean")) == NULL ||
        (var = group_matrix(args[4], L.typenum, G.groups, L.channels, func, "var")) == NULL ||
        backward_outputs(args[8], x, (PyArrayObject *const[]){dy, x, gamma, mean, var}, names, 5,
                         &L, func, &dx, &dgamma, &dbeta) < 0)
        goto fail;

    Py_BEGIN_ALLOW_THREADS
    rc = BNPY_CALL_FOR_TYPE(L.typenum, bnpy_bn_ghost_backward, PyArray_DATA(dx),
                            PyArray_DATA(dgamma), PyArray_DATA(dbeta), PyArray_DATA(dy),
                            PyArray_DATA(x), DATA(gamma), PyArray_DATA(mean), PyArray_DATA(var),
                            G.virtual_batch, G.groups, L.outer, L.channels, L.inner, L.epsilon);
    Py_END_ALLOW_THREADS
    result = bnpy_results(rc, 3, dx, dgamma, dbeta);
fail:
    bnpy_release(8, dy, x, gamma, mean, var, dx, dgamma, dbeta);
    return result;
}

PyMethodDef bnpy_bn_variants_methods[] = {
    BNPY_FASTCALL("batch_renorm_forward", batch_renorm_forward,
                  "batch_renorm_forward(x, gamma, beta, renorm_mean, renorm_stddev, axis, epsilon, "
                  "rmin, rmax, dmax, out, /)\n--\n\n"
                  "Training-mode Batch Renormalization: (y, mean, var, r, d). "
                  "Use bnpy.ops.batch_renorm_forward."),
    BNPY_FASTCALL(
        "batch_renorm_backward", batch_renorm_backward,
        "batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis, epsilon, out, /)\n--\n\n"
        "Gradient of the renorm forward with r, d constant: (dx, dgamma, dbeta). "
        "Use bnpy.ops.batch_renorm_backward."),
    BNPY_FASTCALL("ghost_batch_norm_forward", ghost_batch_norm_forward,
                  "ghost_batch_norm_forward(x, gamma, beta, virtual_batch_size, axis, epsilon, "
                  "out, /)\n--\n\n"
                  "Ghost batch normalization, tf.keras's grouping: (y, mean, var). "
                  "Use bnpy.ops.ghost_batch_norm_forward."),
    BNPY_FASTCALL("ghost_batch_norm_backward", ghost_batch_norm_backward,
                  "ghost_batch_norm_backward(dy, x, gamma, mean, var, virtual_batch_size, axis, "
                  "epsilon, out, /)\n--\n\n"
                  "Gradient of the ghost forward: (dx, dgamma, dbeta). "
                  "Use bnpy.ops.ghost_batch_norm_backward."),
    {NULL, NULL, 0, NULL},
};
