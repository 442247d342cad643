"""The article's comparison of BN placements (``bnpy-experiment article``).

The article's LeNet-5-style network (seed/article_script.py)::

    Conv2D(96, 11x11, 'same')  [BN: comment 1]
    MaxPooling2D(2x2)          [BN: comment 2]
    Activation('tanh')
    Conv2D(120, 1x1, 'valid')  [BN: comment 3]
    Flatten
    Dense(10)
    BN                         (the script's one active BN line)
    Activation('relu')
    [Dense(10): comment 4]
    Activation('softmax')

trained with Adadelta, batch 32, 8 epochs, categorical cross-entropy, validated on the test set
(the article fits an ImageDataGenerator but trains with ``model.fit`` on the raw images, so no
augmentation is used here either). The groups (seed/README.md), each built from the same seed:

* ``all-comments``: all four commented lines enabled (BN in four places plus the extra Dense);
* ``comment4``: only comment 4 enabled (the extra Dense; BN only after the first Dense);
* ``no-bn``: every BatchNormalization removed, comments 1-4 stay commented;
* ``as-printed``: the script as printed (one BN, after the first Dense).

``--seeds N`` trains every group from seeds s, s+1, ..., s+N-1 (``--seed s``); the report gives
each metric's mean ± standard deviation over the seeds and the per-seed values, and says which
group differences exceed the seed noise (Welch's t-test, Holm-corrected; see _report.py).

After every epoch the test set is evaluated twice: as Keras 2.0 does, with each BN's moving
averages (momentum 0.99, moving variance starting at 1), and as the BN paper's Algorithm 2 does,
with the population statistics of the training set (bnpy.layers.normalization). After the last
epoch, the units of the ReLU after the first Dense that are positive for some test image are
counted: a run whose count is 0 has "died" (its output no longer depends on the input).

Each group and seed checkpoints after every epoch (weights, Adadelta state, history, NumPy RNG
state, written atomically), so an interrupted run resumes from its last finished epoch and ends
exactly as an uninterrupted one would; a finished run's checkpoints are removed unless
``--keep-checkpoints``.
"""

import json
import os
import shutil
import time

import numpy as np

from . import _common

GROUPS = {
    "all-comments": (
        "all four commented lines enabled: BN after conv 1, after the pooling, after "
        "conv 2 and after the first Dense, plus the extra Dense(10)",
        dict(bn1=True, bn2=True, bn3=True, bn_dense=True, extra_dense=True),
    ),
    "comment4": (
        "only comment 4 enabled: the extra Dense(10) after the ReLU; BN only after the first Dense",
        dict(bn1=False, bn2=False, bn3=False, bn_dense=True, extra_dense=True),
    ),
    "no-bn": (
        "no BatchNormalization at all (the printed BN line commented out too)",
        dict(bn1=False, bn2=False, bn3=False, bn_dense=False, extra_dense=False),
    ),
    "as-printed": (
        "the script as printed: one BN, after the first Dense",
        dict(bn1=False, bn2=False, bn3=False, bn_dense=True, extra_dense=False),
    ),
}
DEFAULTS = dict(epochs=8, batch_size=32, seed=0, seeds=1)
HISTORY_COLUMNS = [
    "epoch",
    "loss",
    "acc",
    "val_loss",
    "val_acc",
    "val_loss_population",
    "val_acc_population",
    "epoch_time_s",
    "population_time_s",
]
#: The data the article's command uses when --dataset is not given, in order of preference.
DEFAULT_DATA = ("cifar10", "cifar10_sample")
#: The population statistics are averaged over the first this many training mini-batches (3,200
#: images at batch 32): per channel at least 3,200 values, enough to pin the mean to ~2 % of a
#: standard deviation, at a fifth of the cost of a pass over 10,000 images every epoch.
POPULATION_BATCHES = 100


