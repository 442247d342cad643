/* py_conv_fft.c: CPython/NumPy glue of the FFT convolution (conv_fft.c).
 *
 * Positional arguments (METH_FASTCALL); bnpy/ops/_conv_fft.py computes the FFT sizes and the
 * layouts. Every function checks all shapes against each other before anything is allocated or
 * written, so a direct call with inconsistent arguments raises instead of reading out of bounds.
 * Spectra are float32 arrays (blocks, P_h, Pr, 2, BNPY_FFT_LANES), see kernels.h.
 */
#include "glue.h"

#define LANES BNPY_FFT_LANES

static int parse_size(PyObject *obj, const char *func, const char *name, Py_ssize_t min,
                      Py_ssize_t *out)
{
    if (bnpy_parse_ssize(obj, func, name, out) < 0)
        return -1;
    if (*out < min || *out > ((Py_ssize_t)1 << 40)) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be in [%zd, 2**40], got %zd", func, name, min,
                     *out);
        return -1;
    }
    return 0;
}

/* The FFT path is for small planes: larger sizes are refused before any allocation. */
#define MAX_FFT_SIZE 1024

static int check_fft_size(Py_ssize_t n, const char *func, const char *name)
{
    if (!bnpy_fft_size_supported(n) || n > MAX_FFT_SIZE) {
        PyErr_Format(PyExc_ValueError,
                     "%s: %s must be a product of 2s, 3s and 5s (an FFT size) <= %d, got %zd", func,
                     name, MAX_FFT_SIZE, n);
        return -1;
    }
    return 0;
}

/* ValueError "func: name must be <expected>, got shape (...)". */
static void raise_shape(const char *func, const char *name, const char *expected, PyArrayObject *a)
{
    PyObject *shape = bnpy_shape_tuple(a);
    if (shape != NULL) {
        PyErr_Format(PyExc_ValueError, "%s: %s must be %s, got shape %R", func, name, expected,
                     shape);
        Py_DECREF(shape);
    }
}

static Py_ssize_t lane_blocks(Py_ssize_t lanes)
{
    return (lanes + LANES - 1) / LANES;
}

/* A float32 spectrum (blocks0, blocks1, P_h, Pr, 2, LANES) with the given leading sizes (-1: any);
 * P_h and Pr from its shape. */
static PyArrayObject *spectrum_array(PyObject *obj, const char *func, const char *name,
                                     Py_ssize_t dim0, Py_ssize_t dim1, Py_ssize_t *P_h,
                                     Py_ssize_t *Pr)
{
    PyArrayObject *a = bnpy_input_array(obj, NPY_FLOAT, func, name);
    if (a == NULL)
        return NULL;
    if (PyArray_NDIM(a) != 6 || PyArray_DIM(a, 4) != 2 || PyArray_DIM(a, 5) != LANES ||
        (dim0 >= 0 && PyArray_DIM(a, 0) != dim0) || (dim1 >= 0 && PyArray_DIM(a, 1) != dim1) ||
        PyArray_DIM(a, 0) < 1 || PyArray_DIM(a, 1) < 1 || PyArray_DIM(a, 2) < 1 ||
        PyArray_DIM(a, 3) < 1) {
        char expected[160];
        snprintf(expected, sizeof expected,
                 "a spectrum of shape (%zd, %zd, P_h, Pr, 2, %d) (-1: any size >= 1)", dim0, dim1,
                 LANES);
        raise_shape(func, name, expected, a);
        Py_DECREF(a);
        return NULL;
    }
    *P_h = PyArray_DIM(a, 2);
    *Pr = PyArray_DIM(a, 3);
    return a;
}

/* The row length P_w: an FFT size whose half spectrum has Pr bins. */
static int check_row_size(Py_ssize_t P_h, Py_ssize_t P_w, Py_ssize_t Pr, const char *func)
{
    if (check_fft_size(P_h, func, "the spectrum's P_h") < 0 || check_fft_size(P_w, func, "P_w") < 0)
        return -1;
    if (P_w / 2 + 1 != Pr) {
        PyErr_Format(PyExc_ValueError, "%s: P_w %zd does not match the spectrum's %zd bins", func,
                     P_w, Pr);
        return -1;
    }
    return 0;
}

