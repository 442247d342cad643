"""Interruptions (issue 6, item 5): Ctrl-C during fit, and a writer killed mid-write.

- KeyboardInterrupt raised from a callback, or a real SIGINT arriving at a random moment of fit:
  the model is left exactly as after its last applied batch -- checked bitwise against a twin
  model trained on the same first n batches with train_on_batch, n being the interrupted model's
  optimizer step count, BN moving statistics included --, History holds the finished epochs, and
  the model predicts and trains on.
- save_weights / ModelCheckpoint write to a temporary file and os.replace it: a writer process
  killed with SIGKILL at a random moment leaves the previous file intact or a newer complete one,
  never a torn file (test_models.py covers an exception inside the write; this is the crash).
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from child_python import child_env

from bnpy import callbacks
from bnpy.layers import Activation, BatchNormalization, Conv2D, Dense, Flatten, MaxPooling2D
from bnpy.models import Sequential

N_SAMPLES, BATCH = 48, 8
BATCHES_PER_EPOCH = N_SAMPLES // BATCH


def _data():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N_SAMPLES, 8, 8, 2)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[(x.sum(axis=(1, 2, 3)) > 0).astype(int) + (x[:, 0, 0, 0] > 1)]
    return x, y


def _model():
    np.random.seed(21)
    model = Sequential()
    model.add(Conv2D(4, (3, 3), padding="same", input_shape=(8, 8, 2)))
    model.add(BatchNormalization())
    model.add(Activation("relu"))
    model.add(MaxPooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dense(3))
    model.add(BatchNormalization())
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def _twin_after(steps):
    """A fresh model trained with train_on_batch on the first `steps` batches fit would use
    (shuffle=False: batch b of every epoch is samples [b*BATCH, (b+1)*BATCH))."""
    x, y = _data()
    twin = _model()
    for step in range(steps):
        b = step % BATCHES_PER_EPOCH
        twin.train_on_batch(x[b * BATCH : (b + 1) * BATCH], y[b * BATCH : (b + 1) * BATCH])
    return twin


def _assert_consistent(model):
    """Weights and moving statistics are exactly those after the last applied batch; History
    holds exactly the finished epochs; the model still predicts."""
    steps = model.optimizer.iterations
    twin = _twin_after(steps)
    for (name, got), want in zip(
        zip(model._weight_names(), model.get_weights()), twin.get_weights()
    ):
        np.testing.assert_array_equal(got, want, err_msg="{} after {} steps".format(name, steps))
    finished = steps // BATCHES_PER_EPOCH
    history = model.history
    # An interrupt after an epoch's last update but before its on_epoch_end: one fewer epoch.
    assert history.epoch == list(range(len(history.epoch)))
    assert (
        finished - (steps % BATCHES_PER_EPOCH == 0 and steps > 0) <= len(history.epoch) <= finished
    )
    assert all(len(v) == len(history.epoch) for v in history.history.values())
    assert all(np.isfinite(v).all() for v in history.history.values())
    x, _ = _data()
    out = model.predict(x, batch_size=16)
    assert out.shape == (N_SAMPLES, 3) and np.isfinite(out).all()
    return steps


def test_keyboard_interrupt_from_a_callback_keeps_finished_epochs_and_last_batch():
    x, y = _data()
    model = _model()

    class InterruptAt(callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            if len(model.history.epoch) == 2 and batch == 3:  # third epoch, fourth batch
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x, y, batch_size=BATCH, epochs=10, verbose=0, shuffle=False, callbacks=[InterruptAt()]
        )
    steps = _assert_consistent(model)
    assert steps == 2 * BATCHES_PER_EPOCH + 3 and len(model.history.epoch) == 2
    assert set(model.history.history) == {"loss", "acc"}
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)  # trains on
    assert model.optimizer.iterations == steps + BATCHES_PER_EPOCH


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need the main thread"
)
@pytest.mark.parametrize("delay", [0.02, 0.11, 0.23, 0.37, 0.52, 0.71])
def test_sigint_at_a_random_moment_of_fit_leaves_a_consistent_model(delay):
    x, y = _data()
    model = _model()
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0, shuffle=False)  # warm-up
    model = _model()
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(x, y, batch_size=BATCH, epochs=10_000, verbose=0, shuffle=False)
    finally:
        timer.cancel()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    _assert_consistent(model)


# ---- a writer killed mid-write ---------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from bnpy.layers import Dense
    from bnpy.models import Sequential
    from bnpy import callbacks
    path, mode = sys.argv[1], sys.argv[2]
    model = Sequential([Dense(512, input_shape=(1024,)), Dense(256)])
    model.compile(loss="mse", optimizer="sgd")
    print("ready", flush=True)
    version = 1
    if mode == "save_weights":
        while True:
            model.set_weights([np.full(w.shape, version, w.dtype) for w in model.get_weights()])
            model.save_weights(path)
            version += 1
    else:  # ModelCheckpoint after every epoch
        class Fill(callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):  # runs before the checkpoint (listed first)
                self.model.set_weights([np.full(w.shape, epoch + 1, w.dtype) for w in self.model.get_weights()])
        x, y = np.zeros((4, 1024), np.float32), np.zeros((4, 256), np.float32)
        model.fit(x, y, epochs=10 ** 6, verbose=0,
                  callbacks=[Fill(), callbacks.ModelCheckpoint(path, save_weights_only=True)])
""")


def _writer_model():
    model = Sequential([Dense(512, input_shape=(1024,)), Dense(256)])
    model.compile(loss="mse", optimizer="sgd")
    return model


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("mode", ["save_weights", "checkpoint"])
def test_a_writer_killed_mid_write_leaves_a_complete_file(tmp_path, mode):
    path = str(tmp_path / "weights.npz")
    previous = _writer_model()
    previous.set_weights([np.full(w.shape, -7, w.dtype) for w in previous.get_weights()])
    previous.save_weights(path)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = child_env(OMP_NUM_THREADS="1")
    seen_versions = set()

    def leftovers():
        return any(name.endswith(".tmp") for name in os.listdir(str(tmp_path)))

    # Kills at spread-out moments, repeated (up to 60 kills) until both a kill after a complete
    # write and a kill mid-write have happened: on a busy machine one round of six may not land
    # both, and the checks below need both to mean something.
    delays = [0.0, 0.013, 0.05, 0.11, 0.2, 0.31] * 10
    for trial, delay in enumerate(delays):
        if trial >= 6 and any(v >= 1 for v in seen_versions) and leftovers():
            break
        proc = subprocess.Popen(
            [sys.executable, str(script), path, mode], stdout=subprocess.PIPE, env=env
        )
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(delay)
        finally:
            proc.kill()  # SIGKILL: no handler, no cleanup
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        reader = _writer_model()
        reader.load_weights(path)  # a torn file would raise here
        values = {float(v) for w in reader.get_weights() for v in np.unique(w)}
        assert len(values) == 1, "weights from more than one write: {}".format(sorted(values)[:5])
        version = values.pop()
        assert version == -7 or version >= 1
        seen_versions.add(version)
    # Leftovers of killed writers are hidden temporary files, never the target name.
    assert all(
        name == "weights.npz"
        or (name.startswith(".bnpy-weights-") and name.endswith(".tmp"))
        or name == "writer.py"
        for name in os.listdir(str(tmp_path))
    )
    assert any(v >= 1 for v in seen_versions), (
        "no kill happened after a complete write: test too fast"
    )
    # A killed writer leaves its temporary file: proof that some kill landed in the middle of a
    # write (the writer spends nearly all its time writing and fsync-ing 2.5 MB files).
    assert leftovers(), "no kill landed mid-write"
