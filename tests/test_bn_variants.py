"""Batch-norm variants: the cumulative moving average (momentum=None), Batch Renormalization,
ghost (virtual) batches, batch statistics only (track_running_stats=False), and
Layer.from_config for every layer class. Against the float64 twins of
tests/reference_bn_variants.py, against plain batch norm where a variant reduces to it, and
against tf.keras where it is importable."""

import inspect
import math

import numpy as np
import pytest
import reference as ref
import reference_bn_variants as twin
from reference_layers import check_layer_gradients, numeric_gradient, one_thread, requires_bn

import bnpy.layers
from bnpy import ops
from bnpy.layers import BatchNormalization, Dense
from bnpy.models import Sequential, load_model
from bnpy.optimizers import SGD

pytestmark = requires_bn

# float64 results are a few roundings of O(1) values away from the twin's; float32 ones a few
# float32 roundings (6e-8) of values up to ~10 (the data below), and their statistics sums in double.
TOL = {np.float64: dict(rtol=1e-11, atol=1e-11), np.float32: dict(rtol=2e-5, atol=2e-5)}


def _data(rng, shape, dtype=np.float64, offset=2.0, scale=3.0):
    return (rng.standard_normal(shape) * scale + offset).astype(dtype)


def _comparable(config):
    """A config with objects (initializers, regularizers...) as (class name, their config)."""
    if hasattr(config, "get_config"):
        return (type(config).__name__, _comparable(config.get_config()))
    if isinstance(config, dict):
        return {k: _comparable(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_comparable(v) for v in config]
    return config


def _train_step(layer, x):
    """One training step of a layer alone: forward, a backward of ones, the moving update."""
    layer.forward(x, training=True)
    layer.backward(np.ones_like(x))
    layer.commit_updates()


def _channel_shape(shape, axis):
    return (shape[axis],)


# ---- momentum=None: the cumulative moving average ----------------------------------------------


@pytest.mark.parametrize("unbiased", [False, True])
def test_cumulative_average_is_the_plain_average_of_the_batches(unbiased):
    rng = np.random.default_rng(1)
    layer = BatchNormalization(momentum=None, unbiased_moving_variance=unbiased, dtype="float64")
    layer.build_for((None, 4, 3))
    means, variances = [], []
    for step in range(5):
        x = _data(rng, (6 + step, 4, 3), offset=step)  # batches of different sizes and levels
        mean, var, count = twin.batch_statistics(x)
        means.append(mean)
        variances.append(var * count / (count - 1) if unbiased else var)
        _train_step(layer, x)
        assert int(layer.num_batches_tracked[0]) == step + 1
        np.testing.assert_allclose(layer.moving_mean, twin.cumulative_average(means), rtol=1e-12)
        np.testing.assert_allclose(
            layer.moving_variance, twin.cumulative_average(variances), rtol=1e-12
        )


def test_cumulative_average_first_batch_replaces_the_initial_values():
    rng = np.random.default_rng(2)
    layer = BatchNormalization(momentum=None, dtype="float64")
    layer.build_for((None, 3))
    x = _data(rng, (8, 3))
    _train_step(layer, x)
    mean, var, _ = twin.batch_statistics(x)
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-13)
    np.testing.assert_allclose(layer.moving_variance, var, rtol=1e-13)


def test_num_batches_tracked_is_a_non_trainable_int64_weight_after_keras_weights():
    layer = BatchNormalization(momentum=None)
    layer.build_for((None, 5))
    names = [n.split("/")[1] for n in layer.weight_names]
    assert names == [
        "gamma:0",
        "beta:0",
        "moving_mean:0",
        "moving_variance:0",
        "num_batches_tracked:0",
    ]
    assert layer.num_batches_tracked.dtype == np.int64 and layer.num_batches_tracked.shape == (1,)
    assert len(layer.trainable_weights) == 2
    plain = BatchNormalization()
    plain.build_for((None, 5))
    assert not hasattr(plain, "num_batches_tracked") and len(plain.weights) == 4


def test_momentum_none_is_not_counted_when_a_step_is_discarded():
    layer = BatchNormalization(momentum=None, dtype="float64")
    layer.build_for((None, 2))
    x = np.arange(8.0).reshape(4, 2)
    layer.forward(x, training=True)
    layer.discard_updates()
    layer.commit_updates()
    assert int(layer.num_batches_tracked[0]) == 0
    np.testing.assert_array_equal(layer.moving_mean, 0)


