"""Valid calls of the image kernels of bnpy._core and bnpy.ops for the fuzz campaign (cases.py
mutates them): im2col/col2im, bias rows, transposes, pooling, the direct and FFT convolutions,
the affine warp and the Keras-level convolution and pooling with their argument setup, one builder
per function."""

import numpy as np

from bnpy import _core, ops

from .calls import Case, random_dtype, random_shape, random_values


def _geometry(rng, pool=False):
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    if pool:
        pads = [
            int(rng.integers(0, kh)),
            int(rng.integers(0, kh)),
            int(rng.integers(0, kw)),
            int(rng.integers(0, kw)),
        ]
    else:
        pads = [int(rng.integers(0, 3)) for _ in range(4)]
    return [kh, kw, sh, sw] + pads


def _image_batch(rng, geometry, cf, dtype=None, min_hw=0):
    kh, kw, sh, sw, pt, pb, pl, pr = geometry
    n, c = int(rng.integers(0, 4)), int(rng.integers(1, 5))
    h = max(int(rng.integers(0, 7)), kh - pt - pb, min_hw)
    w = max(int(rng.integers(0, 7)), kw - pl - pr, min_hw)
    shape = (n, c, h, w) if cf else (n, h, w, c)
    return random_values(rng, shape, dtype or random_dtype(rng))


def _out_hw(x_shape, geometry, cf):
    kh, kw, sh, sw, pt, pb, pl, pr = geometry
    h, w = (x_shape[2], x_shape[3]) if cf else (x_shape[1], x_shape[2])
    return (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1


def _dilation(rng, geometry):
    """No dilation mostly, else (dh, dw) in 1..3; and the geometry with the dilated window's extent
    in place of the kernel size (for sizing the image and the output)."""
    dilation = (1, 1) if rng.random() < 0.7 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    extent = [(geometry[0] - 1) * dilation[0] + 1, (geometry[1] - 1) * dilation[1] + 1] + geometry[
        2:
    ]
    return list(dilation), extent


def _im2col_geometry(rng):
    """For im2col and col2im: geometry, channels_first, dilation, an image batch that fits the
    dilated window, and the shape of its column matrix (one row per output pixel, kh*kw*C columns)."""
    g, cf = _geometry(rng), bool(rng.integers(2))
    dilation, extent = _dilation(rng, g)
    x = _image_batch(rng, extent, cf)
    n, c = x.shape[0], x.shape[1] if cf else x.shape[3]
    oh, ow = _out_hw(x.shape, extent, cf)
    return g, cf, dilation, x, (n * oh * ow, g[0] * g[1] * c)


def build_im2col(rng, api):
    g, cf, dilation, x, col_shape = _im2col_geometry(rng)
    out = None
    if rng.random() < 0.4:
        out = np.empty(col_shape, x.dtype)
    return Case("_core.im2col", _core.im2col, [x] + g + [cf, out] + dilation, outputs=[10])


def build_col2im(rng, api):
    g, cf, dilation, x, col_shape = _im2col_geometry(rng)
    dcol = random_values(rng, col_shape, x.dtype)
    out = np.empty(x.shape, x.dtype) if rng.random() < 0.4 else None
    return Case(
        "_core.col2im",
        _core.col2im,
        [dcol, tuple(x.shape)] + g + [cf, out] + dilation,
        outputs=[11],
    )


def build_conv_output(rng, api):
    images, pixels, cout = random_shape(rng, 3)
    y = random_values(rng, (images * pixels, cout), random_dtype(rng))
    bias = random_values(rng, (cout,), y.dtype) if rng.random() < 0.5 else None
    cf = bool(rng.integers(2))
    # y is written in place when channels_first is false (a mutation may flip it)
    return Case("_core.conv_output", _core.conv_output, [y, bias, images, cf], outputs=[0])


def build_conv_output_backward(rng, api):
    dy = random_values(rng, random_shape(rng, 4), random_dtype(rng))
    args = [dy, bool(rng.integers(2)), bool(rng.integers(2))]
    return Case("_core.conv_output_backward", _core.conv_output_backward, args)


def build_pool(rng, api, kind):
    g, cf = _geometry(rng, pool=True), bool(rng.integers(2))
    x = _image_batch(rng, g, cf, min_hw=1)
    return Case("_core.pool2d", _core.pool2d, [x, kind == "max"] + g + [cf])


def build_max_pool_backward(rng, api):
    g, cf = _geometry(rng, pool=True), bool(rng.integers(2))
    x = _image_batch(rng, g, cf, min_hw=1)
    y, argmax = _core.pool2d(x, True, *g, cf)
    if argmax.size and rng.random() < 0.3:  # an index outside the plane: must be refused
        argmax = argmax.copy()
        argmax.flat[rng.integers(argmax.size)] = int(
            rng.choice([-1, x.size + 1, 2**31 - 1, -(2**31)])
        )
    dy = random_values(rng, y.shape, x.dtype)
    return Case(
        "_core.pool2d_backward", _core.pool2d_backward, [dy, argmax, tuple(x.shape)] + g + [cf]
    )


def build_avg_pool_backward(rng, api):
    g, cf = _geometry(rng, pool=True), bool(rng.integers(2))
    x = _image_batch(rng, g, cf, min_hw=1)
    n, c = x.shape[0], x.shape[1] if cf else x.shape[3]
    oh, ow = _out_hw(x.shape, g, cf)
    dy = random_values(rng, (n, c, oh, ow) if cf else (n, oh, ow, c), x.dtype)
    return Case(
        "_core.pool2d_backward", _core.pool2d_backward, [dy, None, tuple(x.shape)] + g + [cf]
    )


def build_conv2d_direct(rng, api):
    g = _geometry(rng)
    x = _image_batch(rng, g, False, np.float32)
    cout = 8 * int(rng.integers(1, 4))
    kernel = random_values(rng, (g[0], g[1], x.shape[3], cout), np.float32)
    bias = random_values(rng, (cout,), np.float32) if rng.random() < 0.5 else None
    return Case("_core.conv2d_direct", _core.conv2d_direct, [x, kernel, bias] + g[2:])


def build_conv2d_direct_dkernel(rng, api):
    g = _geometry(rng)
    x = _image_batch(rng, g, False, np.float32)
    kh, kw, sh, sw, pt, pb, pl, pr = g
    oh, ow = _out_hw(x.shape, g, False)
    cout = 8 * int(rng.integers(1, 4))
    xpad = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dy = random_values(rng, (x.shape[0], oh, ow, cout), np.float32)
    return Case(
        "_core.conv2d_direct_dkernel", _core.conv2d_direct_dkernel, [dy, xpad, tuple(x.shape)] + g
    )


def _fft_problem(rng):
    """A consistent FFT convolution: sizes, an FFT size that fits, x's and the kernels' spectra."""
    n, cin, cout = (int(v) for v in rng.integers(1, [3, 5, 12]))
    h, w = (int(v) for v in rng.integers(1, 9, 2))
    kh, kw = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
    p_h, p_w = (
        int(rng.choice([v for v in (1, 2, 3, 4, 5, 6, 8, 9, 10, 12) if v >= m])) for m in (h, w)
    )
    x = random_values(rng, (1, h, w, n * cin), np.float32)
    kernel = random_values(rng, (kh, kw, cin, cout), np.float32)
    xspec = _core.fft_spectrum(x, p_h, p_w, 0, 0)
    kspec = _core.fft_spectrum(np.ascontiguousarray(kernel.transpose(2, 0, 1, 3)), p_h, p_w, 0, 0)
    ktspec = _core.fft_spectrum(np.ascontiguousarray(kernel.transpose(3, 0, 1, 2)), p_h, p_w, 0, 0)
    return n, cin, cout, h, w, kh, kw, p_h, p_w, xspec, kspec, ktspec


def build_fft_spectrum(rng, api):
    p_h, p_w = (int(v) for v in rng.choice([1, 2, 3, 4, 5, 8, 9, 10, 12], 2))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, p_h + 1)), int(rng.integers(1, p_w + 1)))
    a = random_values(rng, shape + (int(rng.integers(1, 12)),), np.float32)
    shifts = [int(v) for v in rng.integers(-6, 7, 2)]
    return Case("_core.fft_spectrum", _core.fft_spectrum, [a, p_h, p_w] + shifts)


