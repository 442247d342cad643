"""Sequential: construction, compile, the training loop against a hand-written NumPy step, fit's
History and console output, evaluate/predict, generators, weights I/O, interruption."""

import os
import pathlib
import re
import zipfile

import numpy as np
import pytest

from bnpy import callbacks, regularizers
from bnpy.constraints import NonNeg
from bnpy.engine import reset_layer_names
from bnpy.initializers import Constant
from bnpy.layers import Activation, BatchNormalization, Conv2D, Dense, Dropout, Flatten
from bnpy.models import Sequential
from bnpy.optimizers import SGD
from bnpy.utils.np_utils import to_categorical


def _data(n=40, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = to_categorical((x @ rng.standard_normal((d, k))).argmax(axis=1), k)
    return x, y


def _softmax_model(d=4, k=3, optimizer="sgd", seed=1, **dense_kwargs):
    np.random.seed(seed)
    model = Sequential()
    model.add(Dense(k, input_shape=(d,), **dense_kwargs))
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


# -- construction ----------------------------------------------------------------------------
def test_first_layer_needs_input_shape():
    with pytest.raises(
        ValueError,
        match="The first layer in a Sequential model must get an `input_shape` "
        "or `batch_input_shape` argument.",
    ):
        Sequential().add(Dense(3))
    with pytest.raises(TypeError, match="must be an instance of class Layer"):
        Sequential().add("dense")


def test_shape_error_raised_at_add_and_model_unchanged():
    model = Sequential([Dense(3, input_shape=(4,))])
    with pytest.raises(ValueError, match="Conv2D expects 4-D input"):
        model.add(Conv2D(2, 3))
    assert len(model.layers) == 1 and model.output_shape == (None, 3)
    model.add(Dense(2))
    assert model.output_shape == (None, 2) and model.input_shape == (None, 4)
    assert model.layers[0].need_input_gradient is False and model.layers[1].need_input_gradient


def test_batch_input_shape_and_input_name():
    reset_layer_names()
    model = Sequential()
    model.add(Dense(2, batch_input_shape=(8, 5)))
    assert model.input_shape == (8, 5) and model.input_name == "dense_1_input"


def test_compile_picks_accuracy_and_string_optimizer():
    model = _softmax_model(optimizer="Adadelta")
    assert model.metrics_names == ["loss", "acc"]
    assert type(model.optimizer).__name__ == "Adadelta" and model.optimizer.lr == 1.0
    with pytest.raises(ValueError, match="Unknown loss function"):
        model.compile(loss="cross", optimizer="sgd")
    with pytest.raises(RuntimeError, match="compile your model"):
        Sequential([Dense(1, input_shape=(2,))]).fit(np.zeros((2, 2)), np.zeros((2, 1)))


# -- the training step -----------------------------------------------------------------------
def test_one_training_step_matches_numpy():
    """Dense → softmax, categorical cross-entropy, SGD: loss, gradients and update by hand."""
    x, y = _data(n=8)
    model = _softmax_model(optimizer=SGD(lr=0.5))
    w, b = (a.astype(np.float64) for a in model.get_weights())
    z = x @ w + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.mean(np.sum(y * np.log(p), axis=1))
    acc = np.mean(p.argmax(1) == y.argmax(1))
    dz = (p - y) / len(x)
    out = model.train_on_batch(x, y)
    # float32 forward of O(1) values against float64: 1e-6 relative
    np.testing.assert_allclose(out, [loss, acc], rtol=1e-5)
    np.testing.assert_allclose(model.layers[0].kernel, w - 0.5 * x.T @ dz, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.layers[0].bias, b - 0.5 * dz.sum(0), rtol=1e-5, atol=1e-6)


def test_train_on_batch_reports_loss_before_the_update():
    x, y = _data()
    model = _softmax_model()
    before = model.test_on_batch(x, y)
    np.testing.assert_allclose(model.train_on_batch(x, y), before, rtol=1e-6)
    assert model.test_on_batch(x, y)[0] < before[0]


def test_l2_regularizer_in_loss_and_gradient():
    x, y = _data(n=8)
    model = _softmax_model(optimizer=SGD(lr=0.1), kernel_regularizer=regularizers.l2(0.01))
    plain = _softmax_model(optimizer=SGD(lr=0.1))
    w = model.layers[0].kernel.astype(np.float64)
    loss = model.train_on_batch(x, y)[0]
    loss_plain = plain.train_on_batch(x, y)[0]
    np.testing.assert_allclose(loss - loss_plain, 0.01 * np.sum(w**2), rtol=1e-4)
    # the only difference of the two updates is lr·2·l·w
    np.testing.assert_allclose(
        plain.layers[0].kernel - model.layers[0].kernel, 0.1 * 2 * 0.01 * w, rtol=1e-3, atol=1e-7
    )


def test_sample_weight_is_keras_weighted_mean():
    x, y = _data(n=6)
    model = _softmax_model()
    per_sample = -np.sum(y * np.log(np.clip(model.predict(x).astype(np.float64), 1e-7, 1)), axis=1)
    w = np.array([1.0, 0.0, 2.0, 0.0, 1.0, 1.0])
    expected = np.mean(per_sample * w) / np.mean(w != 0)
    np.testing.assert_allclose(model.test_on_batch(x, y, sample_weight=w)[0], expected, rtol=1e-5)


def test_constraint_applied_after_update_and_frozen_layer_unchanged():
    x, y = _data()
    model = _softmax_model(optimizer=SGD(lr=1.0), kernel_constraint=NonNeg())
    model.fit(x, y, epochs=2, verbose=0)
    assert model.layers[0].kernel.min() >= 0
    frozen = _softmax_model(trainable=False)
    before = frozen.get_weights()
    frozen.fit(x, y, epochs=1, verbose=0)
    for a, b in zip(before, frozen.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- fit ---------------------------------------------------------------------------------------
def test_history_keys_order_and_weighted_epoch_means():
    x, y = _data(n=50)
    model = _softmax_model()
    batches = []
    recorder = callbacks.LambdaCallback(
        on_batch_end=lambda b, logs: batches.append((logs["size"], logs["loss"], logs["acc"]))
    )
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        verbose=0,
        validation_data=(x[:10], y[:10]),
        callbacks=[recorder],
    )
    assert list(history.history) == ["val_loss", "val_acc", "loss", "acc"]
    assert [b[0] for b in batches] == [16, 16, 16, 2]
    sizes = np.array([b[0] for b in batches])
    np.testing.assert_allclose(
        history.history["loss"][0], np.dot(sizes, [b[1] for b in batches]) / 50
    )
    np.testing.assert_allclose(
        history.history["acc"][0], np.dot(sizes, [b[2] for b in batches]) / 50
    )
    np.testing.assert_allclose(
        [history.history["val_loss"][0], history.history["val_acc"][0]],
        model.evaluate(x[:10], y[:10], verbose=0),
        rtol=1e-12,
    )
    assert history.params["metrics"] == ["loss", "acc", "val_loss", "val_acc"]
    assert history.params["samples"] == 50 and history.epoch == [0]


def test_validation_split_takes_the_last_samples():
    x, y = _data(n=50)
    model = _softmax_model()
    history = model.fit(x, y, epochs=1, verbose=0, validation_split=0.2)
    np.testing.assert_allclose(
        [history.history["val_loss"][0], history.history["val_acc"][0]],
        model.evaluate(x[40:], y[40:], verbose=0),
        rtol=1e-12,
    )


def test_validation_data_of_the_wrong_length_is_refused():
    x, y = _data(n=20)
    model = _softmax_model()
    with pytest.raises(ValueError, match="must contain 2 .* contains 1 items"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x,))


