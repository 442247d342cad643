"""Ghost (virtual) batches (BatchNormalization(virtual_batch_size=V)): the ops against plain
batch norm on each virtual batch and against the float64 twins of tests/reference_bn_variants.py,
the ghost kernel on hard data, bad arguments, then the layer, and against tf.keras where it is
importable."""

import numpy as np
import pytest
import reference as ref
import reference_bn_variants as twin
from bn_variant_checks import TOL, compare_with_tf_keras, random_data
from reference_layers import check_layer_gradients, requires_bn

from bnpy import ops
from bnpy.layers import BatchNormalization, Dense
from bnpy.models import Sequential
from bnpy.optimizers import SGD

pytestmark = requires_bn


# ---- ghost (virtual) batches ------------------------------------------------------------------


# (N, C) and channels-first run as one training forward on a (V, G·C, ...) view; the others on the
# ghost kernel (csrc/bn_ghost.h), rows layout (inner 1) and segments layout (inner > 1).
GHOST_CASES = [
    ((12, 5), -1, 3),
    ((6, 4), -1, 6),
    ((6, 4, 2, 3), 1, 2),
    ((8, 3, 3, 4), -1, 2),
    ((6, 4, 5), -1, 3),
    ((4, 2, 3, 5), 2, 2),
    ((8, 3, 3, 4), -1, 1),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axis, v", GHOST_CASES)
def test_ghost_batches_are_batch_norm_on_each_virtual_batch(shape, axis, v, dtype):
    """Virtual batch g of G = N/V holds samples g, g + G, … (tf.keras's grouping); each is
    normalized exactly as batch_norm_forward normalizes it alone."""
    rng = np.random.default_rng(14)
    x = random_data(rng, shape, dtype)
    dy = random_data(rng, shape, dtype, offset=0.0, scale=1.0)
    gamma = rng.uniform(0.5, 1.5, shape[axis]).astype(dtype)
    beta = rng.standard_normal(shape[axis]).astype(dtype)
    y, mean, var = ops.ghost_batch_norm_forward(x, gamma, beta, v, axis=axis)
    dx, dgamma, dbeta = ops.ghost_batch_norm_backward(dy, x, gamma, mean, var, v, axis=axis)
    groups = shape[0] // v
    assert mean.shape == var.shape == (groups, shape[axis])
    dgamma_sum, dbeta_sum = 0.0, 0.0
    for g in range(groups):
        part = slice(g, None, groups)
        y_part, mean_part, var_part = ops.batch_norm_forward(x[part], gamma, beta, axis=axis)
        # the same kernel on a different memory layout: sums in another order
        np.testing.assert_allclose(y[part], y_part, **TOL[dtype])
        np.testing.assert_allclose(mean[g], mean_part, **TOL[dtype])
        np.testing.assert_allclose(var[g], var_part, **TOL[dtype])
        dx_part, dg, db = ops.batch_norm_backward(
            dy[part], x[part], gamma, mean_part, var_part, axis=axis
        )
        np.testing.assert_allclose(dx[part], dx_part, **TOL[dtype])
        dgamma_sum = dgamma_sum + dg.astype(np.float64)
        dbeta_sum = dbeta_sum + db.astype(np.float64)
    np.testing.assert_allclose(dgamma, dgamma_sum, **TOL[dtype])
    np.testing.assert_allclose(dbeta, dbeta_sum, **TOL[dtype])
    # and against the float64 twin
    expected = twin.ghost_batch_norm_forward(x, gamma, beta, v, axis)
    for a, b in zip((y, mean, var), expected):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **TOL[dtype])
    dexpected = twin.ghost_batch_norm_backward(dy, x, gamma, mean, var, v, axis)
    for a, b in zip((dx, dgamma, dbeta), dexpected):
        assert a.dtype == dtype
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype]["atol"] * scale)


