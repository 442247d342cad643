"""The synchronized batch-norm phases of bnpy.ops (csrc/bn_sync.c): each against a float64 NumPy
twin below, a batch split into shards against the unsplit batch, thread-count independence, and
bad input (the error, and nothing written)."""

import numpy as np
import pytest
import reference

import bnpy
from bnpy import ops

# ---- float64 NumPy twins --------------------------------------------------------------------


def local_stats_twin(x, axis):
    flat = reference._channel_view(x, axis)  # (m, C) float64
    mean = flat.mean(axis=0) if len(flat) else np.zeros(flat.shape[1])
    return len(flat), mean, ((flat - mean) ** 2).sum(axis=0)


def merge_twin(counts, means, m2s):
    """The whole batch's statistics from the definition: Σ n_r·mean_r / m, and M2 from the
    parallel-axis theorem Σ (M2_r + n_r·(mean_r − mean)²), in float64."""
    counts = np.asarray(counts, np.float64)
    m = counts.sum()
    mean = (counts[:, None] * means).sum(axis=0) / m
    m2 = (m2s + counts[:, None] * (means - mean) ** 2).sum(axis=0)
    return m, mean, m2 / m


def normalize_twin(x, gamma, beta, mean, var, axis, epsilon):
    x = np.asarray(x, np.float64)
    b = lambda v: reference._broadcast(v, x.ndim, axis)  # noqa: E731
    channels = x.shape[axis]
    scale = reference._ones_if_none(gamma, channels) * reference._invstd(var, epsilon)
    return (x - b(mean)) * b(scale) + b(reference._zeros_if_none(beta, channels))


def grad_sums_twin(dy, x, mean, axis):
    d = reference._channel_view(dy, axis)
    v = reference._channel_view(x, axis)
    return d.sum(axis=0), (d * (v - mean)).sum(axis=0)


# ---- the phases against their twins -----------------------------------------------------------

SHAPES_AXES = [((7, 5), -1), ((4, 6, 6, 3), -1), ((4, 3, 5, 5), 1), ((2, 3, 4), 0), ((9,), 0)]
# several chunks of the outer range, and channels in vectors of 4 with a tail (35), or segments
# of 144 values (vectors of 8 with a tail): the kernels' vector loops and their per-chunk merges
LARGE_SHAPES_AXES = [((40, 12, 12, 35), -1), ((40, 35, 12, 12), 1)]


