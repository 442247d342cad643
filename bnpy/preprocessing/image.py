"""Real-time image augmentation as Keras 2.0 has it (``keras.preprocessing.image``), on bnpy's C warp.

:class:`ImageDataGenerator` takes every constructor argument of Keras 2.0.8 and behaves the same:
the same random draws from ``np.random`` in the same order (so a seed gives Keras's augmentations),
the same transform matrices composed in the same order, and the same nearest-neighbour warp
(``scipy.ndimage.affine_transform(order=0)`` per channel in Keras; one call of the C kernel
:func:`bnpy.ops.affine_warp` for a whole batch here). The geometry of ``random_transform``:

    M  = R(theta) . T(tx, ty) . Sh(shear) . Z(zx, zy)          (only the factors that were drawn)
    M' = Tr(o) . M . Tr(-o),   o = (H/2 + 0.5, W/2 + 0.5)       (Keras's centre, half a pixel off)
    output(row, col) = input(M'[:2, :2] @ (row, col) + M'[:2, 2])

with R = [[cos, -sin], [sin, cos]], T = translation by (tx, ty) = (rows, cols),
Sh = [[1, -sin s], [0, cos s]] and Z = diag(zx, zy); then a channel shift, then the flips.

Image files (``load_img``, ``array_to_img``, ``flow_from_directory``, ``load_from_directory``,
``save_to_dir``) need Pillow, an optional extra: ``pip install "bnpy[image]"``.
"""

import warnings

import numpy as np

from ..ops.image import FILL_MODES, affine_warp
from ._image_functions import (  # the public ones are part of this module's API, as in Keras
    _check_data_format,
    _float_array,
    _floatx,
    apply_transform,
    array_to_img,
    flip_axis,
    img_to_array,
    list_pictures,
    load_from_directory,
    load_img,
    random_channel_shift,
    random_rotation,
    random_shear,
    random_shift,
    random_zoom,
    transform_matrix_offset_center,
)
from ._image_iterators import DirectoryIterator, Iterator, NumpyArrayIterator

__all__ = [
    "ImageDataGenerator",
    "Iterator",
    "NumpyArrayIterator",
    "DirectoryIterator",
    "load_from_directory",
    "array_to_img",
    "img_to_array",
    "load_img",
    "list_pictures",
    "apply_transform",
    "transform_matrix_offset_center",
    "flip_axis",
    "random_rotation",
    "random_shift",
    "random_shear",
    "random_zoom",
    "random_channel_shift",
]


# ---- the generator -------------------------------------------------------------------------------


