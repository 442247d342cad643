/* glue.h: shared helpers of the CPython/NumPy glue (csrc/py_*.c, module.c).
 *
 * Only glue files include this header; kernels include kernels.h alone. The helpers convert
 * Python objects to arrays once at the boundary and raise errors that name the function and the
 * argument, so each glue function reads as: parse, validate, allocate, release the GIL, call.
 */
#ifndef BNPY_GLUE_H
#define BNPY_GLUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_1_23_API_VERSION
#define NPY_TARGET_VERSION NPY_1_23_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL bnpy_ARRAY_API
#ifndef BNPY_GLUE_IMPORTS_ARRAY /* only module.c imports the NumPy C API */
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "kernels.h"

/* The method tables of each kernel family (in the py_*.c file of its name), added to the module
 * by module.c. */
extern PyMethodDef bnpy_batchnorm_methods[];
extern PyMethodDef bnpy_bn_variants_methods[];
extern PyMethodDef bnpy_bn_sync_methods[];
extern PyMethodDef bnpy_conv_methods[];
extern PyMethodDef bnpy_conv_fft_methods[];
extern PyMethodDef bnpy_pool_methods[];
extern PyMethodDef bnpy_image_methods[];
extern PyMethodDef bnpy_memory_methods[];

/* The float type number of obj (NPY_FLOAT or NPY_DOUBLE; arrays by their dtype, other objects as
 * NumPy would convert them). Anything else: TypeError "func: arg must be float32 or float64, got
 * <dtype>" and -1. */
int bnpy_float_typenum(PyObject *obj, const char *func, const char *arg);

/* The float type number of a call whose float array arguments are objs[0..n) (named args[i]):
 * that of the first one with a dtype of its own (an ndarray or a NumPy scalar; None is skipped),
 * so that a Python list, which has none, takes it and a wrong argument is blamed by its own name;
 * if none has one, that of objs[0] as NumPy converts it. -1 with TypeError as bnpy_float_typenum. */
int bnpy_call_typenum(PyObject *const *objs, const char *const *args, int n, const char *func);

/* The dtype rule of bnpy_input_array without converting anything: obj's float type number, or -1
 * with TypeError when obj is no float32/float64 array, or brings a dtype of its own that is not
 * typenum (typenum < 0: any float dtype). */
int bnpy_check_dtype(PyObject *obj, int typenum, const char *func, const char *arg);

/* A read-only input: obj as a C-contiguous, aligned, native-endian array of typenum (copied only
 * when needed). typenum < 0 takes the dtype from obj (which must be float32/float64). The dtype
 * must match exactly: a float64 array given where float32 is needed is a TypeError, never a
 * silent cast (an object without a dtype of its own, a list of floats, is converted to typenum).
 * Returns a new reference, or NULL with TypeError/ValueError set. */
PyArrayObject *bnpy_input_array(PyObject *obj, int typenum, const char *func, const char *arg);

/* 0 if a has ndim dims equal to dims (a dim < 0 matches any size), else ValueError "func: arg must
 * have shape [2, 'any'], got shape [2, 3, 4]" and -1. */
int bnpy_check_shape(PyArrayObject *a, int ndim, const npy_intp *dims, const char *func,
                     const char *arg);

/* An array updated in place (running statistics, parameters): must already be an ndarray of
 * typenum, C-contiguous, aligned, native-endian and writeable, with ndim dims equal to dims
 * (a dim < 0 matches any size). Never copied. Returns a new reference or NULL with an error. */
PyArrayObject *bnpy_inplace_array(PyObject *obj, int typenum, int ndim, const npy_intp *dims,
                                  const char *func, const char *arg);

/* An output: a new C-contiguous array if out is NULL or None, else out validated as with
 * bnpy_inplace_array. Returns a new reference or NULL with an error. */
PyArrayObject *bnpy_output_array(PyObject *out, int typenum, int ndim, const npy_intp *dims,
                                 const char *func, const char *arg);

