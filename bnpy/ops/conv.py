"""Convolution and pooling on NumPy arrays: forward and backward, float32 and float64.

A 2-D convolution is computed as ONE matrix product over an im2col matrix (Keras and TensorFlow's
cross-correlation, no kernel flip)::

    col[(n,i,j), (di,dj,c)] = x[n, i*sh + di - top, j*sw + dj - left, c]      (0 in the padding)
    y[n,i,j,o]              = b[o] + sum_(di,dj,c) col[(n,i,j), (di,dj,c)] * K[di,dj,c,o]

and its backward as two more::

    dK = colᵀ · dy        db = sum_(n,i,j) dy        dx = col2im(dy · Kᵀ)

where col2im adds every column entry back to the input cell it was copied from. im2col, col2im,
the bias and the layout changes are C kernels (csrc/conv.c, OpenMP); the products are NumPy's
matmul (its BLAS). A float32 channels-last convolution with Cout % 8 == 0 and either few input
channels (<= 16) and a kernel larger than 1x1, or a 1x1 kernel, instead runs a direct AVX2/FMA
kernel (csrc/conv_direct.c) for y and dK (and dx of an unpadded stride-1 1x1 convolution, itself
a 1x1 convolution of dy with Kᵀ), on CPUs that have it: no im2col matrix, taps that read only
padding are skipped, and the work stays on bnpy's OpenMP threads. Keras's kernel layout
(kh, kw, Cin, Cout) read as a matrix is exactly (kh*kw*Cin, Cout) in the column order above, so
the kernel is never transposed.

A dilation rate (dh, dw) spreads the kernel's taps: x[n, i*sh + di*dh - top, j*sw + dj*dw - left, c]
above, a window of k_eff = (k - 1)*d + 1 rows (columns); such convolutions always take the im2col
path. Padding follows TensorFlow, with k_eff for k: 'valid' gives out = ceil((n - k + 1) / s);
'same' gives out = ceil(n / s) with pad_total = max((out - 1)*s + k - n, 0), pad_top =
pad_total // 2 and the extra row (column) at the bottom (right). An explicit
((top, bottom), (left, right)) is accepted by the convolutions.

Pooling ('valid' or 'same'): only real cells take part. Max pooling's gradient goes to the first
maximum of each window in row-major order; average pooling divides by the number of real cells in
the window (TensorFlow's avg_pool).

Each ``*_forward`` returns ``(y, ctx)``; ``ctx`` is an opaque object holding what the matching
``*_backward`` needs (for a convolution the im2col matrix, or the zero-padded copy of x for the
direct kernel, or a reference to x itself for a 1x1 stride-1 unpadded channels-last convolution
that the direct kernel does not take: do not modify x in place before the backward). ``conv2d``
is the inference form: it keeps nothing and works through large batches in chunks, so predict and
evaluate use little memory.
"""

import numpy as np

from .. import _core
from . import _conv_fft

__all__ = [
    "conv2d",
    "conv2d_forward",
    "conv2d_backward",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
]

# conv2d (inference) keeps each im2col chunk under this many bytes.
_INFERENCE_COL_BYTES = 64 << 20

# The direct AVX2 kernel (csrc/conv_direct.c) replaces im2col + matmul for float32 channels-last
# convolutions (see _use_direct). For the article's 11x11 conv over RGB its forward takes 0.47x
# and its kernel gradient 0.71x the time of im2col + matmul (benchmarks/bench_conv.py, one thread,
# CPU time). Tests switch it off to compare both paths.
_USE_DIRECT = _core.conv_direct_available()
_DIRECT_MAX_CIN = 16


# ---- argument checking ----------------------------------------------------------------------------
# The forwards' arguments are checked once, in C (_core.conv2d_setup, _core.pool2d_setup); here only
# the data_format name (the C functions take a channels_first flag) and the backwards' dy against
# the context of their forward.


def _float_array(a, func, name, dtype):
    """`a` as an ndarray of float32/float64 of the forward's dtype, any strides."""
    arr = a if isinstance(a, np.ndarray) else np.asarray(a)
    if arr.dtype not in (np.float32, np.float64):
        raise TypeError("{}: {} must be float32 or float64, got {}".format(func, name, arr.dtype))
    if arr.dtype != dtype:
        raise TypeError(
            "{}: {} must be {} like x, got {}".format(func, name, np.dtype(dtype).name, arr.dtype)
        )
    return arr


