"""Build of the C extension bnpy._core from csrc/*.c.

OpenMP is used when the compiler accepts -fopenmp (checked by compiling a probe); otherwise
the kernels build serially. Environment switches:
  BNPY_NO_OPENMP=1   force the serial build
  BNPY_SANITIZE=1    build with -fsanitize=address,undefined (CI's sanitizer run)
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy
from setuptools import Extension, setup


def _compiler_accepts(flags):
    """True if the C compiler compiles and links an OpenMP probe with `flags`."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        cmd = cc.split() + [path, "-o", os.path.join(tmp, "probe")] + flags
        return subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0
    except OSError:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


compile_args = ["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-math-errno"]
link_args = []
macros = []

if (
    sys.platform != "win32"
    and not os.environ.get("BNPY_NO_OPENMP")
    and _compiler_accepts(["-fopenmp"])
):
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
    macros.append(("BNPY_OPENMP", "1"))

if os.environ.get("BNPY_SANITIZE"):
    san = [
        "-fsanitize=address,undefined",
        "-fno-omit-frame-pointer",
        "-fno-sanitize-recover=undefined",
        "-g",
    ]
    compile_args = [a for a in compile_args if a != "-O3"] + ["-O1"] + san
    link_args += san

core = Extension(
    "bnpy._core",
    sources=sorted(glob.glob("csrc/*.c")),
    depends=sorted(glob.glob("csrc/*.h")),
    include_dirs=["csrc", numpy.get_include()],
    define_macros=macros,
    extra_compile_args=compile_args,
    extra_link_args=link_args,
)

setup(ext_modules=[core])
