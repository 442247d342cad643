"""NumPy twins of bnpy's batch-norm variants, written for clarity in float64: Batch
Renormalization (Ioffe 2017, as tf.keras computes it), ghost (virtual) batches, and the layer's
moving-statistics updates (cumulative average, renorm).

Each op twin has the name and argument order of the function in ``bnpy.ops`` and returns float64
results; the batch statistics come from the batch-norm twins of tests/reference.py.
"""

import math

import numpy as np
from reference import _broadcast, _ones_if_none, _zeros_if_none, batch_norm_backward
from reference import batch_norm_forward as _bn_forward

# ---- Batch Renormalization -------------------------------------------------------------------


def renorm_corrections(mean, var, renorm_mean, renorm_stddev, epsilon, rmin, rmax, dmax):
    """(r, d): σ_B = √(var + ε), s = max(renorm_stddev, √ε),
    r = clip(σ_B/s, rmin, rmax), d = clip((mean − renorm_mean)/s, −dmax, dmax)."""
    stddev = np.sqrt(np.asarray(var, np.float64) + epsilon)
    s = np.maximum(np.asarray(renorm_stddev, np.float64), math.sqrt(epsilon))
    r = np.clip(stddev / s, rmin, rmax)
    d = np.clip(
        (np.asarray(mean, np.float64) - np.asarray(renorm_mean, np.float64)) / s, -dmax, dmax
    )
    return r, d


def renorm_with_corrections(x, gamma, beta, r, d, axis=-1, epsilon=1e-3):
    """y = γ·(x̂·r + d) + β with the batch's own statistics in x̂ and r, d given (constants):
    the function whose gradient batch_renorm_backward is."""
    x = np.asarray(x, dtype=np.float64)
    axis = axis % x.ndim
    channels = x.shape[axis]
    xhat, mean, var = _bn_forward(x, None, None, axis, epsilon)
    b = lambda v: _broadcast(v, x.ndim, axis)  # noqa: E731
    gamma = _ones_if_none(gamma, channels)
    return b(gamma) * (xhat * b(r) + b(d)) + b(_zeros_if_none(beta, channels)), mean, var


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
):
    """(y, mean, var, r, d), r and d from the batch statistics against the renorm statistics."""
    _, mean, var = _bn_forward(x, None, None, axis, epsilon)
    r, d = renorm_corrections(mean, var, renorm_mean, renorm_stddev, epsilon, rmin, rmax, dmax)
    y, _, _ = renorm_with_corrections(x, gamma, beta, r, d, axis, epsilon)
    return y, mean, var, r, d


def batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis=-1, epsilon=1e-3):
    """(dx, dgamma, dbeta) with r, d constant: x̂ = (x − mean)/√(var + ε),
    dβ = Σdy, dγ = Σdy·(x̂·r + d), dx = batch norm's training dx with γ·r for γ."""
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    axis = axis % x.ndim
    channels = x.shape[axis]
    g = _ones_if_none(gamma, channels) * np.asarray(r, np.float64)
    dx, dxhat_sum, dbeta = batch_norm_backward(dy, x, g, mean, var, axis, epsilon)
    # batch_norm_backward's dgamma is Σdy·x̂; renorm's adds the r and d of y = γ·(x̂·r + d) + β
    dgamma = np.asarray(r, np.float64) * dxhat_sum + np.asarray(d, np.float64) * dbeta
    return dx, dgamma, dbeta


# ---- ghost (virtual) batches -----------------------------------------------------------------


def ghost_batch_norm_forward(x, gamma, beta, virtual_batch_size, axis=-1, epsilon=1e-3):
    """(y, mean, var): batch norm applied to each virtual batch on its own. With
    G = N/virtual_batch_size, virtual batch g holds samples g, g + G, g + 2G, … (tf.keras reshapes
    the batch to (virtual_batch_size, G, ...)); mean and var have one row per virtual batch."""
    x = np.asarray(x, dtype=np.float64)
    groups = len(x) // virtual_batch_size
    y = np.empty_like(x)
    means, variances = [], []
    for g in range(groups):
        y[g::groups], mean, var = _bn_forward(x[g::groups], gamma, beta, axis, epsilon)
        means.append(mean)
        variances.append(var)
    return y, np.stack(means), np.stack(variances)


def ghost_batch_norm_backward(dy, x, gamma, mean, var, virtual_batch_size, axis=-1, epsilon=1e-3):
    """(dx, dgamma, dbeta): batch norm's backward per virtual batch (grouped as in
    ghost_batch_norm_forward), dγ and dβ summed over the virtual batches."""
    dy = np.asarray(dy, dtype=np.float64)
    groups = len(x) // virtual_batch_size
    dx = np.empty_like(dy)
    dgamma = dbeta = 0.0
    for g in range(groups):
        dx[g::groups], dg, db = batch_norm_backward(
            dy[g::groups], x[g::groups], gamma, mean[g], var[g], axis, epsilon
        )
        dgamma, dbeta = dgamma + dg, dbeta + db
    return dx, dgamma, dbeta


# ---- the layer's moving statistics -------------------------------------------------------------


def ema(moving, batch, momentum):
    """momentum·moving + (1 − momentum)·batch (Keras's sense of momentum)."""
    return momentum * np.asarray(moving, np.float64) + (1.0 - momentum) * np.asarray(
        batch, np.float64
    )


def renorm_layer_update(state, mean, var, epsilon, momentum, renorm_momentum):
    """tf.keras's renorm updates of one training batch, on a dict of float64 arrays with keys
    moving_mean, moving_stddev, moving_variance, renorm_mean, renorm_stddev (a new dict):

        σ_B = √(var + ε)
        renorm_mean   ← EMA(renorm_momentum) of mean      renorm_stddev ← … of σ_B
        moving_mean   ← EMA(momentum) of mean             moving_stddev ← … of σ_B
        moving_variance = max(moving_stddev² − ε, 0)
    """
    stddev = np.sqrt(np.asarray(var, np.float64) + epsilon)
    new = {
        "renorm_mean": ema(state["renorm_mean"], mean, renorm_momentum),
        "renorm_stddev": ema(state["renorm_stddev"], stddev, renorm_momentum),
        "moving_mean": ema(state["moving_mean"], mean, momentum),
        "moving_stddev": ema(state["moving_stddev"], stddev, momentum),
    }
    new["moving_variance"] = np.maximum(new["moving_stddev"] ** 2 - epsilon, 0.0)
    return new


def cumulative_average(batch_values):
    """The plain average of every batch's value (PyTorch's momentum=None after len(batch_values)
    batches): (1/n) Σ_k value_k."""
    return np.mean(np.asarray(batch_values, np.float64), axis=0)


def batch_statistics(x, axis=-1):
    """(mean, biased var, count) of x per channel, the count m being the values per channel."""
    x = np.asarray(x, dtype=np.float64)
    axis = axis % x.ndim
    reduce_axes = tuple(d for d in range(x.ndim) if d != axis)
    return x.mean(axis=reduce_axes), x.var(axis=reduce_axes), x.size // x.shape[axis]
