"""Convolution layers (Keras 2.0's ``keras/layers/convolutional.py``): Conv2D (= Convolution2D)
and ZeroPadding2D. The convolution itself runs in bnpy's C core (:mod:`bnpy.ops`)."""

import numpy as np

from .. import activations, constraints, initializers, ops, regularizers
from ..engine import Layer
from ..legacy.interfaces import legacy_conv2d_support, legacy_zeropadding2d_support
from . import _conv_utils as cu
from .core import add_kernel_and_bias, kernel_bias_options

# Keras 2.0 re-exports the pooling layers here, and the article imports them from this module
from .pooling import AveragePooling2D, MaxPooling2D  # noqa: F401


class Conv2D(Layer):
    """2-D convolution, TF's cross-correlation (no kernel flip):

        y[n, i, j, o] = b[o] + Σ_{di, dj, c} x[n, i·s_r + di·d_r − pad_top, j·s_c + dj·d_c − pad_left, c]
                                              · K[di, dj, c, o]

    with the dilation rate (d_r, d_c), 1 for a plain convolution. ``kernel`` is always
    ``(rows, cols, in_channels, filters)`` (Keras 2's layout), whatever ``data_format``; ``bias`` is
    ``(filters,)``; weights [kernel, bias]. 'same' pads TF's way: pad_total =
    max((out − 1)·s + k_eff − n, 0) with k_eff = k + (k − 1)(d − 1), the extra row/column at the
    bottom/right. A dilation rate above 1 with a stride above 1 raises ValueError, as TensorFlow
    (Keras 2.0's backend) does. Keras 1's ``Convolution2D(nb_filter, nb_row, nb_col, border_mode=,
    subsample=, dim_ordering=, init=, W_regularizer=, ...)`` is accepted with Keras's warning.
    """

    @legacy_conv2d_support
    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
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
        super().__init__(**kwargs)
        cls = type(self).__name__
        if isinstance(filters, bool) or not isinstance(filters, (int, np.integer)) or filters < 1:
            raise ValueError(
                "{}: `filters` must be a positive integer, got {!r}".format(cls, filters)
            )
        self.filters = int(filters)
        self.kernel_size = cu.normalize_tuple(kernel_size, 2, "kernel_size", cls)
        self.strides = cu.normalize_tuple(strides, 2, "strides", cls)
        self.padding = cu.normalize_padding(padding, cls)
        self.data_format = cu.normalize_data_format(data_format, cls)
        self.dilation_rate = cu.normalize_tuple(dilation_rate, 2, "dilation_rate", cls)
        if self.dilation_rate != (1, 1) and self.strides != (1, 1):
            raise ValueError(
                "{}: strides > 1 not supported in conjunction with dilation_rate > 1 "
                "(got strides {} and dilation_rate {})".format(
                    cls, self.strides, self.dilation_rate
                )
            )
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
        if len(input_shape) != 4:
            raise ValueError(
                "{}: Conv2D expects 4-D input (batch, rows, cols, channels) or "
                "(batch, channels, rows, cols), got input shape {}".format(self.name, input_shape)
            )
        channels = input_shape[cu.spatial_axes(self.data_format)[2]]
        if channels is None:
            raise ValueError(
                "{}: the channel dimension of the inputs should be defined. Found `None`.".format(
                    self.name
                )
            )
        add_kernel_and_bias(self, self.kernel_size + (channels, self.filters))

    def compute_output_shape(self, input_shape):
        row_axis, col_axis, _ = cu.spatial_axes(self.data_format)
        rows = cu.conv_output_length(
            input_shape[row_axis],
            self.kernel_size[0],
            self.padding,
            self.strides[0],
            self.dilation_rate[0],
        )
        cols = cu.conv_output_length(
            input_shape[col_axis],
            self.kernel_size[1],
            self.padding,
            self.strides[1],
            self.dilation_rate[1],
        )
        if rows == 0 or cols == 0:
            raise ValueError(
                "{}: the input {} is smaller than the kernel {} with padding '{}'".format(
                    self.name, input_shape, self.kernel_size, self.padding
                )
            )
        if self.data_format == "channels_last":
            return (input_shape[0], rows, cols, self.filters)
        return (input_shape[0], self.filters, rows, cols)

    def forward(self, x, training=False):
        if training:
            y, ctx = ops.conv2d_forward(
                x,
                self.kernel,
                self.bias,
                self.strides,
                self.padding,
                self.data_format,
                self.dilation_rate,
            )
        else:
            y, ctx = (
                ops.conv2d(
                    x,
                    self.kernel,
                    self.bias,
                    self.strides,
                    self.padding,
                    self.data_format,
                    self.dilation_rate,
                ),
                None,
            )
        activations.forward_inplace(self.activation, y)
        self._cache = (ctx, y) if training else None
        return y

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("{}: backward called without a training forward".format(self.name))
        ctx, y = self._cache
        dz = activations.backward_from_output(self.activation, y, dy)
        dx, dkernel, dbias = ops.conv2d_backward(dz, ctx, need_dx=self.need_input_gradient)
        self._cache = None
        if self.trainable:
            self.gradients = [dkernel] + ([dbias] if self.bias is not None else [])
        else:
            self.gradients = []
        return dx if self.need_input_gradient else None

    def get_config(self):
        return dict(
            super().get_config(),
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
            activation=self.activation,
            use_bias=self.use_bias,
            **kernel_bias_options(self),
        )


