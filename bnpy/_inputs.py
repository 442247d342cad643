"""What Sequential's methods accept as data, checked and converted once at the door (Keras 2.0's
``_standardize_input_data`` and ``_standardize_weights``): inputs and targets as arrays of the
model's dtype and shapes, sample weights from ``sample_weight`` or ``class_weight``, and the
positive integers (batch size, steps) the loops need. Every error names the argument, what was
expected and what came, as Keras's messages do."""

import numpy as np

from . import losses


def standardize_x(model, x, what):
    if isinstance(x, (list, tuple)) and len(x) == 1:
        x = x[0]
    if x is None:
        raise ValueError(
            "Error when checking {}: expected an array of shape {}, got None".format(
                what, model.input_shape
            )
        )
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(
            "Error when checking {}: expected a numeric array, got dtype {}".format(what, x.dtype)
        )
    if x.dtype != model.dtype:
        x = x.astype(model.dtype)
    expected = model.input_shape
    if x.ndim != len(expected):
        raise ValueError(
            "Error when checking {}: expected {} to have {} dimensions, but got "
            "array with shape {}".format(what, model.input_name, len(expected), x.shape)
        )
    for want, got in zip(expected[1:], x.shape[1:]):
        if want is not None and want != got:
            raise ValueError(
                "Error when checking {}: expected {} to have shape {} but got "
                "array with shape {}".format(what, model.input_name, expected, x.shape)
            )
    return x


def standardize_y(model, y):
    if isinstance(y, (list, tuple)) and len(y) == 1:
        y = y[0]
    if y is None:
        raise ValueError(
            "Error when checking target: expected an array of shape {}, got None".format(
                model.output_shape
            )
        )
    y = np.asarray(y)
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(
            "Error when checking target: expected a numeric array, got dtype {}".format(y.dtype)
        )
    sparse = model.loss_function is losses.sparse_categorical_crossentropy
    if y.ndim == 1:
        y = y[:, None]
    if not sparse and y.dtype != model.dtype:
        y = y.astype(model.dtype)
    expected = model.output_shape
    output_name = model.layers[-1].name
    if (
        model.loss_function is losses.categorical_crossentropy
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


def standardize_xy(model, x, y, sample_weight=None, class_weight=None):
    x = standardize_x(model, x, "input")
    y = standardize_y(model, y)
    if len(x) != len(y):
        raise ValueError(
            "Input arrays should have the same number of samples as target arrays. "
            "Found {} input samples and {} target samples.".format(len(x), len(y))
        )
    weights = sample_weights(y, sample_weight, class_weight)
    return x, y, weights


def training_and_validation(model, training, validation_data, validation_split):
    """fit's validation set: ``validation_data`` standardized ((x, y) or (x, y, sample_weight)),
    else, for ``validation_split`` in (0, 1), that fraction of the training samples, the last
    ones (before any shuffle), as Keras does; else None. Returns ((x, y, weights) to train on,
    the validation triple or None)."""
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError(
                "When passing validation_data, it must contain 2 (x_val, y_val) "
                "or 3 (x_val, y_val, val_sample_weights) items, however it "
                "contains {} items".format(len(validation_data))
            )
        return training, standardize_xy(model, *validation_data)
    if validation_split and 0.0 < validation_split < 1.0:
        split_at = int(len(training[0]) * (1.0 - validation_split))
        return (
            tuple(None if a is None else a[:split_at] for a in training),
            tuple(None if a is None else a[split_at:] for a in training),
        )
    return training, None


def sample_weights(y, sample_weight, class_weight):
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


def positive_int(value, function, arg):
    if value is None and arg == "batch_size":
        return 32  # Keras's default (Model.fit maps batch_size=None to 32)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            "Sequential.{}: `{}` must be a positive integer, got {!r}".format(function, arg, value)
        )
    return int(value)
