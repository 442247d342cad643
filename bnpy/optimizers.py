"""Optimizers (Keras 2.0's ``keras/optimizers.py``): same defaults, same update rules.

``optimizer.update(params, grads)`` applies one step *in place* to every array of ``params``
(the layers' weight arrays) given the gradients ``grads`` (same order and shapes). State arrays
(moments, accumulators) are created at the first step of each parameter, zero-initialised, and
kept per parameter array. ``iterations`` counts the steps taken so far.

Common to all (with ``it`` = iterations before this step):

    lr_t = lr / (1 + decay·it)                                   (only when decay > 0)
    clipnorm c:   every g ← g·c/‖G‖ when the global norm ‖G‖ = sqrt(Σ_all g²) ≥ c
    clipvalue v:  g ← clip(g, −v, v)

Update rules (p parameter, g gradient):

    SGD       v ← m·v − lr_t·g;  p ← p + v       (Nesterov: p ← p + m·v − lr_t·g, new v)
    RMSprop   a ← ρa + (1−ρ)g²;  p ← p − lr_t·g/(√a + ε)
    Adagrad   a ← a + g²;        p ← p − lr_t·g/(√a + ε)
    Adadelta  a ← ρa + (1−ρ)g²;  Δ = g·√(d + ε)/√(a + ε);  p ← p − lr_t·Δ;  d ← ρd + (1−ρ)Δ²
    Adam      t = it+1;  â = lr_t·√(1−β2^t)/(1−β1^t);  m ← β1m + (1−β1)g;  v ← β2v + (1−β2)g²;
              p ← p − â·m/(√v + ε)
    Adamax    t = it+1;  m ← β1m + (1−β1)g;  u ← max(β2u, |g|);  p ← p − lr_t/(1−β1^t)·m/(u + ε)
    Nadam     Keras 2.0's schedule (see the class)

Every step allocates nothing beyond two scratch buffers per parameter, reused across steps.
"""

import difflib
import inspect
import math
import numbers

import numpy as np

_COMMON_KWARGS = {"clipnorm", "clipvalue"}

# Hyperparameters with an upper limit: (limit, whether the limit itself is allowed). A momentum
# or ρ of 1 keeps everything; a β of 1 would divide by 1 − β^t = 0. Every other hyperparameter is
# a finite number >= 0.
_UPPER_LIMITS = {
    "momentum": (1.0, True),
    "rho": (1.0, True),
    "beta_1": (1.0, False),
    "beta_2": (1.0, False),
}


def _checked(optimizer, name, value, high=None, high_included=True):
    """``value`` of the argument ``name`` as a float: a real number (not a bool or a string),
    finite, >= 0 and up to ``high`` when given. A NaN learning rate or a beta of 1 would not fail:
    the weights would silently become NaN (or inf, from 1 - beta_1**t = 0)."""
    where = "{}: argument '{}'".format(type(optimizer).__name__, name)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            "{} must be a number, got {!r} ({})".format(where, value, type(value).__name__)
        )
    value = float(value)
    in_range = value >= 0 and (high is None or value < high or (high_included and value == high))
    if not (math.isfinite(value) and in_range):
        limit = "" if high is None else " and {} {}".format("<=" if high_included else "<", high)
        raise ValueError("{} must be a finite number >= 0{}, got {!r}".format(where, limit, value))
    return value


class LearningRate(float):
    """``optimizer.lr``: the learning rate as a float that knows its optimizer, so that
    ``bnpy.backend.set_value(optimizer.lr, value)`` sets it, as Keras's ``K.set_value`` does on
    the lr variable. Arithmetic gives plain floats; copies and pickles are plain floats."""

    __slots__ = ("optimizer",)

    def __new__(cls, value, optimizer):
        self = super().__new__(cls, value)
        self.optimizer = optimizer
        return self

    def __reduce__(self):
        return float, (float(self),)


# Keyword names of other Keras versions (tf.keras 2.3+, Keras 3) for Keras 2.0's.
_KERAS2_NAMES = {"learning_rate": "lr", "global_clipnorm": "clipnorm"}


def _did_you_mean(cls, key):
    """' (did you mean `lr`? ...)' for a misspelt or later-Keras keyword of ``cls``, else ''."""
    if key in _KERAS2_NAMES:
        return " (did you mean `{}`? Keras 2.0's name for it; `{}` is later Keras's)".format(
            _KERAS2_NAMES[key], key
        )
    known = [name for name in inspect.signature(cls.__init__).parameters if name not in ("self",)]
    known = [name for name in known if name != "kwargs"] + sorted(_COMMON_KWARGS)
    close = difflib.get_close_matches(str(key), known, n=1)
    return " (did you mean `{}`?)".format(close[0]) if close else ""


