"""Keep the large arrays of a training step's memory between batches.

Every batch of ``fit`` allocates and frees the same large arrays (layer outputs, gradients,
matmul results). The C library gives such blocks back to the system when they are freed, so the
next batch faults every page in again and the kernel zeroes it: on the article's model (batch 32,
2 threads) ~1,440 page faults and 7-11 ms of system time a batch, none with the blocks kept
(see csrc/py_memory.c).

:func:`array_cache` installs bnpy's caching allocator for NumPy array data (NumPy's
``PyDataMem_SetHandler``, per context) around the framework's compute methods: arrays of 1 MiB
and more made inside them and freed while one of them runs are kept, up to 512 MiB (at most 1/8
of the machine's memory), and reused for the next array of the same size, in this call or the
next one (a loop of ``train_on_batch`` gains as ``fit`` does). A block that a whole call leaves
untouched is released when that call returns, so between calls the cache holds at most what the
last call freed; :func:`release` empties it. ``BNPY_ARRAY_CACHE=0`` turns it off.
"""

import contextlib
import os

from . import _core

__all__ = ["array_cache", "release"]


def _enabled():
    setting = os.environ.get("BNPY_ARRAY_CACHE", "").strip()
    if setting not in ("", "0", "1"):
        raise ValueError("BNPY_ARRAY_CACHE must be 0 or 1, got {!r}".format(setting))
    return setting != "0"


@contextlib.contextmanager
def array_cache():
    """Within the block, NumPy arrays of 1 MiB and more reuse the memory of freed ones."""
    if not _enabled():
        yield
        return
    previous = _core._array_cache_enter()
    try:
        yield
    finally:
        _core._array_cache_exit(previous)


def release():
    """Free the blocks the cache holds between calls; returns how many. Does nothing while a
    compute method is running (in any thread)."""
    return _core._array_cache_release()
