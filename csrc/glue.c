/* glue.c: helpers shared by the glue files (see glue.h). */
#include "glue.h"

#include <math.h>
#include <stdarg.h>

int bnpy_float_typenum(PyObject *obj, const char *func, const char *arg)
{
    PyArrayObject *tmp = NULL;
    if (!PyArray_Check(obj)) {
        tmp = (PyArrayObject *)PyArray_FROM_O(obj);
        if (tmp == NULL) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: %s must be a float32 or float64 array, got %.200s",
                         func, arg, Py_TYPE(obj)->tp_name);
            return -1;
        }
    }
    PyArrayObject *a = tmp != NULL ? tmp : (PyArrayObject *)obj;
    int typenum = PyArray_TYPE(a);
    if (typenum != NPY_FLOAT && typenum != NPY_DOUBLE) {
        /* the array's own descriptor, so a string names its length ("<U3"), not "<U0" */
        PyObject *name = PyObject_Str((PyObject *)PyArray_DESCR(a));
        if (name == NULL) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: %s must be float32 or float64, got %.200s", func,
                         arg, PyArray_Check(obj) ? "an unsupported dtype" : Py_TYPE(obj)->tp_name);
        } else {
            PyErr_Format(PyExc_TypeError, "%s: %s must be float32 or float64, got %U", func, arg,
                         name);
            Py_DECREF(name);
        }
        typenum = -1;
    }
    Py_XDECREF(tmp);
    return typenum;
}

/* Whether obj brings a dtype of its own: an ndarray or a NumPy scalar (a list or a Python float
 * takes the dtype of the call). */
static int has_own_dtype(PyObject *obj)
{
    return PyArray_Check(obj) || PyArray_IsScalar(obj, Generic);
}

int bnpy_call_typenum(PyObject *const *objs, const char *const *args, int n, const char *func)
{
    for (int i = 0; i < n; i++)
        if (objs[i] != Py_None && has_own_dtype(objs[i]))
            return bnpy_float_typenum(objs[i], func, args[i]);
    return bnpy_float_typenum(objs[0], func, args[0]);
}

static const char *float_name(int typenum)
{
    return typenum == NPY_FLOAT ? "float32" : "float64";
}

/* bnpy_check_dtype, inlined into bnpy_input_array (every input of every call passes here). */
static inline int check_dtype(PyObject *obj, int typenum, const char *func, const char *arg)
{
    int have = bnpy_float_typenum(obj, func, arg);
    if (have >= 0 && typenum >= 0 && have != typenum && has_own_dtype(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be %s like the other arrays, got %s", func, arg,
                     float_name(typenum), float_name(have));
        return -1;
    }
    return have;
}

int bnpy_check_dtype(PyObject *obj, int typenum, const char *func, const char *arg)
{
    return check_dtype(obj, typenum, func, arg);
}