def _channels_first(data_format, func):
    if isinstance(data_format, str) and data_format == "channels_last":
        return False
    if isinstance(data_format, str) and data_format == "channels_first":
        return True
    raise ValueError(
        "{}: data_format must be 'channels_last' or 'channels_first', got {!r}".format(
            func, data_format
        )
    )


# ---- convolution ------------------------------------------------------------------------------------


class Conv2DContext:
    """What conv2d_backward needs: the im2col matrix (or x itself for a 1x1 unpadded stride-1
    channels-last convolution, or the zero-padded x for the direct kernel), the kernel as a
    matrix, the geometry and the dilation."""

    __slots__ = (
        "col",
        "xpad",
        "fft",
        "kernel2d",
        "kernel_shape",
        "x_shape",
        "y_shape",
        "geometry",
        "dilation",
        "channels_first",
        "has_bias",
        "dtype",
    )


def _conv_setup(x, kernel, bias, strides, padding, data_format, dilation_rate, func):
    """Every argument checked once, by _core.conv2d_setup (errors name func), and the kernel as a
    (kh*kw*Cin, Cout) matrix."""
    channels_first = _channels_first(data_format, func)
    x, kernel, bias, geometry, dilation, out_hw = _core.conv2d_setup(
        func, x, kernel, bias, strides, padding, dilation_rate, channels_first
    )
    n, a, b, c = x.shape
    n, h, w, cin = (n, b, c, a) if channels_first else (n, a, b, c)
    # Copied so that an in-place update of the weights between forward and backward cannot change
    # the gradient.
    kernel2d = np.array(kernel, order="C", copy=True).reshape(-1, kernel.shape[3])
    return x, kernel2d, bias, channels_first, (n, h, w, cin), out_hw, geometry, dilation


def _use_direct(x, kernel2d, geometry, channels_first, dilation):
    """The direct kernel runs float32 channels-last convolutions with Cout % 8 == 0 that have few
    input channels and a kernel larger than 1x1 (im2col would blow x up kh*kw times), or a 1x1
    kernel (im2col is x itself; the direct kernel is as fast as BLAS there and keeps the whole
    convolution on bnpy's own OpenMP threads instead of waking BLAS's thread pool too)."""
    kh, kw = geometry[0], geometry[1]
    cin = x.shape[-1]
    if (
        not _USE_DIRECT
        or channels_first
        or x.dtype != np.float32
        or kernel2d.shape[1] % 8 != 0
        or cin < 1
        or dilation != (1, 1)
    ):
        return False
    return kh * kw == 1 or cin <= _DIRECT_MAX_CIN


def _is_pointwise(geometry, channels_first):
    kh, kw, sh, sw, pt, pb, pl, pr = geometry
    return not channels_first and kh == kw == sh == sw == 1 and pt == pb == pl == pr == 0


def _columns(x, geometry, channels_first, dilation):
    """The im2col matrix of x (x itself, reshaped, for a pointwise channels-last convolution)."""
    if _is_pointwise(geometry, channels_first):
        x = np.ascontiguousarray(x)
        return x.reshape(-1, x.shape[-1])
    return _core.im2col(x, *geometry, channels_first, None, *dilation)


def _finish_output(y2d, bias, n, out_hw, channels_first):
    """(N*P, Cout) product -> y in the data format, bias added (in place for channels-last)."""
    cout = y2d.shape[1]
    y = _core.conv_output(y2d, bias, n, channels_first)
    return y.reshape((n, cout) + out_hw if channels_first else (n,) + out_hw + (cout,))


