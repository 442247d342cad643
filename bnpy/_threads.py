"""Keep bnpy's OpenMP team and NumPy's BLAS threads from fighting over the cores during fit.

A training step alternates bnpy's C kernels (an OpenMP team of ``bnpy.get_num_threads()``
threads) with NumPy matmuls (OpenBLAS's or MKL's own thread pool). The two never compute at the
same time, but both keep their idle workers spinning for a while after each parallel region
(libgomp's ``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT``, OpenBLAS's busy-wait), so on a machine with as
many cores as threads each pool's spinners take the cores the other one needs next. Measured with
benchmarks/bench_oversubscription.py on the 2-core machine (see docs/reliability.md): an
epoch of the article's model took about 4x the CPU time with both pools at 2 threads as with the
BLAS pool at 1, and was correspondingly slower whenever the machine had other work.

:func:`fit_threads` caps the BLAS pool (through threadpoolctl, when it is installed: NumPy is
bnpy's only required dependency) while bnpy's kernels run on more than one thread, and restores
it afterwards. ``BNPY_FIT_BLAS_THREADS`` overrides the cap: a number of threads, or ``0`` to leave
the BLAS pool alone.
"""
import contextlib
import os

__all__ = ["fit_threads", "blas_cap"]


def blas_cap():
    """The number of BLAS threads fit should use, or None to leave the pool as it is."""
    from . import get_num_threads

    setting = os.environ.get("BNPY_FIT_BLAS_THREADS", "").strip()
    if setting:
        try:
            value = int(setting)
        except ValueError:
            raise ValueError("BNPY_FIT_BLAS_THREADS must be an int >= 0, got {!r}".format(setting)) from None
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
        except ImportError:  # optional: without it, the pools keep their defaults
            _controller = False
        else:
            _controller = ThreadpoolController()
    return _controller or None


@contextlib.contextmanager
def fit_threads():
    """Within the block, BLAS runs on :func:`blas_cap` threads (when threadpoolctl is installed
    and a cap applies); the previous limits come back on exit, exceptions included. Cheap
    (~10 us with the cached controller), so it wraps single-batch methods too."""
    cap = blas_cap()
    controller = _blas_controller() if cap is not None else None
    if controller is None:
        yield None
        return
    with controller.limit(limits=cap, user_api="blas") as limiter:
        yield limiter
