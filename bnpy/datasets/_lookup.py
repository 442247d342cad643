"""Where the dataset loaders look for their files, in order, and what they say when nothing is found.

Lookup order (the first place that holds a usable copy wins):

1. an explicit ``path=`` argument (a file, a dataset folder, or a folder that holds one); when it is
   given, nothing else is searched;
2. ``$BNPY_DATA`` (one folder, or several separated by ``os.pathsep``), laid out like Keras's cache:
   ``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``, ``cifar-100-python/``, ``mnist.npz``,
   ``fashion-mnist/`` ...;
3. Keras's own cache ``~/.keras/datasets`` (anyone who ever ran Keras has the files there);
4. system dataset folders, :data:`SYSTEM_DATA_DIRS` (Debian's ``dataset-fashion-mnist`` package
   installs ``/usr/share/datasets/fashion-mnist/*.gz``);
5. a download from the canonical URL through :func:`bnpy.utils.data_utils.get_file` (checksum
   verified, atomic), into the first ``$BNPY_DATA`` folder when set, else into ``~/.keras/datasets``.
   Setting ``BNPY_OFFLINE=1`` skips this step.

When all of that fails the error names the file, the folders searched, where to put the file and the
URL (with size and checksum) to get it from.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..utils import data_utils

ENV_DATA = "BNPY_DATA"
ENV_OFFLINE = "BNPY_OFFLINE"

#: System-wide dataset folders searched after the user's own; a list so tests and packagers can
#: change it (``bnpy.datasets._lookup.SYSTEM_DATA_DIRS[:] = [...]``).
SYSTEM_DATA_DIRS = ["/usr/share/datasets", "/usr/local/share/datasets"]


def keras_cache_dir():
    """Keras's dataset cache, ``~/.keras/datasets`` (``~`` from ``$HOME``)."""
    return os.path.join(os.path.expanduser("~"), ".keras", "datasets")


def search_roots():
    """The folders searched after ``path=``, in order, as ``(label, folder)`` pairs."""
    roots = []
    for entry in os.environ.get(ENV_DATA, "").split(os.pathsep):
        if entry:
            roots.append(("$" + ENV_DATA, os.path.expanduser(entry)))
    roots.append(("Keras's cache", keras_cache_dir()))
    for folder in SYSTEM_DATA_DIRS:
        roots.append(("system datasets folder", folder))
    return roots


def download_root():
    """Where a download is saved: the first ``$BNPY_DATA`` folder when set, else Keras's cache."""
    for entry in os.environ.get(ENV_DATA, "").split(os.pathsep):
        if entry:
            return os.path.expanduser(entry)
    return keras_cache_dir()


def is_offline():
    """True when ``$BNPY_OFFLINE`` is set to anything but '' or '0'."""
    return os.environ.get(ENV_OFFLINE, "") not in ("", "0")


def image_data_format():
    """``bnpy.backend.image_data_format()`` where the framework provides it, else 'channels_last'."""
    try:
        from .. import backend  # written by the framework; optional for the loaders

        return backend.image_data_format()
    except (ImportError, AttributeError):
        return "channels_last"


@dataclass(frozen=True)
class Download:
    """One official file: its name in Keras's cache, its URLs (tried in order) and its checksum."""

    fname: str
    origins: tuple[str, ...]
    file_hash: str
    size: Optional[int] = None
    untar: bool = False
    md5: Optional[str] = None  # shown in the not-found message when file_hash is a sha256


@dataclass
class DatasetSource:
    """How to find one dataset.

    ``candidates`` are names looked for inside each search folder, best first; ``check(path)``
    returns None when the path is a usable copy, else a short reason why not (shown in the error).
    ``downloads`` are fetched into ``download_root()/download_subdir`` and the loadable path is
    ``from_downloads(list of paths get_file returned)``.
    """

    function: str
    title: str
    candidates: tuple[str, ...]
    check: Callable[[str], Optional[str]]
    downloads: Sequence[Download]
    download_subdir: str = ""
    from_downloads: Callable[[list], str] = field(default=lambda paths: paths[0])
    hint: str = ""


def _describe_size(size):
    return "{:,} bytes, ".format(size) if size else ""