def conv2d_forward(
    x,
    kernel,
    bias=None,
    strides=(1, 1),
    padding="valid",
    data_format="channels_last",
    dilation_rate=(1, 1),
):
    """Training-mode 2-D convolution: ``(y, ctx)``; see the module docstring for the formulas.

    x: (N, H, W, Cin) for 'channels_last' or (N, Cin, H, W) for 'channels_first'; kernel:
    (kh, kw, Cin, Cout) always (Keras's layout); bias: (Cout,) or None. All share one float dtype.
    dilation_rate: an int or a pair >= 1, the spacing of the kernel's taps. y has x's layout and
    dtype.
    """
    func = "conv2d_forward"
    x, kernel2d, bias, cf, (n, h, w, cin), out_hw, geometry, dilation = _conv_setup(
        x, kernel, bias, strides, padding, data_format, dilation_rate, func
    )
    ctx = Conv2DContext()
    ctx.col = ctx.xpad = ctx.fft = None
    if _conv_fft.use_fft(x, geometry, kernel2d.shape[1], cf, dilation):
        y, ctx.fft = _conv_fft.forward(x, kernel2d.reshape(*geometry[:2], cin, -1), bias, geometry)
    elif _use_direct(x, kernel2d, geometry, cf, dilation):
        y, ctx.xpad = _core.conv2d_direct(
            x, kernel2d.reshape(geometry[0], geometry[1], cin, -1), bias, *geometry[2:]
        )
    else:
        ctx.col = _columns(x, geometry, cf, dilation)
        y = _finish_output(np.matmul(ctx.col, kernel2d), bias, n, out_hw, cf)
    ctx.kernel2d, ctx.geometry, ctx.dilation, ctx.channels_first = kernel2d, geometry, dilation, cf
    ctx.kernel_shape = (geometry[0], geometry[1], cin, kernel2d.shape[1])
    ctx.x_shape, ctx.y_shape = x.shape, y.shape
    ctx.has_bias, ctx.dtype = bias is not None, x.dtype
    return y, ctx


def conv2d_backward(dy, ctx, need_dx=True):
    """Gradients of conv2d_forward: ``(dx or None, dkernel, dbias or None)``.

    dkernel = colᵀ·dy reshaped to (kh, kw, Cin, Cout); dbias = sum of dy over batch and space
    (None when the forward had no bias); dx = col2im(dy·Kᵀ) in x's layout (None unless need_dx).
    """
    func = "conv2d_backward"
    if not isinstance(ctx, Conv2DContext):
        raise TypeError(
            "{}: ctx must be the context conv2d_forward returned, got {}".format(
                func, type(ctx).__name__
            )
        )
    if not isinstance(need_dx, (bool, np.bool_)):
        raise TypeError("{}: need_dx must be a bool, got {}".format(func, type(need_dx).__name__))
    dy = _float_array(dy, func, "dy", ctx.dtype)
    if dy.shape != ctx.y_shape:
        raise ValueError(
            "{}: dy must have the forward output's shape {}, got {}".format(
                func, ctx.y_shape, dy.shape
            )
        )
    cout = ctx.kernel_shape[3]
    dy2d, dbias = _core.conv_output_backward(dy, ctx.has_bias, ctx.channels_first)
    if ctx.fft is not None:
        dx, dkernel = _conv_fft.backward(dy2d.reshape(ctx.y_shape), ctx.fft, need_dx)
        return dx, dkernel, dbias
    if ctx.xpad is not None:
        kh, kw = ctx.geometry[0], ctx.geometry[1]
        dkernel = _core.conv2d_direct_dkernel(
            dy2d.reshape(ctx.y_shape), ctx.xpad, ctx.x_shape, kh, kw, *ctx.geometry[2:]
        )
    else:
        dkernel = np.matmul(ctx.col.T, dy2d).reshape(ctx.kernel_shape)
    dx = None
    if (
        need_dx
        and ctx.xpad is not None
        and _is_pointwise(ctx.geometry, False)
        and ctx.x_shape[-1] % 8 == 0
    ):
        # dx of a pointwise convolution is itself a pointwise convolution of dy with Kᵀ
        kernel_t = np.ascontiguousarray(ctx.kernel2d.T).reshape(1, 1, cout, -1)
        dx = _core.conv2d_direct(dy2d.reshape(ctx.y_shape), kernel_t, None, 1, 1, 0, 0, 0, 0)[0]
    elif need_dx:
        dcol = np.matmul(dy2d, ctx.kernel2d.T)
        if _is_pointwise(ctx.geometry, ctx.channels_first):
            dx = dcol.reshape(ctx.x_shape)
        else:
            dx = _core.col2im(
                dcol, ctx.x_shape, *ctx.geometry, ctx.channels_first, None, *ctx.dilation
            )
    return dx, dkernel, dbias


