"""Every optimizer against its Keras 2.0 update rule, step by step (float64 parameters, so the
comparison is to rounding: rtol 1e-12 over a few steps of O(1) numbers)."""

import re

import numpy as np
import pytest

from bnpy import optimizers

STEPS = 6


def _run(optimizer, rule, shape=(3, 4), seed=0):
    """Apply ``optimizer`` and the plain-NumPy ``rule(p, g, state, it)`` side by side."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(shape)
    expected = p.copy()
    state = {}
    for it in range(STEPS):
        g = rng.standard_normal(shape)
        optimizer.update([p], [g.copy()])
        expected = rule(expected, g, state, it)
        np.testing.assert_allclose(
            p,
            expected,
            rtol=1e-12,
            atol=1e-14,
            err_msg="{} step {}".format(type(optimizer).__name__, it),
        )
    assert optimizer.iterations == STEPS


def _zeros(state, key, like):
    return state.setdefault(key, np.zeros_like(like))


@pytest.mark.parametrize(
    "momentum, nesterov, decay",
    [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 0.0), (0.5, False, 0.1)],
)
def test_sgd(momentum, nesterov, decay):
    lr = 0.05

    def rule(p, g, s, it):
        lr_t = lr / (1 + decay * it)
        v = momentum * _zeros(s, "v", p) - lr_t * g
        s["v"] = v
        return p + momentum * v - lr_t * g if nesterov else p + v

    _run(optimizers.SGD(lr=lr, momentum=momentum, nesterov=nesterov, decay=decay), rule)


def test_rmsprop():
    def rule(p, g, s, it):
        a = 0.9 * _zeros(s, "a", p) + 0.1 * g**2
        s["a"] = a
        return p - 0.001 * g / (np.sqrt(a) + 1e-8)

    _run(optimizers.RMSprop(), rule)


def test_adagrad():
    def rule(p, g, s, it):
        a = _zeros(s, "a", p) + g**2
        s["a"] = a
        return p - 0.01 * g / (np.sqrt(a) + 1e-8)

    _run(optimizers.Adagrad(), rule)


@pytest.mark.parametrize("decay", [0.0, 0.05])
def test_adadelta_uses_new_a_old_d_and_unscaled_delta(decay):
    lr, rho, eps = 1.0, 0.95, 1e-8

    def rule(p, g, s, it):
        lr_t = lr / (1 + decay * it)
        a = rho * _zeros(s, "a", p) + (1 - rho) * g**2
        d = _zeros(s, "d", p)
        delta = g * np.sqrt(d + eps) / np.sqrt(a + eps)
        s["a"], s["d"] = a, rho * d + (1 - rho) * delta**2
        return p - lr_t * delta

    _run(optimizers.Adadelta(decay=decay), rule)


def test_adadelta_defaults_are_keras_2_0():
    opt = optimizers.get("adadelta")
    assert (opt.lr, opt.rho, opt.epsilon, opt.decay) == (1.0, 0.95, 1e-8, 0.0)


def test_adam():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.001

    def rule(p, g, s, it):
        t = it + 1
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        m = b1 * _zeros(s, "m", p) + (1 - b1) * g
        v = b2 * _zeros(s, "v", p) + (1 - b2) * g**2
        s["m"], s["v"] = m, v
        return p - lr_t * m / (np.sqrt(v) + eps)

    _run(optimizers.Adam(), rule)


def test_adamax():
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.002

    def rule(p, g, s, it):
        t = it + 1
        m = b1 * _zeros(s, "m", p) + (1 - b1) * g
        u = np.maximum(b2 * _zeros(s, "u", p), np.abs(g))
        s["m"], s["u"] = m, u
        return p - lr / (1 - b1**t) * m / (u + eps)

    _run(optimizers.Adamax(), rule)


def test_nadam():
    b1, b2, eps, lr, sd = 0.9, 0.999, 1e-8, 0.002, 0.004

    def rule(p, g, s, it):
        t = it + 1
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * sd))
        mu_t1 = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * sd))
        schedule = s.get("schedule", 1.0) * mu_t
        schedule_next = schedule * mu_t1
        s["schedule"] = schedule
        g_prime = g / (1 - schedule)
        m = b1 * _zeros(s, "m", p) + (1 - b1) * g
        v = b2 * _zeros(s, "v", p) + (1 - b2) * g**2
        s["m"], s["v"] = m, v
        m_bar = (1 - mu_t) * g_prime + mu_t1 * m / (1 - schedule_next)
        return p - lr * m_bar / (np.sqrt(v / (1 - b2**t)) + eps)

    _run(optimizers.Nadam(), rule)


def test_clipnorm_and_clipvalue():
    p = np.zeros(4)
    opt = optimizers.SGD(lr=1.0, clipnorm=1.0)
    opt.update([p], [np.array([3.0, 4.0, 0.0, 0.0])])  # norm 5 → scaled to norm 1
    np.testing.assert_allclose(p, [-0.6, -0.8, 0, 0], rtol=1e-15)
    p = np.zeros(3)
    opt = optimizers.SGD(lr=1.0, clipvalue=0.5)
    opt.update([p], [np.array([2.0, -0.1, -3.0])])
    np.testing.assert_allclose(p, [-0.5, 0.1, 0.5], rtol=1e-15)


def test_float32_parameters_stay_float32_and_in_place():
    p = np.ones((5,), dtype=np.float32)
    before = p.__array_interface__["data"][0]
    opt = optimizers.Adadelta()
    opt.update([p], [np.full(5, 0.1, dtype=np.float32)])
    assert p.dtype == np.float32 and p.__array_interface__["data"][0] == before
    assert np.all(p < 1)


def test_state_is_per_parameter():
    a, b = np.zeros(2), np.zeros(3)
    opt = optimizers.Adagrad(lr=1.0)
    opt.update([a, b], [np.ones(2), 2 * np.ones(3)])
    assert [s.shape for s in opt.get_state(a)] == [(2,), (2,)]
    np.testing.assert_allclose(opt.get_state(b)[0], 4.0)


def test_errors():
    with pytest.raises(
        TypeError, match="Unexpected keyword argument passed to optimizer: momentun"
    ):
        optimizers.SGD(momentun=0.9)
    with pytest.raises(ValueError, match="Unknown optimizer: 'adadeltaa'"):
        optimizers.get("adadeltaa")
    p = np.zeros(3)
    with pytest.raises(ValueError, match="gradient of shape"):
        optimizers.SGD().update([p], [np.zeros(4)])
    assert not p.any()


@pytest.mark.parametrize(
    "name, cls",
    [
        ("SGD", optimizers.SGD),
        ("rmsprop", optimizers.RMSprop),
        ("Adam", optimizers.Adam),
        ("nadam", optimizers.Nadam),
    ],
)
def test_get_by_name_is_case_insensitive(name, cls):
    assert type(optimizers.get(name)) is cls


def test_set_state_installs_checked_copies():
    """set_state gives a parameter the arrays get_state returned (copied), so that the next step
    equals the step of the optimizer they came from; bad counts or shapes change nothing."""
    rng = np.random.default_rng(5)
    p, g1, g2 = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(4)
    source = optimizers.Adam()
    source.update([p], [g1])
    q = p.copy()
    target = optimizers.Adam()
    state = [s.copy() for s in source.get_state(p)]
    target.set_state(q, state)
    target.iterations = source.iterations
    state[0][:] = 99.0  # the installed arrays are copies
    source.update([p], [g2])
    target.update([q], [g2])
    np.testing.assert_array_equal(q, p)
    for a, b in zip(target.get_state(q), source.get_state(p)):
        np.testing.assert_array_equal(a, b)
    r = np.zeros(3)
    with pytest.raises(ValueError, match="expected 3 state arrays, got 1"):
        optimizers.Adam().set_state(r, [np.zeros(3)])
    fresh = optimizers.Adam()
    with pytest.raises(
        ValueError, match="a state array of shape \\(2,\\) for a parameter of shape \\(3,\\)"
    ):
        fresh.set_state(r, [np.zeros(3), np.zeros(2), np.zeros(3)])
    assert fresh.get_state(r) == []
    fresh.set_state(r, [np.ones(3)] * 3)
    fresh.set_state(r, [])  # forgotten: the next step starts from zeros
    assert fresh.get_state(r) == []


HYPERPARAMETERS = {  # class: {argument: a value in range}
    optimizers.SGD: {"lr": 0.01, "momentum": 0.9, "decay": 0.0},
    optimizers.RMSprop: {"lr": 0.001, "rho": 0.9, "epsilon": 1e-8, "decay": 0.0},
    optimizers.Adagrad: {"lr": 0.01, "epsilon": 1e-8, "decay": 0.0},
    optimizers.Adadelta: {"lr": 1.0, "rho": 0.95, "epsilon": 1e-8, "decay": 0.0},
    optimizers.Adam: {"lr": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "decay": 0.0},
    optimizers.Adamax: {"lr": 0.002, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8, "decay": 0.0},
    optimizers.Nadam: {
        "lr": 0.002,
        "beta_1": 0.9,
        "beta_2": 0.999,
        "epsilon": 1e-8,
        "schedule_decay": 0.004,
    },
}
# Values no hyperparameter may take, and the ones only a rate in [0, 1] (or a beta in [0, 1)) may not.
NEVER = [float("nan"), float("inf"), float("-inf"), -0.1, np.float32("nan")]
ABOVE_ONE = {"momentum": 1.5, "rho": 1.01, "beta_1": 1.0, "beta_2": 1.0}


@pytest.mark.parametrize(
    "cls, argument",
    [
        (cls, arg)
        for cls, args in HYPERPARAMETERS.items()
        for arg in list(args) + ["clipnorm", "clipvalue"]
    ],
)
def test_a_nan_inf_negative_or_out_of_range_hyperparameter_is_refused(cls, argument):
    name = cls.__name__
    for bad in NEVER + ([ABOVE_ONE[argument]] if argument in ABOVE_ONE else []):
        with pytest.raises(
            ValueError,
            match=r"{}: argument '{}' must be a finite number >= 0.*, got ".format(name, argument),
        ) as info:
            cls(**{argument: bad})
        assert repr(float(bad)) in str(info.value)
    for bad in ("0.1", [0.1], None if argument not in ("clipnorm", "clipvalue") else "x", True):
        with pytest.raises(
            TypeError,
            match=r"{}: argument '{}' must be a number, got {}".format(
                name, argument, re.escape(repr(bad))
            ),
        ):
            cls(**{argument: bad})


@pytest.mark.parametrize("cls", list(HYPERPARAMETERS))
def test_in_range_hyperparameters_are_accepted_as_floats(cls):
    args = HYPERPARAMETERS[cls]
    opt = cls(clipnorm=1, clipvalue=np.float32(0.5), **{k: np.float64(v) for k, v in args.items()})
    config = opt.get_config()
    for key, value in dict(args, clipnorm=1.0, clipvalue=0.5).items():
        assert type(config[key]) is float and config[key] == value, key
    cls(lr=0)  # a zero learning rate is legal (it freezes the weights), as in Keras
    if "momentum" in args:
        cls(momentum=1)


def test_sgd_nesterov_must_be_a_bool():
    with pytest.raises(
        TypeError, match="SGD: argument 'nesterov' must be True or False, got 'False'"
    ):
        optimizers.SGD(nesterov="False")
