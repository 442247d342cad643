"""Losses (Keras 2.0's ``keras/losses.py`` with the TensorFlow backend), with their gradients.

A loss ``f(y_true, y_pred)`` returns the per-sample loss, shape ``y_pred.shape[:-1]``; the batch
loss is its mean. ``f.gradient(y_true, y_pred)`` returns d f / d y_pred (per sample, *not*
divided by the batch size), shaped like y_pred. ε = K.epsilon() = 1e-7 throughout.

    categorical_crossentropy:   p = y_pred / Σ_k y_pred_k;  q = clip(p, ε, 1-ε);
                                L = -Σ_k y_k log q_k
        dL/dy_pred_j = (g_j - Σ_k g_k p_k) / Σ_k y_pred_k,   g_k = -y_k/q_k · [ε < p_k < 1-ε]
        (after a softmax and with one-hot y this is p - y at the logits, and 0 when the
        true-class probability is clipped, as in Keras)
    sparse_categorical_crossentropy (integer y, TF's sparse softmax on log q):
                                q = clip(y_pred, ε, 1-ε);  L = -log q_y + log Σ_k q_k
        dL/dy_pred_j = [ε < y_pred_j < 1-ε] · (1/Σ_k q_k − [j = y]/q_j)
    binary_crossentropy:        q = clip(y_pred, ε, 1-ε);
                                L = mean_k −(y log q + (1−y) log(1−q))
        dL/dy_pred = [ε < y_pred < 1-ε] · (q − y) / (q(1−q)) / K
    mean_squared_error:         L = mean_k (y_pred − y)²         dL/dy_pred = 2(y_pred − y)/K
    mean_absolute_error:        L = mean_k |y_pred − y|          dL/dy_pred = sign(y_pred − y)/K

(K is the size of the last axis.) Losses compute in float64 and the gradient is returned in the
dtype of y_pred: the arrays are (batch, classes), small next to the network.
"""

import numpy as np

EPSILON = 1e-7


def _as_float64(a):
    return np.asarray(a, dtype=np.float64)


def categorical_crossentropy(y_true, y_pred):
    y_true, y_pred = _as_float64(y_true), _as_float64(y_pred)
    q = np.clip(y_pred / y_pred.sum(axis=-1, keepdims=True), EPSILON, 1 - EPSILON)
    return -np.sum(y_true * np.log(q), axis=-1)


def _categorical_crossentropy_gradient(y_true, y_pred):
    y_true64, y_pred64 = _as_float64(y_true), _as_float64(y_pred)
    total = y_pred64.sum(axis=-1, keepdims=True)
    p = y_pred64 / total
    inside = (p > EPSILON) & (p < 1 - EPSILON)
    g = np.where(inside, -y_true64 / np.clip(p, EPSILON, 1 - EPSILON), 0.0)
    grad = (g - np.sum(g * p, axis=-1, keepdims=True)) / total
    return grad.astype(np.result_type(y_pred.dtype, np.float32), copy=False)


def _sparse_labels(y_true, y_pred):
    labels = np.asarray(y_true)
    if labels.shape == y_pred.shape[:-1] + (1,):
        labels = labels[..., 0]
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(
            "sparse_categorical_crossentropy: y_true must have shape {} (or with a "
            "trailing 1), got {}".format(y_pred.shape[:-1], labels.shape)
        )
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= y_pred.shape[-1]):
        raise ValueError(
            "sparse_categorical_crossentropy: labels must be in [0, {}), got values "
            "in [{}, {}]".format(y_pred.shape[-1], labels.min(), labels.max())
        )
    return labels


def sparse_categorical_crossentropy(y_true, y_pred):
    y_pred = _as_float64(y_pred)
    labels = _sparse_labels(y_true, y_pred)
    q = np.clip(y_pred, EPSILON, 1 - EPSILON)
    q_true = np.take_along_axis(q, labels[..., None], axis=-1)[..., 0]
    return -np.log(q_true) + np.log(q.sum(axis=-1))


