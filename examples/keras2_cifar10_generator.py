"""A small CIFAR-10 convnet trained with data augmentation, written as a Keras 2 script (in the
style of Keras's examples/cifar10_cnn.py): ImageDataGenerator(...).flow() and fit_generator,
BatchNormalization, GlobalAveragePooling2D instead of Flatten, LearningRateScheduler and
EarlyStopping. Replace `bnpy` by `keras` (or `tf_keras`) in the imports and it runs on Keras 2
unchanged; tests/test_keras2_examples.py runs it both ways.

Data: bnpy's CIFAR-10 sample (12,000 images shipped inside bnpy, offline); with Keras, which
has no such sample, the full CIFAR-10 (downloaded); when neither can be had, or with
KERAS2_EXAMPLE_DATA=synthetic, small synthetic images (the class is the colour of a square).
Sizes: KERAS2_EXAMPLE_SAMPLES training images (default 4000, a fifth for the test set),
KERAS2_EXAMPLE_EPOCHS epochs (default 4), KERAS2_EXAMPLE_STEPS steps per epoch (default: one
pass over the training images). Run: python examples/keras2_cifar10_generator.py
"""

import os

import numpy as np

from bnpy import backend as K
from bnpy.callbacks import EarlyStopping, LearningRateScheduler
from bnpy.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    GlobalAveragePooling2D,
    MaxPooling2D,
)
from bnpy.models import Sequential
from bnpy.preprocessing.image import ImageDataGenerator
from bnpy.utils import to_categorical

try:  # bnpy ships a sample of CIFAR-10 that needs no download; Keras has the full set only
    from bnpy.datasets import cifar10_sample as cifar10
except ImportError:
    from bnpy.datasets import cifar10

np.random.seed(1337)

num_classes = 10
batch_size = 32
samples = int(os.environ.get("KERAS2_EXAMPLE_SAMPLES", "4000"))
epochs = int(os.environ.get("KERAS2_EXAMPLE_EPOCHS", "4"))
steps_per_epoch = int(os.environ.get("KERAS2_EXAMPLE_STEPS", "0")) or samples // batch_size


def synthetic_data(n):
    """32x32 colour images whose class is the colour of a square at a random place."""
    rng = np.random.RandomState(0)
    colours = rng.randint(0, 256, (num_classes, 3))
    y = rng.randint(0, num_classes, (n, 1))
    x = rng.randint(0, 64, (n, 32, 32, 3))
    for i in range(n):
        r, c = rng.randint(0, 20, 2)
        x[i, r : r + 12, c : c + 12] = colours[y[i, 0]]
    if K.image_data_format() == "channels_first":
        x = x.transpose(0, 3, 1, 2)
    return x.astype("uint8"), y.astype("uint8")


def load_data():
    if os.environ.get("KERAS2_EXAMPLE_DATA") != "synthetic":
        try:
            return cifar10.load_data()
        except Exception as exc:  # no copy on disk and no network: any loader's error
            print("CIFAR-10 is not available ({}); using synthetic images".format(exc))
    x, y = synthetic_data(samples + samples // 5)
    return (x[:samples], y[:samples]), (x[samples:], y[samples:])


(x_train, y_train), (x_test, y_test) = load_data()
x_train, y_train = x_train[:samples], y_train[:samples]
x_test, y_test = x_test[: samples // 5], y_test[: samples // 5]
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")

y_train = to_categorical(y_train, num_classes)
y_test = to_categorical(y_test, num_classes)
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
channel_axis = 1 if K.image_data_format() == "channels_first" else -1

model = Sequential()
model.add(Conv2D(32, (3, 3), padding="same", input_shape=x_train.shape[1:]))
model.add(BatchNormalization(axis=channel_axis))
model.add(Activation("relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, (3, 3), padding="same"))
model.add(BatchNormalization(axis=channel_axis))
model.add(Activation("relu"))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Conv2D(64, (3, 3), padding="same", activation="relu"))
model.add(GlobalAveragePooling2D())
model.add(Dropout(0.25))
model.add(Dense(num_classes))
model.add(Activation("softmax"))
model.summary()

model.compile(loss="categorical_crossentropy", optimizer="rmsprop", metrics=["accuracy"])


def schedule(epoch):
    """RMSprop's default 1e-3 for two epochs, then halved every epoch."""
    return 1e-3 if epoch < 2 else 1e-3 * 0.5 ** (epoch - 1)


datagen = ImageDataGenerator(
    width_shift_range=0.1,  # fraction of the width
    height_shift_range=0.1,
    horizontal_flip=True,
)
datagen.fit(x_train)
model.fit_generator(
    datagen.flow(x_train, y_train, batch_size=batch_size),
    steps_per_epoch=steps_per_epoch,
    epochs=epochs,
    verbose=2,
    validation_data=(x_test, y_test),
    callbacks=[
        LearningRateScheduler(schedule),
        EarlyStopping(monitor="val_loss", patience=2),
    ],
)
scores = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", scores[0])
print("Test accuracy:", scores[1])
