"""Weight initializers (Keras 2.0's ``keras/initializers.py``).

An initializer is a callable ``init(shape, dtype) -> ndarray``. Random ones draw from NumPy's
global generator (``np.random``), so ``np.random.seed(s)`` at the top of a script fixes the
initial weights, as Keras users expect. Values are drawn in float64 and cast to ``dtype``.

Fans (``_compute_fans``): a 2-D kernel ``(in, out)`` has fan_in = in, fan_out = out; a conv kernel
``(kh, kw, in, out)`` has fan_in = kh·kw·in, fan_out = kh·kw·out; other ranks use
sqrt(prod(shape)) for both.

VarianceScaling(scale, mode, distribution): n = fan_in, fan_out or (fan_in + fan_out)/2;
``'uniform'`` draws U(-L, L) with L = sqrt(3·scale/n); ``'normal'`` draws a normal truncated at
two standard deviations with stddev = sqrt(scale/n) (Keras 2.0 does not rescale the truncated
stddev). glorot_uniform = (1, fan_avg, uniform), i.e. L = sqrt(6/(fan_in + fan_out)).
"""

import numpy as np


class Initializer:
    def __call__(self, shape, dtype="float32"):
        raise NotImplementedError

    def get_config(self):
        return {}


class Zeros(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype=dtype)


class Constant(Initializer):
    def __init__(self, value=0):
        self.value = value

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype="float32"):
        return _rng(self.seed).normal(self.mean, self.stddev, size=shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype="float32"):
        return _rng(self.seed).uniform(self.minval, self.maxval, size=shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class TruncatedNormal(Initializer):
    """Normal(mean, stddev) with values beyond two stddevs redrawn (as TF's truncated_normal)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype="float32"):
        return _truncated_normal(_rng(self.seed), shape, self.mean, self.stddev).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    def __init__(self, scale=1.0, mode="fan_in", distribution="normal", seed=None):
        if scale <= 0.0:
            raise ValueError(
                "VarianceScaling: `scale` must be a positive float, got {!r}".format(scale)
            )
        if mode not in {"fan_in", "fan_out", "fan_avg"}:
            raise ValueError(
                "VarianceScaling: invalid `mode` {!r}; expected 'fan_in', 'fan_out' "
                "or 'fan_avg'".format(mode)
            )
        if distribution not in {"normal", "uniform"}:
            raise ValueError(
                "VarianceScaling: invalid `distribution` {!r}; expected 'normal' or "
                "'uniform'".format(distribution)
            )
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[self.mode]
        variance = self.scale / max(1.0, n)
        rng = _rng(self.seed)
        if self.distribution == "normal":
            values = _truncated_normal(rng, shape, 0.0, np.sqrt(variance))
        else:
            limit = np.sqrt(3.0 * variance)
            values = rng.uniform(-limit, limit, size=shape)
        return values.astype(dtype)

    def get_config(self):
        return {
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "seed": self.seed,
        }


class Orthogonal(Initializer):
    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, dtype="float32"):
        num_rows = int(np.prod(shape[:-1]))
        num_cols = shape[-1]
        a = _rng(self.seed).normal(0.0, 1.0, (num_rows, num_cols))
        u, _, v = np.linalg.svd(a, full_matrices=False)
        q = u if u.shape == (num_rows, num_cols) else v
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype="float32"):
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(
                "Identity matrix initializer can only be used for 2D square "
                "matrices, got shape {}".format(tuple(shape))
            )
        return (self.gain * np.identity(shape[0])).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


def _rng(seed):
    """np.random's global state, or a private generator when a seed is given (as Keras)."""
    return np.random if seed is None else np.random.RandomState(seed)


def _truncated_normal(rng, shape, mean, stddev):
    values = rng.normal(0.0, 1.0, size=shape)
    outside = np.abs(values) > 2.0
    while outside.any():  # ~4.6% redrawn per round: a handful of rounds
        values[outside] = rng.normal(0.0, 1.0, size=int(outside.sum()))
        outside = np.abs(values) > 2.0
    return mean + stddev * values


def _compute_fans(shape):
    shape = tuple(shape)
    if len(shape) == 2:
        return shape[0], shape[1]
    if len(shape) in (3, 4, 5):  # channels_last kernels: (spatial..., in, out)
        receptive_field = int(np.prod(shape[:-2]))
        return shape[-2] * receptive_field, shape[-1] * receptive_field
    size = np.sqrt(np.prod(shape)) if shape else 1.0
    return size, size


def lecun_uniform(seed=None):
    return VarianceScaling(1.0, "fan_in", "uniform", seed)


def lecun_normal(seed=None):
    return VarianceScaling(1.0, "fan_in", "normal", seed)


def glorot_normal(seed=None):
    return VarianceScaling(1.0, "fan_avg", "normal", seed)


def glorot_uniform(seed=None):
    return VarianceScaling(1.0, "fan_avg", "uniform", seed)


def he_normal(seed=None):
    return VarianceScaling(2.0, "fan_in", "normal", seed)


def he_uniform(seed=None):
    return VarianceScaling(2.0, "fan_in", "uniform", seed)


zeros = zero = Zeros
ones = one = Ones
constant = Constant
uniform = random_uniform = RandomUniform
normal = random_normal = RandomNormal
truncated_normal = TruncatedNormal
orthogonal = Orthogonal
identity = Identity

_BY_NAME = {
    "zeros": Zeros,
    "zero": Zeros,
    "ones": Ones,
    "one": Ones,
    "constant": Constant,
    "uniform": RandomUniform,
    "random_uniform": RandomUniform,
    "normal": RandomNormal,
    "random_normal": RandomNormal,
    "truncated_normal": TruncatedNormal,
    "orthogonal": Orthogonal,
    "identity": Identity,
    "variance_scaling": VarianceScaling,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
}


def get(identifier):
    """An initializer from a name (``'glorot_uniform'``, Keras-1's ``'zero'``...) or a callable."""
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier.lower()]()
        except KeyError:
            raise ValueError(
                "Unknown initializer: {!r}; expected one of {}".format(
                    identifier, ", ".join(sorted(_BY_NAME))
                )
            ) from None
    if identifier is Initializer or type(identifier) is Initializer:
        raise ValueError(
            "Initializer is the base class of initializers and draws nothing; use "
            "one of its subclasses, such as {}".format(", ".join(sorted(_BY_NAME)[:4]))
        )
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError("Could not interpret initializer identifier: {!r}".format(identifier))