def build_model(group, input_shape, num_classes=10, synchronized=False, dtype=None):
    """The article's network for ``group`` (a key of GROUPS), adapted to ``input_shape`` (H, W, C).

    Layer names restart at _1 for every model, as in a fresh Keras process. ``synchronized``:
    every BatchNormalization uses the global batch's statistics in data-parallel training
    (bnpy.distributed); ``dtype``: every layer's (float32 by default).
    """
    from bnpy.engine import reset_layer_names
    from bnpy.layers.convolutional import Conv2D
    from bnpy.layers.core import Activation, Dense, Flatten
    from bnpy.layers.normalization import BatchNormalization
    from bnpy.layers.pooling import MaxPooling2D
    from bnpy.models import Sequential

    flags = GROUPS[group][1]
    kw = {} if dtype is None else {"dtype": dtype}
    bn = dict(kw, synchronized=True) if synchronized else kw
    reset_layer_names()
    model = Sequential()
    # The script's Keras-1 spelling Convolution2D(96, 11, 11, border_mode='same') in Keras 2 terms
    model.add(Conv2D(96, (11, 11), padding="same", input_shape=tuple(input_shape), **kw))
    if flags["bn1"]:
        model.add(BatchNormalization(**bn))
    model.add(MaxPooling2D(pool_size=(2, 2), **kw))
    if flags["bn2"]:
        model.add(BatchNormalization(**bn))
    model.add(Activation("tanh", **kw))
    model.add(Conv2D(120, (1, 1), padding="valid", **kw))
    if flags["bn3"]:
        model.add(BatchNormalization(**bn))
    model.add(Flatten(**kw))
    model.add(Dense(num_classes, **kw))
    if flags["bn_dense"]:
        model.add(BatchNormalization(**bn))
    model.add(Activation("relu", **kw))
    if flags["extra_dense"]:
        model.add(Dense(num_classes, **kw))
    model.add(Activation("softmax", **kw))
    return model


def validate_args(args):
    _common.parse_groups(args.groups, GROUPS)


def vars_config(args):
    return {
        k: getattr(args, k)
        for k in (
            "epochs",
            "batch_size",
            "train_size",
            "test_size",
            "seed",
            "seeds",
            "groups",
            "dataset",
        )
    }


def load_data(args, log):
    """The run's data, loaded before anything is written: (x_train, y_train, x_test, y_test,
    info), images float32 in [0, 1], labels int64."""
    return _common.load_run_data(args, DEFAULT_DATA, log)


def seeds_of(args):
    return list(range(args.seed, args.seed + args.seeds))


def unit_name(group, seed):
    """The file-name stem of one group trained from one seed."""
    return "{}-seed{}".format(group, seed)


# ------------------------------------------------------------------------------------------------
# One group, one seed
# ------------------------------------------------------------------------------------------------
def _fit_one_epoch(model, x, y, xv, yv, batch_size, epoch, epochs, verbose):
    """Epoch ``epoch`` (0-based) of ``epochs`` with model.fit, printed as 'Epoch epoch+1/epochs'.

    One fit call per epoch (fit(epochs=epochs, initial_epoch=epoch), stopped after that epoch by
    a callback) so that each epoch's shuffle starts from NumPy's RNG state alone: the state a
    checkpoint saves, which makes a resumed run identical to an uninterrupted one. (Within one
    long fit call, Keras re-shuffles the previous epoch's permutation, which no checkpoint holds.)
    """
    from bnpy.callbacks import Callback

    class StopAfterThisEpoch(Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        initial_epoch=epoch,
        verbose=verbose,
        validation_data=(xv, yv),
        callbacks=[StopAfterThisEpoch()],
    )


def evaluate_with_population_statistics(model, x_train, x_test, y_test_1h, batch_size):
    """(val_loss, val_acc) with every BN's moving statistics replaced by the population
    statistics of the training set (the paper's Algorithm 2, over the first POPULATION_BATCHES
    mini-batches of ``batch_size`` of x_train, in order), then the moving statistics and NumPy's
    RNG state put back bit for bit, so that training goes on exactly as without this
    evaluation."""
    from bnpy.layers.normalization import restore_moving_statistics, set_population_statistics

    rng_state = np.random.get_state()
    previous = set_population_statistics(
        model, x_train[: POPULATION_BATCHES * batch_size], batch_size
    )
    try:
        loss, acc = model.evaluate(x_test, y_test_1h, batch_size=batch_size, verbose=0)
    finally:
        restore_moving_statistics(model, previous)
        np.random.set_state(rng_state)
    return float(loss), float(acc)


def _population_evaluation(model, x_train, x_test, y_test_1h, batch_size, distributed):
    """evaluate_with_population_statistics; in a distributed run every rank computes it alone
    (the same numbers everywhere), its synchronized BNs using the batches they are given."""
    if not distributed:
        return evaluate_with_population_statistics(model, x_train, x_test, y_test_1h, batch_size)
    from bnpy.distributed import unsynchronized

    with unsynchronized():
        return evaluate_with_population_statistics(model, x_train, x_test, y_test_1h, batch_size)


