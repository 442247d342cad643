"""The Layer base class: the contract between Sequential and every layer.

A layer is built once from its input shape, then runs

    y  = layer.forward(x, training)   # caches what backward needs
    dx = layer.backward(dy)           # fills layer.gradients, aligned with layer.trainable_weights

Weights are NumPy arrays owned by the layer and updated *in place* by optimizers, so a reference
taken once (``layer.trainable_weights``) stays valid for the life of the layer. ``get_weights``
returns copies, ``set_weights`` copies into the existing arrays (:func:`assign_weights`).

Shapes carry the batch axis as ``None``: ``compute_output_shape((None, 32, 32, 3))``.

Ownership rules that let the training loop avoid copies:

- ``forward`` never modifies its input ``x`` (the previous layer may have cached it);
- ``backward`` may overwrite the ``dy`` it is given (it is consumed), and returns ``None`` when
  ``need_input_gradient`` is False (Sequential sets that on its first layer, whose input is data);
- ``backward`` does not change any weight: it only fills ``self.gradients``. Updates that a
  training step implies besides the optimizer's (BatchNormalization's moving statistics) are held
  back until the model calls ``commit_updates()``, after the whole backward pass succeeded.
"""

import re

import numpy as np

from . import _config

# Keras-2.0 base keywords accepted by every layer (keras/engine/topology.py, Layer.__init__).
_BASE_KWARGS = {
    "input_shape",
    "batch_input_shape",
    "batch_size",
    "dtype",
    "name",
    "trainable",
    "weights",
    "input_dtype",
}

# Process-global counters of automatic names, per snake_case prefix (as Keras's per-graph ones).
_name_counters = {}


def to_snake_case(name):
    """'MaxPooling2D' -> 'max_pooling2d', 'BatchNormalization' -> 'batch_normalization'."""
    intermediate = re.sub("(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", intermediate).lower()


def unique_layer_name(prefix):
    """prefix_1, prefix_2, ... across the whole process, as Keras 2.0 names layers."""
    _name_counters[prefix] = _name_counters.get(prefix, 0) + 1
    return "{}_{}".format(prefix, _name_counters[prefix])


def reset_layer_names():
    """Restart automatic layer names at _1 (Keras's K.clear_session() does this)."""
    _name_counters.clear()


def assign_weights(targets, weights, caller, labels):
    """Copy ``weights[i]`` into ``targets[i]`` for every i, all or nothing.

    Every input is checked (count, shape, a ``same_kind`` cast to the target's dtype) and
    converted into a private copy before any target is written, so a failed call changes nothing
    and an input that is itself one of the targets (``model.set_weights(model.weights[::-1])``)
    is read before it is overwritten. ``caller`` starts the error messages, ``labels[i]`` names
    target i in them.
    """
    weights = list(weights)
    if len(weights) != len(targets):
        raise ValueError(
            "{}: expected a list of {} arrays, got {}".format(caller, len(targets), len(weights))
        )
    copies = []
    for target, new, label in zip(targets, weights, labels):
        new = np.asarray(new)
        if new.shape != target.shape:
            raise ValueError(
                "{}: {} has shape {}, got an array of shape {}".format(
                    caller, label, target.shape, new.shape
                )
            )
        if not np.can_cast(new.dtype, target.dtype, casting="same_kind"):
            raise TypeError(
                "{}: {} has dtype {}, got an array of dtype {} (not a same-kind cast)".format(
                    caller, label, target.dtype, new.dtype
                )
            )
        copies.append(np.array(new, dtype=target.dtype, copy=True))
    for target, copy in zip(targets, copies):  # only after every input is checked and copied
        np.copyto(target, copy)


class _Param:
    """One weight: its array and what the model needs to know about it."""

    __slots__ = ("name", "value", "trainable", "regularizer", "constraint")

    def __init__(self, name, value, trainable, regularizer, constraint):
        self.name = name
        self.value = value
        self.trainable = trainable
        self.regularizer = regularizer
        self.constraint = constraint


