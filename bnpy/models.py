"""The Sequential model (Keras 2.0's ``keras/models.py`` and ``keras/engine/training.py``).

Where its jobs live: the training loop shared by ``fit`` and ``fit_generator`` in
:mod:`bnpy._training`, the checks and conversions of the data every method accepts in
:mod:`bnpy._inputs`, the weights and model files in :mod:`bnpy.saving`, the thread and memory
policies of the compute methods in :mod:`bnpy._threads` and :mod:`bnpy._memory`. What stays here
is the model itself: its layers, ``compile``, one training step (``_train_step``: forward, loss,
backward, updates), inference, and the public Keras 2.0 methods that tie these together.
"""

import contextlib
import functools
import threading
import warnings

import numpy as np

from . import _inputs, _memory, _threads, _training, losses, optimizers, saving
from . import metrics as metrics_module
from ._inputs import positive_int
from .engine import Layer, assign_weights, unique_layer_name
from .legacy.interfaces import legacy_generator_methods_support
from .utils.generic_utils import Progbar


def _compute_method(method=None, *, per_step=False):
    """Decorator of Sequential's methods that run the kernels: NumPy's BLAS capped while bnpy's
    OpenMP team runs (bnpy._threads), large arrays' memory kept between batches (bnpy._memory),
    and the model's lock held for the whole call, or, with ``per_step=True`` (fit and
    fit_generator), taken by the method itself for each step, so that other threads get turns
    between steps and callbacks run without it."""
    if method is None:
        return functools.partial(_compute_method, per_step=per_step)

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with _threads.fit_threads(), _memory.array_cache():
            if per_step:
                with self._training(method.__name__):
                    return method(self, *args, **kwargs)
            with self._turns:
                return method(self, *args, **kwargs)

    return wrapper


