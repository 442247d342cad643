"""bnpy.utils: np_utils (to_categorical), generic_utils (Progbar), data_utils (get_file),
vis_utils (plot_model, plot_history), as in Keras 2.0, and fold_batch_norm (BN folded into the
Conv2D/Dense before it, for inference)."""

from . import data_utils, generic_utils, np_utils
from .data_utils import get_file
from .folding import fold_batch_norm
from .generic_utils import Progbar
from .np_utils import to_categorical

__all__ = [
    "data_utils",
    "generic_utils",
    "np_utils",
    "get_file",
    "Progbar",
    "to_categorical",
    "fold_batch_norm",
]