Convolution2D = Conv2D


class ZeroPadding2D(Layer):
    """Pads rows and columns with zeros. ``padding``: an int p → ((p, p), (p, p)); (ph, pw) →
    ((ph, ph), (pw, pw)); or ((top, bottom), (left, right)). Keras 1's dict
    {top_pad, bottom_pad, left_pad, right_pad} and ``dim_ordering`` are converted with a warning."""

    @legacy_zeropadding2d_support
    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = cu.normalize_data_format(data_format, "ZeroPadding2D")
        self.padding = self._normalize(padding)

    @staticmethod
    def _normalize(padding):
        def is_int(v):
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0

        if is_int(padding):
            return ((int(padding),) * 2,) * 2
        if isinstance(padding, (tuple, list)) and len(padding) == 2:
            if all(is_int(p) for p in padding):
                return ((int(padding[0]),) * 2, (int(padding[1]),) * 2)
            if all(
                isinstance(p, (tuple, list)) and len(p) == 2 and all(is_int(q) for q in p)
                for p in padding
            ):
                return tuple((int(p[0]), int(p[1])) for p in padding)
        raise ValueError(
            "`padding` should be either an int, a tuple of 2 ints (symmetric_height_pad, "
            "symmetric_width_pad), or a tuple of 2 tuples of 2 ints ((top_pad, "
            "bottom_pad), (left_pad, right_pad)). Found: " + str(padding)
        )

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "{}: ZeroPadding2D expects 4-D input, got input shape {}".format(
                    self.name, input_shape
                )
            )
        shape = list(input_shape)
        row_axis, col_axis, _ = cu.spatial_axes(self.data_format)
        for axis, (before, after) in zip((row_axis, col_axis), self.padding):
            if shape[axis] is not None:
                shape[axis] += before + after
        return tuple(shape)

    def _interior(self, ndim_shape):
        row_axis, col_axis, _ = cu.spatial_axes(self.data_format)
        index = [slice(None)] * 4
        for axis, (before, after) in zip((row_axis, col_axis), self.padding):
            index[axis] = slice(before, ndim_shape[axis] - after)
        return tuple(index)

    def forward(self, x, training=False):
        out_shape = self.compute_output_shape((x.shape[0],) + x.shape[1:])
        y = np.zeros(out_shape, dtype=x.dtype)
        y[self._interior(out_shape)] = x
        return y

    def backward(self, dy):
        self.gradients = []
        return dy[self._interior(dy.shape)] if self.need_input_gradient else None

    def get_config(self):
        return dict(super().get_config(), padding=self.padding, data_format=self.data_format)
