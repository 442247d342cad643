"""Keep bnpy's OpenMP team and NumPy's BLAS threads from fighting over the cores during fit.

A training step alternates bnpy's C kernels (an OpenMP team of ``bnpy.get_num_threads()``
threads) with NumPy matmuls (OpenBLAS's or MKL's own thread pool). The two never compute at the
same time, but both keep their idle workers spinning for a while after each parallel region
(libgomp's ``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT``, OpenBLAS's busy-wait), so on a machine with as
many cores as threads each pool's spinners take the cores the other one needs next. Measured with
benchmarks/bench_oversubscription.py on the 2-core machine (see docs/reliability.md): an
epoch of the article's model took about 4x the CPU time with both pools at 2 threads as with the
BLAS pool at 1, and was correspondingly slower whenever the machine had other work.

:func:`fit_threads` caps the BLAS pool (through threadpoolctl, a dependency of bnpy; without it,
in a broken install, the pools keep their defaults) while bnpy's kernels run on more than one
thread, and restores it afterwards; overlapping calls in several threads share the cap.
``BNPY_FIT_BLAS_THREADS`` overrides the cap: a number of threads, or ``0`` to leave the BLAS pool
alone.

:class:`TurnLock` is the per-model lock that lets one model be used from several threads.
"""

import collections
import contextlib
import os
import threading

__all__ = ["fit_threads", "blas_cap", "TurnLock"]


def blas_cap():
    """The number of BLAS threads fit should use, or None to leave the pool as it is."""
    from . import get_num_threads

    setting = os.environ.get("BNPY_FIT_BLAS_THREADS", "").strip()
    if setting:
        try:
            value = int(setting)
        except ValueError:
            raise ValueError(
                "BNPY_FIT_BLAS_THREADS must be an int >= 0, got {!r}".format(setting)
            ) from None
        if value < 0:
            raise ValueError("BNPY_FIT_BLAS_THREADS must be an int >= 0, got {!r}".format(setting))
        return value or None
    return 1 if get_num_threads() > 1 else None


_controller = None  # threadpoolctl's view of the loaded thread pools, made once (~1 ms)


def _blas_controller():
    """A cached threadpoolctl.ThreadpoolController, or None without threadpoolctl."""
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # a dependency, but fit must not fail without it: pools keep defaults
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller or None


# Most BLAS pools are process-wide (OpenBLAS on its own threads, BLIS, FlexiBLAS), so overlapping
# compute calls share one cap: the first holder applies it and remembers the counts it found, the
# last one to leave puts them back (each holder restoring what it found itself would leave the pool
# capped whenever the calls do not end in the reverse order of their starts). Pools whose limit is
# per calling thread (MKL, OpenBLAS on OpenMP) are capped and restored by each holder in its own
# thread.
_cap_lock = threading.Lock()
_cap_holders = 0
_cap_saved = []  # [(library controller, count found by the first holder)] of the shared pools


def _per_thread(lib):
    return lib.internal_api == "mkl" or getattr(lib, "threading_layer", None) == "openmp"


def _set_shared(lib, threads):
    """Set a process-wide pool from whichever thread holds the cap. Recent threadpoolctl lets
    only one "controlling" Python thread change an OpenBLAS pool and silently ignores the others:
    bnpy serialises its own changes (_cap_lock), so it takes control for the call and gives it
    back."""
    clear = getattr(lib, "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)
    lib.set_num_threads(threads)
    if clear is not None:
        clear()


def _take_cap(libs, cap):
    global _cap_holders
    with _cap_lock:
        if _cap_holders == 0:
            _cap_saved[:] = [(lib, lib.get_num_threads()) for lib in libs if not _per_thread(lib)]
            for lib, _ in _cap_saved:
                _set_shared(lib, cap)
        _cap_holders += 1


def _release_cap():
    global _cap_holders
    with _cap_lock:
        _cap_holders -= 1
        if _cap_holders == 0:
            for lib, threads in _cap_saved:
                _set_shared(lib, threads)
            _cap_saved.clear()


@contextlib.contextmanager
def fit_threads():
    """Within the block, BLAS runs on :func:`blas_cap` threads (when threadpoolctl is installed
    and a cap applies); the counts found by the first of the overlapping blocks (in any threads)
    come back when the last one exits, exceptions included, and the first block's cap holds until
    then. Yields the number of BLAS threads, or None when the pools are left alone. Cheap (~10 us
    with the cached controller), so it wraps single-batch methods too."""
    cap = blas_cap()
    controller = _blas_controller() if cap is not None else None
    if controller is None:
        yield None
        return
    libs = [lib for lib in controller.lib_controllers if lib.user_api == "blas"]
    own = [(lib, lib.get_num_threads()) for lib in libs if _per_thread(lib)]
    _take_cap(libs, cap)
    try:
        for lib, _ in own:
            lib.set_num_threads(cap)
        yield cap
    finally:
        for lib, threads in own:
            lib.set_num_threads(threads)
        _release_cap()


class TurnLock:
    """A re-entrant lock that threads get in the order they asked for it.

    A model's lock: ``fit`` takes it for each training step and gives it back between steps, so
    a ``predict`` from another thread runs between two steps. With Python's own RLock the training
    thread, which asks again a few microseconds after it lets go, would nearly always win, and the
    other thread would wait for the whole ``fit``; here it gets its turn at the next step. The
    thread holding the lock may take it again (a callback or a generator calling ``predict`` from
    inside a compute call of the same model).
    """

    def __init__(self):
        self._condition = threading.Condition(threading.Lock())
        self._owner = None  # threading.get_ident() of the holder
        self._depth = 0
        self._queue = collections.deque()  # tickets of the waiting threads, first come first

    @property
    def waiting(self):
        """How many threads are waiting for the lock."""
        return len(self._queue)

    def __enter__(self):
        me = threading.get_ident()
        with self._condition:
            if self._owner == me:
                self._depth += 1
                return self
            ticket = object()
            self._queue.append(ticket)
            try:
                while self._owner is not None or self._queue[0] is not ticket:
                    self._condition.wait()
            except BaseException:  # e.g. KeyboardInterrupt while waiting: leave the queue
                self._queue.remove(ticket)
                self._condition.notify_all()
                raise
            self._queue.popleft()
            self._owner, self._depth = me, 1
        return self

    def __exit__(self, exc_type, exc, tb):
        with self._condition:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._condition.notify_all()
        return False
