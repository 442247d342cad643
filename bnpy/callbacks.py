"""Callbacks (Keras 2.0.8's ``keras/callbacks.py``).

``fit`` calls, in this order of callbacks: BaseLogger, the user's callbacks, History, then
ProgbarLogger (when verbose). Hooks: on_train_begin/end, on_epoch_begin/end(epoch, logs),
on_batch_begin/end(batch, logs). Batch logs hold ``batch``, ``size``, ``loss`` and the metrics;
epoch logs hold ``val_*`` values first, then BaseLogger adds the batch-size-weighted epoch
averages of ``loss`` and the metrics.
"""

import collections.abc
import csv
import os
import sys
import warnings

import numpy as np

from .utils.generic_utils import Progbar


class Callback:
    def __init__(self):
        self.model = None
        self.params = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self.model = model

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass


class CallbackList:
    def __init__(self, callbacks=None):
        self.callbacks = list(callbacks or [])

    def append(self, callback):
        self.callbacks.append(callback)

    def set_params(self, params):
        for callback in self.callbacks:
            callback.set_params(params)

    def set_model(self, model):
        for callback in self.callbacks:
            callback.set_model(model)

    def on_epoch_begin(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch, logs if logs is not None else {})

    def on_epoch_end(self, epoch, logs=None):
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs if logs is not None else {})

    def on_batch_begin(self, batch, logs=None):
        for callback in self.callbacks:
            callback.on_batch_begin(batch, logs if logs is not None else {})

    def on_batch_end(self, batch, logs=None):
        for callback in self.callbacks:
            callback.on_batch_end(batch, logs if logs is not None else {})

    def on_train_begin(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_begin(logs if logs is not None else {})

    def on_train_end(self, logs=None):
        for callback in self.callbacks:
            callback.on_train_end(logs if logs is not None else {})

    def __iter__(self):
        return iter(self.callbacks)


class BaseLogger(Callback):
    """Epoch averages of the batch values, weighted by batch size: Σ b_i·v_i / Σ b_i."""

    def on_epoch_begin(self, epoch, logs=None):
        self.seen = 0
        self.totals = {}

    def on_batch_end(self, batch, logs=None):
        logs = logs or {}
        batch_size = logs.get("size", 0)
        self.seen += batch_size
        for k, v in logs.items():
            if k in ("batch", "size"):
                continue
            self.totals[k] = self.totals.get(k, 0.0) + v * batch_size

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            for k in self.params["metrics"]:
                if k in self.totals:
                    logs[k] = self.totals[k] / self.seen


class History(Callback):
    """``history.history[key]`` is the list of epoch values; ``history.epoch`` the epoch indices."""

    def on_train_begin(self, logs=None):
        self.epoch = []
        self.history = {}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)


class ProgbarLogger(Callback):
    """Prints ``Epoch i/N`` and a Progbar per epoch (counting samples, or steps for generators).

    The last batch of an epoch does not redraw the bar; ``on_epoch_end`` does, with the epoch
    averages and the validation values, so the final line shows exactly the History values.
    """

    def __init__(self, count_mode="samples"):
        super().__init__()
        if count_mode == "samples":
            self.use_steps = False
        elif count_mode == "steps":
            self.use_steps = True
        else:
            raise ValueError(
                "ProgbarLogger: unknown `count_mode` {!r}; expected 'samples' or 'steps'".format(
                    count_mode
                )
            )

    def on_train_begin(self, logs=None):
        self.verbose = self.params["verbose"]
        self.epochs = self.params["epochs"]

    def on_epoch_begin(self, epoch, logs=None):
        self.target = self.params["steps"] if self.use_steps else self.params["samples"]
        if self.verbose:
            sys.stdout.write("Epoch %d/%d\n" % (epoch + 1, self.epochs))
            sys.stdout.flush()
            self.progbar = Progbar(target=self.target, verbose=self.verbose)
        self.seen = 0
        self.log_values = []

    def on_batch_begin(self, batch, logs=None):
        if self.seen < self.target:
            self.log_values = []

    def on_batch_end(self, batch, logs=None):
        logs = logs or {}
        self.seen += 1 if self.use_steps else logs.get("size", 0)
        for k in self.params["metrics"]:
            if k in logs:
                self.log_values.append((k, logs[k]))
        if self.verbose and self.seen < self.target:
            self.progbar.update(self.seen, self.log_values)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for k in self.params["metrics"]:
            if k in logs:
                self.log_values.append((k, logs[k]))
        if self.verbose:
            self.progbar.update(self.seen, self.log_values, force=True)
            self.progbar.close()  # a newline after a bar cut short by stop_training


