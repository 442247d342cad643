"""bnpy.ops batch normalization against its float64 NumPy twin (tests/reference.py).

The test grid (docs/batchnorm.md, "Tests and CI"): ranks 1 to 5, every axis, sizes 1 and odd,
float32 and float64; C-order, F-order, transposed, sliced and negative-stride views; values N(0, 1),
with a constant channel, offset 1e4 + N(0, 1), and mixed per-channel scales. A few larger shapes
exercise the kernels' chunks, channel blocks, statistics blocks and the threaded path.

Tolerance, max|err| / max|ref|, against the float64 twin run on the same (float32-valued) inputs:
float32 1e-5 (the statistics are summed in short float32 blocks added in double, the gradient sums
in double; y and dx are a few float32 roundings of their own size, ~2e-7), float64 1e-12 (kernel and
twin both normalise about a pivot near the channel's values, so the 1e4 offset costs no ulp of |x|;
what is left is summation order, ~1e-15).
"""

import numpy as np
import pytest
import reference
from batchnorm_checks import TOLERANCE, channel_params, check, relative_error
from reference_layers import numeric_gradient

import bnpy
from bnpy import ops

SMALL_SHAPES = [
    (7,),
    (1,),
    (5, 3),
    (1, 4),
    (6, 1),
    (4, 3, 5),
    (3, 1, 7),
    (1, 1, 1),
    (2, 3, 4, 5),
    (3, 5, 1, 2),
    (2, 3, 1, 4, 3),
    (1, 2, 3, 1, 5),
]
# Larger: several chunks and the threaded path (>= 65536 values), channel blocks (C > 512),
# statistics blocks shorter than a segment (inner > 4096) or than the rows (C small, many rows).
# Channels-first units are (chunk, block of 64 channels): (40, 130, 20) on axis 1 has three chunks of
# three channel blocks, the last of 2 channels.
LARGE_CASES = [
    ((64, 40, 30), (0, 1, 2)),
    ((300, 520), (1, 0)),
    ((3, 2, 5000), (1,)),
    ((5000, 3), (1,)),
    ((8, 6, 6, 96), (3, 1)),
    ((40, 130, 20), (1,)),
]

LAYOUTS = ["C", "F", "transposed", "sliced", "negative"]
KINDS = ["normal", "constant_channel", "offset", "mixed_scales"]


def make_values(rng, shape, axis, kind):
    """float64 values of `shape` of the given kind (channels along `axis`)."""
    x = rng.standard_normal(shape)
    channels = shape[axis]
    index = [slice(None)] * len(shape)
    if kind == "constant_channel":
        index[axis] = 0
        x[tuple(index)] = 3.7
    elif kind == "offset":
        x += 1e4
    elif kind == "mixed_scales":
        scale = 10.0 ** rng.uniform(-3, 3, channels)
        shift = rng.uniform(-5, 5, channels) * scale
        x = x * reference._broadcast(scale, len(shape), axis) + reference._broadcast(
            shift, len(shape), axis
        )
    return x


def with_layout(values, layout, dtype):
    """An array equal to `values` (cast to dtype) whose memory has the named layout."""
    v = values.astype(dtype)
    if layout == "C":
        return np.ascontiguousarray(v)
    if layout == "F":
        return np.asfortranarray(v)
    if layout == "transposed":
        return np.ascontiguousarray(v.T).T
    if layout == "sliced":
        big = np.zeros(tuple(2 * n for n in v.shape), dtype=dtype)
        view = big[tuple(slice(None, None, 2) for _ in v.shape)]
        view[...] = v
        return view
    if layout == "negative":
        flipped = np.ascontiguousarray(v[tuple(slice(None, None, -1) for _ in v.shape)])
        return flipped[tuple(slice(None, None, -1) for _ in v.shape)]
    raise AssertionError(layout)