static int check_fits(Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t P_h, Py_ssize_t P_w,
                      const char *func, const char *what)
{
    if (rows > P_h || cols > P_w) {
        PyErr_Format(PyExc_ValueError, "%s: %s (%zd, %zd) do not fit the FFT size (%zd, %zd)", func,
                     what, rows, cols, P_h, P_w);
        return -1;
    }
    return 0;
}

/* dy as a float32 array (N, out_h, out_w, Cout) with no empty axis, or NULL with the error set. */
static PyArrayObject *dy_array(PyObject *obj, const char *func)
{
    PyArrayObject *dy = bnpy_input_array(obj, NPY_FLOAT, func, "dy");
    if (dy != NULL && (PyArray_NDIM(dy) != 4 || PyArray_SIZE(dy) == 0)) {
        raise_shape(func, "dy", "a non-empty 4-D array (N, out_h, out_w, Cout)", dy);
        Py_CLEAR(dy);
    }
    return dy;
}

/* The sizes of dy and of the FFT, shared by the two backward passes. */
typedef struct {
    npy_intp N, out_h, out_w, Cout;
    Py_ssize_t P_h;
} grad_geometry;

/* dy (args[0]) and the spectrum it is combined with (args[1], named spec_name): x's
 * (1, ceil(N·Cin/8), ...) or, with kernel_spectrum, the transposed kernel's (Cout, ceil(Cin/8),
 * ...), checked against P_w and dy's planes. 0, or -1 with the error set; what was taken is in
 * *dy and *spec either way, for the caller to release. */
static int grad_inputs(PyObject *const *args, const char *func, const char *spec_name,
                       int kernel_spectrum, Py_ssize_t Cin, Py_ssize_t P_w, PyArrayObject **dy,
                       PyArrayObject **spec, grad_geometry *g)
{
    Py_ssize_t Pr;
    if ((*dy = dy_array(args[0], func)) == NULL)
        return -1;
    g->N = PyArray_DIM(*dy, 0);
    g->out_h = PyArray_DIM(*dy, 1);
    g->out_w = PyArray_DIM(*dy, 2);
    g->Cout = PyArray_DIM(*dy, 3);
    *spec =
        kernel_spectrum
            ? spectrum_array(args[1], func, spec_name, g->Cout, lane_blocks(Cin), &g->P_h, &Pr)
            : spectrum_array(args[1], func, spec_name, 1, lane_blocks(g->N * Cin), &g->P_h, &Pr);
    if (*spec == NULL || check_row_size(g->P_h, P_w, Pr, func) < 0 ||
        check_fits(g->out_h, g->out_w, g->P_h, P_w, func, "dy's planes") < 0)
        return -1;
    return 0;
}

