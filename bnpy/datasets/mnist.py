"""MNIST (as ``keras.datasets.mnist``): 60,000 training and 10,000 test 28x28 grey digits.

``load_data(path='mnist.npz')`` returns ``(x_train, y_train), (x_test, y_test)``: ``x_*`` (N, 28, 28)
uint8 and ``y_*`` (N,) uint8, read from the ``.npz`` (a zip of ``.npy`` files) without pickles and
checked for names, shapes and dtypes before the arrays are inflated.
"""

import os
import zipfile

import numpy as np

from ..utils.data_utils import DataFileError
from ..utils.io_utils import NpzArchive
from . import _lookup

__all__ = ["load_data"]

FNAME = "mnist.npz"
#: 11,490,434 bytes. Keras 2.0.9+ checks md5 8a61469f7ea1b51cbae51d4f78837e45; sha256 as tf.keras.
FILE_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MD5 = "8a61469f7ea1b51cbae51d4f78837e45"
ORIGINS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz",  # tf.keras mirror
    "https://s3.amazonaws.com/img-datasets/mnist.npz",
)  # Keras 2.0
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
#: The official counts; a larger file is not MNIST, and its size is not read into memory.
MAX_IMAGES = {"train": 60000, "test": 10000}


def _problem(path):
    if os.path.isdir(path):
        return "is a folder"
    if not zipfile.is_zipfile(path):
        return "is not an .npz (zip) file"
    return None


def _source(fname):
    return _lookup.DatasetSource(
        function="mnist.load_data",
        title="MNIST",
        candidates=(fname,),
        check=_problem,
        downloads=(
            _lookup.Download(
                fname=fname, origins=ORIGINS, file_hash=FILE_HASH, size=11490434, md5=MD5
            ),
        ),
    )


def read_npz(fpath, function="mnist.load_data"):
    """The four arrays of an MNIST-style ``.npz``, checked: x (N, 28, 28) uint8, y (N,) uint8,
    with N at most the official count. Shapes and dtypes are checked from the entries' headers
    and declared sizes (utils.io_utils.NpzArchive) before anything is inflated, so a small file
    that claims or inflates to gigabytes is refused at the cost of a few hundred bytes read."""
    with NpzArchive(fpath, function, "MNIST .npz file", error=DataFileError) as f:
        missing = [name for name in ARRAYS if name not in f]
        if missing:
            raise DataFileError(
                "{}: {} has no {} (it holds {})".format(
                    function, fpath, ", ".join(missing), ", ".join(f.files)
                )
            )
        for split in ("train", "test"):
            (x_shape, x_dtype), (y_shape, y_dtype) = (
                f.shape_and_dtype(name + "_" + split) for name in ("x", "y")
            )
            if x_dtype != np.uint8 or len(x_shape) != 3 or x_shape[1:] != (28, 28):
                raise DataFileError(
                    "{}: {}'s x_{} should be uint8 (N, 28, 28), got {} {}".format(
                        function, fpath, split, x_dtype, x_shape
                    )
                )
            if x_shape[0] > MAX_IMAGES[split]:
                raise DataFileError(
                    "{}: {}'s x_{} holds {} images; MNIST has {}".format(
                        function, fpath, split, x_shape[0], MAX_IMAGES[split]
                    )
                )
            if y_dtype != np.uint8 or y_shape != (x_shape[0],):
                raise DataFileError(
                    "{}: {}'s y_{} should be uint8 ({},), got {} {}".format(
                        function, fpath, split, x_shape[0], y_dtype, y_shape
                    )
                )
        arrays = {name: f[name] for name in ARRAYS}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def load_data(path=FNAME):
    """Load MNIST: ``(x_train, y_train), (x_test, y_test)`` as Keras 2.0.

    ``path`` as in Keras: a bare file name (the default ``'mnist.npz'``) is looked up in
    ``$BNPY_DATA``, ``~/.keras/datasets`` and the system dataset folders, then downloaded under that
    name; a path with a folder part (``'./mnist.npz'``, ``'/data/mnist.npz'``) or a folder holding
    ``mnist.npz`` is used as given and nothing else is searched.
    """
    path = _lookup.check_path_argument("mnist.load_data", path)
    if os.path.basename(path) == path and path not in (".", ".."):
        found = _lookup.locate(_source(path))
    else:
        found = _lookup.locate(_source(FNAME), path)
    return read_npz(found)
