"""Reading CIFAR's pickled batches (as ``keras.datasets.cifar``) without executing anything from the file.

The official CIFAR-10/100 "python version" batches are Python 2 cPickle files (protocol 2): a dict
with byte-string keys, Python lists of ints and byte strings, and one uint8 array stored through
exactly three globals::

    numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), 'b')   # then BUILD with the raw bytes
    numpy.dtype('u1', False, True)                                   # then BUILD with its state

``pickle.load`` would import and call *any* global a file names (``os.system``, ``eval``, ...).
:class:`RestrictedUnpickler` resolves only those three (and NumPy 2's ``numpy._core`` spelling of
the first); every other global raises :class:`UnsafePickleError` before anything is called. Even
the allowed three are stand-ins in pure Python that record and check their arguments and state:
NumPy's own ``ndarray.__setstate__``/``dtype.__setstate__`` can crash the interpreter on crafted
states, so they are never called with file data. The array is built afterwards with
``np.frombuffer`` from the checked shape, dtype and byte count, and the loaded object is checked to
hold only dicts, lists, strings, ints and plain numeric arrays.
"""

import io
import os
import pickle
import pickletools
import re
import tarfile
import zlib

import numpy as np

from ..utils.data_utils import DataFileError

__all__ = ["load_batch", "unpickle_batch", "RestrictedUnpickler", "UnsafePickleError"]


class UnsafePickleError(DataFileError, pickle.UnpicklingError):
    """A pickle asks for a global that official CIFAR files never contain; nothing was called."""


def _refuse(message):
    raise UnsafePickleError("cifar.load_batch: " + message)


class _Pure:
    """Base of the stand-ins below: no ``__dict__``; ``__setstate__`` (BUILD) refused unless overridden.

    A pickle can BUILD into any object it holds; without ``__setstate__`` that would write into the
    object's ``__dict__`` or ``setattr`` its slots. Refusing it keeps the stand-ins inert.
    """

    __slots__ = ()

    def __setstate__(self, state):
        _refuse("the pickle tries to set the state of {!r}".format(self))

    def __reduce__(self):
        raise TypeError("{} is not picklable".format(type(self).__name__))


class _NdarrayToken(_Pure):
    """What ``numpy.ndarray`` resolves to: a marker that :class:`_PickledArray` accepts, never callable."""

    __slots__ = ()

    def __repr__(self):
        return "<numpy.ndarray as named by a pickle>"


class _Function(_Pure):
    """An allowed global: callable, but its attributes cannot be changed by the pickle."""

    __slots__ = ("_name", "_function")

    def __init__(self, name, function):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_function", function)

    def __call__(self, *args):
        return self._function(*args)

    def __setattr__(self, key, value):
        _refuse("the pickle tries to set attribute {!r} of {}".format(key, self._name))

    def __repr__(self):
        return "<{} as allowed in CIFAR pickles>".format(self._name)


# dtype strings an array in a CIFAR-like batch may have: bool, ints, unsigned ints, floats.
_DTYPE_SPEC = re.compile(r"\A[<>|=]?(b1|[iu][1248]|f[248])\Z")


class _PickledDtype(_Pure):
    """``numpy.dtype(spec, align, copy)`` + BUILD, recorded and checked, resolved without NumPy's setstate."""

    __slots__ = ("dtype", "built")

    def __init__(self, spec, align=False, copy=True):
        if isinstance(spec, bytes):
            spec = spec.decode("ascii", "replace")
        if not isinstance(spec, str) or not _DTYPE_SPEC.match(spec):
            _refuse(
                "the pickle asks for dtype {!r}; only plain numeric dtypes (such as 'u1') are "
                "allowed".format(spec)
            )
        self.dtype = np.dtype(spec)
        self.built = False

    def __setstate__(self, state):
        # NumPy writes (3, byteorder, subarray, names, fields, elsize, alignment, flags); for a
        # plain numeric type that is (3, '<' or '>' or '|', None, None, None, -1, -1, 0).
        if self.built or not isinstance(state, tuple) or len(state) != 8:
            _refuse("unexpected dtype state {!r}".format(state))
        version, byteorder, subarray, names, fields, elsize, alignment, flags = state
        if isinstance(byteorder, bytes):
            byteorder = byteorder.decode("ascii", "replace")
        if (
            version != 3
            or byteorder not in ("<", ">", "|", "=")
            or (subarray, names, fields) != (None,) * 3
            or (elsize, alignment, flags) != (-1, -1, 0)
        ):
            _refuse(
                "unexpected dtype state {!r}; only plain numeric dtypes are allowed".format(state)
            )
        if byteorder in ("<", ">") and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(byteorder)
        self.built = True

    def __repr__(self):
        return "<dtype {} from a pickle>".format(self.dtype)


