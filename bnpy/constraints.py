"""Weight constraints (Keras 2.0's ``keras/constraints.py``), applied in place after each
optimizer step. ``axis`` is the axis (or axes) the norm is taken along: for a Dense kernel
``(in, out)`` axis 0 constrains each unit's incoming weight vector; for a conv kernel
``(kh, kw, in, out)`` use ``axis=[0, 1, 2]``.

    max_norm(m):        w ← w · clip(‖w‖, 0, m) / (ε + ‖w‖)
    non_neg():          w ← w · [w ≥ 0]
    unit_norm():        w ← w / (ε + ‖w‖)
    min_max_norm(a, b, rate):  w ← w · (rate·clip(‖w‖, a, b) + (1 − rate)·‖w‖) / (ε + ‖w‖)

with ε = K.epsilon() = 1e-7.
"""

import numpy as np

_EPSILON = 1e-7


class Constraint:
    def __call__(self, w):
        """Constrain ``w`` in place."""
        raise NotImplementedError

    def get_config(self):
        return {}


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w), axis=tuple(np.atleast_1d(axis)), keepdims=True))


class MaxNorm(Constraint):
    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        w *= np.clip(norms, 0, self.max_value) / (_EPSILON + norms)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    def __call__(self, w):
        np.maximum(w, 0, out=w)


class UnitNorm(Constraint):
    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w /= _EPSILON + _norms(w, self.axis)

    def get_config(self):
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value, self.max_value, self.rate, self.axis = min_value, max_value, rate, axis

    def __call__(self, w):
        norms = _norms(w, self.axis)
        desired = (
            self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        )
        w *= desired / (_EPSILON + norms)

    def get_config(self):
        return {
            "min_value": self.min_value,
            "max_value": self.max_value,
            "rate": self.rate,
            "axis": self.axis,
        }


max_norm = maxnorm = MaxNorm
non_neg = nonneg = NonNeg
unit_norm = unitnorm = UnitNorm
min_max_norm = MinMaxNorm

_BY_NAME = {
    "max_norm": MaxNorm,
    "maxnorm": MaxNorm,
    "non_neg": NonNeg,
    "nonneg": NonNeg,
    "unit_norm": UnitNorm,
    "unitnorm": UnitNorm,
    "min_max_norm": MinMaxNorm,
}


def get(identifier):
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if callable(identifier):
        return identifier
    raise ValueError("Could not interpret constraint identifier: {!r}".format(identifier))
