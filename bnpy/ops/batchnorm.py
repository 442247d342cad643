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

import math

import numpy as np

from .. import _core

__all__ = [
    "batch_norm_forward",
    "batch_norm_inference",
    "batch_norm_backward",
    "batch_norm_inference_backward",
    "update_moving_stats",
    "batch_renorm_forward",
    "batch_renorm_backward",
    "ghost_batch_norm_forward",
    "ghost_batch_norm_backward",
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


# ------------------------------------------------------------------------------------------------
# Batch Renormalization (Ioffe 2017) and ghost (virtual) batches (Hoffer et al. 2017)
# ------------------------------------------------------------------------------------------------
def batch_renorm_forward(
    x,
    gamma,
    beta,
    renorm_mean,
    renorm_stddev,
    axis=-1,
    epsilon=1e-3,
    rmin=0.0,
    rmax=math.inf,
    dmax=math.inf,
    out=None,
):
    """Training-mode Batch Renormalization (Ioffe 2017, tf.keras's ``renorm=True``).

    Per channel, with the batch mean ``μ_B`` and biased variance ``σ²_B`` (as in
    :func:`batch_norm_forward`) and the renorm statistics ``μ = renorm_mean``,
    ``s = max(renorm_stddev, √ε)``::

        σ_B = √(σ²_B + ε)
        r   = clip(σ_B / s, rmin, rmax)
        d   = clip((μ_B − μ) / s, −dmax, dmax)
        y   = γ·((x − μ_B)/σ_B · r + d) + β

    The paper clips r to [1/rmax, rmax]: pass ``rmin=1/rmax``. tf.keras's defaults when
    ``renorm_clipping`` omits a key are rmin = 0, rmax = ∞, dmax = ∞ (no clipping). With
    ``rmin = rmax = 1`` and ``dmax = 0`` this is :func:`batch_norm_forward` bit for bit.

    Args:
        x, gamma, beta, axis, epsilon, out: as in :func:`batch_norm_forward`.
        renorm_mean, renorm_stddev: shape (C,), the moving mean and standard deviation the
            corrections are measured against (not modified).
        rmin, rmax: 0 <= rmin <= rmax, rmax may be ``math.inf``.
        dmax: >= 0, may be ``math.inf``.

    Returns:
        ``(y, mean, var, r, d)``: y of x's shape; the batch ``mean``, biased ``var`` and the
        corrections ``r``, ``d``, shape (C,). Pass them to :func:`batch_renorm_backward`.
    """
    return _core.batch_renorm_forward(
        x, gamma, beta, renorm_mean, renorm_stddev, axis, epsilon, rmin, rmax, dmax, out
    )


def batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis=-1, epsilon=1e-3, out=None):
    """Gradient of :func:`batch_renorm_forward` with r and d held constant (stop_gradient).

    With ``x̂ = (x − mean)/√(var + ε)`` and m values per channel::

        dβ = Σ dy
        dγ = Σ dy·(x̂·r + d) = r·Σ dy·x̂ + d·Σ dy
        dx = γ·r/√(var + ε) · (dy − Σdy/m − x̂·Σ(dy·x̂)/m)

    i.e. :func:`batch_norm_backward` with ``γ·r`` for γ (the gradient still flows through the
    batch statistics that normalize x, not through r and d).

    Args:
        dy, x, gamma, axis, epsilon, out: as in :func:`batch_norm_backward`.
        mean, var, r, d: shape (C,), what :func:`batch_renorm_forward` returned.

    Returns:
        ``(dx, dgamma, dbeta)``.
    """
    return _core.batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis, epsilon, out)


def _same_or_disjoint(a, b):
    """Whether arrays a and b share no memory, or are the very same buffer and layout."""
    if not np.may_share_memory(a, b):
        return True
    return a.ctypes.data == b.ctypes.data and a.strides == b.strides and a.shape == b.shape


def _mergeable(x, axis):
    """Whether the virtual batches of x can be one call of the training kernels: x an ndarray
    whose dims between the batch axis and the channel axis are all 1 ((N, C) Dense outputs,
    channels-first feature maps). Seen as (V, G·C, ...), channel g·C + c being channel c of
    virtual batch g, a reshape of x; G·C channels of V·inner values each suit the kernels, which
    pay a fixed cost per channel and call."""
    if not isinstance(x, np.ndarray) or x.ndim < 2 or x.dtype not in (np.float32, np.float64):
        return False  # the ghost kernel's glue reports what is wrong
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        return False
    if not -x.ndim <= axis < x.ndim or axis % x.ndim == 0:
        return False
    return math.prod(x.shape[1 : axis % x.ndim]) == 1


