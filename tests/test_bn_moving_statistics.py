"""How BatchNormalization keeps its moving statistics, besides the exponential average of plain
batch norm: the cumulative moving average (momentum=None), reset_states, and none at all
(track_running_stats=False: batch statistics in inference too). Against the float64 twins of
tests/reference_bn_variants.py, plain batch norm and PyTorch where it is importable."""

import numpy as np
import pytest
import reference as ref
import reference_bn_variants as twin
from bn_variant_checks import random_data
from reference_layers import check_layer_gradients, one_thread, requires_bn

from bnpy.layers import BatchNormalization, Dense
from bnpy.models import Sequential
from bnpy.optimizers import SGD

pytestmark = requires_bn


def _train_step(layer, x):
    """One training step of a layer alone: forward, a backward of ones, the moving update."""
    layer.forward(x, training=True)
    layer.backward(np.ones_like(x))
    layer.commit_updates()


def _first_step_sets_the_batch_statistics(layer, x, rtol):
    """A training step on x as the first batch the cumulative average counts (weight 1/1): the
    moving statistics become x's batch statistics."""
    _train_step(layer, x)
    mean, var, _ = twin.batch_statistics(x)
    np.testing.assert_allclose(layer.moving_mean, mean, rtol=rtol)
    np.testing.assert_allclose(layer.moving_variance, var, rtol=rtol)


# ---- momentum=None: the cumulative moving average ----------------------------------------------


@pytest.mark.parametrize("unbiased", [False, True])
def test_cumulative_average_is_the_plain_average_of_the_batches(unbiased):
    rng = np.random.default_rng(1)
    layer = BatchNormalization(momentum=None, unbiased_moving_variance=unbiased, dtype="float64")
    layer.build_for((None, 4, 3))
    means, variances = [], []
    for step in range(5):
        x = random_data(rng, (6 + step, 4, 3), offset=step)  # batches of different sizes and levels
        mean, var, count = twin.batch_statistics(x)
        means.append(mean)
        variances.append(var * count / (count - 1) if unbiased else var)
        _train_step(layer, x)
        assert int(layer.num_batches_tracked[0]) == step + 1
        np.testing.assert_allclose(layer.moving_mean, twin.cumulative_average(means), rtol=1e-12)
        np.testing.assert_allclose(
            layer.moving_variance, twin.cumulative_average(variances), rtol=1e-12
        )


def test_cumulative_average_first_batch_replaces_the_initial_values():
    rng = np.random.default_rng(2)
    layer = BatchNormalization(momentum=None, dtype="float64")
    layer.build_for((None, 3))
    _first_step_sets_the_batch_statistics(layer, random_data(rng, (8, 3)), rtol=1e-13)


def test_num_batches_tracked_is_a_non_trainable_int64_weight_after_keras_weights():
    layer = BatchNormalization(momentum=None)
    layer.build_for((None, 5))
    names = [n.split("/")[1] for n in layer.weight_names]
    assert names == [
        "gamma:0",
        "beta:0",
        "moving_mean:0",
        "moving_variance:0",
        "num_batches_tracked:0",
    ]
    assert layer.num_batches_tracked.dtype == np.int64 and layer.num_batches_tracked.shape == (1,)
    assert len(layer.trainable_weights) == 2
    plain = BatchNormalization()
    plain.build_for((None, 5))
    assert not hasattr(plain, "num_batches_tracked") and len(plain.weights) == 4


def test_momentum_none_is_not_counted_when_a_step_is_discarded():
    layer = BatchNormalization(momentum=None, dtype="float64")
    layer.build_for((None, 2))
    x = np.arange(8.0).reshape(4, 2)
    layer.forward(x, training=True)
    layer.discard_updates()
    layer.commit_updates()
    assert int(layer.num_batches_tracked[0]) == 0
    np.testing.assert_array_equal(layer.moving_mean, 0)


@pytest.mark.parametrize("renorm", [False, True])
def test_reset_states_restarts_the_moving_statistics(renorm):
    rng = np.random.default_rng(3)
    layer = BatchNormalization(momentum=None, renorm=renorm, dtype="float64")
    layer.build_for((None, 3))
    moving_mean = layer.moving_mean
    for _ in range(3):
        x = random_data(rng, (5, 3))
        _train_step(layer, x)
    assert int(layer.num_batches_tracked[0]) == 3 and np.all(layer.moving_mean != 0)
    layer.reset_states()
    assert layer.moving_mean is moving_mean  # in place
    np.testing.assert_array_equal(layer.moving_mean, 0)
    np.testing.assert_array_equal(layer.moving_variance, 1)
    assert int(layer.num_batches_tracked[0]) == 0
    if renorm:
        for name in ("moving_stddev", "renorm_stddev"):
            np.testing.assert_array_equal(getattr(layer, name), 1)
        np.testing.assert_array_equal(layer.renorm_mean, 0)
    # after the reset, the next batch alone makes the moving statistics (weight 1/1)
    _first_step_sets_the_batch_statistics(layer, random_data(rng, (7, 3)), rtol=1e-12)


