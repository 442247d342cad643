"""NumPy twins of bnpy's image kernels and of Keras 2.0's per-image augmentation, for the tests.

Written for clarity, in float64, without scipy. ``affine_warp`` restates what
``scipy.ndimage.affine_transform(..., order=0 or 1, mode=fill_mode, cval=cval)`` does to each
channel (the formulas of scipy's boundary handling, checked against scipy itself in
tests/test_image_warp.py when scipy is installed). ``keras_random_transform`` restates Keras
2.0.8's ``ImageDataGenerator.random_transform`` for one image, composing its matrices with
``np.dot`` in Keras's order.
"""

import numpy as np

FILL_MODES = ("constant", "nearest", "reflect", "wrap")


def map_coordinate(x, size, fill_mode):
    """Map continuous coordinates ``x`` along an axis of ``size`` pixels into the range the fill
    mode reads (scipy's map_coordinate). Constant mode is handled by the caller (``inside``)."""
    x = np.array(x, dtype=np.float64)
    last = float(size - 1)
    if fill_mode == "nearest":
        return np.clip(x, 0.0, last)
    if fill_mode in ("reflect", "wrap") and size <= 1:
        return np.zeros_like(x)
    below, above = x < 0, x > last
    if fill_mode == "reflect":  # half-sample symmetric: x -> -x - 1 about the edge, period 2*size
        period = 2.0 * size
        lo = x[below]
        far = lo < -period
        lo[far] = period * np.trunc(-lo[far] / period) + lo[far]
        x[below] = np.where(lo < -float(size), lo + period, -lo - 1.0)
        hi = x[above]
        hi = hi - period * np.trunc(hi / period)
        x[above] = np.where(hi >= float(size), period - hi - 1.0, hi)
    elif fill_mode == "wrap":  # scipy's legacy wrap: period size - 1
        lo = x[below]
        x[below] = lo + last * (np.trunc(-lo / last) + 1.0)
        hi = x[above]
        x[above] = hi - last * np.trunc(hi / last)
    return x


def map_index(i, size, fill_mode):
    """Integer pixel indices (a rounded coordinate or a bilinear neighbour) mapped into [0, size)."""
    i = np.asarray(i, dtype=np.int64)
    if fill_mode == "reflect":
        i = np.mod(i, 2 * size)
        return np.where(i >= size, 2 * size - 1 - i, i)
    if fill_mode == "wrap":
        return np.mod(i, size)
    return np.clip(i, 0, size - 1)


def warp_one_channel(plane, matrix, order, fill_mode, cval):
    """One 2-D plane (H, W): output[row, col] = plane sampled at matrix[:2,:2] @ (row, col) + matrix[:2, 2]."""
    height, width = plane.shape
    rows, cols = np.meshgrid(
        np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij"
    )
    m = np.asarray(matrix, dtype=np.float64)
    r = m[0, 0] * rows + m[0, 1] * cols + m[0, 2]
    c = m[1, 0] * rows + m[1, 1] * cols + m[1, 2]
    if fill_mode == "constant":
        inside = (r >= 0) & (r <= height - 1) & (c >= 0) & (c <= width - 1)
        r, c = np.where(inside, r, 0.0), np.where(inside, c, 0.0)
    else:
        inside = np.ones(r.shape, dtype=bool)
        r, c = map_coordinate(r, height, fill_mode), map_coordinate(c, width, fill_mode)
    plane = plane.astype(np.float64)
    if order == 0:  # nearest: round half up, floor(x + 0.5)
        ri = map_index(np.floor(r + 0.5), height, fill_mode)
        ci = map_index(np.floor(c + 0.5), width, fill_mode)
        result = plane[ri, ci]
    else:  # bilinear: blend along columns, then along rows
        r0, c0 = np.floor(r), np.floor(c)
        tr, tc = r - r0, c - c0
        r0i, r1i = map_index(r0, height, fill_mode), map_index(r0 + 1, height, fill_mode)
        c0i, c1i = map_index(c0, width, fill_mode), map_index(c0 + 1, width, fill_mode)
        top = (1.0 - tc) * plane[r0i, c0i] + tc * plane[r0i, c1i]
        bottom = (1.0 - tc) * plane[r1i, c0i] + tc * plane[r1i, c1i]
        result = (1.0 - tr) * top + tr * bottom
    return np.where(inside, result, float(cval))


