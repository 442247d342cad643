"""Batch Normalization (Ioffe & Szegedy 2015) on NumPy arrays: the functional API over the C core.

For an input ``x`` whose channel axis is ``axis`` (Keras's default ``-1``: channels last), every
channel ``c`` is normalised over all the other axes, i.e. over ``m`` values per channel
(``m = x.size // x.shape[axis]``)::

    mean[c] = (1/m) Σ x                          (over every axis but `axis`)
    var[c]  = (1/m) Σ (x − mean[c])²             (biased: what normalises, and what Keras 2 averages)
    x̂       = (x − mean[c]) / √(var[c] + ε)      (ε inside the square root)
    y       = γ[c]·x̂ + β[c]

Conventions (Keras 2.0's, the defaults here): ``epsilon=1e-3``; ``momentum=0.99`` weights the *old*
moving value, ``moving = momentum·moving + (1 − momentum)·batch``; moving mean starts at 0 and
moving variance at 1. PyTorch's ``BatchNorm(momentum=p, eps=e)`` corresponds to bnpy's
``momentum=1 − p, epsilon=e`` with ``count=m`` in :func:`update_moving_stats` (PyTorch averages the
unbiased variance), so PyTorch's defaults (0.1, 1e-5) are bnpy's ``momentum=0.9, epsilon=1e-5``.

Arrays: float32 or float64, all arrays of one call in the same dtype (a mismatch is a TypeError,
never a silent cast; a list, which has no dtype of its own, takes that of the call's first array); any strides (C-contiguous, aligned, native-endian input takes the fast path,
other input is copied once). ``gamma``/``beta`` may be ``None`` (no scale / no centre). The statistics
are Σ(x − s) and Σ(x − s)² about a shift s near the channel's mean, summed in x's precision over
short blocks (a float32 vector lane adds at most 32 terms) whose sums are added in double; a
block that fails a check (its mean far from s, values near the float range's limits, NaN/Inf) is
summed again exactly in double about its own mean and merged with Chan's formula. Never
E[x²] − E[x]² about 0: a large offset (1e4 + N(0, 1) in float32) loses nothing, the mean is within
~1e-7·σ and the variance ~1e-7 relative. The gradient sums Σdy and Σdy·(x − mean) are summed in
double term by term. Results do not depend on the thread count
(``bnpy.set_num_threads``); the GIL is released while the kernels run. A NaN or Inf stays in its
own channel: it makes that channel's statistics and outputs NaN and leaves the others untouched.
When ``var + ε`` is exactly 0 (a constant channel with ``epsilon=0``), ``1/√(var + ε)`` is taken as
0 (as PyTorch does), so ``y = β`` and ``dx = 0`` instead of NaN.

``out=``: an existing C-contiguous, writeable array of x's shape and dtype that receives ``y`` (or
``dx``); it may be the very input array ``x`` (or ``dy`` in the backwards) for an in-place update,
but it must not overlap any other argument. Every argument is checked before anything is written:
a bad one raises TypeError/ValueError naming the function and the argument, and ``out`` and the
moving statistics are left untouched.
"""

from .. import _core

__all__ = [
    "batch_norm_forward",
    "batch_norm_inference",
    "batch_norm_backward",
    "batch_norm_inference_backward",
    "update_moving_stats",
]


def batch_norm_forward(x, gamma, beta, axis=-1, epsilon=1e-3, out=None):
    """Training-mode batch normalization with the batch's own statistics.

    ``mean = (1/m) Σ x``, ``var = (1/m) Σ (x − mean)²`` per channel (biased), and
    ``y = (x − mean)·γ/√(var + ε) + β``.

    Args:
        x: array of any rank >= 1; ``x.shape[axis]`` is the number of channels C. Needs at least
            one value per channel (with one, ``var = 0`` and ``y = β``).
        gamma, beta: shape (C,) or None (γ = 1, β = 0).
        axis: the channel axis (negative counts from the end).
        epsilon: ε >= 0, added to the variance inside the square root.
        out: optional array for ``y`` (see the module docstring); may be ``x`` itself.

    Returns:
        ``(y, mean, var)``: ``y`` of x's shape, ``mean`` and the biased ``var`` of shape (C,), all
        in x's dtype. Pass ``mean`` and ``var`` to :func:`batch_norm_backward` and
        :func:`update_moving_stats`.
    """
    return _core.batch_norm_forward(x, gamma, beta, axis, epsilon, out)


