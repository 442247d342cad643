"""BatchNormalization's argument checks and Batch Renormalization's helpers (Ioffe 2017; tf.keras's
``renorm`` arguments), kept apart from the layer so that its file reads as the layer."""

import math

import numpy as np

from .. import initializers

_RENORM_CLIPPING_KEYS = ("rmax", "rmin", "dmax")


def real_in_range(owner, name, value, low, high, allow_none=False):
    """``value`` as a float in [low, high] (NaN and bools rejected), or None when allow_none;
    TypeError/ValueError naming ``name`` otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(
            "{}: `{}` must be a real number{}, got {!r}".format(
                owner, name, " or None" if allow_none else "", value
            )
        )
    number = float(value)
    if not low <= number <= high:  # also rejects NaN
        raise ValueError(
            "{}: `{}` must be in [{}, {}], got {!r}".format(owner, name, low, high, value)
        )
    return number


def renorm_clipping_config(clipping):
    """tf.keras's ``renorm_clipping`` dict checked and copied (keys it omits mean no clipping on
    that side: rmin = 0, rmax = ∞, dmax = ∞)."""
    owner = "BatchNormalization"
    if clipping is None:
        return {}
    if not isinstance(clipping, dict):
        raise TypeError(
            "{}: `renorm_clipping` must be a dict with keys among {} or None, got {!r}".format(
                owner, _RENORM_CLIPPING_KEYS, clipping
            )
        )
    unknown = set(clipping) - set(_RENORM_CLIPPING_KEYS)
    if unknown:
        raise ValueError(
            "{}: `renorm_clipping` has unknown keys {}; supported: {}".format(
                owner, sorted(map(str, unknown)), _RENORM_CLIPPING_KEYS
            )
        )
    checked = {
        key: real_in_range(owner, "renorm_clipping['{}']".format(key), value, 0.0, math.inf)
        for key, value in clipping.items()
    }
    if checked.get("rmin", 0.0) > checked.get("rmax", math.inf):
        raise ValueError(
            "{}: `renorm_clipping` needs rmin <= rmax, got {!r}".format(owner, clipping)
        )
    return checked


def renorm_corrections(mean, var, renorm_mean, renorm_stddev, epsilon, clipping):
    """(r, d) in float64 as bn_renorm.h computes them: σ = √(var + ε), s = max(renorm_stddev, √ε),
    r = clip(σ/s, rmin, rmax), d = clip((mean − renorm_mean)/s, −dmax, dmax); a NaN stays."""
    s = np.maximum(renorm_stddev.astype(np.float64), math.sqrt(epsilon))
    r = np.sqrt(var + epsilon) / s
    d = (mean - renorm_mean.astype(np.float64)) / s
    r = np.clip(r, clipping.get("rmin", 0.0), clipping.get("rmax", math.inf))
    dmax = clipping.get("dmax", math.inf)
    return r, np.clip(d, -dmax, dmax)


class SqrtInitializer(initializers.Initializer):
    """√ of another initializer's values (tf.keras's moving_stddev_initializer under renorm)."""

    def __init__(self, initializer):
        self.initializer = initializer

    def __call__(self, shape, dtype=None):
        return np.sqrt(np.asarray(self.initializer(shape, dtype), dtype=np.float64)).astype(dtype)
