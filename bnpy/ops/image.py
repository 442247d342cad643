"""Image warps on the C core: the affine warp behind ImageDataGenerator's rotation, shift, shear
and zoom.

Convention (scipy.ndimage.affine_transform's, which Keras 2.0 applies to every channel): a matrix
maps *output* pixel coordinates to *input* coordinates on (row, col),

    input(r, c) sampled for output(row, col) with  [r, c] = M[:2, :2] @ [row, col] + M[:2, 2],

so a positive M[0, 2] samples from lower rows and moves the content up.
"""

import numpy as np

from .. import _core
from .conv import _channels_first

__all__ = ["affine_warp", "FILL_MODES"]

#: The fill modes of :func:`affine_warp` (scipy.ndimage's names, as Keras 2.0 passes them).
FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def affine_warp(
    images, matrices, order=0, fill_mode="nearest", cval=0.0, data_format="channels_last", out=None
):
    """Warp a batch of images, one affine matrix per image, in one C call (threads over images and rows).

    Args:
        images: float32 or float64 array, (N, H, W, C) for ``data_format='channels_last'`` or
            (N, C, H, W) for ``'channels_first'``; a single image (H, W, C) / (C, H, W) is accepted
            with a single matrix. Other dtypes are a TypeError (convert first: the warp never casts).
        matrices: (N, 3, 3) or (N, 2, 3) output->input matrices on (row, col) homogeneous
            coordinates (the third row of a 3x3 matrix is ignored), or one (3, 3)/(2, 3) matrix
            used for every image. Any real dtype; converted to float64; must be finite.
        order: 0 for nearest neighbour, the pixel at ``floor(r + 0.5), floor(c + 0.5)`` (scipy's
            ``order=0``, as Keras 2.0; exact ties round up), 1 for bilinear (scipy's ``order=1``,
            as Keras >= 2.1.4).
        fill_mode: how points outside the input are filled: ``'constant'`` (``cval``; a point is
            outside when a coordinate is < 0 or > size - 1), ``'nearest'`` (edge pixel repeated),
            ``'reflect'`` (``d c b a | a b c d | d c b a``), ``'wrap'`` (scipy's legacy periodic
            extension with period size - 1, as Keras 2.0 got it).
        cval: the fill value of constant mode.
        data_format: ``'channels_last'`` or ``'channels_first'``.
        out: optional C-contiguous output array of the images' shape and dtype, not sharing memory
            with the input.

    Returns:
        The warped images, same shape and dtype as ``images`` (``out`` if given).
    """
    arr = images if isinstance(images, np.ndarray) else np.asarray(images)
    mats = matrices if isinstance(matrices, np.ndarray) else np.asarray(matrices)
    single = arr.ndim == 3 and mats.ndim == 2
    given_out = out
    if single:
        arr, mats = arr[np.newaxis], mats[np.newaxis]
        if isinstance(out, np.ndarray) and out.ndim == 3:
            out = out[np.newaxis]
    elif arr.ndim == 4 and mats.ndim == 2:
        mats = np.broadcast_to(mats, (arr.shape[0],) + mats.shape)
    channels_first = _channels_first(data_format, "affine_warp")
    result = _core.affine_warp(arr, mats, order, fill_mode, cval, channels_first, out)
    if given_out is not None:
        return given_out
    return result[0] if single else result