class ImageDataGenerator:
    """Generate batches of image data with real-time data augmentation (Keras 2.0.8's arguments).

    Args:
        featurewise_center: subtract the data set's per-channel mean (computed by ``fit``).
        samplewise_center: subtract each image's mean over its channel axis, per pixel (Keras 2.0.x).
        featurewise_std_normalization: divide by the data set's per-channel std (+1e-7).
        samplewise_std_normalization: divide each pixel by its std over the channels (+1e-7).
        zca_whitening: multiply flattened images by the ZCA matrix computed by ``fit``.
        zca_epsilon: added to the covariance's eigenvalues before the inverse square root.
        rotation_range: degrees; theta ~ U(-range, range).
        width_shift_range, height_shift_range: fractions of the width/height; shifts ~ U(-r, r)*size.
        shear_range: radians; shear ~ U(-r, r).
        zoom_range: a float z for [1-z, 1+z], or [lower, upper]; zx and zy are drawn independently.
        channel_shift_range: each channel gets + U(-r, r), then is clipped to the image's range.
        fill_mode: 'constant', 'nearest', 'reflect' or 'wrap' (see :func:`bnpy.ops.affine_warp`).
        cval: the fill value of 'constant'.
        horizontal_flip, vertical_flip: flip with probability 1/2.
        rescale: multiply by this (before any other standardization), if not None or 0.
        preprocessing_function: called on each image (3-D) first in ``standardize``.
        data_format: 'channels_last' (default) or 'channels_first'.
        interpolation_order: 0 (nearest, Keras 2.0's warp, the default) or 1 (bilinear, as
            Keras >= 2.1.4); a bnpy addition.
    """

    def __init__(
        self,
        featurewise_center=False,
        samplewise_center=False,
        featurewise_std_normalization=False,
        samplewise_std_normalization=False,
        zca_whitening=False,
        zca_epsilon=1e-6,
        rotation_range=0.0,
        width_shift_range=0.0,
        height_shift_range=0.0,
        shear_range=0.0,
        zoom_range=0.0,
        channel_shift_range=0.0,
        fill_mode="nearest",
        cval=0.0,
        horizontal_flip=False,
        vertical_flip=False,
        rescale=None,
        preprocessing_function=None,
        data_format=None,
        interpolation_order=0,
    ):
        func = "ImageDataGenerator"
        data_format = _check_data_format(data_format, func)
        self.featurewise_center = featurewise_center
        self.samplewise_center = samplewise_center
        self.featurewise_std_normalization = featurewise_std_normalization
        self.samplewise_std_normalization = samplewise_std_normalization
        self.zca_whitening = zca_whitening
        self.zca_epsilon = zca_epsilon
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = shear_range
        self.channel_shift_range = channel_shift_range
        if fill_mode not in FILL_MODES:
            raise ValueError(
                "{}: fill_mode must be one of {}, got {!r}".format(
                    func, ", ".join(FILL_MODES), fill_mode
                )
            )
        self.fill_mode = fill_mode
        self.cval = cval
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.rescale = rescale
        self.preprocessing_function = preprocessing_function
        if interpolation_order not in (0, 1):
            raise ValueError(
                "{}: interpolation_order must be 0 (nearest) or 1 (bilinear), got {!r}".format(
                    func, interpolation_order
                )
            )
        self.interpolation_order = interpolation_order

        self.data_format = data_format
        if data_format == "channels_first":
            self.channel_axis, self.row_axis, self.col_axis = 1, 2, 3
        else:
            self.channel_axis, self.row_axis, self.col_axis = 3, 1, 2

        self.mean = None
        self.std = None
        self.principal_components = None

        if np.isscalar(zoom_range):
            self.zoom_range = [1 - zoom_range, 1 + zoom_range]
        elif len(zoom_range) == 2:
            self.zoom_range = [zoom_range[0], zoom_range[1]]
        else:
            raise ValueError(
                "{}: zoom_range must be a float or a tuple or list of two floats, got {!r}".format(
                    func, zoom_range
                )
            )

    # -- iterators --

    def flow(
        self,
        x,
        y=None,
        batch_size=32,
        shuffle=True,
        seed=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
    ):
        """An endless iterator of augmented, standardized float32 batches ``(x_batch, y_batch)``
        (``x_batch`` alone when y is None); each batch is warped by one C call."""
        return NumpyArrayIterator(
            x,
            y,
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            data_format=self.data_format,
            save_to_dir=save_to_dir,
            save_prefix=save_prefix,
            save_format=save_format,
        )

    def flow_from_directory(
        self,
        directory,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        follow_links=False,
        interpolation="nearest",
    ):
        """An endless iterator over a tree directory/<class>/<images> (read batch by batch)."""
        return DirectoryIterator(
            directory,
            self,
            target_size=target_size,
            color_mode=color_mode,
            classes=classes,
            class_mode=class_mode,
            data_format=self.data_format,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            save_to_dir=save_to_dir,
            save_prefix=save_prefix,
            save_format=save_format,
            follow_links=follow_links,
            interpolation=interpolation,
        )

    # -- per image (Keras's API) --

    def standardize(self, x):
        """Normalize one image (3-D), in Keras 2.0's order: preprocessing_function, rescale,
        samplewise centre/std, featurewise centre/std, ZCA. Float input is modified in place."""
        x = self.preprocessing_function(x) if self.preprocessing_function else x
        x = _float_array(x)
        return self._standardize_batch(x[np.newaxis], preprocessed=True)[0]

    def random_transform(self, x, seed=None):
        """Randomly augment one image (3-D); see the module docstring for the geometry."""
        if seed is not None:
            np.random.seed(seed)
        x = _float_array(x)
        if x.ndim != 3:
            raise ValueError(
                "ImageDataGenerator.random_transform: x must be one image of rank 3, got shape {}".format(
                    x.shape
                )
            )
        return self._random_transform_batch(x[np.newaxis])[0]

    # -- per batch (what the iterators use) --

    def _draw_parameters(self, count, height, width, channels):
        """Every image's random parameters, drawn from np.random exactly as Keras 2.0.8 draws them
        image by image: theta, tx, ty, shear, (zx, zy), the channel shifts, the horizontal flip, the
        vertical flip, each only if its range asks for it.

        Each of those draws takes one double U from the global RandomState in turn
        (``uniform(low, high)`` is ``low + (high - low) * U``, ``random()`` is U), so the whole
        stream is drawn at once as a (count, draws per image) table of U and each column turned
        into its parameter with the same formula: the same numbers as Keras's per-image calls
        (tests/test_image_generator.py checks it against a per-image reference) at a fraction of
        the cost of 3-10 Python calls per image."""
        columns = {}  # name -> slice of the draws of one image
        width_of = [
            ("theta", 1 if self.rotation_range else 0),
            ("tx", 1 if self.height_shift_range else 0),
            ("ty", 1 if self.width_shift_range else 0),
            ("shear", 1 if self.shear_range else 0),
            ("zoom", 0 if (self.zoom_range[0] == 1 and self.zoom_range[1] == 1) else 2),
            ("channel_shift", channels if self.channel_shift_range != 0 else 0),
            ("flip_h", 1 if self.horizontal_flip else 0),
            ("flip_v", 1 if self.vertical_flip else 0),
        ]
        position = 0
        for name, size in width_of:
            columns[name] = slice(position, position + size)
            position += size
        draws = np.random.random_sample((count, position)) if position else np.empty((count, 0))

        def uniform(name, low, high):
            return float(low) + (float(high) - float(low)) * draws[:, columns[name]]

        theta, tx, ty, shear = np.zeros(count), np.zeros(count), np.zeros(count), np.zeros(count)
        if self.rotation_range:
            theta = np.pi / 180 * uniform("theta", -self.rotation_range, self.rotation_range)[:, 0]
        if self.height_shift_range:
            tx = uniform("tx", -self.height_shift_range, self.height_shift_range)[:, 0] * height
        if self.width_shift_range:
            ty = uniform("ty", -self.width_shift_range, self.width_shift_range)[:, 0] * width
        if self.shear_range:
            shear = uniform("shear", -self.shear_range, self.shear_range)[:, 0]
        zoom = np.ones((count, 2))
        if columns["zoom"].stop > columns["zoom"].start:
            zoom = uniform("zoom", self.zoom_range[0], self.zoom_range[1])
        shifts = None
        if self.channel_shift_range != 0:
            shifts = uniform("channel_shift", -self.channel_shift_range, self.channel_shift_range)
        flip_h = (
            draws[:, columns["flip_h"]][:, 0] < 0.5
            if self.horizontal_flip
            else np.zeros(count, bool)
        )
        flip_v = (
            draws[:, columns["flip_v"]][:, 0] < 0.5 if self.vertical_flip else np.zeros(count, bool)
        )
        return theta, tx, ty, shear, zoom, shifts, flip_h, flip_v

    @staticmethod
    def _transform_matrices(theta, tx, ty, shear, zoom, height, width):
        """(N, 3, 3) output->input matrices Tr(o) R T Sh Z Tr(-o), composed as Keras composes them.
        A factor Keras leaves out (not drawn) is the identity here, which changes no bit."""
        count = theta.shape[0]

        def matrices(a00, a01, a02, a10, a11, a12):
            m = np.zeros((count, 3, 3))
            m[:, 0, 0], m[:, 0, 1], m[:, 0, 2] = a00, a01, a02
            m[:, 1, 0], m[:, 1, 1], m[:, 1, 2] = a10, a11, a12
            m[:, 2, 2] = 1.0
            return m

        cos, sin = np.cos(theta), np.sin(theta)
        rotation = matrices(cos, -sin, 0, sin, cos, 0)
        shift = matrices(1, 0, tx, 0, 1, ty)
        shearing = matrices(1, -np.sin(shear), 0, 0, np.cos(shear), 0)
        zooming = matrices(zoom[:, 0], 0, 0, 0, zoom[:, 1], 0)
        o_x, o_y = float(height) / 2 + 0.5, float(width) / 2 + 0.5
        offset = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
        reset = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
        return offset @ (rotation @ shift @ shearing @ zooming) @ reset

    def _random_transform_batch(self, batch):
        """Augment a batch (N, ...) of float images: draws per image (Keras's order), then one warp
        call for the whole batch, then channel shifts and flips. Returns a new array."""
        row_axis, col_axis, channel_axis = self.row_axis, self.col_axis, self.channel_axis
        count, height, width = batch.shape[0], batch.shape[row_axis], batch.shape[col_axis]
        channels = batch.shape[channel_axis]
        theta, tx, ty, shear, zoom, shifts, flip_h, flip_v = self._draw_parameters(
            count, height, width, channels
        )

        warped = (
            np.any(theta != 0)
            or np.any(tx != 0)
            or np.any(ty != 0)
            or np.any(shear != 0)
            or np.any(zoom != 1)
        )
        if warped:
            matrices = self._transform_matrices(theta, tx, ty, shear, zoom, height, width)
            batch = affine_warp(
                batch,
                matrices,
                order=self.interpolation_order,
                fill_mode=self.fill_mode,
                cval=self.cval,
                data_format=self.data_format,
            )
        else:
            batch = batch.copy()

        if shifts is not None:  # clip to each (warped) image's own [min, max], as Keras
            spatial = tuple(range(1, batch.ndim))
            low = batch.min(axis=spatial, keepdims=True)
            high = batch.max(axis=spatial, keepdims=True)
            shape = [count, 1, 1, 1]
            shape[channel_axis] = channels
            batch = np.clip(batch + shifts.astype(batch.dtype).reshape(shape), low, high)
        if flip_h.any():
            batch[flip_h] = batch[flip_h][:, :, ::-1] if col_axis == 2 else batch[flip_h][..., ::-1]
        if flip_v.any():
            batch[flip_v] = batch[flip_v][:, ::-1] if row_axis == 1 else batch[flip_v][:, :, ::-1]
        return batch

    def _standardize_batch(self, batch, preprocessed=False):
        """standardize() on every image of a batch, vectorized; modifies batch in place."""
        if self.preprocessing_function and not preprocessed:
            for i in range(batch.shape[0]):
                batch[i] = self.preprocessing_function(batch[i])
        if self.rescale:
            batch *= self.rescale
        if self.samplewise_center:
            batch -= np.mean(batch, axis=self.channel_axis, keepdims=True)
        if self.samplewise_std_normalization:
            batch /= np.std(batch, axis=self.channel_axis, keepdims=True) + 1e-7
        if self.featurewise_center:
            if self.mean is not None:
                batch -= self.mean
            else:
                warnings.warn(
                    "This ImageDataGenerator specifies `featurewise_center`, but it hasn't been fit on "
                    "any training data. Fit it first by calling `.fit(numpy_data)`.",
                    stacklevel=2,
                )
        if self.featurewise_std_normalization:
            if self.std is not None:
                batch /= self.std + 1e-7
            else:
                warnings.warn(
                    "This ImageDataGenerator specifies `featurewise_std_normalization`, but it hasn't "
                    "been fit on any training data. Fit it first by calling `.fit(numpy_data)`.",
                    stacklevel=2,
                )
        if self.zca_whitening:
            if self.principal_components is not None:
                flat = batch.reshape(batch.shape[0], -1)
                batch[...] = np.dot(flat, self.principal_components).reshape(batch.shape)
            else:
                warnings.warn(
                    "This ImageDataGenerator specifies `zca_whitening`, but it hasn't been fit on any "
                    "training data. Fit it first by calling `.fit(numpy_data)`.",
                    stacklevel=2,
                )
        return batch

    def fit(self, x, augment=False, rounds=1, seed=None):
        """Compute the data-dependent statistics the flags ask for (Keras 2.0.8).

        ``mean``: per-channel mean over (N, H, W), shape (1, 1, C) / (C, 1, 1); ``std``: per-channel
        std after centring; ZCA: ``sigma = X^T X / N`` of the flattened (centred, normalized) images
        and ``principal_components = U diag(1 / sqrt(S + zca_epsilon)) U^T`` from its SVD. With
        ``augment``, the statistics are computed on ``rounds`` randomly augmented copies of x."""
        func = "ImageDataGenerator.fit"
        x = np.asarray(x)
        if x.ndim != 4:
            raise ValueError(
                "{}: x must have rank 4 (a batch of images), got shape {}".format(func, x.shape)
            )
        if x.shape[self.channel_axis] not in {1, 3, 4}:
            warnings.warn(
                'Expected input to be images (as Numpy array) following the data format convention "{}" '
                "(channels on axis {}), i.e. expected either 1, 3 or 4 channels on axis {}. However, it was "
                "passed an array with shape {} ({} channels).".format(
                    self.data_format,
                    self.channel_axis,
                    self.channel_axis,
                    x.shape,
                    x.shape[self.channel_axis],
                ),
                stacklevel=2,
            )
        if seed is not None:
            np.random.seed(seed)
        if not (
            augment
            or self.featurewise_center
            or self.featurewise_std_normalization
            or self.zca_whitening
        ):
            # Nothing to compute (the article's case): Keras still made a float32 copy of x, which
            # for CIFAR-10's training set is 600 MB; skipping it changes no result.
            return

        x = np.array(x, dtype=_floatx())  # one float32 copy, worked on in place below
        if augment:
            x = np.concatenate([self._random_transform_batch(x) for _ in range(rounds)], axis=0)

        broadcast_shape = [1, 1, 1]
        broadcast_shape[self.channel_axis - 1] = x.shape[self.channel_axis]
        if self.featurewise_center:
            self.mean = np.mean(x, axis=(0, self.row_axis, self.col_axis)).reshape(broadcast_shape)
            x -= self.mean
        if self.featurewise_std_normalization:
            self.std = np.std(x, axis=(0, self.row_axis, self.col_axis)).reshape(broadcast_shape)
            x /= self.std + 1e-7
        if self.zca_whitening:
            flat_x = x.reshape(x.shape[0], -1)
            sigma = np.dot(flat_x.T, flat_x) / flat_x.shape[0]
            u, s, _ = np.linalg.svd(sigma)
            self.principal_components = np.dot(
                np.dot(u, np.diag(1.0 / np.sqrt(s + self.zca_epsilon))), u.T
            )