def test_fit_is_reproducible_with_np_random_seed():
    x, y = _data(n=64)

    def run():
        np.random.seed(123)
        model = Sequential()
        model.add(Dense(8, input_shape=(4,), activation="relu"))
        model.add(Dropout(0.3))
        model.add(Dense(3, activation="softmax"))
        model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["acc"])
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0)
        return model.get_weights(), history.history

    (w1, h1), (w2, h2) = run(), run()
    assert h1 == h2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


def test_evaluate_is_exact_mean_over_samples():
    x, y = _data(n=37)
    model = _softmax_model()
    p = model.predict(x, batch_size=37).astype(np.float64)
    loss = np.mean(
        -np.sum(y * np.log(np.clip(p / p.sum(1, keepdims=True), 1e-7, 1 - 1e-7)), axis=1)
    )
    acc = np.mean(p.argmax(1) == y.argmax(1))
    np.testing.assert_allclose(
        model.evaluate(x, y, batch_size=5, verbose=0), [loss, acc], rtol=1e-6
    )


def test_fit_console_output_verbose_1_and_2(capsys):
    x, y = _data(n=40)
    model = _softmax_model()
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=1, validation_data=(x[:10], y[:10]))
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Train on 40 samples, validate on 10 samples"
    assert out[1] == "Epoch 1/2"
    h = history.history
    assert re.fullmatch(
        r"40/40 \[==============================\] - \d+s - loss: %.4f - acc: %.4f - "
        r"val_loss: %.4f - val_acc: %.4f"
        % (h["loss"][0], h["acc"][0], h["val_loss"][0], h["val_acc"][0]),
        out[2],
    ), out[2]
    assert out[3] == "Epoch 2/2" and len(out) == 5
    model.fit(x, y, epochs=1, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Epoch 1/1"
    assert re.fullmatch(r"\d+s - loss: \d\.\d{4} - acc: \d\.\d{4}", out[1])


def test_fit_initial_epoch_and_keyword_errors(capsys):
    x, y = _data()
    model = _softmax_model()
    history = model.fit(x, y, epochs=4, initial_epoch=2, verbose=1)
    assert history.epoch == [2, 3]
    assert capsys.readouterr().out.splitlines()[0] == "Epoch 3/4"
    with pytest.warns(
        UserWarning, match="The `nb_epoch` argument in `fit` has been renamed `epochs`."
    ):
        model.fit(x, y, nb_epoch=1, verbose=0)
    with pytest.raises(TypeError, match="Unrecognized keyword arguments"):
        model.fit(x, y, epoch=1, verbose=0)


def test_input_and_target_checks():
    x, y = _data()
    model = _softmax_model()
    with pytest.raises(
        ValueError,
        match=r"expected dense_\d+_input to have shape \(None, 4\) but got "
        r"array with shape \(40, 5\)",
    ):
        model.fit(np.zeros((40, 5)), y, verbose=0)
    with pytest.raises(ValueError, match="while using as loss `categorical_crossentropy`"):
        model.fit(x, y.argmax(1), verbose=0)
    with pytest.raises(ValueError, match="Found 40 input samples and 39 target samples"):
        model.fit(x, y[:39], verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)


def test_sparse_categorical_targets():
    x, y = _data()
    np.random.seed(2)
    model = Sequential([Dense(3, input_shape=(4,), activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    dense_loss = _softmax_model(seed=2).evaluate(x, y, verbose=0)
    np.testing.assert_allclose(model.evaluate(x, y.argmax(1), verbose=0), dense_loss, rtol=1e-6)


def test_predict_variants():
    x, y = _data(n=10)
    model = _softmax_model()
    p = model.predict(x, batch_size=3)
    assert p.shape == (10, 3) and p.dtype == np.float32
    np.testing.assert_array_equal(model.predict_classes(x, verbose=0), p.argmax(1))
    np.testing.assert_allclose(model.predict_on_batch(x), p, rtol=1e-6)
    linear = Sequential(
        [Dense(1, input_shape=(4,), bias_initializer=Constant(2.0), kernel_initializer="zeros")]
    )
    np.testing.assert_array_equal(linear.predict_classes(x, verbose=0), np.ones((10, 1), np.int32))
    with pytest.warns(UserWarning, match="invalid probability values"):
        linear.predict_proba(x, verbose=0)


# -- generators --------------------------------------------------------------------------------
def _batches_forever(x, y, batch_size):
    while True:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size], y[start : start + batch_size]


def test_fit_generator_and_evaluate_generator(capsys):
    x, y = _data(n=40)
    model = _softmax_model()
    history = model.fit_generator(
        _batches_forever(x, y, 10), steps_per_epoch=4, epochs=2, validation_data=(x, y), verbose=1
    )
    assert list(history.history) == ["val_loss", "val_acc", "loss", "acc"]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[1].startswith("4/4 [==============================]")
    np.testing.assert_allclose(
        model.evaluate_generator(_batches_forever(x, y, 10), steps=4),
        model.evaluate(x, y, verbose=0),
        rtol=1e-12,
    )
    val_gen = model.fit_generator(
        _batches_forever(x, y, 10),
        4,
        epochs=1,
        verbose=0,
        validation_data=_batches_forever(x, y, 20),
        validation_steps=2,
    )
    assert len(val_gen.history["val_loss"]) == 1


def test_fit_generator_keras1_arguments():
    x, y = _data(n=40)
    model = _softmax_model()

    class Flow:
        batch_size = 10

        def __iter__(self):
            return _batches_forever(x, y, 10)

    with pytest.warns(UserWarning) as record:
        history = model.fit_generator(Flow(), samples_per_epoch=40, nb_epoch=2, verbose=0)
    assert any(
        "Update your `fit_generator` call to the Keras 2 API" in str(w.message) for w in record
    )
    assert history.epoch == [0, 1]
    with pytest.raises(ValueError, match="output of generator should be a tuple"):
        model.fit_generator(iter([x]), steps_per_epoch=1, verbose=0)


# -- weights -----------------------------------------------------------------------------------
def _bn_model(seed=3):
    np.random.seed(seed)
    model = Sequential()
    model.add(Dense(5, input_shape=(4,)))
    model.add(BatchNormalization())
    model.add(Dense(3, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adadelta", metrics=["acc"])
    return model


def test_get_set_weights_round_trip_and_errors():
    model, other = _bn_model(3), _bn_model(4)
    other.set_weights(model.get_weights())
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(model.get_weights()) == 2 + 4 + 2
    before = other.get_weights()
    bad = model.get_weights()
    bad[-1] = np.zeros(4)
    with pytest.raises(ValueError, match="has shape"):
        other.set_weights(bad)
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_set_weights_with_the_models_own_arrays_swapped_reads_every_input_first():
    """Inputs that are the model's own weight arrays (views of them too) are read before any
    weight is written: a swap swaps."""
    model = Sequential([Dense(3, use_bias=False, input_shape=(3,)), Dense(3, use_bias=False)])
    first, second = model.get_weights()
    model.set_weights([model.weights[1], model.weights[0]])
    np.testing.assert_array_equal(model.weights[0], second)
    np.testing.assert_array_equal(model.weights[1], first)
    model.set_weights([model.weights[0][::-1], model.weights[1].T])  # overlapping views
    np.testing.assert_array_equal(model.weights[0], second[::-1])
    np.testing.assert_array_equal(model.weights[1], first.T)
    layer = model.layers[0]
    layer.set_weights([layer.weights[0].T])
    np.testing.assert_array_equal(layer.weights[0], second[::-1].T)


def test_set_weights_refuses_a_bad_dtype_before_writing_anything():
    model = _bn_model(3)
    before = model.get_weights()
    bad = model.get_weights()
    bad[-1] = bad[-1].astype(np.complex64)  # the last weight fails the cast, after the others
    with pytest.raises(
        TypeError,
        match=r"weight 7 \(.*bias:0\) has dtype float32, got an array of "
        r"dtype complex64",
    ):
        model.set_weights([w + 1 for w in bad[:-1]] + bad[-1:])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="weight 1 has dtype float32, got an array of dtype <U1"):
        model.layers[0].set_weights([before[0], np.array(["a"] * 5)])
    np.testing.assert_array_equal(model.layers[0].weights[0], before[0])


def test_save_load_weights_round_trip(tmp_path):
    x, y = _data()
    model = _bn_model()
    model.fit(x, y, epochs=1, verbose=0)
    path = str(tmp_path / "weights.npz")
    model.save_weights(path)
    assert os.listdir(str(tmp_path)) == ["weights.npz"]  # no temporary file left behind
    with np.load(path, allow_pickle=False) as f:
        assert str(f["__format__"]) == "bnpy-weights-1"
        assert list(f["__weight_names__"])[:3] == [
            model.layers[0].name + "/kernel:0",
            model.layers[0].name + "/bias:0",
            model.layers[1].name + "/gamma:0",
        ]
    other = _bn_model(seed=9)  # different layer names: matched by order, as Keras does
    other.load_weights(path)
    np.testing.assert_allclose(other.predict(x), model.predict(x), rtol=0, atol=0)
    with pytest.raises(FileExistsError):
        model.save_weights(path, overwrite=False)


def test_save_weights_failure_leaves_the_old_file(tmp_path, monkeypatch):
    model = _bn_model()
    path = str(tmp_path / "w.npz")
    model.save_weights(path)
    original = pathlib.Path(path).read_bytes()
    model.layers[0].kernel[...] += 1

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        model.save_weights(path)
    assert pathlib.Path(path).read_bytes() == original and os.listdir(str(tmp_path)) == ["w.npz"]


def _assert_unchanged(model, before):
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_weights_checks_everything_before_changing_anything(tmp_path):
    model = _bn_model()
    path = str(tmp_path / "w.npz")
    model.save_weights(path)
    target = _bn_model(seed=5)
    before = target.get_weights()
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    names = [str(n) for n in arrays["__weight_names__"]]

    def write(name, **changes):
        p = str(tmp_path / name)
        np.savez(p, **dict(arrays, **changes))
        return p

    last = names[-1]  # the last weight: an early-exit loader would already have copied the rest
    cases = {
        write("shape.npz", **{last: np.zeros(7, np.float32)}): "has shape",
        write("dtype.npz", **{last: arrays[last].astype(np.float64)}): "dtype",
        write("count.npz", __weight_names__=np.array(names[:4] + names[6:])): "expects 4 weights",
        write("format.npz", __format__=np.array("other")): "not a bnpy weights file",
    }
    renamed = [n.replace("moving_variance", "running_std") for n in names]
    cases[
        write(
            "names.npz",
            __weight_names__=np.array(renamed),
            **{r: arrays[n] for r, n in zip(renamed, names)},
        )
    ] = "expects weight 'moving_variance:0', the file has 'running_std:0'"
    for p, message in cases.items():
        with pytest.raises(ValueError, match=message):
            target.load_weights(p)
        _assert_unchanged(target, before)
    pickled = str(tmp_path / "pickled.npz")
    np.savez(
        pickled,
        __format__=np.array("bnpy-weights-1"),
        __weight_names__=np.array([None], dtype=object),
    )
    garbage = str(tmp_path / "garbage.npz")
    with open(garbage, "wb") as f:
        f.write(b"not a zip file")
    for p in (pickled, garbage):
        with pytest.raises(ValueError, match="not a readable bnpy weights file"):
            target.load_weights(p)
        _assert_unchanged(target, before)
    fewer = Sequential([Dense(3, input_shape=(4,))])
    with pytest.raises(ValueError, match="containing 3 layers into a model with 1 layers"):
        fewer.load_weights(path)
    assert zipfile.is_zipfile(path)


# -- interruption ------------------------------------------------------------------------------
def test_keyboard_interrupt_keeps_the_last_finished_batch():
    """Ctrl-C in the middle of batch 3's backward: weights, optimizer steps and BN moving
    statistics are those after batch 2."""
    x, y = _data(n=64)
    model = _bn_model()
    snapshots = []
    record = callbacks.LambdaCallback(
        on_batch_end=lambda b, logs: snapshots.append(model.get_weights())
    )
    bn_layer = model.layers[1]
    real_backward = bn_layer.backward
    calls = {"n": 0}

    def interrupted_backward(dy):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_backward(dy)

    bn_layer.backward = interrupted_backward
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[record], shuffle=False)
    assert len(snapshots) == 2 and model.optimizer.iterations == 2
    _assert_unchanged(model, snapshots[-1])
    bn_layer.backward = real_backward
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # and the model still trains
    assert model.optimizer.iterations == 2 + 8


def test_ctrl_c_while_updates_are_applied_is_delivered_afterwards():
    """SIGINT arriving inside the update phase is held back until the updates are complete."""
    import signal

    from bnpy._training import DeferKeyboardInterrupt

    done = []
    with pytest.raises(KeyboardInterrupt):
        with DeferKeyboardInterrupt():
            os.kill(os.getpid(), signal.SIGINT)
            done.append("updates finished")
    assert done == ["updates finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_missing_or_non_numeric_data_is_a_clear_error():
    x, y = _data()
    model = _softmax_model()
    with pytest.raises(ValueError, match="Error when checking input: expected an array"):
        model.fit(None, y, verbose=0)
    with pytest.raises(TypeError, match="expected a numeric array, got dtype <U"):
        model.predict(np.full((2, 4), "a"))
    with pytest.raises(ValueError, match="Error when checking target"):
        model.evaluate(x, None, verbose=0)


def test_whole_model_gradient_by_finite_differences_channels_first():
    """Every layer type in one float64 channels-first model: the update of SGD(lr=1) is minus the
    gradient of the training-mode loss, which central differences check for every weight."""
    from reference_layers import (
        numeric_gradient,
        one_thread,
        requires_bn,
        requires_conv,
        requires_pool,
    )

    from bnpy.layers import AveragePooling2D, Reshape, ZeroPadding2D

    for mark in (requires_bn, requires_conv, requires_pool):
        if mark.args[0]:
            pytest.skip(mark.kwargs["reason"])
    np.random.seed(7)
    f64 = {"dtype": "float64"}
    cf = {"data_format": "channels_first"}
    model = Sequential()
    model.add(ZeroPadding2D(1, input_shape=(2, 5, 5), **cf, **f64))
    model.add(Conv2D(3, 3, activation="tanh", bias_initializer="uniform", **cf, **f64))
    model.add(BatchNormalization(axis=1, gamma_initializer="uniform", **f64))
    model.add(AveragePooling2D(2, padding="same", **cf, **f64))
    model.add(Flatten(**f64))
    model.add(Dense(4, **f64))
    model.add(Reshape((2, 2), **f64))
    model.add(Flatten(**f64))
    model.add(Dense(3, activation="softmax", **f64))
    model.compile(loss="categorical_crossentropy", optimizer=SGD(lr=1.0))
    x = np.random.standard_normal((4, 2, 5, 5))
    y = np.eye(3)[[0, 1, 2, 1]]

    def training_loss():
        out = x
        for layer in model.layers:
            out = layer.forward(out, training=True)
            layer.discard_updates()
        return float(np.mean(model.loss_function(y, out)))

    with one_thread():
        numeric = [numeric_gradient(training_loss, w, 1e-6) for w in model.trainable_weights]
        before = [w.copy() for w in model.trainable_weights]
        model.train_on_batch(x, y)
    for b, w, g in zip(before, model.trainable_weights, numeric):
        np.testing.assert_allclose(b - w, g, rtol=1e-6, atol=1e-9)


def test_sample_weight_in_training_equals_training_on_the_weighted_samples():
    """With weights 1/0, Keras's mean(loss·w)/mean(w≠0) is the mean over the kept samples, so
    the update equals training on those samples alone (a model without BN: same statistics)."""
    x, y = _data(n=8)
    w = np.array([1.0, 0, 1, 1, 0, 0, 1, 0])
    weighted, subset = _softmax_model(optimizer=SGD(lr=0.5)), _softmax_model(optimizer=SGD(lr=0.5))
    loss_weighted = weighted.train_on_batch(x, y, sample_weight=w)
    loss_subset = subset.train_on_batch(x[w == 1], y[w == 1])
    np.testing.assert_allclose(loss_weighted[0], loss_subset[0], rtol=1e-6)
    for a, b in zip(weighted.get_weights(), subset.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # class_weight: per-class weights become sample weights
    by_class = _softmax_model(optimizer=SGD(lr=0.5))
    classes = y.argmax(1)
    by_class.train_on_batch(
        x, y, class_weight={c: 2.0 if c == classes[0] else 1.0 for c in range(3)}
    )
    reference = _softmax_model(optimizer=SGD(lr=0.5))
    reference.train_on_batch(x, y, sample_weight=np.where(classes == classes[0], 2.0, 1.0))
    for a, b in zip(by_class.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_shuffle_batch_moves_whole_blocks_and_keeps_the_tail():
    from bnpy._training import batch_shuffle

    np.random.seed(0)
    shuffled = batch_shuffle(np.arange(10), 3)
    blocks = [tuple(shuffled[i : i + 3]) for i in range(0, 9, 3)]
    assert sorted(blocks) == [(0, 1, 2), (3, 4, 5), (6, 7, 8)] and shuffled[-1] == 9
    x, y = _data(n=10)
    model = _softmax_model()
    assert model.fit(x, y, batch_size=3, epochs=1, shuffle="batch", verbose=0).epoch == [0]
