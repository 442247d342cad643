"""Whole models in one file: ``Sequential.save`` and ``load_model`` (Keras 2.0's ``model.save`` and
``keras.models.load_model``), in bnpy's .npz format instead of HDF5 (NumPy is the only dependency).

A model file holds what Keras's does:

- ``__model_config__``: JSON of ``{"class_name": "Sequential", "config": {"name", "layers"}}``, each
  layer as ``{"class_name", "config"}`` from its ``get_config()``; initializers, regularizers and
  constraints inside a config as ``{"class_name", "config"}`` of their own;
- ``__training_config__``: JSON of the optimizer (class name and ``get_config()``), the loss and
  the metrics given to ``compile`` (``null`` for a model never compiled);
- the weights, under the same names and with the same index entries as ``save_weights`` writes
  (so ``load_weights`` reads a model file too);
- the optimizer's state: its step count (and Nadam's schedule) and, per trainable array in model
  order, the arrays ``Optimizer.get_state`` gives, so that training resumes where it stopped.

``load_model`` rebuilds every layer as ``cls(**config)`` (classes from ``bnpy.layers``, or
``custom_objects`` by name), adds them to a ``Sequential``, copies the weights in, and compiles
with the saved optimizer, loss and metrics (``compile=False`` skips that). Everything is read and
checked before a model is returned; a file that is not a model file, or that names an unknown
layer, loss or metric, raises ValueError saying which. Saving is atomic (a temporary file in the
same folder, then ``os.replace``), and refuses what it could not load back (a loss or metric
function it cannot name, a regularizer or constraint that is not one of bnpy's classes).
"""

import copy
import json
import os

import numpy as np

from . import (
    constraints,
    engine,
    initializers,
    losses,
    metrics,
    optimizers,
    regularizers,
)
from . import (
    layers as layers_module,
)
from .models import _MODEL_FORMAT as MODEL_FORMAT
from .models import Sequential, _read_npz, _small_entry
from .utils.io_utils import stored_shape_and_dtype

__all__ = ["save_model", "load_model", "optimizer_state_arrays", "restore_optimizer_state"]

# Objects that may appear inside a layer's config, by the base class the saved class must extend.
_OBJECT_KINDS = [
    (initializers.Initializer, initializers),
    (regularizers.Regularizer, regularizers),
    (constraints.Constraint, constraints),
]


# ---- saving -----------------------------------------------------------------------------------------


