"""Downloading, verifying, caching and unpacking data files: ``get_file`` as in Keras 2.0, made safe.

``get_file(fname, origin, untar=False, md5_hash=None, file_hash=None, cache_subdir='datasets',
hash_algorithm='auto', extract=False, archive_format='auto', cache_dir=None)`` keeps Keras 2.0.8's
signature, cache layout (``~/.keras/<cache_subdir>``, ``/tmp/.keras`` when that is not writable) and
return values. Where Keras 2.0 could leave a broken file behind, this one does not:

* A download is written to a hidden temporary file in the destination folder and renamed into place
  (``os.replace``) only once it is complete: its byte count matches ``Content-Length`` and, when a
  hash is given, its checksum matches. An interrupted, truncated or corrupt download (network error,
  server closing mid-body, Ctrl-C) removes the temporary file, so no file that looks complete is
  ever left. Keras 2.0 verified only files already in the cache; this also verifies fresh downloads.
* Archives are checked member by member *before* anything is written: absolute paths, ``..``
  components, paths that pass through a link of the archive, links that point outside the target
  folder, and device or FIFO members are refused with :class:`UnsafeArchiveError`. Extraction goes
  to a temporary folder beside the target and is moved into place only when it succeeded, so a
  truncated archive leaves no half-extracted folder.
* Extraction merges into what is there, as Keras's does: nothing the archive does not hold is
  removed (a cached ``datasets/fashion-mnist/`` keeps its other files when an archive holding
  ``fashion-mnist/README`` is unpacked beside it); only files of the same name are replaced.

NumPy is not needed here; the progress printer is a small Keras-Progbar-style line of its own.
"""

import hashlib
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib

from .io_utils import atomic_output

__all__ = [
    "get_file",
    "validate_file",
    "hash_file",
    "extract_archive",
    "DataFileError",
    "ChecksumError",
    "UnsafeArchiveError",
    "DownloadError",
]

_HASH_CHUNK_BYTES = 65535  # Keras hashes in 65 535-byte chunks; any size gives the same digest
_DOWNLOAD_CHUNK_BYTES = 1 << 16


class DataFileError(ValueError):
    """A data file exists but is not what it should be: corrupt, truncated or of the wrong format."""


class ChecksumError(DataFileError):
    """A file's md5/sha256 digest differs from the expected one."""


class UnsafeArchiveError(DataFileError):
    """An archive member would be written, or would point, outside the extraction folder."""


class DownloadError(OSError):
    """Fetching a URL failed (no network, HTTP error, connection closed before the end)."""


# --------------------------------------------------------------------------------------------------
# Hashes


def _resolve_hash_algorithm(file_hash, algorithm):
    """Keras's rule: 'auto' means sha256 for a 64-character hash and md5 otherwise."""
    if algorithm not in ("auto", "md5", "sha256"):
        raise ValueError(
            "get_file: hash_algorithm must be 'auto', 'md5' or 'sha256', got {!r}".format(algorithm)
        )
    if algorithm == "auto":
        return "sha256" if len(file_hash) == 64 else "md5"
    return algorithm


def _check_hash_string(function, file_hash):
    if not isinstance(file_hash, str):
        raise TypeError(
            "{}: file_hash must be a hex string, got {}".format(function, type(file_hash).__name__)
        )
    lowered = file_hash.lower()
    if len(lowered) not in (32, 64) or any(c not in "0123456789abcdef" for c in lowered):
        raise ValueError(
            "{}: file_hash must be 32 (md5) or 64 (sha256) hex digits, got {!r}".format(
                function, file_hash
            )
        )
    return lowered


def hash_file(fpath, algorithm="sha256", chunk_size=_HASH_CHUNK_BYTES):
    """Hex digest of the file at ``fpath`` ('md5' or 'sha256'), read in chunks."""
    if algorithm not in ("md5", "sha256"):
        raise ValueError(
            "hash_file: algorithm must be 'md5' or 'sha256', got {!r}".format(algorithm)
        )
    hasher = hashlib.new(algorithm)
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash, algorithm="auto", chunk_size=_HASH_CHUNK_BYTES):
    """True when the file's md5/sha256 digest equals ``file_hash`` (algorithm 'auto' as Keras)."""
    file_hash = _check_hash_string("validate_file", file_hash)
    algorithm = _resolve_hash_algorithm(file_hash, algorithm)
    return hash_file(fpath, algorithm, chunk_size) == file_hash