PyArrayObject *bnpy_input_array(PyObject *obj, int typenum, const char *func, const char *arg)
{
    int have = check_dtype(obj, typenum, func, arg);
    if (have < 0)
        return NULL;
    if (typenum >= 0 && have != typenum) /* a list takes the call's dtype */
        return (PyArrayObject *)PyArray_FROM_OTF(obj, typenum,
                                                 NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    /* An array that is already C-contiguous, aligned and native-endian is used as it is: what
     * PyArray_FROM_OTF would return too, without its dtype discovery and cast lookup, a sizeable
     * part of a small call. */
    if (PyArray_Check(obj)) {
        PyArrayObject *a = (PyArrayObject *)obj;
        if (PyArray_IS_C_CONTIGUOUS(a) && PyArray_ISALIGNED(a) && PyArray_ISNOTSWAPPED(a)) {
            Py_INCREF(obj);
            return a;
        }
    }
    /* The requested descriptor is native-endian, so byte-swapped input is converted too. */
    return (PyArrayObject *)PyArray_FROM_OTF(obj, have, NPY_ARRAY_IN_ARRAY);
}

int bnpy_check_shape(PyArrayObject *a, int ndim, const npy_intp *dims, const char *func,
                     const char *arg)
{
    int ok = PyArray_NDIM(a) == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (dims[i] >= 0 && PyArray_DIM(a, i) != dims[i])
            ok = 0;
    if (ok)
        return 0;
    PyObject *want = PyList_New(ndim), *got = NULL;
    if (want != NULL) {
        for (int i = 0; i < ndim; i++) {
            PyObject *v = dims[i] >= 0 ? PyLong_FromSsize_t(dims[i]) : PyUnicode_FromString("any");
            if (v == NULL) {
                Py_CLEAR(want);
                break;
            }
            PyList_SET_ITEM(want, i, v);
        }
    }
    PyObject *got_tuple = want != NULL ? bnpy_shape_tuple(a) : NULL;
    if (got_tuple != NULL) {
        got = PySequence_List(got_tuple);
        Py_DECREF(got_tuple);
    }
    if (want != NULL && got != NULL)
        PyErr_Format(PyExc_ValueError, "%s: %s must have shape %R, got shape %R", func, arg, want,
                     got);
    else if (!PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "%s: %s has the wrong shape", func, arg);
    Py_XDECREF(want);
    Py_XDECREF(got);
    return -1;
}

PyArrayObject *bnpy_inplace_array(PyObject *obj, int typenum, int ndim, const npy_intp *dims,
                                  const char *func, const char *arg)
{
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "%s: %s must be a numpy.ndarray (it is updated in place), got %.200s", func,
                     arg, Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != typenum) {
        if (bnpy_float_typenum(obj, func, arg) < 0)
            return NULL;
        PyErr_Format(PyExc_TypeError, "%s: %s must be %s like the other arrays, got %s", func, arg,
                     float_name(typenum), float_name(PyArray_TYPE(a)));
        return NULL;
    }
    if (!PyArray_ISNOTSWAPPED(a) || !PyArray_ISALIGNED(a) || !PyArray_IS_C_CONTIGUOUS(a)) {
        PyErr_Format(
            PyExc_ValueError,
            "%s: %s must be C-contiguous, aligned and native-endian (it is written in place)", func,
            arg);
        return NULL;
    }
    if (!PyArray_ISWRITEABLE(a)) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be writeable (it is written in place)", func,
                     arg);
        return NULL;
    }
    if (bnpy_check_shape(a, ndim, dims, func, arg) < 0)
        return NULL;
    Py_INCREF(a);
    return a;
}

PyArrayObject *bnpy_output_array(PyObject *out, int typenum, int ndim, const npy_intp *dims,
                                 const char *func, const char *arg)
{
    if (out == NULL || out == Py_None) {
        for (int i = 0; i < ndim; i++)
            if (dims[i] < 0) {
                PyErr_Format(PyExc_SystemError, "%s: output %s has an unknown size", func, arg);
                return NULL;
            }
        return (PyArrayObject *)PyArray_EMPTY(ndim, (npy_intp *)dims, typenum, 0);
    }
    return bnpy_inplace_array(out, typenum, ndim, dims, func, arg);
}

int bnpy_may_overlap(PyArrayObject *a, PyArrayObject *b)
{
    /* Byte extents of each array (any strides): [lo, hi). Empty arrays overlap nothing. */
    char *lo[2], *hi[2];
    PyArrayObject *arr[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        if (PyArray_SIZE(arr[k]) == 0)
            return 0;
        char *start = PyArray_BYTES(arr[k]), *end = start;
        for (int i = 0; i < PyArray_NDIM(arr[k]); i++) {
            npy_intp span = (PyArray_DIM(arr[k], i) - 1) * PyArray_STRIDE(arr[k], i);
            if (span < 0)
                start += span;
            else
                end += span;
        }
        lo[k] = start;
        hi[k] = end + PyArray_ITEMSIZE(arr[k]);
    }
    return lo[0] < hi[1] && lo[1] < hi[0];
}

