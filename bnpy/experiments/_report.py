"""The article experiment's report: results.json, summary.md and history.png from the per-seed
histories, with each metric's spread over the seeds and the tests that say which group
differences exceed it."""

import math
import os

import numpy as np

from . import _common, _stats

#: (key, label, value of one seed's history): the metrics the report aggregates over seeds.
METRICS = (
    ("final_val_acc", "final val acc, moving statistics", lambda h: h[-1]["val_acc"]),
    (
        "final_val_acc_population",
        "final val acc, population statistics",
        lambda h: h[-1]["val_acc_population"],
    ),
    ("best_val_acc", "best val acc, moving statistics", lambda h: max(r["val_acc"] for r in h)),
    ("final_train_acc", "final train acc", lambda h: h[-1]["acc"]),
    ("final_val_loss", "final val loss, moving statistics", lambda h: h[-1]["val_loss"]),
    (
        "final_val_loss_population",
        "final val loss, population statistics",
        lambda h: h[-1]["val_loss_population"],
    ),
)
#: The metrics whose group differences are tested against the seed noise.
TESTED = ("final_val_acc", "final_val_acc_population", "final_train_acc")
ALPHA = 0.05


def aggregate(results):
    """Per group: each metric's per-seed values, mean and standard deviation; the runs that
    died; the mean seconds an epoch takes (training, and the population evaluation)."""
    summary = {}
    for group, result in results.items():
        seeds = result["seeds"]
        entry = {"seeds": [int(s) for s in seeds], "metrics": {}}
        for key, _, value in METRICS:
            values = [float(value(seeds[s]["history"])) for s in seeds]
            mean, sd = _stats.mean_sd(values)
            entry["metrics"][key] = {"values": values, "mean": mean, "sd": sd}
        entry["died"] = [int(s) for s in seeds if seeds[s]["final_relu"]["alive"] == 0]
        entry["epoch_time_s"] = float(
            np.mean([r["epoch_time_s"] for s in seeds for r in seeds[s]["history"]])
        )
        entry["population_time_s"] = float(
            np.mean([r["population_time_s"] for s in seeds for r in seeds[s]["history"]])
        )
        summary[group] = entry
    return summary


def compare(summary):
    """Welch's t-test between every two groups, per tested metric, with Holm's correction over
    that metric's pairs: {metric: [dict(a, b, diff, t, df, p, p_holm, significant), ...]}; empty
    with fewer than two seeds."""
    groups = list(summary)
    if min(len(e["seeds"]) for e in summary.values()) < 2:
        return {}
    comparisons = {}
    for key in TESTED:
        rows = []
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                test = _stats.welch_test(
                    summary[a]["metrics"][key]["values"], summary[b]["metrics"][key]["values"]
                )
                rows.append(dict(test, a=a, b=b))
        for row, p_holm in zip(rows, _stats.holm([r["p"] for r in rows])):
            row.update(p=float(row["p"]), p_holm=float(p_holm), significant=bool(p_holm < ALPHA))
        comparisons[key] = rows
    return comparisons


def _pm(entry, digits=3):
    """A metric's "mean ± sample standard deviation" over the seeds; one seed has no spread to
    show (its sample standard deviation is undefined, not 0), so its value alone."""
    if len(entry["values"]) < 2:
        return "{:.{d}f}".format(entry["mean"], d=digits)
    return "{:.{d}f} ± {:.{d}f}".format(entry["mean"], entry["sd"], d=digits)


def _label(key):
    return next(label for k, label, _ in METRICS if k == key)


