"""The Sequential model (Keras 2.0's ``keras/models.py`` and ``keras/engine/training.py``).

The training loop is written out in ``Sequential._train_step`` and ``Sequential._fit_loop``:

    for each epoch:  shuffle the sample indices (np.random)
      for each batch:  forward every layer (training=True)
                       loss and metrics on the output (before this batch's update, as Keras)
                       backward every layer, last to first (the first layer skips dx)
                       optimizer update of every trainable weight, then the constraints,
                       then the BatchNormalization moving statistics
      validation: forward (training=False) over the validation data

The updates of a batch are applied only after its whole backward pass succeeded, with Ctrl-C
held back while they are applied, so an interrupted ``fit`` leaves the weights and moving
statistics of the last finished batch.

Weights file (``save_weights``/``load_weights``): a NumPy ``.npz`` archive with

    __format__        the string 'bnpy-weights-1'
    __layer_names__   str array: the names of all layers, in model order
    __weight_names__  str array: the full weight names in model order ('dense_1/kernel:0', ...)
    <weight name>     one array per weight, stored under its full name

written atomically (a temporary file in the same directory, then ``os.replace``) and read with
``allow_pickle=False``. Loading matches weights by order, as Keras does (layer names may differ,
e.g. ``dense_3`` for ``dense_1`` when the model was built second in a process), and checks the
count, the short names ('kernel', 'gamma', ...), the shapes and the dtypes of every weight
before it changes any of them.
"""

import contextlib
import functools
import os
import signal
import threading
import warnings

import numpy as np

from . import _memory, _threads, losses, optimizers
from . import callbacks as cbks
from . import metrics as metrics_module
from .engine import Layer, assign_weights, unique_layer_name
from .legacy.interfaces import legacy_generator_methods_support
from .utils.generic_utils import Progbar
from .utils.io_utils import NpzArchive, atomic_output, stored_shape_and_dtype

_WEIGHTS_FORMAT = "bnpy-weights-1"
_MODEL_FORMAT = "bnpy-model-1"  # bnpy.saving's whole-model files hold the same weight entries


class _DeferKeyboardInterrupt:
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


class _LossWatch:
    """Warns once per training call when a batch loss is NaN or infinite: from then on the
    weights are usually non-finite too, every prediction is NaN, and the metrics look plausible
    (categorical accuracy counts argmax of an all-NaN row as class 0, as Keras's does)."""

    def __init__(self, what):
        self.what = what
        self.warned = False

    def check(self, loss, epoch, batch):
        if not self.warned and not np.isfinite(loss):
            self.warned = True
            # stacklevel 5, the user's call: fit's frames are _fit_loop, fit and _compute_method's
            # wrapper; fit_generator's are fit_generator, that wrapper and the Keras-1 arguments'.
            warnings.warn(
                "Sequential.{}: the loss is {} at epoch {}, batch {}; the weights are "
                "probably not finite any more. Lower the learning rate, check the data "
                "for NaN/Inf, or stop training with bnpy.callbacks.TerminateOnNaN().".format(
                    self.what, loss, epoch, batch
                ),
                RuntimeWarning,
                stacklevel=5,
            )


