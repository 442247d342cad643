"""Sequential.save / load_model (bnpy.saving): whole models in one file, Keras 2.0's model.save.

A loaded model must predict the same bits as the saved one, and, compiled with the saved
optimizer and its state, train on exactly as the saved one would have (weights bitwise equal after
more steps, for every optimizer). Bad files and what cannot be saved raise ValueError, and leave
any existing file as it was."""

import json
import os

import numpy as np
import pytest
from reference_layers import build_article_model, requires_conv

from bnpy import constraints, losses, regularizers, saving
from bnpy.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
    Reshape,
    ZeroPadding2D,
)
from bnpy.models import Sequential, load_model, save_model

OPTIMIZERS = ["sgd", "rmsprop", "adagrad", "adadelta", "adam", "adamax", "nadam"]


def every_layer_model():
    """One of each layer type, with a dilated convolution, a regularizer and a constraint."""
    model = Sequential(name="every_layer")
    model.add(ZeroPadding2D(1, input_shape=(8, 8, 3)))
    model.add(Conv2D(8, 3, dilation_rate=2, kernel_regularizer=regularizers.l2(0.01)))
    model.add(BatchNormalization(momentum=0.9))
    model.add(Activation("relu"))
    model.add(MaxPooling2D())
    model.add(Flatten())
    model.add(Reshape((8, 9)))
    model.add(Flatten())
    model.add(Dropout(0.3))
    model.add(Dense(5, kernel_constraint=constraints.max_norm(2.0)))
    model.add(Activation("softmax"))
    return model


def data(seed=0, n=16):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8, 8, 3)).astype(np.float32)
    y = np.eye(5, dtype=np.float32)[rng.integers(0, 5, n)]
    return x, y


def train_steps(model, x, y, steps, seed):
    np.random.seed(seed)  # Dropout's masks
    return [model.train_on_batch(x, y) for _ in range(steps)]


def config_of(model):
    """The model's layer configs as the file stores them (objects as class name and config)."""
    return [saving._layer_config(layer) for layer in model.layers]


