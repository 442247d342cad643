"""BatchNormalization layer: Keras 2.0 semantics, NumPy reference, finite differences, Keras's
own BN behaviour tests, frozen layers, the unbiased option, Keras-1 arguments."""

import numpy as np
import pytest
from reference_layers import (
    batch_norm_inference_reference,
    batch_norm_train_reference,
    check_layer_gradients,
    requires_bn,
)

from bnpy.layers import BatchNormalization, Dense
from bnpy.models import Sequential
from bnpy.optimizers import SGD

pytestmark = requires_bn


def test_defaults_and_weights_are_keras_2_0():
    layer = BatchNormalization()
    assert (layer.axis, layer.momentum, layer.epsilon, layer.center, layer.scale) == (
        -1,
        0.99,
        1e-3,
        True,
        True,
    )
    layer.build_for((None, 32, 32, 96))
    assert [n.split("/")[1] for n in layer.weight_names] == [
        "gamma:0",
        "beta:0",
        "moving_mean:0",
        "moving_variance:0",
    ]
    np.testing.assert_array_equal(layer.get_weights()[0], 1)
    np.testing.assert_array_equal(layer.get_weights()[1], 0)
    np.testing.assert_array_equal(layer.get_weights()[2], 0)
    np.testing.assert_array_equal(layer.get_weights()[3], 1)
    assert layer.count_params() == 384 and len(layer.trainable_weights) == 2