def summary_markdown(args, data_info, results, summary, comparisons, kept, population_batches):
    seeds = sorted({s for e in summary.values() for s in e["seeds"]})
    n = len(seeds)
    text = [
        "# The article's BN comparison\n",
        "Data: {} ({}), {} training / {} test images{}.".format(
            data_info["title"],
            data_info["dataset"],
            data_info["train_used"],
            data_info["test_used"],
            "; " + data_info["note"] if "note" in data_info else "",
        ),
    ]
    text += ["Loader warning: " + w for w in data_info.get("loader_warnings", [])]
    text += [
        "",
        "Settings: Adadelta (lr 1.0, rho 0.95, eps 1e-8), batch size {}, {} epochs, "
        "categorical cross-entropy, validation on the test images; {}.".format(
            args.batch_size,
            args.epochs,
            "seeds {}-{} ({} seeds)".format(seeds[0], seeds[-1], n)
            if n > 1
            else "one seed ({}): an illustration, not a comparison; --seeds 5 measures the "
            "spread".format(seeds[0]),
        ),
        "Validation is evaluated twice after every epoch: with each BN's moving averages "
        "(Keras 2.0's inference) and with the population statistics of the training set "
        "(the BN paper's Algorithm 2, over its first {} mini-batches).".format(population_batches),
        "Compute time: {:.1f} min (the sum of all epochs' training and evaluation).".format(
            sum(
                r["epoch_time_s"] + r["population_time_s"]
                for g in results.values()
                for s in g["seeds"].values()
                for r in s["history"]
            )
            / 60
        ),
        "",
    ]

    text.append(
        "## Results ({})\n".format(
            "mean ± standard deviation over {} seeds".format(n) if n > 1 else "one seed"
        )
    )
    header = (
        ["group", "params"]
        + [_label(k) for k, _, _ in METRICS]
        + ["runs died", "s/epoch (+ population eval)"]
    )
    rows = []
    for group, entry in summary.items():
        rows.append(
            [group, "{:,}".format(results[group]["params"])]
            + [_pm(entry["metrics"][k]) for k, _, _ in METRICS]
            + [
                "{} of {}".format(len(entry["died"]), len(entry["seeds"])),
                "{:.1f} (+ {:.1f})".format(entry["epoch_time_s"], entry["population_time_s"]),
            ]
        )
    text.append(_common.markdown_table(header, rows))
    text.append(
        "A run has *died* when no unit of the ReLU after the first Dense is positive for "
        "any test image after the last epoch: the output is then the same for every "
        "image (loss ln 10 = {:.4f} with a uniform softmax).\n".format(math.log(10))
    )

    text.append("## Per seed\n")
    rows = []
    for group, entry in summary.items():
        for i, seed in enumerate(entry["seeds"]):
            relu = results[group]["seeds"][str(seed)]["final_relu"]
            rows.append(
                [group, seed]
                + [
                    "{:.4f}".format(entry["metrics"][k]["values"][i])
                    for k in (
                        "final_val_acc",
                        "final_val_acc_population",
                        "final_train_acc",
                        "final_val_loss",
                    )
                ]
                + ["{} of {}".format(relu["alive"], relu["units"])]
            )
    text.append(
        _common.markdown_table(
            [
                "group",
                "seed",
                "final val acc (moving)",
                "final val acc (population)",
                "final train acc",
                "final val loss (moving)",
                "final ReLU units alive",
            ],
            rows,
        )
    )

    text.append("## What this run found\n")
    text += findings(summary, comparisons)
    text.append("")
    text.append("## What these numbers do not show\n")
    text += [
        "- One network, one optimizer setting (the article's), {} epochs, one dataset of {} "
        "training images: other settings can order the groups differently.".format(
            args.epochs, data_info["train_used"]
        ),
        "- With {} test images an accuracy is known to about ±{:.3f} (one binomial standard "
        "error at 0.5) from the test sample alone, before any seed-to-seed spread.".format(
            data_info["test_used"], math.sqrt(0.25 / max(1, data_info["test_used"]))
        ),
        "- The tests compare final epochs only; differences during training (speed of "
        "learning) are in the per-epoch histories and the figure, untested.",
    ]
    if "sample" in data_info["dataset"] or "jpeg" in data_info["title"].lower():
        text.append(
            "- The images are JPEG copies of CIFAR-10 (quality 75), whose source reports "
            "2-3 % lower accuracy than the original images."
        )
    text.append("")
    text.append("## Files\n")
    text += ["- `{}`: {}".format(name, what) for name, what in kept]
    text.append("\nGroups:\n")
    text += ["- `{}`: {}".format(g, r["description"]) for g, r in results.items()]
    return "\n".join(text) + "\n"


def findings(summary, comparisons):
    """Plain sentences of what the numbers support, each with its figures."""
    lines = []
    for group, entry in summary.items():
        if entry["died"]:
            lines.append(
                "- `{}`: {} of {} runs died (seeds {}).".format(
                    group,
                    len(entry["died"]),
                    len(entry["seeds"]),
                    ", ".join(map(str, entry["died"])),
                )
            )
    if not any(e["died"] for e in summary.values()):
        lines.append("- No run died.")
    if not comparisons:
        lines.append(
            "- One seed per group: the differences between groups cannot be told from "
            "the seed-to-seed spread (run with --seeds 5 or more)."
        )
    for key, rows in comparisons.items():
        significant = [r for r in rows if r["significant"]]
        lines.append(
            "- {}: {} of {} group differences exceed the seed noise (Welch's t-test, "
            "Holm-corrected p < {}){}".format(
                _label(key).capitalize(), len(significant), len(rows), ALPHA, ":" if rows else "."
            )
        )
        for r in sorted(rows, key=lambda r: r["p"]):
            lines.append(
                "  - `{}` − `{}`: {:+.3f} (t = {:.2f}, df = {:.1f}, p = {:.3g}, Holm "
                "{:.3g}): {}".format(
                    r["a"],
                    r["b"],
                    r["diff"],
                    r["t"],
                    r["df"],
                    r["p"],
                    r["p_holm"],
                    "exceeds the seed noise" if r["significant"] else "within the seed noise",
                )
            )
    for group, entry in summary.items():
        moving = entry["metrics"]["final_val_acc"]["values"]
        population = entry["metrics"]["final_val_acc_population"]["values"]
        gain = np.subtract(population, moving)
        if np.any(gain != 0):  # a group without BN has no statistics to choose
            mean, sd = _stats.mean_sd(gain)
            paired = ""
            if len(gain) > 1:  # paired t-test: the same runs evaluated both ways
                t = mean / (sd / np.sqrt(len(gain))) if sd > 0 else np.copysign(np.inf, mean)
                paired = ", paired t-test p = {:.3g}".format(
                    _stats.t_two_sided_p(float(t), len(gain) - 1.0)
                )
            spread = (
                " ± {:.3f} (higher in {} of {} runs{})".format(
                    sd, int((gain > 0).sum()), len(gain), paired
                )
                if len(gain) > 1
                else " (one run)"
            )
            lines.append(
                "- `{}`: final val acc with population minus with moving statistics: "
                "{:+.3f}{}".format(group, mean, spread)
            )
    return lines


