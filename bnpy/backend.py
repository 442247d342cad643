"""What Keras 2 scripts use of ``keras.backend`` (``from bnpy import backend as K``).

Settings (Keras 2.0's defaults; Keras read them from ``~/.keras/keras.json``, bnpy starts from the
defaults in every process and writes no file):

- ``image_data_format()`` / ``set_image_data_format(f)``: 'channels_last' (NHWC) or
  'channels_first' (NCHW); what a layer or ImageDataGenerator made with ``data_format=None``
  uses (read when the layer is made, as Keras does).
- ``epsilon()`` / ``set_epsilon(e)``: 1e-7, the fuzz factor of the losses' clipping
  (``bnpy.losses.EPSILON``, read at every call). BatchNormalization's own ``epsilon`` (1e-3) is
  a layer argument, as in Keras.
- ``floatx()`` / ``set_floatx(t)``: 'float32' or 'float64' (bnpy's kernels compute in these two;
  Keras's 'float16' is refused); the dtype of a layer made without ``dtype=`` (read when the
  layer is made, as Keras does) and of ImageDataGenerator's batches.

Values: bnpy has no symbolic tensors, its variables are NumPy arrays (a layer's weights, owned
and updated in place) and an optimizer's ``lr`` (:class:`bnpy.optimizers.LearningRate`):

- ``get_value(x)`` -> a copy of the array (a float for ``optimizer.lr``);
- ``set_value(x, value)`` writes ``value`` into the array in place (same shape, same-kind cast:
  the model sees it), or sets the learning rate of ``optimizer.lr``'s optimizer;
- ``int_shape(x)`` -> ``x.shape`` as a tuple of ints;
- ``clear_session()`` restarts the automatic layer names (``dense_1``, ...), as Keras's does.
"""

import numpy as np

from . import _config, engine, losses
from .optimizers import LearningRate

__all__ = [
    "image_data_format",
    "set_image_data_format",
    "epsilon",
    "set_epsilon",
    "floatx",
    "set_floatx",
    "clear_session",
    "int_shape",
    "get_value",
    "set_value",
    "backend",
]

_IMAGE_DATA_FORMATS = ("channels_last", "channels_first")
_FLOATX = ("float32", "float64")
_settings = _config.settings


def backend():
    """The name of the backend: 'bnpy' (Keras answers 'tensorflow', 'theano' or 'cntk')."""
    return "bnpy"


def image_data_format():
    """'channels_last' (the default) or 'channels_first'."""
    return _settings["image_data_format"]


def _set_choice(setting, value, choices, function, what):
    if value not in choices:
        raise ValueError(
            "{}: unknown {} {!r}; expected one of {}".format(
                function, what, value, ", ".join(choices)
            )
        )
    _settings[setting] = str(value)


def set_image_data_format(data_format):
    _set_choice(
        "image_data_format",
        data_format,
        _IMAGE_DATA_FORMATS,
        "set_image_data_format",
        "data_format",
    )


def epsilon():
    """The losses' fuzz factor (1e-7 by default)."""
    return losses.EPSILON


def set_epsilon(value):
    value = float(value)
    if not 0.0 < value < 0.5:  # the clip to [ε, 1 − ε] must leave an interval
        raise ValueError("set_epsilon: expected a number in (0, 0.5), got {!r}".format(value))
    losses.EPSILON = value


def floatx():
    """'float32' (the default) or 'float64'."""
    return _settings["floatx"]


def set_floatx(value):
    _set_choice("floatx", value, _FLOATX, "set_floatx", "floatx type")


def clear_session():
    """Restart the automatic layer names at _1 (bnpy keeps no graph or session to reset)."""
    engine.reset_layer_names()


def _array(x, function):
    if not isinstance(x, np.ndarray):
        raise TypeError(
            "{}: expected a NumPy array (a layer's weight) or an optimizer's lr, got {}".format(
                function, type(x).__name__
            )
        )
    return x


def int_shape(x):
    """The shape of ``x`` (an array, or anything with a ``shape``) as a tuple of ints."""
    shape = getattr(x, "shape", None)
    if shape is None:
        raise TypeError("int_shape: {} has no shape".format(type(x).__name__))
    return tuple(None if d is None else int(d) for d in shape)


def get_value(x):
    """A copy of the array ``x``, or the float value of an optimizer's ``lr``."""
    if isinstance(x, LearningRate):
        return float(x)
    return _array(x, "get_value").copy()


def set_value(x, value):
    """Write ``value`` into the array ``x`` in place (shape and dtype kind checked first), or set
    the learning rate of the optimizer whose ``lr`` is ``x``."""
    if isinstance(x, LearningRate):
        x.optimizer.lr = value
        return
    engine.assign_weights([_array(x, "set_value")], [value], "set_value", ["the array"])