class _PickledArray(_Pure):
    """``_reconstruct(ndarray, (0,), b'b')`` + BUILD ``(1, shape, dtype, is_fortran, raw bytes)``.

    The state is checked here (shape, dtype, exact byte count) and the array is made with
    ``np.frombuffer``; NumPy's own ``ndarray.__setstate__`` / ``dtype.__setstate__`` never see
    file-controlled arguments (fuzzing showed that crafted states can crash them).
    """

    __slots__ = ("array",)

    def __init__(self, subtype, shape, dtype_code):
        if subtype is not _NDARRAY_TOKEN:
            _refuse(
                "the pickle asks _reconstruct for {!r}; only numpy.ndarray is allowed".format(
                    subtype
                )
            )
        if shape != (0,) or dtype_code not in (b"b", "b"):
            _refuse("unexpected _reconstruct arguments {!r}".format((shape, dtype_code)))
        self.array = None

    def __setstate__(self, state):
        if self.array is not None or not isinstance(state, tuple) or len(state) != 5:
            _refuse("unexpected array state")
        version, shape, dtype, is_fortran, raw = state
        if (
            version != 1
            or not isinstance(shape, tuple)
            or len(shape) > 32
            or not all(type(n) is int and 0 <= n < 2**40 for n in shape)
        ):
            _refuse("unexpected array version or shape {!r}".format(shape))
        if not isinstance(dtype, _PickledDtype) or not dtype.built:
            _refuse("the array's dtype is not a plain numeric numpy.dtype")
        if type(is_fortran) is not bool or not isinstance(raw, bytes):
            _refuse("unexpected array layout flag or data of type {}".format(type(raw).__name__))
        count = 1
        for n in shape:
            count *= n
        if count * dtype.dtype.itemsize != len(raw):
            raise DataFileError(
                "cifar.load_batch: an array of shape {} and dtype {} needs {} bytes, "
                "the pickle holds {}".format(
                    shape, dtype.dtype, count * dtype.dtype.itemsize, len(raw)
                )
            )
        flat = np.frombuffer(raw, dtype.dtype, count)
        array = flat.reshape(shape, order="F" if is_fortran else "C")
        # A writable, native-endian array that owns its memory, as pickle.load would give.
        self.array = array.astype(dtype.dtype.newbyteorder("="), order="F" if is_fortran else "C")

    def __repr__(self):
        return "<array from a pickle>"


_NDARRAY_TOKEN = _NdarrayToken()
_RECONSTRUCT = _Function("numpy.core.multiarray._reconstruct", _PickledArray)

#: The only globals a CIFAR batch may name: (module, name) -> what the unpickler gets instead.
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # as written by NumPy 1.x (official)
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # the same, written by NumPy 2.x
    ("numpy", "ndarray"): _NDARRAY_TOKEN,
    ("numpy", "dtype"): _Function("numpy.dtype", _PickledDtype),
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
                "numpy uint8 arrays are allowed)".format(self.source, module, name)
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(
            "cifar.load_batch: {} uses a persistent id, which official CIFAR "
            "batches never contain".format(self.source)
        )


def _plain(obj, source, depth=0):
    """``obj`` with arrays made real, checked to hold only the types the official batches contain."""
    if depth > 8:
        raise DataFileError(
            "cifar.load_batch: {} nests containers deeper than a CIFAR batch".format(source)
        )
    if isinstance(obj, (int, bytes, str, type(None))) and not isinstance(obj, _Pure):
        return obj
    if isinstance(obj, _PickledArray):
        if obj.array is None:
            raise DataFileError("cifar.load_batch: {} has an array without data".format(source))
        return obj.array
    if type(obj) is dict:
        plain = {}
        for key, value in obj.items():
            if type(key) not in (bytes, str):
                raise DataFileError(
                    "cifar.load_batch: {} has a dict key of type {}; expected byte strings".format(
                        source, type(key).__name__
                    )
                )
            plain[key] = _plain(value, source, depth + 1)
        return plain
    if type(obj) in (list, tuple):
        # the common case, a list of ints or byte strings, needs no recursion
        return type(obj)(
            item if type(item) in (int, bytes, str) else _plain(item, source, depth + 1)
            for item in obj
        )
    raise DataFileError(
        "cifar.load_batch: {} holds {!r}; official CIFAR batches hold only dicts, "
        "lists, strings, ints and uint8 arrays".format(source, obj)
    )


