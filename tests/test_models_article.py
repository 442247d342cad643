"""The article's script, model and training part, on arrays of the real shapes; and a small
convnet that learns Fashion-MNIST (Debian's dataset-fashion-mnist files)."""

import numpy as np
import pytest
from reference_layers import (
    build_article_model,
    fashion_mnist_paths,
    one_thread,
    read_idx_gz,
    requires_bn,
    requires_conv,
    requires_pool,
)

from bnpy.layers import Activation, BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D
from bnpy.models import Sequential
from bnpy.utils import np_utils

pytestmark = [requires_conv, requires_pool, requires_bn]


@pytest.mark.parametrize("comments", [(False, False, False, False), (True, True, True, True)])
def test_article_training_part_runs_on_arrays_of_the_real_shapes(comments, capsys):
    """The script's lines after load_data, verbatim, on random data of CIFAR-10's shapes and
    dtypes (uint8 images, (N, 1) labels), with a small N."""
    np.random.seed(0)
    model = build_article_model(*comments)
    X_train = np.random.randint(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    y_train = np.random.randint(0, 10, (64, 1))
    X_test = np.random.randint(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    y_test = np.random.randint(0, 10, (32, 1))
    with one_thread():
        X_train = X_train.reshape(X_train.shape[0], 32, 32, 3).astype('float32') / 255
        X_test = X_test.reshape(X_test.shape[0], 32, 32, 3).astype('float32') / 255
        Y_train = np_utils.to_categorical(y_train, 10)
        Y_test = np_utils.to_categorical(y_test, 10)
        model.compile(loss='categorical_crossentropy', optimizer='adadelta', metrics=['accuracy'])
        batch_size = 32
        nb_epoch = 1
        with pytest.warns(UserWarning, match="nb_epoch"):
            history = model.fit(
                X_train,
                Y_train,
                batch_size=batch_size,
                nb_epoch=nb_epoch,
                verbose=1,
                validation_data=(X_test, Y_test),
            )
        score = model.evaluate(X_test, Y_test, verbose=0)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["Train on 64 samples, validate on 32 samples", "Epoch 1/1"]
    assert out[2].startswith("64/64 [==============================] - ")
    assert list(history.history) == ["val_loss", "val_acc", "loss", "acc"]
    assert np.isfinite(score[0]) and 0.0 <= score[1] <= 1.0
    assert score == pytest.approx([history.history["val_loss"][0], history.history["val_acc"][0]])
    # two Adadelta steps moved every trainable weight
    assert model.optimizer.iterations == 2
    bn = [layer for layer in model.layers if isinstance(layer, BatchNormalization)]
    assert all(np.any(layer.moving_variance != 1) for layer in bn)


@pytest.mark.skipif(
    fashion_mnist_paths() is None,
    reason="Fashion-MNIST files absent (/usr/share/datasets/fashion-mnist, from "
    "Debian's dataset-fashion-mnist)",
)
def test_small_convnet_learns_fashion_mnist():
    """Conv(8, 3×3) → BN → relu → max-pool → Dense(10, softmax), Adam, 2 epochs on the first
    4,000 training images: at least 75% accuracy on the first 2,000 test images (chance is 10%;
    this network reaches about 81% here, so 75% leaves room for other seeds and BLAS builds)."""
    train_x, train_y, test_x, test_y = (read_idx_gz(p) for p in fashion_mnist_paths())
    assert train_x.shape == (60000, 28, 28) and test_y.shape == (10000,)
    x = train_x[:4000, :, :, None].astype("float32") / 255
    y = np_utils.to_categorical(train_y[:4000], 10)
    xt = test_x[:2000, :, :, None].astype("float32") / 255
    yt = np_utils.to_categorical(test_y[:2000], 10)
    np.random.seed(0)
    model = Sequential()
    model.add(Conv2D(8, (3, 3), input_shape=(28, 28, 1)))
    model.add(BatchNormalization())
    model.add(Activation("relu"))
    model.add(MaxPooling2D())
    model.add(Flatten())
    model.add(Dense(10, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    with one_thread():
        history = model.fit(x, y, batch_size=32, epochs=2, verbose=0, validation_data=(xt, yt))
        loss, accuracy = model.evaluate(xt, yt, verbose=0)
    assert accuracy >= 0.75, history.history
    assert history.history["loss"][1] < history.history["loss"][0]
