"""Population statistics for inference (the BN paper's Algorithm 2) against a NumPy twin."""

import numpy as np
import pytest

from bnpy.layers.convolutional import Conv2D
from bnpy.layers.core import Activation, Dense
from bnpy.layers.normalization import (
    BatchNormalization,
    compute_population_statistics,
    restore_moving_statistics,
    set_population_statistics,
)
from bnpy.models import Sequential


def _dense_model(dtype="float64"):
    np.random.seed(3)
    model = Sequential()
    model.add(Dense(5, input_shape=(4,), dtype=dtype))
    model.add(BatchNormalization(dtype=dtype))
    model.add(Activation("relu", dtype=dtype))
    model.add(Dense(3, dtype=dtype))
    model.add(BatchNormalization(dtype=dtype, epsilon=1e-2))
    model.compile(loss="mse", optimizer="sgd")
    # non-trivial γ, β so that the second layer's inputs depend on them
    model.layers[1].gamma[...] = [0.5, 2.0, 1.0, 1.5, 0.7]
    model.layers[1].beta[...] = [0.1, -0.3, 0.0, 0.4, -0.1]
    return model


def _numpy_population(model, x, batch_size):
    """Twin: the training-mode forward written out in NumPy, then Algorithm 2's averages
    (per batch weighted by its size m_b, variance with m_b/(m_b - 1))."""
    d1, bn1, _, d2, bn2 = model.layers
    per_layer = {bn1.name: [], bn2.name: []}
    for start in range(0, len(x), batch_size):
        h = x[start : start + batch_size] @ d1.weights[0] + d1.weights[1]
        mu, var = h.mean(axis=0), h.var(axis=0)
        per_layer[bn1.name].append((len(h), mu, var))
        h = (h - mu) / np.sqrt(var + bn1.epsilon) * bn1.gamma + bn1.beta
        h = np.maximum(h, 0) @ d2.weights[0] + d2.weights[1]
        per_layer[bn2.name].append((len(h), h.mean(axis=0), h.var(axis=0)))
    result = {}
    for name, batches in per_layer.items():
        m = np.array([b[0] for b in batches], dtype=np.float64)
        means = np.array([b[1] for b in batches])
        variances = np.array([b[2] for b in batches])
        keep = m > 1
        mk = m[keep]
        result[name] = (
            (m[:, None] * means).sum(0) / m.sum(),
            ((mk * mk / (mk - 1))[:, None] * variances[keep]).sum(0) / mk.sum(),
        )
    return result


@pytest.mark.parametrize("batch_size", [8, 7, 29])  # equal batches; a last batch of 2; of 1
def test_population_statistics_match_numpy(batch_size):
    model = _dense_model()
    x = np.random.RandomState(0).normal(3.0, 2.0, (30, 4))
    moving_before = [w.copy() for w in model.get_weights()]
    got = compute_population_statistics(model, x, batch_size=batch_size)
    want = _numpy_population(model, x, batch_size)
    assert sorted(got) == sorted(want)
    for name in want:
        for g, w, what in zip(got[name], want[name], ("mean", "variance")):
            assert g.dtype == np.float64
            np.testing.assert_allclose(g, w, rtol=1e-10, atol=0, err_msg="{} {}".format(name, what))
    for before, after in zip(moving_before, model.get_weights()):  # nothing in the model changed
        np.testing.assert_array_equal(before, after)