# The opcodes of the official files (Python 2 cPickle, protocol 2) and of NumPy-2 re-pickles
# (protocols 3-4), with how their argument is laid out: a fixed byte count, a length prefix of 1 or
# 4 bytes ('len1', 'len4', 'len4s' signed), or GLOBAL's two newline-terminated names. Everything else
# -- object building (INST, OBJ, NEWOBJ), the extension registry, persistent ids, out-of-band
# buffers, text-mode (protocol 0) values, unbounded ints -- is refused before unpickling starts.
_ALLOWED_OPCODES = {
    0x80: ("PROTO", 1),
    0x95: ("FRAME", 8),
    0x2E: ("STOP", 0),
    0x28: ("MARK", 0),
    0x30: ("POP", 0),
    0x31: ("POP_MARK", 0),
    0x32: ("DUP", 0),
    0x7D: ("EMPTY_DICT", 0),
    0x5D: ("EMPTY_LIST", 0),
    0x29: ("EMPTY_TUPLE", 0),
    0x74: ("TUPLE", 0),
    0x85: ("TUPLE1", 0),
    0x86: ("TUPLE2", 0),
    0x87: ("TUPLE3", 0),
    0x73: ("SETITEM", 0),
    0x75: ("SETITEMS", 0),
    0x61: ("APPEND", 0),
    0x65: ("APPENDS", 0),
    0x71: ("BINPUT", 1),
    0x72: ("LONG_BINPUT", 4),
    0x94: ("MEMOIZE", 0),
    0x68: ("BINGET", 1),
    0x6A: ("LONG_BINGET", 4),
    0x4E: ("NONE", 0),
    0x88: ("NEWTRUE", 0),
    0x89: ("NEWFALSE", 0),
    0x4A: ("BININT", 4),
    0x4B: ("BININT1", 1),
    0x4D: ("BININT2", 2),
    0x8A: ("LONG1", "len1"),
    0x47: ("BINFLOAT", 8),
    0x55: ("SHORT_BINSTRING", "len1"),
    0x54: ("BINSTRING", "len4s"),
    0x43: ("SHORT_BINBYTES", "len1"),
    0x42: ("BINBYTES", "len4"),
    0x8C: ("SHORT_BINUNICODE", "len1"),
    0x58: ("BINUNICODE", "len4"),
    0x63: ("GLOBAL", "lines2"),
    0x93: ("STACK_GLOBAL", 0),
    0x52: ("REDUCE", 0),
    0x62: ("BUILD", 0),
}
_OPCODE_NAMES = {ord(op.code): op.name for op in pickletools.opcodes}


def _prescan(data, source):
    """Walk the opcodes without executing any, refusing what official files never contain.

    This runs before unpickling because CPython's unpickler can be driven by a few crafted bytes to
    allocate gigabytes (a memo index near 2**32 grows its memo table to match), and it names the
    first forbidden global before anything is resolved. Strings are skipped, not decoded, so a
    31 MB batch is scanned in milliseconds.
    """

    def corrupt(why):
        raise DataFileError(
            "cifar.load_batch: {} is not a readable CIFAR batch (truncated or corrupt "
            "pickle: {})".format(source, why)
        )

    size, position, memo_size = len(data), 0, 0
    while True:
        if position >= size:
            corrupt("it ends without a STOP opcode")
        code = data[position]
        entry = _ALLOWED_OPCODES.get(code)
        if entry is None:
            name = _OPCODE_NAMES.get(code)
            if name is None:
                corrupt("unknown opcode {:#04x} at byte {}".format(code, position))
            _refuse(
                "{} uses the pickle opcode {} at byte {}, which official CIFAR batches never "
                "contain; refusing to unpickle it".format(source, name, position)
            )
        name, layout = entry
        start = position + 1
        if layout == "lines2":
            first = data.find(b"\n", start)
            second = data.find(b"\n", first + 1) if first >= 0 else -1
            if second < 0:
                corrupt("a GLOBAL at byte {} is cut off".format(position))
            module = data[start:first].decode("latin-1")
            attribute = data[first + 1 : second].decode("latin-1")
            if (module, attribute) not in ALLOWED_GLOBALS:
                _refuse(
                    "{} asks to load the global {}.{}, which official CIFAR batches never contain; "
                    "refusing to unpickle it (only dicts, lists, strings, ints and numpy uint8 "
                    "arrays are allowed)".format(source, module, attribute)
                )
            position = second + 1
            continue
        if layout in ("len1", "len4", "len4s"):
            width = 1 if layout == "len1" else 4
            if start + width > size:
                corrupt("a {} at byte {} is cut off".format(name, position))
            length = int.from_bytes(
                data[start : start + width], "little", signed=(layout == "len4s")
            )
            if length < 0:
                corrupt("a {} at byte {} has a negative length".format(name, position))
            start += width
        else:
            length = layout
        end = start + length
        if end > size:
            corrupt("a {} at byte {} is cut off".format(name, position))
        if name in ("BINPUT", "LONG_BINPUT"):
            index = int.from_bytes(data[start:end], "little")
            if index > memo_size:  # picklers number memo entries 0, 1, 2, ...
                corrupt("memo entry {} stored when only {} exist".format(index, memo_size))
            memo_size = max(memo_size, index + 1)
        elif name == "MEMOIZE":
            memo_size += 1
        elif name == "STOP":
            return
        position = end


