"""CIFAR-100 (as ``keras.datasets.cifar100``): 50,000 training and 10,000 test images, 100 fine / 20 coarse classes.

``load_data(label_mode='fine')`` returns ``(x_train, y_train), (x_test, y_test)`` as Keras 2.0:
``x_*`` (N, 32, 32, 3) uint8 channels last (a transposed view), ``y_*`` (N, 1) int64 (Keras 2.0 builds
both label arrays from the Python lists of the batch files). Files: the folder ``cifar-100-python/``
(``train``, ``test``, ``meta``) or the archive ``cifar-100-python.tar.gz``, found as described in
:mod:`bnpy.datasets._lookup`, unpickled by :class:`bnpy.datasets.cifar.RestrictedUnpickler`.
"""

import os

import numpy as np

from ..utils.data_utils import DataFileError
from . import _lookup, cifar

__all__ = ["load_data"]

DIRNAME = "cifar-100-python"
NUM_CLASSES = {"fine": 100, "coarse": 20}
#: The official files are about 155.2 MB (train, 50,000 images) and 31.0 MB (test, 10,000); a
#: larger file is not CIFAR-100's and is refused before it is read.
MAX_BYTES = {"train": 160 << 20, "test": 32 << 20}

#: The official archive: md5 eb9058c3a382ffc7106e4002c42a8d85 (CIFAR page); sha256 as later tf.keras.
DOWNLOAD = _lookup.Download(
    fname=DIRNAME,
    untar=True,
    size=169001437,
    origins=("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
    file_hash="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)


def _problem(path):
    if os.path.isdir(path):
        missing = [
            name for name in ("train", "test") if not os.path.isfile(os.path.join(path, name))
        ]
        return "has no {}".format(" or ".join(missing)) if missing else None
    return cifar.archive_problem(path)


def _source():
    return _lookup.DatasetSource(
        function="cifar100.load_data",
        title="CIFAR-100",
        candidates=(DIRNAME, DIRNAME + ".tar.gz"),
        check=_problem,
        downloads=(DOWNLOAD,),
    )


def load_data(label_mode="fine", path=None):
    """Load CIFAR-100 with ``label_mode`` 'fine' (100 classes) or 'coarse' (20 superclasses).

    ``path`` (an addition to Keras's signature): the ``cifar-100-python`` folder, the archive, or a
    folder holding either; when given, nothing else is searched.
    """
    function = "cifar100.load_data"
    if label_mode not in NUM_CLASSES:
        raise ValueError(
            '{}: label_mode must be one of "fine" "coarse", got {!r}'.format(function, label_mode)
        )
    found = _lookup.locate(_source(), path)
    parsed = {}
    for name, data in cifar.iter_batch_files(found, DIRNAME, MAX_BYTES, function):
        parsed[name] = cifar.parse_batch(
            data, "{} ({})".format(name, found), label_key=label_mode + "_labels"
        )
    if set(parsed) != {"train", "test"}:
        raise DataFileError(
            "{}: {} holds {}; expected train and test".format(
                function, found, sorted(parsed) or "neither train nor test"
            )
        )
    (x_train, train_labels), (x_test, test_labels) = parsed["train"], parsed["test"]
    for name, labels in (("train", train_labels), ("test", test_labels)):
        cifar.check_labels(
            labels, NUM_CLASSES[label_mode], "{}: {} in {}".format(function, name, found)
        )
    y_train = np.reshape(np.array(train_labels), (len(train_labels), 1))
    y_test = np.reshape(np.array(test_labels), (len(test_labels), 1))
    if _lookup.image_data_format() == "channels_last":
        x_train = x_train.transpose(0, 2, 3, 1)
        x_test = x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)
