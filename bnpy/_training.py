"""The training loop of ``Sequential.fit`` and ``Sequential.fit_generator`` (Keras 2.0's
``_fit_loop`` and ``fit_generator``), written once for both:

    for each epoch:  the epoch's batches: from the arrays (fit: indices shuffled with np.random,
                     or not) or drawn from the generator (fit_generator)
      for each batch:  callbacks' on_batch_begin
                       one training step, holding the model's lock (Sequential._train_step:
                       forward, loss and metrics before the update, backward, optimizer update,
                       constraints, BatchNormalization's moving statistics)
                       callbacks' on_batch_end (without the lock: they may call predict)
      validation, when every batch of the epoch ran: loss and metrics in inference mode
      callbacks' on_epoch_end; stop when a callback set model.stop_training

The updates of a batch are applied only after its whole backward pass succeeded, with Ctrl-C
held back while they are applied (:class:`DeferKeyboardInterrupt`), so an interrupted ``fit``
leaves the weights and moving statistics of the last finished batch.
"""

import os
import signal
import sys
import threading
import warnings

import numpy as np

from . import _inputs
from . import callbacks as cbks
from .utils.generic_utils import Progbar

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class DeferKeyboardInterrupt:
    """Hold Ctrl-C back while a batch's updates are applied, then deliver it.

    Only possible in the main thread (where Python handles signals); elsewhere a no-op.
    """

    def __enter__(self):
        self.received = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            try:
                self.previous = signal.signal(signal.SIGINT, self._handler)
            except (ValueError, OSError):  # e.g. an embedded interpreter without signals
                self.previous = None
        return self

    def _handler(self, signum, frame):
        self.received = True

    def __exit__(self, exc_type, exc, tb):
        if self.previous is None:
            return False
        signal.signal(signal.SIGINT, self.previous)
        if self.received:
            if callable(self.previous):
                self.previous(signal.SIGINT, None)
            elif self.previous == signal.SIG_DFL:
                raise KeyboardInterrupt
        return False


def user_stacklevel():
    """``warnings.warn``'s stacklevel, for its caller, that names the first frame outside bnpy:
    the user's call, however many of bnpy's own frames (decorators, loops) lie between."""
    frame, level = sys._getframe(1), 1  # the frame that will call warnings.warn is level 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


class LossWatch:
    """Warns once per training call when a batch loss is NaN or infinite: from then on the
    weights are usually non-finite too, every prediction is NaN, and the metrics look plausible
    (categorical accuracy counts argmax of an all-NaN row as class 0, as Keras's does)."""

    def __init__(self, what):
        self.what = what
        self.warned = False

    def check(self, loss, epoch, batch):
        if not self.warned and not np.isfinite(loss):
            self.warned = True
            warnings.warn(
                "Sequential.{}: the loss is {} at epoch {}, batch {}; the weights are "
                "probably not finite any more. Lower the learning rate, check the data "
                "for NaN/Inf, or stop training with bnpy.callbacks.TerminateOnNaN().".format(
                    self.what, loss, epoch, batch
                ),
                RuntimeWarning,
                stacklevel=user_stacklevel(),
            )


def make_batches(size, batch_size):
    """[(start, end), ...] covering range(size) in ceil(size/batch_size) batches."""
    num_batches = (size + batch_size - 1) // batch_size
    return [(i * batch_size, min(size, (i + 1) * batch_size)) for i in range(num_batches)]


def batch_shuffle(index_array, batch_size):
    """Shuffle whole blocks of batch_size indices (Keras's shuffle='batch'); the tail stays last."""
    batch_count = len(index_array) // batch_size
    last_batch = index_array[batch_count * batch_size :]
    blocks = index_array[: batch_count * batch_size].reshape((batch_count, batch_size))
    np.random.shuffle(blocks)
    return np.append(blocks.flatten(), last_batch)


