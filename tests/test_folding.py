"""fold_batch_norm: which BN layers fold (and which stay), the folded predictions against the
original's, the original left untouched, use_bias=False, channels_first, compiled models."""

import numpy as np
import pytest
from reference_layers import build_article_model, requires_bn

from bnpy.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
)
from bnpy.layers.normalization import set_population_statistics
from bnpy.models import Sequential
from bnpy.utils import fold_batch_norm

pytestmark = requires_bn


def _randomize_bn(model, rng):
    """Moving statistics, gamma and beta far from their initial 0/1, so that a fold that forgot
    any of them changes the predictions."""
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            c = layer.moving_mean.shape[0]
            values = {
                "gamma": rng.uniform(0.5, 2.0, c) * rng.choice([-1, 1], c),
                "beta": rng.normal(0, 1, c),
                "moving_mean": rng.normal(0, 2, c),
                "moving_variance": rng.uniform(0.1, 5.0, c),
            }
            layer.set_weights([values[n.split("/")[-1][:-2]] for n in layer.weight_names])


def _types(model):
    return [type(layer).__name__ for layer in model.layers]


def _in_float64(model):
    """A float64 copy of ``model``: the reference the float32 models round away from."""
    copy = Sequential()
    for layer in model.layers:
        copy.add(type(layer)(**dict(layer.get_config(), dtype="float64")))
    for new, old in zip(copy.layers, model.layers):
        new.set_weights([w.astype(np.float64) for w in old.get_weights()])
    return copy


def test_article_network_folds_three_of_four_and_predicts_the_same():
    rng = np.random.RandomState(0)
    model = build_article_model(True, True, True, True)
    x = rng.uniform(0, 1, (32, 32, 32, 3)).astype(np.float32)
    # statistics as training would leave them (each BN's input statistics), gamma/beta moved
    set_population_statistics(model, x)
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            layer.gamma[...] = rng.uniform(0.5, 1.5, layer.gamma.shape)
            layer.beta[...] = rng.normal(0, 0.5, layer.beta.shape)
    before = [w.copy() for w in model.get_weights()]
    expected = model.predict(x)
    folded = fold_batch_norm(model)
    # BN after conv2d_1, conv2d_2 and dense_1 fold; the one after max pooling stays
    assert _types(folded) == [
        "Conv2D",
        "MaxPooling2D",
        "BatchNormalization",
        "Activation",
        "Conv2D",
        "Flatten",
        "Dense",
        "Activation",
        "Dense",
        "Activation",
    ]
    folded_away = {model.layers[i].name for i in (1, 6, 9)}
    assert [layer.name for layer in folded.layers] == [
        layer.name for layer in model.layers if layer.name not in folded_away
    ]
    got = folded.predict(x)
    assert got.dtype == np.float32
    # both round float32 sums of up to 363 products (conv2d_1) and 30,720 (dense_1): each is
    # a few 1e-6 from the float64 result, the folded one no further than the original
    truth = _in_float64(model).predict(x.astype(np.float64))
    original_error = np.max(np.abs(expected - truth) / truth)
    assert np.max(np.abs(got - truth) / truth) < max(2 * original_error, 1e-6)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=0)
    # the original is untouched, and does not share arrays with the new model
    assert len(model.layers) == 13
    for old, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, now)
    new_ids = {id(w) for w in folded.weights}
    assert not any(id(w) in new_ids for w in model.weights)


def test_fold_formula_in_float64_with_use_bias_false_and_dropout_between():
    rng = np.random.RandomState(1)
    model = Sequential()
    model.add(Dense(5, use_bias=False, input_shape=(4,), dtype="float64"))
    model.add(Dropout(0.5, dtype="float64"))
    model.add(BatchNormalization(epsilon=0.01, dtype="float64"))
    _randomize_bn(model, rng)
    folded = fold_batch_norm(model)
    assert _types(folded) == ["Dense", "Dropout"]
    dense = folded.layers[0]
    assert dense.use_bias and dense.bias is not None
    kernel = model.layers[0].kernel
    gamma, beta, mean, var = model.layers[2].get_weights()
    scale = gamma / np.sqrt(var + 0.01)
    np.testing.assert_allclose(dense.kernel, kernel * scale, rtol=1e-15)
    np.testing.assert_allclose(dense.bias, beta - mean * scale, rtol=1e-14, atol=1e-15)
    x = rng.normal(size=(7, 4))
    np.testing.assert_allclose(folded.predict(x), model.predict(x), rtol=1e-12, atol=1e-13)
    assert model.layers[0].bias is None  # the original keeps its configuration


