"""What Keras 2 scripts import besides layers and models: bnpy.backend (settings, values, the
optimizer's lr), `import bnpy` reaching every submodule, and the optimizers' did-you-mean."""

import subprocess
import sys

import numpy as np
import pytest

from bnpy import backend as K
from bnpy import losses
from bnpy.layers import Conv2D, Dense, GlobalAveragePooling2D, MaxPooling2D
from bnpy.models import Sequential
from bnpy.optimizers import SGD, Adadelta, Adam


@pytest.fixture
def restore_backend():
    saved = (K.image_data_format(), K.epsilon(), K.floatx())
    yield
    K.set_image_data_format(saved[0])
    K.set_epsilon(saved[1])
    K.set_floatx(saved[2])


def test_defaults_are_keras_2_0s():
    assert K.image_data_format() == "channels_last"
    assert K.epsilon() == 1e-7
    assert K.floatx() == "float32"


def test_image_data_format_is_what_layers_made_without_data_format_use(restore_backend):
    K.set_image_data_format("channels_first")
    conv, pool, gap = Conv2D(2, 3), MaxPooling2D(), GlobalAveragePooling2D()
    explicit = Conv2D(2, 3, data_format="channels_last")
    K.set_image_data_format("channels_last")
    assert (conv.data_format, pool.data_format, gap.data_format) == ("channels_first",) * 3
    assert explicit.data_format == "channels_last"
    assert Conv2D(2, 3).data_format == "channels_last"
    with pytest.raises(ValueError, match="unknown data_format 'NHWC'"):
        K.set_image_data_format("NHWC")


def test_epsilon_is_the_losses_clip(restore_backend):
    y_true = np.array([[1.0, 0.0]])
    y_pred = np.array([[0.0, 1.0]])  # the true class has probability 0: the loss is -log(ε)
    assert losses.categorical_crossentropy(y_true, y_pred)[0] == pytest.approx(-np.log(1e-7))
    K.set_epsilon(1e-3)
    assert K.epsilon() == 1e-3
    assert losses.categorical_crossentropy(y_true, y_pred)[0] == pytest.approx(-np.log(1e-3))
    with pytest.raises(ValueError, match="set_epsilon"):
        K.set_epsilon(0)


def test_floatx_is_the_generators_dtype(restore_backend):
    from bnpy.preprocessing.image import ImageDataGenerator

    x = np.zeros((2, 4, 4, 3), np.uint8)
    K.set_floatx("float64")
    assert next(ImageDataGenerator().flow(x, batch_size=2, shuffle=False)).dtype == np.float64
    K.set_floatx("float32")
    assert next(ImageDataGenerator().flow(x, batch_size=2, shuffle=False)).dtype == np.float32
    with pytest.raises(ValueError, match="unknown floatx type 'float8'"):
        K.set_floatx("float8")


def test_floatx_is_the_dtype_of_layers_made_after_it(restore_backend):
    before = Dense(2, input_shape=(3,))
    K.set_floatx("float64")
    model = Sequential([Dense(4, input_shape=(3,)), Dense(2)])
    assert [layer.dtype for layer in model.layers] == [np.float64, np.float64]
    assert all(w.dtype == np.float64 for w in model.get_weights())
    assert model.predict(np.ones((5, 3))).dtype == np.float64
    assert before.dtype == np.float32  # read when a layer is made, as Keras does
    assert Dense(2, dtype="float32").dtype == np.float32  # an explicit dtype wins


def test_float16_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="unknown floatx type 'float16'; expected one of float32"):
        K.set_floatx("float16")
    assert K.floatx() == "float32"


def test_get_and_set_value_on_weights_write_into_the_model():
    model = Sequential([Dense(2, input_shape=(3,))])
    kernel = model.layers[0].kernel
    copy = K.get_value(kernel)
    assert copy is not kernel
    np.testing.assert_array_equal(copy, kernel)
    K.set_value(kernel, np.ones((3, 2)))
    np.testing.assert_array_equal(model.get_weights()[0], 1)
    assert model.layers[0].kernel.dtype == np.float32
    assert K.int_shape(kernel) == (3, 2)
    with pytest.raises(ValueError, match=r"shape \(3, 2\), got an array of shape \(2, 3\)"):
        K.set_value(kernel, np.zeros((2, 3)))
    np.testing.assert_array_equal(model.get_weights()[0], 1)  # unchanged by the failed call
    with pytest.raises(TypeError, match="expected a NumPy array"):
        K.set_value([1.0], 2.0)


def test_set_value_on_the_optimizers_lr_changes_the_next_step():
    p = np.ones(3, np.float32)
    g = np.full(3, 0.5, np.float32)
    sgd = SGD(lr=0.1)
    assert K.get_value(sgd.lr) == pytest.approx(0.1) and type(K.get_value(sgd.lr)) is float
    K.set_value(sgd.lr, 0.01)
    assert sgd.get_config()["lr"] == 0.01
    sgd.update([p], [g])
    np.testing.assert_allclose(p, 1 - 0.01 * 0.5, rtol=1e-7)
    assert p.dtype == np.float32
    with pytest.raises(ValueError, match="'lr' must be a finite number >= 0"):
        K.set_value(sgd.lr, -1.0)


def test_clear_session_restarts_layer_names():
    Dense(1)
    K.clear_session()
    assert Dense(1).name == "dense_1"


def test_did_you_mean_for_later_keras_names_and_typos():
    with pytest.raises(TypeError, match=r"learning_rate \(did you mean `lr`\?"):
        Adam(learning_rate=0.01)
    with pytest.raises(TypeError, match=r"rhoo \(did you mean `rho`\?\)"):
        Adadelta(rhoo=0.9)
    with pytest.raises(TypeError, match=r"passed to optimizer: foo$"):
        SGD(foo=1)


def test_import_bnpy_reaches_every_submodule_without_importing_them_first():
    """In a fresh interpreter: `import bnpy` then bnpy.optimizers.Adam(), bnpy.backend ..., and
    `import bnpy` alone imports none of the framework's modules (it stays fast)."""
    script = (
        "import sys, bnpy\n"
        "assert 'bnpy.models' not in sys.modules and 'bnpy.optimizers' not in sys.modules\n"
        "bnpy.optimizers.Adam()\n"
        "assert bnpy.backend.image_data_format() == 'channels_last'\n"
        "for name in ('layers', 'models', 'callbacks', 'losses', 'metrics', 'initializers',\n"
        "             'regularizers', 'constraints', 'activations', 'utils', 'preprocessing',\n"
        "             'datasets', 'engine', 'legacy', 'ops', 'saving'):\n"
        "    getattr(bnpy, name)\n"
        "bnpy.models.Sequential([bnpy.layers.Dense(2, input_shape=(3,))])\n"
        "assert 'optimizers' in dir(bnpy)\n"
        "try:\n"
        "    bnpy.no_such_module\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd="/", check=True
    ).stdout
    assert "has no attribute 'no_such_module'" in out
