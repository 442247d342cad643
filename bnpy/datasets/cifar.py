"""Reading CIFAR's pickled batches (as ``keras.datasets.cifar``) without executing anything from the file.

The official CIFAR-10/100 "python version" batches are Python 2 cPickle files (protocol 2): a dict
with byte-string keys, Python lists of ints and byte strings, and one uint8 array stored through
exactly three globals::

    numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')   # then BUILD with the raw bytes
    numpy.dtype('u1', False, True)                                   # then BUILD with its state

``pickle.load`` would import and call *any* global a file names (``os.system``, ``eval``, ...).
:class:`RestrictedUnpickler` resolves only those three (and NumPy 2's ``numpy._core`` spelling of
the first), each behind a wrapper that checks its arguments; every other global raises
:class:`UnsafePickleError` before anything is called. The loaded object is then checked to hold
only dicts, lists, strings, ints and plain numeric arrays.
"""
import io
import os
import pickle
import tarfile
import zlib

import numpy as np

from ..utils.data_utils import DataFileError

__all__ = ["load_batch", "unpickle_batch", "RestrictedUnpickler", "UnsafePickleError"]


class UnsafePickleError(DataFileError, pickle.UnpicklingError):
    """A pickle asks for a global that official CIFAR files never contain; nothing was called."""


class _NdarrayClassToken:
    """Stands for ``numpy.ndarray`` inside a pickle: it can be passed to ``_reconstruct`` only.

    Returning the real class would let a crafted file call ``numpy.ndarray(...)`` through REDUCE;
    this token is not callable and has no ``__dict__`` or ``__setstate__`` to BUILD into.
    """
    __slots__ = ()

    def __repr__(self):
        return "<numpy.ndarray as named by a pickle>"


_NDARRAY_TOKEN = _NdarrayClassToken()
# numpy's own array-reconstruction function, taken from ndarray.__reduce__ so that neither the
# deprecated numpy.core nor the private numpy._core module has to be imported by name.
_NUMPY_RECONSTRUCT = np.empty(0, np.uint8).__reduce__()[0]
_PLAIN_KINDS = "biuf"  # bool, signed and unsigned ints, floats: arrays of these hold no objects


def _reconstruct(subtype, shape, dtype_code):
    """``numpy.core.multiarray._reconstruct`` restricted to plain ``numpy.ndarray``."""
    if subtype is not _NDARRAY_TOKEN:
        raise UnsafePickleError("cifar.load_batch: the pickle asks _reconstruct for {!r}; only "
                                "numpy.ndarray is allowed".format(subtype))
    return _NUMPY_RECONSTRUCT(np.ndarray, shape, dtype_code)


def _dtype(spec, align=False, copy=True):
    """``numpy.dtype(spec, align, copy)`` for plain numeric type strings ('u1', '<f4', ...) only."""
    if isinstance(spec, bytes):
        spec = spec.decode("ascii", "replace")
    if not isinstance(spec, str):
        raise UnsafePickleError("cifar.load_batch: the pickle asks numpy.dtype for {!r}; only type "
                                "strings such as 'u1' are allowed".format(spec))
    try:
        dtype = np.dtype(spec)
    except TypeError as exc:
        raise UnsafePickleError("cifar.load_batch: the pickle asks for the unknown dtype {!r}"
                                .format(spec)) from exc
    if dtype.kind not in _PLAIN_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise UnsafePickleError("cifar.load_batch: the pickle asks for dtype {!r}; only plain "
                                "numeric dtypes are allowed".format(spec))
    return np.dtype(spec, bool(align), bool(copy))


