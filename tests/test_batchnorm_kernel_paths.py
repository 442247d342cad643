"""bnpy.ops batch normalization through the kernels' special paths, against its float64 NumPy
twin (tests/reference.py): the statistics' short float32 blocks and their exact double path on hard
data, the flat and row forms of the elementwise passes on large channels-last tensors, every output
alignment, and the non-temporal stores of large training passes (docs/batchnorm.md).
Tolerances as in test_batchnorm.py."""

import numpy as np
import pytest
import reference
from batchnorm_checks import TOLERANCE, channel_params, check, relative_error

import bnpy
from bnpy import ops

# ---- the statistics' short float32 blocks and their exact path ------------------------------------
# Sums of squared deviations run in float32 over short blocks about a shift near the mean; a block
# whose mean is far from the shift (a jump in level, a trend), or whose sums near float32's range
# limits (|x| ~ 1e18, |x| ~ 1e-25), goes through an exact double path. Per channel, the mean must be
# within 1e-6·σ of the float64 twin beyond its own float32 rounding, and the variance within 1e-5
# relative (where float32 can hold it).


def hard_values(rng, kind, shape, axis):
    x = rng.standard_normal(shape)
    rows = np.arange(shape[0]).reshape([-1] + [1] * (len(shape) - 1))
    if kind == "jumps":  # the level changes from row to row of the batch, by up to 1e3·σ
        x = x + rng.choice([0.0, 50.0, -300.0, 1e3], size=shape[0]).reshape(rows.shape)
    elif kind == "trend":
        x = x + rows * (1e3 / shape[0])
    elif kind == "tiny":  # squares below float32's normal range
        x = x * 1e-25
    elif kind == "huge":  # squares beyond float32's range
        x = x * 1e19 + 3e19
    elif kind == "far_pivot":  # the first rows (where the shift comes from) 1e3·σ off the rest
        x[:2] += 1e3
    elif kind == "outliers":
        x.flat[rng.integers(0, x.size, 20)] = 1e6
    return x