@pytest.mark.parametrize("renorm", [False, True])
def test_reset_states_restarts_the_moving_statistics(renorm):
    rng = np.random.default_rng(3)
    layer = BatchNormalization(momentum=None, renorm=renorm, dtype="float64")
    layer.build_for((None, 3))
    moving_mean = layer.moving_mean
    for _ in range(3):
        x = _data(rng, (5, 3))
        _train_step(layer, x)
    assert int(layer.num_batches_tracked[0]) == 3 and np.all(layer.moving_mean != 0)
    layer.reset_states()
    assert layer.moving_mean is moving_mean  # in place
    np.testing.assert_array_equal(layer.moving_mean, 0)
    np.testing.assert_array_equal(layer.moving_variance, 1)
    assert int(layer.num_batches_tracked[0]) == 0
    if renorm:
        for name in ("moving_stddev", "renorm_stddev"):
            np.testing.assert_array_equal(getattr(layer, name), 1)
        np.testing.assert_array_equal(layer.renorm_mean, 0)
    # after the reset, the next batch alone makes the moving statistics (weight 1/1)
    x = _data(rng, (7, 3))
    _train_step(layer, x)
    mean, var, _ = twin.batch_statistics(x)
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, var, rtol=1e-12)


def test_reset_states_uses_the_moving_initializers_and_keeps_momentum_layers_working():
    layer = BatchNormalization(moving_variance_initializer="zeros", dtype="float64")
    layer.build_for((None, 2))
    layer.moving_variance[...] = 5
    layer.reset_states()
    np.testing.assert_array_equal(layer.moving_variance, 0)
    BatchNormalization(track_running_stats=False).reset_states()  # unbuilt, no statistics: no-op


@pytest.mark.parametrize(
    "value, error",
    [
        ("0.9", TypeError),
        (True, TypeError),
        ([0.9], TypeError),
        (1.5, ValueError),
        (-0.1, ValueError),
        (float("nan"), ValueError),
    ],
)
def test_bad_momentum_is_named(value, error):
    with pytest.raises(error, match="`momentum`"):
        BatchNormalization(momentum=value)
    with pytest.raises(error, match="`renorm_momentum`"):
        BatchNormalization(renorm=True, renorm_momentum=value)


@pytest.mark.parametrize(
    "value, error", [(None, TypeError), ("1e-3", TypeError), (0.0, ValueError)]
)
def test_bad_epsilon_is_named(value, error):
    with pytest.raises(error, match="`epsilon`"):
        BatchNormalization(epsilon=value)


def test_cumulative_average_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = BatchNormalization(
        axis=1, momentum=None, epsilon=1e-5, unbiased_moving_variance=True, dtype="float64"
    )
    layer.build_for((None, 3, 4, 4))
    module = torch.nn.BatchNorm2d(3, momentum=None, eps=1e-5).double().train()
    for _ in range(4):
        x = _data(rng, (5, 3, 4, 4))
        y = layer.forward(x, training=True)
        layer.backward(np.ones_like(x))
        layer.commit_updates()
        y_torch = module(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(y, y_torch, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.moving_mean, module.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, module.running_var.numpy(), rtol=1e-12)
    assert int(layer.num_batches_tracked[0]) == int(module.num_batches_tracked)


# ---- Batch Renormalization: the ops ------------------------------------------------------------


RENORM_CASES = [((12, 5), -1), ((4, 3, 3, 6), -1), ((4, 6, 3, 2), 1), ((3, 4, 5), 1)]


def _renorm_inputs(rng, shape, axis, dtype):
    x = _data(rng, shape, dtype)
    channels = _channel_shape(shape, axis)
    gamma = (rng.uniform(0.5, 1.5, channels)).astype(dtype)
    beta = rng.standard_normal(channels).astype(dtype)
    # renorm statistics away from the batch's, so that r and d differ from 1 and 0
    renorm_mean = (rng.standard_normal(channels) + 2.0).astype(dtype)
    renorm_stddev = rng.uniform(1.0, 6.0, channels).astype(dtype)
    return x, gamma, beta, renorm_mean, renorm_stddev


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axis", RENORM_CASES)
def test_renorm_without_room_to_correct_is_batch_norm_bit_for_bit(shape, axis, dtype):
    rng = np.random.default_rng(5)
    x, gamma, beta, renorm_mean, renorm_stddev = _renorm_inputs(rng, shape, axis, dtype)
    dy = _data(rng, shape, dtype, offset=0.0, scale=1.0)
    y, mean, var, r, d = ops.batch_renorm_forward(
        x, gamma, beta, renorm_mean, renorm_stddev, axis=axis, rmin=1.0, rmax=1.0, dmax=0.0
    )
    y_bn, mean_bn, var_bn = ops.batch_norm_forward(x, gamma, beta, axis=axis)
    np.testing.assert_array_equal(r, 1)
    np.testing.assert_array_equal(d, 0)
    for got, expected in [(y, y_bn), (mean, mean_bn), (var, var_bn)]:
        np.testing.assert_array_equal(got, expected)
    grads = ops.batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis=axis)
    grads_bn = ops.batch_norm_backward(dy, x, gamma, mean_bn, var_bn, axis=axis)
    for got, expected in zip(grads, grads_bn):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axis", RENORM_CASES)
