"""Losses (Keras's clipping), their gradients by finite differences, metrics, to_categorical."""

import numpy as np
import pytest
from reference_layers import numeric_gradient

from bnpy import activations, losses, metrics
from bnpy.utils import np_utils

EPS = 1e-7


def _probabilities(rng, shape):
    p = rng.uniform(0.05, 1.0, shape)
    return p / p.sum(axis=-1, keepdims=True)


def test_categorical_crossentropy_renormalises_and_clips():
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p = np.array([[0.2, 0.6, 0.2], [0.0, 2.0, 2.0]])  # second row: not normalised, true class 0
    expected = [-np.log(0.6), -np.log(EPS)]
    np.testing.assert_allclose(losses.categorical_crossentropy(y, p), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "name",
    [
        "categorical_crossentropy",
        "binary_crossentropy",
        "mean_squared_error",
        "mean_absolute_error",
    ],
)
def test_gradients_by_finite_differences(name):
    rng = np.random.default_rng(0)
    f = losses.get(name)
    shape = (4, 5)
    if name == "categorical_crossentropy":
        y = np.eye(5)[rng.integers(0, 5, 4)]
        p = _probabilities(rng, shape) * rng.uniform(0.5, 2.0, (4, 1))  # not normalised
    elif name == "binary_crossentropy":
        y = rng.integers(0, 2, shape).astype(float)
        p = rng.uniform(0.05, 0.95, shape)
    else:
        y = rng.standard_normal(shape)
        p = rng.standard_normal(shape)
    weights = rng.standard_normal(4)  # random per-sample upstream weights
    numeric = numeric_gradient(lambda: float(np.sum(f(y, p) * weights)), p)
    analytic = f.gradient(y, p) * weights[:, None]
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_sparse_categorical_crossentropy_matches_dense_and_gradient():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 6, 5)
    p = _probabilities(rng, (5, 6))
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy(labels[:, None], p),
        losses.categorical_crossentropy(np.eye(6)[labels], p),
        rtol=1e-12,
    )
    numeric = numeric_gradient(
        lambda: float(np.sum(losses.sparse_categorical_crossentropy(labels, p))), p
    )
    np.testing.assert_allclose(
        losses.sparse_categorical_crossentropy.gradient(labels, p), numeric, rtol=1e-6, atol=1e-8
    )
    with pytest.raises(ValueError, match="labels must be in"):
        losses.sparse_categorical_crossentropy(np.array([7]), p[:1])


def test_softmax_then_crossentropy_gradient_is_p_minus_y_and_zero_when_clipped():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 4))
    y = np.eye(4)[rng.integers(0, 4, 6)]
    p = activations.softmax(z)
    dz = activations.backward_from_output(
        "softmax", p, losses.categorical_crossentropy.gradient(y, p)
    )
    np.testing.assert_allclose(dz, p - y, rtol=1e-9, atol=1e-12)
    # a saturated softmax: p_true > 1 − 1e-7 is clipped, so Keras's gradient is exactly 0
    z = np.array([[30.0, 0.0, 0.0]])
    p = activations.softmax(z)
    dz = activations.backward_from_output(
        "softmax", p, losses.categorical_crossentropy.gradient(np.array([[1.0, 0.0, 0.0]]), p)
    )
    assert np.all(dz == 0)


def test_binary_crossentropy_value_and_clip():
    y = np.array([[1.0, 0.0]])
    p = np.array([[0.8, 1.0]])
    expected = np.mean([-np.log(0.8), -np.log(EPS)])  # clip(1.0) = 1 − 1e-7
    np.testing.assert_allclose(losses.binary_crossentropy(y, p), [expected], rtol=1e-6)
    assert losses.binary_crossentropy.gradient(y, p)[0, 1] == 0


def test_mse_mae_values():
    y = np.array([[1.0, 2.0]])
    p = np.array([[2.0, 0.0]])
    np.testing.assert_allclose(losses.mse(y, p), [2.5])
    np.testing.assert_allclose(losses.mae(y, p), [1.5])


def test_custom_loss_needs_gradient():
    with pytest.raises(ValueError, match="needs a `gradient"):
        losses.get(lambda y, p: (p - y) ** 2)
    with pytest.raises(ValueError, match="Unknown loss function"):
        losses.get("crossentropy")


def test_accuracy_metrics():
    y = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    p = np.array([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    np.testing.assert_array_equal(metrics.categorical_accuracy(y, p), [1, 0, 1])
    np.testing.assert_array_equal(
        metrics.sparse_categorical_accuracy(np.array([[1], [0], [2]]), p), [1, 0, 1]
    )
    np.testing.assert_allclose(
        metrics.binary_accuracy(np.array([[1, 0]]), np.array([[0.7, 0.6]])), [0.5]
    )
    np.testing.assert_array_equal(metrics.top_k_categorical_accuracy(y, p, k=2), [1, 1, 1])


@pytest.mark.parametrize(
    "loss, shape, expected",
    [
        (losses.categorical_crossentropy, (None, 10), metrics.categorical_accuracy),
        (losses.binary_crossentropy, (None, 10), metrics.binary_accuracy),
        (losses.mse, (None, 1), metrics.binary_accuracy),
        (losses.sparse_categorical_crossentropy, (None, 10), metrics.sparse_categorical_accuracy),
    ],
)
def test_accuracy_is_picked_from_the_loss(loss, shape, expected):
    assert metrics.accuracy_for(loss, shape) is expected


def test_to_categorical():
    y = np.array([[3], [0], [1]])  # CIFAR-10's (N, 1) labels
    out = np_utils.to_categorical(y, 5)
    assert out.dtype == np.float64 and out.shape == (3, 5)
    np.testing.assert_array_equal(out.argmax(1), [3, 0, 1])
    assert np_utils.to_categorical([0, 2]).shape == (2, 3)
    with pytest.warns(UserWarning, match="nb_classes"):
        assert np_utils.to_categorical([1], nb_classes=4).shape == (1, 4)
    with pytest.raises(ValueError, match="does not fit num_classes=2"):
        np_utils.to_categorical([3], 2)
    with pytest.raises(ValueError, match="integer class labels"):
        np_utils.to_categorical([0.5])