def _serialize_value(value, where):
    """A config value as JSON: objects as {"class_name", "config"}, tuples as lists."""
    for base, _ in _OBJECT_KINDS:
        if isinstance(value, base):
            return {
                "class_name": type(value).__name__,
                "config": {k: _serialize_value(v, where) for k, v in value.get_config().items()},
            }
    if isinstance(value, (list, tuple)):
        return [_serialize_value(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _serialize_value(v, where) for k, v in value.items()}
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if callable(value) and where.endswith("initializer"):
        return _OMIT  # a plain initializer function: the saved weights make it moot
    raise ValueError(
        "save: cannot save {} = {!r}: only bnpy's initializers, regularizers and "
        "constraints (or None) can be written to a model file".format(where, value)
    )


# Left out of a saved config: the layer gets its default back when loaded.
_OMIT = object()


def _layer_config(layer):
    config = {
        key: _serialize_value(value, "{}.{}".format(layer.name, key))
        for key, value in layer.get_config().items()
    }
    return {
        "class_name": type(layer).__name__,
        "config": {key: value for key, value in config.items() if value is not _OMIT},
    }


def _function_name(value, kind):
    """The loss or metric ``value`` as compile got it: a name, or a function's name (bnpy's own
    functions are found by it again; a custom one must come back through custom_objects)."""
    if isinstance(value, str):
        return value
    name = getattr(value, "__name__", None)
    if name is None:
        raise ValueError("save: cannot save the {} {!r}: it has no name".format(kind, value))
    return name


def _training_config(model):
    if model.optimizer is None:
        return None
    optimizer = model.optimizer
    return {
        "optimizer_config": {
            "class_name": type(optimizer).__name__,
            "config": _serialize_value(optimizer.get_config(), "optimizer"),
        },
        "loss": _function_name(model.loss, "loss"),
        "metrics": [_function_name(m, "metric") for m in model.metrics],
    }


def optimizer_state_arrays(model):
    """The state of ``model``'s optimizer as named arrays: its step state (``iterations``, and
    Nadam's schedule) and, per trainable array in model order, what ``Optimizer.get_state`` gives.
    Also what the experiments' checkpoints hold; :func:`restore_optimizer_state` reads it back."""
    optimizer = model.optimizer
    arrays = {}
    for name in optimizer.step_state_names:
        arrays["__optimizer__/{}".format(name)] = np.array(getattr(optimizer, name))
    for i, param in enumerate(model.trainable_weights):
        for j, slot in enumerate(optimizer.get_state(param)):
            arrays["__optimizer__/{}/{}".format(i, j)] = slot
    return arrays


def save_model(model, filepath, overwrite=True):
    """Write ``model`` (a Sequential) to ``filepath``: see the module docstring."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError("save: {} exists and overwrite=False".format(filepath))
    model_config = {
        "class_name": "Sequential",
        "config": {"name": model.name, "layers": [_layer_config(layer) for layer in model.layers]},
    }
    arrays = model._weight_arrays()
    arrays["__format__"] = np.array(MODEL_FORMAT)
    arrays["__model_config__"] = np.array(json.dumps(model_config))
    arrays["__training_config__"] = np.array(json.dumps(_training_config(model)))
    if model.optimizer is not None:
        arrays.update(optimizer_state_arrays(model))
    model._write_npz(filepath, arrays)


# ---- loading ----------------------------------------------------------------------------------------


def _deserialize_value(key, value, custom_objects):
    """Inverse of _serialize_value for a layer's config entry ``key``."""
    if isinstance(value, dict) and set(value) == {"class_name", "config"}:
        name = value["class_name"]
        for base, module in _OBJECT_KINDS:
            cls = custom_objects.get(name) or getattr(module, name, None)
            if cls is base:  # abstract: an Initializer draws nothing (save never writes one)
                raise ValueError(
                    "load_model: the config entry {!r} names {}, the base class of "
                    "{}s, not one that can be used".format(key, name, name.lower())
                )
            if isinstance(cls, type) and issubclass(cls, base):
                return cls(**value["config"])
        raise ValueError(
            "load_model: unknown object {!r} in the config entry {!r} (pass it in "
            "custom_objects)".format(name, key)
        )
    if isinstance(value, list):
        return tuple(_deserialize_value(key, v, custom_objects) for v in value)
    return value


def _layer_from_config(entry, custom_objects):
    name = entry.get("class_name")
    cls = custom_objects.get(name) or getattr(layers_module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, layers_module.Layer)):
        raise ValueError(
            "load_model: unknown layer class {!r} (pass it in custom_objects)".format(name)
        )
    config = {k: _deserialize_value(k, v, custom_objects) for k, v in entry["config"].items()}
    return cls(**config)


def _lookup(name, kind, known, custom_objects):
    if name in custom_objects:
        return custom_objects[name]
    try:
        known(name)
    except ValueError:
        raise ValueError(
            "load_model: unknown {} {!r} (pass it in custom_objects)".format(kind, name)
        ) from None
    return name


def load_model(filepath, custom_objects=None, compile=True):
    """The model ``save`` wrote to ``filepath``, with its weights and, when ``compile``, compiled
    as it was with its optimizer's state restored. ``custom_objects`` maps names to the layer
    classes, losses, metrics, initializers, regularizers or constraints that are not bnpy's.

    Nothing large is allocated before it is known to fit: the file's entries are read only when
    needed, each after its header's shape and its declared size were checked; the layers are
    built only after a dry build (shapes, no arrays) matched every stored weight's shape."""
    filepath = os.fspath(filepath)
    custom_objects = dict(custom_objects or {})
    with _read_npz(filepath, "load_model", "model") as stored:
        return _load_model_from(stored, filepath, custom_objects, compile)


