"""bnpy.preprocessing: data preprocessing as Keras 2.0's ``keras.preprocessing`` (image augmentation)."""

from . import image  # noqa: F401
from .image import ImageDataGenerator  # noqa: F401

__all__ = ["image", "ImageDataGenerator"]
