"""Typed stubs of the C extension bnpy._core (see csrc/). Use the kernels through bnpy.ops."""

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

HAVE_OPENMP: int

def set_num_threads(n: int, /) -> int: ...
def get_num_threads() -> int: ...

# ---- batch normalization (csrc/py_batchnorm.c); documented in bnpy.ops.batchnorm -------------
def batch_norm_forward(
    x: ArrayLike,
    gamma: ArrayLike | None,
    beta: ArrayLike | None,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...
def batch_norm_inference(
    x: ArrayLike,
    gamma: ArrayLike | None,
    beta: ArrayLike | None,
    mean: ArrayLike,
    var: ArrayLike,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> NDArray[np.floating]: ...
def batch_norm_backward(
    dy: ArrayLike,
    x: ArrayLike,
    gamma: ArrayLike | None,
    mean: ArrayLike,
    var: ArrayLike,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...
def batch_norm_inference_backward(
    dy: ArrayLike,
    x: ArrayLike,
    gamma: ArrayLike | None,
    mean: ArrayLike,
    var: ArrayLike,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...
def update_moving_stats(
    moving_mean: NDArray[np.floating],
    moving_var: NDArray[np.floating],
    mean: ArrayLike,
    var: ArrayLike,
    momentum: float,
    count: int | None,
    /,
) -> None: ...

# ---- convolution and pooling (csrc/conv.c, csrc/pool.c, csrc/py_conv.c) ----------------------------
# Positional only, like every _core function (bnpy.ops.conv gives keywords and defaults).
# x is C-contiguous after conversion: (N, H, W, C), or (N, C, H, W) when channels_first.
def im2col(
    x: np.ndarray,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    channels_first: bool,
    out: np.ndarray | None = None,
    dh: int = 1,
    dw: int = 1,
    /,
) -> np.ndarray: ...
def col2im(
    dcol: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    channels_first: bool,
    out: np.ndarray | None = None,
    dh: int = 1,
    dw: int = 1,
    /,
) -> np.ndarray: ...
def conv2d_setup(
    caller: str,
    x: ArrayLike,
    kernel: ArrayLike,
    bias: ArrayLike | None,
    strides: int | tuple[int, int],
    padding: str | tuple[tuple[int, int], tuple[int, int]],
    dilation_rate: int | tuple[int, int],
    channels_first: bool,
    /,
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray | None,
    tuple[int, int, int, int, int, int, int, int],
    tuple[int, int],
    tuple[int, int],
]: ...
def conv_output(
    y: np.ndarray, bias: np.ndarray | None, images: int, channels_first: bool, /
) -> np.ndarray: ...
def conv_output_backward(
    dy: np.ndarray, with_bias: bool, channels_first: bool, /
) -> tuple[np.ndarray, np.ndarray | None]: ...
def pool2d_setup(
    caller: str,
    x: ArrayLike,
    pool_size: int | tuple[int, int],
    strides: int | tuple[int, int] | None,
    padding: str,
    channels_first: bool,
    /,
) -> tuple[np.ndarray, tuple[int, int, int, int, int, int, int, int]]: ...
def pool2d(
    x: np.ndarray,
    take_max: bool,
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    channels_first: bool,
    /,
) -> tuple[np.ndarray, np.ndarray | None]: ...
def pool2d_backward(
    dy: np.ndarray,
    argmax: np.ndarray | None,
    x_shape: tuple[int, int, int, int],
    ph: int,
    pw: int,
    sh: int,
    sw: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    channels_first: bool,
    /,
) -> np.ndarray: ...
def conv_direct_available() -> bool: ...
def conv2d_direct(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None,
    sh: int,
    sw: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    /,
) -> tuple[np.ndarray, np.ndarray]: ...
def conv2d_direct_dkernel(
    dy: np.ndarray,
    xpad: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    pad_top: int,
    pad_bottom: int,
    pad_left: int,
    pad_right: int,
    /,
) -> np.ndarray: ...

# ---- FFT convolution (csrc/conv_fft.c, csrc/py_conv_fft.c); used by bnpy.ops._conv_fft ----

def fft_spectrum(
    a: np.ndarray, P_h: int, P_w: int, shift_h: int, shift_w: int, /
) -> np.ndarray: ...
def conv2d_fft_forward(
    xspec: np.ndarray,
    kspec: np.ndarray,
    bias: np.ndarray | None,
    N: int,
    Cout: int,
    out_h: int,
    out_w: int,
    P_w: int,
    /,
) -> np.ndarray: ...
def conv2d_fft_dkernel(
    dy: np.ndarray,
    xspec: np.ndarray,
    Cin: int,
    kh: int,
    kw: int,
    pad_top: int,
    pad_left: int,
    P_w: int,
    /,
) -> np.ndarray: ...
def conv2d_fft_dinput(
    dy: np.ndarray, ktspec: np.ndarray, Cin: int, H: int, W: int, P_w: int, /
) -> np.ndarray: ...

# ---- image warps (csrc/affine.c, csrc/py_image.c); documented in bnpy.ops.image ----

def affine_warp(
    images: np.ndarray,
    matrices: np.ndarray,
    order: int,
    fill_mode: Literal["constant", "nearest", "reflect", "wrap"],
    cval: float,
    channels_first: bool,
    out: np.ndarray | None,
    /,
) -> np.ndarray: ...

# ---- the array cache of bnpy._memory (csrc/py_memory.c); internal ----
def _array_cache_enter() -> Any: ...
def _array_cache_exit(previous: Any, /) -> None: ...
def _array_cache_info() -> tuple[int, int, int, int]: ...
def _array_cache_release() -> int: ...

# ---- batch-norm variants (csrc/bn_renorm.h, csrc/py_bn_variants.c); see bnpy.ops.batchnorm ----
def batch_renorm_forward(
    x: ArrayLike,
    gamma: ArrayLike | None,
    beta: ArrayLike | None,
    renorm_mean: ArrayLike,
    renorm_stddev: ArrayLike,
    axis: int,
    epsilon: float,
    rmin: float,
    rmax: float,
    dmax: float,
    out: NDArray[np.floating] | None,
    /,
) -> tuple[
    NDArray[np.floating],
    NDArray[np.floating],
    NDArray[np.floating],
    NDArray[np.floating],
    NDArray[np.floating],
]: ...
def batch_renorm_backward(
    dy: ArrayLike,
    x: ArrayLike,
    gamma: ArrayLike | None,
    mean: ArrayLike,
    var: ArrayLike,
    r: ArrayLike,
    d: ArrayLike,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...
def ghost_batch_norm_forward(
    x: ArrayLike,
    gamma: ArrayLike | None,
    beta: ArrayLike | None,
    virtual_batch_size: int,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...
def ghost_batch_norm_backward(
    dy: ArrayLike,
    x: ArrayLike,
    gamma: ArrayLike | None,
    mean: ArrayLike,
    var: ArrayLike,
    virtual_batch_size: int,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...

# ---- synchronized batch norm (csrc/bn_sync.c, csrc/py_bn_sync.c); documented in bnpy.ops.batchnorm ----

def batch_norm_local_stats(
    x: ArrayLike, axis: int, /
) -> tuple[int, NDArray[np.float64], NDArray[np.float64]]: ...
def batch_norm_merge_stats(
    counts: ArrayLike, means: ArrayLike, m2s: ArrayLike, /
) -> tuple[int, NDArray[np.float64], NDArray[np.float64]]: ...
def batch_norm_normalize(
    x: ArrayLike,
    gamma: ArrayLike | None,
    beta: ArrayLike | None,
    mean: ArrayLike,
    var: ArrayLike,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> NDArray[np.floating]: ...
def batch_norm_grad_sums(
    dy: ArrayLike, x: ArrayLike, mean: ArrayLike, axis: int, /
) -> tuple[NDArray[np.float64], NDArray[np.float64]]: ...
def batch_norm_backward_apply(
    dy: ArrayLike,
    x: ArrayLike,
    gamma: ArrayLike | None,
    mean: ArrayLike,
    var: ArrayLike,
    sum_dy: ArrayLike,
    sum_dyxc: ArrayLike,
    count: float,
    axis: int,
    epsilon: float,
    out: NDArray[np.floating] | None,
    /,
) -> NDArray[np.floating]: ...