def build_conv2d_fft(rng, api, which):
    n, cin, cout, h, w, kh, kw, p_h, p_w, xspec, kspec, ktspec = _fft_problem(rng)
    oh, ow = int(rng.integers(1, p_h + 1)), int(rng.integers(1, p_w + 1))
    dy = random_values(rng, (n, oh, ow, cout), np.float32)
    if which == "forward":
        bias = random_values(rng, (cout,), np.float32) if rng.random() < 0.5 else None
        args = [xspec, kspec, bias, n, cout, oh, ow, p_w]
    elif which == "dkernel":
        args = [dy, xspec, cin, kh, kw] + [int(v) for v in rng.integers(0, 4, 2)] + [p_w]
    else:
        args = [dy, ktspec, cin, h, w, p_w]
    name = "conv2d_fft_" + which
    return Case("_core." + name, getattr(_core, name), args)


def build_affine_warp(rng, api):
    cf = bool(rng.integers(2))
    x = _image_batch(rng, [1, 1, 1, 1, 0, 0, 0, 0], cf)
    n = x.shape[0]
    mats = np.tile(np.eye(3), (n, 1, 1))
    mats[:, :2, :] += rng.standard_normal((n, 2, 3)) * rng.choice([0.0, 0.3, 3.0, 1e6])
    if rng.random() < 0.3:
        mats = mats[:, :2, :]
    kwargs = dict(
        order=int(rng.integers(2)),
        fill_mode=str(rng.choice(["constant", "nearest", "reflect", "wrap"])),
        cval=float(rng.choice([0.0, -1.5, np.nan])),
        data_format="channels_first" if cf else "channels_last",
    )
    out = np.empty_like(x) if rng.random() < 0.3 else None
    if api == "core":
        return Case(
            "_core.affine_warp",
            _core.affine_warp,
            [
                x,
                mats,
                kwargs["order"],
                kwargs["fill_mode"],
                kwargs["cval"],
                cf,
                out,
            ],
            outputs=[6],
        )
    if rng.random() < 0.3 and n:  # the ops API also takes one image and one matrix
        x, mats = x[0], mats[0]
        out = None if out is None else out[0]
    return Case(
        "ops.affine_warp",
        ops.affine_warp,
        [x, mats],
        dict(kwargs, out=out),
        outputs=["out"],
        core=False,
    )


