"""The statistics of ``BatchNormalization(synchronized=True)`` over the global batch.

Each rank holds a shard of the batch. Forward: the shard's (count, mean, M2) in float64
(``ops.batch_norm_local_stats``), one Allgather of them, the same merge in rank order on every
rank (``ops.batch_norm_merge_stats``: the same bits everywhere, so the moving statistics stay
identical), and the shard normalised with the whole batch's float64 statistics. Backward: the
shard's Σdy and Σdy·(x − mean) in float64, one Allreduce of them, and dx from the whole batch's
sums. The layer's dγ and dβ are the shard's own sums, which the data-parallel step adds over the
ranks with every other weight gradient.
"""

import contextlib

import numpy as np

from .. import ops
from . import _context

_suspended = 0


def active_context():
    """The job's Context when statistics must be synchronized (init() ran, more than one rank,
    not inside unsynchronized()), else None: the layer then is the ordinary one."""
    context = _context.current()
    if _suspended or context is None or context.size == 1:
        return None
    return context


@contextlib.contextmanager
def unsynchronized():
    """Within the block, synchronized layers use their own process's batch statistics: for work
    every rank repeats on the same data on its own (the population statistics of a model), where
    the collectives would only add time (and the count would be that of every rank's copy)."""
    global _suspended
    _suspended += 1
    try:
        yield
    finally:
        _suspended -= 1


def normalize(layer, x, context):
    """``(y, backward, (mean, var, count))`` of a training forward on this rank's shard x, as
    BatchNormalization._normalize_with_batch_statistics returns them: ``backward(dy)`` gives
    (dx, dgamma, dbeta), and mean, var (in x's dtype) and count are the global batch's."""
    count, mean, m2 = ops.batch_norm_local_stats(x, axis=layer.axis)
    channels = mean.shape[0]
    send = np.empty(1 + 2 * channels)
    send[0], send[1 : 1 + channels], send[1 + channels :] = count, mean, m2
    gathered = np.empty((context.size, send.size))
    context.allgather(send, gathered)
    total, mean, var = ops.batch_norm_merge_stats(
        gathered[:, 0], gathered[:, 1 : 1 + channels], gathered[:, 1 + channels :]
    )
    if total == 0:
        raise ValueError(
            "{}: the global batch has no values per channel (every shard is empty)".format(
                layer.name
            )
        )
    gamma, axis, epsilon = layer.gamma, layer.axis, layer.epsilon
    y = ops.batch_norm_normalize(x, gamma, layer.beta, mean, var, axis=axis, epsilon=epsilon)

    def backward(dy):
        return _backward(dy, x, gamma, mean, var, axis, epsilon, total, context)

    return y, backward, (mean.astype(x.dtype), var.astype(x.dtype), total)


def _backward(dy, x, gamma, mean, var, axis, epsilon, total, context):
    """(dx, dgamma, dbeta) with the layer's backward signature: dx from the global sums, dγ and
    dβ of this shard alone (summed over the ranks with the other gradients)."""
    sum_dy, sum_dyxc = ops.batch_norm_grad_sums(dy, x, mean, axis=axis)
    sums = np.concatenate([sum_dy, sum_dyxc])
    context.allreduce_sum(sums)
    channels = sum_dy.shape[0]
    dx = ops.batch_norm_backward_apply(
        dy,
        x,
        gamma,
        mean,
        var,
        sums[:channels],
        sums[channels:],
        total,
        axis=axis,
        epsilon=epsilon,
    )
    invstd = 1.0 / np.sqrt(var + epsilon)
    return dx, (sum_dyxc * invstd).astype(x.dtype), sum_dy.astype(x.dtype)
