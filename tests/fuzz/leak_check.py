#!/usr/bin/env python3
"""Every C entry point of bnpy._core, called with good arguments and with bad ones that leave
through each kind of error exit (argument parsing, after an input was converted -- copied --,
after the output was allocated), for leak hunting.

Used two ways:
- tests/test_refcounts_all.py: 10,000 rounds, then sys.getrefcount of every argument and the
  traced / resident memory must be flat;
- .ci/hardening.sh runs this file under valgrind memcheck (BNPY_LEAK_ITERATIONS rounds, few: the
  interpreter runs ~50x slower there) and tests/fuzz/valgrind_report.py fails on any definite leak or
  memory error with a frame in _core*.so.

Every call that must fail is checked to fail with its exception type (a bad call that succeeded
would test nothing). The calls of the batch-norm entry points are in leak_points_bn.py, those of the
image kernels in leak_points_image.py.
"""

import os
import sys

import numpy as np

from bnpy import _core

if __package__:  # imported as fuzz.leak_check (tests/test_refcounts_all.py)
    from .leak_points_bn import bn_points, bn_sync_points
    from .leak_points_image import image_points
else:  # run as a script (.ci/hardening.sh, under valgrind): this folder is sys.path[0]
    from leak_points_bn import bn_points, bn_sync_points
    from leak_points_image import image_points


_rng = np.random.default_rng(2026)

#: The arguments, kept alive here so their reference counts can be compared before and after.
ARGS = {
    "x32": _rng.standard_normal((2, 6, 5, 3)).astype(np.float32),  # (N, H, W, C)
    "x64": _rng.standard_normal((2, 6, 5, 3)),
    "x32_strided": _rng.standard_normal((4, 12, 5, 3)).astype(np.float32)[
        ::2, ::2
    ],  # copied at the boundary
    "x64_swapped": _rng.standard_normal((2, 6, 5, 3)).astype(">f8"),  # converted at the boundary
    "kernel32": _rng.standard_normal((3, 3, 3, 8)).astype(np.float32),
    "bias8": _rng.standard_normal(8).astype(np.float32),
    "bias3_64": _rng.standard_normal(3),
    "rows64": _rng.standard_normal((7, 3)),
    "rows32": _rng.standard_normal((7, 3)).astype(np.float32),
    "cube64": _rng.standard_normal((2, 4, 3)),
    "gamma64": _rng.standard_normal(3),
    "var64": np.abs(_rng.standard_normal(3)),
    "moving_mean": np.zeros(3),
    "moving_var": np.ones(3),
    "readonly64": np.ones((2, 6, 5, 3)),
    "ints": np.ones((2, 6, 5, 3), np.int64),
    "matrices": np.tile(np.eye(3), (2, 1, 1)),
    "shape_nhwc": (2, 6, 5, 3),
    "none": None,
}
ARGS["readonly64"].flags.writeable = False
ARGS["stats_1x3"] = np.abs(_rng.standard_normal((1, 3)))  # a ghost batch's (groups, C) statistics
ARGS["out_nhwc64"] = np.empty_like(ARGS["x64"])
_y, ARGS["argmax"] = _core.pool2d(ARGS["x64"], True, 2, 2, 2, 2, 0, 0, 0, 0, False)
ARGS["dy_pool64"] = np.ones_like(_y)
ARGS["argmax_bad"] = ARGS["argmax"].copy()
ARGS["argmax_bad"].flat[-1] = 10**6
ARGS["dcol64"] = _core.im2col(ARGS["x64"], 3, 3, 1, 1, 1, 1, 1, 1, False)
ARGS["xpad32"] = np.pad(ARGS["x32"], ((0, 0), (1, 1), (1, 1), (0, 0)))
ARGS["dy_direct32"] = np.ones((2, 6, 5, 8), np.float32)
# the FFT convolution of x32 (N=2, Cin=3) with kernel32 (3x3, Cout=8), 'same', FFT size 8x6
ARGS["planes32"] = np.ascontiguousarray(ARGS["x32"].transpose(1, 2, 0, 3)).reshape(1, 6, 5, 6)
ARGS["kernel_planes32"] = np.ascontiguousarray(ARGS["kernel32"].transpose(2, 0, 1, 3))
ARGS["kernel_t_planes32"] = np.ascontiguousarray(ARGS["kernel32"].transpose(3, 0, 1, 2))
ARGS["xspec"] = _core.fft_spectrum(ARGS["planes32"], 8, 6, 0, 0)
ARGS["kspec"] = _core.fft_spectrum(ARGS["kernel_planes32"], 8, 6, -1, -1)
ARGS["ktspec"] = _core.fft_spectrum(ARGS["kernel_t_planes32"], 8, 6, -1, -1)
ARGS["counts7"] = np.arange(7.0)
ARGS["counts_negative"] = -ARGS["counts7"]


# name -> (good calls, bad calls as (exception type, thunk))
def entry_points():
    a = ARGS
    points = {
        "get_num_threads": ([lambda: _core.get_num_threads()], []),
        "set_num_threads": (
            [lambda: _core.set_num_threads(_core.get_num_threads())],
            [
                (ValueError, lambda: _core.set_num_threads(0)),
                (TypeError, lambda: _core.set_num_threads(a["x64"])),
                (ValueError, lambda: _core.set_num_threads(2**70)),
            ],
        ),
        "conv_direct_available": ([lambda: _core.conv_direct_available()], []),
    }
    points.update(bn_points(a))
    points.update(image_points(a))
    points.update(bn_sync_points(a))
    return points


def run_round(points):
    """One good and one bad call of everything; a bad call that does not fail raises."""
    for name, (good, bad) in points.items():
        for call in good:
            call()
        for exc_type, call in bad:
            try:
                call()
            except exc_type:
                pass
            else:
                raise AssertionError("{}: a bad call succeeded".format(name))


def main():
    iterations = int(os.environ.get("BNPY_LEAK_ITERATIONS", "50"))
    points = entry_points()
    missing = sorted(
        n
        for n in dir(_core)
        if callable(getattr(_core, n)) and not n.startswith("_") and n not in points
    )
    if missing:
        print("leak_check: entry points not exercised: {}".format(missing))
        return 1
    for _ in range(iterations):
        run_round(points)
    print("leak_check: {} rounds over {} entry points".format(iterations, len(points)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