def summary_text(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


@requires_conv
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_a_loaded_model_predicts_and_trains_on_as_the_saved_one(tmp_path, optimizer):
    x, y = data()
    model = every_layer_model()
    model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
    train_steps(model, x, y, 3, seed=1)
    path = str(tmp_path / "model.npz")
    model.save(path)
    loaded = load_model(path)
    assert loaded.name == model.name
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert config_of(loaded) == config_of(model)
    assert summary_text(loaded) == summary_text(model)
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == 3
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert train_steps(loaded, x, y, 2, seed=2) == train_steps(model, x, y, 2, seed=2)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@requires_conv
def test_the_article_network_round_trips(tmp_path):
    model = build_article_model(True, True, True, True)
    model.compile("adadelta", "categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path / "article.npz"
    model.save(path)
    loaded = load_model(path)
    assert summary_text(loaded) == summary_text(model)
    x = np.random.default_rng(3).standard_normal((4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.count_params() == model.count_params()


def test_save_model_is_model_save(tmp_path):
    """bnpy.models.save_model (Keras 2.0's keras.models.save_model) writes what model.save writes;
    anything but a Sequential is a TypeError, and overwrite=False keeps an existing file."""
    x, y = data()
    model = Sequential([Flatten(input_shape=x.shape[1:]), Dense(5, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    save_model(model, tmp_path / "a.npz")
    model.save(tmp_path / "b.npz")
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a.files == b.files  # the same entries (the zip's timestamps may differ)
        for name in a.files:
            np.testing.assert_array_equal(a[name], b[name])
    np.testing.assert_array_equal(load_model(tmp_path / "a.npz").predict(x), model.predict(x))
    with pytest.raises(FileExistsError):
        save_model(model, tmp_path / "a.npz", overwrite=False)
    with pytest.raises(TypeError, match="save_model: model must be a bnpy Sequential, got Flatten"):
        save_model(model.layers[0], tmp_path / "c.npz")


@requires_conv
def test_uncompiled_and_compile_false(tmp_path):
    x, _ = data()
    model = every_layer_model()
    model.save(tmp_path / "plain.npz")
    loaded = load_model(tmp_path / "plain.npz")
    assert loaded.optimizer is None
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    model.compile("sgd", "mse")
    model.save(tmp_path / "compiled.npz")
    assert load_model(tmp_path / "compiled.npz", compile=False).optimizer is None
    assert load_model(tmp_path / "compiled.npz").loss == "mse"


@requires_conv
def test_load_weights_reads_a_model_file(tmp_path):
    model = every_layer_model()
    model.save(tmp_path / "m.npz")
    other = every_layer_model()
    other.load_weights(tmp_path / "m.npz")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


class Doubled(Dense):
    """A layer class bnpy does not know: load_model needs it in custom_objects."""


def my_loss(y_true, y_pred):
    return losses.mean_squared_error(y_true, y_pred)


my_loss.gradient = losses.mean_squared_error.gradient


def test_custom_objects(tmp_path):
    model = Sequential([Doubled(3, input_shape=(4,)), Dense(2)])
    model.compile("adam", my_loss)
    x = np.random.default_rng(4).standard_normal((6, 4)).astype(np.float32)
    model.train_on_batch(x, np.zeros((6, 2), np.float32))
    path = tmp_path / "custom.npz"
    model.save(path)
    with pytest.raises(
        ValueError, match="unknown layer class 'Doubled' \\(pass it in custom_objects\\)"
    ):
        load_model(path)
    with pytest.raises(ValueError, match="unknown loss 'my_loss'"):
        load_model(path, custom_objects={"Doubled": Doubled})
    loaded = load_model(path, custom_objects={"Doubled": Doubled, "my_loss": my_loss})
    assert isinstance(loaded.layers[0], Doubled) and loaded.loss is my_loss
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.optimizer.iterations == 1


def test_a_plain_initializer_function_is_left_out(tmp_path):
    """An initializer that is a plain function cannot be written; the weights it made are, so the
    loaded layer takes the default initializer and the same weights."""
    model = Sequential(
        [Dense(2, input_shape=(3,), kernel_initializer=lambda shape, dtype: np.ones(shape, dtype))]
    )
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.layers[0].kernel, np.ones((3, 2), np.float32))


def test_bad_files_and_unsavable_models(tmp_path):
    model = Sequential([Dense(2, input_shape=(3,))])
    weights_file = tmp_path / "weights.npz"
    model.save_weights(weights_file)
    with pytest.raises(ValueError, match="is not a bnpy model file"):
        load_model(weights_file)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="load_model: .* is not a readable bnpy model file"):
        load_model(garbage)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")
    # overwrite=False keeps the file; a model that cannot be written leaves nothing behind
    path = tmp_path / "m.npz"
    model.save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)
    strange = Sequential([Dense(2, input_shape=(3,), kernel_regularizer=regularizers.l2(0.1))])
    strange.layers[0].kernel_regularizer = lambda w: 0.0  # not a bnpy Regularizer
    with pytest.raises(ValueError, match="cannot save dense_.*kernel_regularizer"):
        strange.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["garbage.npz", "m.npz", "weights.npz"]


def _rewrite(path, out, changes):
    """A copy of the model file at ``path`` with the entries of ``changes`` replaced (None
    deletes one)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    for key, value in changes.items():
        if value is None:
            arrays.pop(key, None)
        else:
            arrays[key] = np.array(value)
    np.savez(out, **arrays)
    return out


def _damaged_configs(config):
    """Configs that save never writes: each must give a ValueError, nothing else."""
    layers = config["config"]["layers"]
    yield "[]"
    yield json.dumps({"class_name": "Sequential"})
    yield json.dumps({"class_name": "Sequential", "config": {"layers": 5}})
    yield json.dumps({"class_name": "Sequential", "config": {"layers": [5]}})
    yield json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "os"}]}})
    for i, layer in enumerate(layers):
        for key in list(layer["config"]):
            damaged = json.loads(json.dumps(config))
            del damaged["config"]["layers"][i]["config"][key]
            yield json.dumps(damaged)
            for bad in ("x", -1, [1, 2, 3], {"class_name": "Nope", "config": {}}, None):
                damaged = json.loads(json.dumps(config))
                damaged["config"]["layers"][i]["config"][key] = bad
                yield json.dumps(damaged)
        damaged = json.loads(json.dumps(config))
        damaged["config"]["layers"][i]["config"]["unexpected"] = 1
        yield json.dumps(damaged)
    yield json.dumps(dict(config, config=dict(config["config"], layers=layers[:-1])))
    yield json.dumps(dict(config, config=dict(config["config"], layers=layers + layers[-1:])))


@requires_conv
def test_damaged_files_raise_value_error_only(tmp_path):
    """Every entry of a model file deleted or given a wrong type or value, one at a time: a
    ValueError that starts with "load_model:", or, where the change is harmless (a layer's name or
    an initializer dropped, say), a model that loads; never another exception. The changes that
    cannot be harmless are all refused."""
    x, y = data()
    model = every_layer_model()
    model.compile("nadam", "categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(x, y)
    path = str(tmp_path / "model.npz")
    model.save(path)
    with np.load(path, allow_pickle=False) as archive:
        config = json.loads(str(archive["__model_config__"]))
        keys = list(archive.files)
    sgd = {"class_name": "SGD", "config": {}}
    must_refuse = [
        {"__model_config__": text}
        for text in (
            "[]",
            "not json",
            json.dumps({"class_name": "Sequential", "config": {"layers": 5}}),
            json.dumps({"class_name": "Sequential", "config": {"layers": [{"class_name": "os"}]}}),
        )
    ]
    must_refuse += [
        {"__training_config__": json.dumps(c)}
        for c in (
            {},
            [1],
            {
                "optimizer_config": {"class_name": "Nope", "config": {}},
                "loss": "mse",
                "metrics": [],
            },
            {
                "optimizer_config": {"class_name": "SGD", "config": {"x": 1}},
                "loss": "mse",
                "metrics": [],
            },
            {"optimizer_config": sgd, "loss": "nope", "metrics": []},
            {"optimizer_config": sgd, "loss": "mse", "metrics": ["nope"]},
        )
    ]
    must_refuse += [
        {key: None}
        for key in keys
        if key.startswith("__optimizer__/")
        and "/" not in key[len("__optimizer__/") :]
        or "/kernel:0" in key
        or key in ("__format__", "__model_config__", "__weight_names__")
    ]
    must_refuse += [{"__optimizer__/iterations": v} for v in (-3, 2.5, "text")]
    must_refuse += [
        {"__optimizer__/m_schedule": np.nan},
        {"__optimizer__/0/0": np.zeros(7)},
        {"__optimizer__/0/0": "text"},
    ]
    harmless_or_refused = [{"__model_config__": text} for text in _damaged_configs(config)]
    harmless_or_refused += [{key: None} for key in keys]
    out = str(tmp_path / "damaged.npz")
    for changes, must in [(c, True) for c in must_refuse] + [
        (c, False) for c in harmless_or_refused
    ]:
        _rewrite(path, out, changes)
        try:
            load_model(out)
        except ValueError as exc:
            assert str(exc).startswith("load_model:"), exc
        else:
            assert not must, "loaded a model from a file with {}".format(sorted(changes))


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@pytest.mark.parametrize("user_block", [0, 512, 2048])
def test_a_keras_hdf5_file_is_named_as_such(tmp_path, user_block):
    """An HDF5 file (signature at 0, or after a user block at 512, 1024, 2048 ...) is a Keras .h5:
    the error says so and that bnpy reads .npz, instead of NumPy's hint at allow_pickle.
    (load_weights reads Keras .h5 files: tests/test_keras_h5.py.)"""
    path = tmp_path / "model.h5"
    path.write_bytes(b"\x00" * user_block + HDF5_SIGNATURE + bytes(range(256)) * 8)
    for load, function in ((load_model, "load_model"),):
        with pytest.raises(ValueError) as info:
            load(str(path))
        message = str(info.value)
        assert (
            message.startswith(function + ": ")
            and "model.h5 is an HDF5 file (a Keras .h5" in message
        )
        assert "bnpy reads .npz" in message and "allow_pickle" not in message


def test_a_file_that_is_not_hdf5_is_not_called_so(tmp_path):
    path = tmp_path / "not.h5"
    path.write_bytes(b"\x00" * 100 + HDF5_SIGNATURE + b"\x00" * 1000)  # not at 0 or 512 * 2**k
    with pytest.raises(ValueError, match="is not a readable bnpy weights file") as info:
        Sequential([Dense(2, input_shape=(3,))]).load_weights(str(path))
    assert "HDF5" not in str(info.value)


@pytest.mark.parametrize(
    "entry, base",
    [
        ("kernel_initializer", "Initializer"),
        ("kernel_regularizer", "Regularizer"),
        ("kernel_constraint", "Constraint"),
    ],
)
def test_a_file_naming_an_abstract_base_class_gives_the_documented_value_error(
    tmp_path, entry, base
):
    path = str(tmp_path / "m.npz")
    Sequential([Dense(2, input_shape=(3,))]).save(path)
    with np.load(path, allow_pickle=False) as archive:
        config = json.loads(str(archive["__model_config__"]))
    config["config"]["layers"][0]["config"][entry] = {"class_name": base, "config": {}}
    out = _rewrite(path, str(tmp_path / "base.npz"), {"__model_config__": json.dumps(config)})
    with pytest.raises(
        ValueError,
        match="load_model: the config entry '{}' names {}, the base class".format(entry, base),
    ):
        load_model(out)


def test_a_custom_layer_whose_build_writes_its_weights_still_loads(tmp_path):
    """load_model's dry build hands out read-only zero-stride placeholders; a layer whose build
    writes into its new weights cannot be dry-built, and then the real build does the checking."""

    class Identity(Dense):
        def build(self, input_shape):
            super().build(input_shape)
            self.kernel[...] = np.eye(*self.kernel.shape, dtype=self.kernel.dtype)

    model = Sequential([Identity(3, input_shape=(3,))])
    model.layers[0].kernel[...] = 2.0
    path = str(tmp_path / "custom.npz")
    model.save(path)
    loaded = load_model(path, custom_objects={"Identity": Identity})
    np.testing.assert_array_equal(loaded.layers[0].kernel, np.full((3, 3), 2.0, np.float32))