# --------------------------------------------------------------------------------------------------
# Progress


class _ByteProgress:
    """A one-line Keras-Progbar-style byte counter: ``  65536/170498071 [>....] - ETA: 41s``.

    On a terminal the line is redrawn with ``\\r`` at most every 0.1 s; elsewhere (logs, notebooks
    captured to files) a line is printed at each further 10 % only, so logs stay short.
    """

    WIDTH = 30

    def __init__(self, total, stream=None):
        self.total = total if total and total > 0 else None
        self.stream = stream if stream is not None else sys.stdout
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.last_decile = -1
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _line(self, done):
        elapsed = time.monotonic() - self.start
        if self.total is None:
            return "{} bytes - {:.0f}s".format(done, elapsed)
        width = len(str(self.total))
        fraction = min(done / self.total, 1.0)
        filled = int(self.WIDTH * fraction)
        bar = "=" * filled + (">" if filled < self.WIDTH else "") + "." * (self.WIDTH - filled - 1)
        if done >= self.total:
            tail = " - {:.0f}s".format(elapsed)
        else:
            eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
            tail = " - ETA: {:.0f}s".format(eta)
        return "{:>{w}}/{} [{}]{}".format(done, self.total, bar[: self.WIDTH], tail, w=width)

    def update(self, done):
        now = time.monotonic()
        if self.is_tty:
            if now - self.last_draw >= 0.1:
                self.stream.write("\r" + self._line(done))
                self.stream.flush()
                self.last_draw = now
        elif self.total is not None:
            decile = int(10 * min(done / self.total, 1.0))
            if decile > self.last_decile and decile < 10:
                self.stream.write(self._line(done) + "\n")
                self.last_decile = decile

    def finish(self, done):
        self.stream.write(("\r" if self.is_tty else "") + self._line(done) + "\n")
        self.stream.flush()


# --------------------------------------------------------------------------------------------------
# Download


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _download(origin, fpath, file_hash, algorithm, progress, timeout):
    """Fetch ``origin`` into ``fpath`` atomically: temp file in the same folder, then os.replace.

    The byte count is checked against Content-Length and the digest against ``file_hash`` (when
    given) before the rename; on any failure, KeyboardInterrupt included, the temp file is removed
    (io_utils.atomic_output, which also removes the stale temp files of killed earlier downloads
    of the same file).
    """
    hasher = hashlib.new(algorithm) if file_hash else None
    received = 0
    with atomic_output(fpath, "." + os.path.basename(fpath) + ".", ".part") as tmp_path:
        with open(tmp_path, "wb") as out:
            try:
                response = urllib.request.urlopen(origin, timeout=timeout)
            except urllib.error.HTTPError as exc:
                raise DownloadError(
                    "URL fetch failure on {}: {} -- {}".format(origin, exc.code, exc.reason)
                ) from exc
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DownloadError(
                    "URL fetch failure on {}: None -- {}".format(origin, reason)
                ) from exc
            with response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                bar = _ByteProgress(total) if progress else None
                while True:
                    try:
                        chunk = response.read(_DOWNLOAD_CHUNK_BYTES)
                    except Exception as exc:  # IncompleteRead, reset, timeout: all mean "cut short"
                        raise DownloadError(
                            "URL fetch failure on {}: download interrupted after {} "
                            "of {} bytes -- {!r}".format(
                                origin, received, total if total else "?", exc
                            )
                        ) from exc
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    if bar is not None:
                        bar.update(received)
                if bar is not None:
                    bar.finish(received)
            if total is not None and received != total:
                raise DownloadError(
                    "URL fetch failure on {}: connection closed after {} of {} bytes".format(
                        origin, received, total
                    )
                )
            out.flush()
            os.fsync(out.fileno())
        if hasher is not None and hasher.hexdigest() != file_hash:
            raise ChecksumError(
                "get_file: the file downloaded from {} has {} {} but {} was expected: the download "
                "is corrupt or the file on the server changed; nothing was saved".format(
                    origin, algorithm, hasher.hexdigest(), file_hash
                )
            )


# --------------------------------------------------------------------------------------------------
# Safe extraction