@pytest.mark.parametrize("shape, axis", [((6, 5), -1), ((3, 4, 5, 2), -1), ((3, 2, 4, 5), 1)])
def test_training_and_inference_match_reference(shape, axis):
    rng = np.random.default_rng(0)
    layer = BatchNormalization(
        axis=axis,
        momentum=0.9,
        gamma_initializer="uniform",
        beta_initializer="uniform",
        dtype="float64",
    )
    layer.build_for((None,) + shape[1:])
    x = rng.standard_normal(shape) * 3 + 2
    y_ref, mean, var = batch_norm_train_reference(x, layer.gamma, layer.beta, axis, 1e-3)
    np.testing.assert_allclose(layer.forward(x, training=True), y_ref, rtol=1e-10, atol=1e-12)
    layer.backward(rng.standard_normal(shape))
    layer.commit_updates()
    np.testing.assert_allclose(layer.moving_mean, 0.9 * 0 + 0.1 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, 0.9 * 1 + 0.1 * var, rtol=1e-12)  # biased var
    y_inf = batch_norm_inference_reference(
        x, layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance, axis, 1e-3
    )
    np.testing.assert_allclose(layer.forward(x, training=False), y_inf, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, axis", [((5, 3), -1), ((2, 3, 3, 2), -1), ((2, 2, 3, 3), 1)])
@pytest.mark.parametrize("center, scale", [(True, True), (False, True), (True, False)])
def test_gradients_finite_differences(shape, axis, center, scale):
    rng = np.random.default_rng(1)
    layer = BatchNormalization(
        axis=axis,
        center=center,
        scale=scale,
        dtype="float64",
        gamma_initializer="uniform",
        beta_initializer="uniform",
    )
    layer.build_for((None,) + shape[1:])
    check_layer_gradients(layer, rng.standard_normal(shape) * 2 + 1, rng)


def test_frozen_layer_runs_in_inference_mode_and_updates_nothing():
    rng = np.random.default_rng(2)
    layer = BatchNormalization(trainable=False, dtype="float64")
    layer.build_for((None, 4))
    layer.moving_mean[...] = [1, 2, 3, 4]
    layer.moving_variance[...] = [1, 4, 9, 16]
    x = rng.standard_normal((8, 4)) * 5
    before = layer.get_weights()
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(
        y, (x - [1, 2, 3, 4]) / np.sqrt(np.array([1, 4, 9, 16]) + 1e-3), rtol=1e-12
    )
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 4
    check_layer_gradients(layer, x, rng)  # dx = γ·dy/√(var + ε), the statistics are constants
    layer.commit_updates()
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unbiased_moving_variance_option():
    rng = np.random.default_rng(3)
    layer = BatchNormalization(momentum=0.0, unbiased_moving_variance=True, dtype="float64")
    layer.build_for((None, 3))
    x = rng.standard_normal((5, 3))
    layer.forward(x, training=True)
    layer.backward(np.ones((5, 3)))
    layer.commit_updates()
    np.testing.assert_allclose(layer.moving_variance, x.var(axis=0, ddof=1), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        layer.forward(x[:1], training=True)


def test_keras1_arguments():
    with pytest.warns(
        UserWarning,
        match=r"Update your `BatchNormalization` call to the Keras 2 API: "
        r"`BatchNormalization\(gamma_initializer=\"one\"\)`",
    ):
        BatchNormalization(gamma_init="one")
    BatchNormalization(mode=0)
    with pytest.raises(TypeError, match="`mode=1` and `mode=2` are no longer supported"):
        BatchNormalization(mode=2)
    with pytest.raises(TypeError, match="does not accept positional arguments"):
        BatchNormalization(1e-3)


def test_axis_errors():
    with pytest.raises(ValueError, match="is not a non-batch axis"):
        BatchNormalization(axis=0).build_for((None, 4))
    with pytest.raises(ValueError, match="should have a defined dimension"):
        BatchNormalization(axis=1).build_for((None, None, 3))


def _bn_model(momentum, input_shape=(10,)):
    model = Sequential()
    model.add(BatchNormalization(momentum=momentum, input_shape=input_shape))
    model.compile(loss="mse", optimizer="sgd")
    return model


def test_momentum_zero_inference_right_after_a_step_equals_training_output():
    """Keras's test: with momentum 0 the moving statistics become the last batch's, so inference
    on that batch right after the step gives the training output. lr=0 keeps γ, β and the Dense
    weights as they were, so the two outputs differ only by float32 rounding of two code paths
    (O(1) values: 1e-5)."""
    np.random.seed(4)
    model = Sequential()
    model.add(Dense(6, input_shape=(4,)))
    bn = BatchNormalization(momentum=0.0, beta_initializer="uniform", gamma_initializer="uniform")
    model.add(bn)
    model.compile(loss="mse", optimizer=SGD(lr=0.0))
    x = np.random.standard_normal((32, 4)).astype(np.float32) * 3 + 1
    y = np.random.standard_normal((32, 6)).astype(np.float32)
    training_out = bn.forward(model.layers[0].forward(x, training=False), training=True)
    bn.discard_updates()
    assert not np.allclose(model.predict(x), training_out, atol=1e-2)  # moving stats still 0 / 1
    model.train_on_batch(x, y)
    np.testing.assert_allclose(model.predict(x), training_out, rtol=1e-5, atol=1e-5)


def test_n5_10_data_fit_then_predict_is_standardised_keras_test():
    """Keras's own test: N(5, 10²) data, momentum 0.8, 4 epochs (batch 32), then
    (predict(x) − β)/γ has mean 0 and std 1 within 0.1 (over all values, as Keras checks)."""
    np.random.seed(5)
    model = _bn_model(0.8)
    x = np.random.normal(loc=5.0, scale=10.0, size=(1000, 10)).astype(np.float32)
    model.fit(x, x, epochs=4, verbose=0)
    bn = model.layers[0]
    out = (model.predict(x) - bn.beta) / bn.gamma
    assert abs(out.mean()) < 0.1 and abs(out.std() - 1.0) < 0.1


def test_n5_10_data_per_channel_and_moving_statistics():
    """The same per channel. The moving mean is an EMA (momentum 0.8) of batch means whose
    scatter is 10/√B; its error, in units of the std, is ≈ √(0.2/1.8)/√B: 0.059 for B = 32 (so
    some of 10 channels would miss 0.1 by chance), 0.029 for B = 128 (0.1 is 3.4 sigma). Hence
    batch 128 on 1024 samples (full batches; 32 updates make the initial 0/1 negligible)."""
    np.random.seed(5)
    model = _bn_model(0.8)
    x = np.random.normal(loc=5.0, scale=10.0, size=(1024, 10)).astype(np.float32)
    model.fit(x, x, batch_size=128, epochs=4, verbose=0)
    bn = model.layers[0]
    out = (model.predict(x) - bn.beta) / bn.gamma
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(out.std(axis=0), 1.0, atol=0.1)
    # 4 sigma of the EMA errors: mean 10·0.029·4 ≈ 1.2, variance 100·√(2/128)·0.33·4 ≈ 17
    np.testing.assert_allclose(bn.moving_mean, 5.0, atol=1.2)
    np.testing.assert_allclose(bn.moving_variance, 100.0, atol=17.0)


def test_n5_10_on_conv_shaped_input_channels_last():
    # per-channel statistics over N·H·W = 32·12 values per batch: error ≈ 0.333/√384 ≈ 0.017
    np.random.seed(6)
    model = _bn_model(0.8, input_shape=(3, 4, 4))
    x = np.random.normal(loc=5.0, scale=10.0, size=(320, 3, 4, 4)).astype(np.float32)
    model.fit(x, x, epochs=4, verbose=0)
    bn = model.layers[0]
    out = (model.predict(x) - bn.beta) / bn.gamma
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=0.1)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=0.1)


def test_unbiased_option_rejects_a_last_batch_of_one_before_training():
    np.random.seed(8)
    model = Sequential(
        [Dense(2, input_shape=(3,)), BatchNormalization(unbiased_moving_variance=True)]
    )
    model.compile(loss="mse", optimizer="sgd")
    before = model.get_weights()
    with pytest.raises(ValueError, match="a batch of 1 gives 1"):
        model.fit(np.zeros((33, 3)), np.zeros((33, 2)), batch_size=32, verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0
    model.fit(np.zeros((34, 3)), np.zeros((34, 2)), batch_size=32, verbose=0, epochs=1)
    assert model.optimizer.iterations == 2
