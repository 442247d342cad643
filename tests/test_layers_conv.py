"""Conv2D, MaxPooling2D, AveragePooling2D layers: forward against a direct loop-based NumPy
reference (both paddings, strides, both data formats), backward by finite differences in
float64 with random upstream gradients, Keras-1 arguments, output shapes."""

import warnings

import numpy as np
import pytest
from reference_layers import (
    check_layer_gradients,
    conv2d_reference,
    pool2d_reference,
    requires_conv,
    requires_pool,
)

from bnpy.layers import AveragePooling2D, Conv2D, Convolution2D, MaxPooling2D

GEOMETRIES = [  # (H, W, kernel, strides, padding)
    (7, 6, (3, 3), (1, 1), "valid"),
    (7, 6, (3, 3), (1, 1), "same"),
    (8, 7, (3, 2), (2, 2), "same"),
    (8, 7, (2, 3), (2, 1), "valid"),
    (5, 5, (1, 1), (1, 1), "valid"),
    (6, 6, (4, 4), (3, 3), "same"),
]


def _input(rng, data_format, n, h, w, c, dtype):
    shape = (n, h, w, c) if data_format == "channels_last" else (n, c, h, w)
    return rng.standard_normal(shape).astype(dtype)


def _check_forward_float32(layer, x, strides, padding, data_format, dilation=(1, 1)):
    """Builds the float32 Conv2D layer for x: its output shape, and its forward in inference and
    training mode, against the loop reference."""
    out_shape = layer.build_for((None,) + x.shape[1:])
    expected = conv2d_reference(
        x, layer.kernel, layer.bias, strides, padding, data_format, dilation
    )
    assert out_shape == (None,) + expected.shape[1:]
    # float32 sums of ≤ 32 products of O(1) numbers: rounding ~1e-6 relative, 2e-5 leaves room
    for training in (False, True):
        np.testing.assert_allclose(
            layer.forward(x, training=training), expected, rtol=2e-5, atol=2e-5
        )


