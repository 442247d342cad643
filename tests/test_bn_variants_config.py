"""The batch-norm variants (momentum=None, renorm, virtual batches, track_running_stats=False)
through get_config, model save / load and folding, and Layer.from_config for every layer class."""

import inspect

import numpy as np
import pytest
from reference_layers import requires_bn

import bnpy.layers
from bnpy.layers import BatchNormalization, Dense
from bnpy.models import Sequential, load_model
from bnpy.optimizers import SGD

pytestmark = requires_bn


def _comparable(config):
    """A config with objects (initializers, regularizers...) as (class name, their config)."""
    if hasattr(config, "get_config"):
        return (type(config).__name__, _comparable(config.get_config()))
    if isinstance(config, dict):
        return {k: _comparable(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_comparable(v) for v in config]
    return config


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
