"""CIFAR-10 (as ``keras.datasets.cifar10``): 50,000 training and 10,000 test 32x32 colour images, 10 classes.

``load_data()`` returns ``(x_train, y_train), (x_test, y_test)`` exactly as Keras 2.0 does:

* ``x_train`` (50000, 32, 32, 3) and ``x_test`` (10000, 32, 32, 3), uint8, channels last (a
  transposed, non-contiguous view of the channels-first batches, as Keras returns it; with
  ``image_data_format() == 'channels_first'`` they stay (N, 3, 32, 32));
* ``y_train`` (50000, 1) uint8 and ``y_test`` (10000, 1) int64: Keras 2.0 fills ``y_train`` into a
  uint8 array but builds ``y_test`` from the Python list of the test batch (NumPy's default int).

Files are found as described in :mod:`bnpy.datasets._lookup`: the folder ``cifar-10-batches-py/``
(``data_batch_1`` ... ``data_batch_5``, ``test_batch``) or the archive ``cifar-10-python.tar.gz``
(the official name) / ``cifar-10-batches-py.tar.gz`` (the name Keras caches it under), which is read
without being extracted. A folder with fewer than the five training batches loads the ones present
and warns. Batches are unpickled by :class:`bnpy.datasets.cifar.RestrictedUnpickler`.
"""

import os
import warnings

import numpy as np

from ..utils.data_utils import DataFileError
from . import _lookup, cifar

__all__ = ["load_data"]

DIRNAME = "cifar-10-batches-py"
TRAIN_BATCHES = tuple("data_batch_{}".format(i) for i in range(1, 6))
TEST_BATCH = "test_batch"
NUM_CLASSES = 10
#: Each official batch (10,000 images of 3,073 bytes, with names and labels) is about 31.0 MB; a
#: larger file is not a CIFAR-10 batch and is refused before it is read.
MAX_BATCH_BYTES = 32 << 20
LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: The official archive (https since Keras 2.0.9). md5 from the CIFAR page; sha256 as later tf.keras.
DOWNLOAD = _lookup.Download(
    fname=DIRNAME,
    untar=True,
    size=170498071,
    origins=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
    file_hash="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    md5="c58f30108f718f92721af3b95e74349a",
)


def _problem(path):
    if os.path.isdir(path):
        names = set(os.listdir(path))
        if TEST_BATCH not in names:
            return "has no {}".format(TEST_BATCH)
        if not names.intersection(TRAIN_BATCHES):
            return "has none of data_batch_1 ... data_batch_5"
        return None
    return cifar.archive_problem(path)


def _source():
    return _lookup.DatasetSource(
        function="cifar10.load_data",
        title="CIFAR-10",
        candidates=(DIRNAME, "cifar-10-python.tar.gz", DIRNAME + ".tar.gz"),
        check=_problem,
        downloads=(DOWNLOAD,),
    )


def load_data(path=None):
    """Load CIFAR-10: ``(x_train, y_train), (x_test, y_test)``, shapes and dtypes as Keras 2.0.

    ``path`` (an addition to Keras's signature): the ``cifar-10-batches-py`` folder, the
    ``.tar.gz`` archive, or a folder holding either; when given, nothing else is searched.
    """
    function = "cifar10.load_data"
    found = _lookup.locate(_source(), path)
    parsed = {}
    max_bytes = {name: MAX_BATCH_BYTES for name in TRAIN_BATCHES + (TEST_BATCH,)}
    for name, data in cifar.iter_batch_files(found, DIRNAME, max_bytes, function):
        parsed[name] = cifar.parse_batch(data, "{} ({})".format(name, found))
    present = [name for name in TRAIN_BATCHES if name in parsed]
    if TEST_BATCH not in parsed or not present:
        raise DataFileError(
            "{}: {} holds {}; expected data_batch_1 ... data_batch_5 and {}".format(
                function, found, sorted(parsed) or "none of the CIFAR-10 batch files", TEST_BATCH
            )
        )
    if len(present) < len(TRAIN_BATCHES):
        missing = [name for name in TRAIN_BATCHES if name not in parsed]
        warnings.warn(
            "{}: {} holds only {} of the five official training batches ({} missing); "
            "loading the {} training images that are there".format(
                function,
                found,
                len(present),
                ", ".join(missing),
                sum(parsed[name][0].shape[0] for name in present),
            ),
            UserWarning,
            stacklevel=2,
        )

    x_train = np.concatenate([parsed[name][0] for name in present])
    y_train = np.concatenate(
        [
            cifar.check_labels(
                parsed[name][1], NUM_CLASSES, "{}: {} in {}".format(function, name, found)
            )
            for name in present
        ]
    ).astype(np.uint8)
    x_test = parsed[TEST_BATCH][0]
    y_test = cifar.check_labels(
        parsed[TEST_BATCH][1], NUM_CLASSES, "{}: {} in {}".format(function, TEST_BATCH, found)
    )
    # Keras 2.0: y_train was filled into a uint8 array, y_test comes from a list (default int).
    y_train = y_train.reshape(len(y_train), 1)
    y_test = np.reshape(np.array(parsed[TEST_BATCH][1]), (len(y_test), 1))

    if _lookup.image_data_format() == "channels_last":
        x_train = x_train.transpose(0, 2, 3, 1)
        x_test = x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)
