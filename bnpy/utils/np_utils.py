"""NumPy utilities (Keras 2.0's ``keras/utils/np_utils.py``)."""

import warnings

import numpy as np


def to_categorical(y, num_classes=None, **kwargs):
    """One-hot encode integer labels: a float64 array of shape ``(N, num_classes)``.

    ``y`` is ravelled first, so labels shaped ``(N, 1)`` (as CIFAR-10's) work; ``num_classes``
    defaults to ``max(y) + 1``. Keras 1's keyword ``nb_classes`` is accepted with a warning.
    """
    if "nb_classes" in kwargs:
        if num_classes is not None:
            raise TypeError("to_categorical: got both `num_classes` and the legacy `nb_classes`")
        warnings.warn(
            "to_categorical: the `nb_classes` argument has been renamed `num_classes`.",
            stacklevel=2,
        )
        num_classes = kwargs.pop("nb_classes")
    if kwargs:
        raise TypeError("to_categorical: unexpected keyword arguments {}".format(sorted(kwargs)))
    y = np.asarray(y)
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError("to_categorical: y must hold integer class labels, got non-integer values")
    y = np.array(y, dtype="int").ravel()
    if y.size and y.min() < 0:
        raise ValueError("to_categorical: labels must be >= 0, got {}".format(y.min()))
    if not num_classes:
        num_classes = int(np.max(y)) + 1 if y.size else 0
    if y.size and y.max() >= num_classes:
        raise ValueError(
            "to_categorical: label {} does not fit num_classes={}".format(y.max(), num_classes)
        )
    n = y.shape[0]
    categorical = np.zeros((n, num_classes))
    categorical[np.arange(n), y] = 1
    return categorical


def normalize(x, axis=-1, order=2):
    """``x`` divided by its L-``order`` norm along ``axis`` (zero norms left as they are)."""
    x = np.asarray(x)
    norms = np.atleast_1d(np.linalg.norm(x, order, axis))
    norms[norms == 0] = 1
    return x / np.expand_dims(norms, axis)
