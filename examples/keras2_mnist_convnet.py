"""A small convnet on Fashion-MNIST, written as a Keras 2 script (in the style of Keras's own
examples/mnist_cnn.py): replace `bnpy` by `keras` (or `tf_keras`) in the imports and it runs on
Keras 2 unchanged. tests/test_keras2_examples.py runs it both ways.

It uses what Keras 2 scripts commonly use: K.image_data_format() to lay out the images,
Dropout, BatchNormalization, the callbacks ReduceLROnPlateau, CSVLogger, TerminateOnNaN and
LambdaCallback, and K.get_value on the optimizer's learning rate.

Data: Fashion-MNIST when a copy is at hand (bnpy finds Debian's dataset-fashion-mnist offline,
Keras downloads it), otherwise, or with KERAS2_EXAMPLE_DATA=synthetic, small synthetic
"images" (a bright bar whose row is the class, plus noise), so the script runs anywhere.
Sizes: KERAS2_EXAMPLE_SAMPLES training images (default 6000, a tenth for the test set),
KERAS2_EXAMPLE_EPOCHS epochs (default 3). Run: python examples/keras2_mnist_convnet.py
"""

import os

import numpy as np

from bnpy import backend as K
from bnpy.callbacks import CSVLogger, LambdaCallback, ReduceLROnPlateau, TerminateOnNaN
from bnpy.datasets import fashion_mnist
from bnpy.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
)
from bnpy.models import Sequential
from bnpy.utils import to_categorical

np.random.seed(1337)

num_classes = 10
img_rows, img_cols = 28, 28
samples = int(os.environ.get("KERAS2_EXAMPLE_SAMPLES", "6000"))
epochs = int(os.environ.get("KERAS2_EXAMPLE_EPOCHS", "3"))
batch_size = 64


def synthetic_data(n):
    """Images whose class is the row of a bright horizontal bar, in noise."""
    rng = np.random.RandomState(0)
    y = rng.randint(0, num_classes, n)
    x = rng.randint(0, 100, (n, img_rows, img_cols))
    rows = 3 + 2 * y
    x[np.arange(n), rows, :] = 255
    return x.astype("uint8"), y.astype("uint8")


def load_data():
    if os.environ.get("KERAS2_EXAMPLE_DATA") != "synthetic":
        try:
            return fashion_mnist.load_data()
        except Exception as exc:  # no copy on disk and no network: any loader's error
            print("Fashion-MNIST is not available ({}); using synthetic images".format(exc))
    x, y = synthetic_data(samples + samples // 10)
    return (x[:samples], y[:samples]), (x[samples:], y[samples:])


(x_train, y_train), (x_test, y_test) = load_data()
x_train, y_train = x_train[:samples], y_train[:samples]
x_test, y_test = x_test[: samples // 10], y_test[: samples // 10]

if K.image_data_format() == "channels_first":
    x_train = x_train.reshape(x_train.shape[0], 1, img_rows, img_cols)
    x_test = x_test.reshape(x_test.shape[0], 1, img_rows, img_cols)
    input_shape = (1, img_rows, img_cols)
else:
    x_train = x_train.reshape(x_train.shape[0], img_rows, img_cols, 1)
    x_test = x_test.reshape(x_test.shape[0], img_rows, img_cols, 1)
    input_shape = (img_rows, img_cols, 1)
channel_axis = 1 if K.image_data_format() == "channels_first" else -1

x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

y_train = to_categorical(y_train, num_classes)
y_test = to_categorical(y_test, num_classes)

model = Sequential()
model.add(Conv2D(16, (3, 3), input_shape=input_shape))
model.add(BatchNormalization(axis=channel_axis))
model.add(Activation("relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(32, (3, 3), activation="relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Dropout(0.25))
model.add(Flatten())
model.add(Dense(64, activation="relu"))
model.add(Dropout(0.5))
model.add(Dense(num_classes, activation="softmax"))
model.summary()

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

callbacks = [
    ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, verbose=1),
    CSVLogger("keras2_mnist_convnet.csv"),
    TerminateOnNaN(),
    LambdaCallback(
        on_epoch_end=lambda epoch, logs: print(
            "epoch {}: learning rate {:.2e}".format(epoch + 1, K.get_value(model.optimizer.lr))
        )
    ),
]
model.fit(
    x_train,
    y_train,
    batch_size=batch_size,
    epochs=epochs,
    verbose=2,
    validation_data=(x_test, y_test),
    callbacks=callbacks,
)
score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
