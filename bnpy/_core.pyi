"""Typed stubs of the C extension bnpy._core (see csrc/). Use the kernels through bnpy.ops."""

HAVE_OPENMP: int

def set_num_threads(n: int, /) -> int: ...
def get_num_threads() -> int: ...

# ---- image warps (csrc/affine.c, csrc/py_image.c) ----
import numpy as _np
from typing import Literal as _Literal, Optional as _Optional

def affine_warp(
    images: _np.ndarray,
    matrices: _np.ndarray,
    order: int = 0,
    fill_mode: _Literal["constant", "nearest", "reflect", "wrap"] = "nearest",
    cval: float = 0.0,
    data_format: _Literal["channels_last", "channels_first"] = "channels_last",
    out: _Optional[_np.ndarray] = None,
) -> _np.ndarray: ...