def _load_model_from(stored, filepath, custom_objects, compile):
    fmt = _small_entry(stored, "__format__", filepath, "load_model")
    if (
        fmt is None
        or fmt.shape != ()
        or str(fmt) != MODEL_FORMAT
        or "__model_config__" not in stored
    ):
        raise ValueError(
            "load_model: {} is not a bnpy model file (no __format__ = {!r}; a file "
            "from save_weights needs load_weights on a model built in code)".format(
                filepath, MODEL_FORMAT
            )
        )
    try:
        model_config = json.loads(
            str(_small_entry(stored, "__model_config__", filepath, "load_model"))
        )
        training_entry = _small_entry(stored, "__training_config__", filepath, "load_model")
        training_config = json.loads("null" if training_entry is None else str(training_entry))
    except ValueError as exc:
        if str(exc).startswith("load_model:"):
            raise
        raise ValueError(
            "load_model: {} has a malformed config ({})".format(filepath, exc)
        ) from None
    # A config that does not have the shape save writes (a damaged or hand-made file) fails in
    # the lookups and constructor calls below: reported as the file's fault.
    try:
        layers = [
            _layer_from_config(entry, custom_objects) for entry in model_config["config"]["layers"]
        ]
        _check_stored_weights(layers, stored, filepath)
        model = Sequential(name=model_config["config"].get("name"))
        for layer in layers:
            model.add(layer)
        model._set_weights_from(stored, filepath)
        if compile and training_config is not None:
            _compile_from_config(model, training_config, custom_objects)
            restore_optimizer_state(model, stored)
    except ValueError as exc:
        if str(exc).startswith("load_model:"):
            raise
        raise ValueError("load_model: {}: {}".format(filepath, exc)) from exc
    except (TypeError, KeyError, AttributeError, IndexError, NotImplementedError) as exc:
        raise ValueError(
            "load_model: {} holds a config bnpy cannot build ({}: {})".format(
                filepath, type(exc).__name__, exc
            )
        ) from exc
    return model


def _dry_build(layers):
    """``[(layer, short weight name, shape, dtype)]`` of every weight ``layers`` would create in a
    Sequential, found by building a shallow copy of each layer whose ``add_weight`` hands back a
    zero-stride view (``np.broadcast_to``, 8 bytes whatever the shape) instead of an initialised
    array: the layers' own ``build`` decides the shapes, nothing is allocated. None when the
    dry build cannot be done (no input shape, or a ``build`` that fails on placeholders)."""
    planned = []
    first_shape = getattr(layers[0], "batch_input_shape", None) if layers else None
    if first_shape is None:
        return None  # Sequential.add says what is missing
    input_shape = tuple(None if d is None else int(d) for d in first_shape)
    for layer in layers:
        probe = copy.copy(layer)
        probe._params = []

        def add_shape_only(
            shape,
            initializer,
            name,
            regularizer=None,
            trainable=True,
            constraint=None,
            dtype=None,
            probe=probe,
        ):
            value = np.broadcast_to(np.zeros((), dtype or probe.dtype), tuple(shape))
            probe._params.append(engine._Param(name, value, trainable, regularizer, constraint))
            return value

        probe.add_weight = add_shape_only
        try:
            probe.build(input_shape)
            input_shape = tuple(probe.compute_output_shape(input_shape))
        except Exception:  # a config error, or a custom layer that writes into its new weights:
            return None  # the real build below runs (and reports) instead of this check
        for full_name, value in zip(probe.weight_names, probe.weights):
            planned.append((layer, full_name.rpartition("/")[2], value.shape, value.dtype))
    return planned


