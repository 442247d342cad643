"""Core layers: forward against NumPy, backward by finite differences (float64, random dy),
Keras-1 argument conversion, automatic names, errors."""

import warnings

import numpy as np
import pytest
from reference_layers import check_layer_gradients

from bnpy import activations, initializers
from bnpy.engine import reset_layer_names
from bnpy.layers import Activation, Dense, Dropout, Flatten, Reshape, ZeroPadding2D

ACTIVATIONS = [
    "linear",
    "relu",
    "tanh",
    "sigmoid",
    "hard_sigmoid",
    "softplus",
    "softsign",
    "elu",
    "selu",
    "softmax",
]


def _numpy_activation(name, z):
    if name == "linear":
        return z
    if name == "relu":
        return np.maximum(z, 0)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if name == "hard_sigmoid":
        return np.clip(0.2 * z + 0.5, 0, 1)
    if name == "softplus":
        return np.log1p(np.exp(z))
    if name == "softsign":
        return z / (1 + np.abs(z))
    if name == "elu":
        return np.where(z > 0, z, np.exp(z) - 1)
    if name == "selu":
        a, s = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
        return s * np.where(z > 0, z, a * (np.exp(z) - 1))
    if name == "softmax":
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise AssertionError(name)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_forward_matches_numpy(name):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((7, 5)) * 3
    expected = _numpy_activation(name, z)
    np.testing.assert_allclose(
        activations.get(name) and getattr(activations, name)(z), expected, rtol=1e-12, atol=1e-15
    )
    layer = Activation(name, input_shape=(5,), dtype="float64")
    layer.build_for((None, 5))
    np.testing.assert_allclose(layer.forward(z), expected, rtol=1e-12, atol=1e-15)
    assert z.std() > 1  # the input was not overwritten


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_finite_differences(name):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 6)) * 2
    # keep clear of the kinks (relu/elu/selu at 0, hard_sigmoid at ±2.5) so h=1e-6 never crosses one
    z = np.where(np.abs(z) < 0.05, 0.3, z)
    z = np.where(np.abs(np.abs(z) - 2.5) < 0.05, 2.0, z)
    layer = Activation(name, dtype="float64")
    layer.build_for((None, 6))
    check_layer_gradients(layer, z, rng)