int bnpy_check_overlap(PyArrayObject *out, PyArrayObject *in, int same_ok, const char *func,
                       const char *out_name, const char *in_name)
{
    if (out == NULL || in == NULL || !bnpy_may_overlap(out, in))
        return 0;
    if (same_ok && PyArray_DATA(out) == PyArray_DATA(in) && PyArray_SIZE(out) == PyArray_SIZE(in) &&
        PyArray_IS_C_CONTIGUOUS(out) && PyArray_IS_C_CONTIGUOUS(in))
        return 0;
    PyErr_Format(PyExc_ValueError, "%s: %s must not overlap %s%s", func, out_name, in_name,
                 same_ok ? " (it may be the very same array, for an in-place update)" : "");
    return -1;
}

PyObject *bnpy_shape_tuple(PyArrayObject *a)
{
    return PyArray_IntTupleFromIntp(PyArray_NDIM(a), PyArray_DIMS(a));
}

int bnpy_check_nargs(Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max, const char *func)
{
    if (nargs >= min && nargs <= max)
        return 0;
    if (min == max)
        PyErr_Format(PyExc_TypeError, "%s expected %zd positional arguments, got %zd", func, min,
                     nargs);
    else
        PyErr_Format(PyExc_TypeError, "%s expected %zd to %zd positional arguments, got %zd", func,
                     min, max, nargs);
    return -1;
}

