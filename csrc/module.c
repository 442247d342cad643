/* module.c: the bnpy._core extension module: multi-phase init, the NumPy C API import, the thread
 * setting, and the method tables of every kernel family (the py_*.c files, listed in glue.h) and
 * of the array cache (py_memory.c). */
#define BNPY_GLUE_IMPORTS_ARRAY
#include "glue.h"

static PyObject *set_num_threads(PyObject *module, PyObject *arg)
{
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "set_num_threads: n must be an int, got %.200s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    int overflow = 0;
    long n = PyLong_AsLongAndOverflow(arg, &overflow); /* an int beyond long: ValueError below */
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (overflow || n < 1 || n > 4096) {
        PyErr_Format(PyExc_ValueError, "set_num_threads: n must be in [1, 4096], got %R", arg);
        return NULL;
    }
    return PyLong_FromLong(bnpy_set_num_threads((int)n));
}

static PyObject *get_num_threads(PyObject *module, PyObject *unused)
{
    return PyLong_FromLong(bnpy_num_threads_setting());
}

static PyMethodDef core_methods[] = {
    {"set_num_threads", set_num_threads, METH_O,
     "set_num_threads(n, /)\n--\n\nUse n >= 1 threads in every kernel; returns the previous "
     "count."},
    {"get_num_threads", get_num_threads, METH_NOARGS,
     "get_num_threads()\n--\n\nThe thread count set (1 in a serial build); kernels use at most one "
     "thread per processor."},
    {NULL, NULL, 0, NULL},
};

static int core_exec(PyObject *module)
{
    if (_import_array() < 0)
        return -1;
    if (PyModule_AddFunctions(module, core_methods) < 0 ||
        PyModule_AddFunctions(module, bnpy_batchnorm_methods) < 0 ||
        PyModule_AddFunctions(module, bnpy_bn_variants_methods) < 0 ||
        PyModule_AddFunctions(module, bnpy_bn_sync_methods) < 0 ||
        PyModule_AddFunctions(module, bnpy_conv_methods) < 0 ||
        PyModule_AddFunctions(module, bnpy_conv_fft_methods) < 0 ||
        PyModule_AddFunctions(module, bnpy_pool_methods) < 0 ||
        PyModule_AddFunctions(module, bnpy_image_methods) < 0 ||
        PyModule_AddFunctions(module, bnpy_memory_methods) < 0)
        return -1;
    if (PyModule_AddIntConstant(module, "HAVE_OPENMP", bnpy_have_openmp()) < 0)
        return -1;
    return 0;
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "bnpy._core",
    .m_doc =
        "bnpy's C kernels on NumPy buffers: batch normalization, convolution helpers, pooling, "
        "image warps. Use them through bnpy.ops.",
    .m_size = 0,
    .m_slots = core_slots,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
