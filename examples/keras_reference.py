"""bnpy against real Keras: the article's four networks trained in lock step.

For each group of ``bnpy.experiments.article.GROUPS`` this builds the network twice, in bnpy
(``article.build_model``) and in tf-keras (``tf_keras``, the Keras 2 API on TensorFlow) with
Keras 2.0's settings, gives the tf-keras model bnpy's initial weights, trains both with
``train_on_batch`` on the same batches, and compares the loss of every step, the parameter
counts, the weights after the last step and the BN moving statistics.

Keras 2.0's settings, where tf-keras's defaults differ:

* ``Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-8)`` (tf-keras: lr 0.001, ε 1e-7);
* ``BatchNormalization(momentum=0.99, epsilon=1e-3, fused=False)``: the fused kernel, which
  tf-keras picks for 4-D inputs, feeds the Bessel-corrected m/(m−1)·σ²_B into the moving
  variance; Keras 2.0 (and bnpy) feed the biased σ²_B;
* the loss is Keras 2.0's categorical cross-entropy on probabilities, written out::

      p = y_pred / Σ_k y_pred_k;   q = clip(p, 1e-7, 1 − 1e-7);   L = −Σ_k y_k log q_k

  averaged over the batch. tf-keras's own ``categorical_crossentropy`` notices that its input
  comes from a softmax and computes the loss from the logits instead (no clipping: a different
  loss and gradient once a probability leaves [1e-7, 1 − 1e-7]).

The comparison runs in float64 by default: there the two systems compute the same thing to 1-2
units in the last place over the 10 steps. In float32 (``--dtype float32``) the first step
agrees to rounding (~1e-7), but later steps drift apart, by up to ~1e-3 at step 10 for some
seeds, as a float32 run of either system drifts from its own float64 run: the first max pooling
sees about one window a batch whose two largest inputs lie within float32 rounding of each
other, rounding decides which input gets the gradient, and Adadelta's normalised steps carry the
change on (docs/keras-reference.md). TensorFlow's oneDNN kernels are turned off
(``TF_ENABLE_ONEDNN_OPTS=0``, set before TensorFlow is imported, unless already set): in
float32 their convolution gradients carry ~15x the rounding error of TF's Eigen kernels.

Run: ``python examples/keras_reference.py [--steps 10] [--groups all-comments,no-bn]
[--dtype float32] [--seed 0] [--cifar10]``. Needs ``pip install tensorflow-cpu tf-keras`` beside
bnpy. Exits 1 if a step's loss differs by more than ``--rtol`` (relative, default 1e-4) or the
layers or parameter counts differ. tests/test_keras_reference.py runs the same comparison.
"""

import argparse
import os
import sys

# Both must be set before TensorFlow is first imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter on stderr

import numpy as np

STEPS = 10
BATCH_SIZE = 32
RTOL = 1e-4
KERAS20_EPSILON = 1e-7  # K.epsilon() in Keras 2.0


def import_tf_keras():
    """``tf_keras`` (the Keras 2 API for TensorFlow 2.16+), with a clear error if missing."""
    try:
        import tf_keras
    except ImportError as exc:
        raise ImportError(
            "keras_reference needs tf-keras: pip install tensorflow-cpu tf-keras ({})".format(exc)
        ) from None
    return tf_keras


def keras20_categorical_crossentropy(y_true, y_pred):
    """Keras 2.0's categorical cross-entropy on probabilities, per sample, in TensorFlow ops:
    p = y_pred / Σ y_pred, clipped to [1e-7, 1 − 1e-7], then −Σ y·log p. A function of its own,
    so tf-keras cannot replace it by its softmax-logits shortcut."""
    import tensorflow as tf

    p = y_pred / tf.reduce_sum(y_pred, axis=-1, keepdims=True)
    p = tf.clip_by_value(p, KERAS20_EPSILON, 1.0 - KERAS20_EPSILON)
    return -tf.reduce_sum(y_true * tf.math.log(p), axis=-1)


