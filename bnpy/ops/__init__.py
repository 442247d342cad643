"""bnpy.ops: the functional API over the C kernels, what layers, notebooks and users call.

- batch normalization: :mod:`bnpy.ops.batchnorm`
- convolution and pooling: :mod:`bnpy.ops.conv`
- image warps: :mod:`bnpy.ops.image`
"""

from .batchnorm import (
    batch_norm_backward,
    batch_norm_backward_apply,
    batch_norm_forward,
    batch_norm_grad_sums,
    batch_norm_inference,
    batch_norm_inference_backward,
    batch_norm_local_stats,
    batch_norm_merge_stats,
    batch_norm_normalize,
    batch_renorm_backward,
    batch_renorm_forward,
    ghost_batch_norm_backward,
    ghost_batch_norm_forward,
    update_moving_stats,
)
from .conv import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    conv2d,
    conv2d_backward,
    conv2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)
from .image import affine_warp

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
    "batch_norm_local_stats",
    "batch_norm_merge_stats",
    "batch_norm_normalize",
    "batch_norm_grad_sums",
    "batch_norm_backward_apply",
    "conv2d_forward",
    "conv2d_backward",
    "conv2d",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "affine_warp",
]
