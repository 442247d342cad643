"""bnpy-experiment article on tiny data the tests write in the official formats: every output file
is written and well-formed, an interrupted run resumes to the same result as an uninterrupted one,
earlier results are never overwritten silently, several seeds give per-seed and aggregated
results."""

import json
import os

import numpy as np
import pytest
from experiment_fixtures import (
    ARTICLE_TINY,
    Interrupt,
    article_argv,
    check_article_run,
    read_csv,
    run_cli,
    write_tiny_cifar10,
)

pytest.importorskip("bnpy.models")
pytest.importorskip("bnpy.datasets")
pytest.importorskip("matplotlib")

from bnpy.experiments import _common, article  # noqa: E402


# --------------------------------------------------------------------------------------------
# The article's models
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "group, total, non_trainable",
    [
        # keras-2.0-api.md section 2.2: the totals Keras 2.0 prints for the article's groups
        ("all-comments", 355192, 644),
        ("comment4", 353944, 20),
        ("no-bn", 353794, 0),
        ("as-printed", 353834, 20),
    ],
)
def test_article_models_match_keras_parameter_counts(group, total, non_trainable):
    model = article.build_model(group, (32, 32, 3))
    assert model.count_params() == total
    assert (
        sum(w.size for layer in model.layers for w in layer.non_trainable_weights) == non_trainable
    )
    assert model.layers[0].name == "conv2d_1"  # names restart for every model


def test_article_model_adapts_to_input_shape():
    model = article.build_model("all-comments", (28, 28, 1))
    assert model.layers[0].input_shape == (None, 28, 28, 1)
    assert model.layers[-1].output_shape == (None, 10)


# --------------------------------------------------------------------------------------------
# article: outputs, default dataset, resume, no overwrite
# --------------------------------------------------------------------------------------------
def test_article_writes_every_output(offline, digits_root, monkeypatch, capsys):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    out = offline / "run"
    assert run_cli(["article", "--epochs", 1, "--out", out] + ARTICLE_TINY) == 0
    results = check_article_run(str(out), list(article.GROUPS), 1)
    assert results["groups"]["all-comments"]["params"] > results["groups"]["no-bn"]["params"]
    printed = capsys.readouterr().out
    assert "Fashion-MNIST" in printed and "64 training and 32 test images" in printed
    for group in article.GROUPS:
        assert "== Seed 0 (1/1), group" in printed and group in printed
    with open(out / "progress.log") as f:
        assert "Done: results in" in f.read()


def test_article_on_a_fresh_machine_uses_the_built_in_sample(offline, capsys):
    """No dataset anywhere (HOME is an empty folder, no $BNPY_DATA, no network): the default run
    says in one line that it uses the CIFAR-10 sample shipped with bnpy, and records it."""
    pytest.importorskip("PIL")
    assert "BNPY_DATA" not in os.environ and os.listdir(os.environ["HOME"]) == []
    argv = article_argv(1, "as-printed", train_size=64, test_size=32, verbose=0)
    assert run_cli(argv) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    fallback = [line for line in captured.out.splitlines() if "CIFAR-10 is not available" in line]
    assert len(fallback) == 1 and "using the CIFAR-10 sample built into bnpy instead" in fallback[0]
    (run,) = os.listdir(offline / "bnpy-results")
    run_dir = offline / "bnpy-results" / run
    check_article_run(str(run_dir), ["as-printed"], 1, dataset="cifar10_sample")
    note = "CIFAR-10 was not available; ran on the CIFAR-10 sample built into bnpy instead"
    with open(run_dir / "dataset.json") as f:
        assert json.load(f)["note"] == note
    with open(run_dir / "run.json") as f:
        assert json.load(f)["data"]["dataset"] == "cifar10_sample"
    with open(run_dir / "summary.md") as f:
        assert note in f.read()


