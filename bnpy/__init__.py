"""bnpy: Batch Normalization for NumPy with a C core, and a small Keras-2.0-like framework.

The C kernels live in the extension module ``bnpy._core``; use them through :mod:`bnpy.ops`.
The framework mirrors Keras 2.0's modules (``bnpy.models``, ``bnpy.layers``, ``bnpy.optimizers``,
...), so a Keras 2.0 script runs with ``keras`` replaced by ``bnpy``.
"""

import os

__version__ = "0.1.0"

# How long libgomp's idle workers spin before they sleep (GOMP_SPINCOUNT, in spins of roughly
# 10 ns). libgomp's default, 300,000 (~3 ms), makes a team wait for a teammate whose core another
# process took: spinning, at the pace of the descheduled thread. A short spin keeps quiet-machine
# speed and gives the core back under contention (benchmarks/bench_contention.py, figures in
# docs/reliability.md). libgomp reads the variable once, when bnpy._core loads it, so it is set
# for that moment only, and only when the user set neither it nor OMP_WAIT_POLICY; a libgomp that
# another module loaded earlier keeps its own settings.
_SPINCOUNT = "3000"
_OMP_POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_set_spincount = not any(name in os.environ for name in _OMP_POLICY_VARIABLES)
if _set_spincount:
    os.environ["GOMP_SPINCOUNT"] = _SPINCOUNT
try:
    from . import _core
except ImportError as exc:  # no silent pure-Python fallback: the kernels are the point
    raise ImportError(
        "bnpy's C extension bnpy._core is not built ({}). Install the package with "
        "`pip install .` from the source tree (a C compiler and the Python headers are needed), "
        "or build it in place with `python setup.py build_ext --inplace`.".format(exc)
    ) from exc
finally:
    if _set_spincount:  # child processes and OpenMP runtimes loaded later keep their defaults
        del os.environ["GOMP_SPINCOUNT"]


def set_num_threads(n):
    """Use ``n`` threads (1 to 4096) in bnpy's C kernels (OpenMP); returns the previous count.

    The initial count follows ``OMP_NUM_THREADS`` (or the number of cores). The kernels use at
    most one thread per processor this process may run on: more only lose time, and a thread
    team that libgomp cannot create would end the process. A build without OpenMP always runs on
    one thread. Results do not depend on the count beyond rounding.
    """
    return _core.set_num_threads(n)


def get_num_threads():
    """The thread count set by :func:`set_num_threads` (kernels use at most one per processor)."""
    return _core.get_num_threads()


# Keras 2 scripts reach modules through the package (`import keras` then keras.optimizers.Adam()).
# They are imported on first access (PEP 562): `import bnpy` stays as fast as the C core's load,
# and no submodule is imported while bnpy itself is half initialised (no import cycle).
_SUBMODULES = (
    "activations",
    "backend",
    "callbacks",
    "constraints",
    "datasets",
    "engine",
    "initializers",
    "layers",
    "legacy",
    "losses",
    "metrics",
    "models",
    "ops",
    "optimizers",
    "preprocessing",
    "regularizers",
    "saving",
    "utils",
)


def __getattr__(name):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module("." + name, __name__)
    raise AttributeError("module 'bnpy' has no attribute {!r}".format(name))


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))


__all__ = ["set_num_threads", "get_num_threads", "__version__"]