@pytest.mark.parametrize("axis", [-1, 2])
def test_ghost_kernel_on_hard_data_threads_and_in_place(axis):
    """Large samples (several chunks per sample), an offset of 1e4 in float32, two thread counts
    (bitwise the same), in place, and a NaN confined to its virtual batch and channel."""
    import bnpy

    rng = np.random.default_rng(23)
    x = (rng.standard_normal((8, 40, 30, 24)) + 1e4).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, x.shape[axis]).astype(np.float32)
    previous = bnpy.set_num_threads(1)
    try:
        one = ops.ghost_batch_norm_forward(x, gamma, None, 4, axis=axis)
        bnpy.set_num_threads(2)
        two = ops.ghost_batch_norm_forward(x, gamma, None, 4, axis=axis)
        done = ops.ghost_batch_norm_backward(dy, x, gamma, two[1], two[2], 4, axis=axis)
        bnpy.set_num_threads(1)
        dsingle = ops.ghost_batch_norm_backward(dy, x, gamma, two[1], two[2], 4, axis=axis)
    finally:
        bnpy.set_num_threads(previous)
    for a, b in zip(one + dsingle, two + done):
        np.testing.assert_array_equal(a, b)
    expected = twin.ghost_batch_norm_forward(x, gamma, None, 4, axis)
    scale = float(np.abs(expected[0]).max())  # float32 outputs within 2e-5 of their size
    np.testing.assert_allclose(one[0], expected[0], rtol=0, atol=2e-5 * scale)
    np.testing.assert_allclose(one[1], expected[1], rtol=1e-7)  # rounded to float32 (6e-8)
    np.testing.assert_allclose(one[2], expected[2], rtol=1e-5)
    dexpected = twin.ghost_batch_norm_backward(dy, x, gamma, one[1], one[2], 4, axis)
    for a, b in zip(done, dexpected):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * max(1.0, float(np.abs(b).max())))
    inplace = x.copy()
    ops.ghost_batch_norm_forward(inplace, gamma, None, 4, axis=axis, out=inplace)
    np.testing.assert_array_equal(inplace, one[0])
    poisoned = x.copy()
    index = [3, 0, 0, 0]
    index[axis] = 1
    poisoned[tuple(index)] = np.nan  # sample 3: virtual batch 3 % 2 = 1, channel 1
    y, mean, _ = ops.ghost_batch_norm_forward(poisoned, gamma, None, 4, axis=axis)
    assert (
        np.isnan(mean[1, 1]) and np.isfinite(np.delete(mean.ravel(), 1 * mean.shape[1] + 1)).all()
    )
    nan_channel = np.take(y[1::2], 1, axis=axis)
    assert np.isnan(nan_channel).all()
    assert np.isfinite(y[0::2]).all() and np.isfinite(np.delete(y[1::2], 1, axis=axis)).all()


def test_ghost_batches_with_channel_axis_1_work_on_views():
    """(N, C) and channels-first: the kernel writes straight into out (a reshape of it)."""
    rng = np.random.default_rng(21)
    x = random_data(rng, (8, 3, 5))
    out = np.empty_like(x)
    y, _, _ = ops.ghost_batch_norm_forward(x, None, None, 2, axis=1, out=out)
    assert y is out
    expected = twin.ghost_batch_norm_forward(x, None, None, 2, 1)[0]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_ghost_batches_accept_non_contiguous_input_and_in_place_output():
    rng = np.random.default_rng(15)
    x = np.asfortranarray(random_data(rng, (8, 6)))
    y, _, _ = ops.ghost_batch_norm_forward(x, None, None, 4)
    expected, _, _ = ops.ghost_batch_norm_forward(np.ascontiguousarray(x), None, None, 4)
    np.testing.assert_array_equal(y, expected)
    inplace = np.ascontiguousarray(x)
    out, _, _ = ops.ghost_batch_norm_forward(inplace, None, None, 4, out=inplace)
    assert out is inplace
    np.testing.assert_array_equal(inplace, expected)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(virtual_batch_size=5), ValueError, "multiple of virtual_batch_size 5"),
        (dict(virtual_batch_size=0), ValueError, "virtual_batch_size"),
        (dict(virtual_batch_size=2.0), TypeError, "virtual_batch_size must be an int"),
        (dict(axis=0), ValueError, "batch axis"),
        (dict(x=np.ones((8, 3), np.int64)), TypeError, "x"),
        (dict(out=np.zeros((8, 3))[:, ::-1]), ValueError, "C-contiguous"),
        (dict(x=np.ones(8)), ValueError, "batch axis and a channel axis"),
        (dict(x=np.ones((0, 3))), ValueError, "positive multiple"),
        (dict(out=np.zeros((8, 4))), ValueError, "out must have the shape"),
        (dict(out=np.zeros((8, 3), np.float32)), ValueError, "dtype float64"),
        (dict(axis=2), ValueError, "axis 2 is out of range"),
        (dict(out="y"), TypeError, "out must be a numpy.ndarray"),
        (dict(gamma=np.ones(4)), ValueError, r"gamma must have shape \(3,\)"),
        (dict(beta=np.ones(3, np.float32)), TypeError, "beta"),
    ],
)
def test_ghost_forward_bad_arguments_write_nothing(kwargs, error, match):
    args = dict(x=np.ones((8, 3)), gamma=None, beta=None, virtual_batch_size=4, axis=-1)
    out = np.full((8, 3), 7.0)
    args.setdefault("out", out)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ops.ghost_batch_norm_forward(**args)
    np.testing.assert_array_equal(out, 7.0)


