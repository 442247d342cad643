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

import os
import threading
import warnings

import numpy as np

from ..ops.image import FILL_MODES, affine_warp

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

#: File types flow_from_directory and load_from_directory read (Keras 2.0.8's white list).
WHITE_LIST_FORMATS = ("png", "jpg", "jpeg", "bmp")


# ---- configuration ------------------------------------------------------------------------------


def _backend_setting(name, default):
    """bnpy.backend's setting when that module exists (as keras.backend's), else Keras's default."""
    try:
        from .. import backend  # noqa: PLC0415  (optional module of the framework)
    except ImportError:
        return default
    getter = getattr(backend, name, None)
    return getter() if callable(getter) else default


def _image_data_format():
    return _backend_setting("image_data_format", "channels_last")


def _floatx():
    return _backend_setting("floatx", "float32")


def _pil_image(func):
    """PIL.Image, imported on first use: Pillow is an optional extra."""
    try:
        from PIL import Image  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError(
            '{} needs Pillow to read and write image files: pip install "bnpy[image]" '
            "(or pip install Pillow)".format(func)
        ) from exc
    return Image


def _check_data_format(data_format, func):
    if data_format is None:
        data_format = _image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "{}: data_format must be 'channels_last' or 'channels_first', got {!r}".format(
                func, data_format
            )
        )
    return data_format


def _float_array(x):
    """x as a float array (float32 and float64 kept; anything else becomes floatx)."""
    x = np.asarray(x)
    return x if x.dtype in (np.float32, np.float64) else x.astype(_floatx())


# ---- matrices and single-image transforms (Keras 2.0's module functions) -----------------------


def transform_matrix_offset_center(matrix, x, y):
    """Conjugate a 3x3 (row, col) matrix by a translation to the centre o = (x/2 + 0.5, y/2 + 0.5)
    of an image of x rows and y columns: ``Tr(o) @ matrix @ Tr(-o)`` (Keras 2.0's centre, which is
    half a pixel below and right of the exact centre ((x-1)/2, (y-1)/2))."""
    o_x = float(x) / 2 + 0.5
    o_y = float(y) / 2 + 0.5
    offset_matrix = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset_matrix = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    return np.dot(np.dot(offset_matrix, matrix), reset_matrix)


def apply_transform(x, transform_matrix, channel_axis=0, fill_mode="nearest", cval=0.0, order=0):
    """Warp one 3-D image by an output->input matrix on its two spatial axes (in their order),
    nearest neighbour as Keras 2.0 (``order=1``: bilinear). Returns a new float array."""
    x = _float_array(x)
    if x.ndim != 3:
        raise ValueError(
            "apply_transform: x must be one image of rank 3, got shape {}".format(x.shape)
        )
    channels_last = np.moveaxis(x, channel_axis, -1)
    warped = affine_warp(
        channels_last,
        np.asarray(transform_matrix, dtype=np.float64),
        order=order,
        fill_mode=fill_mode,
        cval=cval,
        data_format="channels_last",
    )
    return np.moveaxis(warped, -1, channel_axis)


def flip_axis(x, axis):
    """x reversed along axis (a copy, as Keras)."""
    return np.flip(np.asarray(x), axis=axis).copy()


def random_rotation(x, rg, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0):
    """Rotate one image by theta ~ U(-rg, rg) degrees about Keras's centre."""
    theta = np.pi / 180 * np.random.uniform(-rg, rg)
    rotation_matrix = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    h, w = x.shape[row_axis], x.shape[col_axis]
    transform_matrix = transform_matrix_offset_center(rotation_matrix, h, w)
    return apply_transform(x, transform_matrix, channel_axis, fill_mode, cval)


def random_shift(
    x, wrg, hrg, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0
):
    """Shift one image by U(-hrg, hrg)*H rows and U(-wrg, wrg)*W columns (fractions of the size)."""
    h, w = x.shape[row_axis], x.shape[col_axis]
    tx = np.random.uniform(-hrg, hrg) * h
    ty = np.random.uniform(-wrg, wrg) * w
    translation_matrix = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    return apply_transform(x, translation_matrix, channel_axis, fill_mode, cval)


def random_shear(
    x, intensity, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0
):
    """Shear one image by U(-intensity, intensity) radians about Keras's centre."""
    shear = np.random.uniform(-intensity, intensity)
    shear_matrix = np.array([[1, -np.sin(shear), 0], [0, np.cos(shear), 0], [0, 0, 1]])
    h, w = x.shape[row_axis], x.shape[col_axis]
    transform_matrix = transform_matrix_offset_center(shear_matrix, h, w)
    return apply_transform(x, transform_matrix, channel_axis, fill_mode, cval)