def final_relu_alive(model, x, batch_size=500):
    """How many units of the ReLU after the first Dense are positive for at least one image of
    ``x`` (inference mode, moving statistics): (alive, units). 0 alive means the network's output
    no longer depends on its input: softmax of zeros (or of a constant), loss ln 10, and no
    gradient reaches any weight below that ReLU."""
    from bnpy.layers.core import Activation

    relu_index = max(
        i
        for i, layer in enumerate(model.layers)
        if isinstance(layer, Activation) and _common.activation_name(layer) == "relu"
    )
    alive = None
    for start in range(0, len(x), batch_size):
        out = x[start : start + batch_size]
        for layer in model.layers[: relu_index + 1]:
            out = layer.forward(out, training=False)
        positive = (out > 0).any(axis=0)
        alive = positive if alive is None else alive | positive
    return int(alive.sum()), int(alive.size)


def _history_row(epoch, history, seconds, population, population_seconds):
    h = history.history

    def last(*keys):
        for k in keys:
            if k in h and len(h[k]):
                return float(h[k][-1])
        return None

    return {
        "epoch": epoch,
        "loss": last("loss"),
        "acc": last("acc", "accuracy"),
        "val_loss": last("val_loss"),
        "val_acc": last("val_acc", "val_accuracy"),
        "val_loss_population": population[0],
        "val_acc_population": population[1],
        "epoch_time_s": round(seconds, 3),
        "population_time_s": round(population_seconds, 3),
    }


def _write_unit(run_dir, group, seed, unit):
    base = os.path.join(run_dir, "history-{}".format(unit_name(group, seed)))
    _common.write_csv(base + ".csv", unit["history"], HISTORY_COLUMNS)
    _common.write_json(
        base + ".json", dict(unit, group=group, seed=seed, description=GROUPS[group][0])
    )


def _read_finished_unit(run_dir, group, seed, epochs):
    """A unit an earlier (resumed) run already finished, from its history JSON; else None."""
    path = os.path.join(run_dir, "history-{}.json".format(unit_name(group, seed)))
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            unit = json.load(f)
    except (OSError, ValueError) as exc:
        raise _common.ExperimentError(
            "{} is damaged ({}); delete it to redo that part of the run".format(path, exc)
        ) from None
    if unit.get("complete") and len(unit.get("history", ())) == epochs:
        return {k: unit[k] for k in ("params", "complete", "history", "final_relu")}
    return None


def train_unit(args, run_dir, group, seed, data, resuming, log, after_epoch=None):
    """Train ``group`` from ``seed`` for args.epochs epochs (resuming from its checkpoint),
    evaluating after every epoch with the moving statistics (Keras) and with the population
    statistics (the paper); returns the unit's record (params, history, final_relu)."""
    x_train, y_train_1h, x_test, y_test_1h = data
    if resuming:
        finished = _read_finished_unit(run_dir, group, seed, args.epochs)
        if finished is not None:
            log("{} seed {}: finished earlier, kept".format(group, seed))
            return finished
    np.random.seed(seed)  # every group of one seed starts from the same RNG state
    distributed = getattr(args, "distributed", False)
    model = build_model(group, x_train.shape[1:], y_test_1h.shape[1], synchronized=distributed)
    model.compile(loss="categorical_crossentropy", optimizer="adadelta", metrics=["accuracy"])
    trainer = model
    if distributed:  # every rank trains its shard of each batch (bnpy.distributed)
        from bnpy.distributed import DataParallel

        trainer = DataParallel(model)
    unit = {
        "params": int(model.count_params()),
        "complete": False,
        "history": [],
        "final_relu": None,
    }
    checkpoint = os.path.join(run_dir, "checkpoints", "{}.npz".format(unit_name(group, seed)))
    start = 0
    if resuming and os.path.exists(checkpoint):
        progress = _common.load_checkpoint(checkpoint, model)
        unit["history"], start = progress["history"], progress["epochs_done"]
        log("Resuming {} seed {} after epoch {}/{}".format(group, seed, start, args.epochs))
    elif args.verbose and seed == args.seed:
        model.summary()
    for epoch in range(start, args.epochs):
        t0 = time.perf_counter()
        history = _fit_one_epoch(
            trainer,
            x_train,
            y_train_1h,
            x_test,
            y_test_1h,
            args.batch_size,
            epoch,
            args.epochs,
            args.verbose,
        )
        t1 = time.perf_counter()
        population = _population_evaluation(
            model, x_train, x_test, y_test_1h, args.batch_size, distributed
        )
        row = _history_row(epoch + 1, history, t1 - t0, population, time.perf_counter() - t1)
        unit["history"].append(row)
        _common.save_checkpoint(
            checkpoint, model, {"epochs_done": epoch + 1, "history": unit["history"]}
        )
        _write_unit(run_dir, group, seed, unit)
        log(
            "{} seed {} epoch {}/{}: loss {:.4f} acc {:.4f} | val acc {:.4f} (moving "
            "statistics), {:.4f} (population) | {:.1f} s".format(
                group,
                seed,
                epoch + 1,
                args.epochs,
                row["loss"],
                row["acc"],
                row["val_acc"],
                row["val_acc_population"],
                row["epoch_time_s"] + row["population_time_s"],
            )
        )
        if after_epoch is not None:
            after_epoch(group, epoch + 1)
    alive, units = final_relu_alive(model, x_test)
    unit.update(complete=True, final_relu={"alive": alive, "units": units})
    _write_unit(run_dir, group, seed, unit)
    return unit


