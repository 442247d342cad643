"""NumPy references for the framework's layers and helpers shared by the framework tests.

Everything here is written for clarity, in float64: direct loop-based convolution and pooling
(loops over output positions and kernel offsets, vectorised only over batch and channels), the
BN formulas as printed in the paper, and a central-difference gradient.
"""

import contextlib
import gzip
import os

import numpy as np
import pytest

import bnpy
import bnpy.ops


def ops_available(*names):
    """True when bnpy.ops has every kernel in ``names`` (they land from other branches)."""
    return all(hasattr(bnpy.ops, n) for n in names)


CONV_OPS = ("conv2d_forward", "conv2d_backward", "conv2d")
POOL_OPS = (
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
)
BN_OPS = (
    "batch_norm_forward",
    "batch_norm_inference",
    "batch_norm_backward",
    "batch_norm_inference_backward",
    "update_moving_stats",
)

requires_conv = pytest.mark.skipif(
    not ops_available(*CONV_OPS), reason="bnpy.ops convolution kernels not built in this tree yet"
)
requires_pool = pytest.mark.skipif(
    not ops_available(*POOL_OPS), reason="bnpy.ops pooling kernels not built in this tree yet"
)
requires_bn = pytest.mark.skipif(
    not ops_available(*BN_OPS),
    reason="bnpy.ops batch-normalization kernels not built in this tree yet",
)


