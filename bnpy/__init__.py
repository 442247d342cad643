"""bnpy: Batch Normalization for NumPy with a C core, and a small Keras-2.0-like framework.

The C kernels live in the extension module ``bnpy._core``; use them through :mod:`bnpy.ops`.
The framework mirrors Keras 2.0's modules (``bnpy.models``, ``bnpy.layers``, ``bnpy.optimizers``,
...), so a Keras 2.0 script runs with ``keras`` replaced by ``bnpy``.
"""
__version__ = "0.1.0"

try:
    from . import _core
except ImportError as exc:  # no silent pure-Python fallback: the kernels are the point
    raise ImportError(
        "bnpy's C extension bnpy._core is not built ({}). Install the package with "
        "`pip install .` from the source tree (a C compiler and the Python headers are needed), "
        "or build it in place with `python setup.py build_ext --inplace`.".format(exc)
    ) from exc


def set_num_threads(n):
    """Use ``n >= 1`` threads in bnpy's C kernels (OpenMP); returns the previous count.

    The initial count follows ``OMP_NUM_THREADS`` (or the number of cores). A build without
    OpenMP always runs on one thread. Results do not depend on the count beyond rounding.
    """
    return _core.set_num_threads(n)


def get_num_threads():
    """The number of threads bnpy's C kernels use."""
    return _core.get_num_threads()


__all__ = ["set_num_threads", "get_num_threads", "__version__"]