@pytest.mark.parametrize(
    "clip", [dict(), dict(rmin=0.8, rmax=1.25, dmax=0.2), dict(rmax=1.1, dmax=0.1)]
)
def test_renorm_matches_its_twin(shape, axis, dtype, clip):
    rng = np.random.default_rng(6)
    x, gamma, beta, renorm_mean, renorm_stddev = _renorm_inputs(rng, shape, axis, dtype)
    dy = _data(rng, shape, dtype, offset=0.0, scale=1.0)
    got = ops.batch_renorm_forward(x, gamma, beta, renorm_mean, renorm_stddev, axis=axis, **clip)
    expected = twin.batch_renorm_forward(
        x, gamma, beta, renorm_mean, renorm_stddev, axis=axis, **clip
    )
    for name, a, b in zip(["y", "mean", "var", "r", "d"], got, expected):
        assert a.dtype == dtype, name
        np.testing.assert_allclose(a, b, err_msg=name, **TOL[dtype])
    if clip:  # the clipping is exercised: some corrections sit on a bound, some inside
        r, d = expected[3], expected[4]
        on_bound = np.concatenate(
            [
                np.isclose(r, clip.get("rmin", 0.0)) | np.isclose(r, clip["rmax"]),
                np.isclose(abs(d), clip["dmax"]),
            ]
        )
        assert on_bound.any() and not on_bound.all()
    _, mean, var, r, d = got
    dgot = ops.batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis=axis)
    dexpected = twin.batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis=axis)
    for name, a, b in zip(["dx", "dgamma", "dbeta"], dgot, dexpected):
        assert a.dtype == dtype, name
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype]["atol"] * scale, err_msg=name)


@pytest.mark.parametrize("shape, axis", RENORM_CASES[:3])
def test_renorm_twin_backward_is_the_gradient_with_r_and_d_held_constant(shape, axis):
    rng = np.random.default_rng(7)
    x, gamma, beta, renorm_mean, renorm_stddev = _renorm_inputs(rng, shape, axis, np.float64)
    _, mean, var, r, d = twin.batch_renorm_forward(
        x, gamma, beta, renorm_mean, renorm_stddev, axis=axis, rmin=0.5, rmax=2.0, dmax=0.5
    )
    dy = rng.standard_normal(shape)

    def loss():
        return float(np.sum(twin.renorm_with_corrections(x, gamma, beta, r, d, axis)[0] * dy))

    dx, dgamma, dbeta = twin.batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis)
    for name, analytic, variable in [
        ("dx", dx, x),
        ("dgamma", dgamma, gamma),
        ("dbeta", dbeta, beta),
    ]:
        numeric = numeric_gradient(loss, variable)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


def test_renorm_gamma_and_beta_none_mean_one_and_zero():
    rng = np.random.default_rng(8)
    x, _, _, renorm_mean, renorm_stddev = _renorm_inputs(rng, (9, 4), -1, np.float64)
    ones, zeros = np.ones(4), np.zeros(4)
    a = ops.batch_renorm_forward(x, None, None, renorm_mean, renorm_stddev, dmax=0.5)
    b = ops.batch_renorm_forward(x, ones, zeros, renorm_mean, renorm_stddev, dmax=0.5)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_renorm_stddev_is_floored_at_sqrt_epsilon():
    x = np.array([[0.0], [2.0]])  # mean 1, var 1
    _, _, _, r, d = ops.batch_renorm_forward(x, None, None, np.zeros(1), np.zeros(1), epsilon=0.01)
    np.testing.assert_allclose(r, math.sqrt(1.01) / 0.1, rtol=1e-14)
    np.testing.assert_allclose(d, 1.0 / 0.1, rtol=1e-14)