@pytest.mark.parametrize("kind", ["jumps", "trend", "tiny", "huge", "outliers", "far_pivot"])
@pytest.mark.parametrize(
    "shape,axis",
    [
        ((40, 6, 6, 24), -1),
        ((40, 24, 6, 6), 1),
        ((300, 520), 1),
        ((3000, 5), 1),
        ((16, 3, 700), 1),
        ((400, 8, 8, 8), -1),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_per_channel_on_hard_data(dtype, shape, axis, kind):
    rng = np.random.default_rng(7)
    x = hard_values(rng, kind, shape, axis).astype(dtype)
    eps = 0.0 if kind == "tiny" else 1e-3
    y, mean, var = ops.batch_norm_forward(x, None, None, axis=axis, epsilon=eps)
    ry, rmean, rvar = reference.batch_norm_forward(x, None, None, axis, eps)
    sigma = np.sqrt(rvar)
    finfo = np.finfo(dtype)
    # The returned mean is rounded to dtype: allow that half ulp, plus 1e-6·σ (1e-12 for float64).
    mean_tol = (1e-6 if dtype == np.float32 else 1e-12) * sigma + np.abs(rmean) * finfo.eps
    assert np.all(np.abs(mean - rmean) <= mean_tol), (kind, np.max(np.abs(mean - rmean) / sigma))
    representable = rvar > finfo.tiny / finfo.eps  # a float32 var of 1e-50 is 0
    var_tol = TOLERANCE[dtype]
    assert np.all(np.abs(var - rvar)[representable] <= var_tol * rvar[representable]), kind
    check("batch_norm_forward", dtype, shape, axis, "C", kind, [("y", y, ry)])


@pytest.mark.parametrize("channels", [24, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_channels_last_elementwise_forms(dtype, channels):
    """Channels-last tensors of 6 MiB and more with C a multiple of the vector width take the flat
    form of the elementwise passes (csrc/batchnorm.c, BN_AFFINE_FLAT), others the row sweeps."""
    rng = np.random.default_rng(11)
    rows = (6 * 2**20) // (channels * np.dtype(dtype).itemsize) + 7
    x = (rng.standard_normal((rows, channels)) * 3 + 1e3).astype(dtype)
    dy = rng.standard_normal((rows, channels)).astype(dtype)
    gamma, beta = channel_params(rng, channels, dtype)
    shape = x.shape
    y, mean, var = ops.batch_norm_forward(x, gamma, beta, axis=-1)
    ry, rmean, rvar = reference.batch_norm_forward(x, gamma, beta, -1, 1e-3)
    check(
        "batch_norm_forward",
        dtype,
        shape,
        -1,
        "C",
        "offset",
        [("y", y, ry), ("mean", mean, rmean), ("var", var, rvar)],
    )
    yi = ops.batch_norm_inference(x, gamma, beta, mean, var, axis=-1)
    check(
        "batch_norm_inference",
        dtype,
        shape,
        -1,
        "C",
        "offset",
        [("y", yi, reference.batch_norm_inference(x, gamma, beta, mean, var, -1, 1e-3))],
    )
    for name in ("batch_norm_backward", "batch_norm_inference_backward"):
        got = getattr(ops, name)(dy, x, gamma, mean, var, axis=-1)
        ref = getattr(reference, name)(dy, x, gamma, mean, var, -1, 1e-3)
        check(name, dtype, shape, -1, "C", "offset", list(zip(("dx", "dgamma", "dbeta"), got, ref)))


def at_offset(shape, dtype, offset):
    """An uninitialised C-contiguous array that starts `offset` bytes past a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    count = int(np.prod(shape))
    raw = np.empty(count * itemsize + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    return raw[start : start + count * itemsize].view(dtype).reshape(shape)


ALIGNMENT_CASES = [  # (dtype, shape after the outer axis, channel axis)
    (np.float32, (8,), -1),
    (np.float32, (24,), -1),
    (np.float32, (12,), -1),
    (np.float64, (4,), -1),
    (np.float64, (12,), -1),
    (np.float32, (3, 16), 1),
    (np.float32, (2, 21), 1),
    (np.float32, (3, 8), 1),
    (np.float64, (3, 8), 1),
    (np.float64, (2, 9), 1),
]


@pytest.mark.parametrize("rows", [1, 2, 3, 5, 37])
@pytest.mark.parametrize("dtype,tail,axis", ALIGNMENT_CASES)
def test_elementwise_passes_at_every_alignment(dtype, tail, axis, rows):
    """Outputs at every element offset from a 32-byte boundary. Channels-last, the vector loops
    run on rows shifted to the boundary (csrc/batchnorm.c, bn_affine_rows) and the values before
    and after them separately. (Channels-first segments are not shifted: aligning them measured
    no faster.) Every placement gives the same bits, in place too."""
    rng = np.random.default_rng(rows * 100 + sum(tail))
    shape = (rows,) + tail
    channels = shape[axis]
    x = (rng.standard_normal(shape) * 2 + 50).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = channel_params(rng, channels, dtype)
    y0, mean, var = ops.batch_norm_forward(
        x, gamma, beta, axis=axis, out=at_offset(shape, dtype, 0)
    )
    if x.size > channels:
        ry, _, _ = reference.batch_norm_forward(x, gamma, beta, axis, 1e-3)
        assert relative_error(y0, ry) <= TOLERANCE[dtype]
    calls = {
        "forward": (lambda out: ops.batch_norm_forward(x, gamma, beta, axis=axis, out=out)[0], x),
        "inference": (
            lambda out: ops.batch_norm_inference(x, gamma, beta, mean, var, axis=axis, out=out),
            x,
        ),
        "backward": (
            lambda out: ops.batch_norm_backward(dy, x, gamma, mean, var, axis=axis, out=out)[0],
            dy,
        ),
    }
    for name, (call, aliased) in calls.items():
        expected = call(at_offset(shape, dtype, 0))
        for offset in range(0, 32, np.dtype(dtype).itemsize):
            out = at_offset(shape, dtype, offset)
            np.testing.assert_array_equal(
                call(out), expected, err_msg=f"{name}, out at +{offset} bytes"
            )
            # In place: out is the input it overwrites, at the same offset.
            buffer = at_offset(shape, dtype, offset)
            buffer[...] = aliased
            if name == "backward":
                got = ops.batch_norm_backward(buffer, x, gamma, mean, var, axis=axis, out=buffer)[0]
            elif name == "forward":
                got = ops.batch_norm_forward(buffer, gamma, beta, axis=axis, out=buffer)[0]
            else:
                got = ops.batch_norm_inference(
                    buffer, gamma, beta, mean, var, axis=axis, out=buffer
                )
            np.testing.assert_array_equal(
                got, expected, err_msg=f"{name} in place at +{offset} bytes"
            )


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mebibytes", [4, 6])
def test_streaming_stores_at_every_alignment(mebibytes, threads):
    """Channels-last training passes on tensors of 3.5 MiB and more (C a multiple of the vector
    width) write their outputs with non-temporal stores, in the row sweeps (4 MiB) and in the
    flat form (6 MiB and more; csrc/bn_affine.h): every output placement, in place too and on
    any thread count, must give the bits of an ordinary store, and the values before and after
    the shifted rows must be written. A buffer filled with NaN first shows any value the pass
    left unwritten."""
    rng = np.random.default_rng(5)
    channels = 24
    rows = (mebibytes * 2**20) // (channels * 4) + 3
    shape = (rows, channels)
    x = (rng.standard_normal(shape) * 2 + 50).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = channel_params(rng, channels, np.float32)
    before = bnpy.get_num_threads()
    try:
        bnpy.set_num_threads(1)
        y, mean, var = ops.batch_norm_forward(x, gamma, beta, axis=-1)
        ry, _, _ = reference.batch_norm_forward(x, gamma, beta, -1, 1e-3)
        assert relative_error(y, ry) <= TOLERANCE[np.float32]
        dx = ops.batch_norm_backward(dy, x, gamma, mean, var, axis=-1)[0]
        rdx = reference.batch_norm_backward(dy, x, gamma, mean, var, -1, 1e-3)[0]
        assert relative_error(dx, rdx) <= TOLERANCE[np.float32]
        bnpy.set_num_threads(threads)
        for offset in (0, 4, 16, 28):
            out = at_offset(shape, np.float32, offset)
            out[...] = np.nan
            got = ops.batch_norm_forward(x, gamma, beta, axis=-1, out=out)[0]
            np.testing.assert_array_equal(got, y, err_msg=f"forward, out at +{offset} bytes")
            out[...] = np.nan
            got = ops.batch_norm_backward(dy, x, gamma, mean, var, axis=-1, out=out)[0]
            np.testing.assert_array_equal(got, dx, err_msg=f"backward, out at +{offset} bytes")
            buffer = at_offset(shape, np.float32, offset)
            buffer[...] = dy
            got = ops.batch_norm_backward(buffer, x, gamma, mean, var, axis=-1, out=buffer)[0]
            np.testing.assert_array_equal(got, dx, err_msg=f"backward in place at +{offset}")
    finally:
        bnpy.set_num_threads(before)