def conv2d(
    x,
    kernel,
    bias=None,
    strides=(1, 1),
    padding="valid",
    data_format="channels_last",
    dilation_rate=(1, 1),
):
    """Inference-mode 2-D convolution: y only, nothing kept for a backward.

    Same arguments and result as conv2d_forward; large batches are processed in chunks whose
    im2col matrix stays under 64 MiB, so memory does not grow with the batch.
    """
    func = "conv2d"
    x, kernel2d, bias, cf, (n, h, w, cin), out_hw, geometry, dilation = _conv_setup(
        x, kernel, bias, strides, padding, data_format, dilation_rate, func
    )
    if _conv_fft.use_fft(x, geometry, kernel2d.shape[1], cf, dilation):
        return _conv_fft.forward(x, kernel2d.reshape(*geometry[:2], cin, -1), bias, geometry)[0]
    if _use_direct(x, kernel2d, geometry, cf, dilation):  # no im2col matrix: nothing to chunk
        return _core.conv2d_direct(
            x, kernel2d.reshape(geometry[0], geometry[1], cin, -1), bias, *geometry[2:]
        )[0]
    kh, kw = geometry[0], geometry[1]
    col_bytes_per_image = out_hw[0] * out_hw[1] * kh * kw * cin * x.dtype.itemsize
    chunk = max(1, _INFERENCE_COL_BYTES // max(col_bytes_per_image, 1))
    if n <= chunk:
        return _finish_output(
            np.matmul(_columns(x, geometry, cf, dilation), kernel2d), bias, n, out_hw, cf
        )
    cout = kernel2d.shape[1]
    y = np.empty((n, cout) + out_hw if cf else (n,) + out_hw + (cout,), dtype=x.dtype)
    for start in range(0, n, chunk):
        part = x[start : start + chunk]
        y2d = np.matmul(_columns(part, geometry, cf, dilation), kernel2d)
        y[start : start + chunk] = _finish_output(y2d, bias, part.shape[0], out_hw, cf)
    return y


# ---- pooling ------------------------------------------------------------------------------------------


class Pool2DContext:
    """What a pooling backward needs: the geometry, x's shape, and max pooling's argmax."""

    __slots__ = ("kind", "argmax", "x_shape", "y_shape", "geometry", "channels_first", "dtype")


def _pool_setup(x, pool_size, strides, padding, data_format, func):
    """Every argument checked once, by _core.pool2d_setup (errors name func)."""
    cf = _channels_first(data_format, func)
    x, geometry = _core.pool2d_setup(func, x, pool_size, strides, padding, cf)
    return x, cf, geometry


def _pool_forward(kind, x, pool_size, strides, padding, data_format):
    func = kind + "_pool2d_forward"
    x, cf, geometry = _pool_setup(x, pool_size, strides, padding, data_format, func)
    ctx = Pool2DContext()
    y, ctx.argmax = _core.pool2d(x, kind == "max", *geometry, cf)  # argmax None for "avg"
    ctx.kind, ctx.x_shape, ctx.y_shape, ctx.geometry = kind, x.shape, y.shape, geometry
    ctx.channels_first, ctx.dtype = cf, x.dtype
    return y, ctx


def _pool_backward(kind, dy, ctx):
    func = kind + "_pool2d_backward"
    if not isinstance(ctx, Pool2DContext) or ctx.kind != kind:
        raise TypeError(
            "{}: ctx must be the context {}_pool2d_forward returned, got {}".format(
                func,
                kind,
                type(ctx).__name__
                if not isinstance(ctx, Pool2DContext)
                else ctx.kind + " pooling's",
            )
        )
    dy = _float_array(dy, func, "dy", ctx.dtype)
    if dy.shape != ctx.y_shape:
        raise ValueError(
            "{}: dy must have the forward output's shape {}, got {}".format(
                func, ctx.y_shape, dy.shape
            )
        )
    return _core.pool2d_backward(dy, ctx.argmax, ctx.x_shape, *ctx.geometry, ctx.channels_first)


def max_pool2d_forward(
    x, pool_size=(2, 2), strides=None, padding="valid", data_format="channels_last"
):
    """2-D max pooling: ``(y, ctx)``. y[n,i,j,c] = max of x over the real cells of window (i, j);
    strides None means pool_size; padding 'valid' or 'same' (padded cells never win)."""
    return _pool_forward("max", x, pool_size, strides, padding, data_format)


def max_pool2d_backward(dy, ctx):
    """dx of max pooling: each dy goes to the first maximum (row-major) of its window."""
    return _pool_backward("max", dy, ctx)


def avg_pool2d_forward(
    x, pool_size=(2, 2), strides=None, padding="valid", data_format="channels_last"
):
    """2-D average pooling: ``(y, ctx)``; y = mean over the real cells of each window (with
    'same', border windows divide by the number of real cells, as TensorFlow's avg_pool)."""
    return _pool_forward("avg", x, pool_size, strides, padding, data_format)


def avg_pool2d_backward(dy, ctx):
    """dx of average pooling: each real cell of a window gets dy / (number of real cells)."""
    return _pool_backward("avg", dy, ctx)