def test_renorm_nan_stays_in_its_channel():
    x = np.ones((6, 3))
    x[:, 1] = np.arange(6.0)
    x[2, 0] = np.nan
    y, _, _, r, d = ops.batch_renorm_forward(x, None, None, np.zeros(3), np.ones(3), rmax=2.0)
    assert np.isnan(y[:, 0]).all() and np.isnan(r[0]) and np.isnan(d[0])
    assert np.isfinite(y[:, 1:]).all()
    y, _, _, r, _ = ops.batch_renorm_forward(
        x[:, 1:], None, None, np.zeros(2), np.array([np.nan, 1.0]), rmax=2.0
    )
    assert np.isnan(y[:, 0]).all() and np.isnan(r[0]) and np.isfinite(y[:, 1]).all()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(rmin=-1.0), ValueError, "rmin"),
        (dict(rmin=2.0, rmax=1.0), ValueError, "rmax"),
        (dict(dmax=-0.5), ValueError, "dmax"),
        (dict(dmax=float("nan")), ValueError, "dmax"),
        (dict(rmax="3"), TypeError, "rmax"),
        (dict(epsilon=math.inf), ValueError, "epsilon"),
        (dict(renorm_stddev=np.ones(4)), ValueError, "renorm_stddev must have shape \\(3,\\)"),
        (dict(renorm_mean=np.zeros(3, np.float32)), TypeError, "renorm_mean"),
        (dict(renorm_mean=None), TypeError, "renorm_mean"),
        (dict(axis=2), ValueError, "axis"),
    ],
)
def test_renorm_forward_bad_arguments_are_named_and_nothing_is_written(kwargs, error, match):
    args = dict(
        x=np.ones((4, 3)),
        gamma=None,
        beta=None,
        renorm_mean=np.zeros(3),
        renorm_stddev=np.ones(3),
    )
    args.update(kwargs)
    out = np.full((4, 3), 7.0)
    with pytest.raises(error, match=match):
        ops.batch_renorm_forward(out=out, **args)
    np.testing.assert_array_equal(out, 7.0)


def test_renorm_backward_bad_arguments_are_named_and_nothing_is_written():
    x, dy = np.ones((4, 3)), np.ones((4, 3))
    good = dict(gamma=None, mean=np.zeros(3), var=np.ones(3), r=np.ones(3), d=np.zeros(3))
    out = np.full((4, 3), 7.0)
    for name, bad, error in [
        ("r", np.ones(2), ValueError),
        ("d", None, TypeError),
        ("r", np.ones(3, np.float32), TypeError),
    ]:
        args = dict(good, **{name: bad})
        with pytest.raises(error, match="batch_renorm_backward: " + name):
            ops.batch_renorm_backward(dy, x, out=out, **args)
    with pytest.raises(ValueError, match="out must not overlap r"):
        ops.batch_renorm_backward(dy, x, **dict(good, r=out[0]), out=out)
    np.testing.assert_array_equal(out, 7.0)


def test_renorm_in_place_and_thread_count_independence():
    import bnpy

    rng = np.random.default_rng(9)
    x, gamma, beta, rm, rs = _renorm_inputs(rng, (64, 9, 9, 16), -1, np.float32)
    previous = bnpy.set_num_threads(1)
    try:
        one = ops.batch_renorm_forward(x, gamma, beta, rm, rs, dmax=0.5)
        bnpy.set_num_threads(2)
        two = ops.batch_renorm_forward(x, gamma, beta, rm, rs, dmax=0.5)
    finally:
        bnpy.set_num_threads(previous)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    inplace = x.copy()
    ops.batch_renorm_forward(inplace, gamma, beta, rm, rs, dmax=0.5, out=inplace)
    np.testing.assert_array_equal(inplace, one[0])


# ---- Batch Renormalization: the layer ---------------------------------------------------------


def _renorm_layer(**kwargs):
    config = dict(
        renorm=True,
        renorm_clipping={"rmax": 1.5, "rmin": 0.6, "dmax": 0.4},
        renorm_momentum=0.7,
        momentum=0.8,
        gamma_initializer="uniform",
        beta_initializer="uniform",
        dtype="float64",
    )
    config.update(kwargs)
    return BatchNormalization(**config)


def test_renorm_layer_weights_in_tf_keras_order():
    layer = _renorm_layer()
    layer.build_for((None, 4))
    assert [n.split("/")[1] for n in layer.weight_names] == [
        "gamma:0",
        "beta:0",
        "moving_mean:0",
        "moving_variance:0",
        "moving_stddev:0",
        "renorm_mean:0",
        "renorm_stddev:0",
    ]
    np.testing.assert_array_equal(layer.moving_stddev, 1)
    np.testing.assert_array_equal(layer.renorm_stddev, 1)
    assert len(layer.trainable_weights) == 2


