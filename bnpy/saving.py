"""bnpy's two file formats, both NumPy ``.npz`` archives instead of Keras's HDF5 (NumPy is the only
dependency), and everything that reads or writes them: ``Sequential.save_weights`` and
``load_weights``, ``Sequential.save`` and ``load_model`` (Keras 2.0's ``model.save`` and
``keras.models.load_model``) call the functions here. This module never imports bnpy.models:
``load_model`` is handed the class to build.

A weights file (``save_weights``) holds

    __format__        the string 'bnpy-weights-1'
    __layer_names__   str array: the names of all layers, in model order
    __weight_names__  str array: the full weight names in model order ('dense_1/kernel:0', ...)
    <weight name>     one array per weight, stored under its full name

Loading matches weights by order, as Keras does (layer names may differ, e.g. ``dense_3`` for
``dense_1`` when the model was built second in a process), and checks the count, the short names
('kernel', 'gamma', ...), the shapes and the dtypes of every weight before it changes any of them.

A model file (``save``, ``__format__`` 'bnpy-model-1') holds what Keras's does:

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
from .utils.io_utils import NpzArchive, atomic_output, is_hdf5_file, stored_shape_and_dtype

__all__ = [
    "save_weights",
    "load_weights",
    "save_model",
    "load_model",
    "optimizer_state_arrays",
    "restore_optimizer_state",
]

WEIGHTS_FORMAT = "bnpy-weights-1"
MODEL_FORMAT = "bnpy-model-1"  # holds the same weight entries as a weights file

# Objects that may appear inside a layer's config, by the base class the saved class must extend.
_OBJECT_KINDS = [
    (initializers.Initializer, initializers),
    (regularizers.Regularizer, regularizers),
    (constraints.Constraint, constraints),
]


# ---- weights files ----------------------------------------------------------------------------------


def weight_arrays(model):
    """The weights under their Keras names, with the index entries load_weights reads."""
    names = [name for layer in model.layers for name in layer.weight_names]
    arrays = {name: value for name, value in zip(names, model.weights)}
    arrays["__layer_names__"] = np.array([layer.name for layer in model.layers], dtype=str)
    arrays["__weight_names__"] = np.array(names, dtype=str)
    return arrays


def write_npz(filepath, arrays):
    """np.savez into ``filepath`` atomically (utils.io_utils.atomic_output)."""
    with atomic_output(filepath, ".bnpy-weights-") as tmp_path:
        with open(tmp_path, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())


def read_npz(filepath, function, kind):
    """The arrays of a bnpy .npz file, read on access and bounded by their declared sizes
    (utils.io_utils.NpzArchive); ValueError naming ``function`` for anything that is not a
    readable .npz (a missing file stays FileNotFoundError)."""
    return NpzArchive(filepath, function, "bnpy {} file".format(kind))


def small_entry(stored, name, filepath, function="load_weights", max_bytes=8 << 20):
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


def save_weights(model, filepath, overwrite=True):
    """Write ``model``'s weights to ``filepath`` (the weights format of the module docstring)."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError("save_weights: {} exists and overwrite=False".format(filepath))
    arrays = weight_arrays(model)
    arrays["__format__"] = np.array(WEIGHTS_FORMAT)
    write_npz(filepath, arrays)


def load_weights(model, filepath, by_name=False):
    """Copy the weights of a weights or model file into ``model``, all or nothing (see
    ``Sequential.load_weights``)."""
    filepath = os.fspath(filepath)
    if is_hdf5_file(filepath):  # a Keras .h5 file (needs h5py)
        from ._keras_h5 import load_keras_h5_weights

        return load_keras_h5_weights(model, filepath, by_name, _set_weights_from)
    with read_npz(filepath, "load_weights", "weights") as stored:
        fmt = small_entry(stored, "__format__", filepath)
        if fmt is None or fmt.shape != () or str(fmt) not in (WEIGHTS_FORMAT, MODEL_FORMAT):
            raise ValueError(
                "load_weights: {} is not a bnpy weights file (no __format__ = {!r})".format(
                    filepath, WEIGHTS_FORMAT
                )
            )
        _set_weights_from(model, stored, filepath, by_name)


def _set_weights_from(model, stored, filepath, by_name=False):
    """load_weights' checks and copy, from the file's arrays ``stored`` (a dict, or an
    NpzArchive: then shapes and dtypes are checked from the entries' headers and only the
    arrays that fit are read)."""
    names_entry = small_entry(stored, "__weight_names__", filepath)
    if names_entry is None:
        raise ValueError("load_weights: {} has no __weight_names__ entry".format(filepath))
    saved_names = [str(n) for n in names_entry.reshape(-1)]
    missing = [n for n in saved_names if n not in stored]
    if missing:
        raise ValueError(
            "load_weights: {} lists weights it does not contain: {}".format(filepath, missing[:5])
        )
    saved_layers = []  # [(layer name, [(short name, array), ...])] in file order
    for name in saved_names:
        layer_name, _, short = name.rpartition("/")
        if not saved_layers or saved_layers[-1][0] != layer_name:
            saved_layers.append((layer_name, []))
        saved_layers[-1][1].append((short, name))
    model_layers = [layer for layer in model.layers if layer.weights]
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
                    "load_weights: layer {} weight {!r} has shape {}, the file has shape {}".format(
                        layer.name, name, target.shape, shape
                    )
                )
            if dtype != target.dtype:
                raise ValueError(
                    "load_weights: layer {} weight {!r} has dtype {}, the file has dtype {}".format(
                        layer.name, name, target.dtype, dtype
                    )
                )
            plan.append((target, entry))
    arrays = [
        stored[entry] for _, entry in plan
    ]  # all read (a damaged one raises) before any is copied
    for (target, _), array in zip(plan, arrays):
        np.copyto(target, array)


# ---- whole models: saving -----------------------------------------------------------------------------------------


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
    arrays = weight_arrays(model)
    arrays["__format__"] = np.array(MODEL_FORMAT)
    arrays["__model_config__"] = np.array(json.dumps(model_config))
    arrays["__training_config__"] = np.array(json.dumps(_training_config(model)))
    if model.optimizer is not None:
        arrays.update(optimizer_state_arrays(model))
    write_npz(filepath, arrays)


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


def load_model(filepath, model_class, custom_objects=None, compile=True):
    """The model ``save`` wrote to ``filepath``, built as a ``model_class`` (bnpy.models passes
    Sequential), with its weights and, when ``compile``, compiled as it was with its optimizer's
    state restored. ``custom_objects`` maps names to the layer classes, losses, metrics,
    initializers, regularizers or constraints that are not bnpy's. Users call
    :func:`bnpy.models.load_model`.

    Nothing large is allocated before it is known to fit: the file's entries are read only when
    needed, each after its header's shape and its declared size were checked; the layers are
    built only after a dry build (shapes, no arrays) matched every stored weight's shape."""
    filepath = os.fspath(filepath)
    custom_objects = dict(custom_objects or {})
    with read_npz(filepath, "load_model", "model") as stored:
        return _load_model_from(stored, filepath, model_class, custom_objects, compile)


def _load_model_from(stored, filepath, model_class, custom_objects, compile):
    fmt = small_entry(stored, "__format__", filepath, "load_model")
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
            str(small_entry(stored, "__model_config__", filepath, "load_model"))
        )
        training_entry = small_entry(stored, "__training_config__", filepath, "load_model")
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
        model = model_class(name=model_config["config"].get("name"))
        for layer in layers:
            model.add(layer)
        _set_weights_from(model, stored, filepath)
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
    names_entry = small_entry(stored, "__weight_names__", filepath, "load_model")
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
