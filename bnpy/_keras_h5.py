"""Reading Keras 2's HDF5 weights into a Sequential (``model.load_weights('weights.h5')``).

Layout written by Keras 2's ``save_weights`` (and by tf.keras 2 / tf_keras, the legacy ``.h5``
format), and inside the ``model_weights`` group of a ``model.save('model.h5')`` file::

    /                       attrs: layer_names (every layer, in model order), backend, keras_version
    /<layer>                attrs: weight_names (e.g. ['conv2d_1/kernel:0', 'conv2d_1/bias:0'],
                                   empty for a layer without weights)
    /<layer>/<weight name>  one dataset per weight: /conv2d_1/conv2d_1/kernel:0

An attribute too large for an HDF5 object header is split by Keras into ``<name>0``,
``<name>1``, ... (read here as one list). Weights are matched as bnpy's own .npz files are
(``bnpy.saving``'s check and copy): by order among the layers that have weights (or by layer
name), every count, short name ('kernel:0', 'gamma:0', ...), shape and dtype checked before any
weight changes, so a bad file leaves the model as it was. h5py is needed (``bnpy[h5]``).
"""

import numpy as np

__all__ = ["load_keras_h5_weights"]


def _import_h5py(filepath):
    try:
        import h5py
    except ImportError as exc:
        raise ImportError(
            "load_weights: {} is an HDF5 file (Keras's .h5 format); reading it needs h5py, "
            "which is not installed: pip install 'bnpy[h5]' (or pip install h5py)".format(filepath)
        ) from exc
    return h5py


def _text(value):
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _name_list(group, name):
    """The list attribute ``name`` of ``group`` (joined from Keras's ``name0``, ``name1``, ...
    chunks when it was split), as str; None when the group has neither."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while "{}{}".format(name, len(chunks)) in group.attrs:
            chunks.append(group.attrs["{}{}".format(name, len(chunks))])
        if not chunks:
            return None
    return [_text(v) for chunk in chunks for v in np.asarray(chunk).reshape(-1)]


def _short_name(weight_name):
    """'conv2d_1/kernel:0' -> 'kernel:0' (a name without Keras's ':0' suffix gets it)."""
    short = weight_name.rpartition("/")[2]
    return short if ":" in short else short + ":0"


def _weight_datasets(h5py, group, filepath):
    """[(layer name, [(short name, dataset), ...])] for the layers that have weights, in the
    file's order; ValueError for any missing attribute, group or dataset."""
    layer_names = _name_list(group, "layer_names")
    if layer_names is None:
        raise ValueError(
            "load_weights: {} is an HDF5 file but not a Keras weights or model file (no "
            "'layer_names' attribute at its root, and no 'model_weights' group)".format(filepath)
        )
    layers = []
    for layer_name in layer_names:
        layer_group = group.get(layer_name)
        if not isinstance(layer_group, h5py.Group):
            raise ValueError(
                "load_weights: {} lists layer {!r} in 'layer_names' but has no group for it".format(
                    filepath, layer_name
                )
            )
        weight_names = _name_list(layer_group, "weight_names")
        if weight_names is None:
            raise ValueError(
                "load_weights: {}'s group {!r} has no 'weight_names' attribute".format(
                    filepath, layer_name
                )
            )
        datasets = []
        for weight_name in weight_names:
            dataset = layer_group.get(weight_name)
            if not isinstance(dataset, h5py.Dataset):
                raise ValueError(
                    "load_weights: {}'s layer {!r} lists weight {!r} but has no dataset "
                    "{!r}".format(filepath, layer_name, weight_name, weight_name)
                )
            datasets.append((_short_name(weight_name), dataset))
        if datasets:
            layers.append((layer_name, datasets))
    return layers


def load_keras_h5_weights(model, filepath, by_name, set_weights_from):
    """Copy the weights of the Keras HDF5 file ``filepath`` into ``model`` (all or nothing):
    see the module docstring. ``set_weights_from(model, arrays, filepath, by_name)`` is the
    check-and-copy of bnpy's own weights files, given the arrays under bnpy's entry names."""
    h5py = _import_h5py(filepath)
    try:
        h5_file = h5py.File(filepath, "r")
    except OSError as exc:
        raise ValueError(
            "load_weights: {} is not a readable HDF5 file ({})".format(filepath, exc)
        ) from None
    with h5_file:
        group = h5_file
        if _name_list(group, "layer_names") is None and "model_weights" in group:
            group = group["model_weights"]  # a whole-model file from model.save
        layers = _weight_datasets(h5py, group, filepath)
        if by_name:  # the file's other layers are not read
            model_names = {layer.name for layer in model.layers}
            layers = [(name, datasets) for name, datasets in layers if name in model_names]
        # A dataset can only go into a weight of its exact shape: one larger than every weight
        # of the model is refused before it is read (a small compressed file may declare GBs).
        largest = max((w.size for w in model.weights), default=0)
        for layer_name, datasets in layers:
            for short, dataset in datasets:
                if dataset.size > largest:
                    raise ValueError(
                        "load_weights: {}'s weight {}/{} has shape {}, larger than any weight "
                        "of this model (the largest has {} values)".format(
                            filepath, layer_name, short, dataset.shape, largest
                        )
                    )
        stored = {}
        for layer_name, datasets in layers:
            for short, dataset in datasets:
                try:
                    stored["{}/{}".format(layer_name, short)] = dataset[()]
                except (OSError, ValueError, TypeError) as exc:
                    raise ValueError(
                        "load_weights: cannot read weight {}/{} of {} ({})".format(
                            layer_name, short, filepath, exc
                        )
                    ) from None
    stored["__weight_names__"] = np.array(list(stored), dtype=str)
    set_weights_from(model, stored, filepath, by_name)