def batch_norm_inference(x, gamma, beta, mean, var, axis=-1, epsilon=1e-3, out=None):
    """Inference-mode batch normalization with given (moving) statistics.

    ``y = (x − mean)·γ/√(var + ε) + β`` per channel.

    Args:
        x: array of any rank >= 1 with C = ``x.shape[axis]`` channels.
        gamma, beta: shape (C,) or None (γ = 1, β = 0).
        mean, var: shape (C,), e.g. the moving mean and variance.
        axis, epsilon, out: as in :func:`batch_norm_forward`.

    Returns:
        ``y``, of x's shape and dtype.
    """
    return _core.batch_norm_inference(x, gamma, beta, mean, var, axis, epsilon, out)


def batch_norm_backward(dy, x, gamma, mean, var, axis=-1, epsilon=1e-3, out=None):
    """Gradient of :func:`batch_norm_forward` (training mode: the statistics depend on x).

    With ``x̂ = (x − mean)/√(var + ε)`` and m values per channel, the compact form::

        dβ = Σ dy
        dγ = Σ dy·x̂
        dx = γ/√(var + ε) · (dy − dβ/m − x̂·dγ/m)

    Args:
        dy: upstream gradient, x's shape and dtype.
        x: the forward's input.
        gamma: shape (C,) or None (γ = 1).
        mean, var: shape (C,), the batch statistics :func:`batch_norm_forward` returned.
        axis, epsilon: the forward's.
        out: optional array for ``dx``; may be ``dy`` or ``x`` itself.

    Returns:
        ``(dx, dgamma, dbeta)``. ``dgamma = Σ dy·x̂`` does not involve γ, so it is returned even
        when ``gamma`` is None (a layer without scale simply ignores it); likewise ``dbeta``.
    """
    return _core.batch_norm_backward(dy, x, gamma, mean, var, axis, epsilon, out)


def batch_norm_inference_backward(dy, x, gamma, mean, var, axis=-1, epsilon=1e-3, out=None):
    """Gradient of :func:`batch_norm_inference` (the statistics are constants).

    ``dx = γ·dy/√(var + ε)``, ``dγ = Σ dy·x̂``, ``dβ = Σ dy`` with ``x̂ = (x − mean)/√(var + ε)``.
    This is the backward of a frozen layer or of one run in inference mode.

    Args and returns: as in :func:`batch_norm_backward` (``dgamma`` returned for gamma=None too).
    """
    return _core.batch_norm_inference_backward(dy, x, gamma, mean, var, axis, epsilon, out)


def update_moving_stats(moving_mean, moving_var, mean, var, momentum=0.99, count=None):
    """Update the moving statistics in place with one batch's statistics; returns None.

    ::

        moving_mean = momentum·moving_mean + (1 − momentum)·mean
        moving_var  = momentum·moving_var  + (1 − momentum)·var·k

    with ``k = 1`` when ``count`` is None (Keras 2.0: the biased batch variance), and
    ``k = m/(m − 1)`` when ``count = m`` (the values per channel behind ``var``; the paper's and
    PyTorch's unbiased estimate); ``count=1`` gives ``k = 1``, never a NaN.

    Args:
        moving_mean, moving_var: float32/float64 ndarrays of shape (C,), C-contiguous and
            writeable (updated in place, never copied).
        mean, var: shape (C,), e.g. from :func:`batch_norm_forward`.
        momentum: in [0, 1], the weight of the old value (Keras's convention; PyTorch's
            ``momentum=p`` is ``1 − p`` here).
        count: None or an int >= 1.
    """
    return _core.update_moving_stats(moving_mean, moving_var, mean, var, momentum, count)