def test_reset_states_uses_the_moving_initializers_and_keeps_momentum_layers_working():
    layer = BatchNormalization(moving_variance_initializer="zeros", dtype="float64")
    layer.build_for((None, 2))
    layer.moving_variance[...] = 5
    layer.reset_states()
    np.testing.assert_array_equal(layer.moving_variance, 0)
    BatchNormalization(track_running_stats=False).reset_states()  # unbuilt, no statistics: no-op


@pytest.mark.parametrize(
    "value, error",
    [
        ("0.9", TypeError),
        (True, TypeError),
        ([0.9], TypeError),
        (1.5, ValueError),
        (-0.1, ValueError),
        (float("nan"), ValueError),
    ],
)
def test_bad_momentum_is_named(value, error):
    with pytest.raises(error, match="`momentum`"):
        BatchNormalization(momentum=value)
    with pytest.raises(error, match="`renorm_momentum`"):
        BatchNormalization(renorm=True, renorm_momentum=value)


@pytest.mark.parametrize(
    "value, error", [(None, TypeError), ("1e-3", TypeError), (0.0, ValueError)]
)
def test_bad_epsilon_is_named(value, error):
    with pytest.raises(error, match="`epsilon`"):
        BatchNormalization(epsilon=value)


def test_cumulative_average_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = BatchNormalization(
        axis=1, momentum=None, epsilon=1e-5, unbiased_moving_variance=True, dtype="float64"
    )
    layer.build_for((None, 3, 4, 4))
    module = torch.nn.BatchNorm2d(3, momentum=None, eps=1e-5).double().train()
    for _ in range(4):
        x = random_data(rng, (5, 3, 4, 4))
        y = layer.forward(x, training=True)
        layer.backward(np.ones_like(x))
        layer.commit_updates()
        y_torch = module(torch.from_numpy(x)).detach().numpy()
        np.testing.assert_allclose(y, y_torch, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(layer.moving_mean, module.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.moving_variance, module.running_var.numpy(), rtol=1e-12)
    assert int(layer.num_batches_tracked[0]) == int(module.num_batches_tracked)


# ---- track_running_stats=False -----------------------------------------------------------------


def test_without_running_stats_there_are_no_moving_weights():
    layer = BatchNormalization(track_running_stats=False)
    layer.build_for((None, 4))
    assert [n.split("/")[1] for n in layer.weight_names] == ["gamma:0", "beta:0"]
    assert not hasattr(layer, "moving_mean")


@pytest.mark.parametrize("virtual_batch_size", [None, 2])
def test_without_running_stats_inference_uses_the_batch_statistics(virtual_batch_size):
    rng = np.random.default_rng(19)
    layer = BatchNormalization(
        track_running_stats=False,
        virtual_batch_size=virtual_batch_size,
        gamma_initializer="uniform",
        beta_initializer="uniform",
        dtype="float64",
    )
    layer.build_for((None, 3, 5))
    x = random_data(rng, (6, 3, 5))
    if virtual_batch_size is None:
        expected = ref.batch_norm_forward(x, layer.gamma, layer.beta)[0]
    else:
        expected = twin.ghost_batch_norm_forward(x, layer.gamma, layer.beta, 2)[0]
    for training in (False, True):
        np.testing.assert_allclose(
            layer.forward(x, training=training), expected, rtol=1e-11, atol=1e-11
        )
    layer.backward(np.ones_like(x))
    layer.commit_updates()  # nothing to commit
    check_layer_gradients(layer, x, rng)
    frozen = BatchNormalization(track_running_stats=False, trainable=False, dtype="float64")
    frozen.build_for((None, 3, 5))
    np.testing.assert_allclose(
        frozen.forward(x, training=True),
        ref.batch_norm_forward(x, None, None)[0],
        rtol=1e-11,
        atol=1e-11,
    )
    with one_thread():
        dy = rng.standard_normal(x.shape)
        dx = frozen.backward(dy.copy())
    np.testing.assert_allclose(
        dx,
        ref.batch_norm_backward(dy, x, None, *ref.batch_norm_forward(x, None, None)[1:])[0],
        rtol=1e-10,
        atol=1e-10,
    )
    assert frozen.gradients == []


def test_population_statistics_skip_layers_without_running_stats():
    from bnpy.layers.normalization import compute_population_statistics

    model = Sequential(
        [
            Dense(3, input_shape=(4,)),
            BatchNormalization(track_running_stats=False),
            BatchNormalization(),
        ]
    )
    model.compile(SGD(0.1), "mse")
    stats = compute_population_statistics(model, np.random.default_rng(0).random((8, 4)))
    assert list(stats) == [model.layers[2].name]