def _keras_geometry(rng):
    strides = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = str(rng.choice(["valid", "same"]))
    if rng.random() < 0.2:
        padding = (
            (int(rng.integers(0, 3)), int(rng.integers(0, 3))),
            (int(rng.integers(0, 3)), int(rng.integers(0, 3))),
        )
    return strides, padding


def build_ops_conv(rng, api, which):
    cf = bool(rng.integers(2))
    dtype = random_dtype(rng)
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    n, c, h, w = (
        int(rng.integers(0, 3)),
        int(rng.integers(1, 4)),
        int(rng.integers(kh, 7)),
        int(rng.integers(kw, 7)),
    )
    x = random_values(rng, (n, c, h, w) if cf else (n, h, w, c), dtype)
    cout = int(rng.choice([1, 3, 8, 16]))
    kernel = random_values(rng, (kh, kw, c, cout), dtype)
    bias = random_values(rng, (cout,), dtype) if rng.random() < 0.7 else None
    strides, padding = _keras_geometry(rng)
    fmt = "channels_first" if cf else "channels_last"
    # A dilation whose window still fits the unpadded image (so that 'valid' stays valid).
    dilation = (int(rng.integers(1, 4)), int(rng.integers(1, 4))) if rng.random() < 0.3 else (1, 1)
    if (kh - 1) * dilation[0] + 1 > h or (kw - 1) * dilation[1] + 1 > w:
        dilation = (1, 1)
    args = [x, kernel, bias, strides, padding, fmt, dilation]
    if which == "conv2d":
        return Case("ops.conv2d", ops.conv2d, args, core=False)
    if which == "forward":
        return Case("ops.conv2d_forward", ops.conv2d_forward, args, core=False)
    if (
        cf and n == 0
    ):  # a known bug, see tests/test_fuzz_core.py::test_conv2d_channels_first_empty_batch
        x = random_values(rng, (1, c, h, w), dtype)
    y, ctx = ops.conv2d_forward(x, kernel, bias, strides, padding, fmt, dilation)
    dy = random_values(rng, y.shape, dtype)
    ctx_arg = ctx if rng.random() < 0.95 else object()
    return Case(
        "ops.conv2d_backward", ops.conv2d_backward, [dy, ctx_arg, bool(rng.integers(2))], core=False
    )


def build_conv2d_setup(rng, api):
    # the arguments of a convolution as ops.conv passes them on (ops.conv2d's case, unwrapped)
    x, kernel, bias, strides, padding, fmt, dilation = build_ops_conv(rng, api, "conv2d").args
    args = ["conv2d", x, kernel, bias, strides, padding, dilation, fmt == "channels_first"]
    return Case("_core.conv2d_setup", _core.conv2d_setup, args)


def build_ops_pool(rng, api, kind, which):
    cf = bool(rng.integers(2))
    pool = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    strides = None if rng.random() < 0.5 else (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = str(rng.choice(["valid", "same"]))
    n, c = int(rng.integers(0, 3)), int(rng.integers(1, 4))
    h, w = int(rng.integers(pool[0], 7)), int(rng.integers(pool[1], 7))
    x = random_values(rng, (n, c, h, w) if cf else (n, h, w, c), random_dtype(rng))
    fmt = "channels_first" if cf else "channels_last"
    forward = getattr(ops, kind + "_pool2d_forward")
    if which == "forward":
        return Case(
            "ops.{}_pool2d_forward".format(kind),
            forward,
            [x, pool, strides, padding, fmt],
            core=False,
        )
    y, ctx = forward(x, pool, strides, padding, fmt)
    return Case(
        "ops.{}_pool2d_backward".format(kind),
        getattr(ops, kind + "_pool2d_backward"),
        [random_values(rng, y.shape, x.dtype), ctx],
        core=False,
    )


def build_pool2d_setup(rng, api):
    # the arguments of a pooling as ops.conv passes them on (the forward's case, unwrapped)
    x, pool, strides, padding, fmt = build_ops_pool(rng, api, "max", "forward").args
    args = ["max_pool2d_forward", x, pool, strides, padding, fmt == "channels_first"]
    return Case("_core.pool2d_setup", _core.pool2d_setup, args)
