"""Metrics (Keras 2.0's ``keras/metrics.py``): ``f(y_true, y_pred)`` returns per-sample values;
the batch value is their mean. Any loss of :mod:`bnpy.losses` is also a metric.

    categorical_accuracy        [argmax y_true = argmax y_pred]
    sparse_categorical_accuracy [y_true = argmax y_pred]          (integer labels)
    binary_accuracy             mean_k [y_true = round(y_pred)]
    top_k_categorical_accuracy  [argmax y_true among the k largest y_pred]
"""

import numpy as np

from . import losses as _losses
from .losses import (
    binary_crossentropy,
    mean_absolute_error,  # noqa: F401
    sparse_categorical_crossentropy,
)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    labels = np.asarray(y_true)
    if labels.shape == np.shape(y_pred)[:-1] + (1,):
        labels = labels[..., 0]
    return (labels == np.argmax(y_pred, axis=-1)).astype(np.float64)


def binary_accuracy(y_true, y_pred):
    # np.round rounds half to even, as tf.round does
    return np.mean(np.asarray(y_true) == np.round(y_pred), axis=-1)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    y_pred = np.asarray(y_pred)
    true_class = np.argmax(y_true, axis=-1)
    true_score = np.take_along_axis(y_pred, true_class[..., None], axis=-1)
    # in the top k when fewer than k scores are strictly larger (TF's in_top_k, ties counted in)
    return (np.sum(y_pred > true_score, axis=-1) < k).astype(np.float64)


_BY_NAME = {
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
}


def get(identifier):
    if isinstance(identifier, str):
        if identifier in _BY_NAME:
            return _BY_NAME[identifier]
        try:
            return _losses.get(identifier)
        except ValueError:
            raise ValueError("Unknown metric function: {!r}".format(identifier)) from None
    if callable(identifier):
        return identifier
    raise ValueError("Could not interpret metric identifier: {!r}".format(identifier))


def accuracy_for(loss_function, output_shape):
    """The accuracy Keras picks for metrics=['accuracy'] / ['acc'] (keras/engine/training.py)."""
    if output_shape[-1] == 1 or loss_function is binary_crossentropy:
        return binary_accuracy
    if loss_function is sparse_categorical_crossentropy:
        return sparse_categorical_accuracy
    return categorical_accuracy
