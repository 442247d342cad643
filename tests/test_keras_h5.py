"""model.load_weights on Keras 2 HDF5 files (bnpy._keras_h5): files written here with h5py in
Keras 2's layout (weights files, a model file's model_weights group, attributes split in chunks),
bad files (missing attributes, groups or datasets, wrong shapes, dtypes, layer counts) that
leave the model as it was, the error without h5py, and, when tf_keras is installed, a real
tf-keras save_weights file giving the same predictions."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from bnpy.layers import Activation, BatchNormalization, Conv2D, Dense, Flatten
from bnpy.models import Sequential

h5py = pytest.importorskip("h5py")


def small_model():
    model = Sequential()
    model.add(Conv2D(4, (3, 3), input_shape=(6, 6, 2)))
    model.add(BatchNormalization())
    model.add(Activation("relu"))
    model.add(Flatten())
    model.add(Dense(3))
    return model


def keras_layers(
    seed=0, names=("conv2d_1", "batch_normalization_1", "activation_1", "flatten_1", "dense_1")
):
    """[(layer name, [(weight name, array), ...])] as Keras 2.0 would save small_model()."""
    rng = np.random.RandomState(seed)
    conv, bn, act, flat, dense = names

    def f32(*shape):
        return rng.normal(size=shape).astype(np.float32)

    return [
        (conv, [(conv + "/kernel:0", f32(3, 3, 2, 4)), (conv + "/bias:0", f32(4))]),
        (
            bn,
            [
                (bn + "/gamma:0", f32(4)),
                (bn + "/beta:0", f32(4)),
                (bn + "/moving_mean:0", f32(4)),
                (bn + "/moving_variance:0", np.abs(f32(4)) + 0.5),
            ],
        ),
        (act, []),
        (flat, []),
        (dense, [(dense + "/kernel:0", f32(64, 3)), (dense + "/bias:0", f32(3))]),
    ]


def write_keras_h5(path, layers, root=None, chunk=None):
    """Write ``layers`` in Keras 2's save_weights layout (bytes attributes, as Keras 2.0 wrote
    them), into ``root`` (a group name) if given; ``chunk`` splits 'layer_names' into
    layer_names0, layer_names1, ... of that many names, as Keras does with large attributes."""
    with h5py.File(path, "w") as f:
        group = f.create_group(root) if root else f
        names = [name.encode("utf8") for name, _ in layers]
        if chunk:
            for i in range(0, len(names), chunk):
                group.attrs["layer_names{}".format(i // chunk)] = names[i : i + chunk]
        else:
            group.attrs["layer_names"] = names
        group.attrs["backend"] = b"tensorflow"
        group.attrs["keras_version"] = b"2.0.8"
        for name, weights in layers:
            g = group.create_group(name)
            g.attrs["weight_names"] = [w.encode("utf8") for w, _ in weights]
            for weight_name, value in weights:
                g.create_dataset(weight_name, data=value)


def expected_weights(layers):
    return [value for _, weights in layers for _, value in weights]


def assert_weights(model, arrays):
    got = model.get_weights()
    assert len(got) == len(arrays)
    for a, b in zip(got, arrays):
        np.testing.assert_array_equal(a, b)


def test_weights_file_loads_by_order(tmp_path):
    layers = keras_layers()
    write_keras_h5(tmp_path / "w.h5", layers)
    model = small_model()  # its layer names differ when tests build other models first
    model.load_weights(str(tmp_path / "w.h5"))
    # Keras order: the file's [gamma, beta, moving_mean, moving_variance] is the layer's too
    assert_weights(model, expected_weights(layers))


def test_model_files_model_weights_group_and_chunked_names(tmp_path):
    layers = keras_layers(seed=1)
    path = tmp_path / "m.h5"
    write_keras_h5(path, layers, root="model_weights", chunk=2)
    with h5py.File(path, "a") as f:
        f.attrs["model_config"] = b"{}"  # a model file's root has no layer_names
    model = small_model()
    model.load_weights(path)
    assert_weights(model, expected_weights(layers))


def test_by_name_matches_layers_by_name_and_skips_the_others(tmp_path):
    model = small_model()
    names = [layer.name for layer in model.layers]
    layers = keras_layers(seed=2, names=names)
    layers[0] = ("some_other_conv", layers[0][1])  # not in the model: left alone
    write_keras_h5(tmp_path / "w.h5", layers)
    before = model.get_weights()
    model.load_weights(tmp_path / "w.h5", by_name=True)
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert_weights(model, before[:2] + expected_weights(layers)[2:])


def _corrupt(layers, how):
    """A copy of ``layers`` spoilt as ``how`` says."""
    layers = [(name, list(weights)) for name, weights in layers]
    if how == "shape":
        name, value = layers[4][1][0]
        layers[4][1][0] = (name, value[:32])
    elif how == "dtype":
        name, value = layers[0][1][1]
        layers[0][1][1] = (name, value.astype(np.float64))
    elif how == "layer_count":
        del layers[4]
    elif how == "weight_count":
        del layers[1][1][3]
    elif how == "weight_name":
        name, value = layers[1][1][0]
        layers[1][1][0] = ("batch_normalization_1/alpha:0", value)
    elif how == "too_large":
        name, value = layers[4][1][0]
        layers[4][1][0] = (name, np.zeros((1000, 1000), np.float32))
    return layers


@pytest.mark.parametrize(
    "how, message",
    [
        ("shape", r"weight 'kernel:0' has shape \(64, 3\), the file has shape \(32, 3\)"),
        ("dtype", "has dtype float32, the file has dtype float64"),
        ("layer_count", "containing 2 layers into a model with 3 layers"),
        ("weight_count", "expects 4 weights, but the file has 3"),
        ("weight_name", "expects weight 'gamma:0', the file has 'alpha:0'"),
        ("too_large", r"has shape \(1000, 1000\), larger than any weight of this model"),
    ],
)
def test_bad_weights_leave_the_model_unchanged(tmp_path, how, message):
    write_keras_h5(tmp_path / "w.h5", _corrupt(keras_layers(), how))
    model = small_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.load_weights(tmp_path / "w.h5")
    assert_weights(model, before)


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda f: f.attrs.__delitem__("layer_names"), "no 'layer_names' attribute"),
        (lambda f: f["dense_1"].attrs.__delitem__("weight_names"), "no 'weight_names' attribute"),
        (lambda f: f.__delitem__("dense_1"), "lists layer 'dense_1' .* no group for it"),
        (lambda f: f["dense_1/dense_1"].__delitem__("bias:0"), "has no dataset 'dense_1/bias:0'"),
    ],
)
def test_broken_structure_is_a_clear_error(tmp_path, spoil, message):
    path = tmp_path / "w.h5"
    write_keras_h5(path, keras_layers())
    with h5py.File(path, "a") as f:
        spoil(f)
    model = small_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.load_weights(path)
    assert_weights(model, before)


def test_truncated_h5_file_is_a_value_error(tmp_path):
    path = tmp_path / "w.h5"
    write_keras_h5(path, keras_layers())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    model = small_model()
    with pytest.raises(ValueError, match="w.h5"):
        model.load_weights(path)


def test_without_h5py_the_error_names_the_extra(tmp_path):
    path = tmp_path / "w.h5"
    write_keras_h5(path, keras_layers())
    script = (
        "import sys; sys.modules['h5py'] = None\n"
        "from bnpy.models import Sequential\n"
        "from bnpy.layers import Dense\n"
        "m = Sequential([Dense(2, input_shape=(3,))])\n"
        "try:\n"
        "    m.load_weights(sys.argv[1])\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # not a source checkout, whose bnpy/ has no compiled _core
    ).stdout
    assert "bnpy[h5]" in out and "h5py" in out


def test_tf_keras_weights_and_model_files_give_the_same_predictions(tmp_path):
    """Real tf_keras files (save_weights, model.save), written in a subprocess (TensorFlow is
    slow to import and would stay loaded in the test process)."""
    pytest.importorskip("tf_keras")
    script = """
