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
augmentation is used here either). The groups (seed/README.md), each built with the same seed:

* ``all-comments``: all four commented lines enabled (BN in four places plus the extra Dense);
* ``comment4``: only comment 4 enabled (the extra Dense; BN only after the first Dense);
* ``no-bn``: every BatchNormalization removed, comments 1-4 stay commented;
* ``as-printed``: the script as printed (one BN, after the first Dense).

Each group checkpoints after every epoch (weights, Adadelta state, history, NumPy RNG state,
written atomically), so an interrupted run resumes from its last finished epoch and ends exactly
as an uninterrupted one would.
"""
import json
import os
import time

import numpy as np

from . import _common

GROUPS = {
    "all-comments": ("all four commented lines enabled: BN after conv 1, after the pooling, after "
                     "conv 2 and after the first Dense, plus the extra Dense(10)",
                     dict(bn1=True, bn2=True, bn3=True, bn_dense=True, extra_dense=True)),
    "comment4": ("only comment 4 enabled: the extra Dense(10) after the ReLU; BN only after the "
                 "first Dense",
                 dict(bn1=False, bn2=False, bn3=False, bn_dense=True, extra_dense=True)),
    "no-bn": ("no BatchNormalization at all (the printed BN line commented out too)",
              dict(bn1=False, bn2=False, bn3=False, bn_dense=False, extra_dense=False)),
    "as-printed": ("the script as printed: one BN, after the first Dense",
                   dict(bn1=False, bn2=False, bn3=False, bn_dense=True, extra_dense=False)),
}
DEFAULTS = dict(epochs=8, batch_size=32, seed=0)
HISTORY_COLUMNS = ["epoch", "loss", "acc", "val_loss", "val_acc", "epoch_time_s"]


def build_model(group, input_shape, num_classes=10):
    """The article's network for ``group`` (a key of GROUPS), adapted to ``input_shape`` (H, W, C).

    Layer names restart at _1 for every model, as in a fresh Keras process.
    """
    from bnpy.engine import reset_layer_names
    from bnpy.layers.convolutional import Conv2D
    from bnpy.layers.pooling import MaxPooling2D
    from bnpy.layers.core import Activation, Dense, Flatten
    from bnpy.layers.normalization import BatchNormalization
    from bnpy.models import Sequential

    flags = GROUPS[group][1]
    reset_layer_names()
    model = Sequential()
    # The script's Keras-1 spelling Convolution2D(96, 11, 11, border_mode='same') in Keras 2 terms
    model.add(Conv2D(96, (11, 11), padding="same", input_shape=tuple(input_shape)))
    if flags["bn1"]:
        model.add(BatchNormalization())
    model.add(MaxPooling2D(pool_size=(2, 2)))
    if flags["bn2"]:
        model.add(BatchNormalization())
    model.add(Activation("tanh"))
    model.add(Conv2D(120, (1, 1), padding="valid"))
    if flags["bn3"]:
        model.add(BatchNormalization())
    model.add(Flatten())
    model.add(Dense(num_classes))
    if flags["bn_dense"]:
        model.add(BatchNormalization())
    model.add(Activation("relu"))
    if flags["extra_dense"]:
        model.add(Dense(num_classes))
    model.add(Activation("softmax"))
    return model


def validate_args(args):
    _common.parse_groups(args.groups, GROUPS)


def _history_row(epoch, history, seconds):
    h = history.history

    def last(*keys):
        for k in keys:
            if k in h and len(h[k]):
                return float(h[k][-1])
        return None
    return {"epoch": epoch, "loss": last("loss"), "acc": last("acc", "accuracy"),
            "val_loss": last("val_loss"), "val_acc": last("val_acc", "val_accuracy"),
            "epoch_time_s": round(seconds, 3)}


def _write_group_history(run_dir, group, rows):
    base = os.path.join(run_dir, "history-{}".format(group))
    _common.write_csv(base + ".csv", rows, HISTORY_COLUMNS)
    _common.write_json(base + ".json", {"group": group, "description": GROUPS[group][0],
                                        "history": rows})


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

    return model.fit(x, y, batch_size=batch_size, epochs=epochs, initial_epoch=epoch,
                     verbose=verbose, validation_data=(xv, yv),
                     callbacks=[StopAfterThisEpoch()])


def run(args, run_dir, resuming, log, after_epoch=None):
    """Train every group of ``args.groups`` and write all outputs into ``run_dir``.

    ``after_epoch(group, epochs_done)`` is called after each epoch's checkpoint is on disk (the
    tests use it to interrupt a run).
    """
    groups = _common.parse_groups(args.groups, GROUPS)
    x_train, y_train, x_test, y_test, data_info = _common.load_run_data(args, ("cifar10", "fashion_mnist"), log)
    num_classes = data_info["num_classes"]
    y_train_1h = _common.one_hot(y_train, num_classes)
    y_test_1h = _common.one_hot(y_test, num_classes)
    data_info.update(train_used=int(len(x_train)), test_used=int(len(x_test)))
    _common.write_json(os.path.join(run_dir, "dataset.json"), data_info)
    log("Data: {} ({}), {} training and {} test images of shape {}, {} classes{}".format(
        data_info["title"], data_info["dataset"], len(x_train), len(x_test),
        tuple(data_info["input_shape"]), num_classes,
        "; " + data_info["note"] if "note" in data_info else ""))

    from bnpy.utils.vis_utils import plot_history, plot_model
    results = {}
    for index, group in enumerate(groups, start=1):
        np.random.seed(args.seed)  # every group starts from the same seed
        model = build_model(group, x_train.shape[1:], num_classes)
        model.compile(loss="categorical_crossentropy", optimizer="adadelta",
                      metrics=["accuracy"])
        params = int(model.count_params())
        log("== Group {}/{}: {} - {} ({:,} parameters)".format(
            index, len(groups), group, GROUPS[group][0], params))
        if args.verbose:
            model.summary()
        try:
            plot_model(model, os.path.join(run_dir, "model-{}.png".format(group)),
                       show_shapes=True)
        except ImportError as exc:  # neither Graphviz nor matplotlib: the run still goes on
            log("(no model picture: {})".format(exc))

        checkpoint = os.path.join(run_dir, "checkpoints", "{}.npz".format(group))
        rows, start = [], 0
        if resuming and os.path.exists(checkpoint):
            progress = _common.load_checkpoint(checkpoint, model)
            rows, start = progress["history"], progress["epochs_done"]
            log("Resuming {} after epoch {}/{}".format(group, start, args.epochs))
        for epoch in range(start, args.epochs):
            t0 = time.perf_counter()
            history = _fit_one_epoch(model, x_train, y_train_1h, x_test, y_test_1h,
                                     args.batch_size, epoch, args.epochs, args.verbose)
            row = _history_row(epoch + 1, history, time.perf_counter() - t0)
            rows.append(row)
            _common.save_checkpoint(checkpoint, model, {"epochs_done": epoch + 1,
                                                        "history": rows})
            _write_group_history(run_dir, group, rows)
            log("{} epoch {}/{}: loss {:.4f} acc {:.4f} val_loss {:.4f} val_acc {:.4f} "
                "({:.1f} s)".format(group, epoch + 1, args.epochs, row["loss"], row["acc"],
                                    row["val_loss"], row["val_acc"], row["epoch_time_s"]))
            if after_epoch is not None:
                after_epoch(group, epoch + 1)
        _write_group_history(run_dir, group, rows)
        results[group] = {"description": GROUPS[group][0], "params": params, "history": rows}

    histories = {g: {k: [r[k] for r in results[g]["history"]] for k in HISTORY_COLUMNS[1:5]}
                 for g in groups}
    plot_history(histories, os.path.join(run_dir, "history.png"),
                 title="The article's BN comparison on {} ({} train / {} test images)".format(
                     data_info["title"], len(x_train), len(x_test)))
    _common.write_json(os.path.join(run_dir, "results.json"),
                       {"dataset": data_info, "config": vars_config(args), "groups": results})
    _common.atomic_write_text(os.path.join(run_dir, "summary.md"),
                              summary_markdown(args, data_info, results))
    return results


def vars_config(args):
    return {k: getattr(args, k) for k in ("epochs", "batch_size", "train_size", "test_size",
                                          "seed", "groups", "dataset")}


def summary_markdown(args, data_info, results):
    """The run's summary: settings, data, and per group final/best validation accuracy, times."""
    rows = []
    for group, result in results.items():
        history = result["history"]
        best = max(history, key=lambda r: r["val_acc"])
        times = [r["epoch_time_s"] for r in history]
        rows.append([group, "{:,}".format(result["params"]),
                     "{:.4f}".format(history[-1]["val_acc"]),
                     "{:.4f} (epoch {})".format(best["val_acc"], best["epoch"]),
                     "{:.4f}".format(history[-1]["acc"]), "{:.4f}".format(history[-1]["val_loss"]),
                     "{:.1f}".format(float(np.mean(times))), "{:.1f}".format(float(np.sum(times)))])
    text = ["# The article's BN comparison\n",
            "Data: {} ({}), {} training / {} test images{}.\n".format(
                data_info["title"], data_info["dataset"], data_info["train_used"],
                data_info["test_used"], "; " + data_info["note"] if "note" in data_info else "")
            + "".join("\n\nLoader warning: " + w for w in data_info.get("loader_warnings", [])),
            "Settings: Adadelta (lr 1.0, rho 0.95, eps 1e-8), batch size {}, {} epochs, "
            "categorical cross-entropy, validation on the test images, seed {}.\n".format(
                args.batch_size, args.epochs, args.seed),
            _common.markdown_table(
                ["group", "params", "final val acc", "best val acc", "final train acc",
                 "final val loss", "mean epoch time (s)", "total time (s)"], rows),
            "\nGroups:\n"]
    text += ["- `{}`: {}".format(g, r["description"]) for g, r in results.items()]
    return "\n".join(text) + "\n"


def describe_groups():
    return "\n".join("  {:<13} {}".format(g, d) for g, (d, _) in GROUPS.items())


def load_results(run_dir):
    with open(os.path.join(run_dir, "results.json"), encoding="utf-8") as f:
        return json.load(f)