def random_zoom(
    x, zoom_range, row_axis=1, col_axis=2, channel_axis=0, fill_mode="nearest", cval=0.0
):
    """Zoom one image by (zx, zy) ~ U(zoom_range) drawn independently (factors > 1 shrink the content)."""
    if len(zoom_range) != 2:
        raise ValueError(
            "random_zoom: zoom_range must be a tuple or list of two floats, got {!r}".format(
                zoom_range
            )
        )
    if zoom_range[0] == 1 and zoom_range[1] == 1:
        zx, zy = 1, 1
    else:
        zx, zy = np.random.uniform(zoom_range[0], zoom_range[1], 2)
    zoom_matrix = np.array([[zx, 0, 0], [0, zy, 0], [0, 0, 1]])
    h, w = x.shape[row_axis], x.shape[col_axis]
    transform_matrix = transform_matrix_offset_center(zoom_matrix, h, w)
    return apply_transform(x, transform_matrix, channel_axis, fill_mode, cval)


def random_channel_shift(x, intensity, channel_axis=0):
    """Add U(-intensity, intensity) to each channel (one draw per channel, in channel order) and clip
    to the image's [min, max]."""
    x = _float_array(x)
    planes = np.moveaxis(x, channel_axis, 0)
    min_x, max_x = np.min(planes), np.max(planes)
    shifts = np.random.uniform(-intensity, intensity, planes.shape[0]).astype(x.dtype)
    shifted = np.clip(planes + shifts.reshape((-1,) + (1,) * (planes.ndim - 1)), min_x, max_x)
    return np.moveaxis(shifted, 0, channel_axis)


# ---- PIL conversions -----------------------------------------------------------------------------


def array_to_img(x, data_format=None, scale=True):
    """A 3-D array (H, W, C) / (C, H, W) with 1, 3 or 4 channels as a PIL image (L, RGB, RGBA).
    With ``scale`` the values are shifted to start at 0 and scaled to a maximum of 255 (Keras)."""
    image = _pil_image("array_to_img")
    x = np.asarray(x, dtype=_floatx())
    if x.ndim != 3:
        raise ValueError(
            "array_to_img: x must be one image of rank 3, got shape {}".format(x.shape)
        )
    data_format = _check_data_format(data_format, "array_to_img")
    if data_format == "channels_first":
        x = x.transpose(1, 2, 0)
    if scale:
        x = x + max(-np.min(x), 0)
        x_max = np.max(x)
        if x_max != 0:
            x /= x_max
        x *= 255
    if x.shape[2] == 3:
        return image.fromarray(x.astype("uint8"), "RGB")
    if x.shape[2] == 4:
        return image.fromarray(x.astype("uint8"), "RGBA")
    if x.shape[2] == 1:
        return image.fromarray(x[:, :, 0].astype("uint8"), "L")
    raise ValueError("array_to_img: x must have 1, 3 or 4 channels, got {}".format(x.shape[2]))


def img_to_array(img, data_format=None, dtype=None):
    """A PIL image as a 3-D floatx array, (H, W, C) or (C, H, W); grey images get one channel."""
    data_format = _check_data_format(data_format, "img_to_array")
    x = np.asarray(img, dtype=dtype or _floatx())
    if x.ndim == 3:
        if data_format == "channels_first":
            x = x.transpose(2, 0, 1)
    elif x.ndim == 2:
        x = (
            x.reshape((1,) + x.shape)
            if data_format == "channels_first"
            else x.reshape(x.shape + (1,))
        )
    else:
        raise ValueError("img_to_array: unsupported image shape {}".format(x.shape))
    return x


_COLOR_MODES = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}


def _pil_resample(image, interpolation, func):
    names = {
        "nearest": "NEAREST",
        "bilinear": "BILINEAR",
        "bicubic": "BICUBIC",
        "lanczos": "LANCZOS",
        "box": "BOX",
        "hamming": "HAMMING",
    }
    if interpolation not in names:
        raise ValueError(
            "{}: interpolation must be one of {}, got {!r}".format(
                func, ", ".join(sorted(names)), interpolation
            )
        )
    resampling = getattr(image, "Resampling", image)  # Pillow >= 9.1 moved the constants
    return getattr(resampling, names[interpolation])