/* 1 if the memory of a and b may overlap (their byte ranges intersect), else 0. */
int bnpy_may_overlap(PyArrayObject *a, PyArrayObject *b);

/* 0 if out does not overlap in (or either is NULL), or, when same_ok, is the very same
 * C-contiguous buffer of the same size (an elementwise pass may run in place). Else ValueError
 * "func: out_name must not overlap in_name" and -1. */
int bnpy_check_overlap(PyArrayObject *out, PyArrayObject *in, int same_ok, const char *func,
                       const char *out_name, const char *in_name);

/* The shape of a as a tuple of ints, for error messages (new reference, or NULL). */
PyObject *bnpy_shape_tuple(PyArrayObject *a);

/* Py_XDECREF of each of the n arrays (PyArrayObject *, no casts: va_arg reads that type) given,
 * NULL ones skipped: a glue function's one exit path releases every array it holds with one
 * call. */
void bnpy_release(int n, ...);

/* Every glue function takes its arguments positionally (METH_FASTCALL; bnpy.ops gives the
 * keywords and defaults): 0 if min <= nargs <= max, else TypeError and -1. */
int bnpy_check_nargs(Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max, const char *func);

/* An integer argument (any index-like object but bool) into *out. TypeError for anything else,
 * ValueError when it does not fit a Py_ssize_t. */
int bnpy_parse_ssize(PyObject *obj, const char *func, const char *arg, Py_ssize_t *out);

/* A flag argument, true or false as Python sees it, into *out (0 or 1). */
int bnpy_parse_flag(PyObject *obj, const char *func, const char *arg, int *out);

/* 0 if out overlaps none of ins[0..n) (NULL entries skipped; in_names[i] names ins[i]); the first
 * n_inplace of them may also be the very same buffer as out (an elementwise pass run in place).
 * Else ValueError as bnpy_check_overlap and -1. One call checks an output against every input. */
int bnpy_check_overlaps(PyArrayObject *out, const char *out_name, PyArrayObject *const *ins,
                        const char *const *in_names, int n, int n_inplace, const char *func);

/* An output shaped like `like` (its dtype and dims) from the argument out (None: a new array;
 * else checked as bnpy_output_array, named "out"), then bnpy_check_overlaps against ins. New
 * reference, or NULL with an error. */
PyArrayObject *bnpy_output_like(PyObject *out, PyArrayObject *like, PyArrayObject *const *ins,
                                const char *const *in_names, int n, int n_inplace,
                                const char *func);

/* A kernel's status into a Python error: 0 for 0; for -1 (its scratch could not be allocated,
 * nothing written) MemoryError and -1. Call it after Py_END_ALLOW_THREADS. */
int bnpy_kernel_status(int rc);

/* The tuple of the n arrays (PyArrayObject *) given, as new references, when the kernel's status
 * rc is 0, else NULL with bnpy_kernel_status's error: the result of a glue function with several
 * outputs. */
PyObject *bnpy_results(int rc, int n, ...);

/* The array *a handed over as the call's result (the reference moves: *a becomes NULL, so the
 * `fail:` release leaves it alone). */
static inline PyObject *bnpy_take(PyArrayObject **a)
{
    PyObject *result = (PyObject *)*a;
    *a = NULL;
    return result;
}

/* The one output *a of a kernel with status rc, handed over as the call's result (bnpy_take) when
 * rc is 0; else NULL with bnpy_kernel_status's error and *a left for the `fail:` release. The
 * single-output form of bnpy_results. */
static inline PyObject *bnpy_result(int rc, PyArrayObject **a)
{
    return bnpy_kernel_status(rc) == 0 ? bnpy_take(a) : NULL;
}

/* A method-table entry of a glue function: every one takes its arguments positionally
 * (METH_FASTCALL), and the table's type needs the cast CPython's own tables spell out. The doc
 * starts with the signature line ("name(args, /)\n--\n\n") that gives __text_signature__. */
