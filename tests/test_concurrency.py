"""One model used from several threads: fit, predict and callbacks (Sequential's docstring).

The orderings are forced with events and the model's lock queue, never with sleeps: a probe layer
at the end of the model stops a training step after the other layers' forward passes (their
caches for backward are set) until the other thread's predict either runs its own forward pass
(the bug: it clears those caches) or is seen waiting for the model's lock. Every wait is bounded.
"""

import threading
import time

import numpy as np
import pytest

from bnpy import callbacks
from bnpy._threads import TurnLock
from bnpy.engine import Layer
from bnpy.layers import Activation, Dense
from bnpy.models import Sequential

TIMEOUT = 120  # seconds: only reached when something is broken


def _wait_until(condition, what):
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.001)


class _Probe(Layer):
    """Identity. In the step chosen by ``hold_step``, its training forward waits until
    ``release()`` is true; its inference forward sets ``inference_started``. Each training
    forward records how many inference forwards ran before it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.training_steps = 0
        self.hold_step = None
        self.release = lambda: True
        self.holding = threading.Event()
        self.inference_started = threading.Event()
        self.inference_calls = 0
        self.inference_calls_before_step = []

    def forward(self, x, training=False):
        if not training:
            self.inference_calls += 1
            self.inference_started.set()
            return x
        self.training_steps += 1
        self.inference_calls_before_step.append(self.inference_calls)
        if self.training_steps == self.hold_step:
            self.holding.set()
            _wait_until(self.release, "the other thread")
        return x

    def backward(self, dy):
        self.gradients = []
        return dy


def _model():
    np.random.seed(3)
    probe = _Probe()
    model = Sequential(
        [Dense(8, activation="relu", input_shape=(5,)), Dense(3), Activation("softmax"), probe]
    )
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["acc"])
    return model, probe


X = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
Y = np.eye(3, dtype=np.float32)[np.arange(40) % 3]


def _in_thread(function):
    """Start function() in a thread; returns (thread, result dict with 'value' or 'error')."""
    result = {}

    def run():
        try:
            result["value"] = function()
        except BaseException as exc:  # reported by the caller
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _join(thread, result):
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "the thread did not finish (deadlock?)"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def test_predict_from_another_thread_waits_for_the_training_step_and_runs_before_the_next():
    model, probe = _model()
    probe.hold_step = 3  # the third batch of the first epoch

    def predict():
        assert probe.holding.wait(TIMEOUT)
        return model.predict(X, batch_size=16)  # 3 batches

    # The held step goes on once the predict has run its forward pass (the bug) or queues for
    # the model's lock (the fix).
    probe.release = lambda: probe.inference_started.is_set() or model._turns.waiting > 0
    predictor, predicted = _in_thread(predict)
    history = model.fit(X, Y, batch_size=4, epochs=2, verbose=0, shuffle=False)
    out = _join(predictor, predicted)
    assert len(history.history["loss"]) == 2 and np.all(np.isfinite(history.history["loss"]))
    assert out.shape == (40, 3) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
    # The whole predict (3 batches) ran between the held step and the next one: it asked for the
    # lock first, and the lock goes to threads in the order they asked.
    assert probe.inference_calls_before_step == [0, 0, 0] + [3] * 17


def test_callbacks_may_call_predict_and_evaluate_and_wait_for_threads_that_do():
    model, _ = _model()
    seen = []

    def on_batch_end(batch, logs):
        seen.append(model.predict(X[:6]).shape)
        seen.append(round(float(model.evaluate(X[:6], Y[:6], verbose=0)[1]), 6) >= 0)
        other, result = _in_thread(lambda: model.predict(X[:5]))  # fit holds no lock here
        seen.append(_join(other, result).shape)
        model.get_weights()

    def fit():
        return model.fit(
            X,
            Y,
            batch_size=20,
            epochs=1,
            verbose=0,
            callbacks=[callbacks.LambdaCallback(on_batch_end=on_batch_end)],
        )

    _join(*_in_thread(fit))
    assert seen == [(6, 3), True, (5, 3)] * 2


def test_a_second_fit_of_the_same_model_in_another_thread_is_refused():
    model, probe = _model()
    probe.hold_step = 1
    second_done = threading.Event()
    probe.release = second_done.is_set
    trainer, trained = _in_thread(lambda: model.fit(X, Y, batch_size=20, epochs=1, verbose=0))
    assert probe.holding.wait(TIMEOUT)

    def second_fit():
        try:
            model.fit(X, Y, batch_size=20, epochs=1, verbose=0)
        finally:
            second_done.set()

    with pytest.raises(RuntimeError, match="already being trained by another thread"):
        _join(*_in_thread(second_fit))
    _join(trainer, trained)
    assert probe.training_steps == 2
    model.fit(X, Y, batch_size=20, epochs=1, verbose=0)  # and again once the first is done


def test_turn_lock_serves_threads_in_order_and_is_reentrant():
    lock = TurnLock()
    order = []
    with lock:
        with lock:  # re-entrant
            waiters = []
            for i in range(4):
                waiters.append(_in_thread(lambda i=i: _take(lock, order, i)))
                _wait_until(lambda i=i: lock.waiting == i + 1, "waiter {} to queue".format(i))
    for waiter in waiters:
        _join(*waiter)
    assert order == [0, 1, 2, 3]
    assert lock.waiting == 0


def _take(lock, order, i):
    with lock:
        order.append(i)