class Sequential:
    """A linear stack of layers (Keras 2.0 semantics, see the module docstring).

    Threads: one model may be used from several threads. Its compute methods take turns on a
    per-model lock: ``predict``, ``evaluate``, ``train_on_batch`` (and the other single calls) hold
    it for the whole call, so their result comes from one set of weights; ``fit`` and
    ``fit_generator`` hold it for each training step and for each validation pass, so a
    ``predict`` from another thread waits at most for the step in progress and runs before the
    next one (threads get the lock in the order they asked for it). Callbacks run between steps,
    without the lock: they may call ``predict``/``evaluate`` on the model, or wait for a thread
    that does. ``get_weights``, ``set_weights``, ``load_weights`` and ``save_weights`` also wait for
    the step in progress. Calls on one model therefore run one at a time (different models run in
    parallel). Training one model in two threads at once is refused: a ``fit`` while another
    thread's ``fit`` of the same model runs raises RuntimeError.

    Global side effects of the compute methods, for as long as one of them runs (in any thread):
    NumPy's BLAS pool is capped at one thread while bnpy's kernels run on more
    (``BNPY_FIT_BLAS_THREADS``, see :mod:`bnpy._threads`), and NumPy's allocator keeps large
    blocks for reuse (``BNPY_ARRAY_CACHE``, see :mod:`bnpy._memory`).
    """

    def __init__(self, layers=None, name=None):
        self._turns = _threads.TurnLock()
        self._training_thread = None  # threading.get_ident() of the thread running fit
        self._training_claim = threading.Lock()
        self.layers = []
        self.name = name or unique_layer_name("sequential")
        self.optimizer = None
        self.loss = None
        self.loss_function = None
        self.metrics = []
        self.metrics_names = ["loss"]
        self._metric_functions = []
        self.stop_training = False
        self.history = None
        self.input_name = None
        for layer in layers or []:
            self.add(layer)

    @contextlib.contextmanager
    def _training(self, what):
        """The block trains the model: refused while another thread's fit of it runs."""
        me = threading.get_ident()
        with self._training_claim:  # not the turns: a step in progress must not delay the refusal
            if self._training_thread not in (None, me):
                raise RuntimeError(
                    "Sequential.{}: model {!r} is already being trained by another "
                    "thread; train a model in one thread at a time (predict and "
                    "evaluate may run beside fit)".format(what, self.name)
                )
            previous, self._training_thread = self._training_thread, me
        try:
            yield
        finally:
            self._training_thread = previous

    # -- construction -----------------------------------------------------------------------
    def add(self, layer):
        """Append ``layer``: build it from the previous output shape (shape errors raise here)."""
        if not isinstance(layer, Layer):
            raise TypeError(
                "The added layer must be an instance of class Layer. Found: " + str(layer)
            )
        if any(existing is layer for existing in self.layers):
            raise ValueError(
                "Sequential.add: layer {!r} is already in the model".format(layer.name)
            )
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(
                "All layer names should be unique. The name {!r} is used twice.".format(layer.name)
            )
        if not self.layers:
            if layer.batch_input_shape is None:
                raise ValueError(
                    "The first layer in a Sequential model must get an `input_shape` "
                    "or `batch_input_shape` argument."
                )
            input_shape = tuple(None if d is None else int(d) for d in layer.batch_input_shape)
        else:
            input_shape = self.layers[-1].output_shape
        layer.build_for(input_shape)
        layer.need_input_gradient = bool(self.layers)  # the first layer's input is data
        if not self.layers:
            self.input_name = layer.name + "_input"
        self.layers.append(layer)

    def pop(self):
        """Remove the last layer."""
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        self.layers.pop()

    @property
    def built(self):
        return bool(self.layers)

    @property
    def input_shape(self):
        return self._require_layers("input_shape").layers[0].input_shape

    @property
    def output_shape(self):
        return self._require_layers("output_shape").layers[-1].output_shape

    def _require_layers(self, what):
        if not self.layers:
            raise ValueError("Sequential.{}: the model has no layers yet".format(what))
        return self

    # -- weights ----------------------------------------------------------------------------
    @property
    def trainable_weights(self):
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    @property
    def weights(self):
        """Per layer, in model order: each layer's trainable then non-trainable weights."""
        return [w for layer in self.layers for w in layer.weights]

    def get_weights(self):
        with self._turns:
            return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Copy ``weights`` (the list ``get_weights`` returns) into the model, after checking the
        count, every shape and dtype (:func:`bnpy.engine.assign_weights`); on error nothing is
        changed."""
        names = self._weight_names()
        with self._turns:
            assign_weights(
                self.weights,
                weights,
                "Sequential.set_weights",
                ["weight {} ({})".format(i, name) for i, name in enumerate(names)],
            )

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def _weight_names(self):
        return [name for layer in self.layers for name in layer.weight_names]

    # -- summary ----------------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None):
        """Print Keras 2.0's summary table (65 columns; columns end at 29, 55, 65)."""
        print_fn = print_fn or print
        line_length = line_length or 65
        positions = positions or [0.45, 0.85, 1.0]
        if positions[-1] <= 1:
            positions = [int(line_length * p) for p in positions]

        def print_row(fields):
            line = ""
            for i, field in enumerate(fields):
                if i > 0:
                    line = line[:-1] + " "
                line += str(field)
                line = line[: positions[i]]
                line += " " * (positions[i] - len(line))
            print_fn(line)

        print_fn("_" * line_length)
        print_row(["Layer (type)", "Output Shape", "Param #"])
        print_fn("=" * line_length)
        for i, layer in enumerate(self.layers):
            print_row(
                [
                    layer.name + " (" + type(layer).__name__ + ")",
                    layer.output_shape,
                    layer.count_params(),
                ]
            )
            print_fn("=" * line_length if i == len(self.layers) - 1 else "_" * line_length)
        trainable = sum(w.size for w in _unique(self.trainable_weights))
        non_trainable = sum(w.size for w in _unique(self.non_trainable_weights))
        print_fn("Total params: {:,}".format(trainable + non_trainable))
        print_fn("Trainable params: {:,}".format(trainable))
        print_fn("Non-trainable params: {:,}".format(non_trainable))
        print_fn("_" * line_length)

    # -- compile ----------------------------------------------------------------------------
    def compile(self, optimizer, loss, metrics=None, sample_weight_mode=None, **kwargs):
        """Choose the optimizer (a name, with default arguments, or an instance), the loss (a
        name or a callable with a ``gradient``) and the metrics (``'accuracy'``/``'acc'`` picks
        categorical, binary or sparse accuracy from the loss and output shape, named 'acc')."""
        if kwargs:
            raise TypeError(
                "Sequential.compile: unexpected keyword arguments {}".format(sorted(kwargs))
            )
        if sample_weight_mode is not None:
            raise ValueError(
                "Sequential.compile: only sample_weight_mode=None (per-sample weights) "
                "is supported, got {!r}".format(sample_weight_mode)
            )
        self._require_layers("compile")
        if isinstance(loss, (list, tuple)):
            if len(loss) != 1:
                raise ValueError(
                    "Sequential.compile: a Sequential model has one output, got {} losses".format(
                        len(loss)
                    )
                )
            loss = loss[0]
        self.optimizer = optimizers.get(optimizer)
        self.loss = loss
        self.loss_function = losses.get(loss)
        if metrics is None:
            metrics = []
        if isinstance(metrics, (str,)) or callable(metrics):
            raise TypeError(
                "Sequential.compile: `metrics` should be a list of metrics, got {!r}".format(
                    metrics
                )
            )
        self.metrics = list(metrics)
        self._metric_functions = []
        self.metrics_names = ["loss"]
        for metric in self.metrics:
            if metric in ("accuracy", "acc"):
                function = metrics_module.accuracy_for(self.loss_function, self.output_shape)
                name = "acc"
            else:
                function = metrics_module.get(metric)
                name = getattr(function, "__name__", "metric")
            self._metric_functions.append(function)
            self.metrics_names.append(name)

    def _require_compiled(self, what):
        if self.loss_function is None:
            raise RuntimeError(
                "You must compile your model before using it (Sequential.{}).".format(what)
            )

    # -- data checks ------------------------------------------------------------------------
    @property
    def dtype(self):
        return self.layers[0].dtype if self.layers else np.dtype("float32")

    # -- one step ---------------------------------------------------------------------------
    def _penalties(self):
        """Σ of the weight regularizers' penalties (at the current weights)."""
        total = 0.0
        for layer in self.layers:
            for param in layer.trainable_params + layer.non_trainable_params:
                if param.regularizer is not None:
                    total += param.regularizer(param.value)
        return total

    def _batch_loss(self, y, out, sample_weight):
        """(mean loss, d mean loss / d out) for one batch; Keras's weighted mean
        mean(loss·w)/mean(w ≠ 0) with sample weights."""
        per_sample = np.asarray(self.loss_function(y, out), dtype=np.float64)
        if sample_weight is None:
            return float(per_sample.mean()), None, per_sample.size
        nonzero = float(np.mean(sample_weight != 0))
        factor = sample_weight / nonzero if nonzero else np.zeros_like(sample_weight)
        loss = float(np.mean(per_sample * factor.reshape((-1,) + (1,) * (per_sample.ndim - 1))))
        # the factor multiplies d loss / d out, which has out's rank
        return loss, factor.reshape((-1,) + (1,) * (out.ndim - 1)), per_sample.size

    def _train_step(self, x, y, sample_weight=None):
        """One training step on one batch; returns [loss, metric values] from before the update."""
        try:
            out = x
            activity_outputs = {}
            penalty = self._penalties()
            for layer in self.layers:
                out = layer.forward(out, training=True)
                if layer.activity_regularizer is not None:
                    activity_outputs[id(layer)] = out
                    penalty += layer.activity_regularizer(out)
            loss_value, weight_factor, count = self._batch_loss(y, out, sample_weight)
            results = [loss_value + penalty] + [
                float(np.mean(m(y, out))) for m in self._metric_functions
            ]
            dy = self.loss_function.gradient(y, out)
            if weight_factor is not None:
                dy = dy * weight_factor.astype(dy.dtype)
            dy *= np.asarray(1.0 / count, dtype=dy.dtype)
            if dy.dtype != out.dtype:
                dy = dy.astype(out.dtype)
            params, grads = [], []
            for layer in reversed(self.layers):
                if id(layer) in activity_outputs:
                    dy = dy + layer.activity_regularizer.gradient(activity_outputs[id(layer)])
                dy = layer.backward(dy)
            constrained = []
            for layer in self.layers:
                if len(layer.gradients) != len(layer.trainable_params):
                    raise RuntimeError(
                        "{}: backward produced {} gradients for {} trainable weights".format(
                            layer.name, len(layer.gradients), len(layer.trainable_params)
                        )
                    )
                for param, grad in zip(layer.trainable_params, layer.gradients):
                    if param.regularizer is not None:
                        grad = grad + param.regularizer.gradient(param.value)
                    params.append(param.value)
                    grads.append(grad)
                    if param.constraint is not None:
                        constrained.append(param)
        except BaseException:
            for layer in self.layers:
                layer.discard_updates()
            raise
        with _training.DeferKeyboardInterrupt():
            self.optimizer.update(params, grads)
            for param in constrained:
                param.constraint(param.value)
            for layer in self.layers:
                layer.commit_updates()
        return results

    def _test_step(self, x, y, sample_weight=None):
        out = x
        penalty = self._penalties()
        for layer in self.layers:
            out = layer.forward(out, training=False)
            if layer.activity_regularizer is not None:
                penalty += layer.activity_regularizer(out)
        loss_value = self._batch_loss(y, out, sample_weight)[0]
        return [loss_value + penalty] + [float(np.mean(m(y, out))) for m in self._metric_functions]

    def _predict_batch(self, x):
        for layer in self.layers:
            x = layer.forward(x, training=False)
        return x

    # -- public batch API -------------------------------------------------------------------
    @_compute_method
    def train_on_batch(self, x, y, class_weight=None, sample_weight=None):
        """One update on one batch; returns loss (and metrics) from before the update."""
        self._require_compiled("train_on_batch")
        x, y, weights = _inputs.standardize_xy(self, x, y, sample_weight, class_weight)
        return _unpack(self._train_step(x, y, weights))

    @_compute_method
    def test_on_batch(self, x, y, sample_weight=None):
        self._require_compiled("test_on_batch")
        x, y, weights = _inputs.standardize_xy(self, x, y, sample_weight)
        return _unpack(self._test_step(x, y, weights))

    @_compute_method
    def predict_on_batch(self, x):
        return self._predict_batch(_inputs.standardize_x(self, x, "input"))

    # -- fit (the loop itself: bnpy._training) ----------------------------------------------
    @_compute_method(per_step=True)
    def fit(
        self,
        x=None,
        y=None,
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
        **kwargs,
    ):
        """Train for ``epochs`` epochs (Sequential's Keras 2.0 default is 10; Keras 1's
        ``nb_epoch`` is accepted with Keras's warning). Returns a History whose ``history`` has
        the keys loss, acc (the batch-size-weighted means of the batch values of each epoch),
        val_loss, val_acc (exact means over the validation data after the epoch)."""
        if "nb_epoch" in kwargs:
            warnings.warn(
                "The `nb_epoch` argument in `fit` has been renamed `epochs`.",
                stacklevel=_training.user_stacklevel(),
            )
            epochs = kwargs.pop("nb_epoch")
        if kwargs:
            raise TypeError("Unrecognized keyword arguments: " + str(kwargs))
        self._require_compiled("fit")
        batch_size = positive_int(batch_size, "fit", "batch_size")
        x, y, weights = _inputs.standardize_xy(self, x, y, sample_weight, class_weight)
        (x, y, weights), val = _inputs.training_and_validation(
            self, (x, y, weights), validation_data, validation_split
        )
        do_validation = val is not None and len(val[0]) > 0
        smallest_batch = len(x) % batch_size or batch_size
        for layer in self.layers:  # fail before the first step, not at the end of an epoch
            layer.check_training_batch_size(min(smallest_batch, len(x)))
        callback_list = self._callbacks(
            callbacks,
            verbose,
            do_validation,
            "samples",
            epochs=epochs,
            batch_size=batch_size,
            samples=len(x),
        )
        if verbose and do_validation:
            print("Train on %d samples, validate on %d samples" % (len(x), len(val[0])))
        epoch_batches, steps = _training.array_batches(x, y, weights, batch_size, shuffle)

        def validate(last_batch_size):
            if not do_validation:
                return None
            with self._turns:
                return _training.test_loop(self, *val, batch_size)

        return _training.run_epochs(
            self, "fit", epoch_batches, steps, epochs, initial_epoch, callback_list, validate
        )

    @legacy_generator_methods_support
    @_compute_method(per_step=True)
    def fit_generator(
        self,
        generator,
        steps_per_epoch,
        epochs=1,
        verbose=1,
        callbacks=None,
        validation_data=None,
        validation_steps=None,
        class_weight=None,
        max_queue_size=10,
        workers=1,
        use_multiprocessing=False,
        initial_epoch=0,
    ):
        """Train on batches ``(x, y[, sample_weight])`` drawn from ``generator`` (e.g.
        ``ImageDataGenerator.flow``), ``steps_per_epoch`` per epoch. The batches are drawn in
        this thread (``max_queue_size``/``workers``/``use_multiprocessing`` are accepted for
        Keras compatibility and have no effect). ``validation_data`` is a tuple (evaluated with
        the size of the last training batch) or a generator (``validation_steps`` batches)."""
        self._require_compiled("fit_generator")
        steps_per_epoch = positive_int(steps_per_epoch, "fit_generator", "steps_per_epoch")
        do_validation = validation_data is not None
        val_is_generator = do_validation and not isinstance(validation_data, (tuple, list))
        if val_is_generator and not validation_steps:
            raise ValueError(
                "When using a generator for validation data, you must specify a value "
                "for `validation_steps`."
            )
        val = None
        if do_validation and not val_is_generator:
            if len(validation_data) not in (2, 3):
                raise ValueError(
                    "validation_data should be a tuple (val_x, val_y, val_sample_weight) "
                    "or (val_x, val_y). Found: {} items".format(len(validation_data))
                )
            val = _inputs.standardize_xy(
                self,
                *validation_data[:2],
                validation_data[2] if len(validation_data) == 3 else None,
            )
        callback_list = self._callbacks(
            callbacks, verbose, do_validation, "steps", epochs=epochs, steps=steps_per_epoch
        )
        epoch_batches = _training.generator_batches(
            self, generator, steps_per_epoch, class_weight, "fit_generator"
        )

        def validate(last_batch_size):
            if not do_validation:
                return None
            if val_is_generator:
                return np.atleast_1d(
                    self.evaluate_generator(validation_data, validation_steps)
                ).tolist()
            with self._turns:
                return _training.test_loop(self, *val, last_batch_size)

        return _training.run_epochs(
            self,
            "fit_generator",
            epoch_batches,
            steps_per_epoch,
            epochs,
            initial_epoch,
            callback_list,
            validate,
        )

    def _callbacks(self, callbacks, verbose, do_validation, count_mode, **params):
        """The callback list of a fit call, with the params Keras 2.0 gives its callbacks."""
        labels = list(self.metrics_names)
        params.setdefault("steps", None)
        params.update(
            verbose=verbose,
            do_validation=do_validation,
            metrics=labels + (["val_" + n for n in labels] if do_validation else []),
        )
        return _training.make_callbacks(self, callbacks, verbose, count_mode, params)

    # -- evaluate / predict -----------------------------------------------------------------
    @_compute_method
    def evaluate(self, x, y, batch_size=32, verbose=1, sample_weight=None):
        """Loss (and metrics) in inference mode: a scalar, or [loss, acc, ...]."""
        self._require_compiled("evaluate")
        batch_size = positive_int(batch_size, "evaluate", "batch_size")
        x, y, weights = _inputs.standardize_xy(self, x, y, sample_weight)
        return _unpack(_training.test_loop(self, x, y, weights, batch_size, verbose))

    @_compute_method
    def predict(self, x, batch_size=32, verbose=0):
        """Outputs in inference mode, batch by batch, as one array (N,) + output_shape[1:]."""
        batch_size = positive_int(batch_size, "predict", "batch_size")
        x = _inputs.standardize_x(self, x, "input")
        num_samples = len(x)
        result = None
        progbar = Progbar(target=num_samples) if verbose == 1 else None
        for start, end in _training.make_batches(num_samples, batch_size):
            out = self._predict_batch(x[start:end])
            if result is None:
                result = np.empty((num_samples,) + out.shape[1:], dtype=out.dtype)
            result[start:end] = out
            if progbar is not None:
                progbar.update(end)
        if result is None:
            result = np.empty((0,) + tuple(self.output_shape[1:]), dtype=self.dtype)
        return result

    def predict_classes(self, x, batch_size=32, verbose=1):
        """argmax of the predictions (or p > 0.5 for one output unit), as int."""
        proba = self.predict(x, batch_size=batch_size, verbose=verbose)
        if proba.shape[-1] > 1:
            return proba.argmax(axis=-1)
        return (proba > 0.5).astype("int32")

    def predict_proba(self, x, batch_size=32, verbose=1):
        """predict, with a warning when the values are not probabilities."""
        preds = self.predict(x, batch_size, verbose)
        if preds.size and (preds.min() < 0.0 or preds.max() > 1.0):
            warnings.warn(
                "Network returning invalid probability values. The last layer might "
                "not be a softmax.",
                stacklevel=2,
            )
        return preds

    # -- generators -------------------------------------------------------------------------
    @legacy_generator_methods_support
    @_compute_method
    def evaluate_generator(
        self, generator, steps, max_queue_size=10, workers=1, use_multiprocessing=False
    ):
        """Loss (and metrics) over ``steps`` batches of ``generator``, weighted by batch size."""
        self._require_compiled("evaluate_generator")
        steps = positive_int(steps, "evaluate_generator", "steps")
        generator = iter(generator)
        totals = np.zeros(len(self.metrics_names))
        seen = 0
        for _ in range(steps):
            xb, yb, wb = _training.next_batch(generator, "evaluate_generator")
            xb, yb, wb = _inputs.standardize_xy(self, xb, yb, wb)
            totals += np.asarray(self._test_step(xb, yb, wb)) * len(xb)
            seen += len(xb)
        return _unpack([float(v) for v in totals / max(1, seen)])

    @legacy_generator_methods_support
    @_compute_method
    def predict_generator(
        self, generator, steps, max_queue_size=10, workers=1, use_multiprocessing=False, verbose=0
    ):
        """Predictions for ``steps`` batches of ``generator`` (x, or (x, y[, w]) tuples)."""
        steps = positive_int(steps, "predict_generator", "steps")
        generator = iter(generator)
        outs = []
        progbar = Progbar(target=steps) if verbose == 1 else None
        for step in range(steps):
            item = next(generator)
            xb = item[0] if isinstance(item, tuple) else item
            outs.append(self.predict_on_batch(xb))
            if progbar is not None:
                progbar.update(step + 1)
        return np.concatenate(outs)

    # -- weights and model files (their formats: bnpy.saving) ---------------------------------
    def save_weights(self, filepath, overwrite=True):
        """Write all weights to ``filepath`` in bnpy's .npz weights format (see
        :mod:`bnpy.saving`), atomically: a temporary file in the same directory, then
        ``os.replace``."""
        with self._turns:  # the weights of one step, not of half of the next
            saving.save_weights(self, filepath, overwrite=overwrite)

    def save(self, filepath, overwrite=True):
        """Write the whole model, its layers' configs, weights, and compile settings with the
        optimizer's state, to one file that :func:`bnpy.models.load_model` reads back (Keras
        2.0's ``model.save``, in bnpy's .npz format: see :mod:`bnpy.saving`)."""
        with self._turns:
            saving.save_model(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, by_name=False):
        """Read weights written by ``save_weights`` or ``save``. Everything is checked first
        (format, number of layers with weights, each weight's short name, shape and dtype); on
        any mismatch a ValueError says what, and the model is left unchanged. ``by_name=True``
        matches layers by name instead of by order (layers absent from the file are left as
        they are). Keras 2's HDF5 weights and model files are read too, with h5py."""
        with self._turns:
            saving.load_weights(self, filepath, by_name=by_name)

    def get_config(self):
        return [
            {"class_name": type(layer).__name__, "config": layer.get_config()}
            for layer in self.layers
        ]

    def __repr__(self):
        return "<Sequential name={!r} layers={}>".format(
            self.name, [layer.name for layer in self.layers]
        )


def save_model(model, filepath, overwrite=True):
    """Keras 2.0's ``keras.models.save_model``: ``model.save(filepath, overwrite)``, which waits
    for a training step in progress in another thread (the model's lock)."""
    if not isinstance(model, Sequential):
        raise TypeError(
            "save_model: model must be a bnpy Sequential, got {}".format(type(model).__name__)
        )
    model.save(filepath, overwrite=overwrite)


def load_model(filepath, custom_objects=None, compile=True):
    """Keras 2.0's ``keras.models.load_model``: the model ``Sequential.save`` wrote, weights,
    compile settings and optimizer state included (see :mod:`bnpy.saving`)."""
    return saving.load_model(filepath, Sequential, custom_objects=custom_objects, compile=compile)


def _unique(arrays):
    seen, result = set(), []
    for a in arrays:
        if id(a) not in seen:
            seen.add(id(a))
            result.append(a)
    return result


def _unpack(values):
    return values[0] if len(values) == 1 else values