def _sparse_categorical_crossentropy_gradient(y_true, y_pred):
    y_pred64 = _as_float64(y_pred)
    labels = _sparse_labels(y_true, y_pred64)
    q = np.clip(y_pred64, EPSILON, 1 - EPSILON)
    grad = np.broadcast_to(1.0 / q.sum(axis=-1, keepdims=True), q.shape).copy()
    q_true = np.take_along_axis(q, labels[..., None], axis=-1)
    np.put_along_axis(
        grad,
        labels[..., None],
        np.take_along_axis(grad, labels[..., None], axis=-1) - 1.0 / q_true,
        axis=-1,
    )
    grad *= (y_pred64 > EPSILON) & (y_pred64 < 1 - EPSILON)
    return grad.astype(np.result_type(y_pred.dtype, np.float32), copy=False)


def binary_crossentropy(y_true, y_pred):
    y_true, y_pred = _as_float64(y_true), _as_float64(y_pred)
    q = np.clip(y_pred, EPSILON, 1 - EPSILON)
    return np.mean(-(y_true * np.log(q) + (1 - y_true) * np.log1p(-q)), axis=-1)


def _binary_crossentropy_gradient(y_true, y_pred):
    y_true64, y_pred64 = _as_float64(y_true), _as_float64(y_pred)
    q = np.clip(y_pred64, EPSILON, 1 - EPSILON)
    inside = (y_pred64 > EPSILON) & (y_pred64 < 1 - EPSILON)
    grad = np.where(inside, (q - y_true64) / (q * (1 - q)), 0.0) / y_pred64.shape[-1]
    return grad.astype(np.result_type(y_pred.dtype, np.float32), copy=False)


def mean_squared_error(y_true, y_pred):
    return np.mean(np.square(_as_float64(y_pred) - _as_float64(y_true)), axis=-1)


def _mean_squared_error_gradient(y_true, y_pred):
    grad = 2.0 * (_as_float64(y_pred) - _as_float64(y_true)) / np.shape(y_pred)[-1]
    return grad.astype(np.result_type(y_pred.dtype, np.float32), copy=False)


def mean_absolute_error(y_true, y_pred):
    return np.mean(np.abs(_as_float64(y_pred) - _as_float64(y_true)), axis=-1)


def _mean_absolute_error_gradient(y_true, y_pred):
    grad = np.sign(_as_float64(y_pred) - _as_float64(y_true)) / np.shape(y_pred)[-1]
    return grad.astype(np.result_type(y_pred.dtype, np.float32), copy=False)


categorical_crossentropy.gradient = _categorical_crossentropy_gradient
sparse_categorical_crossentropy.gradient = _sparse_categorical_crossentropy_gradient
binary_crossentropy.gradient = _binary_crossentropy_gradient
mean_squared_error.gradient = _mean_squared_error_gradient
mean_absolute_error.gradient = _mean_absolute_error_gradient

mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error

_BY_NAME = {
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "binary_crossentropy": binary_crossentropy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "MSE": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
    "MAE": mean_absolute_error,
}


def get(identifier):
    """A loss from its name, or a callable ``f(y_true, y_pred) -> per-sample loss`` that also
    has ``f.gradient(y_true, y_pred) -> d loss / d y_pred`` (bnpy has no automatic
    differentiation, so a custom loss must bring its gradient)."""
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier]
        except KeyError:
            raise ValueError(
                "Unknown loss function: {!r}; expected one of {}".format(
                    identifier, ", ".join(sorted(_BY_NAME))
                )
            ) from None
    if callable(identifier):
        if not callable(getattr(identifier, "gradient", None)):
            raise ValueError(
                "loss {!r}: a custom loss needs a `gradient(y_true, y_pred)` "
                "attribute returning d loss / d y_pred".format(identifier)
            )
        return identifier
    raise ValueError("Could not interpret loss identifier: {!r}".format(identifier))
