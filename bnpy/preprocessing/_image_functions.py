"""The functions of Keras 2.0's ``keras.preprocessing.image`` (re-exported there): the single-image
transforms, array <-> PIL image conversion, image files and directories of class folders, and the
backend settings ImageDataGenerator reads. Pillow is imported only by the functions that need it."""

import os

import numpy as np

from .. import _config
from ..ops.image import affine_warp

#: File types flow_from_directory and load_from_directory read (Keras 2.0.8's white list).
WHITE_LIST_FORMATS = ("png", "jpg", "jpeg", "bmp")


# ---- configuration ------------------------------------------------------------------------------


def _image_data_format():
    return _config.settings["image_data_format"]


def _floatx():
    return _config.settings["floatx"]


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
