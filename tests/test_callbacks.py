"""Callbacks (EarlyStopping's Keras-2.0.8 patience, History, ModelCheckpoint, LambdaCallback,
TerminateOnNaN), fit's warning on a non-finite loss, and the Progbar text."""

import io
import os
import re
import warnings

import numpy as np
import pytest

from bnpy.callbacks import Callback, EarlyStopping, LambdaCallback, ModelCheckpoint, TerminateOnNaN
from bnpy.layers import Activation, Dense
from bnpy.models import Sequential, load_model
from bnpy.utils.generic_utils import Progbar


class _FakeModel:
    stop_training = False


def _early_stopping_run(values, **kwargs):
    es = EarlyStopping(**kwargs)
    es.set_model(_FakeModel())
    es.on_train_begin()
    for epoch, v in enumerate(values):
        es.on_epoch_end(epoch, {"val_loss": v, "val_acc": v})
        if es.model.stop_training:
            return epoch, es
    return None, es


def test_early_stopping_stops_at_patience_plus_one_non_improving_epoch():
    # best at epoch 1; epochs 2, 3, 4 do not improve; patience 2 → stop at epoch 4 (2.0.8 rule)
    stopped, es = _early_stopping_run([1.0, 0.5, 0.6, 0.7, 0.8, 0.9], patience=2)
    assert stopped == 4 and es.stopped_epoch == 4
    stopped, _ = _early_stopping_run([1.0, 0.9, 0.95], patience=0)
    assert stopped == 2


def test_early_stopping_modes_and_min_delta():
    stopped, _ = _early_stopping_run([0.1, 0.2, 0.2, 0.2], monitor="val_acc", patience=0)
    assert stopped == 2  # auto → max for 'acc'
    stopped, _ = _early_stopping_run([1.0, 0.95, 0.9], min_delta=0.1, patience=0)
    assert stopped == 1  # an improvement of 0.05 < min_delta does not count
    with pytest.warns(RuntimeWarning, match="mode sideways is unknown"):
        EarlyStopping(mode="sideways")


def test_early_stopping_missing_monitor_warns():
    es = EarlyStopping(monitor="val_nothing")
    es.set_model(_FakeModel())
    es.on_train_begin()
    with pytest.warns(RuntimeWarning, match="val_nothing"):
        es.on_epoch_end(0, {"loss": 1.0})


def _tiny_model():
    np.random.seed(0)
    model = Sequential()
    model.add(Dense(3, input_shape=(4,)))
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    x = np.random.standard_normal((40, 4)).astype(np.float32)
    y = np.eye(3)[np.random.randint(0, 3, 40)]
    return model, x, y


def test_callback_hooks_order_and_early_stopping_in_fit(capsys):
    model, x, y = _tiny_model()
    events = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            events.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            events.append(("epoch_begin", epoch))

        def on_batch_end(self, batch, logs=None):
            events.append(("batch_end", batch, logs["size"]))

        def on_epoch_end(self, epoch, logs=None):
            events.append(("epoch_end", epoch, sorted(logs)))

        def on_train_end(self, logs=None):
            events.append("train_end")

    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        verbose=0,
        callbacks=[Recorder()],
        validation_data=(x[:8], y[:8]),
    )
    assert events == [
        "train_begin",
        ("epoch_begin", 0),
        ("batch_end", 0, 16),
        ("batch_end", 1, 16),
        ("batch_end", 2, 8),
        ("epoch_end", 0, ["acc", "loss", "val_acc", "val_loss"]),
        "train_end",
    ]
    # a monitor that never improves (val_loss of a constant model output is tiny noise): use
    # patience=0 with a huge min_delta so the second epoch cannot improve → 2 epochs run
    history = model.fit(
        x,
        y,
        epochs=10,
        verbose=1,
        validation_data=(x, y),
        callbacks=[EarlyStopping(min_delta=1e9, patience=0, verbose=1)],
    )
    assert history.epoch == [0, 1]
    assert "Epoch 00001: early stopping" in capsys.readouterr().out


