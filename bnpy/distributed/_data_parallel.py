"""Data-parallel training of a compiled Sequential over MPI (see bnpy.distributed).

A step on a global batch of B samples, on rank r of R: the rank takes samples
[r·B//R, (r+1)·B//R) of the batch, runs the forward and the backward on them with the loss of
the *global* batch (d loss/d out divided by the global count, sample weights normalised over the
global batch), and the weight gradients of all ranks are summed into a reused float64 buffer,
which also carries the batch's loss and metric sums: by one Allreduce after the backward, or with
``overlap=True`` in buckets, each a non-blocking Allreduce started during the backward as soon as
its layers' gradients are ready (see _GradientSum). Then every rank adds the
regularizers' gradients (once: the weights are the same everywhere), and makes the same optimizer
step, constraints and moving-statistics updates, so the weights stay identical on every rank.
With ``BatchNormalization(synchronized=True)`` a step is the step of one process on the whole
batch, up to rounding.

Every rank calls the same collectives in the same order: each takes part in every step (a batch
of fewer samples than ranks, which would leave a rank without data, is skipped on every rank),
the shuffle is rank 0's permutation, broadcast, and rank 0's callbacks' stop decision is
broadcast after every batch and epoch.
"""

import warnings

import numpy as np

from .. import _inputs, _memory, _threads, _training
from .. import callbacks as cbks
from ._context import broadcast_weights, current, init


