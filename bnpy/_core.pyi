"""Typed stubs of the C extension bnpy._core (see csrc/). Use the kernels through bnpy.ops."""

HAVE_OPENMP: int

def set_num_threads(n: int, /) -> int: ...
def get_num_threads() -> int: ...

# ---- batch normalization (csrc/py_batchnorm.c); documented in bnpy.ops.batchnorm -------------
from typing import Optional, Tuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

def batch_norm_forward(
    x: ArrayLike, gamma: Optional[ArrayLike], beta: Optional[ArrayLike], axis: int, epsilon: float,
    out: Optional[NDArray[np.floating]], /,
) -> Tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...
def batch_norm_inference(
    x: ArrayLike, gamma: Optional[ArrayLike], beta: Optional[ArrayLike], mean: ArrayLike,
    var: ArrayLike, axis: int, epsilon: float, out: Optional[NDArray[np.floating]], /,
) -> NDArray[np.floating]: ...
def batch_norm_backward(
    dy: ArrayLike, x: ArrayLike, gamma: Optional[ArrayLike], mean: ArrayLike, var: ArrayLike,
    axis: int, epsilon: float, out: Optional[NDArray[np.floating]], /,
) -> Tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...
def batch_norm_inference_backward(
    dy: ArrayLike, x: ArrayLike, gamma: Optional[ArrayLike], mean: ArrayLike, var: ArrayLike,
    axis: int, epsilon: float, out: Optional[NDArray[np.floating]], /,
) -> Tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]: ...
def update_moving_stats(
    moving_mean: NDArray[np.floating], moving_var: NDArray[np.floating], mean: ArrayLike,
    var: ArrayLike, momentum: float, count: Optional[int], /,
) -> None: ...
