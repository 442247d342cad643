"""bnpy against real Keras (tf-keras with Keras 2.0's settings): the article's four networks
trained in lock step from the same initial weights on the same batches, through the functions
of examples/keras_reference.py. Skipped where tf-keras is not installed; CI runs it in a
virtual environment of its own (.ci/keras-reference.sh) and fails if it is skipped there.

What the numbers allow (docs/keras-reference.md has the figures):

* float64: the losses of the two systems agree to 1-2 ulp (≤ 8e-16 relative) at every one of
  the 10 steps, the trainable weights after them to ≤ 1e-12 relative. The test asks 1e-9 (the
  issue's 1e-4 a fortiori): far below what a formula difference gives (Adadelta's ε 1e-7 for
  1e-8: 6e-2 within the 10 steps), with room for another machine's summation order.
* float32: only the first step, which starts from the same weights, is compared (1e-6; seen
  ≤ 2.2e-7). Later float32 steps drift apart by up to ~1e-3 at step 10 for some seeds, as a
  float32 run of either system drifts from its own float64 run: a max-pooling window whose two
  largest inputs are within float32 rounding sends the gradient to one or the other, and
  Adadelta's normalised steps carry the difference on.
"""

import importlib.util
import math
import os

import numpy as np
import pytest

pytest.importorskip("bnpy.models")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_script():
    # Loading the script first sets TF_ENABLE_ONEDNN_OPTS=0 before TensorFlow is imported.
    spec = importlib.util.spec_from_file_location(
        "keras_reference", os.path.join(ROOT, "examples", "keras_reference.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


keras_reference = _load_script()
keras = pytest.importorskip("tf_keras")
tf = pytest.importorskip("tensorflow")

from bnpy.experiments import article  # noqa: E402

GROUPS = list(article.GROUPS)
STEPS, BATCH_SIZE = 10, 32
# The article's model as printed has 353,834 parameters in Keras 2.0's model.summary().
AS_PRINTED_PARAMS = 353834


@pytest.mark.parametrize("group", GROUPS)
def test_same_layers_and_parameter_counts(group):
    """Layer by layer the same classes, output shapes, weight shapes and Keras-2.0 arguments
    (bnpy's BN defaults = momentum 0.99, ε 1e-3, the non-fused tf-keras path), and the same
    count_params()."""
    np.random.seed(0)
    ours = article.build_model(group, (32, 32, 3), 10)
    theirs = keras_reference.build_keras_model(group, (32, 32, 3), 10)
    assert keras_reference.layer_differences(ours, theirs) == []
    assert ours.count_params() == theirs.count_params()
    if group == "as-printed":
        assert ours.count_params() == AS_PRINTED_PARAMS


def test_layer_differences_are_found():
    """The comparison itself can fail: a BN with PyTorch's momentum, a missing layer."""
    from bnpy.layers.normalization import BatchNormalization

    np.random.seed(0)
    ours = article.build_model("as-printed", (32, 32, 3), 10)
    theirs = keras_reference.build_keras_model("as-printed", (32, 32, 3), 10)
    bn = [i for i, layer in enumerate(ours.layers) if isinstance(layer, BatchNormalization)][0]
    ours.layers[bn].momentum = 0.9
    assert keras_reference.layer_differences(ours, theirs) == [
        "layer {} (BatchNormalization / BatchNormalization): momentum = 0.9 / 0.99".format(
            ours.layers[bn].name
        )
    ]
    other = keras_reference.build_keras_model("no-bn", (32, 32, 3), 10)
    assert keras_reference.layer_differences(ours, other) == ["9 layers in bnpy, 8 in tf-keras"]


def test_loss_is_keras20_clipped_crossentropy_not_the_logits_shortcut():
    """Behind a softmax, with the true class's probability e^-30 < 1e-7: Keras 2.0 (and bnpy)
    clip it to 1e-7, so the loss is -ln(1e-7) and the gradient 0; tf-keras's built-in loss
    takes the logits (loss 30, gradient non-zero). The script's loss inside a compiled tf-keras
    model must give the former."""
    x = np.ones((1, 1), dtype=np.float32)
    y = np.array([[1.0, 0.0, 0.0]], dtype=np.float32)
    model = keras.Sequential(
        [
            keras.Input(shape=(1,)),
            keras.layers.Dense(3, use_bias=False),
            keras.layers.Activation("softmax"),
        ]
    )
    model.set_weights([np.array([[0.0, 30.0, 0.0]], dtype=np.float32)])
    clipped = -math.log(1e-7)

    model.compile(optimizer="sgd", loss=keras_reference.keras20_categorical_crossentropy)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(clipped, rel=1e-6)
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert model.evaluate(x, y, verbose=0) == pytest.approx(30.0, rel=1e-6)  # the shortcut

    from bnpy.losses import categorical_crossentropy

    probabilities = model.predict(x, verbose=0)
    assert categorical_crossentropy(y, probabilities)[0] == pytest.approx(clipped, rel=1e-6)

    def kernel_gradient(loss):
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(loss(tf.constant(y), model(x, training=True)))
        return tape.gradient(value, model.trainable_variables[0]).numpy()

    assert not np.any(kernel_gradient(keras_reference.keras20_categorical_crossentropy))
    assert np.any(kernel_gradient(keras.losses.categorical_crossentropy))


@pytest.mark.parametrize("group", GROUPS)
def test_first_step_float32(group):
    """In float32, from the same weights: the first step's loss (the forward pass and the loss,
    before any update) within 1e-6 relative, which is float32 rounding over these networks."""
    x, y = keras_reference.synthetic_data(BATCH_SIZE, seed=0)
    result = keras_reference.run_group(
        group, x, y, steps=1, batch_size=BATCH_SIZE, seed=0, dtype="float32"
    )
    assert result["params_bnpy"] == result["params_keras"]
    assert result["layer_differences"] == []
    relative = keras_reference.relative_loss_differences(result)
    assert len(relative) == 1 and relative[0] <= 1e-6, keras_reference.report(result)


@pytest.mark.parametrize("group", GROUPS)
def test_lock_step_float64(group):
    """In float64 the two systems are the same computation up to rounding: every step's loss
    and, after 10 steps, every trainable weight within 1e-9 relative (measured ≤ 1e-12);
    biases and β whose shift a later BN removes (gradient 0 but for rounding noise, ~1e-14)
    within 1e-12 absolute; BN's moving statistics within 5e-8 relative, because tf-keras
    computes the moving averages' factor 1 − momentum as a float32 constant (0.01 becomes
    0.0099999998, 2.2e-8 off)."""
    x, y = keras_reference.synthetic_data(STEPS * BATCH_SIZE, seed=0)
    result = keras_reference.run_group(group, x, y, STEPS, BATCH_SIZE, seed=0, dtype="float64")
    assert result["params_bnpy"] == result["params_keras"]
    assert result["layer_differences"] == []
    relative = keras_reference.relative_loss_differences(result)
    assert len(relative) == STEPS and np.max(relative) <= 1e-9, keras_reference.report(result)
    rows = result["weights"]
    assert rows and len(rows) == len(article.build_model(group, (32, 32, 3)).get_weights())
    for name, kind, difference, scale in rows:
        if kind == "trainable":
            assert difference <= 1e-9 * scale, name
        elif kind == "moving":
            assert difference <= 5e-8 * scale, name
        else:
            assert kind == "removed by BN" and difference <= 1e-12, name
    moving = [row for row in rows if row[1] == "moving"]
    assert bool(moving) == (group != "no-bn")
