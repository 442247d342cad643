"""Direct, loop-based NumPy references of bnpy.ops.conv, in float64, written for clarity.

The convolution is computed as a sum of shifted slices ("shift and add"): one loop iteration
per kernel tap (di, dj), so it shares nothing with the im2col + matmul path it checks. Pooling
loops over every output window. All functions work on channels-last (N, H, W, C) arrays; the
tests transpose channels-first inputs into this layout.
"""

import numpy as np


def same_pads(n, k, s):
    """TensorFlow's 'same' padding along one axis: out = ceil(n/s),
    pad_total = max((out-1)*s + k - n, 0), (pad_total // 2 before, the rest after)."""
    out = (n + s - 1) // s
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pads_for(padding, h, w, kh, kw, sh, sw):
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        return same_pads(h, kh, sh), same_pads(w, kw, sw)
    (top, bottom), (left, right) = padding
    return (top, bottom), (left, right)


def _padded(x, pads):
    """x (N, H, W, C) in float64 with pads ((top, bottom), (left, right)) of zeros around H, W."""
    (pt, pb), (pl, pr) = pads
    return np.pad(np.asarray(x, np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))


def _taps(kernel_shape, out_h, out_w, strides, dilation):
    """For each kernel tap (di, dj): the rows and columns of the padded input that it multiplies,
    one per output pixel: rows di*dh, di*dh + sh, ..., di*dh + (out_h-1)*sh (columns likewise)."""
    kh, kw = kernel_shape[:2]
    sh, sw = strides
    dh, dw = dilation
    for di in range(kh):
        for dj in range(kw):
            rows = slice(di * dh, di * dh + (out_h - 1) * sh + 1, sh)
            cols = slice(dj * dw, dj * dw + (out_w - 1) * sw + 1, sw)
            yield di, dj, rows, cols


def conv2d(x, kernel, bias, strides, pads, dilation=(1, 1)):
    """y[n,i,j,o] = b[o] + sum_{di,dj,c} xpad[n, i*sh+di*dh, j*sw+dj*dw, c] * K[di,dj,c,o]."""
    kernel = np.asarray(kernel, np.float64)
    xpad = _padded(x, pads)
    kh, kw, cin, cout = kernel.shape
    out_h = (xpad.shape[1] - (kh - 1) * dilation[0] - 1) // strides[0] + 1
    out_w = (xpad.shape[2] - (kw - 1) * dilation[1] - 1) // strides[1] + 1
    y = np.zeros((xpad.shape[0], out_h, out_w, cout))
    for di, dj, rows, cols in _taps(kernel.shape, out_h, out_w, strides, dilation):
        y += xpad[:, rows, cols, :] @ kernel[di, dj]
    if bias is not None:
        y += np.asarray(bias, np.float64)
    return y


def conv2d_backward(dy, x, kernel, strides, pads, dilation=(1, 1)):
    """(dx, dkernel, dbias) of conv2d for the upstream gradient dy, by the same shift and add:
    dK[di,dj] = sum over (n,i,j) of xpad-window ⊗ dy; dxpad[window] += dy · K[di,dj]ᵀ."""
    dy = np.asarray(dy, np.float64)
    kernel = np.asarray(kernel, np.float64)
    xpad = _padded(x, pads)
    dxpad = np.zeros_like(xpad)
    dkernel = np.zeros_like(kernel)
    for di, dj, rows, cols in _taps(kernel.shape, dy.shape[1], dy.shape[2], strides, dilation):
        window = xpad[:, rows, cols, :]
        dkernel[di, dj] = np.einsum("nijc,nijo->co", window, dy)
        dxpad[:, rows, cols, :] += dy @ kernel[di, dj].T
    (pt, _), (pl, _) = pads
    dx = dxpad[:, pt : pt + np.shape(x)[1], pl : pl + np.shape(x)[2], :]
    return dx, dkernel, dy.sum(axis=(0, 1, 2))


def _windows(size, k, s, pad_before, pad_after):
    """For each output index along an axis, the range of real cells its window covers."""
    out = (size + pad_before + pad_after - k) // s + 1
    ranges = []
    for i in range(out):
        start = i * s - pad_before
        ranges.append((max(start, 0), min(start + k, size)))
    return ranges


def _plane_windows(h, w, pool_size, strides, pads):
    """The windows over an h x w plane: their row ranges and their column ranges (_windows)."""
    (pt, pb), (pl, pr) = pads
    return (
        _windows(h, pool_size[0], strides[0], pt, pb),
        _windows(w, pool_size[1], strides[1], pl, pr),
    )


def max_pool2d(x, pool_size, strides, pads):
    """(y, argmax): the maximum of the real cells of each window, and the index h*W + w of the
    first maximum in row-major window order (np.argmax: first occurrence; a NaN is a maximum)."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    rows, cols = _plane_windows(h, w, pool_size, strides, pads)
    y = np.empty((n, len(rows), len(cols), c))
    argmax = np.empty(y.shape, np.int64)
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            window = x[:, h0:h1, w0:w1, :].reshape(n, -1, c)
            k = np.argmax(window, axis=1)
            y[:, i, j, :] = np.take_along_axis(window, k[:, None, :], axis=1)[:, 0, :]
            argmax[:, i, j, :] = (h0 + k // (w1 - w0)) * w + (w0 + k % (w1 - w0))
    return y, argmax


def max_pool2d_backward(dy, argmax, x_shape):
    dy = np.asarray(dy, np.float64)
    n, h, w, c = x_shape
    dx = np.zeros((n, h * w, c))
    for b in range(n):
        for ch in range(c):
            np.add.at(dx[b, :, ch], argmax[b, :, :, ch].ravel(), dy[b, :, :, ch].ravel())
    return dx.reshape(x_shape)


def avg_pool2d(x, pool_size, strides, pads):
    """The mean of the real cells of each window (TensorFlow's avg_pool with 'same')."""
    x = np.asarray(x, np.float64)
    n, h, w, c = x.shape
    rows, cols = _plane_windows(h, w, pool_size, strides, pads)
    y = np.empty((n, len(rows), len(cols), c))
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            y[:, i, j, :] = x[:, h0:h1, w0:w1, :].mean(axis=(1, 2))
    return y


def avg_pool2d_backward(dy, x_shape, pool_size, strides, pads):
    dy = np.asarray(dy, np.float64)
    n, h, w, c = x_shape
    rows, cols = _plane_windows(h, w, pool_size, strides, pads)
    dx = np.zeros(x_shape)
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            count = (h1 - h0) * (w1 - w0)
            dx[:, h0:h1, w0:w1, :] += dy[:, i : i + 1, j : j + 1, :] / count
    return dx