class EarlyStopping(Callback):
    """Stop when ``monitor`` stops improving (Keras 2.0.8 semantics).

    Improvement: ``current − min_delta > best`` in max mode, ``current + min_delta < best`` in
    min mode; ``mode='auto'`` is max when 'acc' is in the monitor's name. Without improvement,
    training stops once ``wait >= patience`` (then wait += 1): that is at the (patience+1)-th
    consecutive epoch without improvement, as in Keras ≤ 2.0.8 (2.0.9 stops one epoch earlier).
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto"):
        super().__init__()
        self.monitor = monitor
        self.patience = patience
        self.verbose = verbose
        self.min_delta = min_delta
        self.wait = 0
        self.stopped_epoch = 0
        if mode not in ("auto", "min", "max"):
            warnings.warn(
                "EarlyStopping mode %s is unknown, fallback to auto mode." % mode,
                RuntimeWarning,
                stacklevel=2,
            )
            mode = "auto"
        if mode == "min" or (mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = np.less
        else:
            self.monitor_op = np.greater
        self.min_delta *= 1 if self.monitor_op is np.greater else -1

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = np.inf if self.monitor_op is np.less else -np.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                "Early stopping requires %s available!" % self.monitor, RuntimeWarning, stacklevel=2
            )
            return
        if self.monitor_op(current - self.min_delta, self.best):
            self.best = current
            self.wait = 0
        else:
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
            self.wait += 1

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print("Epoch %05d: early stopping" % self.stopped_epoch)


class ModelCheckpoint(Callback):
    """Save the model after every ``period`` epochs (``filepath`` may hold ``{epoch:02d}`` and
    log keys such as ``{val_loss:.2f}``): the whole model, as ``Sequential.save`` (read back by
    ``load_model``), or with ``save_weights_only=True`` the weights, as ``save_weights``."""

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
        period=1,
    ):
        super().__init__()
        self.monitor = monitor
        self.verbose = verbose
        self.filepath = filepath
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.period = period
        self.epochs_since_last_save = 0
        if mode not in ("auto", "min", "max"):
            warnings.warn(
                "ModelCheckpoint mode %s is unknown, fallback to auto mode." % mode,
                RuntimeWarning,
                stacklevel=2,
            )
            mode = "auto"
        if mode == "max" or (
            mode == "auto" and ("acc" in monitor or monitor.startswith("fmeasure"))
        ):
            self.monitor_op, self.best = np.greater, -np.inf
        else:
            self.monitor_op, self.best = np.less, np.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epochs_since_last_save += 1
        if self.epochs_since_last_save < self.period:
            return
        self.epochs_since_last_save = 0
        filepath = self.filepath.format(epoch=epoch, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is None:
                warnings.warn(
                    "Can save best model only with %s available, skipping." % self.monitor,
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
            if self.monitor_op(current, self.best):
                if self.verbose > 0:
                    print(
                        "Epoch %05d: %s improved from %0.5f to %0.5f, saving model to %s"
                        % (epoch, self.monitor, self.best, current, filepath)
                    )
                self.best = current
                self._save(filepath)
            elif self.verbose > 0:
                print("Epoch %05d: %s did not improve" % (epoch, self.monitor))
        else:
            if self.verbose > 0:
                print("Epoch %05d: saving model to %s" % (epoch, filepath))
            self._save(filepath)

    def _save(self, filepath):
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)


class LambdaCallback(Callback):
    """A callback from plain functions: on_epoch_begin/end(epoch, logs),
    on_batch_begin/end(batch, logs), on_train_begin/end(logs)."""

    def __init__(
        self,
        on_epoch_begin=None,
        on_epoch_end=None,
        on_batch_begin=None,
        on_batch_end=None,
        on_train_begin=None,
        on_train_end=None,
        **kwargs,
    ):
        super().__init__()
        self.__dict__.update(kwargs)
        noop2 = lambda a, b: None  # noqa: E731
        noop1 = lambda a: None  # noqa: E731
        self.on_epoch_begin = on_epoch_begin or noop2
        self.on_epoch_end = on_epoch_end or noop2
        self.on_batch_begin = on_batch_begin or noop2
        self.on_batch_end = on_batch_end or noop2
        self.on_train_begin = on_train_begin or noop1
        self.on_train_end = on_train_end or noop1


class TerminateOnNaN(Callback):
    """Stop training when a batch loss is NaN or infinite."""

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print("Batch %d: Invalid loss, terminating training" % batch)
            self.model.stop_training = True


class LearningRateScheduler(Callback):
    """At the start of every epoch, set the optimizer's learning rate to ``schedule(epoch)``
    (epoch counted from 0). Keras 2.0 requires a float: anything else (an int included) raises
    ValueError."""

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "lr"):
            raise ValueError('Optimizer must have a "lr" attribute.')
        lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(
                'The output of the "schedule" function should be float, got {!r}'.format(lr)
            )
        self.model.optimizer.lr = float(lr)


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for more than
    ``patience`` epochs (Keras 2.0.8's rule, written out):

    - improvement: ``current < best − epsilon`` (min mode) or ``current > best + epsilon`` (max
      mode; ``mode='auto'`` is max when 'acc' is in the monitor's name); it sets best and wait = 0;
    - during a cooldown (``cooldown`` epochs after a reduction) each epoch counts the cooldown
      down and resets wait; no reduction happens in it;
    - otherwise, if wait >= patience and lr > min_lr + min_lr·1e-4, lr ← max(lr·factor, min_lr),
      the cooldown starts and wait = 0; then wait += 1.

    The learning rate of each epoch is added to the epoch's logs as ``lr`` (so History has it).
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        epsilon=1e-4,
        cooldown=0,
        min_lr=0,
    ):
        super().__init__()
        if factor >= 1.0:
            raise ValueError("ReduceLROnPlateau does not support a factor >= 1.0.")
        self.monitor = monitor
        self.factor = factor
        self.min_lr = min_lr
        self.epsilon = epsilon
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.mode = mode
        self._reset()

    def _reset(self):
        if self.mode not in ("auto", "min", "max"):
            warnings.warn(
                "Learning Rate Plateau Reducing mode %s is unknown, fallback to auto mode."
                % self.mode,
                RuntimeWarning,
                stacklevel=2,
            )
            self.mode = "auto"
        if self.mode == "min" or (self.mode == "auto" and "acc" not in self.monitor):
            self.monitor_op = lambda a, b: np.less(a, b - self.epsilon)
            self.best = np.inf
        else:
            self.monitor_op = lambda a, b: np.greater(a, b + self.epsilon)
            self.best = -np.inf
        self.cooldown_counter = 0
        self.wait = 0
        self.lr_epsilon = self.min_lr * 1e-4

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        logs["lr"] = float(self.model.optimizer.lr)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(
                "Learning Rate Plateau Reducing requires %s available!" % self.monitor,
                RuntimeWarning,
                stacklevel=2,
            )
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self.monitor_op(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            if self.wait >= self.patience:
                old_lr = float(self.model.optimizer.lr)
                if old_lr > self.min_lr + self.lr_epsilon:
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    self.model.optimizer.lr = new_lr
                    if self.verbose > 0:
                        print("\nEpoch %05d: reducing learning rate to %s." % (epoch, new_lr))
                    self.cooldown_counter = self.cooldown
                    self.wait = 0
            self.wait += 1


class CSVLogger(Callback):
    """Write one CSV row per epoch to ``filename``: ``epoch`` then the epoch's log keys in sorted
    order (the keys of the first epoch), with ``separator``; ``append=True`` appends to an
    existing file (no second header when it is not empty). A 1-D value is written as
    ``"[a, b, ...]"``. Each row is flushed as it is written."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = filename
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            self.csv_file = open(self.filename, "a", newline="")  # noqa: SIM115  (closed at the end)
        else:
            self.csv_file = open(self.filename, "w", newline="")  # noqa: SIM115

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}

        def handle_value(k):
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return '"[%s]"' % ", ".join(map(str, k))
            return k

        if not self.writer:
            self.keys = sorted(logs.keys())

            class CustomDialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(
                self.csv_file, fieldnames=["epoch"] + self.keys, dialect=CustomDialect
            )
            if self.append_header:
                self.writer.writeheader()
        row = {"epoch": epoch}
        row.update((key, handle_value(logs[key])) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None:
            self.csv_file.close()
        self.writer = None


__all__ = [
    "Callback",
    "CallbackList",
    "BaseLogger",
    "History",
    "ProgbarLogger",
    "EarlyStopping",
    "ModelCheckpoint",
    "LambdaCallback",
    "TerminateOnNaN",
    "LearningRateScheduler",
    "ReduceLROnPlateau",
    "CSVLogger",
]
