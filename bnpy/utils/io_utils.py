"""Atomic file output, shared by every writer of bnpy (weights and model files, downloads, the
experiments' checkpoints and results, plot_model's pictures), and bounded reading of ``.npz``
files (:class:`NpzArchive`).

``with atomic_output(path, prefix) as tmp:`` gives a fresh hidden temporary file beside ``path``
(same folder, so the final rename never crosses file systems); the caller writes it (and fsyncs
what must survive a crash). When the block ends normally the file is renamed onto ``path`` in one
step, so readers see the old file or the new one, never half of one; when it raises (Ctrl-C
included) the temporary file is removed and ``path`` is untouched.

The result is the file a plain ``open(path, "w")`` would have given: a new file gets mode 0666
masked by the umask, an overwritten one keeps its mode, and when ``path`` is a symbolic link its
target is replaced (the link stays a link, as ``open`` writes through it).

A process killed outright (SIGKILL, power loss) cannot remove its temporary file. The next
``atomic_output`` with the same prefix in that folder removes such leftovers once nobody has
written them for STALE_TEMP_SECONDS; a younger one may belong to another process's live write.
Only names this module makes are ever removed: ``<prefix>bnpy-tmp-<pid>-<8 hex digits><suffix>``
(TEMP_MARKER and the pid/random tail are there so that no file a user named can match).
"""

import collections.abc
import contextlib
import os
import re
import secrets
import stat
import time
import zipfile

import numpy as np

__all__ = [
    "atomic_output",
    "remove_stale_temp_files",
    "STALE_TEMP_SECONDS",
    "TEMP_MARKER",
    "NpzArchive",
    "is_hdf5_file",
    "stored_shape_and_dtype",
]

# A temporary file untouched this long belongs to a writer that was killed: a live one (a download
# included) writes to it every few seconds at most.
STALE_TEMP_SECONDS = 3600.0

TEMP_MARKER = "bnpy-tmp-"


def _temp_name_pattern(prefix, suffix):
    return re.compile(
        re.escape(prefix)
        + re.escape(TEMP_MARKER)
        + r"[0-9]+-[0-9a-f]{8}"
        + re.escape(suffix)
        + r"\Z"
    )


def remove_stale_temp_files(folder, prefix, suffix):
    """Remove the temporary files ``<prefix>bnpy-tmp-<pid>-<hex><suffix>`` that atomic_output
    made in ``folder`` and nobody has written for STALE_TEMP_SECONDS (each may be large: a CIFAR-10
    download is 163 MB). Any other name, a user's ``.tmp-notes`` say, is left alone."""
    pattern = _temp_name_pattern(prefix, suffix)
    now = time.time()
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not pattern.match(name):
            continue
        path = os.path.join(folder, name)
        try:
            info = os.lstat(path)
            if stat.S_ISREG(info.st_mode) and now - info.st_mtime > STALE_TEMP_SECONDS:
                os.remove(path)
        except OSError:  # gone already, or not ours to remove
            pass


def _create_temp_file(folder, prefix, suffix, mode):
    """Create ``<prefix>bnpy-tmp-<pid>-<hex><suffix>`` in ``folder`` exclusively with ``mode``
    (the kernel applies the umask); return its path and the permission bits it got."""
    while True:
        name = "{}{}{}-{}{}".format(prefix, TEMP_MARKER, os.getpid(), secrets.token_hex(4), suffix)
        path = os.path.join(folder, name)
        try:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode
            )
        except FileExistsError:
            continue
        try:
            return path, stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(path, prefix, suffix=".tmp"):
    """Yield the path of a new temporary file ``<prefix>bnpy-tmp-<pid>-<hex><suffix>`` beside
    ``path`` (beside its target when ``path`` is a symbolic link); rename it onto that when the
    block ends normally, remove it when the block raises."""
    target = os.path.abspath(path)
    if os.path.islink(target):
        target = os.path.realpath(target)  # write through the link, as open() does
    folder = os.path.dirname(target)
    remove_stale_temp_files(folder, prefix, suffix)
    try:
        existing_mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        existing_mode = None
    # An overwritten file keeps its mode; until then the data stays private (0600). A new file
    # gets 0666 less the umask, which the kernel applies at creation (reading the umask would mean
    # changing it for a moment, a race with other threads creating files).
    tmp_path, created_mode = _create_temp_file(
        folder, prefix, suffix, 0o600 if existing_mode is not None else 0o666
    )
    try:
        yield tmp_path
        # The writer may have replaced the file (some tools write a new one at the path given).
        os.chmod(tmp_path, existing_mode if existing_mode is not None else created_mode)
        os.replace(tmp_path, target)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise


# --------------------------------------------------------------------------------------------------
# Reading .npz files without trusting their sizes

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# zipfile's read(n) builds n bytes before they are copied: reading in chunks keeps that copy small.
_READ_CHUNK_BYTES = 1 << 20