def random_case(shape, dtype, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = (offset + rng.standard_normal(shape) * 2.0).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, dy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", SHAPES_AXES + LARGE_SHAPES_AXES)
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_local_stats_match_twin(dtype, shape, axis, offset):
    x, _ = random_case(shape, dtype, offset)
    n, mean, m2 = ops.batch_norm_local_stats(x, axis=axis)
    n_ref, mean_ref, m2_ref = local_stats_twin(x, axis)
    assert n == n_ref and mean.dtype == m2.dtype == np.float64
    # two passes in double on the (exactly converted) data: rounding of double, ~1e-15 relative
    np.testing.assert_allclose(mean, mean_ref, rtol=0, atol=1e-12 * (abs(offset) + 2))
    np.testing.assert_allclose(m2, m2_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", LARGE_SHAPES_AXES)
def test_local_stats_at_a_jump_in_level(dtype, shape, axis):
    """The statistics are one pass about a shift, the mean of each chunk's first 16 values of a
    channel. Here channel 0's first 16 values sit at -1e6 and the rest at 1e4 + N(0, 2): the
    first chunk's mean is then farther than 2σ from its shift, the one-pass sums are dropped and
    the channel is summed again in two passes, which must give the twin's statistics all the
    same. A NaN in one channel makes that channel's statistics NaN and no other's."""
    x, _ = random_case(shape, dtype, offset=1e4)
    channels = x.shape[axis]
    if axis == 1:  # channels first: the first segment of channel 0
        x[0, 0].reshape(-1)[:16] = -1e6
    else:  # channels last: channel 0 of the first rows
        x.reshape(-1, channels)[:16, 0] = -1e6
    nan_at = [1] + [0] * (x.ndim - 1)
    nan_at[axis] = 1
    x[tuple(nan_at)] = np.nan  # in channel 1
    n, mean, m2 = ops.batch_norm_local_stats(x, axis=axis)
    n_ref, mean_ref, m2_ref = local_stats_twin(x, axis)
    assert np.isnan(mean[1]) and np.isnan(m2[1])
    keep = np.arange(channels) != 1
    np.testing.assert_allclose(mean[keep], mean_ref[keep], rtol=0, atol=1e-12 * 1e6)
    np.testing.assert_allclose(m2[keep], m2_ref[keep], rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", SHAPES_AXES[1:4])
def test_shards_merged_equal_the_whole_batch(dtype, shape, axis):
    """Shards of the batch along the sample axis (axis 0 unless that is the channel axis), merged
    in order, give the statistics of the whole batch."""
    x, _ = random_case((8,) + shape[1:] if axis != 0 else shape, dtype, offset=100.0)
    split_axis = 1 if axis % x.ndim == 0 else 0
    shards = np.array_split(x, [1, 3, 3, 6][: x.shape[split_axis] - 1], axis=split_axis)
    stats = [ops.batch_norm_local_stats(s, axis=axis) for s in shards]
    counts = np.array([s[0] for s in stats], np.float64)
    means = np.stack([s[1] for s in stats])
    m2s = np.stack([s[2] for s in stats])
    m, mean, var = ops.batch_norm_merge_stats(counts, means, m2s)
    n_all, mean_all, m2_all = local_stats_twin(x, axis)
    assert m == n_all and isinstance(m, int)
    np.testing.assert_allclose(mean, mean_all, rtol=1e-13)
    np.testing.assert_allclose(var, m2_all / n_all, rtol=1e-11)
    m_t, mean_t, var_t = merge_twin(counts, means, m2s)
    np.testing.assert_allclose(mean, mean_t, rtol=1e-13)
    np.testing.assert_allclose(var, var_t, rtol=1e-11)
    # an empty shard (count 0) adds nothing; the same list gives the same bits
    with_empty = ops.batch_norm_merge_stats(
        np.insert(counts, 1, 0.0), np.insert(means, 1, 5.0, axis=0), np.insert(m2s, 1, 5.0, axis=0)
    )
    assert with_empty[0] == m
    np.testing.assert_array_equal(with_empty[1], mean)
    np.testing.assert_array_equal(with_empty[2], var)
    again = ops.batch_norm_merge_stats(counts, means, m2s)
    assert again[1].tobytes() == mean.tobytes() and again[2].tobytes() == var.tobytes()


def test_merge_of_nothing_is_zero():
    m, mean, var = ops.batch_norm_merge_stats(np.zeros(2), np.ones((2, 3)), np.ones((2, 3)))
    assert m == 0
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_array_equal(var, 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,axis", SHAPES_AXES + LARGE_SHAPES_AXES)
@pytest.mark.parametrize("affine", [True, False])
def test_normalize_and_backward_match_twins(dtype, shape, axis, affine):
    x, dy = random_case(shape, dtype, offset=1e4)
    channels = x.shape[axis]
    rng = np.random.default_rng(3)
    gamma = (1 + rng.random(channels)).astype(dtype) if affine else None
    beta = rng.standard_normal(channels).astype(dtype) if affine else None
    n, mean, m2 = ops.batch_norm_local_stats(x, axis=axis)
    var = m2 / n
    y = ops.batch_norm_normalize(x, gamma, beta, mean, var, axis=axis, epsilon=1e-3)
    y_ref = normalize_twin(x, gamma, beta, mean, var, axis, 1e-3)
    # float32: one rounding of each O(1) output (x is exact in double); float64: a few of double's
    tol = 1e-6 if dtype == np.float32 else 1e-11
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=tol * (1 + np.abs(y_ref).max()))
    sum_dy, sum_dyxc = ops.batch_norm_grad_sums(dy, x, mean, axis=axis)
    s1, s2 = grad_sums_twin(dy, x, mean, axis)
    scale = np.abs(reference._channel_view(dy, axis)).sum(axis=0)
    np.testing.assert_allclose(sum_dy, s1, rtol=0, atol=1e-13 * scale.max())
    np.testing.assert_allclose(sum_dyxc, s2, rtol=0, atol=1e-13 * 4 * scale.max())
    dx = ops.batch_norm_backward_apply(
        dy, x, gamma, mean, var, sum_dy, sum_dyxc, n, axis=axis, epsilon=1e-3
    )
    # with one shard this is the ordinary training backward (float64 twin from reference.py)
    dx_ref, dgamma_ref, dbeta_ref = reference.batch_norm_backward(
        dy, x, gamma, mean, var, axis=axis, epsilon=1e-3
    )
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=tol * (1 + np.abs(dx_ref).max()))
    np.testing.assert_allclose(sum_dy, dbeta_ref, rtol=0, atol=1e-12 * scale.max())
    np.testing.assert_allclose(
        sum_dyxc * reference._invstd(var, 1e-3), dgamma_ref, rtol=0, atol=1e-10 * scale.max()
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sharded_backward_equals_whole_batch_backward(dtype):
    """Two shards of a (16, 4, 4, 8) batch: each normalises with the merged statistics and
    applies the backward with the summed gradient sums; together they are the forward and the
    backward of the whole batch (the ordinary kernels, and the float64 twin)."""
    x, dy = random_case((16, 4, 4, 8), dtype, offset=3.0, seed=5)
    gamma = np.linspace(0.5, 2, 8).astype(dtype)
    beta = np.linspace(-1, 1, 8).astype(dtype)
    halves = [(x[:7], dy[:7]), (x[7:], dy[7:])]
    stats = [ops.batch_norm_local_stats(xs) for xs, _ in halves]
    m, mean, var = ops.batch_norm_merge_stats(
        [s[0] for s in stats], np.stack([s[1] for s in stats]), np.stack([s[2] for s in stats])
    )
    sums = [ops.batch_norm_grad_sums(d, xs, mean) for xs, d in halves]
    s1 = sums[0][0] + sums[1][0]
    s2 = sums[0][1] + sums[1][1]
    y = np.concatenate([ops.batch_norm_normalize(xs, gamma, beta, mean, var) for xs, _ in halves])
    dx = np.concatenate(
        [ops.batch_norm_backward_apply(d, xs, gamma, mean, var, s1, s2, m) for xs, d in halves]
    )
    y_ref, mean_ref, var_ref = reference.batch_norm_forward(x, gamma, beta)
    dx_ref, dgamma_ref, dbeta_ref = reference.batch_norm_backward(dy, x, gamma, mean_ref, var_ref)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-13)
    np.testing.assert_allclose(var, var_ref, rtol=1e-12)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=tol * np.abs(y_ref).max())
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=tol * np.abs(dx_ref).max())
    np.testing.assert_allclose(s1, dbeta_ref, rtol=0, atol=1e-12 * np.abs(dy).sum())
    np.testing.assert_allclose(
        s2 / np.sqrt(var + 1e-3), dgamma_ref, rtol=0, atol=1e-12 * np.abs(dy).sum()
    )
    # and the C training kernels agree on the unsplit batch
    y_c, _, _ = ops.batch_norm_forward(x, gamma, beta)
    np.testing.assert_allclose(y, y_c, rtol=0, atol=tol * np.abs(y_ref).max())


