"""Batch Renormalization (BatchNormalization(renorm=True)): the ops against their float64 twins
(tests/reference_bn_variants.py) and against plain batch norm where renorm reduces to it, then the
layer, also with virtual batches, and against tf.keras where it is importable."""

import math

import numpy as np
import pytest
import reference as ref
import reference_bn_variants as twin
from bn_variant_checks import TOL, compare_with_tf_keras, random_data
from reference_layers import numeric_gradient, requires_bn

from bnpy import ops
from bnpy.layers import BatchNormalization

pytestmark = requires_bn


def _channel_shape(shape, axis):
    return (shape[axis],)


# ---- Batch Renormalization: the ops ------------------------------------------------------------


RENORM_CASES = [((12, 5), -1), ((4, 3, 3, 6), -1), ((4, 6, 3, 2), 1), ((3, 4, 5), 1)]


def _renorm_inputs(rng, shape, axis, dtype):
    x = random_data(rng, shape, dtype)
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
    dy = random_data(rng, shape, dtype, offset=0.0, scale=1.0)
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
    dy = random_data(rng, shape, dtype, offset=0.0, scale=1.0)
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
        x = random_data(rng, shape, offset=step * 0.5, scale=1.0 + step)
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
    x = random_data(rng, shape)
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
        x = random_data(rng, (8, 5))
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


def test_renorm_matches_tf_keras():
    clipping = {"rmax": 1.4, "rmin": 0.7, "dmax": 0.3}
    common = dict(momentum=0.9, epsilon=1e-3, renorm=True, renorm_momentum=0.8)
    compare_with_tf_keras(
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
    compare_with_tf_keras(
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
        x = random_data(rng, shape, offset=step * 0.5, scale=1.0 + step)
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
    compare_with_tf_keras(
        common,
        common,
        (4, 3, 3, 6),
        4,
        np.random.default_rng(13),
        ["moving_mean", "moving_variance", "renorm_mean", "renorm_stddev"],
    )