#: The only globals a CIFAR batch may name (module, name) -> what the unpickler gets instead.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,   # as written by NumPy 1.x (official)
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,  # the same, written by NumPy 2.x
    ("numpy", "ndarray"): _NDARRAY_TOKEN,
    ("numpy", "dtype"): _dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`ALLOWED_GLOBALS` (``encoding='bytes'`` as Keras)."""

    def __init__(self, file, source="<bytes>"):
        super().__init__(file, encoding="bytes")
        self.source = source

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                "cifar.load_batch: {} asks to load the global {}.{}, which official CIFAR batches "
                "never contain; refusing to unpickle it (only dicts, lists, strings, ints and "
                "numpy uint8 arrays are allowed)".format(self.source, module, name)) from None

    def persistent_load(self, pid):
        raise UnsafePickleError("cifar.load_batch: {} uses a persistent id, which official CIFAR "
                                "batches never contain".format(self.source))


def _check_plain(obj, source, depth=0):
    """Raise unless ``obj`` is built only from the types the official batches contain."""
    if depth > 8:
        raise DataFileError("cifar.load_batch: {} nests containers deeper than a CIFAR batch"
                            .format(source))
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (bytes, str)):
                raise DataFileError("cifar.load_batch: {} has a dict key of type {}; expected byte "
                                    "strings".format(source, type(key).__name__))
            _check_plain(value, source, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            if not isinstance(item, (int, bytes, str)):  # the fast common case needs no recursion
                _check_plain(item, source, depth + 1)
    elif isinstance(obj, np.ndarray):
        if type(obj) is not np.ndarray or obj.dtype.kind not in _PLAIN_KINDS or obj.dtype.hasobject:
            raise DataFileError("cifar.load_batch: {} holds an array of {} {}; expected plain "
                                "numeric arrays".format(source, type(obj).__name__, obj.dtype))
    elif not isinstance(obj, (int, bytes, str, type(None))):
        raise DataFileError("cifar.load_batch: {} holds an object of type {}; official CIFAR "
                            "batches hold only dicts, lists, strings, ints and uint8 arrays"
                            .format(source, type(obj).__name__))


def unpickle_batch(data, source="<bytes>"):
    """The dict of one CIFAR batch from its pickled bytes, keys decoded to str (as Keras does)."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), source).load()
    except (UnsafePickleError, DataFileError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, OverflowError, MemoryError, UnicodeDecodeError) as exc:
        raise DataFileError("cifar.load_batch: {} is not a readable CIFAR batch (truncated or "
                            "corrupt pickle: {}: {})".format(source, type(exc).__name__, exc)) from exc
    _check_plain(obj, source)
    if not isinstance(obj, dict):
        raise DataFileError("cifar.load_batch: {} holds a {}, expected a dict".format(
            source, type(obj).__name__))
    return {(key.decode("utf8") if isinstance(key, bytes) else key): value for key, value in obj.items()}


def parse_batch(data, source="<bytes>", label_key="labels"):
    """``(images (N, 3, 32, 32) uint8, labels list of N ints)`` from one batch's pickled bytes."""
    batch = unpickle_batch(data, source)
    for key in ("data", label_key):
        if key not in batch:
            raise DataFileError("cifar.load_batch: {} has no {!r} entry (it has {})".format(
                source, key, sorted(batch)))
    images = batch["data"]
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2 \
            or images.shape[1] != 3 * 32 * 32:
        raise DataFileError("cifar.load_batch: {}'s 'data' should be a uint8 array of shape (N, 3072), "
                            "got {}".format(source, _describe(images)))
    labels = batch[label_key]
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataFileError("cifar.load_batch: {}'s {!r} should be a list of ints, got {}".format(
                source, label_key, _describe(labels)))
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(type(label) is int for label in labels):
        raise DataFileError("cifar.load_batch: {}'s {!r} should be a list of ints".format(source, label_key))
    if len(labels) != images.shape[0]:
        raise DataFileError("cifar.load_batch: {} has {} images but {} labels".format(
            source, images.shape[0], len(labels)))
    # Each row is the red plane, then green, then blue, each 32x32 row-major: channels first.
    return images.reshape(images.shape[0], 3, 32, 32), labels


def _describe(value):
    if isinstance(value, np.ndarray):
        return "{} array of shape {}".format(value.dtype, value.shape)
    return type(value).__name__


def load_batch(fpath, label_key="labels"):
    """Keras's ``cifar.load_batch``: ``(data (N, 3, 32, 32) uint8, labels list)`` of one batch file."""
    with open(fpath, "rb") as f:
        data = f.read()
    return parse_batch(data, fpath, label_key)


def check_labels(labels, num_classes, source):
    """Labels as an int64 array, checked to lie in ``[0, num_classes)``."""
    try:
        array = np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise DataFileError("{} has a label too large for any class index, expected 0 to {}".format(
            source, num_classes - 1)) from None
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise DataFileError("{} has labels in [{}, {}], expected 0 to {}".format(
            source, array.min(), array.max(), num_classes - 1))
    return array


def iter_batch_files(location, top_folder, wanted, function):
    """Yield ``(name, bytes)`` for each file of ``wanted`` present in a batch folder or a tar archive.

    ``location`` is a folder holding the batch files, or a ``.tar.gz`` whose members are
    ``<top_folder>/<name>``. Archives are read in memory, never extracted, so a read-only or
    untrusted archive is as safe as a folder; members other than regular files are ignored.
    """
    if os.path.isdir(location):
        for name in wanted:
            fpath = os.path.join(location, name)
            if os.path.isfile(fpath):
                with open(fpath, "rb") as f:
                    yield name, f.read()
        return
    member_names = {top_folder + "/" + name: name for name in wanted}
    try:
        with tarfile.open(location, "r:*") as archive:
            for member in archive:
                name = member_names.get(member.name[2:] if member.name.startswith("./") else member.name)
                if name is not None and member.isfile():
                    yield name, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise DataFileError("{}: {} is truncated or corrupt ({}: {})".format(
            function, location, type(exc).__name__, exc)) from exc


def archive_problem(path):
    """None when ``path`` is a file that starts like a tar archive, else why it is not usable."""
    if not os.path.isfile(path):
        return "is not a file"
    try:
        if tarfile.is_tarfile(path):
            return None
    except OSError as exc:
        return "cannot be read ({})".format(exc)
    return "is not a tar archive"