class Optimizer:
    """Base class: gradient clipping, learning-rate decay, per-parameter state."""

    def __init__(self, **kwargs):
        for key in kwargs:
            if key not in _COMMON_KWARGS:
                raise TypeError(
                    "Unexpected keyword argument passed to optimizer: "
                    + str(key)
                    + _did_you_mean(type(self), key)
                )
        # Keras ignores a clip <= 0; NaN, inf or a string would pass through unnoticed
        self.clipnorm, self.clipvalue = (
            None if kwargs.get(key) is None else _checked(self, key, kwargs[key])
            for key in ("clipnorm", "clipvalue")
        )
        self.iterations = 0
        self._state = {}  # id(param) -> (param, list of state arrays); the param keeps the id valid

    # -- one step ---------------------------------------------------------------------------
    def update(self, params, grads):
        """One optimization step: update every ``params[i]`` in place from ``grads[i]``."""
        if len(params) != len(grads):
            raise ValueError(
                "{}.update: got {} parameters but {} gradients".format(
                    type(self).__name__, len(params), len(grads)
                )
            )
        for p, g in zip(params, grads):
            if g.shape != p.shape:
                raise ValueError(
                    "{}.update: gradient of shape {} for a parameter of shape {}".format(
                        type(self).__name__, g.shape, p.shape
                    )
                )
        grads = self._clip(grads)
        lr = self._lr
        if self.decay > 0:
            lr = lr / (1.0 + self.decay * self.iterations)
        for p, g in zip(params, grads):
            self._update_one(p, g, self._slots(p), lr)
        self.iterations += 1

    def _clip(self, grads):
        if self.clipnorm is not None and self.clipnorm > 0:
            norm = np.sqrt(sum(float(np.square(g, dtype=np.float64).sum()) for g in grads))
            if norm >= self.clipnorm:
                grads = [g * (self.clipnorm / norm) for g in grads]
        if self.clipvalue is not None and self.clipvalue > 0:
            grads = [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def _slots(self, p):
        entry = self._state.get(id(p))
        if entry is None or entry[0] is not p:
            entry = (p, [np.zeros_like(p) for _ in range(self._n_slots)])
            self._state[id(p)] = entry
        return entry[1]

    _n_slots = 0
    _lr = 0.0
    decay = 0.0

    @property
    def lr(self):
        """The learning rate, a float that bnpy.backend.set_value can change (as Keras's
        ``K.set_value(model.optimizer.lr, 0.01)``); computations use the plain ``_lr``."""
        return LearningRate(self._lr, self)

    @lr.setter
    def lr(self, value):
        self._lr = _checked(self, "lr", value)

    def _update_one(self, p, g, slots, lr):
        raise NotImplementedError

    def _set_hyperparameters(self, **values):
        """A subclass's own arguments: each checked (_checked, up to its _UPPER_LIMITS entry),
        kept as an attribute (lr through its property) and listed by get_config in this order."""
        for name, value in values.items():
            high, high_included = _UPPER_LIMITS.get(name, (None, True))
            setattr(self, name, _checked(self, name, value, high, high_included))
        self._config_names = tuple(values)

    _config_names = ()

    # -- introspection ----------------------------------------------------------------------
    def get_config(self):
        """clipnorm and clipvalue where set, then the hyperparameters (Keras 2.0's keys)."""
        config = {}
        if self.clipnorm is not None:
            config["clipnorm"] = self.clipnorm
        if self.clipvalue is not None:
            config["clipvalue"] = self.clipvalue
        for name in self._config_names:
            config[name] = self._lr if name == "lr" else getattr(self, name)
        return config

    def get_state(self, param):
        """The state arrays of ``param`` (empty list before its first step)."""
        entry = self._state.get(id(param))
        return list(entry[1]) if entry is not None and entry[0] is param else []

    def set_state(self, param, arrays):
        """Give ``param`` these state arrays, as :meth:`get_state` returns them (copied; an empty
        list forgets its state: its next step starts from zeros). Count and shapes are checked
        before anything changes."""
        arrays = [np.asarray(a) for a in arrays]
        if arrays and len(arrays) != self._n_slots:
            raise ValueError(
                "{}.set_state: expected {} state arrays, got {}".format(
                    type(self).__name__, self._n_slots, len(arrays)
                )
            )
        for a in arrays:
            if a.shape != param.shape:
                raise ValueError(
                    "{}.set_state: a state array of shape {} for a parameter of shape {}".format(
                        type(self).__name__, a.shape, param.shape
                    )
                )
        if arrays:
            self._state[id(param)] = (param, [np.array(a, dtype=param.dtype) for a in arrays])
        else:
            self._state.pop(id(param), None)

    # Scalar state besides the per-parameter arrays (saved with a model; Nadam adds its schedule).
    step_state_names = ("iterations",)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and decay.

    Slots: [velocity, scratch]."""

    _n_slots = 2

    def __init__(self, lr=0.01, momentum=0.0, decay=0.0, nesterov=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(
                "SGD: argument 'nesterov' must be True or False, got {!r}".format(nesterov)
            )
        self._set_hyperparameters(lr=lr, momentum=momentum, decay=decay)
        self.nesterov = bool(nesterov)

    def _update_one(self, p, g, slots, lr):
        v, scratch = slots
        np.multiply(g, lr, out=scratch)  # lr·g
        v *= self.momentum
        v -= scratch  # v = m·v − lr·g
        if self.nesterov:
            p -= scratch
            np.multiply(v, self.momentum, out=scratch)
            p += scratch  # p + m·v − lr·g
        else:
            p += v

    def get_config(self):
        return dict(super().get_config(), nesterov=self.nesterov)


class RMSprop(Optimizer):
    """Slots: [a (mean square), scratch]."""

    _n_slots = 2

    def __init__(self, lr=0.001, rho=0.9, epsilon=1e-8, decay=0.0, **kwargs):
        super().__init__(**kwargs)
        self._set_hyperparameters(lr=lr, rho=rho, epsilon=epsilon, decay=decay)

    def _update_one(self, p, g, slots, lr):
        a, scratch = slots
        np.multiply(g, g, out=scratch)
        scratch *= 1.0 - self.rho
        a *= self.rho
        a += scratch  # a = ρa + (1−ρ)g²
        np.sqrt(a, out=scratch)
        scratch += self.epsilon
        np.divide(g, scratch, out=scratch)
        scratch *= lr
        p -= scratch


class Adagrad(Optimizer):
    """Slots: [a (sum of squares), scratch]."""

    _n_slots = 2

    def __init__(self, lr=0.01, epsilon=1e-8, decay=0.0, **kwargs):
        super().__init__(**kwargs)
        self._set_hyperparameters(lr=lr, epsilon=epsilon, decay=decay)

    def _update_one(self, p, g, slots, lr):
        a, scratch = slots
        np.multiply(g, g, out=scratch)
        a += scratch
        np.sqrt(a, out=scratch)
        scratch += self.epsilon
        np.divide(g, scratch, out=scratch)
        scratch *= lr
        p -= scratch


class Adadelta(Optimizer):
    """Adadelta (Zeiler 2012) as Keras 2.0: lr=1.0, rho=0.95, epsilon=1e-8 (the literal, not
    K.epsilon(); Keras >= 2.1.3 defaults to 1e-7). Slots: [a, d, scratch, scratch2]."""

    _n_slots = 4

    def __init__(self, lr=1.0, rho=0.95, epsilon=1e-8, decay=0.0, **kwargs):
        super().__init__(**kwargs)
        self._set_hyperparameters(lr=lr, rho=rho, epsilon=epsilon, decay=decay)

    def _update_one(self, p, g, slots, lr):
        a, d, delta, scratch = slots
        rho, eps = self.rho, self.epsilon
        np.multiply(g, g, out=scratch)
        scratch *= 1.0 - rho
        a *= rho
        a += scratch  # a = ρa + (1−ρ)g²   (new a)
        np.add(d, eps, out=delta)
        np.sqrt(delta, out=delta)
        delta *= g  # g·√(d + ε)         (old d)
        np.add(a, eps, out=scratch)
        np.sqrt(scratch, out=scratch)
        delta /= scratch  # Δ = g·√(d + ε)/√(a + ε)
        np.multiply(delta, lr, out=scratch)
        p -= scratch  # p = p − lr·Δ
        np.multiply(delta, delta, out=scratch)
        scratch *= 1.0 - rho
        d *= rho
        d += scratch  # d = ρd + (1−ρ)Δ²   (unscaled Δ)


class Adam(Optimizer):
    """Slots: [m, v, scratch]."""

    _n_slots = 3

    def __init__(self, lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, decay=0.0, **kwargs):
        super().__init__(**kwargs)
        self._set_hyperparameters(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, decay=decay)

    def _update_one(self, p, g, slots, lr):
        m, v, scratch = slots
        t = self.iterations + 1
        lr_t = lr * np.sqrt(1.0 - self.beta_2**t) / (1.0 - self.beta_1**t)
        m *= self.beta_1
        np.multiply(g, 1.0 - self.beta_1, out=scratch)
        m += scratch
        v *= self.beta_2
        np.multiply(g, g, out=scratch)
        scratch *= 1.0 - self.beta_2
        v += scratch
        np.sqrt(v, out=scratch)
        scratch += self.epsilon
        np.divide(m, scratch, out=scratch)
        scratch *= lr_t
        p -= scratch


class Adamax(Optimizer):
    """Slots: [m, u, scratch]."""

    _n_slots = 3

    def __init__(self, lr=0.002, beta_1=0.9, beta_2=0.999, epsilon=1e-8, decay=0.0, **kwargs):
        super().__init__(**kwargs)
        self._set_hyperparameters(lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, decay=decay)

    def _update_one(self, p, g, slots, lr):
        m, u, scratch = slots
        t = self.iterations + 1
        lr_t = lr / (1.0 - self.beta_1**t)
        m *= self.beta_1
        np.multiply(g, 1.0 - self.beta_1, out=scratch)
        m += scratch
        u *= self.beta_2
        np.abs(g, out=scratch)
        np.maximum(u, scratch, out=u)
        np.add(u, self.epsilon, out=scratch)
        np.divide(m, scratch, out=scratch)
        scratch *= lr_t
        p -= scratch


class Nadam(Optimizer):
    """Nesterov Adam as Keras 2.0 (no decay; ``schedule_decay`` sets the momentum schedule):

    μ_t = β1(1 − ½·0.96^(t·s)),  μ_{t+1} likewise;  S ← S·μ_t  (S starts at 1)
    ĝ = g/(1 − S);  m ← β1m + (1−β1)g;  m̂ = m/(1 − S·μ_{t+1});
    v ← β2v + (1−β2)g²;  v̂ = v/(1 − β2^t);  m̄ = (1−μ_t)ĝ + μ_{t+1}m̂
    p ← p − lr·m̄/(√v̂ + ε)
    """

    _n_slots = 2
    step_state_names = ("iterations", "m_schedule")

    def __init__(
        self, lr=0.002, beta_1=0.9, beta_2=0.999, epsilon=1e-8, schedule_decay=0.004, **kwargs
    ):
        super().__init__(**kwargs)
        self._set_hyperparameters(
            lr=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, schedule_decay=schedule_decay
        )
        self.m_schedule = 1.0
        self._step_coefficients = None

    def update(self, params, grads):
        t = self.iterations + 1
        cache_t = self.beta_1 * (1.0 - 0.5 * 0.96 ** (t * self.schedule_decay))
        cache_t1 = self.beta_1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.schedule_decay))
        schedule_new = self.m_schedule * cache_t
        schedule_next = schedule_new * cache_t1
        self._step_coefficients = (t, cache_t, cache_t1, schedule_new, schedule_next)
        super().update(params, grads)
        self.m_schedule = schedule_new

    def _update_one(self, p, g, slots, lr):
        m, v = slots
        t, cache_t, cache_t1, schedule_new, schedule_next = self._step_coefficients
        m *= self.beta_1
        m += (1.0 - self.beta_1) * g
        v *= self.beta_2
        v += (1.0 - self.beta_2) * np.square(g)
        m_bar = (1.0 - cache_t) / (1.0 - schedule_new) * g + cache_t1 / (1.0 - schedule_next) * m
        denom = np.sqrt(v / (1.0 - self.beta_2**t)) + self.epsilon
        p -= self._lr * m_bar / denom


sgd = SGD
rmsprop = RMSprop
adagrad = Adagrad
adadelta = Adadelta
adam = Adam
adamax = Adamax
nadam = Nadam

_BY_NAME = {
    "sgd": SGD,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "adadelta": Adadelta,
    "adam": Adam,
    "adamax": Adamax,
    "nadam": Nadam,
}


def get(identifier):
    """An optimizer instance from a name (case-insensitive, default arguments) or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        try:
            return _BY_NAME[identifier.lower()]()
        except KeyError:
            raise ValueError(
                "Unknown optimizer: {!r}; expected one of {} or an Optimizer instance".format(
                    identifier, ", ".join(sorted(_BY_NAME))
                )
            ) from None
    raise ValueError("Could not interpret optimizer identifier: {!r}".format(identifier))