def test_normalize_keeps_float64_statistics_at_large_offsets():
    """float32 data at 1e4 + N(0, 1): the statistics in float64 give y within float32 rounding
    of the twin; the same statistics rounded to float32 for batch_norm_inference move the mean
    by up to half an ulp of 1e4 (~5e-4 σ), which this tolerance would catch."""
    rng = np.random.default_rng(2)
    x = (1e4 + rng.standard_normal((4096, 4))).astype(np.float32)
    n, mean, m2 = ops.batch_norm_local_stats(x)
    var = m2 / n
    y = ops.batch_norm_normalize(x, None, None, mean, var, epsilon=0.0)
    y_ref = normalize_twin(x, None, None, mean, var, -1, 0.0)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=5e-7 * np.abs(y_ref).max())
    y32 = ops.batch_norm_inference(
        x, None, None, mean.astype(np.float32), var.astype(np.float32), epsilon=0.0
    )
    assert np.abs(y32 - y_ref).max() > 10 * 5e-7 * np.abs(y_ref).max()


@pytest.mark.parametrize("axis,shape", [(-1, (64, 16, 16, 24)), (1, (64, 24, 16, 16))])
def test_results_do_not_depend_on_the_thread_count(axis, shape):
    x, dy = random_case(shape, np.float32, offset=2.0, seed=7)
    gamma = np.linspace(0.5, 2, 24).astype(np.float32)
    results = []
    previous = bnpy.get_num_threads()
    try:
        for threads in (1, 2, 3):
            bnpy.set_num_threads(threads)
            n, mean, m2 = ops.batch_norm_local_stats(x, axis=axis)
            var = m2 / n
            y = ops.batch_norm_normalize(x, gamma, None, mean, var, axis=axis)
            s1, s2 = ops.batch_norm_grad_sums(dy, x, mean, axis=axis)
            dx = ops.batch_norm_backward_apply(dy, x, gamma, mean, var, s1, s2, n, axis=axis)
            results.append(b"".join(a.tobytes() for a in (mean, m2, y, s1, s2, dx)))
    finally:
        bnpy.set_num_threads(previous)
    assert results[0] == results[1] == results[2]