def _check_stored_weights(layers, stored, filepath):
    """Raise ValueError unless the file's weights (their headers) are exactly those the config's
    layers create: count, names, shapes and dtypes, before any layer allocates its arrays."""
    planned = _dry_build(layers)
    names_entry = _small_entry(stored, "__weight_names__", filepath, "load_model")
    if planned is None or names_entry is None:
        return  # Sequential.add or _set_weights_from reports it
    saved_names = [str(n) for n in names_entry.reshape(-1)]
    if len(saved_names) != len(planned):
        raise ValueError(
            "load_model: {}: the config's layers make {} weights, the file holds {}".format(
                filepath, len(planned), len(saved_names)
            )
        )
    for saved_name, (layer, short, shape, dtype) in zip(saved_names, planned):
        if saved_name.rpartition("/")[2] != short or saved_name not in stored:
            raise ValueError(
                "load_model: {}: layer {} makes weight {!r}, the file has {!r}".format(
                    filepath, layer.name, short, saved_name
                )
            )
        stored_shape, stored_dtype = stored_shape_and_dtype(stored, saved_name)
        if (stored_shape, stored_dtype) != (shape, dtype):
            raise ValueError(
                "load_model: {}: the config's layer {} makes weight {!r} of shape {} "
                "and dtype {}, the file holds shape {} and dtype {}; nothing was "
                "built".format(
                    filepath, layer.name, short, shape, dtype, stored_shape, stored_dtype
                )
            )


def _compile_from_config(model, training_config, custom_objects):
    optimizer_config = training_config["optimizer_config"]
    name = optimizer_config["class_name"]
    optimizer_cls = custom_objects.get(name) or getattr(optimizers, str(name), None)
    if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, optimizers.Optimizer)):
        raise ValueError(
            "load_model: unknown optimizer {!r} (pass it in custom_objects)".format(name)
        )
    model.compile(
        optimizer=optimizer_cls(**optimizer_config["config"]),
        loss=_lookup(training_config["loss"], "loss", losses.get, custom_objects),
        metrics=[
            m if m in ("acc", "accuracy") else _lookup(m, "metric", metrics.get, custom_objects)
            for m in training_config["metrics"]
        ],
    )


def restore_optimizer_state(model, arrays):
    """Install what :func:`optimizer_state_arrays` wrote into ``model``'s (compiled) optimizer;
    everything is checked first (a finite step state, iterations a whole number >= 0, every
    array's count and shape), and a ValueError says what does not fit."""
    optimizer = model.optimizer
    step_state = {}
    for name in optimizer.step_state_names:
        key = "__optimizer__/{}".format(name)
        value = (
            arrays[key] if key in arrays and stored_shape_and_dtype(arrays, key)[0] == () else None
        )
        if (
            value is None
            or value.shape != ()
            or value.dtype.kind not in "iuf"
            or not np.isfinite(value)
        ):
            raise ValueError("the optimizer's {!r} is missing or not a finite number".format(name))
        step_state[name] = value.item()
    if step_state["iterations"] < 0 or step_state["iterations"] != int(step_state["iterations"]):
        raise ValueError("the optimizer's iterations are {!r}".format(step_state["iterations"]))
    step_state["iterations"] = int(step_state["iterations"])
    plan = []
    for i, param in enumerate(model.trainable_weights):
        keys = []
        while "__optimizer__/{}/{}".format(i, len(keys)) in arrays:
            keys.append("__optimizer__/{}/{}".format(i, len(keys)))
        for key in keys:  # from the headers, before a slot of the wrong size is read
            shape = stored_shape_and_dtype(arrays, key)[0]
            if shape != param.shape:
                raise ValueError(
                    "the optimizer state {!r} has shape {}, its parameter {}".format(
                        key, shape, param.shape
                    )
                )
        plan.append((param, [arrays[key] for key in keys]))
    for param, slots in plan:
        optimizer.set_state(param, slots)
    for name, value in step_state.items():
        setattr(optimizer, name, value)