int bnpy_parse_ssize(PyObject *obj, const char *func, const char *arg, Py_ssize_t *out)
{
    if (PyBool_Check(obj) || !PyIndex_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: %s must be an int, got %.200s", func, arg,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t v = PyNumber_AsSsize_t(obj, PyExc_OverflowError);
    if (v == -1 && PyErr_Occurred()) {
        int overflow = PyErr_ExceptionMatches(PyExc_OverflowError);
        if (overflow || PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Clear();
            if (overflow)
                PyErr_Format(PyExc_ValueError, "%s: %s is too large, got %R", func, arg, obj);
            else /* an index-like object that is no integer scalar (an array) */
                PyErr_Format(PyExc_TypeError, "%s: %s must be an int, got %.200s", func, arg,
                             Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    *out = v;
    return 0;
}

int bnpy_parse_flag(PyObject *obj, const char *func, const char *arg, int *out)
{
    int v = PyObject_IsTrue(obj);
    if (v < 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: %s must be true or false, got %.200s", func, arg,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    *out = v;
    return 0;
}

void bnpy_release(int n, ...)
{
    va_list arrays;
    va_start(arrays, n);
    for (int i = 0; i < n; i++) {
        PyArrayObject *a = va_arg(arrays, PyArrayObject *);
        Py_XDECREF(a);
    }
    va_end(arrays);
}

int bnpy_check_overlaps(PyArrayObject *out, const char *out_name, PyArrayObject *const *ins,
                        const char *const *in_names, int n, int n_inplace, const char *func)
{
    for (int i = 0; i < n; i++)
        if (bnpy_check_overlap(out, ins[i], i < n_inplace, func, out_name, in_names[i]) < 0)
            return -1;
    return 0;
}

PyArrayObject *bnpy_output_like(PyObject *out, PyArrayObject *like, PyArrayObject *const *ins,
                                const char *const *in_names, int n, int n_inplace, const char *func)
{
    PyArrayObject *a = bnpy_output_array(out, PyArray_TYPE(like), PyArray_NDIM(like),
                                         PyArray_DIMS(like), func, "out");
    if (a != NULL && bnpy_check_overlaps(a, "out", ins, in_names, n, n_inplace, func) < 0)
        Py_CLEAR(a);
    return a;
}

int bnpy_kernel_status(int rc)
{
    if (rc >= 0)
        return 0;
    PyErr_NoMemory();
    return -1;
}

PyObject *bnpy_results(int rc, int n, ...)
{
    if (bnpy_kernel_status(rc) < 0)
        return NULL;
    PyObject *tuple = PyTuple_New(n);
    if (tuple == NULL)
        return NULL;
    va_list arrays;
    va_start(arrays, n);
    for (int i = 0; i < n; i++) {
        PyObject *a = (PyObject *)va_arg(arrays, PyArrayObject *);
        Py_INCREF(a);
        PyTuple_SET_ITEM(tuple, i, a);
    }
    va_end(arrays);
    return tuple;
}

/* ---- batch-norm style arguments -------------------------------------------------------------- */

PyArrayObject *bnpy_data_input(PyObject *obj, int typenum, const char *func, const char *arg)
{
    PyArrayObject *a = bnpy_input_array(obj, typenum, func, arg);
    if (a != NULL && PyArray_NDIM(a) < 1) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have at least one dimension, got a 0-d array",
                     func, arg);
        Py_CLEAR(a);
    }
    return a;
}

int bnpy_parse_axis(PyObject *obj, int ndim, const char *func, int *axis)
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

/* A real number in [lo, hi], infinite only when allow_inf (see bnpy_parse_real, bnpy_parse_bound). */
static int parse_number(PyObject *obj, double lo, double hi, int allow_inf, const char *func,
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
        if (lo_obj != NULL && hi_obj != NULL) {
            if (isinf(hi))
                PyErr_Format(PyExc_ValueError, "%s: %s must be a %snumber >= %R, got %R", func, arg,
                             allow_inf ? "" : "finite ", lo_obj, obj);
            else
                PyErr_Format(PyExc_ValueError, "%s: %s must be in [%R, %R], got %R", func, arg,
                             lo_obj, hi_obj, obj);
        }
        Py_XDECREF(lo_obj);
        Py_XDECREF(hi_obj);
        return -1;
    }
    *out = v;
    return 0;
}

int bnpy_parse_real(PyObject *obj, double lo, double hi, const char *func, const char *arg,
                    double *out)
{
    return parse_number(obj, lo, hi, 0, func, arg, out);
}

int bnpy_parse_bound(PyObject *obj, double lo, const char *func, const char *arg, double *out)
{
    return parse_number(obj, lo, INFINITY, 1, func, arg, out);
}

void bnpy_split_at_axis(PyArrayObject *a, int axis, npy_intp *outer, npy_intp *channels,
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

int bnpy_channel_call(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t n_args,
                      const char *const *names, int n_arrays, int axis_index, const char *func,
                      bnpy_channel_layout *layout, PyArrayObject **x)
{
    if (bnpy_check_nargs(nargs, n_args, n_args, func) < 0 ||
        (layout->typenum = bnpy_call_typenum(args, names, n_arrays, func)) < 0 ||
        (*x = bnpy_data_input(args[0], layout->typenum, func, names[0])) == NULL ||
        bnpy_parse_axis(args[axis_index], PyArray_NDIM(*x), func, &layout->axis) < 0)
        return -1;
    bnpy_split_at_axis(*x, layout->axis, &layout->outer, &layout->channels, &layout->inner);
    return bnpy_parse_real(args[axis_index + 1], 0.0, INFINITY, func, "epsilon", &layout->epsilon);
}

int bnpy_check_same_shape(PyArrayObject *a, const char *arg, PyArrayObject *like,
                          const char *like_arg, const char *func)
{
    if (PyArray_SAMESHAPE(a, like))
        return 0;
    PyObject *a_shape = bnpy_shape_tuple(a), *like_shape = bnpy_shape_tuple(like);
    if (a_shape != NULL && like_shape != NULL)
        PyErr_Format(PyExc_ValueError, "%s: %s must have the shape of %s %R, got shape %R", func,
                     arg, like_arg, like_shape, a_shape);
    Py_XDECREF(a_shape);
    Py_XDECREF(like_shape);
    return -1;
}

/* One per-channel vector (see bnpy_channel_vectors). */
static int channel_vector(PyObject *obj, int typenum, npy_intp channels, int optional,
                          const char *func, const char *arg, PyArrayObject **out)
{
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

int bnpy_channel_vectors(PyObject *const *objs, const char *const *names, int n,
                         unsigned optional_mask, int typenum, npy_intp channels, const char *func,
                         ...)
{
    va_list outs;
    va_start(outs, func);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = channel_vector(objs[i], typenum, channels, (optional_mask >> i) & 1u, func, names[i],
                            va_arg(outs, PyArrayObject **));
    va_end(outs);
    return rc;
}