def load_img(path, grayscale=False, target_size=None, color_mode="rgb", interpolation="nearest"):
    """Load an image file as a PIL image in ``color_mode`` ('rgb', 'grayscale', 'rgba';
    ``grayscale=True`` is Keras 2.0's spelling of 'grayscale'), resized to ``target_size``
    (height, width) when given, with nearest-neighbour resampling as Keras 2.0."""
    image = _pil_image("load_img")
    if grayscale:
        color_mode = "grayscale"
    if color_mode not in _COLOR_MODES:
        raise ValueError(
            "load_img: color_mode must be 'rgb', 'grayscale' or 'rgba', got {!r}".format(color_mode)
        )
    resample = _pil_resample(image, interpolation, "load_img")
    with image.open(path) as opened:
        img = (
            opened.convert(_COLOR_MODES[color_mode])
            if opened.mode != _COLOR_MODES[color_mode]
            else opened.copy()
        )
    if target_size is not None:
        width_height = (int(target_size[1]), int(target_size[0]))
        if img.size != width_height:
            img = img.resize(width_height, resample)
    return img


def list_pictures(directory, ext="jpg|jpeg|bmp|png"):
    """Paths of the picture files under directory (recursively), sorted."""
    exts = tuple("." + e for e in ext.split("|"))
    return sorted(
        os.path.join(root, f)
        for root, _, files in os.walk(directory)
        for f in files
        if f.lower().endswith(exts)
    )


# ---- image folders -------------------------------------------------------------------------------


def _class_files(directory, classes, follow_links, func):
    """(class names, relative file paths, int32 labels) of a tree directory/<class>/**/<image>.

    Classes are the sub-directories (sorted, so labels follow alphabetical order) unless given;
    files are every white-listed picture under a class folder, in sorted order."""
    if not os.path.isdir(directory):
        raise ValueError(
            "{}: directory {!r} does not exist or is not a directory".format(func, directory)
        )
    if classes is None:
        classes = sorted(
            d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d))
        )
    else:
        classes = list(classes)
        missing = [c for c in classes if not os.path.isdir(os.path.join(directory, c))]
        if missing:
            raise ValueError(
                "{}: class folders {} not found in {!r}".format(func, missing, directory)
            )
    exts = tuple("." + e for e in WHITE_LIST_FORMATS)
    filenames, labels = [], []
    for label, name in enumerate(classes):
        class_dir = os.path.join(directory, name)
        for root, dirs, files in os.walk(class_dir, followlinks=follow_links):
            dirs.sort()
            for fname in sorted(files):
                if fname.lower().endswith(exts):
                    filenames.append(os.path.relpath(os.path.join(root, fname), directory))
                    labels.append(label)
    return classes, filenames, np.array(labels, dtype=np.int32)


def load_from_directory(
    directory,
    target_size=None,
    color_mode="rgb",
    classes=None,
    interpolation="nearest",
    follow_links=False,
):
    """Read a tree of class sub-folders of JPEG/PNG/BMP files into arrays.

    ``directory/<class name>/<image files>`` (images may sit in nested folders of a class folder):
    the layout of CIFAR-10-as-JPEG, e.g. ``load_from_directory('cifar10-jpeg/train')``.

    Args:
        directory: the folder holding one sub-folder per class.
        target_size: (height, width) to resize every image to, or None to keep their size (then all
            images must have the same size).
        color_mode: 'rgb' (3 channels), 'grayscale' (1) or 'rgba' (4).
        classes: class folder names in label order; default: every sub-folder, sorted.
        interpolation: the resampling of a resize (Pillow's 'nearest' by default, as Keras 2.0).

    Returns:
        ``(x, y, class_names)``: x uint8 (N, H, W, C), channels last; y int32 (N,) labels, the index
        of the class in class_names; files of a class in sorted order, classes in label order.
    """
    func = "load_from_directory"
    _pil_image(func)
    if color_mode not in _COLOR_MODES:
        raise ValueError(
            "{}: color_mode must be 'rgb', 'grayscale' or 'rgba', got {!r}".format(func, color_mode)
        )
    class_names, filenames, labels = _class_files(directory, classes, follow_links, func)
    channels = {"rgb": 3, "grayscale": 1, "rgba": 4}[color_mode]
    x = None
    for i, rel in enumerate(filenames):
        path = os.path.join(directory, rel)
        pixels = np.asarray(
            load_img(
                path, color_mode=color_mode, target_size=target_size, interpolation=interpolation
            ),
            dtype=np.uint8,
        )
        pixels = pixels.reshape(pixels.shape[:2] + (channels,))
        if x is None:
            x = np.empty((len(filenames),) + pixels.shape, dtype=np.uint8)
        elif pixels.shape != x.shape[1:]:
            raise ValueError(
                "{}: {!r} is {}x{} but the first image is {}x{}; pass target_size=(height, width) "
                "to resize every image".format(
                    func, path, pixels.shape[0], pixels.shape[1], x.shape[1], x.shape[2]
                )
            )
        x[i] = pixels
    if x is None:
        shape = (0,) + (tuple(target_size) if target_size is not None else (0, 0)) + (channels,)
        x = np.empty(shape, dtype=np.uint8)
    return x, labels, class_names


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


