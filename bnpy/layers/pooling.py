"""Pooling layers (Keras 2.0's ``keras/layers/pooling.py``), on bnpy's C kernels."""

from .. import ops
from ..engine import Layer
from ..legacy.interfaces import legacy_pooling2d_support
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
