"""Shared by the tests of bnpy.ops' convolution and pooling (test_conv_ops.py and
test_conv_pooling.py): data layouts, the data-format round trip, the error bound, TensorFlow's
'same' rule.

The error bound is the standard one for a sum of K products computed in floating point:
|computed - exact| <= K * u * sum|terms| (u = 2**-24 for float32, 2**-53 for float64), where
sum|terms| is the same convolution applied to |x|, |K|, |dy| (computed by the reference). The
references run in float64 on the very same (float32-representable) inputs, so the bound covers
everything but a factor for the reference's own rounding (a few float64 ulps: far below).
"""

import numpy as np

UNIT_ROUNDOFF = {np.float32: 2.0**-24, np.float64: 2.0**-53}


def layout(x, kind):
    """x's values in another memory layout: C order, Fortran order, a strided slice, negative strides."""
    if kind == "C":
        return np.ascontiguousarray(x)
    if kind == "F":
        return np.asfortranarray(x)
    if kind == "sliced":
        buf = np.full(x.shape[:-1] + (2 * x.shape[-1] + 1,), np.nan, dtype=x.dtype)
        buf[..., 1::2] = x
        return buf[..., 1::2]
    if kind == "reversed":
        return np.ascontiguousarray(x[::-1, :, ::-1])[::-1, :, ::-1]
    raise AssertionError(kind)


def to_format(x_nhwc, data_format):
    return x_nhwc if data_format == "channels_last" else x_nhwc.transpose(0, 3, 1, 2)


def from_format(y, data_format):
    return y if data_format == "channels_last" else y.transpose(0, 2, 3, 1)


def assert_within(name, got, want, bound, terms, dtype, context):
    """|got - want| <= (terms + 2) * u * bound elementwise, with a message naming the case."""
    u = UNIT_ROUNDOFF[dtype]
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, "{} {}: shape {} != {}".format(
        name, context, got.shape, want.shape
    )
    err = np.abs(got - want)
    allowed = (terms + 2) * u * bound + 1e-300
    worst = np.max(err / allowed) if err.size else 0.0
    assert worst <= 1.0, "{} {} {}: max error {:.3g} exceeds the bound by {:.3g}x".format(
        name, np.dtype(dtype).name, context, err.max(), worst
    )


X32 = np.zeros((2, 5, 5, 3), np.float32)
K32 = np.zeros((3, 3, 3, 4), np.float32)


def tf_same(n, k, s):
    """TensorFlow's 'same' rule along one axis: (out, pad_before, pad_after)."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return out, total // 2, total - total // 2