class DataParallel:
    """Train ``model`` (a compiled Sequential, the same on every rank) data-parallel.

    Rank 0's weights are broadcast to every rank when the trainer is made. ``fit`` and
    ``evaluate`` follow Sequential's (Keras 2.0's) arguments; ``callbacks`` run on rank 0 only
    (files, progress bars), and rank 0's ``model.stop_training`` is broadcast, so early stopping
    stops every rank after the same batch. Callbacks that change the model or the optimizer (a
    learning-rate schedule) must run on every rank: pass them as ``all_ranks_callbacks``.

    ``overlap=True``: the gradients' sum over the ranks starts during the backward, in buckets of
    at least ``bucket_values`` float64 values (the last layers' gradients are ready first, and
    are summed while the first layers' backward runs); the default, False: one Allreduce after
    the backward, which was as fast or faster on one machine (docs/distributed.md, "Speed"). The
    sums are elementwise either way (with 2 ranks each is a + b: the same bits).
    """

    def __init__(self, model, context=None, overlap=False, bucket_values=65536):
        if getattr(model, "loss_function", None) is None:
            raise RuntimeError("DataParallel: compile the model before making its trainer")
        if not isinstance(overlap, bool):
            raise TypeError("DataParallel: overlap must be True or False, got {!r}".format(overlap))
        if isinstance(bucket_values, bool) or not isinstance(bucket_values, int):
            raise TypeError(
                "DataParallel: bucket_values must be an int, got {}".format(
                    type(bucket_values).__name__
                )
            )
        if bucket_values < 1:
            raise ValueError(
                "DataParallel: bucket_values must be at least 1, got {}".format(bucket_values)
            )
        self.overlap = overlap
        self.bucket_values = bucket_values
        self.model = model
        self.context = context or current() or init()
        broadcast_weights(model, self.context)
        unsynchronized = [
            layer.name
            for layer in model.layers
            if getattr(layer, "synchronized", None) is False and layer.trainable
        ]
        if unsynchronized and self.context.size > 1:
            warnings.warn(
                "DataParallel: {} normalize each rank's shard with its own statistics (the "
                "result depends on the number of ranks, and their moving statistics differ "
                "between ranks); use BatchNormalization(synchronized=True)".format(
                    ", ".join(unsynchronized)
                ),
                RuntimeWarning,
                stacklevel=2,
            )
        self._buffer = None

    # -- one step ----------------------------------------------------------------------------
    def _gradient_buffer(self, params, extra):
        size = sum(p.value.size for p in params) + extra
        if self._buffer is None or self._buffer.size != size:
            self._buffer = np.empty(size)
        return self._buffer

    def train_step(self, x, y, sample_weight=None):
        """One step on the global batch (x, y), the same arrays on every rank; returns
        [loss, metric values] of the global batch (from before the update), the same everywhere.
        """
        # as Sequential's compute methods: BLAS capped while bnpy's team runs, large arrays'
        # memory kept between steps, the model's lock (re-entrant: fit holds it already)
        with _threads.fit_threads(), _memory.array_cache(), self.model._turns:
            return self._train_step(x, y, sample_weight)

    def _train_step(self, x, y, sample_weight):
        model, context = self.model, self.context
        batch = len(x)
        start, stop = context.shard(batch)
        xs, ys = x[start:stop], y[start:stop]
        factor = None
        if sample_weight is not None:  # Keras: mean(loss·w)/mean(w ≠ 0) over the global batch
            nonzero = float(np.mean(sample_weight != 0))
            factor = sample_weight / nonzero if nonzero else np.zeros_like(sample_weight)
            factor = factor[start:stop]
        layers = model.layers
        params = [p for layer in layers for p in layer.trainable_params]
        penalty = model._penalties()  # the weights' penalties, before the update
        summing = None
        try:
            out = xs
            activity_outputs = {}
            activity_penalty = 0.0
            for layer in layers:
                out = layer.forward(out, training=True)
                if layer.activity_regularizer is not None:
                    activity_outputs[id(layer)] = out
                    activity_penalty += layer.activity_regularizer(out)
            per_sample = np.asarray(model.loss_function(ys, out), dtype=np.float64)
            # the global batch's count of loss terms (per_sample is (samples,) or more)
            count = batch * (per_sample.size // max(1, len(xs)))
            if factor is not None:
                per_sample = per_sample * factor.reshape((-1,) + (1,) * (per_sample.ndim - 1))
            metric_values = [np.asarray(m(ys, out)) for m in model._metric_functions]
            metric_sums = [float(v.sum()) for v in metric_values]
            metric_counts = [batch * (v.size // max(1, len(xs))) for v in metric_values]
            dy = model.loss_function.gradient(ys, out)
            if factor is not None:
                dy = dy * factor.reshape((-1,) + (1,) * (out.ndim - 1)).astype(dy.dtype)
            dy *= np.asarray(1.0 / count, dtype=dy.dtype)
            if dy.dtype != out.dtype:
                dy = dy.astype(out.dtype)
            # the buffer: every layer's gradients in layer order, then the step's totals
            starts, at = [], 0
            for layer in layers:
                starts.append(at)
                at += sum(p.value.size for p in layer.trainable_params)
            totals = [float(per_sample.sum()), activity_penalty] + metric_sums
            buffer = self._gradient_buffer(params, len(totals))
            buffer[at:] = totals
            summing = _GradientSum(context, buffer, self.overlap, self.bucket_values)
            summing.filled_from(at)
            for index in reversed(range(len(layers))):
                layer = layers[index]
                if id(layer) in activity_outputs:
                    dy = dy + layer.activity_regularizer.gradient(activity_outputs[id(layer)])
                dy = layer.backward(dy)
                if len(layer.gradients) != len(layer.trainable_params):
                    raise RuntimeError(
                        "{}: backward produced {} gradients for {} trainable weights".format(
                            layer.name, len(layer.gradients), len(layer.trainable_params)
                        )
                    )
                at = starts[index]
                for grad in layer.gradients:
                    buffer[at : at + grad.size] = grad.reshape(-1)
                    at += grad.size
                summing.filled_from(starts[index])
            summing.finish()
            grads, at = [], 0
            for param in params:
                grad = buffer[at : at + param.value.size].reshape(param.value.shape)
                grad = grad.astype(param.value.dtype)
                at += param.value.size
                if param.regularizer is not None:
                    grad = grad + param.regularizer.gradient(param.value)
                grads.append(grad)
            loss_sum, activity_total = buffer[at], buffer[at + 1]
            metrics = [float(v) / n for v, n in zip(buffer[at + 2 :], metric_counts)]
        except BaseException:
            if summing is not None:
                summing.abandon()
            for layer in layers:
                layer.discard_updates()
            raise
        loss = float(loss_sum) / count + float(activity_total) + penalty
        model.optimizer.update([p.value for p in params], grads)
        for param in params:
            if param.constraint is not None:
                param.constraint(param.value)
        for layer in layers:
            layer.commit_updates()
        return [loss] + metrics

    # -- evaluate ----------------------------------------------------------------------------
    def evaluate(self, x, y, batch_size=32, sample_weight=None):
        """Loss and metrics of (x, y) in inference mode, each rank evaluating its shard of the
        samples: [loss, metrics...], exact means over all samples, the same on every rank."""
        model, context = self.model, self.context
        start, stop = context.shard(len(x))
        names = len(model.metrics_names)
        sums = np.zeros(names + 1)
        if stop > start:
            weights = None if sample_weight is None else sample_weight[start:stop]
            values = model.evaluate(
                x[start:stop],
                y[start:stop],
                batch_size=batch_size,
                verbose=0,
                sample_weight=weights,
            )
            sums[:names] = np.atleast_1d(values) * (stop - start)
            sums[names] = stop - start
        context.allreduce_sum(sums)
        return [float(v) for v in sums[:names] / max(1.0, sums[names])]

    # -- fit ---------------------------------------------------------------------------------
    def fit(
        self,
        x,
        y,
        batch_size=32,
        epochs=10,
        verbose=1,
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        all_ranks_callbacks=None,
    ):
        """Sequential.fit's loop, data-parallel: returns the History (the same on every rank).

        ``batch_size`` is the global batch; each rank computes on about batch_size/size of it.
        The shuffle (``True`` or ``'batch'``) is NumPy's global RNG on rank 0 (as Sequential.fit
        draws it), broadcast. ``validation_data`` may hold sample weights; without it,
        ``validation_split`` in (0, 1) keeps that fraction of the samples, the last ones (before
        any shuffle), for validation, as Sequential.fit does. ``class_weight`` ({class: weight})
        weights the training samples by their class (y's argmax, or its value when y has one
        column), when ``sample_weight`` is not given.
        """
        model, context = self.model, self.context
        batch_size = int(batch_size)
        if batch_size < context.size:
            raise ValueError(
                "DataParallel.fit: batch_size (the global batch) must be at least the number of "
                "ranks, {}, so that every rank has a sample; got {}".format(
                    context.size, batch_size
                )
            )
        x, y, weights = _inputs.standardize_xy(model, x, y, sample_weight, class_weight)
        (x, y, weights), val = _inputs.training_and_validation(
            model, (x, y, weights), validation_data, validation_split
        )
        do_validation = val is not None and len(val[0]) > 0
        labels = list(model.metrics_names)
        verbose = verbose if context.is_root else 0
        listed = list(all_ranks_callbacks or []) + list(callbacks or [] if context.is_root else [])
        listed.append(_StopEverywhere(self))  # after the user's: rank 0's decision, everywhere
        callback_list = _training.make_callbacks(
            model,
            listed,
            verbose,
            "samples",
            {
                "batch_size": batch_size,
                "epochs": epochs,
                "steps": None,
                "samples": len(x),
                "verbose": verbose,
                "do_validation": do_validation,
                "metrics": labels + (["val_" + n for n in labels] if do_validation else []),
            },
        )
        epoch_batches, steps = self._epoch_batches(x, y, weights, batch_size, shuffle)

        def validate(last_batch_size):
            if not do_validation:
                return None
            return self.evaluate(val[0], val[1], batch_size, sample_weight=val[2])

        with _threads.fit_threads(), _memory.array_cache():
            return _training.run_epochs(
                _SteppedByTrainer(self),
                "fit",
                epoch_batches,
                steps,
                epochs,
                initial_epoch,
                callback_list,
                validate,
            )

    def _epoch_batches(self, x, y, weights, batch_size, shuffle):
        """fit's batches for _training.run_epochs: the global batches in rank 0's order (every
        rank holds all of each; train_step takes its shard), and their number. A batch of fewer
        samples than ranks is left out on every rank."""
        context = self.context
        index_array = np.arange(len(x))
        starts = [b for b in range(0, len(x), batch_size) if len(x) - b >= context.size]
        if len(starts) < len(range(0, len(x), batch_size)):
            self._warn_small_batch(len(x) % batch_size)

        def epoch_batches(epoch):
            if shuffle:
                if context.is_root and shuffle == "batch":
                    index_array[:] = _training.batch_shuffle(index_array, batch_size)
                elif context.is_root:
                    np.random.shuffle(index_array)
                context.bcast(index_array)
            for begin in starts:
                ids = index_array[begin : begin + batch_size]
                yield x[ids], y[ids], None if weights is None else weights[ids]

        return epoch_batches, len(starts)

    def _stop_everywhere(self):
        """Rank 0's model.stop_training, on every rank."""
        flag = np.array([bool(self.model.stop_training)], dtype=np.uint8)
        self.context.bcast(flag)
        self.model.stop_training = bool(flag[0])
        return self.model.stop_training

    def _warn_small_batch(self, size):
        warnings.warn(
            "DataParallel.fit: a batch of {} samples for {} ranks is skipped (every rank "
            "needs a sample)".format(size, self.context.size),
            RuntimeWarning,
            stacklevel=3,
        )


class _GradientSum:
    """The sum over the ranks of a step's buffer (gradients in layer order, then the totals),
    filled from its end as the backward goes from the last layer to the first.

    With overlap, once the filled values not yet sent reach ``bucket_values`` (or the first layer's
    gradients are in), a non-blocking Allreduce of them starts, in place; between layers the
    started ones are moved along (MPI progresses them only inside MPI calls: a Testall after each
    layer, and the synchronized BN layers' own collectives), and :meth:`finish` waits for all. Every rank starts
    the same buckets in the same order (the layers' sizes decide them). Without overlap,
    :meth:`finish` is one blocking Allreduce of the whole buffer."""

    def __init__(self, context, buffer, overlap, bucket_values):
        self.context, self.buffer = context, buffer
        self.overlap, self.bucket_values = overlap, bucket_values
        self.unsent = buffer.size  # buffer[filled:unsent] is ready and in no bucket yet
        self.requests = []

    def filled_from(self, start):
        """buffer[start:] holds this rank's values."""
        if not self.overlap:
            return
        if self.unsent - start >= self.bucket_values or (start == 0 and self.unsent > 0):
            self.requests.append(self.context.iallreduce_sum(self.buffer[start : self.unsent]))
            self.unsent = start
        if self.requests:
            self.context.test_all(self.requests)

    def finish(self):
        """The buffer summed over the ranks (every value must be filled)."""
        if self.overlap:
            if self.unsent > 0:  # a model without layers: the buffer holds the totals alone
                self.requests.append(self.context.iallreduce_sum(self.buffer[: self.unsent]))
                self.unsent = 0
            self.context.wait_all(self.requests)
            self.requests = []
        else:
            self.context.allreduce_sum(self.buffer)

    def abandon(self):
        """After a failure: wait for the reductions already started (every rank started them), so
        that none writes into the buffer later."""
        requests, self.requests = self.requests, []
        if requests:
            self.context.wait_all(requests)


class _StopEverywhere(cbks.Callback):
    """The last callback of every rank: after each batch and epoch, rank 0's stop_training (its
    callbacks', e.g. EarlyStopping's, decision) on every rank, so all leave the loop together."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer

    def on_batch_end(self, batch, logs=None):
        self.trainer._stop_everywhere()

    def on_epoch_end(self, epoch, logs=None):
        self.trainer._stop_everywhere()


class _SteppedByTrainer:
    """The model as _training.run_epochs (Sequential's epoch and batch loop) sees it, with the
    data-parallel step in place of Sequential._train_step."""

    def __init__(self, trainer):
        self._trainer = trainer

    def __getattr__(self, name):
        return getattr(self._trainer.model, name)

    @property
    def stop_training(self):
        return self._trainer.model.stop_training

    @stop_training.setter
    def stop_training(self, value):
        self._trainer.model.stop_training = value

    def _train_step(self, x, y, sample_weight=None):
        return self._trainer._train_step(x, y, sample_weight)
