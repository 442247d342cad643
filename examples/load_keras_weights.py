"""Weights trained in Keras 2 (here tf_keras, the Keras 2 API on TensorFlow), used in bnpy.

1. tf_keras: a small convnet with BatchNormalization is trained for one epoch on random data,
   and its weights are written with ``model.save_weights('keras_weights.h5')`` (Keras 2's HDF5
   layout).
2. bnpy: the same architecture, built in code, reads the file with ``model.load_weights``
   (layers matched by order, every shape checked; needs h5py: ``pip install 'bnpy[h5]'``) and
   predicts what tf_keras predicts.
3. ``bnpy.utils.fold_batch_norm`` merges each BatchNormalization into the convolution or Dense
   layer before it, for inference: same predictions, fewer layers.

Run: python examples/load_keras_weights.py   (needs tf_keras and h5py beside bnpy:
pip install tensorflow-cpu tf-keras h5py)
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter on stderr

import numpy as np

try:
    import tf_keras
except ImportError:
    sys.exit("This example needs tf_keras: pip install tensorflow-cpu tf-keras h5py")

import bnpy.layers
from bnpy.models import Sequential
from bnpy.utils import fold_batch_norm

WEIGHTS = "keras_weights.h5"


def build(layers):
    """The same network from either library's ``layers`` module."""
    return [
        layers.Conv2D(8, (3, 3), padding="same", input_shape=(16, 16, 3)),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(16, (3, 3), use_bias=False),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.Flatten(),
        layers.Dense(10),
        layers.BatchNormalization(),
        layers.Activation("softmax"),
    ]


rng = np.random.RandomState(0)
x = rng.uniform(0, 1, (256, 16, 16, 3)).astype("float32")
y = np.eye(10, dtype="float32")[rng.randint(0, 10, 256)]

keras_model = tf_keras.Sequential(build(tf_keras.layers))
keras_model.compile(loss="categorical_crossentropy", optimizer="adam")
keras_model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # moving statistics move away from 0/1
keras_model.save_weights(WEIGHTS)
expected = keras_model.predict(x, verbose=0)

model = Sequential(build(bnpy.layers))
model.load_weights(WEIGHTS)
got = model.predict(x)
print(
    "bnpy vs tf_keras: max relative difference {:.1e}".format(
        np.max(np.abs(got - expected) / expected)
    )
)

folded = fold_batch_norm(model)
print(
    "folded: {} layers instead of {}; max relative difference {:.1e}".format(
        len(folded.layers),
        len(model.layers),
        np.max(np.abs(folded.predict(x) - got) / got),
    )
)