def unpickle_batch(data, source="<bytes>"):
    """The dict of one CIFAR batch from its pickled bytes, keys decoded to str (as Keras does)."""
    _prescan(data, source)
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), source).load()
    except (UnsafePickleError, DataFileError):
        raise
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        IndexError,
        KeyError,
        OverflowError,
        MemoryError,
        UnicodeDecodeError,
        RuntimeError,
    ) as exc:
        raise DataFileError(
            "cifar.load_batch: {} is not a readable CIFAR batch (truncated or "
            "corrupt pickle: {}: {})".format(source, type(exc).__name__, exc)
        ) from exc
    obj = _plain(obj, source)
    if not isinstance(obj, dict):
        raise DataFileError(
            "cifar.load_batch: {} holds a {}, expected a dict".format(source, type(obj).__name__)
        )
    try:
        return {
            (key.decode("utf8") if isinstance(key, bytes) else key): value
            for key, value in obj.items()
        }
    except UnicodeDecodeError as exc:
        raise DataFileError(
            "cifar.load_batch: {} has a dict key that is not UTF-8 text ({})".format(source, exc)
        ) from exc


def parse_batch(data, source="<bytes>", label_key="labels"):
    """``(images (N, 3, 32, 32) uint8, labels list of N ints)`` from one batch's pickled bytes."""
    batch = unpickle_batch(data, source)
    for key in ("data", label_key):
        if key not in batch:
            raise DataFileError(
                "cifar.load_batch: {} has no {!r} entry (it has {})".format(
                    source, key, sorted(batch)
                )
            )
    images = batch["data"]
    if (
        not isinstance(images, np.ndarray)
        or images.dtype != np.uint8
        or images.ndim != 2
        or images.shape[1] != 3 * 32 * 32
    ):
        raise DataFileError(
            "cifar.load_batch: {}'s 'data' should be a uint8 array of shape (N, 3072), "
            "got {}".format(source, _describe(images))
        )
    labels = batch[label_key]
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataFileError(
                "cifar.load_batch: {}'s {!r} should be a list of ints, got {}".format(
                    source, label_key, _describe(labels)
                )
            )
        labels = labels.tolist()
    if not isinstance(labels, list) or not all(type(label) is int for label in labels):
        raise DataFileError(
            "cifar.load_batch: {}'s {!r} should be a list of ints".format(source, label_key)
        )
    if len(labels) != images.shape[0]:
        raise DataFileError(
            "cifar.load_batch: {} has {} images but {} labels".format(
                source, images.shape[0], len(labels)
            )
        )
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
        raise DataFileError(
            "{} has a label too large for any class index, expected 0 to {}".format(
                source, num_classes - 1
            )
        ) from None
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise DataFileError(
            "{} has labels in [{}, {}], expected 0 to {}".format(
                source, array.min(), array.max(), num_classes - 1
            )
        )
    return array


def iter_batch_files(location, top_folder, max_bytes, function):
    """Yield ``(name, bytes)`` for each file named in ``max_bytes`` present in a batch folder or a
    tar archive, refusing (DataFileError) a file larger than ``max_bytes[name]`` before reading it.

    ``location`` is a folder holding the batch files, or a ``.tar.gz`` whose members are
    ``<top_folder>/<name>``. Archives are read in memory, never extracted, so a read-only or
    untrusted archive is as safe as a folder; members other than regular files are ignored. The
    size a tar header announces is checked before the member is inflated: a small archive whose
    member inflates to gigabytes costs no memory beyond the bound.
    """

    def check_size(name, size, where):
        if size > max_bytes[name]:
            raise DataFileError(
                "{}: {} is {} bytes; an official {} is at most {}, so this is not "
                "one (refused before reading it)".format(
                    function, where, size, name, max_bytes[name]
                )
            )

    if os.path.isdir(location):
        for name in max_bytes:
            fpath = os.path.join(location, name)
            if os.path.isfile(fpath):
                with open(fpath, "rb") as f:
                    check_size(name, os.fstat(f.fileno()).st_size, fpath)
                    yield name, f.read(max_bytes[name] + 1)
        return
    member_names = {top_folder + "/" + name: name for name in max_bytes}
    try:
        with tarfile.open(location, "r:*") as archive:
            for member in archive:
                name = member_names.get(
                    member.name[2:] if member.name.startswith("./") else member.name
                )
                if name is not None and member.isfile():
                    check_size(name, member.size, "{} in {}".format(member.name, location))
                    yield name, archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError)):
            raise
        raise DataFileError(
            "{}: {} is truncated or corrupt ({}: {})".format(
                function, location, type(exc).__name__, exc
            )
        ) from exc


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
