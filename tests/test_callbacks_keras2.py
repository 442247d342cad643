"""Keras 2.0's ReduceLROnPlateau, LearningRateScheduler and CSVLogger: the plateau rule with
patience and cooldown step by step, their effect inside fit (History's lr, the learning rate
each epoch trains with), and the CSV file Keras writes."""

import csv

import numpy as np
import pytest

from bnpy.callbacks import CSVLogger, LambdaCallback, LearningRateScheduler, ReduceLROnPlateau
from bnpy.layers import Activation, Dense
from bnpy.models import Sequential
from bnpy.optimizers import SGD


class _FakeModel:
    def __init__(self, lr):
        self.optimizer = SGD(lr=lr)
        self.stop_training = False


def _plateau_run(values, **kwargs):
    """(lr logged at each epoch end, lr after each epoch) for monitor values ``values``."""
    callback = ReduceLROnPlateau(monitor="val_loss", **kwargs)
    callback.set_model(_FakeModel(1.0))
    callback.on_train_begin()
    logged, after = [], []
    for epoch, value in enumerate(values):
        logs = {"val_loss": value}
        callback.on_epoch_end(epoch, logs)
        logged.append(logs["lr"])
        after.append(float(callback.model.optimizer.lr))
    return logged, after


def test_plateau_rule_with_patience():
    # epoch 1 improves (0.9 < 1 − 1e-4); epochs 2.. do not. wait reaches patience=1 after
    # epoch 2, so epochs 3 and 4 each halve the learning rate
    logged, after = _plateau_run([1.0, 0.9, 0.9, 0.9, 0.9], patience=1, factor=0.5)
    assert after == [1.0, 1.0, 1.0, 0.5, 0.25]
    assert logged == [1.0, 1.0, 1.0, 1.0, 0.5]  # the lr the epoch trained with


def test_plateau_cooldown_and_min_lr():
    # reduction at epoch 3, then 2 epochs of cooldown (4, 5: wait reset), wait 1 at epoch 5's
    # end, so the next reduction is at epoch 6, and min_lr caps the third
    _, after = _plateau_run([1.0] + [1.0] * 9, patience=1, factor=0.5, cooldown=2, min_lr=0.3)
    assert after == [1.0, 1.0, 0.5, 0.5, 0.5, 0.3, 0.3, 0.3, 0.3, 0.3]


def test_plateau_epsilon_max_mode_and_errors():
    # an increase smaller than epsilon is no improvement in max mode ('acc' in the name)
    callback = ReduceLROnPlateau(monitor="val_acc", patience=0, factor=0.1, epsilon=0.01)
    callback.set_model(_FakeModel(1.0))
    callback.on_train_begin()
    callback.on_epoch_end(0, {"val_acc": 0.5})
    callback.on_epoch_end(1, {"val_acc": 0.505})
    assert float(callback.model.optimizer.lr) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="factor >= 1.0"):
        ReduceLROnPlateau(factor=1.0)
    with pytest.warns(RuntimeWarning, match="mode bad is unknown"):
        ReduceLROnPlateau(mode="bad")
    with pytest.warns(RuntimeWarning, match="requires val_loss available"):
        callback = ReduceLROnPlateau()
        callback.set_model(_FakeModel(1.0))
        callback.on_epoch_end(0, {"loss": 1.0})


def _model(lr):
    np.random.seed(0)
    model = Sequential([Dense(3, input_shape=(4,)), Activation("softmax")])
    model.compile(SGD(lr=lr), "categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.RandomState(0)
    x = rng.standard_normal((20, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.randint(0, 3, 20)]
    return model, x, y


def test_plateau_in_fit_reduces_and_history_records_lr():
    # a learning rate too small to move the loss by epsilon: every epoch after the first is a
    # plateau, and patience=0 reduces at each of them
    model, x, y = _model(1e-9)
    history = model.fit(
        x,
        y,
        epochs=4,
        verbose=0,
        shuffle=False,
        callbacks=[ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5)],
    )
    assert history.history["lr"] == pytest.approx([1e-9, 1e-9, 5e-10, 2.5e-10])
    assert float(model.optimizer.lr) == pytest.approx(1.25e-10)


def test_scheduler_sets_the_lr_each_epoch_trains_with():
    model, x, y = _model(1.0)
    seen = []
    record = LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(float(model.optimizer.lr)))
    model.fit(
        x,
        y,
        epochs=3,
        verbose=0,
        callbacks=[LearningRateScheduler(lambda epoch: 0.1 / (epoch + 1)), record],
    )
    assert seen == pytest.approx([0.1, 0.05, 0.1 / 3])
    # an int is not a float for Keras 2.0
    with pytest.raises(ValueError, match="should be float"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[LearningRateScheduler(lambda e: 1)])


def test_scheduler_steps_with_the_scheduled_lr():
    """Two epochs with lr 0 then 0.1 give the weights of one epoch at 0.1 (same batches)."""
    model, x, y = _model(123.0)
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=20,
        verbose=0,
        shuffle=False,
        callbacks=[LearningRateScheduler(lambda e: [0.0, 0.1][e])],
    )
    reference, _, _ = _model(0.1)
    reference.fit(x, y, epochs=1, batch_size=20, verbose=0, shuffle=False)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_csv_logger_writes_keras_rows(tmp_path):
    path = tmp_path / "log.csv"
    model, x, y = _model(0.5)
    history = model.fit(
        x, y, epochs=3, verbose=0, validation_data=(x, y), callbacks=[CSVLogger(str(path))]
    )
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["epoch", "acc", "loss", "val_acc", "val_loss"]
    assert [row[0] for row in rows[1:]] == ["0", "1", "2"]
    for epoch, row in enumerate(rows[1:]):
        for key, text in zip(rows[0][1:], row[1:]):
            assert float(text) == history.history[key][epoch]  # written with full precision
    # append: no second header; another separator
    model.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(str(path), append=True)])
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 5 and rows[4][0] == "0"
    semicolons = tmp_path / "semi.csv"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[CSVLogger(str(semicolons), separator=";")])
    assert semicolons.read_text().splitlines()[0] == "epoch;acc;loss"


def test_csv_logger_writes_1d_values_as_keras_does(tmp_path):
    path = tmp_path / "log.csv"
    logger = CSVLogger(str(path))
    logger.on_train_begin()
    logger.on_epoch_end(0, {"loss": 0.5, "per_class": np.array([1, 2]), "name": "x"})
    logger.on_train_end()
    assert path.read_text().splitlines() == [
        "epoch,loss,name,per_class",
        '0,0.5,x,"""[1, 2]"""',  # Keras's own quotes, quoted again by the csv module
    ]
