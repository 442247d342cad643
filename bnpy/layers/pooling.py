"""Pooling layers (Keras 2.0's ``keras/layers/pooling.py``): the windowed ones on bnpy's C kernels,
the global ones (one reduction per channel, cheap next to any convolution) in NumPy."""

import numpy as np

from .. import ops
from ..engine import Layer
from ..legacy.interfaces import (
    _DIM_ORDERING,
    generate_legacy_interface,
    legacy_pooling2d_support,
)
from . import _conv_utils as cu


class _Pooling2D(Layer):
    _forward_name = None
    _backward_name = None

    @legacy_pooling2d_support
    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        cls = type(self).__name__
        self.pool_size = cu.normalize_tuple(pool_size, 2, "pool_size", cls)
        self.strides = (
            self.pool_size if strides is None else cu.normalize_tuple(strides, 2, "strides", cls)
        )
        self.padding = cu.normalize_padding(padding, cls)
        self.data_format = cu.normalize_data_format(data_format, cls)
        self._ctx = None

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "{}: {} expects 4-D input, got input shape {}".format(
                    self.name, type(self).__name__, input_shape
                )
            )
        row_axis, col_axis, _ = cu.spatial_axes(self.data_format)
        shape = list(input_shape)
        for i, axis in enumerate((row_axis, col_axis)):
            shape[axis] = cu.conv_output_length(
                shape[axis], self.pool_size[i], self.padding, self.strides[i]
            )
            if shape[axis] == 0:
                raise ValueError(
                    "{}: the input {} is smaller than the pool {}".format(
                        self.name, input_shape, self.pool_size
                    )
                )
        return tuple(shape)

    def forward(self, x, training=False):
        y, ctx = getattr(ops, self._forward_name)(
            x, self.pool_size, self.strides, self.padding, self.data_format
        )
        self._ctx = ctx if training else None
        return y

    def backward(self, dy):
        if self._ctx is None:
            raise RuntimeError("{}: backward called without a training forward".format(self.name))
        self.gradients = []
        ctx, self._ctx = self._ctx, None
        return getattr(ops, self._backward_name)(dy, ctx) if self.need_input_gradient else None

    def get_config(self):
        return dict(
            super().get_config(),
            pool_size=self.pool_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
        )


class MaxPooling2D(_Pooling2D):
    """Max over each window; 'same' padding cells are ignored. ``strides=None`` means pool_size.
    The gradient goes to the (first) maximum of each window."""

    _forward_name = "max_pool2d_forward"
    _backward_name = "max_pool2d_backward"


class AveragePooling2D(_Pooling2D):
    """Mean over each window; with 'same' padding, the mean of the real (non-pad) cells, as TF."""

    _forward_name = "avg_pool2d_forward"
    _backward_name = "avg_pool2d_backward"


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D


# Keras 2.0's legacy_global_pooling_support: Keras 1's dim_ordering, converted with a warning
legacy_global_pooling_support = generate_legacy_interface(
    conversions=[("dim_ordering", "data_format")], value_conversions=_DIM_ORDERING
)


class _GlobalPooling2D(Layer):
    """Reduce the two spatial axes of a 4-D input: (batch, rows, cols, channels) or
    (batch, channels, rows, cols) → (batch, channels)."""

    @legacy_global_pooling_support
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = cu.normalize_data_format(data_format, type(self).__name__)
        self._cache = None

    def _spatial(self):
        return (1, 2) if self.data_format == "channels_last" else (2, 3)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "{}: {} expects 4-D input, got input shape {}".format(
                    self.name, type(self).__name__, input_shape
                )
            )
        channel_axis = 3 if self.data_format == "channels_last" else 1
        return (input_shape[0], input_shape[channel_axis])

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("{}: backward called without a training forward".format(self.name))
        cache, self._cache = self._cache, None
        self.gradients = []
        if not self.need_input_gradient:
            return None
        return self._input_gradient(np.expand_dims(dy, self._spatial()), cache)

    def get_config(self):
        return dict(super().get_config(), data_format=self.data_format)


class GlobalAveragePooling2D(_GlobalPooling2D):
    """Mean over rows and columns, per channel: y[n, c] = (1/(H·W)) Σ_{i,j} x[n, i, j, c];
    dx[n, i, j, c] = dy[n, c] / (H·W)."""

    def forward(self, x, training=False):
        self._cache = x.shape if training else None
        return x.mean(axis=self._spatial(), dtype=x.dtype)

    def _input_gradient(self, dy, input_shape):
        rows, cols = (input_shape[axis] for axis in self._spatial())
        return np.broadcast_to(dy / (rows * cols), input_shape).astype(dy.dtype)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """Maximum over rows and columns, per channel: y[n, c] = max_{i,j} x[n, i, j, c]. The
    gradient goes to the maxima, split equally between tied ones, as TensorFlow's reduce_max
    (Keras 2's K.max) does."""

    def forward(self, x, training=False):
        y = x.max(axis=self._spatial())
        self._cache = (x, y) if training else None
        return y

    def _input_gradient(self, dy, cache):
        x, y = cache
        is_max = x == np.expand_dims(y, self._spatial())
        ties = is_max.sum(axis=self._spatial(), keepdims=True, dtype=dy.dtype)
        # a NaN maximum equals nothing: no tie, no gradient (and no division by zero)
        return np.where(is_max, dy / np.maximum(ties, 1), 0).astype(dy.dtype)


GlobalAvgPool2D = GlobalAveragePooling2D
GlobalMaxPool2D = GlobalMaxPooling2D