# ---- iterators -----------------------------------------------------------------------------------


class Iterator:
    """Endless, thread-safe iterator of index batches (Keras 2.0's ``Iterator``).

    Each pass over the n samples starts with ``np.random.permutation(n)`` (``arange`` without
    shuffle); the last batch of a pass is short. With a seed, ``np.random.seed(seed +
    total_batches_seen)`` is called before every batch, which also fixes the augmentation."""

    def __init__(self, n, batch_size, shuffle, seed):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(
                "{}: batch_size must be a positive int, got {!r}".format(
                    type(self).__name__, batch_size
                )
            )
        self.n = n
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.batch_index = 0
        self.total_batches_seen = 0
        self.lock = threading.Lock()
        self.index_generator = self._flow_index(n, self.batch_size, shuffle, seed)

    def reset(self):
        self.batch_index = 0

    def _flow_index(self, n, batch_size=32, shuffle=False, seed=None):
        self.reset()
        if n == 0:
            raise ValueError(
                "{}: there are no images to iterate over (0 samples)".format(type(self).__name__)
            )
        while True:
            if seed is not None:
                np.random.seed(seed + self.total_batches_seen)
            if self.batch_index == 0:
                index_array = np.arange(n)
                if shuffle:
                    index_array = np.random.permutation(n)
            current_index = (self.batch_index * batch_size) % n
            if n > current_index + batch_size:
                current_batch_size = batch_size
                self.batch_index += 1
            else:
                current_batch_size = n - current_index
                self.batch_index = 0
            self.total_batches_seen += 1
            yield (
                index_array[current_index : current_index + current_batch_size],
                current_index,
                current_batch_size,
            )

    def __len__(self):
        """Batches per pass."""
        return (self.n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def _next_indices(self):
        with self.lock:
            return next(self.index_generator)

    def _save_batch(self, batch_x, current_index):
        """Write each image of the batch as <prefix>_<index>_<random 0..9999>.<format> (Keras)."""
        for i in range(batch_x.shape[0]):
            img = array_to_img(batch_x[i], self.data_format, scale=True)
            fname = "{prefix}_{index}_{hash}.{format}".format(
                prefix=self.save_prefix,
                index=current_index + i,
                hash=np.random.randint(10000),
                format=self.save_format,
            )
            img.save(os.path.join(self.save_to_dir, fname))


class NumpyArrayIterator(Iterator):
    """Batches of augmented images from arrays x (N, H, W, C) / (N, C, H, W) and optional labels y."""

    def __init__(
        self,
        x,
        y,
        image_data_generator,
        batch_size=32,
        shuffle=False,
        seed=None,
        data_format=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
    ):
        func = "NumpyArrayIterator"
        x = np.asarray(x)
        if y is not None and len(x) != len(y):
            raise ValueError(
                "{}: x (images) and y (labels) must have the same length, got x.shape = {}, "
                "y.shape = {}".format(func, x.shape, np.asarray(y).shape)
            )
        data_format = _check_data_format(data_format, func)
        if x.ndim != 4:
            raise ValueError(
                "{}: x must have rank 4 (a batch of images), got shape {}".format(func, x.shape)
            )
        channels_axis = 3 if data_format == "channels_last" else 1
        if x.shape[channels_axis] not in {1, 3, 4}:
            warnings.warn(
                "NumpyArrayIterator is set to use the data format convention \"{}\" (channels on axis "
                "{}), i.e. expected either 1, 3 or 4 channels on axis {}. However, it was passed an array "
                "with shape {} ({} channels).".format(
                    data_format, channels_axis, channels_axis, x.shape, x.shape[channels_axis]
                ),
                stacklevel=2,
            )
        if save_to_dir is not None:
            _pil_image("flow(save_to_dir=...)")
        # Kept as given (Keras converts all of x to float32 up front); each batch is converted on
        # its way out, which gives the same values without a float32 copy of the whole data set.
        self.x = x
        self.y = np.asarray(y) if y is not None else None
        self.image_data_generator = image_data_generator
        self.data_format = data_format
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        super().__init__(x.shape[0], batch_size, shuffle, seed)

    def next(self):
        index_array, current_index, current_batch_size = self._next_indices()
        generator = self.image_data_generator
        batch_x = np.asarray(self.x[index_array], dtype=_floatx())
        batch_x = generator._random_transform_batch(batch_x)
        batch_x = generator._standardize_batch(batch_x)
        if self.save_to_dir:
            self._save_batch(batch_x, current_index)
        if self.y is None:
            return batch_x
        return batch_x, self.y[index_array]


class DirectoryIterator(Iterator):
    """Batches of augmented images read from directory/<class>/<images> (Keras 2.0's).

    ``class_mode``: 'categorical' (one-hot float32), 'binary' (float32 0/1), 'sparse' (int labels),
    'input' (the images themselves) or None (images only). Attributes as Keras: ``classes`` (int32
    label of every file), ``class_indices`` (name -> label), ``filenames`` (relative paths),
    ``samples``, ``num_class``."""

    def __init__(
        self,
        directory,
        image_data_generator,
        target_size=(256, 256),
        color_mode="rgb",
        classes=None,
        class_mode="categorical",
        batch_size=32,
        shuffle=True,
        seed=None,
        data_format=None,
        save_to_dir=None,
        save_prefix="",
        save_format="png",
        follow_links=False,
        interpolation="nearest",
    ):
        func = "flow_from_directory"
        _pil_image(func)
        self.directory = directory
        self.image_data_generator = image_data_generator
        self.target_size = tuple(target_size)
        if color_mode not in _COLOR_MODES:
            raise ValueError(
                "{}: color_mode must be 'rgb', 'grayscale' or 'rgba', got {!r}".format(
                    func, color_mode
                )
            )
        self.color_mode = color_mode
        self.data_format = _check_data_format(data_format, func)
        channels = {"rgb": 3, "grayscale": 1, "rgba": 4}[color_mode]
        if self.data_format == "channels_last":
            self.image_shape = self.target_size + (channels,)
        else:
            self.image_shape = (channels,) + self.target_size
        if class_mode not in {"categorical", "binary", "sparse", "input", None}:
            raise ValueError(
                "{}: class_mode must be 'categorical', 'binary', 'sparse', 'input' or None, got {!r}".format(
                    func, class_mode
                )
            )
        self.class_mode = class_mode
        self.save_to_dir = save_to_dir
        self.save_prefix = save_prefix
        self.save_format = save_format
        self.interpolation = interpolation

        class_names, self.filenames, self.classes = _class_files(
            directory, classes, follow_links, func
        )
        self.class_indices = dict(zip(class_names, range(len(class_names))))
        self.num_class = len(class_names)
        self.samples = len(self.filenames)
        print("Found %d images belonging to %d classes." % (self.samples, self.num_class))
        super().__init__(self.samples, batch_size, shuffle, seed)

    def next(self):
        index_array, current_index, current_batch_size = self._next_indices()
        generator = self.image_data_generator
        batch_x = np.zeros((current_batch_size,) + self.image_shape, dtype=_floatx())
        for i, j in enumerate(index_array):
            img = load_img(
                os.path.join(self.directory, self.filenames[j]),
                color_mode=self.color_mode,
                target_size=self.target_size,
                interpolation=self.interpolation,
            )
            batch_x[i] = img_to_array(img, data_format=self.data_format)
        batch_x = generator._random_transform_batch(batch_x)
        batch_x = generator._standardize_batch(batch_x)
        if self.save_to_dir:
            self._save_batch(batch_x, current_index)
        if self.class_mode == "input":
            return batch_x, batch_x.copy()
        if self.class_mode == "sparse":
            return batch_x, self.classes[index_array]
        if self.class_mode == "binary":
            return batch_x, self.classes[index_array].astype(_floatx())
        if self.class_mode == "categorical":
            batch_y = np.zeros((len(batch_x), self.num_class), dtype=_floatx())
            batch_y[np.arange(len(batch_x)), self.classes[index_array]] = 1.0
            return batch_x, batch_y
        return batch_x
