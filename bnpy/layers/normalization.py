"""Batch Normalization layer (Ioffe & Szegedy 2015) with Keras 2.0's semantics, on bnpy's C core."""

import contextlib
import math

import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..engine import Layer
from ..legacy.interfaces import legacy_batchnorm_support
from ._bn_options import (
    SqrtInitializer,
    real_in_range,
    renorm_clipping_config,
    renorm_corrections,
)


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

    Variants (docs/batchnorm.md has the formulas):

    - ``momentum=None``: the moving statistics are the plain (cumulative) average of every
      training batch since the start or the last ``reset_states()`` (PyTorch's ``momentum=None``):
      the n-th batch is folded in with ``momentum = 1 − 1/n``. The count n is the non-trainable
      int64 weight ``num_batches_tracked`` (shape (1,)) (saved with the model), after ``moving_variance``.
      Which variance is averaged follows ``unbiased_moving_variance`` (PyTorch: unbiased, so
      ``unbiased_moving_variance=True`` matches it exactly).
    - ``renorm=True``: Batch Renormalization (Ioffe 2017) as tf.keras does it, with
      ``renorm_clipping`` ({'rmin', 'rmax', 'dmax'}, missing keys: 0, ∞, ∞) and
      ``renorm_momentum``; in training y = γ·(x̂·r + d) + β with r = clip(σ_B/s, rmin, rmax),
      d = clip((μ_B − renorm_mean)/s, −dmax, dmax), s = max(renorm_stddev, √ε), r and d constants
      in the backward. Extra non-trainable weights in tf.keras's order: moving_stddev,
      renorm_mean, renorm_stddev. Inference is unchanged (moving mean and variance). With
      ``virtual_batch_size``, r and d come from the virtual batches' averaged statistics.
    - ``virtual_batch_size=V``: ghost batch normalization as tf.keras does it: a training batch
      of N = V·G samples is normalized as G virtual batches of V samples, each with its own
      statistics, virtual batch g holding samples g, g + G, g + 2G, … (tf.keras's reshape to
      (V, G, ...)); N must be a multiple of V. The moving statistics are updated once per batch
      with the averages of the virtual batches' means and variances. Inference is unchanged.
    - ``track_running_stats=False``: no moving statistics at all (no such weights, PyTorch's
      flag): training and inference both normalize with the batch's statistics.

    PyTorch mapping: ``torch.nn.BatchNorm2d(C, eps=e, momentum=p)`` is
    ``BatchNormalization(axis=1, epsilon=e, momentum=1 − p, unbiased_moving_variance=True)`` (PyTorch's
    momentum weights the *new* batch value, bnpy's and Keras's the old moving value; ε has the
    same place, inside the root; PyTorch's defaults 1e-5 and 0.1 ↔ epsilon=1e-5, momentum=0.9).

    ``trainable=False`` freezes the layer completely: it runs in inference mode even inside
    ``fit`` (moving statistics used, nothing updated, γ and β get no gradient), which is what
    tf.keras 2 and Keras 3 do. Keras 2.0 differed: a frozen layer still normalized with the batch
    statistics in ``fit`` and still updated its moving statistics (only γ and β were frozen).

    ``synchronized=True`` (Keras 3's name): in data-parallel training over MPI
    (:mod:`bnpy.distributed`, after its ``init()`` in a job of several processes) μ_B and σ²_B
    are those of the whole global batch, combined from every process's shard in float64, and
    the moving statistics are the same on every process; in one process it is the ordinary layer.
    Not combined with ``renorm``, ``virtual_batch_size`` or ``track_running_stats=False``.
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
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        virtual_batch_size=None,
        track_running_stats=True,
        synchronized=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "BatchNormalization"
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
            raise ValueError("BatchNormalization: `axis` must be an integer, got {!r}".format(axis))
        self.axis = int(axis)
        self.momentum = real_in_range(owner, "momentum", momentum, 0.0, 1.0, allow_none=True)
        self.epsilon = real_in_range(owner, "epsilon", epsilon, 0.0, math.inf)
        if not self.epsilon > 0.0:
            raise ValueError("BatchNormalization: `epsilon` must be > 0, got {!r}".format(epsilon))
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
        self.renorm = bool(renorm)
        self.renorm_clipping = renorm_clipping_config(renorm_clipping)
        self.renorm_momentum = real_in_range(owner, "renorm_momentum", renorm_momentum, 0.0, 1.0)
        if virtual_batch_size is not None and (
            isinstance(virtual_batch_size, (bool, np.bool_))
            or not isinstance(virtual_batch_size, (int, np.integer))
            or virtual_batch_size < 1
        ):
            raise ValueError(
                "BatchNormalization: `virtual_batch_size` must be a positive integer or None, "
                "got {!r}".format(virtual_batch_size)
            )
        self.virtual_batch_size = None if virtual_batch_size is None else int(virtual_batch_size)
        self.track_running_stats = bool(track_running_stats)
        if self.renorm and not self.track_running_stats:
            raise ValueError(
                "BatchNormalization: `renorm=True` measures each batch against moving "
                "statistics, which `track_running_stats=False` does not keep"
            )
        self.synchronized = bool(synchronized)
        if self.synchronized and (
            self.renorm or self.virtual_batch_size is not None or not self.track_running_stats
        ):
            raise ValueError(
                "BatchNormalization: `synchronized=True` is not supported together with renorm, "
                "virtual_batch_size or track_running_stats=False"
            )
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
        batch = input_shape[0]
        if self.virtual_batch_size is not None and batch is not None:
            self._check_virtual_batches(batch)
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
        if not self.track_running_stats:
            return
        self.moving_mean = self.add_weight(
            shape, self.moving_mean_initializer, "moving_mean", trainable=False
        )
        self.moving_variance = self.add_weight(
            shape, self.moving_variance_initializer, "moving_variance", trainable=False
        )
        if self.renorm:
            # tf.keras tracks the inference statistics as a standard deviation under renorm
            stddev_initializer = SqrtInitializer(self.moving_variance_initializer)
            self.moving_stddev = self.add_weight(
                shape, stddev_initializer, "moving_stddev", trainable=False
            )
            self.renorm_mean = self.add_weight(
                shape, self.moving_mean_initializer, "renorm_mean", trainable=False
            )
            self.renorm_stddev = self.add_weight(
                shape, stddev_initializer, "renorm_stddev", trainable=False
            )
        if self.momentum is None:
            # shape (1,): add_weight's arrays have at least one dimension
            self.num_batches_tracked = self.add_weight(
                (1,),
                initializers.get("zeros"),
                "num_batches_tracked",
                trainable=False,
                dtype="int64",
            )

    def _check_virtual_batches(self, batch):
        if batch % self.virtual_batch_size:
            raise ValueError(
                "{}: the batch size {} is not a multiple of virtual_batch_size {}".format(
                    self.name, batch, self.virtual_batch_size
                )
            )

    def check_training_batch_size(self, batch_size):
        if self.virtual_batch_size is not None and (self.trainable or not self.track_running_stats):
            self._check_virtual_batches(batch_size)
        if not (self.unbiased_moving_variance and self.trainable and self.track_running_stats):
            return
        count = batch_size * self._values_per_sample()
        if self.virtual_batch_size is not None:
            count = min(count, self.virtual_batch_size * self._values_per_sample())
        if count < 2:
            raise ValueError(
                "{}: unbiased_moving_variance needs at least 2 values per channel in "
                "every training batch, but a batch of {} gives {}; choose a batch_size "
                "that does not leave a last batch of {} sample(s)".format(
                    self.name, batch_size, count, batch_size
                )
            )

    def _values_per_sample(self):
        axis = self.axis % len(self.input_shape)
        return int(np.prod([d for i, d in enumerate(self.input_shape[1:], 1) if i != axis]))

    # -- running ---------------------------------------------------------------------------------
    def forward(self, x, training=False):
        self._pending = None
        self._cache = None
        updating = training and self.trainable and self.track_running_stats
        if (training and self.trainable) or not self.track_running_stats:
            y, backward, statistics = self._normalize_with_batch_statistics(
                x, renorm=self.renorm and updating
            )
            if training:  # a frozen layer without running stats still passes gradients on
                self._cache = backward
            if updating:
                mean, var, count = statistics
                if self.unbiased_moving_variance and count < 2:
                    raise ValueError(
                        "{}: unbiased_moving_variance needs at least 2 values per channel "
                        "in a training batch, got {} (input shape {})".format(
                            self.name, count, x.shape
                        )
                    )
                self._pending = statistics
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
        if training:  # frozen layer inside fit: the moving statistics are constants
            moving_mean, moving_variance = self.moving_mean, self.moving_variance
            self._cache = lambda dy: ops.batch_norm_inference_backward(
                dy,
                x,
                self.gamma,
                moving_mean,
                moving_variance,
                axis=self.axis,
                epsilon=self.epsilon,
            )
        return y

    def _normalize_with_batch_statistics(self, x, renorm):
        """The statistics step of training: normalize x with its own batch statistics.

        Returns ``(y, backward, (mean, var, count))``: ``backward(dy) -> (dx, dgamma, dbeta)``
        is the gradient of this very forward, and mean, var (C,) and count (values per channel
        behind them) are what the moving statistics fold in. With virtual batches, mean and var
        are the averages of the virtual batches' ones (as tf.keras) and count that of one
        virtual batch. A subclass that gathers statistics elsewhere overrides this one method.
        """
        gamma, beta, axis, epsilon = self.gamma, self.beta, self.axis, self.epsilon
        if self.synchronized:  # the global batch's statistics (bnpy.distributed)
            from ..distributed import _sync_bn

            context = _sync_bn.active_context()
            if context is not None:
                return _sync_bn.normalize(self, x, context)
        if self.virtual_batch_size is not None:
            self._check_virtual_batches(len(x))
            if renorm:
                return self._ghost_renorm(x)
            size = self.virtual_batch_size
            y, means, variances = ops.ghost_batch_norm_forward(
                x, gamma, beta, size, axis=axis, epsilon=epsilon
            )
            statistics = (
                means.mean(axis=0, dtype=np.float64).astype(means.dtype),
                variances.mean(axis=0, dtype=np.float64).astype(variances.dtype),
                size * (x.size // (len(x) * x.shape[axis])),
            )
            return (
                y,
                lambda dy: ops.ghost_batch_norm_backward(
                    dy, x, gamma, means, variances, size, axis=axis, epsilon=epsilon
                ),
                statistics,
            )
        count = x.size // x.shape[axis]
        if renorm:
            clip = self.renorm_clipping
            y, mean, var, r, d = ops.batch_renorm_forward(
                x,
                gamma,
                beta,
                self.renorm_mean,
                self.renorm_stddev,
                axis=axis,
                epsilon=epsilon,
                rmin=clip.get("rmin", 0.0),
                rmax=clip.get("rmax", math.inf),
                dmax=clip.get("dmax", math.inf),
            )
            return (
                y,
                lambda dy: ops.batch_renorm_backward(
                    dy, x, gamma, mean, var, r, d, axis=axis, epsilon=epsilon
                ),
                (mean, var, count),
            )
        y, mean, var = ops.batch_norm_forward(x, gamma, beta, axis=axis, epsilon=epsilon)
        return (
            y,
            lambda dy: ops.batch_norm_backward(dy, x, gamma, mean, var, axis=axis, epsilon=epsilon),
            (mean, var, count),
        )

    def _ghost_renorm(self, x):
        """Renorm with virtual batches, as tf.keras composes them: each virtual batch normalized
        with its own statistics, x̂_g, then y = γ·(x̂_g·r + d) + β with r and d from the virtual
        batches' averaged mean and variance (those that the moving statistics fold in)::

            μ = (1/G) Σ_g μ_g,  σ² = (1/G) Σ_g σ²_g,  r, d = the corrections of (μ, σ²)

        The backward is the ghost backward with γ·r for γ, and dγ = r·Σdy·x̂ + d·Σdy."""
        axis, epsilon, size = self.axis, self.epsilon, self.virtual_batch_size
        y, means, variances = ops.ghost_batch_norm_forward(
            x, None, None, size, axis=axis, epsilon=epsilon
        )
        mean = means.mean(axis=0, dtype=np.float64)
        var = variances.mean(axis=0, dtype=np.float64)
        r, d = renorm_corrections(
            mean, var, self.renorm_mean, self.renorm_stddev, epsilon, self.renorm_clipping
        )
        gamma = 1.0 if self.gamma is None else self.gamma.astype(np.float64)
        beta = 0.0 if self.beta is None else self.beta.astype(np.float64)
        shape = [1] * x.ndim
        shape[axis] = -1
        scale = np.asarray(gamma * r, dtype=y.dtype)  # the effective γ of the backward too
        y *= scale.reshape(shape)
        y += np.asarray(gamma * d + beta, dtype=y.dtype).reshape(shape)

        def backward(dy):
            dx, dxhat, dbeta = ops.ghost_batch_norm_backward(
                dy, x, scale, means, variances, size, axis=axis, epsilon=epsilon
            )
            dgamma = r * dxhat.astype(np.float64) + d * dbeta.astype(np.float64)
            return dx, dgamma.astype(dbeta.dtype), dbeta

        count = size * (x.size // (len(x) * x.shape[axis]))
        return y, backward, (mean.astype(y.dtype), var.astype(y.dtype), count)

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("{}: backward called without a training forward".format(self.name))
        backward, self._cache = self._cache, None
        dx, dgamma, dbeta = backward(dy)
        self.gradients = []
        if self.trainable:
            if self.scale:
                self.gradients.append(dgamma)
            if self.center:
                self.gradients.append(dbeta)
        return dx if self.need_input_gradient else None

    # -- moving statistics -----------------------------------------------------------------------
    def commit_updates(self):
        """Fold the last training batch's statistics into the moving ones (once per batch)."""
        if self._pending is None:
            return
        mean, var, count = self._pending
        self._pending = None
        if self.momentum is None:  # cumulative average: the n-th batch gets weight 1/n
            batches = int(self.num_batches_tracked[0]) + 1
            keep = 1.0 - 1.0 / batches
        else:
            keep = self.momentum
        count = count if self.unbiased_moving_variance else None
        if self.renorm:
            self._commit_renorm(mean, var, count, keep)
        else:
            ops.update_moving_stats(
                self.moving_mean, self.moving_variance, mean, var, momentum=keep, count=count
            )
        if self.momentum is None:
            self.num_batches_tracked[...] = batches

    def _commit_renorm(self, mean, var, count, keep):
        """tf.keras's renorm updates: the renorm statistics follow the batch's mean and
        σ_B = √(σ²_B + ε) with renorm_momentum; moving_mean and moving_stddev follow them with
        momentum, and moving_variance = max(moving_stddev² − ε, 0)."""
        var64 = var.astype(np.float64)
        batch_stddev = np.sqrt(var64 + self.epsilon).astype(var.dtype)
        ops.update_moving_stats(
            self.renorm_mean, self.renorm_stddev, mean, batch_stddev, momentum=self.renorm_momentum
        )
        if count is not None and count > 1:  # the unbiased variance for inference only
            var64 = var64 * (count / (count - 1.0))
        inference_stddev = np.sqrt(var64 + self.epsilon).astype(var.dtype)
        ops.update_moving_stats(
            self.moving_mean, self.moving_stddev, mean, inference_stddev, momentum=keep
        )
        stddev64 = self.moving_stddev.astype(np.float64)
        self.moving_variance[...] = np.maximum(stddev64 * stddev64 - self.epsilon, 0.0)

    def discard_updates(self):
        self._pending = None

    def reset_states(self):
        """Start the moving statistics afresh (PyTorch's ``reset_running_stats``): moving mean
        and variance (and the renorm statistics) from their initializers, by default 0 and 1,
        and ``num_batches_tracked`` 0. In place: references to the arrays stay valid. Nothing to
        do without running statistics."""
        if not (self.built and self.track_running_stats):
            return
        self._pending = None
        for param in self.non_trainable_params:
            if param.name == "num_batches_tracked":
                param.value[...] = 0
        initial = {
            "moving_mean": self.moving_mean_initializer,
            "moving_variance": self.moving_variance_initializer,
            "renorm_mean": self.moving_mean_initializer,
        }
        for name, initializer in initial.items():
            target = getattr(self, name, None)
            if target is not None:
                target[...] = initializer(target.shape, target.dtype)
        if self.renorm:
            stddev = np.sqrt(self.moving_variance.astype(np.float64))
            self.moving_stddev[...] = stddev
            self.renorm_stddev[...] = stddev

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
            renorm=self.renorm,
            renorm_clipping=dict(self.renorm_clipping),
            renorm_momentum=self.renorm_momentum,
            virtual_batch_size=self.virtual_batch_size,
            track_running_stats=self.track_running_stats,
            synchronized=self.synchronized,
        )


# ------------------------------------------------------------------------------------------------
# Population statistics for inference (the paper's Algorithm 2)
# ------------------------------------------------------------------------------------------------
def compute_population_statistics(model, x, batch_size=32):
    """The population statistics of every trainable BatchNormalization layer of ``model`` that
    keeps moving statistics, over ``x``: ``{layer name: (mean, variance)}``, float64 arrays of the layer's channel count.

    Ioffe & Szegedy (2015), Algorithm 2: with the weights fixed, the model runs forward on
    ``x`` in consecutive mini-batches of ``batch_size`` exactly as in training (every BN
    normalizes with its batch statistics, so each layer sees the inputs it saw in training;
    other layers run in training mode too, e.g. Dropout drops, as torch's
    ``swa_utils.update_bn`` does). Per channel, with μ_b, σ²_b the batch mean and biased
    variance of mini-batch b and m_b its values per channel::

        E[x]   = Σ_b m_b·μ_b / Σ_b m_b
        Var[x] = Σ_b m_b·(m_b/(m_b − 1))·σ²_b / Σ_b m_b        (batches with m_b = 1 left out)

    which for equal batches is the paper's E_B[μ_B] and m/(m − 1)·E_B[σ²_B]. Nothing in the
    model changes: the moving statistics are not updated, and only a renorm layer reads them, for
    its r and d corrections as in training (Algorithm 2 predates renorm). Keras 2.0 (and bnpy's
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
        layer
        for layer in model.layers
        if isinstance(layer, BatchNormalization) and layer.trainable and layer.track_running_stats
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


def _moving_statistics(layer):
    """The arrays that hold a BN layer's inference statistics: moving mean and variance, and on a
    renorm layer moving_stddev too, from which its updates derive the variance (var = s² − ε)."""
    arrays = [layer.moving_mean, layer.moving_variance]
    if layer.renorm:
        arrays.append(layer.moving_stddev)
    return arrays


def set_population_statistics(model, x, batch_size=32):
    """Replace every trainable BN layer's moving mean and variance by its population statistics
    over ``x`` (see compute_population_statistics); on a renorm layer moving_stddev becomes
    √(var + ε), so that its next update starts from them too. Returns the previous values,
    ``{layer name: (moving_mean, moving_variance[, moving_stddev])}`` (copies), for
    restore_moving_statistics."""
    with _model_lock(model):
        statistics = compute_population_statistics(model, x, batch_size)
        previous = {}
        for layer in model.layers:
            if layer.name in statistics:
                arrays = _moving_statistics(layer)
                previous[layer.name] = tuple(a.copy() for a in arrays)
                mean, var = statistics[layer.name]
                arrays[0][...] = mean
                arrays[1][...] = var
                if layer.renorm:
                    arrays[2][...] = np.sqrt(var + layer.epsilon)
    return previous


def restore_moving_statistics(model, previous):
    """Put back the moving statistics that set_population_statistics returned (bit for bit)."""
    with _model_lock(model):
        for layer in model.layers:
            if layer.name in previous:
                for array, saved in zip(_moving_statistics(layer), previous[layer.name]):
                    array[...] = saved


def _model_lock(model):
    """The lock a Sequential's compute methods take turns on; none for other layer stacks."""
    return getattr(model, "_turns", None) or contextlib.nullcontext()
