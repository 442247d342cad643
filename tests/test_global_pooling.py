"""GlobalAveragePooling2D and GlobalMaxPooling2D: loop references in both data formats,
finite-difference gradients (ties in the maximum split the gradient, as TensorFlow's
reduce_max), shapes, Keras 1's dim_ordering."""

import warnings

import numpy as np
import pytest
from reference_layers import check_layer_gradients

from bnpy.layers import GlobalAveragePooling2D, GlobalMaxPooling2D
from bnpy.models import Sequential


def _reference(x, data_format, reduce):
    if data_format == "channels_first":
        x = x.transpose(0, 2, 3, 1)
    n, _, _, c = x.shape
    out = np.empty((n, c))
    for i in range(n):
        for k in range(c):
            out[i, k] = reduce(x[i, :, :, k].ravel())
    return out


@pytest.mark.parametrize(
    "cls, reduce", [(GlobalAveragePooling2D, np.mean), (GlobalMaxPooling2D, max)]
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_forward_shape_and_gradients(cls, reduce, data_format):
    rng = np.random.RandomState(0)
    shape = (3, 5, 4, 2) if data_format == "channels_last" else (3, 2, 5, 4)
    layer = cls(data_format=data_format, dtype="float64")
    assert layer.build_for((None,) + shape[1:]) == (None, 2)
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(
        layer.forward(x), _reference(x, data_format, reduce), rtol=1e-12, atol=1e-15
    )
    check_layer_gradients(layer, x, rng)


def test_float32_output():
    layer = GlobalAveragePooling2D()
    x = np.random.RandomState(1).uniform(size=(2, 3, 3, 4)).astype(np.float32)
    assert layer.forward(x).dtype == np.float32


def test_tied_maxima_share_the_gradient():
    layer = GlobalMaxPooling2D(dtype="float64")
    layer.build_for((None, 2, 2, 1))
    x = np.array([[[[1.0], [3.0]], [[3.0], [0.0]]]])
    layer.forward(x, training=True)
    dx = layer.backward(np.array([[2.0]]))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[0.0, 1.0], [1.0, 0.0]])


def test_in_a_model_and_errors():
    model = Sequential([GlobalMaxPooling2D(input_shape=(4, 4, 3))])
    assert model.output_shape == (None, 3)
    with pytest.raises(ValueError, match="expects 4-D input"):
        Sequential([GlobalAveragePooling2D(input_shape=(4, 3))])
    with pytest.raises(RuntimeError, match="backward called without a training forward"):
        model.layers[0].backward(np.zeros((1, 3), np.float32))


def test_keras_1_dim_ordering_is_converted():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = GlobalAveragePooling2D(dim_ordering="th")
    assert layer.data_format == "channels_first"
    assert "Update your `GlobalAveragePooling2D` call to the Keras 2 API" in str(caught[0].message)
