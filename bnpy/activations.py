"""Activation functions (Keras 2.0's ``keras/activations.py``), with their derivatives.

Each public function ``f(x)`` returns a new array, as Keras's do. Layers use the in-place pair

    y  = forward_inplace(name, z)      # overwrites z with f(z) and returns it
    dz = backward_from_output(name, y, dy)   # dL/dz from y = f(z); may overwrite dy

Every derivative here is written in terms of the *output* y, so layers keep only y, never z:

    linear        f = z                              f' = 1
    relu          f = max(z, 0)                      f' = [y > 0]   (0 at z = 0, as TF)
    tanh          f = tanh z                         f' = 1 - y²
    sigmoid       f = 1 / (1 + e^-z)                 f' = y (1 - y)
    hard_sigmoid  f = clip(0.2 z + 0.5, 0, 1)        f' = 0.2 where 0 < y < 1
    softplus      f = log(1 + e^z)                   f' = sigmoid(z) = 1 - e^-y
    softsign      f = z / (1 + |z|)                  f' = 1/(1 + |z|)² = (1 - |y|)²
    elu (α=1)     f = z if z > 0 else α(e^z - 1)     f' = 1 if y > 0 else y + α
    selu          f = s·elu_a(z), a≈1.6733, s≈1.0507 f' = s if y > 0 else y + s·a
    softmax       f_i = e^{z_i} / Σ_j e^{z_j} (last axis)   dz = y ⊙ (dy − Σ_j dy_j y_j)
"""

import numpy as np

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


# -- in-place forward -------------------------------------------------------------------------
def _softmax_inplace(z):
    if z.ndim < 2:
        raise ValueError(
            "softmax: cannot apply softmax to a tensor that is 1D (got shape {})".format(z.shape)
        )
    z -= z.max(axis=-1, keepdims=True)  # the stable form: exp of non-positive numbers only
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _elu_inplace(z, alpha=1.0):
    negative = z < 0
    np.expm1(z, out=z, where=negative)
    if alpha != 1.0:
        np.multiply(z, alpha, out=z, where=negative)
    return z


def _selu_inplace(z):
    _elu_inplace(z, _SELU_ALPHA)
    z *= _SELU_SCALE
    return z


def _softplus_inplace(z):
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow for large |z|
    tail = np.negative(np.abs(z))
    np.exp(tail, out=tail)
    np.log1p(tail, out=tail)
    np.maximum(z, 0, out=z)
    z += tail
    return z


def _sigmoid_inplace(z):
    # 1/(1+e^-z) overflows harmlessly to 0 for very negative z; silence that warning only
    with np.errstate(over="ignore"):
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1
        np.reciprocal(z, out=z)
    return z


def _hard_sigmoid_inplace(z):
    z *= 0.2
    z += 0.5
    np.clip(z, 0.0, 1.0, out=z)
    return z


def _softsign_inplace(z):
    z /= 1 + np.abs(z)
    return z


def _relu_inplace(z):
    np.maximum(z, 0, out=z)
    return z


def _tanh_inplace(z):
    np.tanh(z, out=z)
    return z


_FORWARD = {
    "linear": lambda z: z,
    "relu": _relu_inplace,
    "tanh": _tanh_inplace,
    "sigmoid": _sigmoid_inplace,
    "hard_sigmoid": _hard_sigmoid_inplace,
    "softplus": _softplus_inplace,
    "softsign": _softsign_inplace,
    "elu": _elu_inplace,
    "selu": _selu_inplace,
    "softmax": _softmax_inplace,
}


# -- backward from the output -----------------------------------------------------------------
def _relu_backward(y, dy):
    dy *= y > 0
    return dy


def _tanh_backward(y, dy):
    factor = np.multiply(y, y)
    np.subtract(1, factor, out=factor)  # 1 − y², one temporary
    dy *= factor
    return dy


def _sigmoid_backward(y, dy):
    factor = np.subtract(1, y)
    factor *= y  # y(1 − y), one temporary
    dy *= factor
    return dy


def _hard_sigmoid_backward(y, dy):
    dy *= np.where((y > 0) & (y < 1), np.asarray(0.2, y.dtype), np.asarray(0, y.dtype))
    return dy


def _softplus_backward(y, dy):
    dy *= -np.expm1(-y)  # 1 - e^-y
    return dy


def _softsign_backward(y, dy):
    d = 1 - np.abs(y)
    dy *= d * d
    return dy


def _elu_backward(y, dy, alpha=1.0):
    dy *= np.where(y > 0, np.asarray(1, y.dtype), y + np.asarray(alpha, y.dtype))
    return dy


def _selu_backward(y, dy):
    scale = np.asarray(_SELU_SCALE, y.dtype)
    dy *= np.where(y > 0, scale, y + scale * np.asarray(_SELU_ALPHA, y.dtype))
    return dy


def _softmax_backward(y, dy):
    dot = np.einsum("...i,...i->...", dy, y)[..., None]
    dy -= dot
    dy *= y
    return dy


_BACKWARD = {
    "linear": lambda y, dy: dy,
    "relu": _relu_backward,
    "tanh": _tanh_backward,
    "sigmoid": _sigmoid_backward,
    "hard_sigmoid": _hard_sigmoid_backward,
    "softplus": _softplus_backward,
    "softsign": _softsign_backward,
    "elu": _elu_backward,
    "selu": _selu_backward,
    "softmax": _softmax_backward,
}


def forward_inplace(name, z):
    """Overwrite ``z`` with activation ``name`` of it and return it."""
    return _FORWARD[name](z)


_OUT_OF_PLACE = {"relu": lambda x: np.maximum(x, 0), "tanh": np.tanh}


def apply(name, x):
    """Activation ``name`` of ``x`` as a new array (one pass for relu and tanh)."""
    fast = _OUT_OF_PLACE.get(name)
    if fast is not None:
        return fast(x)
    return _FORWARD[name](np.array(x, copy=True))


def backward_from_output(name, y, dy):
    """dL/dz given ``y = f(z)`` and ``dy = dL/dy``; may overwrite ``dy``."""
    return _BACKWARD[name](y, dy)


# -- the public Keras functions ---------------------------------------------------------------
def _public(name):
    def activation(x):
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype("float32")
        return _FORWARD[name](x.copy())

    activation.__name__ = name
    activation.__doc__ = "Keras activation {!r} (returns a new array).".format(name)
    return activation


linear = _public("linear")
relu = _public("relu")
tanh = _public("tanh")
sigmoid = _public("sigmoid")
hard_sigmoid = _public("hard_sigmoid")
softplus = _public("softplus")
softsign = _public("softsign")
elu = _public("elu")
selu = _public("selu")
softmax = _public("softmax")


def get(identifier):
    """The activation's canonical name for a string, None (linear) or one of this module's
    functions. Other callables are not supported: layers need the derivative."""
    if identifier is None:
        return "linear"
    if (
        callable(identifier)
        and getattr(identifier, "__name__", None) in _FORWARD
        and globals().get(identifier.__name__) is identifier
    ):
        return identifier.__name__
    if isinstance(identifier, str) and identifier in _FORWARD:
        return identifier
    raise ValueError(
        "Unknown activation function: {!r}; expected one of {} (or None)".format(
            identifier, ", ".join(sorted(_FORWARD))
        )
    )


def serialize(name):
    return name
