"""The image-kernel entry points of bnpy._core for leak_check.py: name -> (good calls, bad calls
as (exception type, thunk)), on the arguments of leak_check.ARGS (passed in as ``a``)."""

import numpy as np

from bnpy import _core


def _geometry(k=3, s=1, p=1):
    return (k, k, s, s, p, p, p, p)


def image_points(a):
    """im2col/col2im, the convolution and pooling setups, bias rows, transposes, pooling, the
    affine warp, the FFT convolution and, where the CPU has it, the direct convolution."""
    g = _geometry()
    pool = (2, 2, 2, 2, 0, 0, 0, 0)
    points = {
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
        "conv_output": (
            [
                lambda: _core.conv_output(a["rows64"].copy(), a["bias3_64"], 7, False),
                lambda: _core.conv_output(a["rows64"], None, 1, True),
                lambda: _core.conv_output(a["rows64"], a["bias3_64"], 7, True),
            ],
            [
                (ValueError, lambda: _core.conv_output(a["rows64"], a["gamma64"][:2], 7, True)),
                (TypeError, lambda: _core.conv_output(a["rows64"], a["bias8"], 7, True)),
                (ValueError, lambda: _core.conv_output(a["cube64"], None, 2, True)),
                (ValueError, lambda: _core.conv_output(a["rows64"], None, 2, True)),
                (ValueError, lambda: _core.conv_output(a["readonly64"][0, 0], None, 1, False)),
            ],
        ),
        "conv_output_backward": (
            [
                lambda: _core.conv_output_backward(a["x64"], True, False),
                lambda: _core.conv_output_backward(a["x64"][:, ::2], True, True),
                lambda: _core.conv_output_backward(a["x64"], False, True),
            ],
            [
                (ValueError, lambda: _core.conv_output_backward(a["cube64"], True, False)),
                (TypeError, lambda: _core.conv_output_backward(a["ints"], True, False)),
            ],
        ),
        "pool2d": (
            [
                lambda: _core.pool2d(a["x64_swapped"], True, *pool, False),
                lambda: _core.pool2d(a["x32_strided"], False, *pool, True),
            ],
            [
                (
                    ValueError,
                    lambda: _core.pool2d(a["x64_swapped"], True, 2, 2, 2, 2, 2, 0, 0, 0, False),
                ),
                (
                    ValueError,
                    lambda: _core.pool2d(a["x32_strided"], False, 9, 9, 1, 1, 0, 0, 0, 0, False),
                ),
            ],
        ),
        "pool2d_backward": (
            [
                lambda: _core.pool2d_backward(
                    a["dy_pool64"], a["argmax"], a["shape_nhwc"], *pool, False
                ),
                lambda: _core.pool2d_backward(a["dy_pool64"], None, a["shape_nhwc"], *pool, False),
            ],
            [
                (
                    ValueError,
                    lambda: _core.pool2d_backward(
                        a["dy_pool64"], a["argmax_bad"], a["shape_nhwc"], *pool, False
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.pool2d_backward(
                        a["dy_pool64"], a["ints"], a["shape_nhwc"], *pool, False
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.pool2d_backward(a["dy_pool64"], None, (2, 6, 5, 4), *pool, False),
                ),
            ],
        ),
        "affine_warp": (
            [
                lambda: _core.affine_warp(
                    a["x64"], a["matrices"], 1, "nearest", 0.0, False, a["out_nhwc64"]
                ),
                lambda: _core.affine_warp(
                    a["x64_swapped"], a["matrices"], 0, "wrap", 0.0, False, None
                ),
            ],
            [
                (
                    ValueError,
                    lambda: _core.affine_warp(
                        a["x64"], a["matrices"], 0, "nearest", 0.0, False, a["x64"]
                    ),
                ),
                (
                    ValueError,
                    lambda: _core.affine_warp(
                        a["x64"], a["matrices"][:1], 0, "nearest", 0.0, False, None
                    ),
                ),
                (
                    TypeError,
                    lambda: _core.affine_warp(a["x64"], a["matrices"], 0, 3, 0.0, False, None),
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
    return points