def cases(large):
    for shape in SMALL_SHAPES:
        for axis in range(-len(shape), 0):
            yield shape, axis
    if large:
        for shape, axes in LARGE_CASES:
            for axis in axes:
                yield shape, axis


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_reference(dtype, layout, kind):
    rng = np.random.default_rng(1)
    for shape, axis in cases(large=layout in ("C", "F")):
        x = with_layout(make_values(rng, shape, axis, kind), layout, dtype)
        gamma, beta = channel_params(rng, shape[axis], dtype)
        for g, b in [(gamma, beta), (None, None)]:
            y, mean, var = ops.batch_norm_forward(x, g, b, axis=axis, epsilon=1e-3)
            ry, rmean, rvar = reference.batch_norm_forward(x, g, b, axis, 1e-3)
            check(
                "batch_norm_forward",
                dtype,
                shape,
                axis,
                layout,
                kind,
                [("y", y, ry), ("mean", mean, rmean), ("var", var, rvar)],
            )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inference_matches_reference(dtype, layout, kind):
    rng = np.random.default_rng(2)
    for shape, axis in cases(large=layout in ("C", "F")):
        values = make_values(rng, shape, axis, kind)
        x = with_layout(values, layout, dtype)
        channels = shape[axis]
        gamma, beta = channel_params(rng, channels, dtype)
        # Moving statistics near (not at) the batch's, as after some training.
        flat = reference._channel_view(values, axis)
        mean = (flat.mean(0) + 0.1 * flat.std(0) * rng.standard_normal(channels)).astype(dtype)
        var = (flat.var(0) * rng.uniform(0.8, 1.25, channels)).astype(dtype)
        y = ops.batch_norm_inference(x, gamma, beta, mean, var, axis=axis, epsilon=1e-3)
        ry = reference.batch_norm_inference(x, gamma, beta, mean, var, axis, 1e-3)
        check("batch_norm_inference", dtype, shape, axis, layout, kind, [("y", y, ry)])


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_matches_reference(dtype, layout, kind, training):
    rng = np.random.default_rng(3)
    name = "batch_norm_backward" if training else "batch_norm_inference_backward"
    kernel = getattr(ops, name)
    twin = getattr(reference, name)
    for shape, axis in cases(large=layout in ("C", "F")):
        x = with_layout(make_values(rng, shape, axis, kind), layout, dtype)
        dy = with_layout(rng.standard_normal(shape), layout, dtype)
        gamma, _ = channel_params(rng, shape[axis], dtype)
        # The statistics the forward returned (as the framework passes them), in x's dtype.
        _, mean, var = ops.batch_norm_forward(x, None, None, axis=axis, epsilon=1e-3)
        for g in (gamma, None):
            dx, dgamma, dbeta = kernel(dy, x, g, mean, var, axis=axis, epsilon=1e-3)
            rdx, rdgamma, rdbeta = twin(dy, x, g, mean, var, axis, 1e-3)
            check(
                name,
                dtype,
                shape,
                axis,
                layout,
                kind,
                [("dx", dx, rdx), ("dgamma", dgamma, rdgamma), ("dbeta", dbeta, rdbeta)],
            )