@pytest.mark.parametrize("axis", [1, -1])
def test_ghost_out_overlapping_x_is_refused_and_nothing_is_written(axis):
    rng = np.random.default_rng(22)
    base = random_data(rng, (10, 4, 3))
    x, out = base[:8], base[2:]  # out overlaps x shifted by two samples
    before = base.copy()
    with pytest.raises(ValueError, match="out must not overlap x"):
        ops.ghost_batch_norm_forward(x, None, None, 2, axis=axis, out=out)
    np.testing.assert_array_equal(base, before)


def test_ghost_backward_bad_arguments_write_nothing():
    x, dy = np.ones((8, 3)), np.ones((8, 3))
    mean, var = np.zeros((2, 3)), np.ones((2, 3))
    out = np.full((8, 3), 7.0)
    with pytest.raises(ValueError, match=r"mean must have shape \(2, 3\)"):
        ops.ghost_batch_norm_backward(dy, x, None, np.zeros(3), var, 4, out=out)
    with pytest.raises(ValueError, match="x must have the shape of dy"):
        ops.ghost_batch_norm_backward(dy[:4], x, None, mean, var, 4, out=out)
    with pytest.raises(ValueError, match="var must have shape"):
        ops.ghost_batch_norm_backward(dy, x, None, mean, np.ones((2, 4)), 4, out=out)
    np.testing.assert_array_equal(out, 7.0)


@pytest.mark.parametrize("shape, axis, v", [((12, 4), -1, 3), ((6, 3, 2, 2), 1, 2)])
def test_ghost_layer_moving_statistics_average_the_virtual_batches(shape, axis, v):
    rng = np.random.default_rng(16)
    layer = BatchNormalization(axis=axis, virtual_batch_size=v, momentum=0.7, dtype="float64")
    layer.build_for((None,) + shape[1:])
    moving_mean, moving_var = np.zeros(shape[axis]), np.ones(shape[axis])
    for _ in range(3):
        x = random_data(rng, shape)
        y = layer.forward(x, training=True)
        expected, means, variances = twin.ghost_batch_norm_forward(
            x, layer.gamma, layer.beta, v, axis
        )
        np.testing.assert_allclose(y, expected, rtol=1e-11, atol=1e-11)
        layer.backward(np.ones_like(x))
        layer.commit_updates()
        moving_mean = twin.ema(moving_mean, means.mean(axis=0), 0.7)
        moving_var = twin.ema(moving_var, variances.mean(axis=0), 0.7)
        np.testing.assert_allclose(layer.moving_mean, moving_mean, rtol=1e-12)
        np.testing.assert_allclose(layer.moving_variance, moving_var, rtol=1e-12)
    x = random_data(rng, (5,) + shape[1:])  # inference: any batch size, the moving statistics
    np.testing.assert_allclose(
        layer.forward(x),
        ref.batch_norm_inference(x, layer.gamma, layer.beta, moving_mean, moving_var, axis),
        rtol=1e-12,
    )


def test_ghost_layer_gradients_by_finite_differences():
    rng = np.random.default_rng(17)
    layer = BatchNormalization(
        virtual_batch_size=3,
        gamma_initializer="uniform",
        beta_initializer="uniform",
        dtype="float64",
    )
    layer.build_for((None, 2, 4))
    check_layer_gradients(layer, random_data(rng, (6, 2, 4)), rng)


def test_ghost_layer_rejects_a_batch_it_cannot_split():
    layer = BatchNormalization(virtual_batch_size=4, dtype="float64")
    layer.build_for((None, 3))
    with pytest.raises(ValueError, match="batch size 6 is not a multiple of virtual_batch_size 4"):
        layer.forward(np.ones((6, 3)), training=True)
    assert layer._pending is None
    with pytest.raises(ValueError, match="positive integer"):
        BatchNormalization(virtual_batch_size=0)
    with pytest.raises(ValueError, match="positive integer"):
        BatchNormalization(virtual_batch_size=2.5)
    with pytest.raises(ValueError, match="not a multiple"):
        BatchNormalization(virtual_batch_size=4).build_for((6, 3))


def test_ghost_layer_fit_fails_before_the_first_step_on_a_bad_last_batch():
    model = Sequential([Dense(3, input_shape=(4,)), BatchNormalization(virtual_batch_size=4)])
    model.compile(SGD(0.1), "mse")
    weights = model.get_weights()
    x, y = np.ones((10, 4), np.float32), np.ones((10, 3), np.float32)  # last batch of 2
    with pytest.raises(ValueError, match="virtual_batch_size"):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for a, b in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    model.fit(x[:8], y[:8], batch_size=4, epochs=1, verbose=0)


def test_ghost_batches_match_tf_keras():
    compare_with_tf_keras(
        dict(momentum=0.6, virtual_batch_size=4),
        dict(momentum=0.6, virtual_batch_size=4),
        (12, 3, 2, 5),
        3,
        np.random.default_rng(18),
        ["moving_mean", "moving_variance"],
    )
