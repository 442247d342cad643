"""bnpy.ops: the functional API over the C kernels, what layers, notebooks and users call.

- batch normalization: :mod:`bnpy.ops.batchnorm`
- convolution and pooling: :mod:`bnpy.ops.conv`
- image warps: :mod:`bnpy.ops.image`
"""
from .batchnorm import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference,
    batch_norm_inference_backward,
    update_moving_stats,
)

__all__ = [
    "batch_norm_forward",
    "batch_norm_inference",
    "batch_norm_backward",
    "batch_norm_inference_backward",
    "update_moving_stats",
]