def test_lambda_callback_and_checkpoint(tmp_path):
    model, x, y = _tiny_model()
    ends = []
    path = os.path.join(str(tmp_path), "w-{epoch:02d}.npz")
    model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        validation_data=(x, y),
        callbacks=[
            LambdaCallback(on_epoch_end=lambda e, logs: ends.append(e)),
            ModelCheckpoint(path),
        ],
    )
    assert ends == [0, 1]
    assert sorted(os.listdir(str(tmp_path))) == ["w-00.npz", "w-01.npz"]
    saved = model.get_weights()
    model.layers[0].kernel[...] = 0
    model.load_weights(path.format(epoch=1))  # a whole-model file holds the weights' entries too
    for a, b in zip(saved, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    loaded = load_model(path.format(epoch=1))  # save_weights_only=False: the whole model, as Keras
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for a, b in zip(saved, loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_checkpoint_save_best_only(tmp_path):
    model, x, y = _tiny_model()
    saves = []
    model.save_weights = lambda p, overwrite=True: saves.append(p)
    cp = ModelCheckpoint(str(tmp_path / "best.npz"), save_best_only=True, save_weights_only=True)
    cp.set_model(model)
    for epoch, v in enumerate([1.0, 0.8, 0.9, 0.7]):
        cp.on_epoch_end(epoch, {"val_loss": v})
    assert len(saves) == 3


def test_progbar_text_dynamic():
    out = io.StringIO()
    bar = Progbar(50000, stream=out, dynamic=True, interval=0)
    bar.update(32, [("loss", 2.4521), ("acc", 0.0625)])
    first = out.getvalue()
    assert first.startswith("\r   32/50000 [..............................] - ETA: ")
    assert first.endswith(" - loss: 2.4521 - acc: 0.0625")
    bar.update(25024, [("loss", 2.4521), ("acc", 0.0625)])
    assert "\r25024/50000 [==============>...............] - ETA: " in out.getvalue()
    bar.update(50000, [("loss", 0.0005), ("acc", 0.0625)], force=True)
    last = out.getvalue().split("\r")[-1]
    assert last.startswith("50000/50000 [==============================] - ")
    assert " - ETA" not in last and last.endswith("\n")
    # averages weighted by progress: loss (2.4521·25024 + 0.0005·24976)/50000
    expected = (2.4521 * 25024 + 0.0005 * 24976) / 50000
    assert " - loss: %.4f - acc: 0.0625" % expected in last


def test_progbar_non_interactive_prints_one_whole_line():
    out = io.StringIO()
    bar = Progbar(100, stream=out, interval=0)  # StringIO is not a tty → whole lines only
    for i in range(10, 101, 10):
        bar.update(i, [("loss", 1e-4)], force=(i == 100))
    text = out.getvalue()
    assert "\r" not in text and "\b" not in text and text.count("\n") == 1
    assert text.startswith("100/100 [==============================] - 0s - loss: 1.0000e-04")


def test_progbar_verbose_2():
    out = io.StringIO()
    bar = Progbar(10, verbose=2, stream=out)
    bar.update(5, [("loss", 0.5)])
    assert out.getvalue() == ""
    bar.update(10, [("loss", 0.5), ("acc", -1.0)])
    assert out.getvalue() == "0s - loss: 0.5000 - acc: -1.0000e+00\n"  # 2.0's sign-sensitive test


def test_progbar_redraws_in_place_in_jupyter(monkeypatch):
    """An ipykernel stream is not a tty but honours '\\r': the bar is redrawn in place there."""
    import sys
    import types

    class OutStream(io.StringIO):
        pass

    OutStream.__module__ = "ipykernel.iostream"
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    out = OutStream()
    bar = Progbar(10, stream=out, interval=0)
    bar.update(5)
    bar.update(10)
    # the final line is space-padded to the width of the longer line it overwrites, as Keras does
    assert out.getvalue() == (
        "\r 5/10 [==============>...............] - ETA: 0s"
        "\r10/10 [==============================] - 0s     \n"
    )


def test_progbar_unknown_target():
    out = io.StringIO()
    bar = Progbar(None, stream=out, dynamic=True, interval=0)
    bar.update(64, [("loss", 0.5)])
    assert out.getvalue() == "\r     64/Unknown - 0s - loss: 0.5000"


def test_progbar_close_ends_a_partial_bar():
    out = io.StringIO()
    bar = Progbar(10, stream=out, dynamic=True, interval=0)
    bar.update(4, force=True)
    bar.close()
    assert out.getvalue().endswith("] - ETA: 0s\n")
    bar.close()  # nothing more to end
    assert out.getvalue().count("\n") == 1


# ---- NaN losses: TerminateOnNaN and fit's warning ------------------------------------------------


def _nan_data():
    """40 samples of 2 balanced classes; sample 0 holds a NaN, so the loss of the first batch is NaN
    and SGD spreads NaN into every weight."""
    x = np.random.default_rng(5).standard_normal((40, 4)).astype(np.float32)
    x[0, 0] = np.nan
    return x, np.eye(2, dtype=np.float32)[np.arange(40) % 2]


def _softmax_model():
    np.random.seed(2)
    model = Sequential([Dense(2, activation="softmax", input_shape=(4,))])
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["acc"])
    return model


def test_terminate_on_nan_stops_fit_after_the_first_batch_with_an_invalid_loss(capsys):
    x, y = _nan_data()
    batches = []
    model = _softmax_model()
    with pytest.warns(RuntimeWarning):
        history = model.fit(
            x,
            y,
            batch_size=10,
            epochs=3,
            verbose=0,
            shuffle=False,
            callbacks=[
                TerminateOnNaN(),
                LambdaCallback(on_batch_end=lambda batch, logs: batches.append(batch)),
            ],
        )
    assert "Batch 0: Invalid loss, terminating training" in capsys.readouterr().out
    assert batches == [0] and history.epoch == [0] and np.isnan(history.history["loss"][0])
    terminate = TerminateOnNaN()
    terminate.set_model(model)
    model.stop_training = False
    for loss in (1.5, None):
        terminate.on_batch_end(3, {"loss": loss} if loss is not None else {})
        assert not model.stop_training
    terminate.on_batch_end(4, {"loss": np.inf})
    assert model.stop_training and "Batch 4: Invalid loss" in capsys.readouterr().out


def _fit_generator(model, x, y, **kwargs):
    def batches():
        while True:
            for start in range(0, len(x), 10):
                yield x[start : start + 10], y[start : start + 10]

    return model.fit_generator(batches(), steps_per_epoch=4, **kwargs)


@pytest.mark.parametrize("method", ["fit", "fit_generator"])
def test_fit_warns_once_when_the_loss_becomes_non_finite(method):
    x, y = _nan_data()
    model = _softmax_model()
    train = (
        (lambda **kw: model.fit(x, y, batch_size=10, shuffle=False, **kw))
        if method == "fit"
        else (lambda **kw: _fit_generator(model, x, y, **kw))
    )
    with pytest.warns(RuntimeWarning) as record:
        history = train(epochs=2, verbose=0)
    assert len(record) == 1, [str(w.message) for w in record]  # 8 NaN batches, one warning
    assert re.match(
        r"Sequential\.{}: the loss is nan at epoch 0, batch 0; .*TerminateOnNaN".format(method),
        str(record[0].message),
    )
    assert record[0].filename == __file__  # points at the caller's line
    assert np.isnan(history.history["loss"]).all()
    with pytest.warns(RuntimeWarning):  # once per call: the next call warns again
        train(epochs=1, verbose=0)
    finite = _softmax_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        finite.fit(x[1:], y[1:], batch_size=10, epochs=2, verbose=0)


def test_accuracy_of_all_nan_outputs_counts_them_as_class_0_as_keras_does():
    """NumPy's argmax of an all-NaN row is 0, as TensorFlow's (Keras's backend): accuracy is then
    the share of class 0 in the targets, 0.5 on balanced classes. Not a bnpy bug; fit's warning
    is what tells the user."""
    from bnpy import metrics

    y = np.eye(2, dtype=np.float32)[np.arange(40) % 2]
    outputs = np.full((40, 2), np.nan, dtype=np.float32)
    np.testing.assert_array_equal(metrics.categorical_accuracy(y, outputs), y[:, 0])
    x, _ = _nan_data()
    model = _softmax_model()
    with pytest.warns(RuntimeWarning):
        model.fit(x, y, batch_size=10, epochs=1, verbose=0, shuffle=False)
    assert np.isnan(model.predict(x)).all()
    assert model.evaluate(x, y, verbose=0)[1] == 0.5