def test_center_and_scale_off():
    rng = np.random.RandomState(2)
    model = Sequential()
    model.add(Dense(6, input_shape=(3,)))
    model.add(BatchNormalization(center=False, scale=False))
    _randomize_bn(model, rng)
    folded = fold_batch_norm(model)
    assert _types(folded) == ["Dense"]
    x = rng.normal(size=(9, 3)).astype(np.float32)
    np.testing.assert_allclose(folded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "between, folds",
    [
        ([], True),
        ([Dropout(0.3)], True),
        ([Activation("linear"), Dropout(0.1)], True),
        ([Activation("relu")], False),
        ([MaxPooling2D()], False),
    ],
)
def test_only_inference_noops_may_sit_between(between, folds):
    rng = np.random.RandomState(3)
    model = Sequential()
    model.add(Conv2D(4, (3, 3), padding="same", input_shape=(6, 6, 2)))
    for layer in between:
        model.add(layer)
    model.add(BatchNormalization())
    model.add(Flatten())
    _randomize_bn(model, rng)
    folded = fold_batch_norm(model)
    assert ("BatchNormalization" in _types(folded)) is not folds
    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(folded.predict(x), model.predict(x), rtol=1e-5, atol=1e-5)


def test_conv_with_activation_or_bn_on_another_axis_stays():
    model = Sequential()
    model.add(Conv2D(4, (3, 3), activation="relu", input_shape=(6, 6, 2)))
    model.add(BatchNormalization())
    model.add(Conv2D(3, (1, 1)))
    model.add(BatchNormalization(axis=1))  # rows, not the channels
    assert _types(fold_batch_norm(model)) == _types(model)


def test_channels_first_conv_folds_with_axis_1():
    rng = np.random.RandomState(4)
    model = Sequential()
    model.add(
        Conv2D(5, (3, 3), data_format="channels_first", use_bias=False, input_shape=(2, 7, 7))
    )
    model.add(BatchNormalization(axis=1))
    _randomize_bn(model, rng)
    folded = fold_batch_norm(model)
    assert _types(folded) == ["Conv2D"]
    x = rng.normal(size=(3, 2, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(folded.predict(x), model.predict(x), rtol=1e-5, atol=1e-5)


def test_bn_without_running_statistics_at_inference_stays():
    model = Sequential()
    model.add(Dense(3, input_shape=(2,)))
    model.add(BatchNormalization(track_running_stats=False))  # batch statistics at inference
    assert _types(fold_batch_norm(model)) == ["Dense", "BatchNormalization"]


def test_frozen_bn_folds_and_compiled_model_gives_compiled_result():
    rng = np.random.RandomState(5)
    model = Sequential()
    model.add(Dense(4, input_shape=(3,)))
    model.add(BatchNormalization(trainable=False))
    model.add(Activation("softmax"))
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    _randomize_bn(model, rng)
    folded = fold_batch_norm(model)
    assert _types(folded) == ["Dense", "Activation"]
    x = rng.normal(size=(10, 3)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.randint(0, 4, 10)]
    assert folded.metrics_names == ["loss", "acc"]
    assert folded.optimizer is not model.optimizer
    np.testing.assert_allclose(
        folded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-5
    )


def test_bad_input():
    with pytest.raises(TypeError, match="expected a bnpy Sequential model, got list"):
        fold_batch_norm([Dense(2)])
    with pytest.raises(ValueError, match="no layers"):
        fold_batch_norm(Sequential())