def plot_seeds(results, summary, path, title):
    """Mean over seeds (line) and ± one standard deviation (band) per group and epoch: training
    accuracy, validation accuracy with moving and with population statistics, validation loss
    with moving statistics. The legend sits below the panels, never on the data."""
    from matplotlib.figure import Figure

    panels = (
        ("acc", "training accuracy"),
        ("val_acc", "validation accuracy, moving statistics (Keras)"),
        ("val_acc_population", "validation accuracy, population statistics (paper)"),
        ("val_loss", "validation loss, moving statistics"),
    )
    fig = Figure(figsize=(12, 8.6), dpi=100)
    axes = fig.subplots(2, 2).ravel()
    handles = []
    for colour, group in enumerate(results):
        histories = [results[group]["seeds"][s]["history"] for s in results[group]["seeds"]]
        epochs = np.arange(1, len(histories[0]) + 1)
        n = len(histories)
        label = "{} ({} seed{}{})".format(
            group,
            n,
            "s" if n > 1 else "",
            ", {} died".format(len(summary[group]["died"])) if summary[group]["died"] else "",
        )
        for ax, (key, _) in zip(axes, panels):
            values = np.array([[r[key] for r in h] for h in histories], dtype=np.float64)
            mean = values.mean(axis=0)
            (line,) = ax.plot(
                epochs, mean, "-o", markersize=3, color="C{}".format(colour), label=label
            )
            if n > 1:
                sd = values.std(axis=0, ddof=1)
                ax.fill_between(
                    epochs,
                    mean - sd,
                    mean + sd,
                    color="C{}".format(colour),
                    alpha=0.18,
                    linewidth=0,
                )
        handles.append(line)
    low = min(axes[1].get_ylim()[0], axes[2].get_ylim()[0])  # the two validation accuracies
    high = max(axes[1].get_ylim()[1], axes[2].get_ylim()[1])  # on one scale, to compare them
    axes[1].set_ylim(low, high)
    axes[2].set_ylim(low, high)
    for ax, (_key, name) in zip(axes, panels):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title, fontsize=11)
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(4, len(handles)),
        fontsize=9,
        title="mean over seeds, band ± 1 standard deviation"
        if any(len(r["seeds"]) > 1 for r in results.values())
        else None,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    from bnpy.utils.io_utils import atomic_output

    with atomic_output(path, ".tmp-") as tmp:
        fig.savefig(tmp, format="png")
    return path


def write_article_report(args, run_dir, data_info, results, log, config, population_batches):
    summary = aggregate(results)
    comparisons = compare(summary)
    title = "The article's BN comparison on {} ({} train / {} test images, {})".format(
        data_info["title"],
        data_info["train_used"],
        data_info["test_used"],
        "{} seeds".format(args.seeds) if args.seeds > 1 else "one seed",
    )
    kept = [
        ("summary.md", "this summary"),
        ("results.json", "everything below as data: per-seed histories, aggregates, tests"),
        ("history-<group>-seed<k>.csv/.json", "per-epoch history of each group and seed"),
        ("model-<group>.png", "each group's network"),
        ("dataset.json", "the data used"),
        ("run.json", "settings, versions, status"),
        ("progress.log", "the run's log"),
    ]
    try:
        plot_seeds(results, summary, os.path.join(run_dir, "history.png"), title)
        kept.insert(2, ("history.png", "the figure: mean and spread over seeds per epoch"))
    except ImportError as exc:
        log("(no figure: matplotlib is missing: {}; pip install 'bnpy[plot]')".format(exc))
    kept.append(
        ("checkpoints/", "per group and seed, to resume or continue training")
        if args.keep_checkpoints
        else ("(checkpoints)", "removed when the run finished; --keep-checkpoints keeps them")
    )
    _common.write_json(
        os.path.join(run_dir, "results.json"),
        {
            "dataset": data_info,
            "config": config,
            "groups": results,
            "aggregate": summary,
            "comparisons": comparisons,
        },
    )
    text = summary_markdown(
        args, data_info, results, summary, comparisons, kept, population_batches
    )
    _common.atomic_write_text(os.path.join(run_dir, "summary.md"), text)
    start = text.index("## What this run found")
    log(text[start : text.index("## What these numbers")].rstrip())
    return summary, comparisons
