"""Initializers, regularizers and constraints as the layers use them."""

import numpy as np
import pytest
from reference_layers import numeric_gradient

from bnpy import constraints, initializers, regularizers
from bnpy.layers import Activation, Dense
from bnpy.models import Sequential
from bnpy.optimizers import SGD


@pytest.mark.parametrize(
    "name, scale, fan",
    [("he_normal", 2.0, "in"), ("lecun_normal", 1.0, "in"), ("glorot_normal", 1.0, "avg")],
)
def test_truncated_normal_initializers(name, scale, fan):
    np.random.seed(0)
    w = initializers.get(name)((200, 300))
    n = {"in": 200, "avg": 250}[fan]
    std = np.sqrt(scale / n)
    assert np.abs(w).max() <= 2 * std * (1 + 1e-6)  # truncated at two standard deviations
    # a N(0,1) truncated at ±2 has std 0.8796; 60,000 draws estimate it to ~0.3%
    assert abs(w.std() / std - 0.8796) < 0.01


@pytest.mark.parametrize(
    "name, limit",
    [("he_uniform", np.sqrt(6 / 200)), ("lecun_uniform", np.sqrt(3 / 200)), ("uniform", 0.05)],
)
def test_uniform_initializers(name, limit):
    np.random.seed(1)
    w = initializers.get(name)((200, 300))
    # 60,000 uniform draws: the extremes are within 0.1% of the limit with overwhelming odds
    assert limit * 0.999 < np.abs(w).max() <= limit


def test_constant_initializers_and_errors():
    np.testing.assert_array_equal(initializers.get("one")((2,)), [1, 1])
    np.testing.assert_array_equal(initializers.get("zero")((2,)), [0, 0])
    with pytest.raises(ValueError, match="Unknown initializer: 'glorot'"):
        initializers.get("glorot")


def test_regularizer_penalty_and_gradient():
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    reg = regularizers.l1_l2(l1=0.1, l2=0.01)
    assert reg(w) == pytest.approx(0.1 * 3.5 + 0.01 * 5.25)
    np.testing.assert_allclose(reg.gradient(w), 0.1 * np.sign(w) + 0.02 * w)


def test_activity_regularizer_adds_output_penalty():
    np.random.seed(2)
    model = Sequential([Dense(3, input_shape=(4,), activity_regularizer=regularizers.l2(0.1))])
    model.compile(loss="mse", optimizer=SGD(lr=0.0))
    x = np.random.standard_normal((5, 4)).astype(np.float32)
    y = np.zeros((5, 3), np.float32)
    out = model.predict(x).astype(np.float64)
    # mse against zeros plus 0.1·Σ out² over the whole batch (Keras 2.0: not divided by N)
    expected = np.mean(np.mean(out**2, axis=1)) + 0.1 * np.sum(out**2)
    np.testing.assert_allclose(model.test_on_batch(x, y), expected, rtol=1e-5)
    np.testing.assert_allclose(model.train_on_batch(x, y), expected, rtol=1e-5)


def test_activity_regularizer_gradient_by_finite_differences():
    """d(total loss)/d kernel through the activity penalty, with lr=1 SGD reading the gradient."""
    np.random.seed(3)
    model = Sequential(
        [Dense(2, input_shape=(3,), activity_regularizer=regularizers.l2(0.5), dtype="float64")]
    )
    model.add(Activation("tanh", dtype="float64"))
    model.compile(loss="mse", optimizer=SGD(lr=1.0))
    x = np.random.standard_normal((4, 3))
    y = np.random.standard_normal((4, 2))
    kernel = model.layers[0].kernel

    def total_loss():
        return model.test_on_batch(x, y)

    numeric = numeric_gradient(total_loss, kernel, 1e-6)
    before = kernel.copy()
    model.train_on_batch(x, y)
    np.testing.assert_allclose(before - kernel, numeric, rtol=1e-6, atol=1e-9)


def test_max_norm_and_unit_norm():
    w = np.array([[3.0, 0.1], [4.0, 0.1]])
    constraints.max_norm(2.0)(w)
    np.testing.assert_allclose(np.linalg.norm(w, axis=0), [2.0, np.sqrt(0.02)], rtol=1e-6)
    u = np.array([[3.0], [4.0]])
    constraints.unit_norm()(u)
    np.testing.assert_allclose(u[:, 0], [0.6, 0.8], rtol=1e-6)