def test_softmax_is_stable_and_rejects_1d():
    y = activations.softmax(np.array([[1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(y, [[1.0, 0.0, 0.0]], atol=0)
    with pytest.raises(ValueError, match="1D"):
        activations.softmax(np.zeros(3))


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown activation function: 'relux'"):
        Activation("relux")


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "softmax"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_forward_and_gradients(activation, use_bias):
    rng = np.random.default_rng(3)
    layer = Dense(
        5, activation=activation, use_bias=use_bias, dtype="float64", bias_initializer="uniform"
    )
    layer.build_for((None, 4))
    x = rng.standard_normal((6, 4))
    z = x @ layer.kernel + (layer.bias if use_bias else 0)
    np.testing.assert_allclose(
        layer.forward(x), _numpy_activation(activation or "linear", z), rtol=1e-12, atol=1e-14
    )
    check_layer_gradients(layer, x, rng)


def test_dense_on_3d_input_contracts_last_axis():
    rng = np.random.default_rng(4)
    layer = Dense(3, dtype="float64")
    assert layer.build_for((None, 2, 4)) == (None, 2, 3)
    x = rng.standard_normal((5, 2, 4))
    np.testing.assert_allclose(
        layer.forward(x), np.einsum("nti,io->nto", x, layer.kernel) + layer.bias
    )
    check_layer_gradients(layer, x, rng)


def test_dense_weights_layout_and_params():
    layer = Dense(10)
    layer.build_for((None, 30720))
    assert [w.shape for w in layer.weights] == [(30720, 10), (10,)]
    assert layer.weight_names[0].endswith("/kernel:0")
    assert layer.count_params() == 307210
    assert layer.kernel.dtype == np.float32


def test_dense_first_layer_skips_dx():
    layer = Dense(3, dtype="float64")
    layer.build_for((None, 4))
    layer.need_input_gradient = False
    layer.forward(np.ones((2, 4)), training=True)
    assert layer.backward(np.ones((2, 3))) is None
    np.testing.assert_allclose(layer.gradients[0], np.full((4, 3), 2.0))


def test_dense_legacy_arguments_warn_like_keras():
    with pytest.warns(UserWarning) as record:
        layer = Dense(output_dim=7, init="he_normal", W_regularizer="l2", input_dim=3)
    message = str(record[0].message)
    assert message.startswith("Update your `Dense` call to the Keras 2 API: `Dense(")
    assert "units=7" in message and 'kernel_initializer="he_normal"' in message
    assert layer.units == 7 and layer.batch_input_shape == (None, 3)
    with pytest.raises(TypeError, match="received both the legacy keyword argument `output_dim`"):
        Dense(units=3, output_dim=3)


def test_dense_rejects_bad_units_and_unknown_kwargs():
    with pytest.raises(ValueError, match="Dense: `units` must be a positive integer"):
        Dense(0)
    with pytest.raises(TypeError, match="Keyword argument not understood: 'nonsense'"):
        Dense(3, nonsense=1)


def test_glorot_uniform_limit_follows_the_fans():
    np.random.seed(0)
    kernel = initializers.get("glorot_uniform")((11, 11, 3, 96))
    limit = np.sqrt(6.0 / (11 * 11 * 3 + 11 * 11 * 96))  # ≈ 0.02238, reference §6
    assert abs(limit - 0.02238) < 1e-5
    assert kernel.dtype == np.float32 and np.abs(kernel).max() <= limit
    # 139,392 uniform draws: the max is within 1e-4 relative of the limit with overwhelming odds
    assert np.abs(kernel).max() > limit * 0.9999


def test_initializers_are_reproducible_with_np_random_seed():
    np.random.seed(42)
    a = Dense(4)
    a.build_for((None, 3))
    np.random.seed(42)
    b = Dense(4)
    b.build_for((None, 3))
    np.testing.assert_array_equal(a.kernel, b.kernel)


def test_dropout_is_inverted_and_identity_at_test_time():
    np.random.seed(5)
    layer = Dropout(0.25)
    layer.build_for((None, 1000))
    x = np.ones((8, 1000), dtype=np.float32)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    y = layer.forward(x, training=True)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-7)
    # 8000 Bernoulli(0.75) draws: std of the kept fraction is 0.0048; 5 sigma is 0.024
    assert abs(kept.mean() - 0.75) < 0.025
    dy = np.random.standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(dy.copy()), dy * kept / 0.75, rtol=1e-6)


def test_dropout_gradient_finite_differences_with_a_fixed_mask():
    rng = np.random.default_rng(9)
    layer = Dropout(0.4, seed=3, dtype="float64")
    layer.build_for((None, 12))
    x = rng.standard_normal((3, 12))

    def forward_with_the_same_mask():
        layer._rng = np.random.RandomState(3)  # the mask of a given seed, for every evaluation
        return layer.forward(x, training=True)

    assert 0 < np.count_nonzero(forward_with_the_same_mask()) < x.size
    check_layer_gradients(layer, x, rng, training_forward=forward_with_the_same_mask)


def test_dropout_mask_follows_np_random_seed_and_legacy_p():
    with pytest.warns(
        UserWarning, match=r"Update your `Dropout` call to the Keras 2 API: `Dropout\(rate=0.5\)`"
    ):
        layer = Dropout(p=0.5)
    layer.build_for((None, 50))
    x = np.ones((4, 50), dtype=np.float32)
    np.random.seed(7)
    a = layer.forward(x, training=True)
    np.random.seed(7)
    b = layer.forward(x, training=True)
    np.testing.assert_array_equal(a, b)


def test_flatten_order_and_gradient():
    rng = np.random.default_rng(6)
    layer = Flatten()
    assert layer.build_for((None, 4, 3, 2)) == (None, 24)
    x = rng.standard_normal((2, 4, 3, 2))
    y = layer.forward(x, training=True)
    h, w, c = 1, 2, 1
    assert y[1, (h * 3 + w) * 2 + c] == x[1, h, w, c]  # row-major (h·W + w)·C + c
    check_layer_gradients(layer, x, rng)
    with pytest.raises(ValueError, match='input to "Flatten" is not fully defined'):
        Flatten().build_for((None, None, 3))


def test_reshape_infers_one_dimension_and_checks_size():
    rng = np.random.default_rng(7)
    layer = Reshape((3, -1))
    assert layer.build_for((None, 12)) == (None, 3, 4)
    check_layer_gradients(layer, rng.standard_normal((2, 12)), rng)
    with pytest.raises(ValueError, match="total size of new array must be unchanged"):
        Reshape((5, -1)).build_for((None, 12))
    with pytest.raises(ValueError, match="Can only specify one unknown dimension"):
        Reshape((-1, -1)).build_for((None, 12))


@pytest.mark.parametrize(
    "padding, expected",
    [(1, ((1, 1), (1, 1))), ((2, 3), ((2, 2), (3, 3))), (((1, 2), (3, 0)), ((1, 2), (3, 0)))],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_padding(padding, expected, data_format):
    rng = np.random.default_rng(8)
    layer = ZeroPadding2D(padding, data_format=data_format)
    assert layer.padding == expected
    (t, b), (left, right) = expected
    if data_format == "channels_last":
        x = rng.standard_normal((2, 4, 5, 3))
        assert layer.build_for((None, 4, 5, 3)) == (None, 4 + t + b, 5 + left + right, 3)
        ref = np.pad(x, ((0, 0), (t, b), (left, right), (0, 0)))
    else:
        x = rng.standard_normal((2, 3, 4, 5))
        assert layer.build_for((None, 3, 4, 5)) == (None, 3, 4 + t + b, 5 + left + right)
        ref = np.pad(x, ((0, 0), (0, 0), (t, b), (left, right)))
    np.testing.assert_array_equal(layer.forward(x), ref)
    check_layer_gradients(layer, x, rng)


def test_zero_padding_legacy_and_errors():
    with pytest.warns(UserWarning, match="Update your `ZeroPadding2D` call"):
        layer = ZeroPadding2D(
            padding={"top_pad": 1, "bottom_pad": 2, "left_pad": 0, "right_pad": 3},
            dim_ordering="tf",
        )
    assert layer.padding == ((1, 2), (0, 3)) and layer.data_format == "channels_last"
    with pytest.raises(ValueError, match="`padding` should be either an int"):
        ZeroPadding2D((1, 2, 3, 4))


def test_automatic_names_are_keras_2_snake_case():
    reset_layer_names()
    assert [Dense(1).name, Dense(1).name, Activation("relu").name, Flatten().name] == [
        "dense_1",
        "dense_2",
        "activation_1",
        "flatten_1",
    ]
    assert Dense(1, name="mine").name == "mine"


def test_no_warning_for_keras_2_arguments():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Dense(3, kernel_initializer="glorot_uniform")
        Dropout(0.5)