def _split_member_name(function, archive, name):
    """Components of an archive member name; refuses absolute names and '..' (never normalised away)."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":") or os.path.isabs(name):
        raise UnsafeArchiveError(
            "{}: {} has a member with an absolute path {!r}; refusing to extract it".format(
                function, archive, name
            )
        )
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(
            "{}: {} has a member {!r} with a '..' component that would write "
            "outside the target folder; refusing to extract it".format(function, archive, name)
        )
    return parts


def _walk_link_target(function, archive, member_name, start_parts, target, link_members):
    """Resolve ``target`` lexically from ``start_parts``; it must stay inside and pass no link."""
    if target.replace("\\", "/").startswith("/") or os.path.isabs(target):
        raise UnsafeArchiveError(
            "{}: {} has a link {!r} pointing to the absolute path {!r}; refusing "
            "to extract it".format(function, archive, member_name, target)
        )
    parts = list(start_parts)
    for part in target.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeArchiveError(
                    "{}: {} has a link {!r} -> {!r} pointing outside the target "
                    "folder; refusing to extract it".format(function, archive, member_name, target)
                )
            parts.pop()
        else:
            parts.append(part)
            if "/".join(parts) in link_members:
                raise UnsafeArchiveError(
                    "{}: {} has a link {!r} -> {!r} that goes through another "
                    "link of the archive; refusing to extract it".format(
                        function, archive, member_name, target
                    )
                )


def _check_tar_members(function, archive, members):
    """Refuse the whole archive if any member is unsafe; nothing has been written yet."""
    link_members = set()
    for member in members:
        if member.issym() or member.islnk():
            link_members.add("/".join(_split_member_name(function, archive, member.name)))
    for member in members:
        parts = _split_member_name(function, archive, member.name)
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in link_members:
                raise UnsafeArchiveError(
                    "{}: {} has a member {!r} below the link {!r}; writing "
                    "through a link could leave the target folder; refusing to "
                    "extract it".format(function, archive, member.name, "/".join(parts[:depth]))
                )
        if member.issym():
            _walk_link_target(
                function, archive, member.name, parts[:-1], member.linkname, link_members
            )
        elif member.islnk():  # hard link: the target is named from the archive root
            _walk_link_target(function, archive, member.name, [], member.linkname, link_members)
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(
                "{}: {} has a member {!r} that is a device, FIFO or other special "
                "file; refusing to extract it".format(function, archive, member.name)
            )


def _check_zip_members(function, archive, infos):
    for info in infos:
        _split_member_name(function, archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                "{}: {} has a symbolic-link member {!r}; refusing to extract it".format(
                    function, archive, info.filename
                )
            )


def _archive_kinds(archive_format):
    """Keras's archive_format: 'auto' (tar then zip), 'tar', 'zip', a list of those, or None."""
    if archive_format is None:
        return ()
    if archive_format == "auto":
        return ("tar", "zip")
    kinds = (archive_format,) if isinstance(archive_format, str) else tuple(archive_format)
    for kind in kinds:
        if kind not in ("tar", "zip"):
            raise ValueError(
                "extract_archive: archive_format must be 'auto', 'tar', 'zip', a list of "
                "those or None, got {!r}".format(archive_format)
            )
    return kinds


def _archive_kind(file_path, archive_format):
    for kind in _archive_kinds(archive_format):
        if kind == "tar" and tarfile.is_tarfile(file_path):
            return "tar"
        if kind == "zip" and zipfile.is_zipfile(file_path):
            return "zip"
    return None


def _merge_conflicts(staging, path):
    """The places where moving ``staging``'s tree into ``path`` would have to remove something of
    the user's: a folder where the archive has a file or link, or a file or link (a link to a
    folder included: merging through it could write outside ``path``) where it has a folder."""
    conflicts = []
    for entry in sorted(os.listdir(staging)):
        source, destination = os.path.join(staging, entry), os.path.join(path, entry)
        if not os.path.lexists(destination):
            continue
        source_is_dir = os.path.isdir(source) and not os.path.islink(source)
        destination_is_dir = os.path.isdir(destination) and not os.path.islink(destination)
        if source_is_dir and destination_is_dir:
            conflicts.extend(_merge_conflicts(source, destination))
        elif source_is_dir or destination_is_dir:
            conflicts.append(destination)
    return conflicts


