"""The BN paper's Figure 1 (``bnpy-experiment paper-fig1``).

Ioffe & Szegedy (2015), section 4.1: a network with three fully-connected hidden layers of 100
sigmoid units on 28x28 digits (784 -> 100 -> 100 -> 100 -> 10 softmax), with and without BN
before each sigmoid (``Dense -> BatchNormalization -> sigmoid``), trained with SGD on
mini-batches of 60. Panel (a): test accuracy against training steps; panels (b, c): the 15th,
50th and 85th percentiles, over the test images, of the input to one sigmoid of the last hidden
layer, over training, without and with BN. The paper trains 50,000 steps on MNIST; here MNIST
is used when ``mnist.load_data()`` has it, else Fashion-MNIST (said in the output).

Mini-batch b of step s is deterministic: the training set is visited in passes, pass p in the
order ``RandomState(seed + 1 + p).permutation(N)``, and step s takes the next 60 indices of that
endless sequence. So a resumed run needs only the step count (and the checkpointed weights and
optimizer state) to continue exactly.
"""

import os
import time

import numpy as np

from . import _common
from ._common import ExperimentError

GROUPS = {
    "no-bn": "3 x Dense(100) -> sigmoid, no BN",
    "bn": "3 x Dense(100) -> BatchNormalization -> sigmoid",
}
DEFAULTS = dict(steps=50000, eval_every=500, lr=0.5, batch_size=60)
HIDDEN_UNITS, HIDDEN_LAYERS = 100, 3
PERCENTILE_STYLES = (("p85", ":"), ("p50", "-"), ("p15", "--"))
HISTORY_COLUMNS = ["step", "test_acc", "test_loss", "p15", "p50", "p85", "train_time_s"]


def build_model(group, input_dim, num_classes=10):
    from bnpy.engine import reset_layer_names
    from bnpy.layers.core import Activation, Dense
    from bnpy.layers.normalization import BatchNormalization
    from bnpy.models import Sequential

    reset_layer_names()
    model = Sequential()
    for i in range(HIDDEN_LAYERS):
        kwargs = {"input_shape": (input_dim,)} if i == 0 else {}
        model.add(Dense(HIDDEN_UNITS, **kwargs))
        if group == "bn":
            model.add(BatchNormalization())
        model.add(Activation("sigmoid"))
    model.add(Dense(num_classes))
    model.add(Activation("softmax"))
    return model


def validate_args(args):
    _common.parse_groups(args.groups, GROUPS)
    if args.unit >= HIDDEN_UNITS:
        raise ExperimentError("--unit must be below {}, got {}".format(HIDDEN_UNITS, args.unit))


def vars_config(args):
    return {
        k: getattr(args, k)
        for k in (
            "steps",
            "eval_every",
            "lr",
            "unit",
            "batch_size",
            "train_size",
            "test_size",
            "seed",
            "groups",
            "dataset",
        )
    }


def batch_indices(step, batch_size, n, seed):
    """Indices of the mini-batch of ``step`` (0-based): see the module docstring."""
    start = step * batch_size
    out, filled = np.empty(batch_size, dtype=np.int64), 0
    while filled < batch_size:
        pass_index, offset = divmod(start + filled, n)
        order = np.random.RandomState(seed + 1 + pass_index).permutation(n)
        take = min(batch_size - filled, n - offset)
        out[filled : filled + take] = order[offset : offset + take]
        filled += take
    return out


def sigmoid_input(model, x, unit):
    """Input of ``unit`` of the last hidden sigmoid for every row of ``x`` (inference mode)."""
    from bnpy.layers.core import Activation

    sigmoid_positions = [
        i
        for i, layer in enumerate(model.layers)
        if isinstance(layer, Activation) and _common.activation_name(layer) == "sigmoid"
    ]
    last = sigmoid_positions[-1]
    h = x
    for layer in model.layers[:last]:
        h = layer.forward(h, training=False)
    return np.asarray(h)[:, unit]