def test_article_default_dataset_is_cifar10_when_present(offline, cifar_root, monkeypatch):
    monkeypatch.setenv("BNPY_DATA", cifar_root)
    out = offline / "cifar"
    argv = article_argv(
        1, "as-printed", out=out, train_size=32, test_size=16, verbose=0, batch_size=16
    )
    assert run_cli(argv) == 0
    with open(out / "dataset.json") as f:
        info = json.load(f)
    assert info["dataset"] == "cifar10" and info["input_shape"] == [32, 32, 3]
    assert "note" not in info and "loader_warnings" not in info  # all five batches are there


def test_loader_warnings_are_recorded(offline, tmp_path, monkeypatch, capsys):
    """A CIFAR folder with fewer than five training batches loads with the loader's warning,
    which the run prints and keeps in dataset.json."""
    root = tmp_path / "two-batches"
    write_tiny_cifar10(str(root), n_batches=2)
    monkeypatch.setenv("BNPY_DATA", str(root))
    out = offline / "partial"
    argv = article_argv(1, "no-bn", dataset="cifar10", out=out, verbose=0, batch_size=16)
    assert run_cli(argv) == 0
    assert "Warning from the loader: " in capsys.readouterr().out
    with open(out / "dataset.json") as f:
        info = json.load(f)
    assert info["train_total"] == 32 and len(info["loader_warnings"]) == 1
    assert "data_batch_3" in info["loader_warnings"][0]
    with open(out / "summary.md") as f:
        assert "Loader warning: " + info["loader_warnings"][0] in f.read()


def write_image_folders(root, n_per_class=4, classes=("cat", "dog", "frog"), size=(12, 12)):
    """root/train/<class>/*.png and root/test/<class>/*.png, RGB, brightness by class."""
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(5)
    for split in ("train", "test"):
        for k, name in enumerate(classes):
            folder = os.path.join(root, split, name)
            os.makedirs(folder)
            for i in range(n_per_class):
                pixels = np.clip(rng.integers(0, 80, size + (3,)) + 60 * k, 0, 255)
                Image.fromarray(pixels.astype(np.uint8), "RGB").save(
                    os.path.join(folder, "{:04d}.png".format(i))
                )


