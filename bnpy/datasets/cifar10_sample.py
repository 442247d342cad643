"""A CIFAR-10 sample shipped inside bnpy: 10,000 training and 2,000 test images, offline.

``load_data()`` returns ``(x_train, y_train), (x_test, y_test)`` with the shapes and dtypes of
:func:`bnpy.datasets.cifar10.load_data` (Keras 2.0's):

* ``x_train`` (10000, 32, 32, 3) and ``x_test`` (2000, 32, 32, 3), uint8, channels last
  ((N, 3, 32, 32) when ``image_data_format() == 'channels_first'``);
* ``y_train`` (10000, 1) uint8 and ``y_test`` (2000, 1) int64, labels 0-9 in CIFAR-10's order
  (airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck).

What it is: the first 1,000 training and the first 200 test images of every class (in the
order of the official batches) of the JPEG copy of CIFAR-10 (quality 75, chroma subsampled:
not bit-exact to the original images; its source reports 2-3 % lower accuracy than with the
original data), each split in one fixed random order. The JPEG files are stored unchanged in
``data/cifar10_sample.npz`` (3.7 MB) and decoded with Pillow when loaded (about a second).
``tools/make_cifar10_sample.py`` in the source tree made the file; docs/datasets.md says more.

Use it where the real CIFAR-10 cannot be had (no network, nothing cached): it is what
``bnpy-experiment article`` falls back to. It is a sample: accuracies on it are lower than on
all 50,000 images, and its 2,000 test images give accuracies to about ±1 % (one standard error).
"""

import hashlib
import io
import os

import numpy as np

from ..utils.data_utils import DataFileError
from . import _lookup
from .cifar10 import LABEL_NAMES

__all__ = ["load_data", "LABEL_NAMES", "FILE"]

#: The sample's file, inside the installed package.
FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "cifar10_sample.npz")
#: SHA-256 of FILE as tools/make_cifar10_sample.py wrote it (a damaged copy is refused).
SHA256 = "5cb2e99344fbdf73249f8076a56bc0773cf6d132fe18b0352378b6ec00de84de"
_SIZES = {"train": 10000, "test": 2000}


def _read_checked():
    function = "cifar10_sample.load_data"
    try:
        with open(FILE, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataFileError(
            "{}: cannot read the built-in sample {} ({}); reinstall bnpy".format(
                function, FILE, exc
            )
        ) from None
    if hashlib.sha256(data).hexdigest() != SHA256:
        raise DataFileError(
            "{}: {} is damaged (its SHA-256 is not the one bnpy was built with); "
            "reinstall bnpy".format(function, FILE)
        )
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        return {key: arrays[key] for key in arrays.files}


def _decode(header, blob, offsets, image_module):
    """The images of one split, uint8 (N, 32, 32, 3), from their JPEG files (header + body)."""
    images = np.empty((len(offsets) - 1, 32, 32, 3), dtype=np.uint8)
    for i in range(len(images)):
        jpeg = header + blob[offsets[i] : offsets[i + 1]]
        with image_module.open(io.BytesIO(jpeg)) as img:
            images[i] = np.asarray(img.convert("RGB"))
    return images


def load_data():
    """The built-in sample: ``(x_train, y_train), (x_test, y_test)``, as cifar10.load_data()."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            "bnpy.datasets.cifar10_sample needs Pillow to decode its JPEG images: "
            "pip install 'bnpy[image]' (or pip install Pillow)"
        ) from None
    arrays = _read_checked()
    header = arrays["jpeg_header"].tobytes()
    splits = {}
    for split, size in _SIZES.items():
        x = _decode(header, arrays[split + "_jpeg"].tobytes(), arrays[split + "_offsets"], Image)
        y = arrays[split + "_labels"].reshape(size, 1)
        splits[split] = (x, y)
    x_train, y_train = splits["train"]
    x_test, y_test = splits["test"]
    # Keras 2.0's label dtypes: y_train uint8, y_test NumPy's default int (see cifar10.py).
    y_test = y_test.astype(np.int64)
    if _lookup.image_data_format() == "channels_first":
        x_train = x_train.transpose(0, 3, 1, 2)
        x_test = x_test.transpose(0, 3, 1, 2)
    return (x_train, y_train), (x_test, y_test)
