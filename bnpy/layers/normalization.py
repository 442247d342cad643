"""Batch Normalization layer (Ioffe & Szegedy 2015) with Keras 2.0's semantics, on bnpy's C core."""

import contextlib

import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..engine import Layer
from ..legacy.interfaces import legacy_batchnorm_support


class BatchNormalization(Layer):
    """Normalize each channel over the batch (and spatial axes), then scale and shift.

    ``axis`` is the channel axis that is *kept* (-1 for channels_last, 1 after a channels_first
    Conv2D); statistics reduce over every other axis: over (N, H, W) after a convolution, over N
    after a Dense layer. With m = the number of values per channel:

    Training (``fit``, ``train_on_batch``)::

        μ_B  = (1/m) Σ x                     σ²_B = (1/m) Σ (x − μ_B)²   (biased, as tf.nn.moments)
        y    = γ · (x − μ_B) / √(σ²_B + ε) + β        (ε inside the square root)
        moving_mean     ← momentum · moving_mean     + (1 − momentum) · μ_B
        moving_variance ← momentum · moving_variance + (1 − momentum) · σ²_B

    and the gradient flows through μ_B and σ²_B (x̂ = (x − μ_B)/√(σ²_B + ε))::

        dx = γ / (m √(σ²_B + ε)) · (m·dy − Σdy − x̂ · Σ(dy·x̂)),   dγ = Σ dy·x̂,   dβ = Σ dy

    Inference (``evaluate``, ``predict``, validation inside ``fit``)::

        y = γ · (x − moving_mean) / √(moving_variance + ε) + β       (nothing is updated)

    The moving statistics are updated once per training batch, after that batch's whole backward
    pass, together with the optimizer step. ``unbiased_moving_variance=True`` feeds the paper's
    population estimate m/(m−1)·σ²_B into moving_variance instead (PyTorch, cuDNN and Caffe do
    this; Keras 2.0 does not; it needs m ≥ 2); normalization always uses the biased σ²_B.

    Defaults are Keras 2.0's: axis=-1, momentum=0.99, epsilon=1e-3, center, scale, γ=1, β=0,
    moving mean 0 and variance 1. Weights in Keras's order: [gamma, beta, moving_mean,
    moving_variance] (gamma only with ``scale``, beta only with ``center``); the moving
    statistics are non-trainable. ``gamma_regularizer``/``beta_regularizer`` and the constraints
    act as on any weight. Keras 1's ``beta_init``/``gamma_init`` are converted with a warning,
    ``mode=0`` is accepted, ``mode=1``/``mode=2`` raise TypeError.

    PyTorch mapping: ``torch.nn.BatchNorm2d(C, eps=e, momentum=p)`` is
    ``BatchNormalization(axis=1, epsilon=e, momentum=1 − p, unbiased_moving_variance=True)`` (PyTorch's
    momentum weights the *new* batch value, bnpy's and Keras's the old moving value; ε has the
    same place, inside the root; PyTorch's defaults 1e-5 and 0.1 ↔ epsilon=1e-5, momentum=0.9).

    ``trainable=False`` freezes the layer completely: it runs in inference mode even inside
    ``fit`` (moving statistics used, nothing updated, γ and β get no gradient), which is what
    tf.keras 2 and Keras 3 do. Keras 2.0 differed: a frozen layer still normalized with the batch
    statistics in ``fit`` and still updated its moving statistics (only γ and β were frozen).
    """

    @legacy_batchnorm_support
    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        unbiased_moving_variance=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError("BatchNormalization: `axis` must be an integer, got {!r}".format(axis))
        if not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(
                "BatchNormalization: `momentum` must be in [0, 1], got {!r}".format(momentum)
            )
        if not float(epsilon) > 0.0:
            raise ValueError("BatchNormalization: `epsilon` must be > 0, got {!r}".format(epsilon))
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.unbiased_moving_variance = bool(unbiased_moving_variance)
        self._cache = None
        self._pending = None

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(
                "{}: `axis` {} is not a non-batch axis of an input of shape {}".format(
                    self.name, self.axis, input_shape
                )
            )
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(
                "Axis " + str(self.axis) + " of input tensor should have a defined "
                "dimension but the layer received an input with shape "
                + str(tuple(input_shape))
                + "."
            )
        shape = (channels,)
        self.gamma = (
            self.add_weight(
                shape,
                self.gamma_initializer,
                "gamma",
                self.gamma_regularizer,
                constraint=self.gamma_constraint,
            )
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight(
                shape,
                self.beta_initializer,
                "beta",
                self.beta_regularizer,
                constraint=self.beta_constraint,
            )
            if self.center
            else None
        )
        self.moving_mean = self.add_weight(
            shape, self.moving_mean_initializer, "moving_mean", trainable=False
        )
        self.moving_variance = self.add_weight(
            shape, self.moving_variance_initializer, "moving_variance", trainable=False
        )

    def check_training_batch_size(self, batch_size):
        if not (self.unbiased_moving_variance and self.trainable):
            return
        per_sample = int(
            np.prod(
                [
                    d
                    for i, d in enumerate(self.input_shape[1:], 1)
                    if i != self.axis % len(self.input_shape)
                ]
            )
        )
        if batch_size * per_sample < 2:
            raise ValueError(
                "{}: unbiased_moving_variance needs at least 2 values per channel in "
                "every training batch, but a batch of {} gives {}; choose a batch_size "
                "that does not leave a last batch of {} sample(s)".format(
                    self.name, batch_size, batch_size * per_sample, batch_size
                )
            )

    def forward(self, x, training=False):
        self._pending = None
        if training and self.trainable:
            count = x.size // x.shape[self.axis]
            if self.unbiased_moving_variance and count < 2:
                raise ValueError(
                    "{}: unbiased_moving_variance needs at least 2 values per channel "
                    "in a training batch, got {} (input shape {})".format(self.name, count, x.shape)
                )
            y, mean, var = ops.batch_norm_forward(
                x, self.gamma, self.beta, axis=self.axis, epsilon=self.epsilon
            )
            self._cache = (x, mean, var, ops.batch_norm_backward)
            self._pending = (mean, var, count)
            return y
        y = ops.batch_norm_inference(
            x,
            self.gamma,
            self.beta,
            self.moving_mean,
            self.moving_variance,
            axis=self.axis,
            epsilon=self.epsilon,
        )
        # frozen layer inside fit: backward treats the moving statistics as constants
        self._cache = (
            (x, self.moving_mean, self.moving_variance, ops.batch_norm_inference_backward)
            if training
            else None
        )
        return y

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("{}: backward called without a training forward".format(self.name))
        x, mean, var, backward = self._cache
        self._cache = None
        dx, dgamma, dbeta = backward(
            dy, x, self.gamma, mean, var, axis=self.axis, epsilon=self.epsilon
        )
        self.gradients = []
        if self.trainable:
            if self.scale:
                self.gradients.append(dgamma)
            if self.center:
                self.gradients.append(dbeta)
        return dx if self.need_input_gradient else None

    def commit_updates(self):
        """Fold the last training batch's statistics into the moving ones (once per batch)."""
        if self._pending is None:
            return
        mean, var, count = self._pending
        self._pending = None
        ops.update_moving_stats(
            self.moving_mean,
            self.moving_variance,
            mean,
            var,
            momentum=self.momentum,
            count=count if self.unbiased_moving_variance else None,
        )

    def discard_updates(self):
        self._pending = None

    def get_config(self):
        return dict(
            super().get_config(),
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=self.beta_initializer,
            gamma_initializer=self.gamma_initializer,
            moving_mean_initializer=self.moving_mean_initializer,
            moving_variance_initializer=self.moving_variance_initializer,
            beta_regularizer=self.beta_regularizer,
            gamma_regularizer=self.gamma_regularizer,
            beta_constraint=self.beta_constraint,
            gamma_constraint=self.gamma_constraint,
            unbiased_moving_variance=self.unbiased_moving_variance,
        )