def _not_found_message(source, searched, reason):
    lines = [
        "{}: {} was not found{}.".format(
            source.function, source.title, " and could not be downloaded" if reason else ""
        )
    ]
    if reason:
        lines.append("  Download: {}".format(reason))
    lines.append("  Looked for {} in:".format(" or ".join(source.candidates)))
    if not any(label == "$" + ENV_DATA for label, _, _ in searched):
        lines.append("    ${} (not set)".format(ENV_DATA))
    for label, folder, note in searched:
        lines.append("    {} ({}){}".format(folder, label, ": " + note if note else ""))
    lines.append(
        "  Put {} into one of these folders (for example {}), set ${} to the folder that "
        "holds it, or pass path=.".format(
            " or ".join(source.candidates),
            os.path.join(keras_cache_dir(), source.candidates[0]),
            ENV_DATA,
        )
    )
    for download in source.downloads:
        digests = [
            "{} {}".format("sha256" if len(download.file_hash) == 64 else "md5", download.file_hash)
        ]
        if download.md5 and download.md5 != download.file_hash:
            digests.append("md5 " + download.md5)
        lines.append(
            "  Get {} from {} ({}{}).".format(
                download.origins[0].rstrip("/").rsplit("/", 1)[-1],
                download.origins[0],
                _describe_size(download.size),
                ", ".join(digests),
            )
        )
    if source.hint:
        lines.append("  " + source.hint)
    return "\n".join(lines)


def check_path_argument(function, path):
    """``path`` as a str, or a TypeError naming the function when it is not a path at all."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            "{}: path must be a file or folder name (str or os.PathLike), got {}".format(
                function, type(path).__name__
            )
        )
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError("{}: path must be a str path, got {}".format(function, type(path).__name__))
    return path


def _check_explicit(source, path):
    """``path=`` may be the dataset itself or a folder holding one of the candidates."""
    path = os.path.expanduser(check_path_argument(source.function, path))
    if not os.path.exists(path):
        raise FileNotFoundError(
            "{}: path={!r} does not exist (expected {} or a folder holding it)".format(
                source.function, path, " or ".join(source.candidates)
            )
        )
    problem = source.check(path)
    if problem is None:
        return path
    if not os.path.isdir(path):  # the file named is there but is not what it should be
        raise data_utils.DataFileError(
            "{}: path={!r} {}; expected {}".format(
                source.function, path, problem, " or ".join(source.candidates)
            )
        )
    usable, problems = _first_usable(source, path)
    if usable is not None:
        return usable
    notes = ["{}: {}".format(path, problem)] + [
        "{}: {}".format(os.path.join(path, name), why) for name, why in problems
    ]
    raise FileNotFoundError(
        "{}: path={!r} holds no usable {} ({}); expected {}".format(
            source.function, path, source.title, "; ".join(notes), " or ".join(source.candidates)
        )
    )


def _first_usable(source, folder):
    """(the first of source's candidate names in folder that passes its check, or None; and the
    (name, problem) of each candidate found there before it that did not)."""
    problems = []
    for name in source.candidates:
        candidate = os.path.join(folder, name)
        if os.path.exists(candidate):
            problem = source.check(candidate)
            if problem is None:
                return candidate, problems
            problems.append((name, problem))
    return None, problems


def locate(source, path=None, progress=True):
    """The path of a usable copy of ``source``: searched in order, downloaded as the last resort."""
    if path is not None:
        return _check_explicit(source, path)
    searched = []
    for label, folder in search_roots():
        usable, problems = _first_usable(source, folder)
        if usable is not None:
            return usable
        searched.append(
            (label, folder, "; ".join("{} {}".format(name, why) for name, why in problems))
        )
    if is_offline():
        raise FileNotFoundError(
            _not_found_message(source, searched, "skipped because ${} is set".format(ENV_OFFLINE))
        )

    fetched, failures, corrupt = [], [], False
    for download in source.downloads:
        for origin in download.origins:
            try:
                fetched.append(
                    data_utils.get_file(
                        download.fname,
                        origin,
                        untar=download.untar,
                        file_hash=download.file_hash,
                        cache_dir=download_root(),
                        cache_subdir=source.download_subdir,
                        progress=progress,
                    )
                )
                break
            except data_utils.DownloadError as exc:
                failures.append(str(exc))
            except (
                data_utils.ChecksumError
            ) as exc:  # a mirror serving other bytes: try the next one
                failures.append(str(exc))
                corrupt = True
        else:
            message = _not_found_message(source, searched, "; ".join(failures))
            raise (data_utils.ChecksumError if corrupt else FileNotFoundError)(message)
    found = source.from_downloads(fetched)
    problem = source.check(found)
    if problem is not None:
        raise data_utils.DataFileError(
            "{}: the downloaded {} at {} is not usable: {}".format(
                source.function, source.title, found, problem
            )
        )
    return found