def array_batches(x, y, weights, batch_size, shuffle):
    """fit's batches: a function of the epoch that yields ``(x, y, sample_weight)`` batches of
    the arrays, in a new np.random order each epoch (``shuffle=True``), in blocks of whole
    batches (``'batch'``) or in order (``False``: contiguous slices, views without a copy)."""
    index_array = np.arange(len(x))
    batches = make_batches(len(x), batch_size)

    def epoch_batches(epoch):
        nonlocal index_array
        if shuffle == "batch":
            index_array = batch_shuffle(index_array, batch_size)
        elif shuffle:
            np.random.shuffle(index_array)
        for start, end in batches:
            ids = index_array[start:end] if shuffle else slice(start, end)
            yield x[ids], y[ids], None if weights is None else weights[ids]

    return epoch_batches, len(batches)


def next_batch(generator, what):
    """The next ``(x, y, sample_weight)`` of a generator that yields (x, y) or (x, y, w)."""
    item = next(generator)
    if not isinstance(item, tuple) or len(item) not in (2, 3):
        raise ValueError(
            "{}: output of generator should be a tuple (x, y, sample_weight) or "
            "(x, y). Found: {}".format(
                what,
                type(item).__name__
                if not isinstance(item, tuple)
                else "a tuple of {} items".format(len(item)),
            )
        )
    return item if len(item) == 3 else (item[0], item[1], None)


def generator_batches(model, generator, steps, class_weight, what):
    """fit_generator's batches: ``steps`` per epoch drawn from ``generator``, each checked and
    converted like fit's arrays."""
    generator = iter(generator)

    def epoch_batches(epoch):
        for _ in range(steps):
            xb, yb, wb = next_batch(generator, what)
            yield _inputs.standardize_xy(model, xb, yb, wb, class_weight)

    return epoch_batches


def make_callbacks(model, callbacks, verbose, count_mode, params):
    """Keras's callback list: BaseLogger, the user's, History (model.history), ProgbarLogger."""
    model.history = cbks.History()
    callback_list = [cbks.BaseLogger()] + list(callbacks or []) + [model.history]
    if verbose:
        callback_list.append(cbks.ProgbarLogger(count_mode=count_mode))
    callback_list = cbks.CallbackList(callback_list)
    callback_list.set_model(model)
    callback_list.set_params(params)
    return callback_list


def run_epochs(model, what, epoch_batches, steps, epochs, initial_epoch, callback_list, validate):
    """The loop of the module docstring. ``epoch_batches(epoch)`` yields the epoch's ``steps``
    batches; ``validate(last_batch_size)`` returns the validation values (a list in
    ``model.metrics_names`` order) or None when there is no validation."""
    out_labels = list(model.metrics_names)
    model.stop_training = False
    loss_watch = LossWatch(what)
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        epoch_logs = {}
        batches_done, batch_size = 0, None
        for batch_index, (xb, yb, wb) in enumerate(epoch_batches(epoch)):
            batch_size = len(xb)
            batch_logs = {"batch": batch_index, "size": batch_size}
            callback_list.on_batch_begin(batch_index, batch_logs)
            with model._turns:
                outs = model._train_step(xb, yb, wb)
            loss_watch.check(outs[0], epoch, batch_index)
            batch_logs.update(zip(out_labels, outs))
            callback_list.on_batch_end(batch_index, batch_logs)
            batches_done += 1
            if model.stop_training:
                break
        if batches_done == steps > 0 and not model.stop_training:
            val_outs = validate(batch_size)
            if val_outs is not None:
                epoch_logs.update(("val_" + label, v) for label, v in zip(out_labels, val_outs))
        callback_list.on_epoch_end(epoch, epoch_logs)
        if model.stop_training:
            break
    callback_list.on_train_end()
    return model.history


def test_loop(model, x, y, weights, batch_size, verbose=0):
    """Loss and metrics in inference mode, exact per-sample means: Σ_batches value·len / N."""
    num_samples = len(x)
    totals = np.zeros(len(model.metrics_names))
    progbar = Progbar(target=num_samples) if verbose == 1 else None
    for start, end in make_batches(num_samples, batch_size):
        outs = model._test_step(
            x[start:end], y[start:end], None if weights is None else weights[start:end]
        )
        totals += np.asarray(outs) * (end - start)
        if progbar is not None:
            progbar.update(end)
    return [float(v) for v in totals / max(1, num_samples)]
