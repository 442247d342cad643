"""Batch Normalization folding for inference: ``fold_batch_norm(model)``.

At inference a BatchNormalization layer is a fixed per-channel affine map, so when it directly
follows a linear layer (Conv2D or Dense, with a linear activation) it can be merged into that
layer's kernel and bias. For output channel o, with s_o = γ_o / √(moving_variance_o + ε)::

    W'[..., o] = W[..., o] · s_o
    b'[o]      = (b[o] − moving_mean_o) · s_o + β_o          (b = 0 when use_bias=False)

so that ``conv'(x) = γ · (conv(x) − moving_mean) / √(moving_variance + ε) + β = BN(conv(x))``
(γ = 1 without ``scale``, β = 0 without ``center``). The name follows TensorFlow's graph
transform ``fold_batch_norms`` (TF-MOT and TFLite speak of "batch norm folding"; PyTorch's
``fuse_conv_bn_eval`` and ONNX's ``fuse_bn_into_conv`` call the same thing fusing).
"""

import numpy as np

from ..layers.convolutional import Conv2D
from ..layers.core import Activation, Dense, Dropout
from ..layers.normalization import BatchNormalization

__all__ = ["fold_batch_norm"]


def _is_inference_noop(layer):
    """Layers that are the identity at inference and keep every axis where it is: a BN after
    them still sees the linear layer's output, channel for channel."""
    if isinstance(layer, Dropout):
        return True
    return type(layer) is Activation and layer.activation == "linear"


def _channel_axis(layer):
    """The axis of ``layer``'s output that holds its kernel's last dimension (None if the layer
    cannot take a BN in)."""
    if type(layer) is Dense:
        return -1
    if type(layer) is Conv2D:
        return -1 if layer.data_format == "channels_last" else 1
    return None


def _foldable_into(linear, bn):
    """True when ``bn`` (at inference) can be merged into ``linear``'s kernel and bias."""
    axis = _channel_axis(linear)
    if axis is None or linear.activation != "linear":
        return False
    # inference must use the moving statistics (not, e.g., track_running_stats=False's batch ones)
    if not getattr(bn, "track_running_stats", True):
        return False
    ndim = len(bn.input_shape)
    return bn.axis % ndim == axis % ndim


def _folded_weights(linear, bn):
    """[kernel', bias'] of ``linear`` with ``bn`` merged in, computed in float64 and cast back."""
    kernel = linear.kernel.astype(np.float64)
    bias = np.zeros(kernel.shape[-1]) if linear.bias is None else linear.bias.astype(np.float64)
    gamma = 1.0 if bn.gamma is None else bn.gamma.astype(np.float64)
    beta = 0.0 if bn.beta is None else bn.beta.astype(np.float64)
    scale = gamma / np.sqrt(bn.moving_variance.astype(np.float64) + bn.epsilon)
    new_kernel = kernel * scale  # broadcasts along the last axis: the output channel
    new_bias = (bias - bn.moving_mean.astype(np.float64)) * scale + beta
    return [new_kernel.astype(linear.kernel.dtype), new_bias.astype(linear.kernel.dtype)]


def _find_folds(layers):
    """{index of BN: index of the linear layer it folds into} for ``layers`` in model order."""
    folds = {}
    for i, layer in enumerate(layers):
        if not isinstance(layer, BatchNormalization):
            continue
        j = i - 1
        while j >= 0 and _is_inference_noop(layers[j]):
            j -= 1
        if j >= 0 and j not in folds.values() and _foldable_into(layers[j], layer):
            folds[i] = j
    return folds


def fold_batch_norm(model):
    """A new Sequential that predicts what ``model`` predicts, with every foldable
    BatchNormalization merged into the Conv2D or Dense before it (formulas in the module
    docstring); ``model`` is left untouched.

    A BN folds when the layer before it, skipping inference-time no-ops (Dropout, a linear
    Activation), is a Conv2D or Dense with a linear activation whose output channel axis is the
    BN's axis, and the BN normalizes with its moving statistics at inference. Every other BN
    stays (after an activation or a pooling layer, or on another axis). A folded layer gets a
    bias even if it had ``use_bias=False``. Layers keep their names and configs, and the other
    layers' weights are copied. The result is meant for ``predict``/``evaluate``: training it
    would train a network without those BN layers. A compiled ``model`` gives a model compiled
    with the same loss and metrics and a fresh optimizer of the same class and configuration.
    """
    from ..models import Sequential  # here: bnpy.models imports bnpy.utils

    if not isinstance(model, Sequential):
        raise TypeError(
            "fold_batch_norm: expected a bnpy Sequential model, got {}".format(type(model).__name__)
        )
    layers = list(model.layers)
    if not layers or not all(layer.built for layer in layers):
        raise ValueError("fold_batch_norm: the model has no layers or is not built")
    folds = _find_folds(layers)
    folded_into = {j: i for i, j in folds.items()}
    new_model = Sequential(name=model.name)
    weights = []
    for i, layer in enumerate(layers):
        if i in folds:
            continue
        config = layer.get_config()
        if i in folded_into:
            config["use_bias"] = True
            weights.append(_folded_weights(layer, layers[folded_into[i]]))
        else:
            weights.append(layer.get_weights())
        if i == 0 and "batch_input_shape" not in config:
            config["batch_input_shape"] = layer.input_shape
        new_model.add(type(layer)(**config))
    for layer, layer_weights in zip(new_model.layers, weights):
        layer.set_weights(layer_weights)
    if model.optimizer is not None:
        optimizer = type(model.optimizer)(**model.optimizer.get_config())
        new_model.compile(optimizer, model.loss, metrics=list(model.metrics))
    return new_model