def is_hdf5_file(path):
    """True when ``path`` holds an HDF5 file (a Keras ``.h5``): the signature sits at byte 0 or,
    after a user block, at 512, 1024, 2048, ... (the HDF5 format specification, "Superblock")."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                f.seek(offset)
                if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else 2 * offset
    except OSError:
        return False
    return False


class NpzArchive(collections.abc.Mapping):
    """The arrays of a ``.npz`` file by name (``np.savez``'s ``<name>.npy`` entries), read only
    when asked for and never beyond the size the zip declares.

    ``np.load`` trusts a file: every entry is inflated on access however large, and a 1 MB file
    can hold a deflated 1 GiB entry. Here ``shape_and_dtype(name)`` reads just an entry's ``.npy``
    header (a few hundred bytes) and checks that the entry's declared uncompressed size in the zip
    directory equals header length + prod(shape) * itemsize; a caller compares shape and dtype
    with what it expects before ``archive[name]`` allocates prod(shape) * itemsize bytes and
    inflates the entry into them. Reading stops at the declared size (``zipfile`` does), and the
    CRC is checked at its end. Object arrays (pickles) are refused, as ``allow_pickle=False``.

    Every problem with the file is an ``error`` (ValueError or a subclass) that names
    ``function``, the file and ``kind`` ("bnpy weights file", ...); a missing file stays
    FileNotFoundError, and a Keras HDF5 file is recognised and named as such. Use as a context
    manager (or call ``close``)."""

    def __init__(self, path, function, kind, error=ValueError):
        self.path, self.function, self.kind, self.error = os.fspath(path), function, kind, error
        self._headers = {}
        try:
            self._zip = zipfile.ZipFile(self.path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # BadZipFile, OSError, ValueError, EOFError, ...
            if is_hdf5_file(self.path):
                raise error(
                    "{}: {} is an HDF5 file (a Keras .h5 file, it seems), not a {}: bnpy "
                    "reads .npz files (those save_weights and save write); it cannot read "
                    "HDF5".format(function, self.path, kind)
                ) from None
            raise self._error("{}: {}".format(type(exc).__name__, exc)) from None
        self._infos = {
            info.filename[: -len(".npy")]: info
            for info in self._zip.infolist()
            if info.filename.endswith(".npy")
        }

    def _error(self, why):
        return self.error(
            "{}: {} is not a readable {} ({})".format(self.function, self.path, self.kind, why)
        )

    def close(self):
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __iter__(self):
        return iter(self._infos)

    def __len__(self):
        return len(self._infos)

    def __contains__(self, name):
        return name in self._infos

    @property
    def files(self):
        return list(self._infos)

    def _open_entry(self, name):
        """The entry opened just after its checked .npy header, and that header."""
        info = self._infos[name]
        entry = self._zip.open(info)
        try:
            version = np.lib.format.read_magic(entry)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(entry)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(entry)
            else:
                raise ValueError(".npy format version {}.{}".format(*version))
            if dtype.hasobject:
                raise ValueError(
                    "the entry {!r} holds Python objects (a pickle), which bnpy never "
                    "writes and does not load".format(name)
                )
            count = 1
            for n in shape:
                count *= n
            data_bytes = count * dtype.itemsize
            if entry.tell() + data_bytes != info.file_size:
                raise ValueError(
                    "the entry {!r} says it holds a {} array of shape {} ({} bytes) but "
                    "the zip declares {} bytes for it".format(
                        name, dtype, shape, data_bytes, info.file_size - entry.tell()
                    )
                )
        except BaseException:
            entry.close()
            raise
        return entry, (shape, fortran_order, dtype)

    def shape_and_dtype(self, name):
        """``(shape, dtype)`` of the entry ``name`` from its header alone (nothing inflated)."""
        if name not in self._infos:
            raise KeyError(name)
        if name not in self._headers:
            try:
                entry, header = self._open_entry(name)
            except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError, ...
                raise self._error("{}: {}".format(type(exc).__name__, exc)) from None
            entry.close()
            self._headers[name] = header
        shape, _, dtype = self._headers[name]
        return shape, dtype

    def __getitem__(self, name):
        if name not in self._infos:
            raise KeyError(name)
        try:
            entry, (shape, fortran_order, dtype) = self._open_entry(name)
            with entry:
                array = np.empty(shape, dtype, order="F" if fortran_order else "C")
                view = memoryview(array.reshape(-1, order="A").view(np.uint8))
                filled = 0
                while filled < len(view):  # straight into the array, a bounded chunk at a time
                    got = entry.readinto(view[filled : filled + _READ_CHUNK_BYTES])
                    if not got:
                        raise EOFError(
                            "the entry {!r} ends after {} of {} bytes".format(
                                name, filled, len(view)
                            )
                        )
                    filled += got
                if entry.read(1):  # reaches the end, where zipfile checks the CRC
                    raise ValueError("the entry {!r} holds more than its header says".format(name))
        except Exception as exc:
            raise self._error("{}: {}".format(type(exc).__name__, exc)) from None
        return array


def stored_shape_and_dtype(arrays, name):
    """``(shape, dtype)`` of ``arrays[name]``; from the header alone when ``arrays`` is an
    NpzArchive (a dict of arrays, as np.load gives, works too)."""
    if isinstance(arrays, NpzArchive):
        return arrays.shape_and_dtype(name)
    value = np.asarray(arrays[name])
    return value.shape, value.dtype
