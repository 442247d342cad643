"""Shared by the tests of the batch-norm variants (test_bn_moving_statistics.py, test_bn_renorm.py,
test_bn_ghost.py, test_bn_variants_config.py): their tolerances and data, and the side-by-side
comparison with tf.keras."""

import numpy as np
import pytest

from bnpy.layers import BatchNormalization

# float64 results are a few roundings of O(1) values away from the twin's; float32 ones a few
# float32 roundings (6e-8) of values up to ~10 (the data below), and their statistics sums in double.
TOL = {np.float64: dict(rtol=1e-11, atol=1e-11), np.float32: dict(rtol=2e-5, atol=2e-5)}


def random_data(rng, shape, dtype=np.float64, offset=2.0, scale=3.0):
    return (rng.standard_normal(shape) * scale + offset).astype(dtype)


def _tf_keras():
    tf_keras = pytest.importorskip("tf_keras")
    import tensorflow as tf

    return tf, tf_keras


def compare_with_tf_keras(bn_kwargs, tf_kwargs, shape, steps, rng, weight_names):
    """Train a bnpy and a tf.keras layer side by side (forward in training mode, gradients of
    Σ y·dy, the layers' own moving updates); outputs, gradients and weights must agree."""
    tf, tf_keras = _tf_keras()
    channels = shape[-1]
    gamma = rng.uniform(0.5, 1.5, channels).astype(np.float32)
    beta = rng.standard_normal(channels).astype(np.float32)
    layer = BatchNormalization(**bn_kwargs)
    layer.build_for((None,) + shape[1:])
    reference = tf_keras.layers.BatchNormalization(**tf_kwargs)
    reference.build((None,) + shape[1:])
    layer.gamma[...] = gamma
    layer.beta[...] = beta
    # tf.keras's weights are (1, 1, ..., C) with virtual batches: compare them flattened
    reference.gamma.assign(gamma.reshape(reference.gamma.shape))
    reference.beta.assign(beta.reshape(reference.beta.shape))
    for step in range(steps):
        x = random_data(rng, shape, np.float32, offset=step * 0.3, scale=1.0 + 0.5 * step)
        dy = rng.standard_normal(shape).astype(np.float32)
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            yt = reference(xt, training=True)
            loss = tf.reduce_sum(yt * dy)
        dxt, dgt, dbt = tape.gradient(loss, [xt, reference.gamma, reference.beta])
        y = layer.forward(x, training=True)
        dx = layer.backward(dy.copy())
        layer.commit_updates()
        tol = dict(rtol=2e-5, atol=2e-5)
        np.testing.assert_allclose(y, yt.numpy(), err_msg="y step %d" % step, **tol)
        scale = max(1.0, float(np.abs(dxt.numpy()).max()))
        np.testing.assert_allclose(dx, dxt.numpy(), rtol=0, atol=2e-5 * scale)
        for got, expected in zip(layer.gradients, [dgt, dbt]):
            expected = expected.numpy().reshape(-1)
            scale = max(1.0, float(np.abs(expected).max()))
            np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * scale)
        by_name = {
            w.name.split("/")[-1].split(":")[0]: w.numpy().reshape(-1) for w in reference.weights
        }
        for name in weight_names:
            np.testing.assert_allclose(
                getattr(layer, name), by_name[name], err_msg="%s step %d" % (name, step), **tol
            )