@pytest.mark.parametrize("shape, axis", [((10, 4), -1), ((6, 3, 5, 5), 1)])
def test_renorm_layer_steps_match_the_twin(shape, axis):
    rng = np.random.default_rng(10)
    layer = _renorm_layer(axis=axis)
    layer.build_for((None,) + shape[1:])
    channels = shape[axis]
    state = {k: np.zeros(channels) for k in ("moving_mean", "renorm_mean")}
    state.update(
        {k: np.ones(channels) for k in ("moving_stddev", "renorm_stddev", "moving_variance")}
    )
    for step in range(6):
        x = _data(rng, shape, offset=step * 0.5, scale=1.0 + step)
        dy = rng.standard_normal(shape)
        y_expected, mean, var, r, d = twin.batch_renorm_forward(
            x,
            layer.gamma,
            layer.beta,
            state["renorm_mean"],
            state["renorm_stddev"],
            axis=axis,
            rmin=0.6,
            rmax=1.5,
            dmax=0.4,
        )
        y = layer.forward(x, training=True)
        np.testing.assert_allclose(y, y_expected, rtol=1e-11, atol=1e-11)
        dx = layer.backward(dy.copy())
        dx_expected, dgamma, dbeta = twin.batch_renorm_backward(
            dy, x, layer.gamma, mean, var, r, d, axis
        )
        np.testing.assert_allclose(dx, dx_expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(layer.gradients[0], dgamma, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(layer.gradients[1], dbeta, rtol=1e-10, atol=1e-10)
        layer.commit_updates()
        state = twin.renorm_layer_update(state, mean, var, 1e-3, 0.8, 0.7)
        for name, value in state.items():
            np.testing.assert_allclose(getattr(layer, name), value, rtol=1e-12, err_msg=name)
    # inference uses moving_mean and moving_variance, as plain batch norm does
    x = _data(rng, shape)
    np.testing.assert_allclose(
        layer.forward(x),
        ref.batch_norm_inference(
            x, layer.gamma, layer.beta, state["moving_mean"], state["moving_variance"], axis
        ),
        rtol=1e-12,
        atol=1e-12,
    )


def test_renorm_layer_with_unit_clipping_trains_as_batch_norm():
    rng = np.random.default_rng(11)
    renorm = _renorm_layer(renorm_clipping={"rmax": 1, "rmin": 1, "dmax": 0})
    plain = BatchNormalization(
        momentum=0.8, gamma_initializer="uniform", beta_initializer="uniform", dtype="float64"
    )
    renorm.build_for((None, 5))
    plain.build_for((None, 5))
    plain.set_weights(renorm.get_weights()[:4])
    for _ in range(3):
        x = _data(rng, (8, 5))
        dy = rng.standard_normal((8, 5))
        np.testing.assert_array_equal(renorm.forward(x, training=True), plain.forward(x, True))
        np.testing.assert_array_equal(renorm.backward(dy.copy()), plain.backward(dy.copy()))
        for a, b in zip(renorm.gradients, plain.gradients):
            np.testing.assert_array_equal(a, b)
        renorm.commit_updates()
        plain.commit_updates()
        np.testing.assert_allclose(renorm.moving_mean, plain.moving_mean, rtol=1e-14)
        # tf.keras averages the standard deviation √(σ²_B + ε) under renorm, not the variance
        np.testing.assert_allclose(
            renorm.moving_variance, renorm.moving_stddev**2 - 1e-3, rtol=1e-14
        )


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(renorm_clipping={"rmax": 2, "bad": 1}), ValueError, "unknown keys"),
        (dict(renorm_clipping=[1, 2]), TypeError, "renorm_clipping"),
        (dict(renorm_clipping={"rmin": 2, "rmax": 1}), ValueError, "rmin <= rmax"),
        (dict(renorm_clipping={"dmax": -1}), ValueError, "dmax"),
        (dict(renorm_clipping={"rmax": "2"}), TypeError, "rmax"),
        (dict(track_running_stats=False), ValueError, "track_running_stats"),
    ],
)
def test_renorm_layer_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNormalization(renorm=True, **kwargs)


def _tf_keras():
    tf_keras = pytest.importorskip("tf_keras")
    import tensorflow as tf

    return tf, tf_keras


def _compare_with_tf_keras(bn_kwargs, tf_kwargs, shape, steps, rng, weight_names):
    """Train a bnpy and a tf.keras layer side by side (forward in training mode, gradients of
    Σ y·dy, the layers' own moving updates); outputs, gradients and weights must agree."""
    tf, tf_keras = _tf_keras()
    channels = shape[-1]
    gamma = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    beta = rng.standard_normal(channels).astype(np.float32)
    layer = BatchNormalization(**bn_kwargs)
    layer.build_for((None,) + shape[1:])
    reference = tf_keras.layers.BatchNormalization(**tf_kwargs)
    reference.build((None,) + shape[1:])
    layer.gamma[...] = gamma
    layer.beta[...] = beta
    # tf.keras's weights are (1, 1, ..., C) with virtual batches: compare them flattened
    reference.gamma.assign(gamma.reshape(reference.gamma.shape))
    reference.beta.assign(beta.reshape(reference.beta.shape))
    for step in range(steps):
        x = _data(rng, shape, np.float32, offset=step * 0.3, scale=1.0 + 0.5 * step)
        dy = rng.standard_normal(shape).astype(np.float32)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            yt = reference(xt, training=True)
            loss = tf.reduce_sum(yt * dy)
        dxt, dgt, dbt = tape.gradient(loss, [xt, reference.gamma, reference.beta])
        y = layer.forward(x, training=True)
        dx = layer.backward(dy.copy())
        layer.commit_updates()
        tol = dict(rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(y, yt.numpy(), err_msg="y step %d" % step, **tol)
        scale = max(1.0, float(np.abs(dxt.numpy()).max()))
        np.testing.assert_allclose(dx, dxt.numpy(), rtol=0, atol=2e-5 * scale)
        for got, expected in zip(layer.gradients, [dgt, dbt]):
            expected = expected.numpy().reshape(-1)
            scale = max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * scale)
        by_name = {
            w.name.split("/")[-1].split(":")[0]: w.numpy().reshape(-1) for w in reference.weights
        }
        for name in weight_names:
            np.testing.assert_allclose(
                getattr(layer, name), by_name[name], err_msg="%s step %d" % (name, step), **tol
            )


