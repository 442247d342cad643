"""The article experiment's summary table (bnpy.experiments._report) from synthetic histories."""

import types

from bnpy.experiments import _report


def _history(val_acc, epochs=2):
    return [
        {
            "val_acc": val_acc,
            "val_acc_population": val_acc + 0.1,
            "acc": 0.5,
            "val_loss": 1.5,
            "val_loss_population": 1.2,
            "epoch_time_s": 10.0,
            "population_time_s": 1.0,
        }
        for _ in range(epochs)
    ]


def _results(val_accs):
    seeds = {
        str(seed): {"history": _history(acc), "final_relu": {"alive": 10, "units": 10}}
        for seed, acc in enumerate(val_accs)
    }
    return {"all-comments": {"seeds": seeds, "params": 355192, "description": "four BN"}}


def _summary_table(val_accs):
    results = _results(val_accs)
    summary = _report.aggregate(results)
    args = types.SimpleNamespace(batch_size=32, epochs=2, seeds=len(val_accs))
    data_info = {"title": "synthetic", "dataset": "none", "train_used": 100, "test_used": 50}
    text = _report.summary_markdown(
        args, data_info, results, summary, _report.compare(summary), [], 100
    )
    return text[text.index("## Results") : text.index("## Per seed")]


def test_one_seed_shows_values_without_a_spread():
    # one seed has no sample standard deviation: "0.543 ± 0.000" would claim a spread of zero
    table = _summary_table([0.5428])
    assert "## Results (one seed)" in table
    assert "| 0.543 | 0.643 |" in table
    assert "±" not in table


def test_several_seeds_show_mean_and_sample_sd():
    table = _summary_table([0.50, 0.54, 0.52])
    assert "mean ± standard deviation over 3 seeds" in table
    assert "| 0.520 ± 0.020 | 0.620 ± 0.020 |" in table
