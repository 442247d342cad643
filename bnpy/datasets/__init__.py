"""bnpy.datasets: cifar10, cifar100, mnist and fashion_mnist, each with ``load_data()`` as in Keras 2.0,
and cifar10_sample: 12,000 CIFAR-10 images shipped inside bnpy, for offline use.

The loaders find their files offline wherever they already are (``path=``, ``$BNPY_DATA``,
``~/.keras/datasets``, system dataset folders such as Debian's ``/usr/share/datasets``) and download
them, checksum-verified, only as the last resort; see :mod:`bnpy.datasets._lookup`. They never
execute code from a file: CIFAR batches go through a restricted unpickler, ``.npz`` files are read
with ``allow_pickle=False``, IDX files are parsed from their headers.
"""

from ..utils.data_utils import ChecksumError, DataFileError, DownloadError, UnsafeArchiveError

# The package's modules, re-exported (bnpy.datasets.cifar10.load_data() as in Keras).
from . import cifar, cifar10, cifar10_sample, cifar100, fashion_mnist, mnist  # noqa: F401
from .cifar import UnsafePickleError

__all__ = [
    "cifar10",
    "cifar10_sample",
    "cifar100",
    "mnist",
    "fashion_mnist",
    "DataFileError",
    "ChecksumError",
    "DownloadError",
    "UnsafeArchiveError",
    "UnsafePickleError",
]