def build_keras_model(group, input_shape, num_classes=10, dtype="float32"):
    """The article's network for ``group`` (a key of article.GROUPS) in tf-keras, channels_last,
    with Keras 2.0's layer arguments, every layer computing in ``dtype``."""
    from bnpy.experiments import article

    keras = import_tf_keras()
    layers = keras.layers
    flags = article.GROUPS[group][1]

    def batchnorm():
        return layers.BatchNormalization(
            axis=-1, momentum=0.99, epsilon=1e-3, fused=False, dtype=dtype
        )

    stack = [
        keras.Input(shape=tuple(input_shape), dtype=dtype),
        layers.Conv2D(96, (11, 11), padding="same", dtype=dtype),
    ]
    if flags["bn1"]:
        stack.append(batchnorm())
    stack.append(layers.MaxPooling2D(pool_size=(2, 2), dtype=dtype))
    if flags["bn2"]:
        stack.append(batchnorm())
    stack += [
        layers.Activation("tanh", dtype=dtype),
        layers.Conv2D(120, (1, 1), padding="valid", dtype=dtype),
    ]
    if flags["bn3"]:
        stack.append(batchnorm())
    stack += [layers.Flatten(dtype=dtype), layers.Dense(num_classes, dtype=dtype)]
    if flags["bn_dense"]:
        stack.append(batchnorm())
    stack.append(layers.Activation("relu", dtype=dtype))
    if flags["extra_dense"]:
        stack.append(layers.Dense(num_classes, dtype=dtype))
    stack.append(layers.Activation("softmax", dtype=dtype))
    return keras.Sequential(stack)


def bnpy_model_in_dtype(model, dtype):
    """The bnpy Sequential ``model`` computing in ``dtype``: ``model`` itself if all its layers
    already do, else a copy with every layer in ``dtype`` and the same weights (cast)."""
    from bnpy.models import Sequential

    if all(layer.dtype == np.dtype(dtype) for layer in model.layers):
        return model
    copy = Sequential()
    for layer in model.layers:
        copy.add(type(layer)(**dict(layer.get_config(), dtype=np.dtype(dtype).name)))
    copy.set_weights([w.astype(dtype) for w in model.get_weights()])
    return copy


# The layer arguments that define the computation, per layer class (Keras's config names).
_COMPARED_CONFIG = {
    "Conv2D": (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
    ),
    "Dense": ("units", "activation", "use_bias"),
    "MaxPooling2D": ("pool_size", "strides", "padding", "data_format"),
    "Activation": ("activation",),
    "Flatten": (),
    "BatchNormalization": ("axis", "momentum", "epsilon", "center", "scale"),
}


def _normalized(value):
    if isinstance(value, (list, tuple)):
        return tuple(_normalized(v) for v in value)
    if callable(value):
        return getattr(value, "__name__", repr(value))
    return value


def layer_differences(bnpy_model, keras_model):
    """The differences between the two models, layer by layer: class, output shape, weight
    shapes and the arguments of _COMPARED_CONFIG (a BN axis of [3] and -1 are the same on 4-D
    input, and so on: axes are compared as positive indices). Empty if they are the same."""
    ours, theirs = bnpy_model.layers, keras_model.layers
    if len(ours) != len(theirs):
        return ["{} layers in bnpy, {} in tf-keras".format(len(ours), len(theirs))]
    differences = []
    for a, b in zip(ours, theirs):
        kind = type(a).__name__
        where = "layer {} ({} / {})".format(a.name, kind, type(b).__name__)
        if kind != type(b).__name__ or kind not in _COMPARED_CONFIG:
            differences.append(where + ": different or unknown classes")
            continue
        if tuple(a.output_shape) != tuple(b.output_shape):
            differences.append(
                "{}: output shape {} / {}".format(where, a.output_shape, b.output_shape)
            )
        shapes_a = [w.shape for w in a.get_weights()]
        shapes_b = [w.shape for w in b.get_weights()]
        if shapes_a != shapes_b:
            differences.append("{}: weight shapes {} / {}".format(where, shapes_a, shapes_b))
        config_a, config_b = a.get_config(), b.get_config()
        for key in _COMPARED_CONFIG[kind]:
            value_a, value_b = _normalized(config_a.get(key)), _normalized(config_b.get(key))
            if key == "axis":
                rank = len(a.output_shape)
                value_a = tuple(sorted(v % rank for v in np.atleast_1d(value_a)))
                value_b = tuple(sorted(v % rank for v in np.atleast_1d(value_b)))
            if value_a != value_b:
                differences.append("{}: {} = {!r} / {!r}".format(where, key, value_a, value_b))
        if kind == "BatchNormalization" and b.fused:
            differences.append(where + ": tf-keras's fused BN (Bessel-corrected moving variance)")
    return differences


def synthetic_data(n, input_shape=(32, 32, 3), num_classes=10, seed=0):
    """``n`` CIFAR-shaped images (uniform in [0, 1), float32) and one-hot labels, from ``seed``."""
    rng = np.random.default_rng(seed)
    x = rng.random((n,) + tuple(input_shape), dtype=np.float32)
    y = np.eye(num_classes, dtype=np.float32)[rng.integers(0, num_classes, n)]
    return x, y


