"""Core layers (Keras 2.0's ``keras/layers/core.py``): Dense, Activation, Dropout, Flatten, Reshape."""

import numpy as np

from .. import activations, constraints, initializers, regularizers
from ..engine import Layer
from ..legacy.interfaces import legacy_dense_support, legacy_dropout_support


class Dense(Layer):
    """Fully connected layer: ``y = activation(x · kernel + bias)``.

    ``kernel`` has shape ``(input_dim, units)`` and the product contracts the last axis of x (a
    >2-D input keeps its leading axes, as Keras 2.0's code does). Weights: [kernel, bias].
    Backward, with dz the gradient at the pre-activation:

        dkernel = xᵀ·dz,  dbias = Σ_batch dz,  dx = dz·kernelᵀ
    """

    @legacy_dense_support
    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        if "input_shape" not in kwargs and "input_dim" in kwargs:
            kwargs["input_shape"] = (kwargs.pop("input_dim"),)
        super().__init__(**kwargs)
        self.units = _positive_int(units, "Dense", "units")
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self._cache = None

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "{}: Dense needs an input whose last dimension is known, got input shape {}".format(
                    self.name, input_shape
                )
            )
        add_kernel_and_bias(self, (input_shape[-1], self.units))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, training=False):
        y = np.matmul(x, self.kernel)
        if self.bias is not None:
            y += self.bias
        activations.forward_inplace(self.activation, y)
        self._cache = (x, y) if training else None
        return y

    def backward(self, dy):
        x, y = _cached(self)
        dz = activations.backward_from_output(self.activation, y, dy)
        dz2 = dz.reshape(-1, self.units)
        if self.trainable:
            self.gradients = [x.reshape(-1, x.shape[-1]).T @ dz2]
            if self.bias is not None:
                self.gradients.append(dz2.sum(axis=0))
        else:
            self.gradients = []
        self._cache = None
        return np.matmul(dz, self.kernel.T) if self.need_input_gradient else None

    def get_config(self):
        return dict(
            super().get_config(),
            units=self.units,
            activation=self.activation,
            use_bias=self.use_bias,
            **kernel_bias_options(self),
        )


