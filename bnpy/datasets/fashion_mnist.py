"""Fashion-MNIST (as ``keras.datasets.fashion_mnist``, Keras 2.0.9): 60,000 + 10,000 28x28 grey clothes images.

``load_data()`` returns ``(x_train, y_train), (x_test, y_test)``: ``x_*`` (N, 28, 28) uint8, ``y_*``
(N,) uint8, read from the four IDX files (gzipped, or already unzipped) in a ``fashion-mnist/``
folder: ``$BNPY_DATA/fashion-mnist``, ``~/.keras/datasets/fashion-mnist`` (where Keras caches them)
or ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``). Keras returns
read-only views of the decompressed buffers; these arrays are ordinary writable arrays.

Files found on disk are checked by their IDX headers, not by checksum: Debian recompresses the
``.gz`` files, so their md5 differs from the official ones while their contents are the same.
Downloads are checked against the official md5 values.
"""
import gzip
import os
import zlib

import numpy as np

from . import _lookup
from ..utils.data_utils import DataFileError

__all__ = ["load_data", "read_idx"]

DIRNAME = "fashion-mnist"
FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
#: md5 of the official files (zalandoresearch/fashion-mnist README).
MD5 = {
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
}
BASE_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",   # Keras 2.0.9
             "https://storage.googleapis.com/tensorflow/tf-keras-datasets/")  # later tf.keras
LABEL_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
               "Bag", "Ankle boot")

# IDX type codes -> big-endian dtypes (yann.lecun.com/exdb/mnist).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(buffer, source="<bytes>"):
    """The array stored in IDX bytes: magic ``00 00 <type> <ndim>``, ndim big-endian uint32 sizes, data.

    The data size must match the header exactly; a short or over-long buffer is a DataFileError.
    Returns a native-endian, writable array.
    """
    if len(buffer) < 4 or buffer[0] != 0 or buffer[1] != 0 or buffer[2] not in _IDX_TYPES:
        raise DataFileError("read_idx: {} is not an IDX file (bad magic number {})".format(
            source, bytes(buffer[:4]).hex()))
    ndim = buffer[3]
    header = 4 + 4 * ndim
    if len(buffer) < header:
        raise DataFileError("read_idx: {} is truncated inside its header".format(source))
    shape = tuple(int(n) for n in np.frombuffer(buffer, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[buffer[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(buffer) != expected:
        raise DataFileError("read_idx: {} should hold {} bytes for shape {} but holds {} ({})".format(
            source, expected, shape, len(buffer),
            "truncated" if len(buffer) < expected else "trailing bytes"))
    data = np.frombuffer(buffer, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a native-endian copy: writable, owns its memory


def _file_in(folder, name):
    """``name`` (.gz) in ``folder``, or its unzipped twin; None when neither is there."""
    for candidate in (name, name[:-len(".gz")]):
        fpath = os.path.join(folder, candidate)
        if os.path.isfile(fpath):
            return fpath
    return None


def _problem(path):
    if not os.path.isdir(path):
        return "is not a folder"
    missing = [name for name in FILES if _file_in(path, name) is None]
    return "has no {}".format(", ".join(missing)) if missing else None


def _source():
    return _lookup.DatasetSource(
        function="fashion_mnist.load_data", title="Fashion-MNIST", candidates=(DIRNAME,),
        check=_problem, download_subdir=DIRNAME,
        downloads=tuple(_lookup.Download(fname=name, origins=tuple(base + name for base in BASE_URLS),
                                         file_hash=MD5[name]) for name in FILES),
        from_downloads=lambda paths: os.path.dirname(paths[0]),
        hint="On Debian or Ubuntu, `apt install dataset-fashion-mnist` puts the files in "
             "/usr/share/datasets/fashion-mnist.")


def _read(fpath):
    try:
        if fpath.endswith(".gz"):
            with gzip.open(fpath, "rb") as f:
                return f.read()
        with open(fpath, "rb") as f:
            return f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFileError("fashion_mnist.load_data: {} is truncated or corrupt ({}: {})".format(
            fpath, type(exc).__name__, exc)) from exc


def load_data(path=None):
    """Load Fashion-MNIST: ``(x_train, y_train), (x_test, y_test)`` as Keras 2.0.9+.

    ``path`` (an addition to Keras's signature): the folder holding the four files, or a folder
    holding ``fashion-mnist/``; when given, nothing else is searched.
    """
    function = "fashion_mnist.load_data"
    folder = _lookup.locate(_source(), path)
    arrays = []
    for name, ndim in zip(FILES, (1, 3, 1, 3)):
        fpath = _file_in(folder, name)
        array = read_idx(_read(fpath), fpath)
        shape_ok = array.ndim == ndim and (ndim == 1 or array.shape[1:] == (28, 28))
        if array.dtype != np.uint8 or not shape_ok:
            raise DataFileError("{}: {} should hold uint8 {}, got {} {}".format(
                function, fpath, "labels (N,)" if ndim == 1 else "images (N, 28, 28)",
                array.dtype, array.shape))
        arrays.append(array)
    y_train, x_train, y_test, x_test = arrays
    for split, x, y in (("training", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise DataFileError("{}: {} has {} {} images but {} labels".format(
                function, folder, len(x), split, len(y)))
    return (x_train, y_train), (x_test, y_test)