def cifar10_data(n):
    """The first ``n`` CIFAR-10 training images (x/255, float32) and one-hot labels, through
    bnpy's loader ($BNPY_DATA, the Keras cache or a download)."""
    from bnpy.datasets import cifar10

    (x, labels), _ = cifar10.load_data()
    if len(x) < n:
        raise ValueError("cifar10_data: {} images wanted, the data set has {}".format(n, len(x)))
    return (
        x[:n].astype(np.float32) / 255.0,
        np.eye(10, dtype=np.float32)[np.asarray(labels[:n]).reshape(-1)],
    )


def _shift_removed_by_batchnorm(layers, index):
    """Whether a per-channel constant added to the output of ``layers[index]`` reaches a
    BatchNormalization as a per-feature constant, which BN's batch-mean subtraction removes.
    A bias or β there has a gradient of exactly 0, so both systems move it by rounding noise
    only (relative differences of order 1 between two such noises say nothing). Layers that
    carry a constant shift on as a constant shift: max pooling, Flatten, and Dense or
    'valid'-padded Conv2D without activation (linear, and no zero padding at the borders)."""
    for layer in layers[index + 1 :]:
        kind, config = type(layer).__name__, layer.get_config()
        if kind == "BatchNormalization":
            return True
        linear = config.get("activation") in ("linear", None)
        if not (
            kind in ("MaxPooling2D", "Flatten")
            or (kind == "Dense" and linear)
            or (kind == "Conv2D" and linear and config.get("padding") == "valid")
        ):
            return False
    return False


def compare_weights(bnpy_model, keras_model):
    """One row per weight array: (name, kind, max |bnpy − keras|, max |keras|), kind being
    'trainable', 'moving' (BN's moving statistics) or 'removed by BN' (a bias or β whose
    shift a later BN removes: see _shift_removed_by_batchnorm)."""
    rows = []
    layers = bnpy_model.layers
    for index, (a, b) in enumerate(zip(layers, keras_model.layers)):
        for w_a, variable in zip(a.get_weights(), b.weights):
            name = variable.name.split("/")[-1].split(":")[0]
            if name in ("moving_mean", "moving_variance"):
                kind = "moving"
            elif name in ("bias", "beta") and _shift_removed_by_batchnorm(layers, index):
                kind = "removed by BN"
            else:
                kind = "trainable"
            w_b = variable.numpy().astype(np.float64)
            rows.append(
                (
                    "{}/{}".format(a.name, name),
                    kind,
                    float(np.max(np.abs(w_a.astype(np.float64) - w_b))),
                    float(np.max(np.abs(w_b))),
                )
            )
    return rows


def run_group(group, x, y, steps=STEPS, batch_size=BATCH_SIZE, seed=0, dtype="float64"):
    """Train ``group``'s network in bnpy and in tf-keras on the same ``steps`` batches of
    ``batch_size`` from (x, y), both in ``dtype``, from bnpy's initial weights for ``seed``.

    Returns a dict: 'losses_bnpy', 'losses_keras' (one loss a step, measured before the step's
    update as train_on_batch returns it), 'params_bnpy', 'params_keras', 'layer_differences'
    and 'weights' (compare_weights after the last step)."""
    from bnpy.experiments import article
    from bnpy.optimizers import Adadelta

    keras = import_tf_keras()
    if len(x) < steps * batch_size:
        raise ValueError(
            "run_group: {} steps of batch {} need {} samples, got {}".format(
                steps, batch_size, steps * batch_size, len(x)
            )
        )
    x, y = x.astype(dtype), y.astype(dtype)

    np.random.seed(seed)  # bnpy's initializers draw from NumPy's global RNG
    ours = bnpy_model_in_dtype(article.build_model(group, x.shape[1:], y.shape[1]), dtype)
    ours.compile(
        optimizer=Adadelta(lr=1.0, rho=0.95, epsilon=1e-8), loss="categorical_crossentropy"
    )

    floatx = keras.backend.floatx()
    keras.backend.set_floatx(np.dtype(dtype).name)  # the loss tracker's dtype follows floatx
    try:
        theirs = build_keras_model(group, x.shape[1:], y.shape[1], dtype)
        theirs.set_weights(ours.get_weights())
        theirs.compile(
            optimizer=keras.optimizers.Adadelta(learning_rate=1.0, rho=0.95, epsilon=1e-8),
            loss=keras20_categorical_crossentropy,
        )
        losses_bnpy, losses_keras = [], []
        for step in range(steps):
            batch = slice(step * batch_size, (step + 1) * batch_size)
            losses_bnpy.append(float(ours.train_on_batch(x[batch], y[batch])))
            losses_keras.append(float(theirs.train_on_batch(x[batch], y[batch])))
    finally:
        keras.backend.set_floatx(floatx)
    return {
        "group": group,
        "dtype": np.dtype(dtype).name,
        "params_bnpy": int(ours.count_params()),
        "params_keras": int(theirs.count_params()),
        "layer_differences": layer_differences(ours, theirs),
        "losses_bnpy": losses_bnpy,
        "losses_keras": losses_keras,
        "weights": compare_weights(ours, theirs),
    }