# -- shapes and padding ----------------------------------------------------------------------
def output_length(n, k, s, padding):
    if padding == "same":
        return -(-n // s)
    return (n - k + s) // s


def same_padding(n, k, s):
    """TF 'same': (before, after), the extra cell after."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _output_grid(h, w, kh, kw, sh, sw, padding):
    """(out_h, out_w, top, left) of a kh x kw window sliding over h x w with strides (sh, sw):
    the output size and the zero rows above and columns left of the input ('same' only)."""
    oh, ow = output_length(h, kh, sh, padding), output_length(w, kw, sw, padding)
    top = same_padding(h, kh, sh)[0] if padding == "same" else 0
    left = same_padding(w, kw, sw)[0] if padding == "same" else 0
    return oh, ow, top, left


def _to_nhwc(x, data_format):
    return x if data_format == "channels_last" else x.transpose(0, 2, 3, 1)


def _from_nhwc(y, data_format):
    return y if data_format == "channels_last" else y.transpose(0, 3, 1, 2)


# -- convolution -------------------------------------------------------------------------------
def conv2d_reference(
    x,
    kernel,
    bias=None,
    strides=(1, 1),
    padding="valid",
    data_format="channels_last",
    dilation=(1, 1),
):
    """y[n,i,j,o] = b[o] + Σ_{di,dj,c} x[n, i·s+di·d−top, j·s+dj·d−left, c]·K[di,dj,c,o] (zeros
    outside), the window's extent k_eff = (k−1)·d + 1 in the output size and 'same' padding."""
    x = _to_nhwc(np.asarray(x, np.float64), data_format)
    kernel = np.asarray(kernel, np.float64)
    n, h, w, c = x.shape
    kh, kw, kc, o = kernel.shape
    assert kc == c
    sh, sw = strides
    dh, dw = dilation
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    oh, ow, top, left = _output_grid(h, w, ekh, ekw, sh, sw, padding)
    y = np.zeros((n, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            for di in range(kh):
                for dj in range(kw):
                    r, col = i * sh + di * dh - top, j * sw + dj * dw - left
                    if 0 <= r < h and 0 <= col < w:
                        y[:, i, j, :] += x[:, r, col, :] @ kernel[di, dj]
    if bias is not None:
        y += np.asarray(bias, np.float64)
    return _from_nhwc(y, data_format)


def pool2d_reference(x, pool_size, strides, padding, data_format, mode):
    """Max (pad cells ignored) or average over the real cells of each window, as TF."""
    x = _to_nhwc(np.asarray(x, np.float64), data_format)
    n, h, w, c = x.shape
    ph, pw = pool_size
    sh, sw = strides
    oh, ow, top, left = _output_grid(h, w, ph, pw, sh, sw, padding)
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - top, j * sw - left
            window = x[:, max(r0, 0) : min(r0 + ph, h), max(c0, 0) : min(c0 + pw, w), :]
            if mode == "max":
                y[:, i, j, :] = window.max(axis=(1, 2))
            else:
                y[:, i, j, :] = window.mean(axis=(1, 2))
    return _from_nhwc(y, data_format)


# -- batch normalization ---------------------------------------------------------------------
def _bn_axes(x, axis):
    axis = axis % x.ndim
    return tuple(a for a in range(x.ndim) if a != axis), axis


def _bn_broadcast(v, x, axis):
    shape = [1] * x.ndim
    shape[axis] = -1
    return np.asarray(v, np.float64).reshape(shape)


def batch_norm_train_reference(x, gamma, beta, axis=-1, epsilon=1e-3):
    """(y, batch mean, biased batch variance): y = γ(x − μ_B)/√(σ²_B + ε) + β."""
    x = np.asarray(x, np.float64)
    reduce_axes, axis = _bn_axes(x, axis)
    mean = x.mean(axis=reduce_axes)
    var = ((x - _bn_broadcast(mean, x, axis)) ** 2).mean(axis=reduce_axes)
    y = batch_norm_inference_reference(x, gamma, beta, mean, var, axis, epsilon)
    return y, mean, var


def batch_norm_inference_reference(x, gamma, beta, mean, var, axis=-1, epsilon=1e-3):
    x = np.asarray(x, np.float64)
    axis = axis % x.ndim
    y = (x - _bn_broadcast(mean, x, axis)) / np.sqrt(_bn_broadcast(var, x, axis) + epsilon)
    if gamma is not None:
        y = y * _bn_broadcast(gamma, x, axis)
    if beta is not None:
        y = y + _bn_broadcast(beta, x, axis)
    return y


@contextlib.contextmanager
def one_thread():
    """Run bnpy's kernels (and BLAS, when threadpoolctl is installed) on one thread. For tests
    that make many tiny calls or check learning, not speed: on a shared, loaded machine every
    multi-threaded region waits for both cores, which turns microseconds into milliseconds."""
    previous = bnpy.set_num_threads(1)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield
        else:
            with threadpool_limits(1):
                yield
    finally:
        bnpy.set_num_threads(previous)


# -- gradients -------------------------------------------------------------------------------
def numeric_gradient(f, a, h=1e-6):
    """Central differences of the scalar f() w.r.t. every element of the float64 array ``a``
    (perturbed in place and restored)."""
    grad = np.zeros_like(a, dtype=np.float64)
    flat, gflat = a.reshape(-1), grad.reshape(-1)
    assert np.shares_memory(flat, a)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        plus = f()
        flat[i] = old - h
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def check_layer_gradients(layer, x, rng, training_forward=None, rtol=1e-6, atol=1e-8):
    """Finite-difference check of a built float64 layer: dx and every trainable weight's
    gradient for L = Σ forward(x)·dy with a random upstream dy.

    Central differences with h = 1e-6 in float64 have a truncation error ~h²·|f'''| and a
    rounding error ~1e-16·|L|/h, both far below 1e-6 relative for these O(1) values."""
    forward = training_forward or (lambda: layer.forward(x, training=True))
    y = forward()
    dy = rng.standard_normal(y.shape)

    def loss():
        return float(np.sum(forward() * dy))

    with one_thread():
        forward()
        dx = layer.backward(dy.copy())
        analytic = [dx] + [g.copy() for g in layer.gradients]
        numeric = [numeric_gradient(loss, x)] + [
            numeric_gradient(loss, w) for w in layer.trainable_weights
        ]
    names = ["dx"] + ["d" + p.name for p in layer.trainable_params]
    assert len(analytic) == len(numeric), (names, len(analytic))
    for name, a, n in zip(names, analytic, numeric):
        assert a.shape == n.shape, (name, a.shape, n.shape)
        scale = max(1.0, float(np.abs(n).max()))
        err = float(np.abs(a - n).max())
        assert err <= atol + rtol * scale, "{} {}: max error {:.3e} (scale {:.3e})".format(
            layer.name, name, err, scale
        )


# -- Fashion-MNIST files (Debian's dataset-fashion-mnist) -------------------------------------
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx_gz(path):
    """An IDX file (big-endian header: 0, 0, type code, ndim; then ndim uint32 sizes) → uint8 array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError("{}: not an unsigned-byte IDX file".format(path))
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims))


def fashion_mnist_paths():
    names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    paths = [os.path.join(FASHION_MNIST_DIR, n) for n in names]
    return paths if all(os.path.exists(p) for p in paths) else None


# -- the article's network -------------------------------------------------------------------
def build_article_model(comment1=False, comment2=False, comment3=False, comment4=False):
    """build_LeNet5() of the article's script, written exactly as there (Keras-1 arguments),
    with its four commented-out lines ("注释1".."注释4") switchable."""
    import warnings

    from bnpy.layers.convolutional import (
        Convolution2D,
        MaxPooling2D,
    )  # noqa: F401  (the script's import line)
    from bnpy.layers.core import Activation, Dense, Flatten
    from bnpy.layers.normalization import BatchNormalization
    from bnpy.models import Sequential

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the Keras-2 API update notices
        model = Sequential()
        model.add(
            Convolution2D(
                96, 11, 11, border_mode='same', input_shape=(32, 32, 3), dim_ordering='tf'
            )
        )
        if comment1:
            model.add(BatchNormalization())
        model.add(MaxPooling2D(pool_size=(2, 2)))
        if comment2:
            model.add(BatchNormalization())
        model.add(Activation("tanh"))
        model.add(Convolution2D(120, 1, 1, border_mode='valid'))
        if comment3:
            model.add(BatchNormalization())
        model.add(Flatten())
        model.add(Dense(10))
        model.add(BatchNormalization())
        model.add(Activation("relu"))
        if comment4:
            model.add(Dense(10))
        model.add(Activation('softmax'))
    return model
