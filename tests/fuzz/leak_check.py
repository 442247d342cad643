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
would test nothing).
"""

import os
import sys

import numpy as np

from bnpy import _core

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
_y, ARGS["argmax"] = _core.max_pool2d(ARGS["x64"], 2, 2, 2, 2, 0, 0, 0, 0, False)
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


def _a(name):
    return ARGS[name]


def _geometry(k=3, s=1, p=1):
    return (k, k, s, s, p, p, p, p)


# name -> (good calls, bad calls as (exception type, thunk))
def entry_points():
    a = ARGS
    g = _geometry()
    pool = (2, 2, 2, 2, 0, 0, 0, 0)
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
        "batch_norm_forward": (
            [
                lambda: _core.batch_norm_forward(a["x64"], a["gamma64"], None, -1, 1e-3, None),
                lambda: _core.batch_norm_forward(
                    a["x64_swapped"], None, a["gamma64"], 3, 0.0, a["out_nhwc64"]
                ),
            ],
            [
                (
                    TypeError,
                    lambda: _core.batch_norm_forward(a["x64"], a["rows32"], None, -1, 1e-3, None),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_forward(
                        a["x64_swapped"], a["gamma64"], None, -1, 1e-3, a["readonly64"]
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_forward(a["x64"], None, None, -1, -1.0, None),
                ),
            ],
        ),
        "batch_norm_inference": (
            [
                lambda: _core.batch_norm_inference(
                    a["x64"],
                    a["gamma64"],
                    a["gamma64"],
                    a["gamma64"],
                    a["var64"],
                    -1,
                    1e-3,
                    a["out_nhwc64"],
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_inference(
                        a["x64"], None, None, a["gamma64"], a["var64"], -1, 1e-3, a["x64_swapped"]
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.batch_norm_inference(
                        a["x64"], None, None, a["gamma64"], None, -1, 1e-3, None
                    ),
                ),
            ],
        ),
        "batch_norm_backward": (
            [
                lambda: _core.batch_norm_backward(
                    a["x64"],
                    a["x64_swapped"],
                    a["gamma64"],
                    a["gamma64"],
                    a["var64"],
                    -1,
                    1e-3,
                    None,
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_backward(
                        a["x64"], a["x64"], None, a["gamma64"], a["var64"], -1, 1e-3, a["gamma64"]
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.batch_norm_backward(
                        a["x64"], a["x32"], None, a["gamma64"], a["var64"], -1, 1e-3, None
                    ),
                ),
            ],
        ),
        "batch_norm_inference_backward": (
            [
                lambda: _core.batch_norm_inference_backward(
                    a["x64"], a["x64"], None, a["gamma64"], a["var64"], -1, 1e-3, a["out_nhwc64"]
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_inference_backward(
                        a["x64"], a["x64"], None, a["gamma64"], a["var64"], 7, 1e-3, None
                    ),
                )
            ],
        ),
        "batch_renorm_forward": (
            [
                lambda: _core.batch_renorm_forward(
                    a["x64"],
                    a["gamma64"],
                    None,
                    a["gamma64"],
                    a["var64"],
                    -1,
                    1e-3,
                    0.5,
                    2.0,
                    1.0,
                    None,
                ),
                lambda: _core.batch_renorm_forward(
                    a["x64_swapped"],
                    None,
                    a["gamma64"],
                    a["moving_mean"],
                    a["var64"],
                    3,
                    0.0,
                    0.0,
                    float("inf"),
                    float("inf"),
                    a["out_nhwc64"],
                ),
            ],
            [
                (
                    TypeError,
                    lambda: _core.batch_renorm_forward(
                        a["x64"], None, None, a["rows32"], a["var64"], -1, 1e-3, 0.0, 1.0, 0.0, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_renorm_forward(
                        a["x64_swapped"],
                        None,
                        None,
                        a["gamma64"],
                        a["var64"],
                        -1,
                        1e-3,
                        2.0,
                        1.0,
                        0.0,
                        None,
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_renorm_forward(
                        a["x64"],
                        None,
                        None,
                        a["gamma64"],
                        a["var64"],
                        -1,
                        1e-3,
                        0.0,
                        1.0,
                        0.0,
                        a["readonly64"],
                    ),
                ),
            ],
        ),
        "batch_renorm_backward": (
            [
                lambda: _core.batch_renorm_backward(
                    a["x64"],
                    a["x64_swapped"],
                    a["gamma64"],
                    a["gamma64"],
                    a["var64"],
                    a["var64"],
                    a["gamma64"],
                    -1,
                    1e-3,
                    None,
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_renorm_backward(
                        a["x64"],
                        a["x64"],
                        None,
                        a["gamma64"],
                        a["var64"],
                        a["var64"],
                        a["gamma64"],
                        -1,
                        1e-3,
                        a["gamma64"],
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.batch_renorm_backward(
                        a["x64"],
                        a["x64"],
                        None,
                        a["gamma64"],
                        a["var64"],
                        None,
                        a["gamma64"],
                        -1,
                        1e-3,
                        None,
                    ),
                ),
            ],
        ),
        "ghost_batch_norm_forward": (
            [
                lambda: _core.ghost_batch_norm_forward(
                    a["x64"], a["gamma64"], None, 1, -1, 1e-3, None
                ),
                lambda: _core.ghost_batch_norm_forward(
                    a["x64_swapped"], None, a["gamma64"], 2, 3, 0.0, a["out_nhwc64"]
                ),
            ],
            [
                (
                    ValueError,
                    lambda: _core.ghost_batch_norm_forward(a["x64"], None, None, 3, -1, 1e-3, None),
                ),
                (
                    TypeError,
                    lambda: _core.ghost_batch_norm_forward(
                        a["x64_swapped"], a["rows32"], None, 2, -1, 1e-3, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.ghost_batch_norm_forward(
                        a["x64"], None, None, 2, -1, 1e-3, a["readonly64"]
                    ),
                ),
            ],
        ),
        "ghost_batch_norm_backward": (
            [
                lambda: _core.ghost_batch_norm_backward(
                    a["x64"],
                    a["x64_swapped"],
                    a["gamma64"],
                    a["stats_1x3"],
                    a["stats_1x3"],
                    2,
                    -1,
                    1e-3,
                    None,
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.ghost_batch_norm_backward(
                        a["x64"], a["x64"], None, a["gamma64"], a["stats_1x3"], 2, -1, 1e-3, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.ghost_batch_norm_backward(
                        a["x64"],
                        a["x64"],
                        None,
                        a["stats_1x3"],
                        a["stats_1x3"],
                        2,
                        -1,
                        1e-3,
                        a["readonly64"],
                    ),
                ),
            ],
        ),
        "update_moving_stats": (
            [
                lambda: _core.update_moving_stats(
                    a["moving_mean"], a["moving_var"], a["gamma64"], a["var64"], 0.99, 10
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.update_moving_stats(
                        a["moving_mean"], a["moving_var"], a["gamma64"], a["var64"], 1.5, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.update_moving_stats(
                        a["moving_mean"], a["moving_mean"], a["gamma64"], a["var64"], 0.5, None
                    ),
                ),
            ],
        ),
        "im2col": (
            [
                lambda: _core.im2col(a["x64"], *g, False),
                lambda: _core.im2col(a["x32_strided"], *g, True),
            ],
            [
                (ValueError, lambda: _core.im2col(a["x32_strided"], 9, 9, 1, 1, 0, 0, 0, 0, False)),
                (
                    ValueError,
                    lambda: _core.im2col(
                        a["x64"], *g, False, a["x64"].reshape(-1, 3)[: 60 * 27 // 3]
                    ),
                ),
                (ValueError, lambda: _core.im2col(a["x64"], *g, False, a["rows64"])),
                (TypeError, lambda: _core.im2col(a["ints"], *g, False)),
            ],
        ),
        "col2im": (
            [
                lambda: _core.col2im(a["dcol64"], a["shape_nhwc"], *g, False),
                lambda: _core.col2im(a["dcol64"], a["shape_nhwc"], *g, False, a["out_nhwc64"]),
            ],
            [
                (ValueError, lambda: _core.col2im(a["dcol64"], (2, 6, 5, 4), *g, False)),
                (ValueError, lambda: _core.col2im(a["dcol64"], a["gamma64"], *g, False)),
                (
                    ValueError,
                    lambda: _core.col2im(a["dcol64"], a["shape_nhwc"], *g, False, a["readonly64"]),
                ),
            ],
        ),
        "conv2d_setup": (
            [
                lambda: _core.conv2d_setup(
                    "conv2d", a["x32"], a["kernel32"], a["bias8"], 1, "same", 1, False
                ),
                lambda: _core.conv2d_setup(
                    "conv2d",
                    a["x32_strided"],
                    a["kernel32"],
                    None,
                    (2, 1),
                    ((1, 0), (2, 2)),
                    2,
                    False,
                ),
            ],
            [
                (
                    TypeError,
                    lambda: _core.conv2d_setup(
                        "conv2d", a["x32"], a["x64"], None, 1, "valid", 1, False
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.conv2d_setup(
                        "conv2d",
                        a["x32"],
                        a["kernel32"],
                        a["bias3_64"].astype(np.float32),
                        1,
                        "valid",
                        1,
                        False,
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.conv2d_setup(
                        "conv2d", a["x32"], a["kernel32"], None, 1, ((1, -1), (0, 0)), 1, False
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.conv2d_setup(
                        "conv2d", a["x32"], a["kernel32"], None, (1, 1.5), "valid", 1, False
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.conv2d_setup(
                        "conv2d", a["x32"], a["kernel32"], None, 1, "full", 1, False
                    ),
                ),
            ],
        ),
        "pool2d_setup": (
            [
                lambda: _core.pool2d_setup("max_pool2d_forward", a["x32"], 2, None, "same", False),
                lambda: _core.pool2d_setup("avg", a["x32_strided"], (3, 2), 1, "valid", True),
            ],
            [
                (TypeError, lambda: _core.pool2d_setup("f", a["ints"], 2, None, "valid", False)),
                (ValueError, lambda: _core.pool2d_setup("f", a["x32"], 0, None, "valid", False)),
                (TypeError, lambda: _core.pool2d_setup("f", a["x32"], 2, 1.5, "valid", False)),
                (ValueError, lambda: _core.pool2d_setup("f", a["x32"], 2, None, "full", False)),
                (ValueError, lambda: _core.pool2d_setup("f", a["x32"], 9, None, "valid", False)),
            ],
        ),
        "add_bias_rows": (
            [lambda: _core.add_bias_rows(a["rows64"], a["bias3_64"])],
            [
                (
                    ValueError,
                    lambda: _core.add_bias_rows(a["rows64"], a["bias8"].astype(np.float64)),
                ),
                (TypeError, lambda: _core.add_bias_rows(a["rows64"], a["bias8"])),
            ],
        ),
        "sum_rows": (
            [
                lambda: _core.sum_rows(a["rows64"]),
                lambda: _core.sum_rows(a["x32_strided"].reshape(-1, 15)),
            ],
            [
                (ValueError, lambda: _core.sum_rows(a["cube64"])),
                (TypeError, lambda: _core.sum_rows(a["ints"])),
            ],
        ),
        "batch_transpose": (
            [
                lambda: _core.batch_transpose(a["cube64"]),
                lambda: _core.batch_transpose(a["cube64"], a["bias3_64"]),
            ],
            [
                (ValueError, lambda: _core.batch_transpose(a["cube64"], a["gamma64"][:2])),
                (TypeError, lambda: _core.batch_transpose(a["cube64"], a["bias8"])),
            ],
        ),
        "max_pool2d": (
            [lambda: _core.max_pool2d(a["x64_swapped"], *pool, False)],
            [
                (
                    ValueError,
                    lambda: _core.max_pool2d(a["x64_swapped"], 2, 2, 2, 2, 2, 0, 0, 0, False),
                )
            ],
        ),
        "avg_pool2d": (
            [lambda: _core.avg_pool2d(a["x32_strided"], *pool, True)],
            [
                (
                    ValueError,
                    lambda: _core.avg_pool2d(a["x32_strided"], 9, 9, 1, 1, 0, 0, 0, 0, False),
                )
            ],
        ),
        "max_pool2d_backward": (
            [
                lambda: _core.max_pool2d_backward(
                    a["dy_pool64"], a["argmax"], a["shape_nhwc"], False
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.max_pool2d_backward(
                        a["dy_pool64"], a["argmax_bad"], a["shape_nhwc"], False
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.max_pool2d_backward(
                        a["dy_pool64"], a["ints"], a["shape_nhwc"], False
                    ),
                ),
            ],
        ),
        "avg_pool2d_backward": (
            [lambda: _core.avg_pool2d_backward(a["dy_pool64"], a["shape_nhwc"], *pool, False)],
            [
                (
                    ValueError,
                    lambda: _core.avg_pool2d_backward(a["dy_pool64"], (2, 6, 5, 4), *pool, False),
                )
            ],
        ),
        "affine_warp": (
            [
                lambda: _core.affine_warp(
                    a["x64"], a["matrices"], 1, "nearest", 0.0, "channels_last", a["out_nhwc64"]
                ),
                lambda: _core.affine_warp(
                    a["x64_swapped"], a["matrices"], 0, "wrap", 0.0, "channels_last", None
                ),
            ],
            [
                (
                    ValueError,
                    lambda: _core.affine_warp(
                        a["x64"], a["matrices"], 0, "nearest", 0.0, "channels_last", a["x64"]
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.affine_warp(
                        a["x64"], a["matrices"][:1], 0, "nearest", 0.0, "channels_last", None
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.affine_warp(
                        a["x64"], a["matrices"], 0, 3, 0.0, "channels_last", None
                    ),
                ),
            ],
        ),
    }
    points["fft_spectrum"] = (
        [lambda: _core.fft_spectrum(a["planes32"], 8, 6, 0, 0)],
        [
            (ValueError, lambda: _core.fft_spectrum(a["planes32"], 7, 6, 0, 0)),
            (TypeError, lambda: _core.fft_spectrum(a["x64"], 8, 6, 0, 0)),
            (ValueError, lambda: _core.fft_spectrum(a["x32_strided"], 1, 6, 0, 0)),  # copied
        ],
    )
    points["conv2d_fft_forward"] = (
        [lambda: _core.conv2d_fft_forward(a["xspec"], a["kspec"], a["bias8"], 2, 8, 6, 5, 6)],
        [
            (
                ValueError,
                lambda: _core.conv2d_fft_forward(a["xspec"], a["kspec"], None, 2, 8, 9, 5, 6),
            ),
            (
                ValueError,
                lambda: _core.conv2d_fft_forward(
                    a["xspec"], a["kspec"], a["bias3_64"].astype(np.float32), 2, 8, 6, 5, 6
                ),
            ),
        ],
    )
    points["conv2d_fft_dkernel"] = (
        [lambda: _core.conv2d_fft_dkernel(a["dy_direct32"], a["xspec"], 3, 3, 3, 1, 1, 6)],
        [
            (
                ValueError,
                lambda: _core.conv2d_fft_dkernel(a["dy_direct32"], a["xspec"], 3, 9, 3, 1, 1, 6),
            ),
            (TypeError, lambda: _core.conv2d_fft_dkernel(a["x64"], a["xspec"], 3, 3, 3, 1, 1, 6)),
        ],
    )
    points["conv2d_fft_dinput"] = (
        [lambda: _core.conv2d_fft_dinput(a["dy_direct32"], a["ktspec"], 3, 6, 5, 6)],
        [
            (
                ValueError,
                lambda: _core.conv2d_fft_dinput(a["dy_direct32"], a["ktspec"], 3, 6, 7, 6),
            ),
            (ValueError, lambda: _core.conv2d_fft_dinput(a["dy_direct32"], a["kspec"], 3, 6, 5, 6)),
        ],
    )
    if _core.conv_direct_available():
        points["conv2d_direct"] = (
            [
                lambda: _core.conv2d_direct(a["x32"], a["kernel32"], a["bias8"], 1, 1, 1, 1, 1, 1),
                lambda: _core.conv2d_direct(
                    a["x32_strided"], a["kernel32"], None, 2, 1, 0, 0, 1, 1
                ),
            ],
            [
                (
                    ValueError,
                    lambda: _core.conv2d_direct(
                        a["x32"], a["kernel32"], a["bias3_64"].astype(np.float32), 1, 1, 1, 1, 1, 1
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.conv2d_direct(a["x64"], a["kernel32"], None, 1, 1, 1, 1, 1, 1),
                ),
            ],
        )
        points["conv2d_direct_dkernel"] = (
            [
                lambda: _core.conv2d_direct_dkernel(
                    a["dy_direct32"], a["xpad32"], a["shape_nhwc"], 3, 3, 1, 1, 1, 1, 1, 1
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.conv2d_direct_dkernel(
                        a["dy_direct32"], a["x32"], a["shape_nhwc"], 3, 3, 1, 1, 1, 1, 1, 1
                    ),
                )
            ],
        )
    points.update(_bn_sync_points(a))
    return points


def _bn_sync_points(a):
    """The synchronized-BN phases (py_bn_sync.c): float64 statistics of (2, 6, 5, 3) data."""
    stats = (a["gamma64"], a["var64"])  # any float64 (3,) vectors
    return {
        "batch_norm_local_stats": (
            [
                lambda: _core.batch_norm_local_stats(a["x64"], -1),
                lambda: _core.batch_norm_local_stats(a["x32_strided"], 1),
            ],
            [
                (TypeError, lambda: _core.batch_norm_local_stats(a["ints"], -1)),
                (ValueError, lambda: _core.batch_norm_local_stats(a["x32_strided"], 7)),
            ],
        ),
        "batch_norm_merge_stats": (
            [lambda: _core.batch_norm_merge_stats(a["counts7"], a["rows64"], a["rows64"])],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_merge_stats(
                        a["counts_negative"], a["rows64"], a["rows64"]
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_merge_stats(a["counts7"], a["rows64"], a["cube64"]),
                ),
            ],
        ),
        "batch_norm_normalize": (
            [
                lambda: _core.batch_norm_normalize(
                    a["x64"], None, a["gamma64"], *stats, -1, 1e-3, a["out_nhwc64"]
                ),
                lambda: _core.batch_norm_normalize(
                    a["x32_strided"], None, None, *stats, -1, 1e-3, None
                ),
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_normalize(
                        a["x32_strided"], None, None, *stats, -1, -1.0, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_normalize(
                        a["x64"], None, None, *stats, -1, 1e-3, a["readonly64"]
                    ),
                ),
            ],
        ),
        "batch_norm_grad_sums": (
            [lambda: _core.batch_norm_grad_sums(a["x64_swapped"], a["x64"], a["gamma64"], -1)],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_grad_sums(
                        a["x64_swapped"], a["rows64"], a["var64"], -1
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_grad_sums(a["x64"], a["x64"], a["rows64"], -1),
                ),
            ],
        ),
        "batch_norm_backward_apply": (
            [
                lambda: _core.batch_norm_backward_apply(
                    a["x64"],
                    a["x64_swapped"],
                    None,
                    *stats,
                    *stats,
                    120,
                    -1,
                    1e-3,
                    a["out_nhwc64"],
                )
            ],
            [
                (
                    ValueError,
                    lambda: _core.batch_norm_backward_apply(
                        a["x64"], a["x64_swapped"], None, *stats, *stats, 5, -1, 1e-3, None
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.batch_norm_backward_apply(
                        a["x64"], a["x64"], None, *stats, *stats, 60, -1, 1e-3, a["readonly64"]
                    ),
                ),
            ],
        ),
    }


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