def relative_loss_differences(result):
    """|loss_bnpy − loss_keras| / |loss_keras| for each step."""
    a, b = np.asarray(result["losses_bnpy"]), np.asarray(result["losses_keras"])
    return np.abs(a - b) / np.abs(b)


def max_relative_weight_difference(result, kind):
    """Over the weight arrays of ``kind``: max |bnpy − keras| / max |keras| (0 if none)."""
    return max(
        (
            diff / scale if scale > 0 else diff
            for _, k, diff, scale in result["weights"]
            if k == kind
        ),
        default=0.0,
    )


def report(result):
    """The printed table of one group."""
    lines = [
        "== {} ({}): {:,} parameters in bnpy, {:,} in tf-keras".format(
            result["group"], result["dtype"], result["params_bnpy"], result["params_keras"]
        )
    ]
    lines += ["layer difference: " + d for d in result["layer_differences"]]
    lines.append("step  loss bnpy           loss tf-keras       rel. diff")
    for step, (a, b, r) in enumerate(
        zip(result["losses_bnpy"], result["losses_keras"], relative_loss_differences(result)), 1
    ):
        lines.append("{:>4}  {:.15f}  {:.15f}  {:.1e}".format(step, a, b, r))
    removed = [diff for _, k, diff, _ in result["weights"] if k == "removed by BN"]
    lines.append(
        "max rel. loss diff {:.1e}; after the last step, max rel. diff of the weights "
        "{:.1e}, of BN's moving statistics {:.1e}{}".format(
            max(relative_loss_differences(result)),
            max_relative_weight_difference(result, "trainable"),
            max_relative_weight_difference(result, "moving"),
            "; biases and betas whose shift a later BN removes (gradient 0 up to "
            "rounding) differ by {:.1e} (absolute)".format(max(removed))
            if removed
            else "",
        )
    )
    return "\n".join(lines)


def main(argv=None):
    from bnpy.experiments import article

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--groups",
        default=",".join(article.GROUPS),
        help="comma-separated, of: " + ", ".join(article.GROUPS),
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the seed of bnpy's initial weights and of the synthetic data",
    )
    parser.add_argument(
        "--dtype",
        default="float64",
        choices=["float32", "float64"],
        help="the dtype both systems compute in (default float64; float32 drifts "
        "apart over the steps, see the module's docstring)",
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=RTOL,
        help="largest relative loss difference a step may have (default 1e-4)",
    )
    parser.add_argument(
        "--cifar10",
        action="store_true",
        help="the first steps*batch-size CIFAR-10 training images instead of "
        "synthetic ones (bnpy's loader: $BNPY_DATA, the Keras cache, a "
        "download)",
    )
    args = parser.parse_args(argv)
    groups = args.groups.split(",")
    unknown = [g for g in groups if g not in article.GROUPS]
    if unknown or args.steps < 1 or args.batch_size < 1:
        parser.error(
            "--groups takes {} (got {}); --steps and --batch-size must be >= 1".format(
                ", ".join(article.GROUPS), args.groups
            )
        )
    n = args.steps * args.batch_size
    x, y = cifar10_data(n) if args.cifar10 else synthetic_data(n, seed=args.seed)
    failed = []
    for group in groups:
        result = run_group(group, x, y, args.steps, args.batch_size, args.seed, args.dtype)
        print(report(result), flush=True)
        if (
            max(relative_loss_differences(result)) > args.rtol
            or result["layer_differences"]
            or result["params_bnpy"] != result["params_keras"]
        ):
            failed.append(group)
    print(
        "{}: {}".format(
            "DIFFERENT" if failed else "AGREE",
            ", ".join(failed)
            if failed
            else "every group within rtol {:g} for {} steps".format(args.rtol, args.steps),
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
