"""Atomic file output, shared by every writer of bnpy (weights and model files, downloads, the
experiments' checkpoints and results, plot_model's pictures).

``with atomic_output(path, prefix) as tmp:`` gives a fresh hidden temporary file beside ``path``
(same folder, so the final rename never crosses file systems); the caller writes it (and fsyncs
what must survive a crash). When the block ends normally the file is renamed onto ``path`` in one
step, so readers see the old file or the new one, never half of one; when it raises (Ctrl-C
included) the temporary file is removed and ``path`` is untouched.

A process killed outright (SIGKILL, power loss) cannot remove its temporary file. The next
``atomic_output`` with the same prefix in that folder removes such leftovers once nobody has
written them for STALE_TEMP_SECONDS; a younger one may belong to another process's live write.
"""
import contextlib
import os
import tempfile
import time

__all__ = ["atomic_output", "remove_stale_temp_files", "STALE_TEMP_SECONDS"]

# A temporary file untouched this long belongs to a writer that was killed: a live one (a download
# included) writes to it every few seconds at most.
STALE_TEMP_SECONDS = 3600.0


def remove_stale_temp_files(folder, prefix, suffix):
    """Remove the files ``<prefix>*<suffix>`` in ``folder`` that have not been written for
    STALE_TEMP_SECONDS (each may be large: a CIFAR-10 download is 163 MB)."""
    now = time.time()
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        path = os.path.join(folder, name)
        try:
            if now - os.lstat(path).st_mtime > STALE_TEMP_SECONDS:
                os.remove(path)
        except OSError:  # gone already, or not ours to remove
            pass


@contextlib.contextmanager
def atomic_output(path, prefix, suffix=".tmp"):
    """Yield the path of a new temporary file ``<prefix>XXXXXXXX<suffix>`` beside ``path``; rename
    it onto ``path`` when the block ends normally, remove it when the block raises."""
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temp_files(folder, prefix, suffix)
    fd, tmp_path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        raise