@pytest.mark.parametrize("count", [None, 1, 2, 37])
@pytest.mark.parametrize("momentum", [0.0, 0.99, 1.0, 0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_update_moving_stats_matches_reference(dtype, momentum, count):
    rng = np.random.default_rng(4)
    channels = 13
    moving_mean = rng.standard_normal(channels).astype(dtype)
    moving_var = rng.uniform(0.5, 2, channels).astype(dtype)
    mean = rng.standard_normal(channels).astype(dtype)
    var = rng.uniform(0, 3, channels).astype(dtype)
    rmean, rvar = reference.update_moving_stats(moving_mean, moving_var, mean, var, momentum, count)
    assert (
        ops.update_moving_stats(moving_mean, moving_var, mean, var, momentum=momentum, count=count)
        is None
    )
    check(
        "update_moving_stats",
        dtype,
        (channels,),
        0,
        "C",
        f"momentum={momentum} count={count}",
        [("moving_mean", moving_mean, rmean), ("moving_var", moving_var, rvar)],
    )
    assert np.isfinite(moving_var).all()


@pytest.mark.parametrize("pattern", ["trend", "jump", "outlier_first"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_statistics_of_non_stationary_channels(dtype, pattern):
    """The statistics are summed block by block about a moving shift (the previous block's mean):
    channels whose level drifts or jumps along the batch, or whose first value (the pivot) is an
    outlier, must come out as accurately as i.i.d. ones."""
    rng = np.random.default_rng(13)
    for shape, axis in [((6000, 7), -1), ((40, 3, 700), 1), ((9, 5, 5000), 1)]:
        x = rng.standard_normal(shape)
        m = x.size // shape[axis]
        along = np.moveaxis(x, axis, -1).reshape(m, shape[axis])  # a view: edits reach x
        position = np.arange(m)[:, None]
        if pattern == "trend":
            along += position * (1e3 / m)
        elif pattern == "jump":
            along += np.where(position < m // 3, 0.0, 1e6)
        else:
            along[0] = 1e5
        x = x.astype(dtype)
        y, mean, var = ops.batch_norm_forward(x, None, None, axis=axis)
        ry, rmean, rvar = reference.batch_norm_forward(x, None, None, axis, 1e-3)
        check(
            "batch_norm_forward",
            dtype,
            shape,
            axis,
            "C",
            pattern,
            [("y", y, ry), ("mean", mean, rmean), ("var", var, rvar)],
        )


# ---- gradients by finite differences (float64, random upstream gradients) ----------------------

GRAD_CASES = [((6, 3), -1), ((2, 3, 4), 1), ((3, 2, 2, 3), 0), ((4, 5), 0), ((2, 5, 3, 2), 3)]


@pytest.mark.parametrize("shape, axis", GRAD_CASES)
@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
def test_backward_matches_finite_differences(shape, axis, training):
    """L = Σ dy·y with a random dy: the analytic dx, dγ, dβ against central differences.

    h = 1e-6: truncation O(h²·|f'''|) ~ 1e-12 and rounding ~ 1e-16·|L|/h ~ 1e-10 (|L| ~ 10), so
    agreement to 1e-7 of max|grad| is expected; 1e-6 leaves margin and still catches any wrong term
    (those are O(1)).
    """
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape) * 2 + 1
    dy = rng.standard_normal(shape)
    channels = shape[axis]
    gamma = rng.uniform(0.5, 2, channels)
    beta = rng.standard_normal(channels)
    eps = 1e-3
    if training:

        def loss():
            return float(
                (dy * ops.batch_norm_forward(x, gamma, beta, axis=axis, epsilon=eps)[0]).sum()
            )

        _, mean, var = ops.batch_norm_forward(x, gamma, beta, axis=axis, epsilon=eps)
        dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, var, axis=axis, epsilon=eps)
    else:
        mean = rng.standard_normal(channels)
        var = rng.uniform(0.5, 2, channels)

        def loss():
            return float(
                (
                    dy * ops.batch_norm_inference(x, gamma, beta, mean, var, axis=axis, epsilon=eps)
                ).sum()
            )

        dx, dgamma, dbeta = ops.batch_norm_inference_backward(
            dy, x, gamma, mean, var, axis=axis, epsilon=eps
        )
    for label, analytic, v in [("dx", dx, x), ("dgamma", dgamma, gamma), ("dbeta", dbeta, beta)]:
        numeric = numeric_gradient(loss, v)
        assert np.abs(numeric).max() > 1e-3, f"{label}: degenerate check (gradient ~ 0)"
        err = relative_error(analytic, numeric)
        assert err < 1e-6, (
            f"{label} (training={training}, shape={shape}, axis={axis}): rel. error {err:.3g}"
        )


def test_training_dx_is_zero_for_constant_upstream_gradient():
    """Why the checks above use a random dy: with a constant dy the training dx vanishes."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 5))
    _, mean, var = ops.batch_norm_forward(x, None, None)
    dx, _, _ = ops.batch_norm_backward(np.full_like(x, 0.7), x, None, mean, var)
    assert np.abs(dx).max() < 1e-13  # Σ over rounding of values of size 0.7·m/m


# ---- semantics ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_output_is_normalised_per_channel(dtype):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((64, 6, 6, 5)) * 10 + 5).astype(dtype)
    y, mean, var = ops.batch_norm_forward(x, None, None, axis=-1, epsilon=0.0)
    flat = y.reshape(-1, 5).astype(np.float64)
    # Exactly 0 and 1 up to float rounding (ε = 0): 1e-5 covers float32's 6e-8 per value.
    assert np.abs(flat.mean(0)).max() < 1e-5
    assert np.abs(flat.std(0) - 1).max() < 1e-5
    np.testing.assert_allclose(mean, x.reshape(-1, 5).astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(var, x.reshape(-1, 5).astype(np.float64).var(0), rtol=1e-5)


def test_one_value_per_channel_gives_beta_and_zero_variance():
    x = np.array([[3.0, -2.0, 7.5]])
    beta = np.array([0.5, -1.0, 2.0])
    y, mean, var = ops.batch_norm_forward(x, np.array([2.0, 3.0, 4.0]), beta)
    np.testing.assert_array_equal(var, 0.0)
    np.testing.assert_array_equal(mean, x[0])
    np.testing.assert_array_equal(y[0], beta)
    moving_mean, moving_var = np.zeros(3), np.ones(3)
    ops.update_moving_stats(moving_mean, moving_var, mean, var, momentum=0.5, count=1)
    np.testing.assert_array_equal(moving_var, 0.5)  # count 1: no m/(m-1) correction, no NaN
    for dtype in (np.float32, np.float64):  # the output does not depend on x: dx is exactly 0
        xd = x.astype(dtype)
        _, md, vd = ops.batch_norm_forward(xd, None, None)
        dx, _, dbeta = ops.batch_norm_backward(
            np.array([[0.3, -1.7, 2.2]], dtype), xd, np.full(3, 5, dtype), md, vd
        )
        np.testing.assert_array_equal(dx, 0.0)
        np.testing.assert_allclose(dbeta, [0.3, -1.7, 2.2], rtol=1e-7)


def test_zero_epsilon_on_a_constant_channel_gives_beta_not_nan():
    x = np.zeros((10, 2))
    x[:, 0] = 2.5  # exactly representable: the mean is exact and the variance exactly 0
    x[:, 1] = np.arange(10)
    beta = np.array([0.25, 0.0])
    y, mean, var = ops.batch_norm_forward(x, None, beta, epsilon=0.0)
    assert var[0] == 0.0
    np.testing.assert_array_equal(y[:, 0], 0.25)
    dx, dgamma, dbeta = ops.batch_norm_backward(np.ones_like(x), x, None, mean, var, epsilon=0.0)
    np.testing.assert_array_equal(dx[:, 0], 0.0)
    assert np.isfinite(dx).all() and np.isfinite(dgamma).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("axis", [1, -1])
def test_nan_and_inf_stay_in_their_channel(bad, axis):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((40, 4, 30)).astype(np.float32)  # (outer, C, inner) for axis=1
    if axis == -1:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    clean = x.copy()
    index = [3, 5, 2]
    index[axis] = 2
    x[tuple(index)] = bad
    y, mean, var = ops.batch_norm_forward(x, None, None, axis=axis)
    yc, meanc, varc = ops.batch_norm_forward(clean, None, None, axis=axis)
    others = [0, 1, 3]
    np.testing.assert_array_equal(np.take(y, others, axis=axis), np.take(yc, others, axis=axis))
    np.testing.assert_array_equal(mean[others], meanc[others])
    assert np.isnan(mean[2]) or np.isinf(mean[2])
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, None, mean, var, axis=axis)
    dxc, dgammac, dbetac = ops.batch_norm_backward(dy, clean, None, meanc, varc, axis=axis)
    np.testing.assert_array_equal(np.take(dx, others, axis=axis), np.take(dxc, others, axis=axis))
    np.testing.assert_array_equal(dgamma[others], dgammac[others])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((40, 3), -1), ((4, 3, 10), 1), ((70000, 3), -1)])
def test_non_finite_channel_has_nan_variance_like_numpy(bad, dtype, shape, axis):
    # NumPy's variance of a channel holding NaN or ±Inf is NaN (Inf − Inf); a variance of 0 would
    # pass the channel off as constant. The mean is NaN too (documented: the statistics of a
    # non-finite channel are NaN; NumPy gives ±Inf for an Inf channel), y is NaN throughout that
    # channel, and the other channels match the NumPy twin. (70000, 3): several chunks.
    x = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    index = [0] * len(shape)
    index[axis] = 1
    x[tuple(index)] = bad
    y, mean, var = ops.batch_norm_forward(x, None, None, axis=axis)
    with np.errstate(invalid="ignore"):
        y_ref, mean_ref, var_ref = reference.batch_norm_forward(
            x.astype(np.float64), None, None, axis=axis
        )
    assert np.isnan(var_ref[1])  # the NumPy behaviour matched here
    assert np.isnan(var[1]) and np.isnan(mean[1])
    assert np.isnan(np.take(y, 1, axis=axis)).all()
    tol = TOLERANCE[dtype]
    for c in (0, 2):
        assert abs(mean[c] - mean_ref[c]) <= tol * (1 + abs(mean_ref[c]))
        assert abs(var[c] - var_ref[c]) <= tol * var_ref[c]
        yc, yc_ref = np.take(y, c, axis=axis), np.take(y_ref, c, axis=axis)
        assert np.abs(yc - yc_ref).max() <= tol * np.abs(yc_ref).max()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_output(dtype):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((50, 7)).astype(dtype)
    expected, mean, var = ops.batch_norm_forward(x, None, None)
    buffer = x.copy()
    y, _, _ = ops.batch_norm_forward(buffer, None, None, out=buffer)
    assert y is buffer
    np.testing.assert_array_equal(buffer, expected)
    dy = rng.standard_normal(x.shape).astype(dtype)
    expected_dx = ops.batch_norm_backward(dy, x, None, mean, var)[0]
    dy_buffer = dy.copy()
    dx = ops.batch_norm_backward(dy_buffer, x, None, mean, var, out=dy_buffer)[0]
    assert dx is dy_buffer
    np.testing.assert_array_equal(dx, expected_dx)
    expected_dx = ops.batch_norm_inference_backward(dy, x, None, mean, var)[0]
    dy_buffer = dy.copy()
    np.testing.assert_array_equal(
        ops.batch_norm_inference_backward(dy_buffer, x, None, mean, var, out=dy_buffer)[0],
        expected_dx,
    )
    expected_y = ops.batch_norm_inference(x, None, None, mean, var)
    buffer = x.copy()
    np.testing.assert_array_equal(
        ops.batch_norm_inference(buffer, None, None, mean, var, out=buffer), expected_y
    )


def test_empty_inputs():
    # No channels: empty statistics. No values per channel: the training forward is undefined.
    y, mean, var = ops.batch_norm_forward(np.zeros((4, 0)), None, None)
    assert y.shape == (4, 0) and mean.shape == (0,) and var.shape == (0,)
    with pytest.raises(ValueError, match="batch_norm_forward: x has no values per channel"):
        ops.batch_norm_forward(np.zeros((0, 3)), None, None)
    y = ops.batch_norm_inference(np.zeros((0, 3)), None, None, np.zeros(3), np.ones(3))
    assert y.shape == (0, 3)
    dx, dgamma, dbeta = ops.batch_norm_backward(
        np.zeros((0, 3)), np.zeros((0, 3)), None, np.zeros(3), np.ones(3)
    )
    assert dx.shape == (0, 3)
    np.testing.assert_array_equal(dgamma, 0.0)
    np.testing.assert_array_equal(dbeta, 0.0)


def test_moving_statistics_converge():
    """Keras's test: after many steps on N(5, 10²) the moving statistics approach 5 and 100."""
    rng = np.random.default_rng(10)
    moving_mean, moving_var = np.zeros(3, np.float32), np.ones(3, np.float32)
    for _ in range(600):
        x = (rng.standard_normal((256, 3)) * 10 + 5).astype(np.float32)
        _, mean, var = ops.batch_norm_forward(x, None, None)
        ops.update_moving_stats(moving_mean, moving_var, mean, var, momentum=0.99)
    # Exponential average over ~100 batches of 256: std of the mean ~ 10/√25600 ≈ 0.06; of the
    # variance ~ 100·√(2/25600) ≈ 0.9. Bounds at ~5 standard deviations.
    np.testing.assert_allclose(moving_mean, 5, atol=0.3)
    np.testing.assert_allclose(moving_var, 100 * 255 / 256, atol=5)


def test_momentum_zero_inference_equals_training_output():
    """Keras's test: with momentum 0 the moving statistics are the batch's, so inference right
    after a training step reproduces the training output (given the unbiased=False default)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((32, 4, 4, 6)) * 3 + 1
    gamma, beta = rng.uniform(0.5, 2, 6), rng.standard_normal(6)
    y, mean, var = ops.batch_norm_forward(x, gamma, beta)
    moving_mean, moving_var = np.zeros(6), np.ones(6)
    ops.update_moving_stats(moving_mean, moving_var, mean, var, momentum=0.0)
    np.testing.assert_allclose(
        ops.batch_norm_inference(x, gamma, beta, moving_mean, moving_var), y, rtol=0, atol=1e-13
    )


def test_thread_count_does_not_change_results():
    """Chunking depends on sizes only and chunks merge in order: results are bitwise the same for
    every thread count (a stronger property than the 'beyond rounding' the spec asks)."""
    rng = np.random.default_rng(12)
    arrays = [
        ((rng.standard_normal((32, 16, 16, 96)) + 3).astype(np.float32), -1),
        ((rng.standard_normal((16, 24, 20, 20)) + 3).astype(np.float32), 1),
        (rng.standard_normal((4000, 70)), 1),
    ]
    before = bnpy.get_num_threads()
    try:
        results = {}
        for threads in (1, 2, 3):
            bnpy.set_num_threads(threads)
            out = []
            for x, axis in arrays:
                y, mean, var = ops.batch_norm_forward(x, None, None, axis=axis)
                dy = np.cos(x)
                out += [y, mean, var]
                out += list(ops.batch_norm_backward(dy, x, None, mean, var, axis=axis))
                out += list(ops.batch_norm_inference_backward(dy, x, None, mean, var, axis=axis))
                out.append(ops.batch_norm_inference(x, None, None, mean, var, axis=axis))
            results[threads] = out
        for threads in (2, 3):
            for a, b in zip(results[1], results[threads]):
                np.testing.assert_array_equal(a, b)
    finally:
        bnpy.set_num_threads(before)
