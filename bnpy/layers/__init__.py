"""bnpy.layers: the Keras-2.0-like layers (modules as in Keras: core, convolutional, pooling,
normalization). Every layer follows the contract of :class:`bnpy.engine.Layer`."""

from ..engine import Layer
from .convolutional import Conv2D, Convolution2D, ZeroPadding2D
from .core import Activation, Dense, Dropout, Flatten, Reshape
from .normalization import BatchNormalization
from .pooling import (
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)

__all__ = [
    "Layer",
    "Dense",
    "Activation",
    "Dropout",
    "Flatten",
    "Reshape",
    "Conv2D",
    "Convolution2D",
    "ZeroPadding2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "MaxPool2D",
    "AvgPool2D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "BatchNormalization",
]