def test_equal_batches_are_the_papers_formula():
    """With equal batches, E[x] = E_B[μ_B] and Var[x] = m/(m − 1)·E_B[σ²_B] (Algorithm 2)."""
    model = Sequential([BatchNormalization(input_shape=(2,), dtype="float64")])
    x = np.random.RandomState(1).normal(0, 1, (12, 2))
    mean, var = compute_population_statistics(model, x, batch_size=4)[model.layers[0].name]
    batches = x.reshape(3, 4, 2)
    np.testing.assert_allclose(mean, batches.mean(axis=1).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(var, 4 / 3 * batches.var(axis=1).mean(axis=0), rtol=1e-12)


def test_conv_bn_statistics_reduce_over_batch_and_space():
    np.random.seed(0)
    model = Sequential(
        [
            Conv2D(3, (3, 3), padding="same", input_shape=(5, 5, 2), dtype="float64"),
            BatchNormalization(dtype="float64"),
        ]
    )
    x = np.random.RandomState(2).normal(1.0, 1.0, (6, 5, 5, 2))
    mean, var = compute_population_statistics(model, x, batch_size=3)[model.layers[1].name]
    h = model.layers[0].forward(x, training=False).reshape(2, 3 * 25, 3)  # two batches of 3
    m = 3 * 25
    np.testing.assert_allclose(mean, h.mean(axis=1).mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(var, m / (m - 1) * h.var(axis=1).mean(axis=0), rtol=1e-10)


def test_set_then_restore_is_exact_and_inference_uses_the_population():
    model = _dense_model()
    x = np.random.RandomState(0).normal(3.0, 2.0, (32, 4))
    before = [w.copy() for w in model.get_weights()]
    stats = compute_population_statistics(model, x, batch_size=8)
    previous = set_population_statistics(model, x, batch_size=8)
    bn1 = model.layers[1]
    np.testing.assert_array_equal(bn1.moving_mean, stats[bn1.name][0])
    np.testing.assert_array_equal(bn1.moving_variance, stats[bn1.name][1])
    # inference now normalizes the first BN's input with the population statistics
    h = x @ model.layers[0].weights[0] + model.layers[0].weights[1]
    mean, var = stats[bn1.name]
    want = (h - mean) / np.sqrt(var + bn1.epsilon) * bn1.gamma + bn1.beta
    np.testing.assert_allclose(bn1.forward(h, training=False), want, rtol=1e-12)
    restore_moving_statistics(model, previous)
    for b, a in zip(before, model.get_weights()):
        np.testing.assert_array_equal(b, a)


def test_frozen_layers_are_left_out_and_bad_arguments_raise():
    model = _dense_model()
    model.layers[4].trainable = False
    x = np.random.RandomState(0).normal(size=(10, 4))
    assert list(compute_population_statistics(model, x, batch_size=5)) == [model.layers[1].name]
    with pytest.raises(ValueError, match="batch_size"):
        compute_population_statistics(model, x, batch_size=0)
    with pytest.raises(ValueError, match="no samples"):
        compute_population_statistics(model, x[:0], batch_size=4)
    with pytest.raises(ValueError, match="at least 2 values per channel"):
        compute_population_statistics(model, x, batch_size=1)
    with pytest.raises(ValueError, match="shape"):
        compute_population_statistics(model, x[:, :3], batch_size=4)


def test_renorm_layers_get_a_matching_moving_stddev():
    # a renorm layer derives its moving variance from moving_stddev (var = s² − ε) at every
    # update, so the population variance must reach moving_stddev too, or the next training step
    # would throw it away; restore puts all three arrays back
    np.random.seed(5)
    model = Sequential()
    model.add(Dense(6, input_shape=(4,), dtype="float64"))
    model.add(BatchNormalization(renorm=True, epsilon=1e-2, dtype="float64"))
    model.compile(loss="mse", optimizer="sgd")
    x = np.random.RandomState(1).normal(2.0, 3.0, (40, 4))
    model.train_on_batch(x[:20], np.zeros((20, 6)))
    bn = model.layers[1]
    before = [w.copy() for w in model.get_weights()]
    previous = set_population_statistics(model, x, batch_size=10)
    _, var = compute_population_statistics(model, x, batch_size=10)[bn.name]
    np.testing.assert_array_equal(bn.moving_variance, var)
    np.testing.assert_allclose(bn.moving_stddev**2 - bn.epsilon, var, rtol=1e-12)
    restore_moving_statistics(model, previous)
    for b, a in zip(before, model.get_weights()):
        np.testing.assert_array_equal(b, a)