# ------------------------------------------------------------------------------------------------
# Population statistics for inference (the paper's Algorithm 2)
# ------------------------------------------------------------------------------------------------
def compute_population_statistics(model, x, batch_size=32):
    """The population statistics of every trainable BatchNormalization layer of ``model`` over
    ``x``: ``{layer name: (mean, variance)}``, float64 arrays of the layer's channel count.

    Ioffe & Szegedy (2015), Algorithm 2: with the weights fixed, the model runs forward on
    ``x`` in consecutive mini-batches of ``batch_size`` exactly as in training (every BN
    normalizes with its batch statistics, so each layer sees the inputs it saw in training;
    other layers run in training mode too, e.g. Dropout drops, as torch's
    ``swa_utils.update_bn`` does). Per channel, with μ_b, σ²_b the batch mean and biased
    variance of mini-batch b and m_b its values per channel::

        E[x]   = Σ_b m_b·μ_b / Σ_b m_b
        Var[x] = Σ_b m_b·(m_b/(m_b − 1))·σ²_b / Σ_b m_b        (batches with m_b = 1 left out)

    which for equal batches is the paper's E_B[μ_B] and m/(m − 1)·E_B[σ²_B]. Nothing in the
    model changes: the moving statistics are neither read nor updated. Keras 2.0 (and bnpy's
    ``fit``) instead keep exponential moving averages (``momentum``), which after few batches
    still remember their initial values and lag behind the weights.
    """
    from .. import _inputs, _memory, _threads

    x = _inputs.standardize_x(model, x, "input")
    if len(x) == 0:
        raise ValueError("compute_population_statistics: x holds no samples")
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(
            "compute_population_statistics: batch_size must be >= 1, got {}".format(batch_size)
        )
    layers = [
        layer for layer in model.layers if isinstance(layer, BatchNormalization) and layer.trainable
    ]
    sums = {layer.name: [0.0, 0.0, 0, 0] for layer in layers}  # Σm·μ, Σm·s², Σm (mean), Σm (var)
    # the model's lock (Sequential._turns, re-entrant): a fit in another thread finishes its step
    with _threads.fit_threads(), _memory.array_cache(), _model_lock(model):
        try:
            for start in range(0, len(x), batch_size):
                out = x[start : start + batch_size]
                for layer in model.layers:
                    out = layer.forward(out, training=True)
                    if layer.name in sums:
                        mean, var, count = layer._pending
                        acc = sums[layer.name]
                        acc[0] = acc[0] + count * mean.astype(np.float64)
                        acc[2] += count
                        if count > 1:
                            unbiased = (count / (count - 1.0)) * var.astype(np.float64)
                            acc[1] = acc[1] + count * unbiased
                            acc[3] += count
        finally:
            for layer in model.layers:  # no pending update, no backward cache left behind
                layer.discard_updates()
                if isinstance(layer, BatchNormalization):
                    layer._cache = None
    result = {}
    for name, (mean_sum, var_sum, mean_count, var_count) in sums.items():
        if var_count == 0:
            raise ValueError(
                "compute_population_statistics: {} saw one value per channel in "
                "every batch; a variance needs batches of at least 2 values per "
                "channel (batch_size {} over {} samples)".format(name, batch_size, len(x))
            )
        result[name] = (mean_sum / mean_count, var_sum / var_count)
    return result


def set_population_statistics(model, x, batch_size=32):
    """Replace every trainable BN layer's moving mean and variance by its population statistics
    over ``x`` (see compute_population_statistics); returns the previous ones,
    ``{layer name: (moving_mean, moving_variance)}`` (copies), for restore_moving_statistics."""
    with _model_lock(model):
        statistics = compute_population_statistics(model, x, batch_size)
        previous = {}
        for layer in model.layers:
            if layer.name in statistics:
                previous[layer.name] = (layer.moving_mean.copy(), layer.moving_variance.copy())
                mean, var = statistics[layer.name]
                layer.moving_mean[...] = mean
                layer.moving_variance[...] = var
    return previous


def restore_moving_statistics(model, previous):
    """Put back the moving statistics that set_population_statistics returned (bit for bit)."""
    with _model_lock(model):
        for layer in model.layers:
            if layer.name in previous:
                layer.moving_mean[...], layer.moving_variance[...] = previous[layer.name]


def _model_lock(model):
    """The lock a Sequential's compute methods take turns on; none for other layer stacks."""
    return getattr(model, "_turns", None) or contextlib.nullcontext()