def _evaluate(model, x_test, y_test_1h, unit, step, train_time):
    loss, acc = model.evaluate(x_test, y_test_1h, batch_size=1000, verbose=0)
    p15, p50, p85 = np.percentile(sigmoid_input(model, x_test, unit), [15, 50, 85])
    return {
        "step": step,
        "test_acc": float(acc),
        "test_loss": float(loss),
        "p15": float(p15),
        "p50": float(p50),
        "p85": float(p85),
        "train_time_s": round(train_time, 3),
    }


def load_data(args, log):
    """The run's data, loaded before anything is written (MNIST, else Fashion-MNIST)."""
    return _common.load_run_data(args, ("mnist", "fashion_mnist"), log)


def run(args, run_dir, resuming, log, data, after_epoch=None):
    validate_args(args)
    groups = _common.parse_groups(args.groups, GROUPS)
    x_train, y_train, x_test, y_test, info = data
    num_classes = info["num_classes"]
    x_train = x_train.reshape(len(x_train), -1)
    x_test = x_test.reshape(len(x_test), -1)
    y_train_1h = _common.one_hot(y_train, num_classes)
    y_test_1h = _common.one_hot(y_test, num_classes)
    _common.write_json(os.path.join(run_dir, "dataset.json"), info)
    log(
        "Data: {} ({}), {} training and {} test images flattened to {} inputs{}".format(
            info["title"],
            info["dataset"],
            len(x_train),
            len(x_test),
            x_train.shape[1],
            "; " + info["note"] if "note" in info else "",
        )
    )

    from bnpy.optimizers import SGD

    results = {}
    for group in groups:
        np.random.seed(args.seed)
        model = build_model(group, x_train.shape[1], num_classes)
        model.compile(
            loss="categorical_crossentropy", optimizer=SGD(lr=args.lr), metrics=["accuracy"]
        )
        log(
            "== {}: {} ({:,} parameters), SGD lr {}, batch {}, {} steps".format(
                group, GROUPS[group], model.count_params(), args.lr, args.batch_size, args.steps
            )
        )
        checkpoint = os.path.join(run_dir, "checkpoints", "{}.npz".format(group))
        if resuming and os.path.exists(checkpoint):
            progress = _common.load_checkpoint(checkpoint, model)
            rows, step, train_time = (
                progress["history"],
                progress["steps_done"],
                progress["train_time_s"],
            )
            log("Resuming {} after step {}/{}".format(group, step, args.steps))
        else:
            rows, step, train_time = [], 0, 0.0
            rows.append(_evaluate(model, x_test, y_test_1h, args.unit, 0, 0.0))
        while step < args.steps:
            stop = min(args.steps, (step // args.eval_every + 1) * args.eval_every)
            t0 = time.perf_counter()
            for s in range(step, stop):
                idx = batch_indices(s, args.batch_size, len(x_train), args.seed)
                model.train_on_batch(x_train[idx], y_train_1h[idx])
            train_time += time.perf_counter() - t0
            step = stop
            rows.append(_evaluate(model, x_test, y_test_1h, args.unit, step, train_time))
            _common.save_checkpoint(
                checkpoint, model, {"steps_done": step, "history": rows, "train_time_s": train_time}
            )
            _write_group_history(run_dir, group, rows)
            r = rows[-1]
            if args.verbose:
                log(
                    "{} step {}/{}: test acc {:.4f}, sigmoid input p15/p50/p85 {:.3f} / {:.3f} / "
                    "{:.3f} ({:.1f} s)".format(
                        group,
                        step,
                        args.steps,
                        r["test_acc"],
                        r["p15"],
                        r["p50"],
                        r["p85"],
                        train_time,
                    )
                )
            if after_epoch is not None:
                after_epoch(group, step)
        _write_group_history(run_dir, group, rows)
        results[group] = {
            "description": GROUPS[group],
            "params": int(model.count_params()),
            "history": rows,
        }

    plot_fig1(results, os.path.join(run_dir, "fig1.png"), info, args)
    _common.write_json(
        os.path.join(run_dir, "results.json"),
        {"dataset": info, "config": vars_config(args), "groups": results},
    )
    _common.atomic_write_text(
        os.path.join(run_dir, "summary.md"), summary_markdown(args, info, results)
    )
    return results


def _write_group_history(run_dir, group, rows):
    base = os.path.join(run_dir, "history-{}".format(group))
    _common.write_csv(base + ".csv", rows, HISTORY_COLUMNS)
    _common.write_json(
        base + ".json", {"group": group, "description": GROUPS[group], "history": rows}
    )


def plot_fig1(results, path, info, args):
    """The paper's three panels: (a) test accuracy vs steps; (b, c) sigmoid-input percentiles."""
    from bnpy.utils.vis_utils import _import_pyplot, _save, _write_atomically

    Figure = _import_pyplot("paper-fig1")
    fig = Figure(figsize=(13, 4), dpi=100)
    axes = fig.subplots(1, 3)
    styles = {"bn": ("C0", "with BN"), "no-bn": ("C3", "without BN")}
    for group, result in results.items():
        colour, label = styles[group]
        steps = [r["step"] for r in result["history"]]
        axes[0].plot(steps, [r["test_acc"] for r in result["history"]], color=colour, label=label)
    axes[0].set_title("(a) test accuracy")
    axes[0].set_xlabel("training steps")
    for ax, group in zip(axes[1:], ("no-bn", "bn")):
        ax.set_title(
            "({}) sigmoid input, {}".format("b" if group == "no-bn" else "c", styles[group][1])
        )
        ax.set_xlabel("training steps")
        if group not in results:
            ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            continue
        history = results[group]["history"]
        steps = [r["step"] for r in history]
        for key, style in PERCENTILE_STYLES:
            ax.plot(steps, [r[key] for r in history], style, color=styles[group][0])
    for ax in axes:
        ax.grid(True, alpha=0.3)
    # One legend below the panels, so that it never covers a curve: colour = group, line style =
    # percentile.
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colour, label=label) for colour, label in styles.values()]
    handles += [
        Line2D([], [], color="0.3", linestyle=style, label="{}th percentile".format(key[1:]))
        for key, style in PERCENTILE_STYLES
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9)
    fig.suptitle(
        "Figure 1 of Ioffe & Szegedy (2015) on {} ({} train / {} test), SGD lr {}, batch {}".format(
            info["title"], info["train_used"], info["test_used"], args.lr, args.batch_size
        )
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    _write_atomically(path, lambda tmp: _save(fig, tmp, "png"))


def summary_markdown(args, info, results):
    rows = []
    for group, result in results.items():
        history = result["history"]
        best = max(history, key=lambda r: r["test_acc"])
        last = history[-1]
        rows.append(
            [
                group,
                "{:,}".format(result["params"]),
                last["step"],
                "{:.4f}".format(last["test_acc"]),
                "{:.4f} (step {})".format(best["test_acc"], best["step"]),
                "{:.3f} / {:.3f} / {:.3f}".format(last["p15"], last["p50"], last["p85"]),
                "{:.1f}".format(last["train_time_s"]),
            ]
        )
    return (
        "\n".join(
            [
                "# The BN paper's Figure 1 (Ioffe & Szegedy 2015, section 4.1)\n",
                "Data: {} ({}), {} training / {} test images{}.\n".format(
                    info["title"],
                    info["dataset"],
                    info["train_used"],
                    info["test_used"],
                    "; " + info["note"] if "note" in info else "",
                )
                + "".join("\n\nLoader warning: " + w for w in info.get("loader_warnings", [])),
                "Settings: 784-100-100-100-10, sigmoid hidden units, softmax output, SGD lr {}, batch "
                "{}, {} steps, seed {}; sigmoid unit {} of the last hidden layer followed.\n".format(
                    args.lr, args.batch_size, args.steps, args.seed, args.unit
                ),
                _common.markdown_table(
                    [
                        "group",
                        "params",
                        "steps",
                        "final test acc",
                        "best test acc",
                        "final p15 / p50 / p85",
                        "training time (s)",
                    ],
                    rows,
                ),
            ]
        )
        + "\n"
    )