def test_in_place_outputs():
    x, dy = random_case((6, 5), np.float64)
    n, mean, m2 = ops.batch_norm_local_stats(x)
    var = m2 / n
    y = ops.batch_norm_normalize(x, None, None, mean, var)
    x_copy = x.copy()
    assert ops.batch_norm_normalize(x_copy, None, None, mean, var, out=x_copy) is x_copy
    np.testing.assert_array_equal(x_copy, y)
    s1, s2 = ops.batch_norm_grad_sums(dy, x, mean)
    dx = ops.batch_norm_backward_apply(dy, x, None, mean, var, s1, s2, n)
    dy_copy = dy.copy()
    ops.batch_norm_backward_apply(dy_copy, x, None, mean, var, s1, s2, n, out=dy_copy)
    np.testing.assert_array_equal(dy_copy, dx)


# ---- bad input -----------------------------------------------------------------------------------


def bad_cases():
    x = np.ones((4, 3), np.float32)
    v64 = np.zeros(3)
    return [
        ("batch_norm_local_stats", (x.astype(np.int32),), TypeError, "x must be float32 or"),
        ("batch_norm_local_stats", (x, 2), ValueError, "axis 2 is out of range"),
        ("batch_norm_local_stats", (x, 1.5), TypeError, "axis"),
        (
            "batch_norm_merge_stats",
            ([1.0, -1.0], np.ones((2, 3)), np.ones((2, 3))),
            ValueError,
            "counts must be finite and >= 0",
        ),
        (
            "batch_norm_merge_stats",
            ([1.0], np.ones((2, 3)), np.ones((2, 3))),
            ValueError,
            r"means must have shape \(1, channels\)",
        ),
        (
            "batch_norm_merge_stats",
            ([1.0, 1.0], np.ones((2, 3)), np.ones((2, 4))),
            ValueError,
            r"m2s must have shape \(2, 3\)",
        ),
        (
            "batch_norm_merge_stats",
            ([1.0], np.ones((1, 3), np.float32), np.ones((1, 3))),
            TypeError,
            "means must be float64",
        ),
        (
            "batch_norm_normalize",
            (x, None, None, v64.astype(np.float32), v64),
            TypeError,
            "mean must be float64",
        ),
        (
            "batch_norm_normalize",
            (x, None, None, np.zeros(4), v64),
            ValueError,
            r"mean must have shape \(3,\)",
        ),
        (
            "batch_norm_normalize",
            (x, np.ones(3), None, v64, v64),
            TypeError,
            "gamma must be float32",
        ),
        (
            "batch_norm_normalize",
            (x, None, None, v64, v64, -1, -1.0),
            ValueError,
            "epsilon must be a finite number >= 0",
        ),
        ("batch_norm_grad_sums", (x[:2], x, v64), ValueError, "x must have the shape of dy"),
        (
            "batch_norm_backward_apply",
            (x, x, None, v64, v64, v64, v64, 3),
            ValueError,
            "count .* must be at least this shard's 4",
        ),
        (
            "batch_norm_backward_apply",
            (x, x, None, v64, v64, v64, v64, float("nan")),
            ValueError,
            "count must be a finite number",
        ),
    ]


@pytest.mark.parametrize("name,args,error,message", bad_cases())
def test_bad_input_raises_a_clear_error(name, args, error, message):
    with pytest.raises(error, match="^" + name + ": .*" + message):
        getattr(ops, name)(*args)


def test_bad_input_writes_nothing():
    buffer = np.ones((5, 3), np.float32)
    x = buffer[:4]
    out = np.full((4, 3), 7.0, np.float32)
    with pytest.raises(ValueError, match="count"):
        ops.batch_norm_backward_apply(
            x, x, None, np.zeros(3), np.ones(3), np.zeros(3), np.zeros(3), 2, out=out
        )
    with pytest.raises(TypeError, match="var must be float64"):
        ops.batch_norm_normalize(x, None, None, np.zeros(3), np.ones(3, np.float32), out=out)
    with pytest.raises(ValueError, match="out must not overlap"):
        ops.batch_norm_normalize(x, None, None, np.zeros(3), np.ones(3), out=buffer[1:])
    np.testing.assert_array_equal(out, 7.0)
    np.testing.assert_array_equal(buffer, 1.0)