import sys
import numpy as np
import tf_keras as keras
rng = np.random.RandomState(0)
model = keras.Sequential([
    keras.layers.Conv2D(4, (3, 3), input_shape=(6, 6, 2)),
    keras.layers.BatchNormalization(),
    keras.layers.Activation('relu'),
    keras.layers.Flatten(),
    keras.layers.Dense(3),
])
for layer in model.layers:
    layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
x = rng.normal(size=(5, 6, 6, 2)).astype('float32')
model.save_weights(sys.argv[1] + '/w.h5')
model.save(sys.argv[1] + '/m.h5')  # a whole-model file: weights under model_weights
np.save(sys.argv[1] + '/x.npy', x)
np.save(sys.argv[1] + '/y.npy', model.predict(x, verbose=0))
"""
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], check=True, capture_output=True, cwd=tmp_path
    )
    for name in ("w.h5", "m.h5"):
        model = small_model()
        model.load_weights(tmp_path / name)
        y = model.predict(np.load(tmp_path / "x.npy"))
        np.testing.assert_allclose(y, np.load(tmp_path / "y.npy"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("user_block", [0, 512])
def test_damaged_hdf5_file_is_a_value_error(tmp_path, user_block):
    """An HDF5 signature (at 0, or after a user block) followed by junk."""
    path = tmp_path / "w.h5"
    path.write_bytes(b"\x00" * user_block + b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    model = small_model()
    with pytest.raises(ValueError, match=r"^load_weights: .*w.h5 is not a readable HDF5 file"):
        model.load_weights(path)


def test_load_keras_weights_example(tmp_path):
    """examples/load_keras_weights.py: tf_keras's predictions, then the folded model's."""
    pytest.importorskip("tf_keras")
    script = os.path.join(
        os.path.dirname(os.path.dirname(__file__)), "examples", "load_keras_weights.py"
    )
    out = subprocess.run(
        [sys.executable, script], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    differences = [float(v) for v in re.findall(r"max relative difference ([0-9.e+-]+)", out)]
    assert len(differences) == 2 and max(differences) < 1e-5, out
    assert "folded: 8 layers instead of 11" in out