def affine_warp(
    images, matrices, order=0, fill_mode="nearest", cval=0.0, data_format="channels_last"
):
    """Twin of bnpy.ops.image.affine_warp for a batch (N, H, W, C) / (N, C, H, W) and matrices
    (N, 2|3, 3); computed in float64 and returned in the images' dtype."""
    images = np.asarray(images)
    channels_last = data_format == "channels_last"
    planes = np.moveaxis(images, -1, 1) if channels_last else images  # (N, C, H, W)
    out = np.empty(planes.shape, dtype=np.float64)
    for n in range(planes.shape[0]):
        for ch in range(planes.shape[1]):
            out[n, ch] = warp_one_channel(planes[n, ch], matrices[n], order, fill_mode, cval)
    out = np.moveaxis(out, 1, -1) if channels_last else out
    return out.astype(images.dtype)


def transform_matrix_offset_center(matrix, x, y):
    """Keras 2.0: conjugate ``matrix`` by a translation to o = (x/2 + 0.5, y/2 + 0.5)."""
    o_x = float(x) / 2 + 0.5
    o_y = float(y) / 2 + 0.5
    offset_matrix = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset_matrix = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return np.dot(np.dot(offset_matrix, matrix), reset_matrix)


def keras_random_transform(
    x,
    rotation_range=0.0,
    width_shift_range=0.0,
    height_shift_range=0.0,
    shear_range=0.0,
    zoom_range=(1.0, 1.0),
    channel_shift_range=0.0,
    fill_mode="nearest",
    cval=0.0,
    horizontal_flip=False,
    vertical_flip=False,
    data_format="channels_last",
    order=0,
):
    """Keras 2.0.8's random_transform of one 3-D image, step by step, drawing from np.random."""
    if data_format == "channels_last":
        row_axis, col_axis, channel_axis = 0, 1, 2
    else:
        channel_axis, row_axis, col_axis = 0, 1, 2
    theta = (
        np.pi / 180 * np.random.uniform(-rotation_range, rotation_range) if rotation_range else 0
    )
    tx = (
        np.random.uniform(-height_shift_range, height_shift_range) * x.shape[row_axis]
        if height_shift_range
        else 0
    )
    ty = (
        np.random.uniform(-width_shift_range, width_shift_range) * x.shape[col_axis]
        if width_shift_range
        else 0
    )
    shear = np.random.uniform(-shear_range, shear_range) if shear_range else 0
    if zoom_range[0] == 1 and zoom_range[1] == 1:
        zx, zy = 1, 1
    else:
        zx, zy = np.random.uniform(zoom_range[0], zoom_range[1], 2)

    transform_matrix = None
    if theta != 0:
        transform_matrix = np.array(
            [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
        )
    if tx != 0 or ty != 0:
        shift_matrix = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
        transform_matrix = (
            shift_matrix if transform_matrix is None else np.dot(transform_matrix, shift_matrix)
        )
    if shear != 0:
        shear_matrix = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
        transform_matrix = (
            shear_matrix if transform_matrix is None else np.dot(transform_matrix, shear_matrix)
        )
    if zx != 1 or zy != 1:
        zoom_matrix = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
        transform_matrix = (
            zoom_matrix if transform_matrix is None else np.dot(transform_matrix, zoom_matrix)
        )

    if transform_matrix is not None:
        h, w = x.shape[row_axis], x.shape[col_axis]
        transform_matrix = transform_matrix_offset_center(transform_matrix, h, w)
        planes = np.moveaxis(x, channel_axis, 0)
        warped = [warp_one_channel(p, transform_matrix, order, fill_mode, cval) for p in planes]
        x = np.moveaxis(np.stack(warped, axis=0), 0, channel_axis).astype(x.dtype)

    if channel_shift_range != 0:
        planes = np.moveaxis(x, channel_axis, 0)
        min_x, max_x = np.min(planes), np.max(planes)
        shifted = [
            np.clip(p + np.random.uniform(-channel_shift_range, channel_shift_range), min_x, max_x)
            for p in planes
        ]
        x = np.moveaxis(np.stack(shifted, axis=0), 0, channel_axis)
    if horizontal_flip and np.random.random() < 0.5:
        x = np.flip(x, axis=col_axis)
    if vertical_flip and np.random.random() < 0.5:
        x = np.flip(x, axis=row_axis)
    return x