def test_article_on_an_image_folder_dataset(offline, tmp_path):
    pytest.importorskip("bnpy.preprocessing.image")
    root = tmp_path / "folders"
    write_image_folders(str(root))
    out = offline / "folders-run"
    argv = article_argv(1, "as-printed", dataset=root, out=out, batch_size=4, verbose=0)
    assert run_cli(argv) == 0
    with open(out / "dataset.json") as f:
        info = json.load(f)
    assert info["input_shape"] == [12, 12, 3] and info["num_classes"] == 3
    assert info["train_used"] == 12 and info["test_used"] == 12
    check_article_run(str(out), ["as-printed"], 1, dataset=str(root))
    # a subset of a class-by-class folder tree still holds every class
    x, y, _, _, _ = _common.load_dataset(str(root), (), print)
    assert set(y[:6].tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(np.bincount(y), [4, 4, 4])


def test_no_dataset_at_all_is_a_one_line_error(offline, tmp_path, monkeypatch, capsys):
    """Not even the sample can be loaded (here: every loader fails): one line naming each
    dataset's problem and what to do, exit 2, and no run directory."""
    monkeypatch.setattr(_common, "_load_named", _missing_everywhere)
    assert run_cli(["article", "--epochs", 1, "--verbose", 0]) == 2
    captured = capsys.readouterr()
    assert "using the CIFAR-10 sample built into bnpy instead" in captured.out
    (line,) = captured.err.splitlines()
    assert line.startswith("bnpy-experiment article: error: no dataset could be loaded")
    assert "cifar-10-batches-py" in line and "bnpy[image]" in line
    assert not (offline / "bnpy-results").exists()


def _missing_everywhere(name, path=None):
    if name == "cifar10_sample":
        raise ImportError("no Pillow (test stand-in)")
    raise FileNotFoundError(
        "{} not found (test stand-in for the loader's error)".format(
            "cifar-10-batches-py" if name == "cifar10" else name
        )
    )


def final_weights(run_dir, group, seed=0):
    path = os.path.join(run_dir, "checkpoints", article.unit_name(group, seed) + ".npz")
    with np.load(path) as data:
        return [data["weight_{}".format(i)] for i in range(int(data["n_weights"]))]


def test_article_resumes_to_the_same_result(offline, digits_root, monkeypatch, capsys):
    """Interrupted after epoch 1 of the first group, then resumed: the histories (loss, acc,
    val_loss, val_acc) and final weights equal those of an uninterrupted run."""
    monkeypatch.setenv("BNPY_DATA", digits_root)
    groups = "all-comments,no-bn"
    argv = article_argv(
        2, groups, dataset="fashion_mnist", train_size=32, test_size=16, batch_size=16, verbose=0
    ) + ["--keep-checkpoints"]
    assert run_cli(argv + ["--out", offline / "straight"]) == 0

    assert (
        run_cli(argv + ["--out", offline / "broken"], after_epoch=Interrupt("all-comments", 1))
        == 130
    )
    with open(offline / "broken" / "run.json") as f:
        assert json.load(f)["status"] == "interrupted"
    assert len(read_csv(offline / "broken" / "history-all-comments-seed0.csv")) == 1
    assert "--resume" in capsys.readouterr().out

    assert run_cli(argv + ["--out", offline / "broken", "--resume"]) == 0
    assert "Resuming all-comments seed 0 after epoch 1/2" in capsys.readouterr().out
    straight = check_article_run(
        str(offline / "straight"), groups.split(","), 2, checkpoints_kept=True
    )
    resumed = check_article_run(
        str(offline / "broken"), groups.split(","), 2, checkpoints_kept=True
    )
    for group in groups.split(","):
        for a, b in zip(
            straight["groups"][group]["seeds"]["0"]["history"],
            resumed["groups"][group]["seeds"]["0"]["history"],
        ):
            for key in (
                "loss",
                "acc",
                "val_loss",
                "val_acc",
                "val_loss_population",
                "val_acc_population",
            ):
                # Same data, same weights, same optimizer and RNG state, same thread count: the
                # same arithmetic in the same order, so the numbers are identical, not just close.
                assert a[key] == b[key], (group, a["epoch"], key)
        for wa, wb in zip(
            final_weights(str(offline / "straight"), group),
            final_weights(str(offline / "broken"), group),
        ):
            np.testing.assert_array_equal(wa, wb)
    with open(offline / "broken" / "run.json") as f:
        record = json.load(f)
    assert record["status"] == "finished" and len(record["resumed"]) == 1


def test_never_overwrites_an_earlier_run(offline, digits_root, monkeypatch, capsys):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    out = offline / "first"
    argv = ["article", "--epochs", 1, "--groups", "no-bn", "--out", out] + ARTICLE_TINY
    assert run_cli(argv) == 0
    before = {
        name: (out / name).read_bytes()
        for name in ("summary.md", "run.json", "history-no-bn-seed0.csv")
    }
    capsys.readouterr()
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert "already holds the results of a finished 'article' run" in err
    assert "--resume" in err and "--overwrite" in err
    assert {name: (out / name).read_bytes() for name in before} == before

    # --resume with other settings is refused too, naming the difference
    assert run_cli(argv[:2] + ["2"] + argv[3:] + ["--resume"]) == 2
    assert "epochs: 1 then, 2 now" in capsys.readouterr().err
    # --overwrite replaces it (the whole earlier run directory goes)
    (out / "marker-of-the-old-run").write_text("old")
    assert run_cli(argv + ["--overwrite"]) == 0
    assert not (out / "marker-of-the-old-run").exists()
    check_article_run(str(out), ["no-bn"], 1)

    # a directory that is not a bnpy run is never touched
    foreign = offline / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert run_cli(["article", "--out", foreign, "--overwrite"] + ARTICLE_TINY) == 2
    assert "holds no bnpy experiment run" in capsys.readouterr().err
    assert os.listdir(foreign) == ["thesis.tex"]


def test_default_out_makes_a_new_directory_each_time(offline, digits_root, monkeypatch):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    argv = article_argv(1, "no-bn", train_size=16, test_size=16, dataset="fashion_mnist", verbose=0)
    assert run_cli(argv) == 0
    assert run_cli(argv) == 0
    runs = sorted(os.listdir(offline / "bnpy-results"))
    assert len(runs) == 2 and all(r.startswith("article-") for r in runs)
    for r in runs:
        check_article_run(str(offline / "bnpy-results" / r), ["no-bn"], 1)


def test_resume_without_out_continues_the_latest_unfinished_run(
    offline, digits_root, monkeypatch, capsys
):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    argv = article_argv(2, "no-bn", train_size=16, test_size=16, dataset="fashion_mnist", verbose=0)
    assert run_cli(argv, after_epoch=Interrupt("no-bn", 1)) == 130
    (run,) = os.listdir(offline / "bnpy-results")
    capsys.readouterr()
    assert run_cli(argv + ["--resume"]) == 0
    assert (
        "Resuming the latest unfinished run: " + os.path.join("bnpy-results", run)
        in capsys.readouterr().out
    )
    assert os.listdir(offline / "bnpy-results") == [run]
    check_article_run(str(offline / "bnpy-results" / run), ["no-bn"], 2)
    assert run_cli(argv + ["--resume"]) == 2  # nothing unfinished is left
    assert "no unfinished 'article' run under bnpy-results/" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# article: several seeds, checkpoints
# --------------------------------------------------------------------------------------------
def test_article_with_two_seeds_writes_per_seed_and_aggregated_results(
    offline, digits_root, monkeypatch
):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    out = offline / "two-seeds"
    groups = ["no-bn", "as-printed"]
    argv = article_argv(2, ",".join(groups), seeds=2, seed=3, out=out) + ARTICLE_TINY
    assert run_cli(argv) == 0
    results = check_article_run(str(out), groups, 2, seeds=(3, 4))
    for group in groups:
        agg = results["aggregate"][group]
        for key, _, value in __import__("bnpy.experiments._report", fromlist=["METRICS"]).METRICS:
            values = [value(results["groups"][group]["seeds"][s]["history"]) for s in ("3", "4")]
            assert agg["metrics"][key]["values"] == values
            assert agg["metrics"][key]["mean"] == pytest.approx(np.mean(values), rel=1e-12)
            assert agg["metrics"][key]["sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        seeds = results["groups"][group]["seeds"]
        died = [s for s in (3, 4) if seeds[str(s)]["final_relu"]["alive"] == 0]
        assert agg["died"] == died
    # the seeds differ (different initial weights), the groups of one seed start alike
    h3, h4 = (results["groups"]["no-bn"]["seeds"][s]["history"][0] for s in ("3", "4"))
    assert h3["loss"] != h4["loss"]
    (pair,) = results["comparisons"]["final_val_acc"]
    assert pair["a"] == "no-bn" and pair["b"] == "as-printed" and 0.0 <= pair["p"] <= 1.0
    with open(out / "summary.md") as f:
        summary = f.read()
    assert "mean ± standard deviation over 2 seeds" in summary and "## Per seed" in summary
    assert "| no-bn | 4 |" in summary and "Welch's t-test" in summary


def test_checkpoints_of_a_finished_run_are_removed_unless_kept(offline, digits_root, monkeypatch):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    argv = ["article", "--epochs", 1, "--groups", "no-bn"] + ARTICLE_TINY
    assert run_cli(argv + ["--out", offline / "dropped"]) == 0
    assert not (offline / "dropped" / "checkpoints").exists()
    assert run_cli(argv + ["--out", offline / "kept", "--keep-checkpoints"]) == 0
    check_article_run(str(offline / "kept"), ["no-bn"], 1, checkpoints_kept=True)
    # a finished run resumed again keeps its results (nothing to retrain, no checkpoint needed)
    before = (offline / "dropped" / "history-no-bn-seed0.json").read_bytes()
    assert run_cli(argv + ["--out", offline / "dropped", "--resume"]) == 0
    assert (offline / "dropped" / "history-no-bn-seed0.json").read_bytes() == before
