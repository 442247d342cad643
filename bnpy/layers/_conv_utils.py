"""Argument normalisation and output sizes shared by the convolution and pooling layers
(Keras 2.0's ``keras/utils/conv_utils.py``)."""

from .. import backend


def normalize_tuple(value, n, name, layer):
    """An int or an n-tuple of ints → an n-tuple of positive ints."""
    if isinstance(value, int) and not isinstance(value, bool):
        values = (value,) * n
    else:
        try:
            values = tuple(value)
        except TypeError:
            values = None
        if (
            values is None
            or len(values) != n
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        ):
            raise ValueError(
                "{}: the `{}` argument must be a tuple of {} integers or an integer, "
                "got {!r}".format(layer, name, n, value)
            )
    if any(v < 1 for v in values):
        raise ValueError("{}: the `{}` values must be >= 1, got {!r}".format(layer, name, value))
    return values


def normalize_padding(value, layer):
    padding = value.lower() if isinstance(value, str) else value
    if padding not in ("valid", "same"):
        raise ValueError(
            "{}: the `padding` argument must be one of 'valid', 'same', got {!r}".format(
                layer, value
            )
        )
    return padding


def normalize_data_format(value, layer):
    data_format = backend.image_data_format() if value is None else value
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "{}: the `data_format` argument must be one of 'channels_first', "
            "'channels_last' (or Keras 1's dim_ordering 'tf', 'th'), got {!r}".format(layer, value)
        )
    return data_format


def conv_output_length(length, kernel, padding, stride, dilation=1):
    """'valid': ceil((n − k_eff + 1)/s); 'same': ceil(n/s) (TF's rules), where
    k_eff = k + (k − 1)(dilation − 1) is the extent of a dilated kernel."""
    if length is None:
        return None
    if padding == "same":
        return (length + stride - 1) // stride
    kernel = kernel + (kernel - 1) * (dilation - 1)
    return max(0, (length - kernel + stride) // stride)


def spatial_axes(data_format):
    """Axes of (rows, cols, channels) in a 4-D batch."""
    return (1, 2, 3) if data_format == "channels_last" else (2, 3, 1)