#define BNPY_FASTCALL(name, function, doc)                                                         \
    {name, (PyCFunction)(void (*)(void))(function), METH_FASTCALL, doc}

/* ---- batch-norm style arguments (py_batchnorm.c and its variants) ---------------------------- */

/* The elementwise input of a per-channel op (x or dy): obj as bnpy_input_array converts it, with
 * at least one dimension. New reference, or NULL with an error. */
PyArrayObject *bnpy_data_input(PyObject *obj, int typenum, const char *func, const char *arg);

/* The channel axis of an array of rank ndim, from a Python int (negative counts from the end),
 * into *axis in [0, ndim). TypeError for a non-int, ValueError when out of range. */
int bnpy_parse_axis(PyObject *obj, int ndim, const char *func, int *axis);

/* A real number in [lo, hi] into *out (NaN is rejected; hi may be INFINITY, then the number must
 * be finite). TypeError for a non-number (or a bool), ValueError out of range. */
int bnpy_parse_real(PyObject *obj, double lo, double hi, const char *func, const char *arg,
                    double *out);

/* A number >= lo that may be infinite (an open-ended bound, as a clip limit) into *out. NaN is
 * rejected. TypeError for a non-number (or a bool), ValueError below lo. */
int bnpy_parse_bound(PyObject *obj, double lo, const char *func, const char *arg, double *out);

/* The (outer, channels, inner) view of a C-contiguous array around axis: outer is the product of
 * the dims before axis, inner that of the dims after it. */
void bnpy_split_at_axis(PyArrayObject *a, int axis, npy_intp *outer, npy_intp *channels,
                        npy_intp *inner);

/* What the head of a per-channel call found: its dtype, the channel axis, the (outer, C, inner)
 * split of its elementwise input around that axis, and epsilon. */
typedef struct {
    int typenum, axis;
    npy_intp outer, channels, inner;
    double epsilon;
} bnpy_channel_layout;

/* The head of a per-channel call taking exactly n_args arguments whose float arrays are
 * args[0..n_arrays) (named names[i]) and whose channel axis and epsilon (a finite number >= 0) are
 * args[axis_index] and args[axis_index + 1]: the count checked, the dtype (bnpy_call_typenum),
 * args[0] converted by bnpy_data_input into *x, the axis, the split around it and epsilon. 0, or
 * -1 with an error (*x, if set, stays for the caller's release; it must start NULL). */
int bnpy_channel_call(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t n_args,
                      const char *const *names, int n_arrays, int axis_index, const char *func,
                      bnpy_channel_layout *layout, PyArrayObject **x);

/* 0 if a (named arg) has the shape of like (named like_arg), else ValueError "func: x must have the
 * shape of dy (4, 3), got shape (2, 3)" and -1. */
int bnpy_check_same_shape(PyArrayObject *a, const char *arg, PyArrayObject *like,
                          const char *like_arg, const char *func);

/* Per-channel vectors: objs[i] (named names[i]) converted to a (channels,) array of typenum, for
 * i in [0, n), into the n PyArrayObject * variables whose addresses follow (`&gamma, &beta`);
 * those with bit i set in optional_mask may be None (the variable stays NULL). 0, or -1 with
 * TypeError/ValueError; what was converted by then stays in its variable for the caller's release
 * (the variables must start NULL). */
int bnpy_channel_vectors(PyObject *const *objs, const char *const *names, int n,
                         unsigned optional_mask, int typenum, npy_intp channels, const char *func,
                         ...);

/* The kernel `name`_f32 or `name`_f64 for typenum NPY_FLOAT or NPY_DOUBLE, called with the same
 * arguments (data pointers are void *, so one argument list serves both). An expression: its
 * value is the kernel's result (void kernels give a void expression). */
#define BNPY_CALL_FOR_TYPE(typenum, name, ...)                                                     \
    ((typenum) == NPY_FLOAT ? name##_f32(__VA_ARGS__) : name##_f64(__VA_ARGS__))

#endif /* BNPY_GLUE_H */