class Activation(Layer):
    """Applies an activation function (see :mod:`bnpy.activations` for the list and formulas)."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self._y = None

    def forward(self, x, training=False):
        y = activations.apply(self.activation, x)
        self._y = y if training else None
        return y

    def backward(self, dy):
        if self._y is None:
            raise RuntimeError("{}: backward called without a training forward".format(self.name))
        dx = activations.backward_from_output(self.activation, self._y, dy)
        self._y = None
        self.gradients = []
        return dx if self.need_input_gradient else None

    def get_config(self):
        return dict(super().get_config(), activation=self.activation)


class Dropout(Layer):
    """Inverted dropout: in training each unit is kept with probability 1 − rate and scaled by
    1/(1 − rate) (kept when u ≥ rate for u ~ U[0, 1), as TF's dropout); identity otherwise.
    The mask comes from ``np.random`` (or a private generator when ``seed`` is given)."""

    @legacy_dropout_support
    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = min(1.0, max(0.0, float(rate)))
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        self._rng = np.random.RandomState(seed) if seed is not None else None
        self._scale = None

    def forward(self, x, training=False):
        if not (training and 0.0 < self.rate < 1.0):
            self._scale = None
            return x
        shape = x.shape
        if self.noise_shape is not None:
            if len(self.noise_shape) != x.ndim:
                raise ValueError(
                    "{}: noise_shape {} does not match the input rank {}".format(
                        self.name, self.noise_shape, x.ndim
                    )
                )
            shape = tuple(d if n is None else n for n, d in zip(self.noise_shape, x.shape))
        rng = self._rng if self._rng is not None else np.random
        keep = rng.random_sample(shape) >= self.rate
        scale = keep.astype(x.dtype)
        scale *= 1.0 / (1.0 - self.rate)
        self._scale = scale
        return x * scale

    def backward(self, dy):
        self.gradients = []
        if not self.need_input_gradient:
            return None
        if self._scale is None:  # identity in this phase
            return dy
        dy *= self._scale
        self._scale = None
        return dy

    def get_config(self):
        return dict(
            super().get_config(), rate=self.rate, noise_shape=self.noise_shape, seed=self.seed
        )


class Flatten(Layer):
    """(batch, d1, d2, ...) → (batch, d1·d2·...), row-major: for an (H, W, C) map the flat
    index is (h·W + w)·C + c. A view when the input is contiguous."""

    def compute_output_shape(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            raise ValueError(
                'The shape of the input to "Flatten" is not fully defined (got '
                + str(tuple(input_shape[1:]))
                + '. Make sure to pass a complete '
                '"input_shape" or "batch_input_shape" argument to the first layer '
                'in your model.'
            )
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def forward(self, x, training=False):
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        self.gradients = []
        return dy.reshape(self._input_shape) if self.need_input_gradient else None


class Reshape(Layer):
    """Reshape to ``target_shape`` (batch axis excluded; at most one -1, inferred)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def _fix_unknown_dimension(self, input_shape, output_shape):
        output_shape = list(output_shape)
        msg = "total size of new array must be unchanged"
        known, unknown = 1, None
        for index, dim in enumerate(output_shape):
            if dim < 0:
                if unknown is None:
                    unknown = index
                else:
                    raise ValueError("Can only specify one unknown dimension.")
            else:
                known *= dim
        original = int(np.prod(input_shape))
        if unknown is not None:
            if known == 0 or original % known != 0:
                raise ValueError(msg)
            output_shape[unknown] = original // known
        elif original != known:
            raise ValueError(msg)
        return tuple(output_shape)

    def compute_output_shape(self, input_shape):
        if any(d is None for d in input_shape[1:]):
            return (input_shape[0],) + self.target_shape
        return (input_shape[0],) + self._fix_unknown_dimension(input_shape[1:], self.target_shape)

    def forward(self, x, training=False):
        self._input_shape = x.shape
        return x.reshape((x.shape[0],) + self.target_shape)

    def backward(self, dy):
        self.gradients = []
        return dy.reshape(self._input_shape) if self.need_input_gradient else None

    def get_config(self):
        return dict(super().get_config(), target_shape=self.target_shape)


def add_kernel_and_bias(layer, kernel_shape):
    """The weights of a layer with a kernel and a bias (Dense, Conv2D): layer.kernel of
    kernel_shape and, with use_bias, layer.bias of its last dimension (else None), each with the
    layer's initializer, regularizer and constraint."""
    layer.kernel = layer.add_weight(
        kernel_shape,
        layer.kernel_initializer,
        "kernel",
        layer.kernel_regularizer,
        constraint=layer.kernel_constraint,
    )
    layer.bias = None
    if layer.use_bias:
        layer.bias = layer.add_weight(
            (kernel_shape[-1],),
            layer.bias_initializer,
            "bias",
            layer.bias_regularizer,
            constraint=layer.bias_constraint,
        )


def kernel_bias_options(layer):
    """The initializer, regularizer and constraint arguments of a layer with a kernel and a bias
    (Dense, Conv2D), for its get_config."""
    names = (
        "kernel_initializer",
        "bias_initializer",
        "kernel_regularizer",
        "bias_regularizer",
        "activity_regularizer",
        "kernel_constraint",
        "bias_constraint",
    )
    return {name: getattr(layer, name) for name in names}


def _positive_int(value, layer, arg):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError("{}: `{}` must be a positive integer, got {!r}".format(layer, arg, value))
    return int(value)


def _cached(layer):
    if layer._cache is None:
        raise RuntimeError("{}: backward called without a training forward".format(layer.name))
    return layer._cache