@requires_conv
@pytest.mark.parametrize("h, w, kernel, strides, padding", GEOMETRIES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_conv2d_matches_loop_reference(h, w, kernel, strides, padding, data_format):
    rng = np.random.default_rng(0)
    layer = Conv2D(
        4,
        kernel,
        strides=strides,
        padding=padding,
        data_format=data_format,
        bias_initializer="uniform",
    )
    x = _input(rng, data_format, 3, h, w, 2, np.float32)
    _check_forward_float32(layer, x, strides, padding, data_format)


@requires_conv
@pytest.mark.parametrize("h, w, kernel, strides, padding", GEOMETRIES[1:4])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_conv2d_gradients_finite_differences(
    h, w, kernel, strides, padding, data_format, activation
):
    rng = np.random.default_rng(1)
    layer = Conv2D(
        3,
        kernel,
        strides=strides,
        padding=padding,
        data_format=data_format,
        activation=activation,
        dtype="float64",
        bias_initializer="uniform",
    )
    x = _input(rng, data_format, 2, h, w, 2, np.float64)
    layer.build_for((None,) + x.shape[1:])
    check_layer_gradients(layer, x, rng)


@requires_conv
@pytest.mark.parametrize(
    "h, w, kernel, dilation, padding",
    [(9, 8, (3, 3), (2, 2), "valid"), (9, 8, (3, 2), (2, 3), "same"), (7, 7, 3, 3, "valid")],
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_dilated_conv2d(h, w, kernel, dilation, padding, data_format):
    """Keras 2.0's dilation_rate: the taps spread apart, output size from k_eff = k + (k−1)(d−1);
    forward against the loop reference, backward by finite differences."""
    rng = np.random.default_rng(3)
    layer = Conv2D(
        3,
        kernel,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation,
        bias_initializer="uniform",
    )
    x = _input(rng, data_format, 2, h, w, 2, np.float32)
    dilation = layer.dilation_rate
    _check_forward_float32(layer, x, (1, 1), padding, data_format, dilation)
    assert layer.get_config()["dilation_rate"] == dilation
    layer64 = Conv2D(
        3,
        kernel,
        padding=padding,
        data_format=data_format,
        dilation_rate=dilation,
        dtype="float64",
        bias_initializer="uniform",
        activation="tanh",
    )
    layer64.build_for((None,) + x.shape[1:])
    check_layer_gradients(layer64, x.astype(np.float64), rng)


@requires_conv
def test_conv2d_first_layer_skips_dx_and_use_bias_false():
    rng = np.random.default_rng(2)
    layer = Conv2D(2, 3, use_bias=False, dtype="float64")
    layer.build_for((None, 5, 5, 1))
    assert [w.shape for w in layer.weights] == [(3, 3, 1, 2)]
    layer.need_input_gradient = False
    x = rng.standard_normal((2, 5, 5, 1))
    layer.forward(x, training=True)
    assert layer.backward(rng.standard_normal((2, 3, 3, 2))) is None
    assert len(layer.gradients) == 1 and layer.gradients[0].shape == (3, 3, 1, 2)


def test_convolution2d_keras1_call_of_the_article():
    with pytest.warns(UserWarning) as record:
        layer = Convolution2D(
            96, 11, 11, border_mode="same", input_shape=(32, 32, 3), dim_ordering="tf"
        )
    assert str(record[0].message) == (
        'Update your `Conv2D` call to the Keras 2 API: `Conv2D(96, (11, 11), input_shape=(32, 32, 3..., '
        'padding="same", data_format="channels_last")`'
    )
    assert type(layer) is Conv2D
    assert layer.build_for(layer.batch_input_shape) == (None, 32, 32, 96)
    assert layer.count_params() == 34944
    with pytest.warns(UserWarning, match=r"`Conv2D\(120, \(1, 1\), padding=\"valid\"\)`"):
        second = Convolution2D(120, 1, 1, border_mode="valid")
    assert second.build_for((None, 16, 16, 96)) == (None, 16, 16, 120)
    assert second.count_params() == 11640


def test_conv2d_legacy_errors():
    with pytest.raises(ValueError, match="passing both `kernel_size` and `strides` as integer"):
        Conv2D(96, 11, 11, padding="same")
    with pytest.raises(TypeError, match="at most 3 positional arguments"):
        Conv2D(1, 2, 3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = Conv2D(8, nb_row=3, nb_col=5, subsample=(2, 2), dim_ordering="th")
    assert (
        layer.kernel_size == (3, 5)
        and layer.strides == (2, 2)
        and layer.data_format == "channels_first"
    )
    with pytest.raises(ValueError, match="`padding` argument must be one of 'valid', 'same'"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(
        ValueError, match="strides > 1 not supported in conjunction with dilation_rate > 1"
    ):
        Conv2D(2, 3, strides=2, dilation_rate=2)  # as TensorFlow, Keras 2.0's backend, refuses it


def test_conv2d_shape_errors():
    with pytest.raises(ValueError, match="expects 4-D input"):
        Conv2D(2, 3).build_for((None, 5, 5))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        Conv2D(2, 7).build_for((None, 5, 5, 1))


POOL_GEOMETRIES = [  # (H, W, pool, strides, padding)
    (8, 8, (2, 2), None, "valid"),
    (7, 9, (2, 2), None, "valid"),
    (7, 9, (2, 2), None, "same"),
    (7, 7, (3, 3), (2, 2), "same"),
    (6, 7, (3, 2), (1, 2), "valid"),
]


@requires_pool
@pytest.mark.parametrize("cls, mode", [(MaxPooling2D, "max"), (AveragePooling2D, "avg")])
@pytest.mark.parametrize("h, w, pool, strides, padding", POOL_GEOMETRIES)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_pooling_matches_reference_and_gradients(
    cls, mode, h, w, pool, strides, padding, data_format
):
    rng = np.random.default_rng(3)
    layer = cls(pool, strides=strides, padding=padding, data_format=data_format, dtype="float64")
    x = _input(rng, data_format, 2, h, w, 3, np.float64)
    out_shape = layer.build_for((None,) + x.shape[1:])
    expected = pool2d_reference(x, pool, strides or pool, padding, data_format, mode)
    assert out_shape == (None,) + expected.shape[1:]
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-14)
    # random normal inputs have distinct values, so the max is unique and h=1e-6 cannot flip it
    check_layer_gradients(layer, x, rng)


def test_pooling_keras1_arguments_and_shapes():
    with pytest.warns(
        UserWarning,
        match='Update your `MaxPooling2D` call to the Keras 2 API: '
        r'`MaxPooling2D\(pool_size=\(2, 2\), padding="valid"\)`',
    ):
        layer = MaxPooling2D(pool_size=(2, 2), border_mode="valid")
    assert layer.strides == (2, 2)
    assert layer.build_for((None, 33, 33, 96)) == (None, 16, 16, 96)
    assert AveragePooling2D(3, strides=2, padding="same").build_for((None, 7, 7, 1)) == (
        None,
        4,
        4,
        1,
    )
    with pytest.raises(TypeError, match="can accept only 3 positional arguments"):
        MaxPooling2D(2, 2, "valid", "channels_last")