def test_renorm_matches_tf_keras():
    clipping = {"rmax": 1.4, "rmin": 0.7, "dmax": 0.3}
    common = dict(momentum=0.9, epsilon=1e-3, renorm=True, renorm_momentum=0.8)
    _compare_with_tf_keras(
        dict(common, renorm_clipping=clipping),
        dict(common, renorm_clipping=clipping),
        (16, 5),
        6,
        np.random.default_rng(12),
        ["moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev"],
    )


def test_renorm_with_virtual_batches_matches_tf_keras():
    clipping = {"rmax": 1.3, "rmin": 0.8, "dmax": 0.2}
    common = dict(momentum=0.7, renorm=True, renorm_momentum=0.6, virtual_batch_size=3)
    _compare_with_tf_keras(
        dict(common, renorm_clipping=clipping),
        dict(common, renorm_clipping=clipping),
        (9, 2, 3, 4),
        5,
        np.random.default_rng(25),
        ["moving_mean", "moving_variance", "moving_stddev", "renorm_mean", "renorm_stddev"],
    )


@pytest.mark.parametrize("shape, axis", [((12, 4), -1), ((6, 3, 2, 2), -1), ((6, 3, 2, 2), 1)])
def test_renorm_with_virtual_batches_matches_the_twins(shape, axis):
    rng = np.random.default_rng(26)
    clip = dict(rmin=0.7, rmax=1.4, dmax=0.3)
    layer = _renorm_layer(axis=axis, virtual_batch_size=3, renorm_clipping=clip)
    layer.build_for((None,) + shape[1:])
    channels = shape[axis]
    state = {k: np.zeros(channels) for k in ("moving_mean", "renorm_mean")}
    state.update(
        {k: np.ones(channels) for k in ("moving_stddev", "renorm_stddev", "moving_variance")}
    )
    b = [1] * len(shape)
    b[axis] = -1
    for step in range(4):
        x = _data(rng, shape, offset=step * 0.5, scale=1.0 + step)
        dy = rng.standard_normal(shape)
        xhat, means, variances = twin.ghost_batch_norm_forward(x, None, None, 3, axis)
        mean, var = means.mean(axis=0), variances.mean(axis=0)
        r, d = twin.renorm_corrections(
            mean, var, state["renorm_mean"], state["renorm_stddev"], 1e-3, 0.7, 1.4, 0.3
        )
        g, beta = layer.gamma.copy(), layer.beta.copy()
        expected = g.reshape(b) * (xhat * r.reshape(b) + d.reshape(b)) + beta.reshape(b)
        np.testing.assert_allclose(
            layer.forward(x, training=True), expected, rtol=1e-11, atol=1e-11
        )
        dx = layer.backward(dy.copy())
        dx_expected, dxhat, dbeta = twin.ghost_batch_norm_backward(
            dy, x, g * r, means, variances, 3, axis
        )
        np.testing.assert_allclose(dx, dx_expected, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(
            layer.gradients[0], r * dxhat + d * dbeta, rtol=1e-10, atol=1e-10
        )
        np.testing.assert_allclose(layer.gradients[1], dbeta, rtol=1e-10, atol=1e-10)
        layer.commit_updates()
        state = twin.renorm_layer_update(state, mean, var, 1e-3, 0.8, 0.7)
        for name, value in state.items():
            np.testing.assert_allclose(getattr(layer, name), value, rtol=1e-12, err_msg=name)


def test_renorm_defaults_match_tf_keras_without_clipping():
    common = dict(momentum=0.5, renorm=True, renorm_momentum=0.5)
    _compare_with_tf_keras(
        common,
        common,
        (4, 3, 3, 6),
        4,
        np.random.default_rng(13),
        ["moving_mean", "moving_variance", "renorm_mean", "renorm_stddev"],
    )


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
    x = _data(rng, shape, dtype)
    dy = _data(rng, shape, dtype, offset=0.0, scale=1.0)
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
    x = _data(rng, (8, 3, 5))
    out = np.empty_like(x)
    y, _, _ = ops.ghost_batch_norm_forward(x, None, None, 2, axis=1, out=out)
    assert y is out
    expected = twin.ghost_batch_norm_forward(x, None, None, 2, 1)[0]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_ghost_batches_accept_non_contiguous_input_and_in_place_output():
    rng = np.random.default_rng(15)
    x = np.asfortranarray(_data(rng, (8, 6)))
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
    base = _data(rng, (10, 4, 3))
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
        x = _data(rng, shape)
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
    x = _data(rng, (5,) + shape[1:])  # inference: any batch size, the moving statistics
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
    check_layer_gradients(layer, _data(rng, (6, 2, 4)), rng)


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
    _compare_with_tf_keras(
        dict(momentum=0.6, virtual_batch_size=4),
        dict(momentum=0.6, virtual_batch_size=4),
        (12, 3, 2, 5),
        3,
        np.random.default_rng(18),
        ["moving_mean", "moving_variance"],
    )


# ---- track_running_stats=False -----------------------------------------------------------------


def test_without_running_stats_there_are_no_moving_weights():
    layer = BatchNormalization(track_running_stats=False)
    layer.build_for((None, 4))
    assert [n.split("/")[1] for n in layer.weight_names] == ["gamma:0", "beta:0"]
    assert not hasattr(layer, "moving_mean")


@pytest.mark.parametrize("virtual_batch_size", [None, 2])
def test_without_running_stats_inference_uses_the_batch_statistics(virtual_batch_size):
    rng = np.random.default_rng(19)
    layer = BatchNormalization(
        track_running_stats=False,
        virtual_batch_size=virtual_batch_size,
        gamma_initializer="uniform",
        beta_initializer="uniform",
        dtype="float64",
    )
    layer.build_for((None, 3, 5))
    x = _data(rng, (6, 3, 5))
    if virtual_batch_size is None:
        expected = ref.batch_norm_forward(x, layer.gamma, layer.beta)[0]
    else:
        expected = twin.ghost_batch_norm_forward(x, layer.gamma, layer.beta, 2)[0]
    for training in (False, True):
        np.testing.assert_allclose(
            layer.forward(x, training=training), expected, rtol=1e-11, atol=1e-11
        )
    layer.backward(np.ones_like(x))
    layer.commit_updates()  # nothing to commit
    check_layer_gradients(layer, x, rng)
    frozen = BatchNormalization(track_running_stats=False, trainable=False, dtype="float64")
    frozen.build_for((None, 3, 5))
    np.testing.assert_allclose(
        frozen.forward(x, training=True),
        ref.batch_norm_forward(x, None, None)[0],
        rtol=1e-11,
        atol=1e-11,
    )
    with one_thread():
        dy = rng.standard_normal(x.shape)
        dx = frozen.backward(dy.copy())
    np.testing.assert_allclose(
        dx,
        ref.batch_norm_backward(dy, x, None, *ref.batch_norm_forward(x, None, None)[1:])[0],
        rtol=1e-10,
        atol=1e-10,
    )
    assert frozen.gradients == []


def test_population_statistics_skip_layers_without_running_stats():
    from bnpy.layers.normalization import compute_population_statistics

    model = Sequential(
        [
            Dense(3, input_shape=(4,)),
            BatchNormalization(track_running_stats=False),
            BatchNormalization(),
        ]
    )
    model.compile(SGD(0.1), "mse")
    stats = compute_population_statistics(model, np.random.default_rng(0).random((8, 4)))
    assert list(stats) == [model.layers[2].name]


# ---- save / load ------------------------------------------------------------------------------


VARIANT_CONFIGS = [
    dict(momentum=None),
    dict(momentum=None, unbiased_moving_variance=True),
    dict(renorm=True, renorm_clipping={"rmax": 3.0, "dmax": 5.0}, renorm_momentum=0.9),
    dict(renorm=True, momentum=None),
    dict(renorm=True, virtual_batch_size=4, renorm_clipping={"dmax": 0.5}),
    dict(virtual_batch_size=4),
    dict(track_running_stats=False),
    dict(track_running_stats=False, virtual_batch_size=2),
]


@pytest.mark.parametrize("config", VARIANT_CONFIGS)
def test_variants_round_trip_through_model_save_and_load(config, tmp_path):
    rng = np.random.default_rng(20)
    model = Sequential([Dense(5, input_shape=(3,)), BatchNormalization(**config), Dense(2)])
    model.compile(SGD(0.05), "mse")
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
    path = str(tmp_path / "model.npz")
    model.save(path)
    loaded = load_model(path)
    layer, loaded_layer = model.layers[1], loaded.layers[1]
    assert _comparable(loaded_layer.get_config()) == _comparable(layer.get_config())
    assert loaded_layer.weight_names == layer.weight_names
    for a, b in zip(layer.get_weights(), loaded_layer.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    if config.get("momentum", 0.99) is None:
        assert int(loaded_layer.num_batches_tracked[0]) == 4
    np.testing.assert_array_equal(model.predict(x[:8]), loaded.predict(x[:8]))
    # training goes on identically
    model.train_on_batch(x[:8], y[:8])
    loaded.train_on_batch(x[:8], y[:8])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_new_arguments_are_in_get_config():
    config = BatchNormalization(
        momentum=None, renorm=True, renorm_clipping={"rmax": 2}, renorm_momentum=0.5
    ).get_config()
    assert config["momentum"] is None and config["renorm"] is True
    assert config["renorm_clipping"] == {"rmax": 2.0} and config["renorm_momentum"] == 0.5
    assert config["virtual_batch_size"] is None and config["track_running_stats"] is True


# ---- Layer.from_config for every layer class -------------------------------------------------


# The arguments each class needs (and a few more, so that non-default values round-trip).
LAYER_ARGUMENTS = {
    "Layer": dict(),
    "Dense": dict(units=3, activation="relu", use_bias=False, kernel_regularizer="l2"),
    "Activation": dict(activation="tanh"),
    "Dropout": dict(rate=0.3),
    "Flatten": dict(),
    "Reshape": dict(target_shape=(8, 6)),
    "Conv2D": dict(filters=2, kernel_size=3, strides=2, padding="same", dilation_rate=1),
    "Convolution2D": dict(filters=2, kernel_size=(1, 3)),
    "ZeroPadding2D": dict(padding=(1, 2)),
    "MaxPooling2D": dict(pool_size=(2, 2), strides=1),
    "AveragePooling2D": dict(pool_size=3, padding="same"),
    "MaxPool2D": dict(),
    "AvgPool2D": dict(),
    "GlobalAveragePooling2D": dict(data_format="channels_first"),
    "GlobalMaxPooling2D": dict(),
    "GlobalAvgPool2D": dict(),
    "GlobalMaxPool2D": dict(data_format="channels_last"),
    "BatchNormalization": dict(
        axis=1, momentum=None, epsilon=1e-4, renorm=True, renorm_clipping={"rmin": 0.5}
    ),
}


def _layer_classes():
    return sorted(
        name
        for name, value in vars(bnpy.layers).items()
        if inspect.isclass(value) and issubclass(value, bnpy.layers.Layer)
    )


def test_every_layer_class_has_from_config_arguments():
    assert sorted(LAYER_ARGUMENTS) == _layer_classes()


@pytest.mark.parametrize("class_name", sorted(LAYER_ARGUMENTS))
def test_from_config_round_trips(class_name):
    cls = getattr(bnpy.layers, class_name)
    layer = cls(
        input_shape=(4, 6, 2), name="probe_" + class_name.lower(), **LAYER_ARGUMENTS[class_name]
    )
    config = layer.get_config()
    clone = cls.from_config(config)
    assert type(clone) is cls and clone is not layer
    assert _comparable(clone.get_config()) == _comparable(config)
    assert clone.name == layer.name
    # the layer built from it has the same weights' shapes
    layer.build_for((None, 4, 6, 2))
    clone.build_for((None, 4, 6, 2))
    assert [w.shape for w in clone.weights] == [w.shape for w in layer.weights]
    assert clone.output_shape == layer.output_shape


@pytest.mark.parametrize("config", VARIANT_CONFIGS)
def test_variants_fold_into_the_layer_before_when_inference_uses_moving_statistics(config):
    from bnpy.utils.folding import fold_batch_norm

    rng = np.random.default_rng(24)
    model = Sequential([Dense(5, input_shape=(3,)), BatchNormalization(**config), Dense(2)])
    model.compile(SGD(0.05), "mse")
    x = rng.standard_normal((16, 3)).astype(np.float32)
    model.fit(x, rng.standard_normal((16, 2)).astype(np.float32), batch_size=8, verbose=0)
    folded = fold_batch_norm(model)
    kept = config.get("track_running_stats", True) is False  # batch statistics: cannot fold
    assert len(folded.layers) == (3 if kept else 2)
    np.testing.assert_allclose(folded.predict(x[:8]), model.predict(x[:8]), rtol=1e-5, atol=1e-5)