# ------------------------------------------------------------------------------------------------
# The whole comparison
# ------------------------------------------------------------------------------------------------
def run(args, run_dir, resuming, log, data, after_epoch=None):
    """Train every group of ``args.groups`` from every seed and write all outputs into
    ``run_dir``; ``data`` is load_data(args)'s result.

    ``after_epoch(group, epochs_done)`` is called after each epoch's checkpoint is on disk (the
    tests use it to interrupt a run).
    """
    from . import _report

    groups = _common.parse_groups(args.groups, GROUPS)
    seeds = seeds_of(args)
    x_train, y_train, x_test, y_test, data_info = data
    num_classes = data_info["num_classes"]
    arrays = (
        x_train,
        _common.one_hot(y_train, num_classes),
        x_test,
        _common.one_hot(y_test, num_classes),
    )
    _common.write_json(os.path.join(run_dir, "dataset.json"), data_info)
    log(
        "Data: {} ({}), {} training and {} test images of shape {}, {} classes{}".format(
            data_info["title"],
            data_info["dataset"],
            len(x_train),
            len(x_test),
            tuple(data_info["input_shape"]),
            num_classes,
            "; " + data_info["note"] if "note" in data_info else "",
        )
    )
    checkpoints = os.path.join(run_dir, "checkpoints")
    os.makedirs(checkpoints, exist_ok=True)  # a finished run resumed again had it removed
    if resuming:  # a damaged checkpoint is reported now, not after hours of training
        for name in sorted(os.listdir(checkpoints)):
            _common.read_checkpoint(os.path.join(checkpoints, name))

    results = {g: {"description": GROUPS[g][0], "params": None, "seeds": {}} for g in groups}
    for group in groups:
        _draw_model(group, x_train.shape[1:], num_classes, run_dir, log)
    for seed_index, seed in enumerate(seeds, start=1):
        for index, group in enumerate(groups, start=1):
            log(
                "== Seed {} ({}/{}), group {}/{}: {} - {}".format(
                    seed, seed_index, len(seeds), index, len(groups), group, GROUPS[group][0]
                )
            )
            unit = train_unit(args, run_dir, group, seed, arrays, resuming, log, after_epoch)
            results[group]["params"] = unit["params"]
            results[group]["seeds"][str(seed)] = {
                "history": unit["history"],
                "final_relu": unit["final_relu"],
            }
    _report.write_article_report(
        args, run_dir, data_info, results, log, vars_config(args), POPULATION_BATCHES
    )
    if not args.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return results


def _draw_model(group, input_shape, num_classes, run_dir, log):
    from bnpy.utils.vis_utils import plot_model

    path = os.path.join(run_dir, "model-{}.png".format(group))
    if os.path.exists(path):
        return
    try:
        plot_model(build_model(group, input_shape, num_classes), path, show_shapes=True)
    except ImportError as exc:  # neither Graphviz nor matplotlib: the run still goes on
        log("(no model picture: {})".format(exc))


def describe_groups():
    return "\n".join("  {:<13} {}".format(g, d) for g, (d, _) in GROUPS.items())


def load_results(run_dir):
    with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
        return json.load(f)
