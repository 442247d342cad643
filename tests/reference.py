"""NumPy twins of bnpy's C kernels, written for clarity in float64.

Each twin has the name and argument order of the function in ``bnpy.ops`` (which calls the C kernel
of the same name) and returns float64 results; tests compare the kernels against them.
"""

import numpy as np

# ---- batch normalization (csrc/batchnorm.c) ---------------------------------------------------


def _channel_view(x, axis):
    """x as float64 with the channel axis moved last, reshaped to (m, C)."""
    x = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)
    return x.reshape(-1, x.shape[-1])


def _broadcast(v, ndim, axis):
    """A (C,) vector shaped to broadcast against an array of rank ndim along axis."""
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(v, dtype=np.float64).reshape(shape)


def _invstd(var, epsilon):
    """1/√(var + ε), with 0 where var + ε == 0 (the kernels' convention instead of infinity)."""
    v = np.asarray(var, dtype=np.float64) + epsilon
    with np.errstate(divide="ignore"):
        return np.where(v == 0.0, 0.0, 1.0 / np.sqrt(v))


def _ones_if_none(v, channels):
    return np.ones(channels) if v is None else np.asarray(v, dtype=np.float64)


def _zeros_if_none(v, channels):
    return np.zeros(channels) if v is None else np.asarray(v, dtype=np.float64)


def batch_norm_forward(x, gamma, beta, axis=-1, epsilon=1e-3):
    """(y, mean, var): mean and biased var over every axis but `axis`, y = (x − mean)·γ/√(var+ε) + β.

    Computed as the kernel does, about a pivot (here each channel's first value; the kernel takes
    the rounded mean of its first values: any value within the data works): with
    d = x − pivot, exact for data far from 0 such as 1e4 + N(0, 1),
    mean_d = (1/m) Σ d (corrected by the mean residual), var = (1/m) Σ (d − mean_d)²,
    y = (d − mean_d)·γ/√(var + ε) + β and mean = pivot + mean_d. Subtracting a rounded mean
    from x instead would cost up to one ulp of |x| (1.8e-12 at 1e4) in every y.
    """
    x = np.asarray(x, dtype=np.float64)
    axis = axis % x.ndim
    flat = _channel_view(x, axis)
    channels = flat.shape[1]
    pivot = flat[0] if flat.shape[0] else np.zeros(channels)
    d = flat - pivot
    mean_d = d.mean(axis=0)
    mean_d = mean_d + (d - mean_d).mean(axis=0)  # corrected two-pass: removes the sum's rounding
    var = ((d - mean_d) ** 2).mean(axis=0)
    scale = _ones_if_none(gamma, channels) * _invstd(var, epsilon)
    b = lambda v: _broadcast(v, x.ndim, axis)  # noqa: E731
    y = ((x - b(pivot)) - b(mean_d)) * b(scale) + b(_zeros_if_none(beta, channels))
    return y, pivot + mean_d, var


def batch_norm_inference(x, gamma, beta, mean, var, axis=-1, epsilon=1e-3):
    """y = (x − mean)·γ/√(var + ε) + β with the given statistics."""
    x = np.asarray(x, dtype=np.float64)
    axis = axis % x.ndim
    channels = x.shape[axis]
    scale = _ones_if_none(gamma, channels) * _invstd(var, epsilon)
    b = lambda v: _broadcast(v, x.ndim, axis)  # noqa: E731
    return (x - b(mean)) * b(scale) + b(_zeros_if_none(beta, channels))


def batch_norm_backward(dy, x, gamma, mean, var, axis=-1, epsilon=1e-3):
    """(dx, dgamma, dbeta) of the training forward, in the compact form

    x̂ = (x − mean)/√(var + ε),  dβ = Σdy,  dγ = Σdy·x̂,  dx = γ/√(var + ε)·(dy − dβ/m − x̂·dγ/m).
    """
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    axis = axis % x.ndim
    channels = x.shape[axis]
    m = x.size // channels if channels else 0
    b = lambda v: _broadcast(v, x.ndim, axis)  # noqa: E731
    s = _invstd(var, epsilon)
    xhat = (x - b(mean)) * b(s)
    reduce_axes = tuple(d for d in range(x.ndim) if d != axis)
    dbeta = dy.sum(axis=reduce_axes)
    dgamma = (dy * xhat).sum(axis=reduce_axes)
    g = _ones_if_none(gamma, channels)
    if m == 0:
        return np.zeros_like(x), dgamma, dbeta
    dx = b(g * s) * (dy - b(dbeta) / m - xhat * b(dgamma) / m)
    return dx, dgamma, dbeta


def batch_norm_inference_backward(dy, x, gamma, mean, var, axis=-1, epsilon=1e-3):
    """(dx, dgamma, dbeta) with the statistics held fixed: dx = γ·dy/√(var + ε)."""
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    axis = axis % x.ndim
    channels = x.shape[axis]
    b = lambda v: _broadcast(v, x.ndim, axis)  # noqa: E731
    s = _invstd(var, epsilon)
    reduce_axes = tuple(d for d in range(x.ndim) if d != axis)
    dbeta = dy.sum(axis=reduce_axes)
    dgamma = (dy * (x - b(mean)) * b(s)).sum(axis=reduce_axes)
    dx = dy * b(_ones_if_none(gamma, channels) * s)
    return dx, dgamma, dbeta


def update_moving_stats(moving_mean, moving_var, mean, var, momentum=0.99, count=None):
    """The updated (moving_mean, moving_var) as new arrays (the kernel updates in place):

    moving = momentum·moving + (1 − momentum)·batch, the variance first multiplied by
    m/(m − 1) when count = m > 1.
    """
    correction = count / (count - 1) if count is not None and count > 1 else 1.0
    keep, take = momentum, 1.0 - momentum
    new_mean = keep * np.asarray(moving_mean, np.float64) + take * np.asarray(mean, np.float64)
    new_var = (
        keep * np.asarray(moving_var, np.float64) + take * np.asarray(var, np.float64) * correction
    )
    return new_mean, new_var