def _make_batches(size, batch_size):
    """[(start, end), ...] covering range(size) in ceil(size/batch_size) batches."""
    num_batches = (size + batch_size - 1) // batch_size
    return [(i * batch_size, min(size, (i + 1) * batch_size)) for i in range(num_batches)]


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

    def _standardize_x(self, x, what):
        if isinstance(x, (list, tuple)) and len(x) == 1:
            x = x[0]
        if x is None:
            raise ValueError(
                "Error when checking {}: expected an array of shape {}, got None".format(
                    what, self.input_shape
                )
            )
        x = np.asarray(x)
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(
                "Error when checking {}: expected a numeric array, got dtype {}".format(
                    what, x.dtype
                )
            )
        if x.dtype != self.dtype:
            x = x.astype(self.dtype)
        expected = self.input_shape
        if x.ndim != len(expected):
            raise ValueError(
                "Error when checking {}: expected {} to have {} dimensions, but got "
                "array with shape {}".format(what, self.input_name, len(expected), x.shape)
            )
        for want, got in zip(expected[1:], x.shape[1:]):
            if want is not None and want != got:
                raise ValueError(
                    "Error when checking {}: expected {} to have shape {} but got "
                    "array with shape {}".format(what, self.input_name, expected, x.shape)
                )
        return x

    def _standardize_y(self, y):
        if isinstance(y, (list, tuple)) and len(y) == 1:
            y = y[0]
        if y is None:
            raise ValueError(
                "Error when checking target: expected an array of shape {}, got None".format(
                    self.output_shape
                )
            )
        y = np.asarray(y)
        if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
            raise TypeError(
                "Error when checking target: expected a numeric array, got dtype {}".format(y.dtype)
            )
        sparse = self.loss_function is losses.sparse_categorical_crossentropy
        if y.ndim == 1:
            y = y[:, None]
        if not sparse and y.dtype != self.dtype:
            y = y.astype(self.dtype)
        expected = self.output_shape
        output_name = self.layers[-1].name
        if (
            self.loss_function is losses.categorical_crossentropy
            and y.shape[-1] == 1
            and expected[-1] != 1
        ):
            raise ValueError(
                "You are passing a target array of shape " + str(y.shape) + " while "
                "using as loss `categorical_crossentropy`. `categorical_crossentropy` "
                "expects targets to be binary matrices (1s and 0s) of shape (samples, "
                "classes). If your targets are integer classes, you can convert them "
                "to the expected format via:\n```\nfrom bnpy.utils.np_utils import "
                "to_categorical\ny_binary = to_categorical(y_int)\n```\n\nAlternatively, "
                "you can use the loss function `sparse_categorical_crossentropy` "
                "instead, which does expect integer targets."
            )
        if y.ndim != len(expected):
            raise ValueError(
                "Error when checking target: expected {} to have {} dimensions, but "
                "got array with shape {}".format(output_name, len(expected), y.shape)
            )
        check = expected[1:-1] if sparse else expected[1:]
        for want, got in zip(check, y.shape[1:]):
            if want is not None and want != got:
                raise ValueError(
                    "Error when checking target: expected {} to have shape {} but got "
                    "array with shape {}".format(output_name, expected, y.shape)
                )
        return y

    def _standardize_xy(self, x, y, sample_weight=None, class_weight=None):
        x = self._standardize_x(x, "input")
        y = self._standardize_y(y)
        if len(x) != len(y):
            raise ValueError(
                "Input arrays should have the same number of samples as target arrays. "
                "Found {} input samples and {} target samples.".format(len(x), len(y))
            )
        weights = self._sample_weights(y, sample_weight, class_weight)
        return x, y, weights

    def _sample_weights(self, y, sample_weight, class_weight):
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (len(y),):
                raise ValueError(
                    "sample_weight: expected a 1-D array of {} weights, got shape {}".format(
                        len(y), sample_weight.shape
                    )
                )
            return sample_weight
        if class_weight:
            if y.shape[-1] > 1:
                classes = np.argmax(y.reshape(len(y), -1), axis=-1)
            else:
                classes = np.asarray(y).reshape(len(y)).astype(np.int64)
            missing = set(np.unique(classes).tolist()) - set(class_weight)
            if missing:
                raise ValueError("class_weight: no weight for classes {}".format(sorted(missing)))
            return np.asarray([class_weight[c] for c in classes.tolist()], dtype=np.float64)
        return None

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
        with _DeferKeyboardInterrupt():
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
        x, y, weights = self._standardize_xy(x, y, sample_weight, class_weight)
        return _unpack(self._train_step(x, y, weights))

    @_compute_method
    def test_on_batch(self, x, y, sample_weight=None):
        self._require_compiled("test_on_batch")
        x, y, weights = self._standardize_xy(x, y, sample_weight)
        return _unpack(self._test_step(x, y, weights))

    @_compute_method
    def predict_on_batch(self, x):
        return self._predict_batch(self._standardize_x(x, "input"))

    # -- fit --------------------------------------------------------------------------------
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
                "The `nb_epoch` argument in `fit` has been renamed `epochs`.", stacklevel=2
            )
            epochs = kwargs.pop("nb_epoch")
        if kwargs:
            raise TypeError("Unrecognized keyword arguments: " + str(kwargs))
        self._require_compiled("fit")
        batch_size = _positive(batch_size, "fit", "batch_size")
        x, y, weights = self._standardize_xy(x, y, sample_weight, class_weight)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError(
                    "When passing validation_data, it must contain 2 (x_val, y_val) "
                    "or 3 (x_val, y_val, val_sample_weights) items, however it "
                    "contains {} items".format(len(validation_data))
                )
            val = self._standardize_xy(
                *validation_data[:2], validation_data[2] if len(validation_data) == 3 else None
            )
        elif validation_split and 0.0 < validation_split < 1.0:
            split_at = int(len(x) * (1.0 - validation_split))
            val = (x[split_at:], y[split_at:], None if weights is None else weights[split_at:])
            x, y = x[:split_at], y[:split_at]
            weights = None if weights is None else weights[:split_at]
        return self._fit_loop(
            x, y, weights, batch_size, epochs, verbose, callbacks, val, shuffle, initial_epoch
        )

    def _make_callbacks(self, callbacks, verbose, count_mode):
        self.history = cbks.History()
        callback_list = [cbks.BaseLogger()] + list(callbacks or []) + [self.history]
        if verbose:
            callback_list.append(cbks.ProgbarLogger(count_mode=count_mode))
        callback_list = cbks.CallbackList(callback_list)
        callback_list.set_model(self)
        return callback_list

    def _fit_loop(
        self, x, y, weights, batch_size, epochs, verbose, callbacks, val, shuffle, initial_epoch
    ):
        do_validation = val is not None and len(val[0]) > 0
        out_labels = list(self.metrics_names)
        callback_metrics = out_labels + (["val_" + n for n in out_labels] if do_validation else [])
        num_train = len(x)
        smallest_batch = num_train % batch_size or batch_size
        for layer in self.layers:  # fail before the first step, not at the end of an epoch
            layer.check_training_batch_size(min(smallest_batch, num_train))
        callback_list = self._make_callbacks(callbacks, verbose, "samples")
        callback_list.set_params(
            {
                "batch_size": batch_size,
                "epochs": epochs,
                "steps": None,
                "samples": num_train,
                "verbose": verbose,
                "do_validation": do_validation,
                "metrics": callback_metrics,
            }
        )
        if verbose and do_validation:
            print("Train on %d samples, validate on %d samples" % (num_train, len(val[0])))
        self.stop_training = False
        loss_watch = _LossWatch("fit")
        callback_list.on_train_begin()
        index_array = np.arange(num_train)
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            epoch_logs = {}
            if shuffle == "batch":
                index_array = _batch_shuffle(index_array, batch_size)
            elif shuffle:
                np.random.shuffle(index_array)
            batches = _make_batches(num_train, batch_size)
            for batch_index, (start, end) in enumerate(batches):
                if shuffle:
                    ids = index_array[start:end]
                    xb, yb = x[ids], y[ids]
                    wb = None if weights is None else weights[ids]
                else:  # contiguous slices: views, no copy
                    xb, yb = x[start:end], y[start:end]
                    wb = None if weights is None else weights[start:end]
                batch_logs = {"batch": batch_index, "size": end - start}
                callback_list.on_batch_begin(batch_index, batch_logs)
                with self._turns:
                    outs = self._train_step(xb, yb, wb)
                loss_watch.check(outs[0], epoch, batch_index)
                for label, value in zip(out_labels, outs):
                    batch_logs[label] = value
                callback_list.on_batch_end(batch_index, batch_logs)
                if self.stop_training:
                    break
                if batch_index == len(batches) - 1 and do_validation:
                    with self._turns:
                        val_outs = self._test_loop(val[0], val[1], val[2], batch_size, verbose=0)
                    for label, value in zip(out_labels, val_outs):
                        epoch_logs["val_" + label] = value
            callback_list.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        callback_list.on_train_end()
        return self.history

    # -- evaluate / predict -----------------------------------------------------------------
    def _test_loop(self, x, y, weights, batch_size, verbose=0):
        """Exact per-sample means: Σ_batches value·len / N."""
        num_samples = len(x)
        totals = np.zeros(len(self.metrics_names))
        progbar = Progbar(target=num_samples) if verbose == 1 else None
        for start, end in _make_batches(num_samples, batch_size):
            outs = self._test_step(
                x[start:end], y[start:end], None if weights is None else weights[start:end]
            )
            totals += np.asarray(outs) * (end - start)
            if progbar is not None:
                progbar.update(end)
        return [float(v) for v in totals / max(1, num_samples)]

    @_compute_method
    def evaluate(self, x, y, batch_size=32, verbose=1, sample_weight=None):
        """Loss (and metrics) in inference mode: a scalar, or [loss, acc, ...]."""
        self._require_compiled("evaluate")
        batch_size = _positive(batch_size, "evaluate", "batch_size")
        x, y, weights = self._standardize_xy(x, y, sample_weight)
        return _unpack(self._test_loop(x, y, weights, batch_size, verbose))

    @_compute_method
    def predict(self, x, batch_size=32, verbose=0):
        """Outputs in inference mode, batch by batch, as one array (N,) + output_shape[1:]."""
        batch_size = _positive(batch_size, "predict", "batch_size")
        x = self._standardize_x(x, "input")
        num_samples = len(x)
        result = None
        progbar = Progbar(target=num_samples) if verbose == 1 else None
        for start, end in _make_batches(num_samples, batch_size):
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
    @staticmethod
    def _next_batch(generator, what):
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
        steps_per_epoch = _positive(steps_per_epoch, "fit_generator", "steps_per_epoch")
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
            val = self._standardize_xy(
                *validation_data[:2], validation_data[2] if len(validation_data) == 3 else None
            )
        out_labels = list(self.metrics_names)
        callback_metrics = out_labels + (["val_" + n for n in out_labels] if do_validation else [])
        callback_list = self._make_callbacks(callbacks, verbose, "steps")
        callback_list.set_params(
            {
                "epochs": epochs,
                "steps": steps_per_epoch,
                "verbose": verbose,
                "do_validation": do_validation,
                "metrics": callback_metrics,
            }
        )
        self.stop_training = False
        loss_watch = _LossWatch("fit_generator")
        callback_list.on_train_begin()
        generator = iter(generator)
        batch_size = None
        for epoch in range(initial_epoch, epochs):
            callback_list.on_epoch_begin(epoch)
            epoch_logs = {}
            for step in range(steps_per_epoch):
                xb, yb, wb = self._next_batch(generator, "fit_generator")
                xb, yb, wb = self._standardize_xy(xb, yb, wb, class_weight)
                batch_size = len(xb)
                batch_logs = {"batch": step, "size": batch_size}
                callback_list.on_batch_begin(step, batch_logs)
                with self._turns:
                    outs = self._train_step(xb, yb, wb)
                loss_watch.check(outs[0], epoch, step)
                for label, value in zip(out_labels, outs):
                    batch_logs[label] = value
                callback_list.on_batch_end(step, batch_logs)
                if self.stop_training:
                    break
            if do_validation and not self.stop_training:
                if val_is_generator:
                    val_outs = self.evaluate_generator(validation_data, validation_steps)
                else:
                    with self._turns:
                        val_outs = self._test_loop(val[0], val[1], val[2], batch_size, verbose=0)
                for label, value in zip(out_labels, np.atleast_1d(val_outs).tolist()):
                    epoch_logs["val_" + label] = value
            callback_list.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        callback_list.on_train_end()
        return self.history

    @legacy_generator_methods_support
    @_compute_method
    def evaluate_generator(
        self, generator, steps, max_queue_size=10, workers=1, use_multiprocessing=False
    ):
        """Loss (and metrics) over ``steps`` batches of ``generator``, weighted by batch size."""
        self._require_compiled("evaluate_generator")
        steps = _positive(steps, "evaluate_generator", "steps")
        generator = iter(generator)
        totals = np.zeros(len(self.metrics_names))
        seen = 0
        for _ in range(steps):
            xb, yb, wb = self._next_batch(generator, "evaluate_generator")
            xb, yb, wb = self._standardize_xy(xb, yb, wb)
            totals += np.asarray(self._test_step(xb, yb, wb)) * len(xb)
            seen += len(xb)
        return _unpack([float(v) for v in totals / max(1, seen)])

    @legacy_generator_methods_support
    @_compute_method
    def predict_generator(
        self, generator, steps, max_queue_size=10, workers=1, use_multiprocessing=False, verbose=0
    ):
        """Predictions for ``steps`` batches of ``generator`` (x, or (x, y[, w]) tuples)."""
        steps = _positive(steps, "predict_generator", "steps")
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

    # -- weights files ----------------------------------------------------------------------
    def save_weights(self, filepath, overwrite=True):
        """Write all weights to ``filepath`` (the .npz format of the module docstring),
        atomically: a temporary file in the same directory, then ``os.replace``."""
        filepath = os.fspath(filepath)
        if not overwrite and os.path.exists(filepath):
            raise FileExistsError("save_weights: {} exists and overwrite=False".format(filepath))
        with self._turns:  # the weights of one step, not of half of the next
            arrays = self._weight_arrays()
            arrays["__format__"] = np.array(_WEIGHTS_FORMAT)
            self._write_npz(filepath, arrays)

    def save(self, filepath, overwrite=True):
        """Write the whole model, its layers' configs, weights, and compile settings with the
        optimizer's state, to one file that :func:`bnpy.models.load_model` reads back (Keras
        2.0's ``model.save``, in bnpy's .npz format: see :mod:`bnpy.saving`)."""
        from .saving import save_model

        save_model(self, filepath, overwrite=overwrite)

    def _weight_arrays(self):
        """The weights under their Keras names, with the index entries load_weights reads."""
        names = self._weight_names()
        arrays = {name: value for name, value in zip(names, self.weights)}
        arrays["__layer_names__"] = np.array([layer.name for layer in self.layers], dtype=str)
        arrays["__weight_names__"] = np.array(names, dtype=str)
        return arrays

    @staticmethod
    def _write_npz(filepath, arrays):
        """np.savez into ``filepath`` atomically (utils.io_utils.atomic_output)."""
        with atomic_output(filepath, ".bnpy-weights-") as tmp_path:
            with open(tmp_path, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())

    def load_weights(self, filepath, by_name=False):
        """Read weights written by ``save_weights`` (``allow_pickle=False``). Everything is
        checked first (format, number of layers with weights, each weight's short name, shape
        and dtype); on any mismatch a ValueError says what, and the model is left unchanged.
        ``by_name=True`` matches layers by name instead of by order (layers absent from the file
        are left as they are)."""
        filepath = os.fspath(filepath)
        with _read_npz(filepath, "load_weights", "weights") as stored:
            fmt = _small_entry(stored, "__format__", filepath)
            if fmt is None or fmt.shape != () or str(fmt) not in (_WEIGHTS_FORMAT, _MODEL_FORMAT):
                raise ValueError(
                    "load_weights: {} is not a bnpy weights file (no __format__ = {!r})".format(
                        filepath, _WEIGHTS_FORMAT
                    )
                )
            with self._turns:
                self._set_weights_from(stored, filepath, by_name)

    def _set_weights_from(self, stored, filepath, by_name=False):
        """load_weights' checks and copy, from the file's arrays ``stored`` (a dict, or an
        NpzArchive: then shapes and dtypes are checked from the entries' headers and only the
        arrays that fit are read)."""
        names_entry = _small_entry(stored, "__weight_names__", filepath)
        if names_entry is None:
            raise ValueError("load_weights: {} has no __weight_names__ entry".format(filepath))
        saved_names = [str(n) for n in names_entry.reshape(-1)]
        missing = [n for n in saved_names if n not in stored]
        if missing:
            raise ValueError(
                "load_weights: {} lists weights it does not contain: {}".format(
                    filepath, missing[:5]
                )
            )
        saved_layers = []  # [(layer name, [(short name, array), ...])] in file order
        for name in saved_names:
            layer_name, _, short = name.rpartition("/")
            if not saved_layers or saved_layers[-1][0] != layer_name:
                saved_layers.append((layer_name, []))
            saved_layers[-1][1].append((short, name))
        model_layers = [layer for layer in self.layers if layer.weights]
        if by_name:
            by_layer_name = dict(saved_layers)
            pairs = [
                (layer, by_layer_name[layer.name])
                for layer in model_layers
                if layer.name in by_layer_name
            ]
        else:
            if len(saved_layers) != len(model_layers):
                raise ValueError(
                    "You are trying to load a weight file containing {} layers into a "
                    "model with {} layers.".format(len(saved_layers), len(model_layers))
                )
            pairs = list(zip(model_layers, (entries for _, entries in saved_layers)))
        plan = []
        for layer, entries in pairs:
            names = [n.rpartition("/")[2] for n in layer.weight_names]
            if len(entries) != len(names):
                raise ValueError(
                    "load_weights: layer {} expects {} weights, but the file has {} for it".format(
                        layer.name, len(names), len(entries)
                    )
                )
            for target, name, (short, entry) in zip(layer.weights, names, entries):
                if short != name:
                    raise ValueError(
                        "load_weights: layer {} expects weight {!r}, the file has {!r}".format(
                            layer.name, name, short
                        )
                    )
                shape, dtype = stored_shape_and_dtype(stored, entry)
                if shape != target.shape:
                    raise ValueError(
                        "load_weights: layer {} weight {!r} has shape {}, the file has "
                        "shape {}".format(layer.name, name, target.shape, shape)
                    )
                if dtype != target.dtype:
                    raise ValueError(
                        "load_weights: layer {} weight {!r} has dtype {}, the file has "
                        "dtype {}".format(layer.name, name, target.dtype, dtype)
                    )
                plan.append((target, entry))
        arrays = [
            stored[entry] for _, entry in plan
        ]  # all read (a damaged one raises) before any is copied
        for (target, _), array in zip(plan, arrays):
            np.copyto(target, array)

    def get_config(self):
        return [
            {"class_name": type(layer).__name__, "config": layer.get_config()}
            for layer in self.layers
        ]

    def __repr__(self):
        return "<Sequential name={!r} layers={}>".format(
            self.name, [layer.name for layer in self.layers]
        )