def _merge_into(staging, path):
    """Move ``staging``'s tree into ``path`` as Keras's extraction merges: folders that exist are
    entered, not replaced, so whatever else they hold stays; a file of the same name is replaced
    by the archive's (one ``os.replace``). _merge_conflicts must have found nothing."""
    for entry in sorted(os.listdir(staging)):
        source, destination = os.path.join(staging, entry), os.path.join(path, entry)
        if (
            os.path.isdir(destination)
            and not os.path.islink(destination)
            and not os.path.islink(source)
        ):
            _merge_into(source, destination)
        else:
            os.replace(source, destination)


def extract_archive(file_path, path=".", archive_format="auto"):
    """Extract a tar (plain, gz, bz2, xz) or zip archive into ``path``, safely and all-or-nothing.

    Returns True when an archive was extracted, False when ``file_path`` is not an archive of the
    requested format (Keras's ``_extract_archive`` contract). Every member is checked before any
    byte is written (:class:`UnsafeArchiveError` for absolute paths, ``..``, links leaving ``path``
    or special files); the archive is unpacked into a temporary folder inside ``path`` and moved
    into place only if that succeeded, so a truncated or corrupt archive raises
    :class:`DataFileError` and leaves ``path`` as it was. Moving into place merges: existing
    folders are entered and keep their other entries, same-named files are replaced; where one
    side has a file and the other a folder, DataFileError is raised before anything moves.
    """
    function = "extract_archive"
    kind = _archive_kind(file_path, archive_format)
    if kind is None:
        return False
    os.makedirs(path, exist_ok=True)
    staging = tempfile.mkdtemp(dir=path, prefix=".extract-")
    try:
        try:
            if kind == "tar":
                with tarfile.open(file_path, "r:*") as archive:
                    members = archive.getmembers()  # reads the whole stream: truncation shows here
                    _check_tar_members(function, file_path, members)
                    if hasattr(
                        tarfile, "data_filter"
                    ):  # Python >= 3.12 (and backports): a 2nd guard
                        archive.extractall(staging, members=members, filter="data")
                    else:
                        archive.extractall(staging, members=members)
            else:
                with zipfile.ZipFile(file_path) as archive:
                    infos = archive.infolist()
                    _check_zip_members(function, file_path, infos)
                    bad_member = archive.testzip()
                    if bad_member is not None:
                        raise DataFileError(
                            "{}: {} is corrupt: member {!r} fails its CRC check".format(
                                function, file_path, bad_member
                            )
                        )
                    archive.extractall(staging)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
            raise DataFileError(
                "{}: {} is truncated or corrupt ({}: {}); nothing was extracted".format(
                    function, file_path, type(exc).__name__, exc
                )
            ) from exc
        except OSError as exc:
            # gzip's BadGzipFile and "Compressed file ended" errors are OSError/EOFError subclasses
            if isinstance(exc, (PermissionError, FileNotFoundError)):
                raise
            raise DataFileError(
                "{}: {} is truncated or corrupt ({}: {}); nothing was extracted".format(
                    function, file_path, type(exc).__name__, exc
                )
            ) from exc
        conflicts = _merge_conflicts(staging, path)
        if conflicts:
            raise DataFileError(
                "{}: {} has a file where {} has a folder (or a link), or the other "
                "way round, at {}; nothing was extracted and nothing removed".format(
                    function, file_path, path, ", ".join(conflicts[:5])
                )
            )
        _merge_into(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


# --------------------------------------------------------------------------------------------------
# get_file


def _cache_root(cache_dir, cache_subdir):
    """``<cache_dir>/<cache_subdir>``, created; ``/tmp/.keras`` when the default is not writable."""
    default = cache_dir is None
    base = os.path.expanduser(os.path.join("~", ".keras") if default else cache_dir)
    datadir = os.path.join(base, cache_subdir) if cache_subdir else base
    try:
        os.makedirs(datadir, exist_ok=True)
        writable = os.access(datadir, os.W_OK)
    except OSError:
        writable = False
    if not writable:
        base = os.path.join(tempfile.gettempdir(), ".keras")  # Keras 2.0's fallback: /tmp/.keras
        datadir = os.path.join(base, cache_subdir) if cache_subdir else base
        os.makedirs(datadir, exist_ok=True)
    return datadir


def get_file(
    fname,
    origin,
    untar=False,
    md5_hash=None,
    file_hash=None,
    cache_subdir="datasets",
    hash_algorithm="auto",
    extract=False,
    archive_format="auto",
    cache_dir=None,
    progress=True,
    timeout=60,
):
    """Return the path of ``fname`` in the cache, downloading it from ``origin`` if needed.

    Arguments (as Keras 2.0.8; ``progress`` and ``timeout`` are additions):
        fname: file name in the cache folder. With ``untar=True`` it names the folder the archive
            unpacks to; the archive itself is kept as ``<fname>.tar.gz`` (Keras's layout).
        origin: the URL to download from.
        untar: unpack the downloaded ``.tar.gz`` (once) and return the folder. Deprecated in Keras in
            favour of ``extract``, kept for the dataset loaders.
        md5_hash: deprecated spelling of ``file_hash`` with md5.
        file_hash: expected md5 (32 hex digits) or sha256 (64) of the file. A cached file that does
            not match is downloaded again (Keras prints the same notice); a download that does not
            match raises :class:`ChecksumError` and is not kept.
        cache_subdir: sub-folder of ``cache_dir``; '' for ``cache_dir`` itself.
        hash_algorithm: 'md5', 'sha256' or 'auto' (sha256 for a 64-digit hash).
        extract: unpack a tar or zip archive next to the file; returns the file's path.
        archive_format: 'auto', 'tar', 'zip', a list of those, or None.
        cache_dir: root of the cache, default ``~/.keras`` (``/tmp/.keras`` if that is not writable).
        progress: print ``Downloading data from <url>`` and a byte progress line.
        timeout: seconds to wait for the server before giving up on a read.

    Raises :class:`DownloadError` (an ``OSError``) when the URL cannot be fetched,
    :class:`ChecksumError` for a corrupt download and :class:`DataFileError` /
    :class:`UnsafeArchiveError` for archives that cannot be or must not be unpacked. In each case no
    file or folder that looks complete is left behind.
    """
    if not isinstance(fname, (str, os.PathLike)) or not os.fspath(fname):
        raise TypeError("get_file: fname must be a non-empty file name, got {!r}".format(fname))
    if not isinstance(origin, str) or not origin:
        raise TypeError("get_file: origin must be a URL string, got {!r}".format(origin))
    fname = os.fspath(fname)
    if file_hash is None and md5_hash is not None:
        file_hash, hash_algorithm = md5_hash, "md5"
    if file_hash is not None:
        file_hash = _check_hash_string("get_file", file_hash)
        algorithm = _resolve_hash_algorithm(file_hash, hash_algorithm)
    else:
        algorithm = None

    datadir = _cache_root(cache_dir, cache_subdir)
    if untar:
        untar_fpath = os.path.join(datadir, fname)
        fpath = untar_fpath + ".tar.gz"
    else:
        fpath = os.path.join(datadir, fname)

    download = not os.path.exists(fpath)
    if not download and file_hash is not None and not validate_file(fpath, file_hash, algorithm):
        print(
            "A local file was found, but it seems to be incomplete or outdated because the {} file "
            "hash does not match the original value of {} so we will re-download the data.".format(
                algorithm, file_hash
            )
        )
        download = True

    if download:
        if progress:
            print("Downloading data from {}".format(origin))
        _download(origin, fpath, file_hash, algorithm or "sha256", progress, timeout)

    try:
        if untar:
            if not os.path.exists(untar_fpath):
                if progress:
                    print("Untaring file...")
                if not extract_archive(fpath, datadir, archive_format="tar"):
                    raise DataFileError("get_file: {} is not a tar archive".format(fpath))
                if not os.path.isdir(untar_fpath):
                    raise DataFileError(
                        "get_file: the archive {} unpacked, but it holds no top "
                        "folder named {!r}".format(fpath, fname)
                    )
            return untar_fpath
        if extract:
            extract_archive(fpath, datadir, archive_format)
        return fpath
    except DataFileError as exc:
        if download:  # useless and would fail again next time: do not keep what we just fetched
            _remove_quietly(fpath)
            raise
        raise type(exc)(
            "{} (the cached file {} was not downloaded now; delete it to download it again)".format(
                exc, fpath
            )
        ) from exc