def _ghost_split(func, x, virtual_batch_size, axis):
    """(x C-contiguous, the channel axis, the number G of virtual batches, the merged shape) for a
    mergeable x, the batch size checked against virtual_batch_size."""
    if isinstance(virtual_batch_size, (bool, np.bool_)) or not isinstance(
        virtual_batch_size, (int, np.integer)
    ):
        raise TypeError(
            "{}: virtual_batch_size must be an int, got {}".format(
                func, type(virtual_batch_size).__name__
            )
        )
    batch = x.shape[0]
    if virtual_batch_size < 1 or batch == 0 or batch % virtual_batch_size:
        raise ValueError(
            "{}: the batch size {} must be a positive multiple of virtual_batch_size {}".format(
                func, batch, virtual_batch_size
            )
        )
    axis = axis % x.ndim
    groups = batch // virtual_batch_size
    merged = (virtual_batch_size, groups * x.shape[axis]) + x.shape[axis + 1 :]
    return np.ascontiguousarray(x), axis, groups, merged


def _ghost_out(func, out, like, name, merged):
    """out (checked as the kernels check it: x's shape and dtype, C-contiguous, writeable)
    reshaped to the merged layout, a view the kernel writes into; None stays None."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(
            "{}: out must be a numpy.ndarray or None, got {}".format(func, type(out).__name__)
        )
    if out.shape != like.shape or out.dtype != like.dtype:
        raise ValueError(
            "{}: out must have the shape {} and dtype {} of {}, got {} {}".format(
                func, like.shape, like.dtype, name, out.shape, out.dtype
            )
        )
    if not (out.flags.c_contiguous and out.flags.aligned and out.dtype.isnative):
        raise ValueError(
            "{}: out must be C-contiguous, aligned and native-endian (it is written in "
            "place)".format(func)
        )
    if not out.flags.writeable:
        raise ValueError("{}: out must be writeable (it is written in place)".format(func))
    return out.reshape(merged)


def _tiled_channels(func, name, value, channels, groups, dtype):
    """A (C,) parameter repeated for the G·C merged channels (None stays None)."""
    if value is None:
        return None
    value = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=dtype)
    if value.shape != (channels,):
        raise ValueError(
            "{}: {} must have shape ({},) (one value per channel), got shape {}".format(
                func, name, channels, value.shape
            )
        )
    return np.tile(value, groups)


def ghost_batch_norm_forward(x, gamma, beta, virtual_batch_size, axis=-1, epsilon=1e-3, out=None):
    """Ghost (virtual) batch normalization as tf.keras's ``virtual_batch_size`` does it.

    A batch of N = V·G samples (V = ``virtual_batch_size``) makes G virtual batches of V samples
    each, normalized on their own (their own mean and biased variance per channel; γ, β shared).
    The members of virtual batch g are samples g, g + G, g + 2G, …: tf.keras reshapes the batch
    to (V, G, ...) and keeps the G axis out of the reduction::

        y[g::G] = batch_norm_forward(x[g::G], γ, β)            g = 0 … G − 1

    How, without copying x: when every dim between the batch and the channel axis is 1 ((N, C)
    Dense outputs, channels-first feature maps), x is viewed as (V, G·C, ...) and the training
    forward runs once with γ and β repeated G times; otherwise (channels-last feature maps) the
    ghost kernel (csrc/bn_ghost.h) takes each sample as a block and merges the statistics of a
    virtual batch's samples.

    Args:
        x: array of rank >= 2, batch axis 0; N must be a positive multiple of V.
        gamma, beta, axis, epsilon, out: as in :func:`batch_norm_forward`; ``axis`` must not be 0.
        virtual_batch_size: V >= 1.

    Returns:
        ``(y, mean, var)``: y of x's shape, ``mean`` and biased ``var`` of shape (G, C), row g
        for virtual batch g.
    """
    if not _mergeable(x, axis):
        return _core.ghost_batch_norm_forward(
            x, gamma, beta, virtual_batch_size, axis, epsilon, out
        )
    func = "ghost_batch_norm_forward"
    x, axis, groups, merged = _ghost_split(func, x, virtual_batch_size, axis)
    merged_out = _ghost_out(func, out, x, "x", merged)
    channels = x.shape[axis]
    y, mean, var = _core.batch_norm_forward(
        x.reshape(merged),
        _tiled_channels(func, "gamma", gamma, channels, groups, x.dtype),
        _tiled_channels(func, "beta", beta, channels, groups, x.dtype),
        1,
        epsilon,
        merged_out,
    )
    return (
        out if out is not None else y.reshape(x.shape),
        mean.reshape(groups, channels),
        var.reshape(groups, channels),
    )


def ghost_batch_norm_backward(
    dy, x, gamma, mean, var, virtual_batch_size, axis=-1, epsilon=1e-3, out=None
):
    """Gradient of :func:`ghost_batch_norm_forward`: :func:`batch_norm_backward` for each virtual
    batch, dγ and dβ summed over the virtual batches (in double, then rounded to x's dtype).

    Args:
        dy, x, gamma, axis, epsilon, out: as in :func:`batch_norm_backward`.
        mean, var: shape (G, C), what :func:`ghost_batch_norm_forward` returned.
        virtual_batch_size: the forward's V.

    Returns:
        ``(dx, dgamma, dbeta)``.
    """
    if not (_mergeable(x, axis) and isinstance(dy, np.ndarray) and dy.shape == x.shape):
        return _core.ghost_batch_norm_backward(
            dy, x, gamma, mean, var, virtual_batch_size, axis, epsilon, out
        )
    func = "ghost_batch_norm_backward"
    x, axis, groups, merged = _ghost_split(func, x, virtual_batch_size, axis)
    dy = np.ascontiguousarray(dy)
    merged_out = _ghost_out(func, out, dy, "dy", merged)
    channels = x.shape[axis]
    stats = []
    for name, value in (("mean", mean), ("var", var)):
        value = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=x.dtype)
        if value.shape != (groups, channels):
            raise ValueError(
                "{}: {} must have shape ({}, {}) (one row per virtual batch), got shape {}".format(
                    func, name, groups, channels, value.shape
                )
            )
        stats.append(value.reshape(-1))
    dx, dgamma, dbeta = _core.batch_norm_backward(
        dy.reshape(merged),
        x.reshape(merged),
        _tiled_channels(func, "gamma", gamma, channels, groups, x.dtype),
        stats[0],
        stats[1],
        1,
        epsilon,
        merged_out,
    )
    return (
        out if out is not None else dx.reshape(x.shape),
        dgamma.reshape(groups, channels).sum(axis=0, dtype=np.float64).astype(dgamma.dtype),
        dbeta.reshape(groups, channels).sum(axis=0, dtype=np.float64).astype(dbeta.dtype),
    )


# ------------------------------------------------------------------------------------------------
# Synchronized batch normalization: the phases of a batch split across processes (csrc/bn_sync.c)
# ------------------------------------------------------------------------------------------------
# A batch of m values per channel is split into shards r = 0, 1, ... of n_r values, one per
# process. Each process computes its shard's statistics, the processes exchange them (bnpy.
# distributed does it over MPI) and merge them in the same order, normalise their own shard with
# the whole batch's statistics, and in the backward exchange the two gradient sums. Everything
# that crosses processes is float64 whatever x's dtype, so nothing is lost between the phases:
#
#   forward   (n_r, mean_r, M2_r) = batch_norm_local_stats(x_r)
#             (m, mean, var)      = batch_norm_merge_stats(all n_r, mean_r, M2_r)  (same on all)
#             y_r                 = batch_norm_normalize(x_r, γ, β, mean, var)
#   backward  (S1_r, S2_r)        = batch_norm_grad_sums(dy_r, x_r, mean);  S1, S2 = Σ_r of them
#             dx_r                = batch_norm_backward_apply(dy_r, x_r, γ, mean, var, S1, S2, m)
#             dβ = Σ_r S1_r,  dγ = Σ_r S2_r/√(var + ε)
#
# With one shard this is batch_norm_forward and batch_norm_backward (the tests check it).

__all__ += [
    "batch_norm_local_stats",
    "batch_norm_merge_stats",
    "batch_norm_normalize",
    "batch_norm_grad_sums",
    "batch_norm_backward_apply",
]


def batch_norm_local_stats(x, axis=-1):
    """One shard's per-channel statistics in float64, for :func:`batch_norm_merge_stats`.

    ``n = x.size // x.shape[axis]``, ``mean = (1/n) Σ x`` and ``M2 = Σ (x − mean)²`` per channel
    (two passes in double about each chunk's mean, so a large offset loses nothing). A shard with
    no values gives ``n = 0`` and zeros.

    Args:
        x: float32 or float64 array of rank >= 1; ``x.shape[axis]`` channels.
        axis: the channel axis.

    Returns:
        ``(n, mean, m2)``: an int and two float64 arrays of shape (C,).
    """
    return _core.batch_norm_local_stats(x, axis)


def batch_norm_merge_stats(counts, means, m2s):
    """The statistics of a whole batch from its shards', merged in the order given.

    Chan's formula, shard by shard: with ``δ = mean_b − mean_a`` and ``n = n_a + n_b``,
    ``mean = mean_a + δ·n_b/n`` and ``M2 = M2_a + M2_b + δ²·n_a·n_b/n``; then ``var = M2/n``
    (biased, what normalises). The same input in the same order gives the same bits on every
    process. Shards with a count of 0 are skipped; with no values at all, mean and var are 0.

    Args:
        counts: (R,) values per channel of each shard, finite and >= 0 (float64 or ints).
        means, m2s: (R, C) float64, row r from shard r's :func:`batch_norm_local_stats`.

    Returns:
        ``(m, mean, var)``: the total count (int) and two float64 arrays of shape (C,).
    """
    if isinstance(counts, (list, tuple)) or np.issubdtype(np.asarray(counts).dtype, np.integer):
        counts = np.asarray(counts, dtype=np.float64)  # counts are integers: exact in float64
    return _core.batch_norm_merge_stats(counts, means, m2s)


def batch_norm_normalize(x, gamma, beta, mean, var, axis=-1, epsilon=1e-3, out=None):
    """``y = (x − mean)·γ/√(var + ε) + β`` with float64 statistics.

    :func:`batch_norm_inference` takes ``mean`` and ``var`` in x's dtype, which for float32
    rounds the mean by an ulp of its size (at an offset of 1e4 that is 1e-3, a large part of σ):
    here they stay float64 and every element is computed in double.

    Args:
        x: float32/float64 array; gamma, beta: (C,) of x's dtype, or None.
        mean, var: float64 (C,), e.g. from :func:`batch_norm_merge_stats`.
        axis, epsilon, out: as in :func:`batch_norm_forward`.

    Returns:
        ``y`` of x's shape and dtype.
    """
    return _core.batch_norm_normalize(x, gamma, beta, mean, var, axis, epsilon, out)


def batch_norm_grad_sums(dy, x, mean, axis=-1):
    """The backward's two per-channel sums over this shard, in float64:
    ``sum_dy = Σ dy`` and ``sum_dyxc = Σ dy·(x − mean)`` (mean: the whole batch's, float64).

    Summed over every shard they give the whole batch's sums, from which
    :func:`batch_norm_backward_apply` computes dx, and ``dβ = Σ dy``, ``dγ = Σ dy·(x − mean)/√(var
    + ε)``.

    Returns:
        ``(sum_dy, sum_dyxc)``, float64 arrays of shape (C,).
    """
    return _core.batch_norm_grad_sums(dy, x, mean, axis)


def batch_norm_backward_apply(
    dy, x, gamma, mean, var, sum_dy, sum_dyxc, count, axis=-1, epsilon=1e-3, out=None
):
    """dx of the training backward from the whole batch's statistics and gradient sums.

    With ``s = 1/√(var + ε)``, the whole batch's ``S1 = Σdy``, ``S2 = Σdy·(x − mean)`` and ``m``
    values per channel::

        dx = γ·s·(dy − S1/m) − γ·s³·(S2/m)·(x − mean)

    which is :func:`batch_norm_backward`'s ``γ·s·(dy − Σdy/m − x̂·Σdy·x̂/m)`` with sums over every
    shard.

    Args:
        dy, x: this shard's upstream gradient and forward input (one shape, one dtype).
        gamma: (C,) of x's dtype or None.
        mean, var, sum_dy, sum_dyxc: float64 (C,), the whole batch's.
        count: m, the whole batch's values per channel (at least this shard's).
        axis, epsilon: the forward's; out: optional array for dx (may be dy or x).

    Returns:
        ``dx`` of x's shape and dtype.
    """
    return _core.batch_norm_backward_apply(
        dy, x, gamma, mean, var, sum_dy, sum_dyxc, count, axis, epsilon, out
    )