def load_model(filepath, custom_objects=None, compile=True):
    """Keras 2.0's ``keras.models.load_model``: the model ``Sequential.save`` wrote, weights,
    compile settings and optimizer state included (see :mod:`bnpy.saving`)."""
    from .saving import load_model as load

    return load(filepath, custom_objects=custom_objects, compile=compile)


def _read_npz(filepath, function, kind):
    """The arrays of a bnpy .npz file, read on access and bounded by their declared sizes
    (utils.io_utils.NpzArchive); ValueError naming ``function`` for anything that is not a
    readable .npz (a missing file stays FileNotFoundError)."""
    return NpzArchive(filepath, function, "bnpy {} file".format(kind))


def _small_entry(stored, name, filepath, function="load_weights", max_bytes=8 << 20):
    """The entry ``name`` of ``stored`` (None when absent), checked to hold at most ``max_bytes``
    before it is read: the format and index entries hold a string or the weights' names."""
    if name not in stored:
        return None
    shape, dtype = stored_shape_and_dtype(stored, name)
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > max_bytes:
        raise ValueError(
            "{}: {}'s entry {!r} is a {} array of shape {}, far larger than an index "
            "entry can be".format(function, filepath, name, dtype, shape)
        )
    return stored[name]


def _unique(arrays):
    seen, result = set(), []
    for a in arrays:
        if id(a) not in seen:
            seen.add(id(a))
            result.append(a)
    return result


def _unpack(values):
    return values[0] if len(values) == 1 else values


def _positive(value, function, arg):
    if value is None and arg == "batch_size":
        return 32  # Keras's default (Model.fit maps batch_size=None to 32)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            "Sequential.{}: `{}` must be a positive integer, got {!r}".format(function, arg, value)
        )
    return int(value)


def _batch_shuffle(index_array, batch_size):
    """Shuffle whole blocks of batch_size indices (Keras's shuffle='batch'); the tail stays last."""
    batch_count = len(index_array) // batch_size
    last_batch = index_array[batch_count * batch_size :]
    blocks = index_array[: batch_count * batch_size].reshape((batch_count, batch_size))
    np.random.shuffle(blocks)
    return np.append(blocks.flatten(), last_batch)
