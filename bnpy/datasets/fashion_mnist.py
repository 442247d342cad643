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

from ..utils.data_utils import DataFileError
from . import _lookup

__all__ = ["load_data", "read_idx"]

DIRNAME = "fashion-mnist"
FILES = (
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
)
#: md5 of the official files (zalandoresearch/fashion-mnist README).
MD5 = {
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
}
BASE_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # Keras 2.0.9
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
)  # later tf.keras
LABEL_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: The official counts; a file announcing more is refused before its data is read.
TRAIN_COUNT, TEST_COUNT = 60000, 10000
# Reads of at most this many bytes: gzip's read(n) builds n bytes before they are copied.
_READ_CHUNK_BYTES = 1 << 20

# IDX type codes -> big-endian dtypes (yann.lecun.com/exdb/mnist).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _idx_layout(head, source):
    """``(shape, dtype, header length)`` from the first bytes of an IDX file (4 + 4 * ndim of them
    suffice): magic ``00 00 <type> <ndim>``, then ndim big-endian uint32 sizes."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
        raise DataFileError(
            "read_idx: {} is not an IDX file (bad magic number {})".format(
                source, bytes(head[:4]).hex()
            )
        )
    ndim = head[3]
    header = 4 + 4 * ndim
    if len(head) < header:
        raise DataFileError("read_idx: {} is truncated inside its header".format(source))
    shape = tuple(int(n) for n in np.frombuffer(head, ">u4", ndim, 4))
    return shape, np.dtype(_IDX_TYPES[head[2]]), header


def read_idx(buffer, source="<bytes>"):
    """The array stored in IDX bytes: magic ``00 00 <type> <ndim>``, ndim big-endian uint32 sizes, data.

    The data size must match the header exactly; a short or over-long buffer is a DataFileError.
    Returns a native-endian, writable array.
    """
    shape, dtype, header = _idx_layout(buffer, source)
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(buffer) != expected:
        raise DataFileError(
            "read_idx: {} should hold {} bytes for shape {} but holds {} ({})".format(
                source,
                expected,
                shape,
                len(buffer),
                "truncated" if len(buffer) < expected else "trailing bytes",
            )
        )
    data = np.frombuffer(buffer, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a native-endian copy: writable, owns its memory


def _file_in(folder, name):
    """``name`` (.gz) in ``folder``, or its unzipped twin; None when neither is there."""
    for candidate in (name, name[: -len(".gz")]):
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
        function="fashion_mnist.load_data",
        title="Fashion-MNIST",
        candidates=(DIRNAME,),
        check=_problem,
        download_subdir=DIRNAME,
        downloads=tuple(
            _lookup.Download(
                fname=name, origins=tuple(base + name for base in BASE_URLS), file_hash=MD5[name]
            )
            for name in FILES
        ),
        from_downloads=lambda paths: os.path.dirname(paths[0]),
        hint="On Debian or Ubuntu, `apt install dataset-fashion-mnist` puts the files in "
        "/usr/share/datasets/fashion-mnist.",
    )


def _read(fpath, inner_shape, max_count, function):
    """The uint8 array ``(N,) + inner_shape`` of the IDX file ``fpath`` (gzipped or not), with
    N <= max_count. The header is read and checked first; then exactly the size it announces
    is read into one array, a chunk at a time, and one byte more must not exist: a small .gz
    that inflates to gigabytes costs no more memory than the data it should hold."""
    try:
        with (gzip.open if fpath.endswith(".gz") else open)(fpath, "rb") as f:
            head = f.read(4)
            if len(head) == 4:
                head += f.read(4 * head[3])
            shape, dtype, _ = _idx_layout(head, fpath)
            if dtype != np.uint8 or shape[1:] != inner_shape or not shape:
                raise DataFileError(
                    "{}: {} should hold uint8 {}, its header says {} {}".format(
                        function,
                        fpath,
                        "labels (N,)" if not inner_shape else "images (N, 28, 28)",
                        dtype,
                        shape,
                    )
                )
            if shape[0] > max_count:
                raise DataFileError(
                    "{}: {}'s header says {} items; Fashion-MNIST has {}".format(
                        function, fpath, shape[0], max_count
                    )
                )
            array = np.empty(shape, np.uint8)
            view = memoryview(array.reshape(-1))
            filled = 0
            while filled < len(view):
                got = f.readinto(view[filled : filled + _READ_CHUNK_BYTES])
                if not got:
                    break
                filled += got
            if filled < len(view) or f.read(1):
                raise DataFileError(
                    "read_idx: {} should hold {} bytes of data for shape {} but holds "
                    "{} ({})".format(
                        fpath,
                        len(view),
                        shape,
                        filled,
                        "truncated" if filled < len(view) else "trailing bytes",
                    )
                )
            return array
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataFileError(
            "{}: {} is truncated or corrupt ({}: {})".format(
                function, fpath, type(exc).__name__, exc
            )
        ) from exc


def load_data(path=None):
    """Load Fashion-MNIST: ``(x_train, y_train), (x_test, y_test)`` as Keras 2.0.9+.

    ``path`` (an addition to Keras's signature): the folder holding the four files, or a folder
    holding ``fashion-mnist/``; when given, nothing else is searched.
    """
    function = "fashion_mnist.load_data"
    folder = _lookup.locate(_source(), path)
    arrays = []
    for name in FILES:
        inner_shape = () if "labels" in name else (28, 28)
        max_count = TRAIN_COUNT if name.startswith("train") else TEST_COUNT
        arrays.append(_read(_file_in(folder, name), inner_shape, max_count, function))
    y_train, x_train, y_test, x_test = arrays
    for split, x, y in (("training", x_train, y_train), ("test", x_test, y_test)):
        if len(x) != len(y):
            raise DataFileError(
                "{}: {} has {} {} images but {} labels".format(
                    function, folder, len(x), split, len(y)
                )
            )
    return (x_train, y_train), (x_test, y_test)