class Layer:
    """Base class of all layers (Keras 2.0 semantics for names, shapes and weights)."""

    activity_regularizer = None  # a Regularizer on the layer's output, if any (Dense, Conv2D)

    def __init__(self, **kwargs):
        for key in kwargs:
            if key not in _BASE_KWARGS:
                raise TypeError(
                    "Keyword argument not understood: {!r} (in {})".format(key, type(self).__name__)
                )
        self.name = kwargs.get("name") or unique_layer_name(to_snake_case(type(self).__name__))
        self.trainable = kwargs.get("trainable", True)
        # Keras 2.0: a layer made without dtype takes backend.floatx() (float32 by default)
        self.dtype = np.dtype(
            kwargs.get("dtype") or kwargs.get("input_dtype") or _config.settings["floatx"]
        )
        if "batch_input_shape" in kwargs:
            self.batch_input_shape = tuple(kwargs["batch_input_shape"])
        elif "input_shape" in kwargs:
            self.batch_input_shape = (kwargs.get("batch_size"),) + tuple(kwargs["input_shape"])
        else:
            self.batch_input_shape = None
        self._initial_weights = kwargs.get("weights")
        self._params = []
        self.gradients = []
        self.built = False
        self.input_shape = None
        self.output_shape = None
        self.need_input_gradient = True

    # -- building ----------------------------------------------------------------------------
    def build(self, input_shape):
        """Create the weights for ``input_shape`` (batch axis included, as None)."""

    def compute_output_shape(self, input_shape):
        return input_shape

    def build_for(self, input_shape):
        """Build once for ``input_shape`` and record input and output shapes."""
        input_shape = tuple(input_shape)
        if not self.built:
            self.build(input_shape)
            self.built = True
            if self._initial_weights is not None:
                self.set_weights(self._initial_weights)
                self._initial_weights = None
        self.input_shape = input_shape
        self.output_shape = tuple(self.compute_output_shape(input_shape))
        return self.output_shape

    def add_weight(
        self,
        shape,
        initializer,
        name,
        regularizer=None,
        trainable=True,
        constraint=None,
        dtype=None,
    ):
        """Create a weight array from ``initializer(shape, dtype)`` and register it."""
        value = np.ascontiguousarray(
            initializer(tuple(shape), dtype or self.dtype), dtype=dtype or self.dtype
        )
        self._params.append(_Param(name, value, trainable, regularizer, constraint))
        return value

    # -- running -----------------------------------------------------------------------------
    def forward(self, x, training=False):
        """Output for input ``x``; in training mode, cache what backward needs."""
        raise NotImplementedError(type(self).__name__ + ".forward")

    def backward(self, dy):
        """Gradient of the loss w.r.t. the input of the last forward(x, training=True).

        Sets ``self.gradients`` (one array per entry of ``trainable_weights``).
        """
        raise NotImplementedError(type(self).__name__ + ".backward")

    def check_training_batch_size(self, batch_size):
        """Raise ValueError if a training batch of ``batch_size`` samples cannot be used (called
        by ``fit`` before the first step for the smallest batch; no constraint by default)."""

    def commit_updates(self):
        """Apply the non-gradient updates of the last training forward (none by default)."""

    def discard_updates(self):
        """Forget the pending updates of an unfinished training step (none by default)."""

    # -- weights -----------------------------------------------------------------------------
    @property
    def trainable_weights(self):
        return [p.value for p in self._params if p.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self):
        if self.trainable:
            return [p.value for p in self._params if not p.trainable]
        return [p.value for p in self._params]

    @property
    def trainable_params(self):
        """The _Param records behind ``trainable_weights`` (same order)."""
        return [p for p in self._params if p.trainable] if self.trainable else []

    @property
    def non_trainable_params(self):
        if self.trainable:
            return [p for p in self._params if not p.trainable]
        return list(self._params)

    @property
    def weight_names(self):
        """Keras-style names of ``weights``, e.g. ``['dense_1/kernel:0', 'dense_1/bias:0']``."""
        return [
            "{}/{}:0".format(self.name, p.name)
            for p in self.trainable_params + self.non_trainable_params
        ]

    @property
    def weights(self):
        """Keras order: trainable weights, then non-trainable ones."""
        return self.trainable_weights + self.non_trainable_weights

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Copy ``weights`` into the layer's arrays (see :func:`assign_weights`)."""
        assign_weights(
            self.weights,
            weights,
            self.name + ": set_weights",
            ["weight {}".format(i) for i in range(len(self.weights))],
        )

    def count_params(self):
        return int(sum(w.size for w in self.weights))

    def get_config(self):
        """The constructor's arguments that rebuild this layer (load_model calls
        ``cls(**config)``; initializers, regularizers and constraints appear as objects)."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = self.batch_input_shape
        return config

    @classmethod
    def from_config(cls, config):
        """The layer ``get_config()`` describes, unbuilt, with new weights (Keras 2.0's
        ``Layer.from_config``): ``cls(**config)``. ``layer.from_config(layer.get_config())``
        gives a layer with the same configuration (and name); copy weights with set_weights."""
        return cls(**config)

    def __repr__(self):
        return "<{} name={!r}>".format(type(self).__name__, self.name)
