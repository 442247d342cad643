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

/* The method tables of each kernel family, added to the module by module.c. */
extern PyMethodDef bnpy_batchnorm_methods[];
extern PyMethodDef bnpy_conv_methods[];
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

/* A read-only input: obj as a C-contiguous, aligned, native-endian array of typenum (copied only
 * when needed). typenum < 0 takes the dtype from obj (which must be float32/float64). The dtype
 * must match exactly: a float64 array given where float32 is needed is a TypeError, never a
 * silent cast (an object without a dtype of its own, a list of floats, is converted to typenum).
 * Returns a new reference, or NULL with TypeError/ValueError set. */
PyArrayObject *bnpy_input_array(PyObject *obj, int typenum, const char *func, const char *arg);

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

/* Py_XDECREF of each of the n arrays (or other objects) given, NULL ones skipped: a glue
 * function's one exit path releases everything it holds with one call. */
void bnpy_release(int n, ...);

/* Every glue function takes its arguments positionally (METH_FASTCALL; bnpy.ops gives the
 * keywords and defaults): 0 if min <= nargs <= max, else TypeError and -1. */
int bnpy_check_nargs(Py_ssize_t nargs, Py_ssize_t min, Py_ssize_t max, const char *func);

/* An integer argument (any index-like object but bool) into *out. TypeError for anything else,
 * ValueError when it does not fit a Py_ssize_t. */
int bnpy_parse_ssize(PyObject *obj, const char *func, const char *arg, Py_ssize_t *out);

/* A flag argument, true or false as Python sees it, into *out (0 or 1). */
int bnpy_parse_flag(PyObject *obj, const char *func, const char *arg, int *out);

/* The kernel `name`_f32 or `name`_f64 for typenum NPY_FLOAT or NPY_DOUBLE, called with the same
 * arguments (data pointers are void *, so one argument list serves both). An expression: its
 * value is the kernel's result (void kernels give a void expression). */
#define BNPY_CALL_FOR_TYPE(typenum, name, ...)                                                     \
    ((typenum) == NPY_FLOAT ? name##_f32(__VA_ARGS__) : name##_f64(__VA_ARGS__))

#endif /* BNPY_GLUE_H */
