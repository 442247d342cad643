"""Atomic file output, shared by every writer of bnpy (weights and model files, downloads, the
experiments' checkpoints and results, plot_model's pictures).

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
import contextlib
import os
import re
import secrets
import stat
import time

__all__ = ["atomic_output", "remove_stale_temp_files", "STALE_TEMP_SECONDS", "TEMP_MARKER"]

# A temporary file untouched this long belongs to a writer that was killed: a live one (a download
# included) writes to it every few seconds at most.
STALE_TEMP_SECONDS = 3600.0

TEMP_MARKER = "bnpy-tmp-"


def _temp_name_pattern(prefix, suffix):
    return re.compile(re.escape(prefix) + re.escape(TEMP_MARKER) + r"[0-9]+-[0-9a-f]{8}"
                      + re.escape(suffix) + r"\Z")


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
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
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
    tmp_path, created_mode = _create_temp_file(folder, prefix, suffix,
                                               0o600 if existing_mode is not None else 0o666)
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