/* fft_spectrum(a, P_h, P_w, shift_h, shift_w) -> spectrum (B, ceil(L/8), P_h, P_w/2+1, 2, 8) */
static PyObject *py_fft_spectrum(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "fft_spectrum";
    PyObject *result = NULL;
    PyArrayObject *a = NULL, *spec = NULL;
    Py_ssize_t P_h, P_w, shift_h, shift_w;
    int rc = 0;
    if (bnpy_check_nargs(nargs, 5, 5, func) < 0 || parse_size(args[1], func, "P_h", 1, &P_h) < 0 ||
        parse_size(args[2], func, "P_w", 1, &P_w) < 0 ||
        bnpy_parse_ssize(args[3], func, "shift_h", &shift_h) < 0 ||
        bnpy_parse_ssize(args[4], func, "shift_w", &shift_w) < 0 ||
        check_fft_size(P_h, func, "P_h") < 0 || check_fft_size(P_w, func, "P_w") < 0)
        return NULL;
    a = bnpy_input_array(args[0], NPY_FLOAT, func, "a");
    if (a == NULL)
        goto fail;
    if (PyArray_NDIM(a) != 4 || PyArray_SIZE(a) == 0) {
        raise_shape(func, "a", "a non-empty 4-D array (B, R, C, L)", a);
        goto fail;
    }
    const npy_intp B = PyArray_DIM(a, 0), R = PyArray_DIM(a, 1), C = PyArray_DIM(a, 2),
                   L = PyArray_DIM(a, 3);
    if (check_fits(R, C, P_h, P_w, func, "a's planes") < 0)
        goto fail;
    npy_intp dims[6] = {B, lane_blocks(L), P_h, P_w / 2 + 1, 2, LANES};
    if ((spec = (PyArrayObject *)PyArray_EMPTY(6, dims, NPY_FLOAT, 0)) == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = bnpy_fft_spectrum_f32(PyArray_DATA(spec), PyArray_DATA(a), B, R, C, L, P_h, P_w,
                               shift_h % P_h, shift_w % P_w);
    Py_END_ALLOW_THREADS
    result = bnpy_result(rc, &spec);
fail:
    bnpy_release(2, a, spec);
    return result;
}

/* conv2d_fft_forward(xspec, kspec, bias, N, Cout, out_h, out_w, P_w) -> y (N, out_h, out_w, Cout) */
static PyObject *py_conv2d_fft_forward(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "conv2d_fft_forward";
    PyObject *result = NULL;
    PyArrayObject *xspec = NULL, *kspec = NULL, *bias = NULL, *y = NULL;
    Py_ssize_t N, Cout, out_h, out_w, P_w, P_h, Pr, kP_h, kPr;
    int rc = 0;
    if (bnpy_check_nargs(nargs, 8, 8, func) < 0 || parse_size(args[3], func, "N", 1, &N) < 0 ||
        parse_size(args[4], func, "Cout", 1, &Cout) < 0 ||
        parse_size(args[5], func, "out_h", 1, &out_h) < 0 ||
        parse_size(args[6], func, "out_w", 1, &out_w) < 0 ||
        parse_size(args[7], func, "P_w", 1, &P_w) < 0)
        return NULL;
    kspec = spectrum_array(args[1], func, "kspec", -1, lane_blocks(Cout), &kP_h, &kPr);
    if (kspec == NULL)
        goto fail;
    const Py_ssize_t Cin = PyArray_DIM(kspec, 0);
    xspec = spectrum_array(args[0], func, "xspec", 1, lane_blocks(N * Cin), &P_h, &Pr);
    if (xspec == NULL || check_row_size(P_h, P_w, Pr, func) < 0 ||
        check_fits(out_h, out_w, P_h, P_w, func, "the output's planes") < 0)
        goto fail;
    if (kP_h != P_h || kPr != Pr) {
        PyErr_Format(PyExc_ValueError, "%s: kspec has FFT size (%zd, %zd bins), xspec (%zd, %zd)",
                     func, kP_h, kPr, P_h, Pr);
        goto fail;
    }
    if (args[2] != Py_None) {
        bias = bnpy_input_array(args[2], NPY_FLOAT, func, "bias");
        if (bias == NULL)
            goto fail;
        if (PyArray_NDIM(bias) != 1 || PyArray_DIM(bias, 0) != Cout) {
            char expected[64];
            snprintf(expected, sizeof expected, "(%zd,)", Cout);
            raise_shape(func, "bias", expected, bias);
            goto fail;
        }
    }
    npy_intp dims[4] = {N, out_h, out_w, Cout};
    if ((y = (PyArrayObject *)PyArray_EMPTY(4, dims, NPY_FLOAT, 0)) == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = bnpy_conv2d_fft_forward_f32(PyArray_DATA(y), PyArray_DATA(xspec), PyArray_DATA(kspec),
                                     bias ? PyArray_DATA(bias) : NULL, N, Cin, Cout, out_h, out_w,
                                     P_h, P_w);
    Py_END_ALLOW_THREADS
    result = bnpy_result(rc, &y);
fail:
    bnpy_release(4, xspec, kspec, bias, y);
    return result;
}

/* conv2d_fft_dkernel(dy, xspec, Cin, kh, kw, pad_top, pad_left, P_w) -> dkernel (kh, kw, Cin, Cout) */
static PyObject *py_conv2d_fft_dkernel(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "conv2d_fft_dkernel";
    PyObject *result = NULL;
    PyArrayObject *dy = NULL, *xspec = NULL, *dk = NULL;
    Py_ssize_t Cin, kh, kw, pad_top, pad_left, P_w;
    grad_geometry g;
    int rc = 0;
    if (bnpy_check_nargs(nargs, 8, 8, func) < 0 || parse_size(args[2], func, "Cin", 1, &Cin) < 0 ||
        parse_size(args[3], func, "kh", 1, &kh) < 0 ||
        parse_size(args[4], func, "kw", 1, &kw) < 0 ||
        parse_size(args[5], func, "pad_top", 0, &pad_top) < 0 ||
        parse_size(args[6], func, "pad_left", 0, &pad_left) < 0 ||
        parse_size(args[7], func, "P_w", 1, &P_w) < 0)
        return NULL;
    if (grad_inputs(args, func, "xspec", 0, Cin, P_w, &dy, &xspec, &g) < 0 ||
        check_fits(kh, kw, g.P_h, P_w, func, "the kernel's planes") < 0)
        goto fail;
    npy_intp dims[4] = {kh, kw, Cin, g.Cout};
    if ((dk = (PyArrayObject *)PyArray_EMPTY(4, dims, NPY_FLOAT, 0)) == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = bnpy_conv2d_fft_dkernel_f32(PyArray_DATA(dk), PyArray_DATA(dy), PyArray_DATA(xspec), g.N,
                                     Cin, g.Cout, g.out_h, g.out_w, kh, kw, pad_top % g.P_h,
                                     pad_left % P_w, g.P_h, P_w);
    Py_END_ALLOW_THREADS
    result = bnpy_result(rc, &dk);
fail:
    bnpy_release(3, dy, xspec, dk);
    return result;
}

/* conv2d_fft_dinput(dy, ktspec, Cin, H, W, P_w) -> dx (N, H, W, Cin) */
static PyObject *py_conv2d_fft_dinput(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char *func = "conv2d_fft_dinput";
    PyObject *result = NULL;
    PyArrayObject *dy = NULL, *ktspec = NULL, *dx = NULL;
    Py_ssize_t Cin, H, W, P_w;
    grad_geometry g;
    int rc = 0;
    if (bnpy_check_nargs(nargs, 6, 6, func) < 0 || parse_size(args[2], func, "Cin", 1, &Cin) < 0 ||
        parse_size(args[3], func, "H", 1, &H) < 0 || parse_size(args[4], func, "W", 1, &W) < 0 ||
        parse_size(args[5], func, "P_w", 1, &P_w) < 0)
        return NULL;
    if (grad_inputs(args, func, "ktspec", 1, Cin, P_w, &dy, &ktspec, &g) < 0 ||
        check_fits(H, W, g.P_h, P_w, func, "x's planes") < 0)
        goto fail;
    npy_intp dims[4] = {g.N, H, W, Cin};
    if ((dx = (PyArrayObject *)PyArray_EMPTY(4, dims, NPY_FLOAT, 0)) == NULL)
        goto fail;
    Py_BEGIN_ALLOW_THREADS
    rc = bnpy_conv2d_fft_dinput_f32(PyArray_DATA(dx), PyArray_DATA(dy), PyArray_DATA(ktspec), g.N,
                                    Cin, g.Cout, H, W, g.out_h, g.out_w, g.P_h, P_w);
    Py_END_ALLOW_THREADS
    result = bnpy_result(rc, &dx);
fail:
    bnpy_release(3, dy, ktspec, dx);
    return result;
}

PyMethodDef bnpy_conv_fft_methods[] = {
    BNPY_FASTCALL(
        "fft_spectrum", py_fft_spectrum,
        "fft_spectrum(a, P_h, P_w, shift_h, shift_w, /)\n--\n\n"
        "Half spectra (B, ceil(L/8), P_h, P_w//2+1, 2, 8) of the planes of a float32 (B, R, C, L), "
        "cell (r, c) placed at ((r + shift_h) % P_h, (c + shift_w) % P_w) (see csrc/conv_fft.c)."),
    BNPY_FASTCALL("conv2d_fft_forward", py_conv2d_fft_forward,
                  "conv2d_fft_forward(xspec, kspec, bias, N, Cout, out_h, out_w, P_w, /)\n--\n\n"
                  "y (N, out_h, out_w, Cout) of a stride-1 float32 channels-last convolution from "
                  "the spectra "
                  "of x and of the kernel."),
    BNPY_FASTCALL("conv2d_fft_dkernel", py_conv2d_fft_dkernel,
                  "conv2d_fft_dkernel(dy, xspec, Cin, kh, kw, pad_top, pad_left, P_w, /)\n--\n\n"
                  "The kernel gradient (kh, kw, Cin, Cout) from dy and the spectrum of x."),
    BNPY_FASTCALL(
        "conv2d_fft_dinput", py_conv2d_fft_dinput,
        "conv2d_fft_dinput(dy, ktspec, Cin, H, W, P_w, /)\n--\n\n"
        "The input gradient (N, H, W, Cin) from dy and the spectrum of the transposed kernel."),
    {NULL, NULL, 0, NULL},
};
