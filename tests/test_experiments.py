"""bnpy-experiment on tiny data the tests write in the official formats: every output file is
written and well-formed, an interrupted run resumes to the same result as an uninterrupted one,
earlier results are never overwritten silently, bad options give clear errors."""

import csv
import gzip
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("bnpy.models")
pytest.importorskip("bnpy.datasets")
pytest.importorskip("matplotlib")

from bnpy.experiments import __main__ as cli  # noqa: E402
from bnpy.experiments import _common, article, paper_fig1  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# Tiny datasets in the official file formats (also used by test_examples.py)
# --------------------------------------------------------------------------------------------
def _class_images(rng, labels, shape):
    """Images whose mean brightness depends on the class, so a few steps can learn something."""
    base = rng.integers(0, 96, size=(len(labels),) + shape)
    return (base + 14 * labels.reshape((-1,) + (1,) * len(shape))).astype(np.uint8)


def write_idx(path, array):
    """IDX file (big-endian header: magic 0x0000 08 ndim, then each dimension), gzipped."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_tiny_fashion_mnist(root, n_train=128, n_test=64, seed=1):
    """<root>/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "fashion-mnist")
    os.makedirs(folder, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(os.path.join(folder, prefix + "-labels-idx1-ubyte.gz"), labels)
        write_idx(
            os.path.join(folder, prefix + "-images-idx3-ubyte.gz"),
            _class_images(rng, labels, (28, 28)),
        )


def write_tiny_mnist(root, n_train=128, n_test=64, seed=2):
    """<root>/mnist.npz with x_train (N,28,28) uint8, y_train (N,) uint8, x_test, y_test."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        arrays["x_" + split] = _class_images(rng, labels, (28, 28))
        arrays["y_" + split] = labels
    np.savez(os.path.join(root, "mnist.npz"), **arrays)


def write_tiny_cifar10(root, n_train_per_batch=16, n_batches=5, n_test=32, seed=3):
    """<root>/cifar-10-batches-py/ with data_batch_1..n and test_batch as Python 2 cPickle files
    (dataset_fixtures.py writes them byte for byte as the official ones) of
    {b'data': uint8 (N, 3072) (R plane, G plane, B plane), b'labels': [int], ...}, and
    batches.meta."""
    from dataset_fixtures import py2_pickle

    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    names = ["data_batch_{}".format(i) for i in range(1, n_batches + 1)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else n_train_per_batch
        labels = rng.integers(0, 10, size=n)
        images = _class_images(rng, labels, (3, 32, 32))  # channels-first, as the files store
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in labels],
            b"data": np.ascontiguousarray(images.reshape(n, 3072)),
            b"filenames": [b"img_%d.png" % i for i in range(n)],
        }
        with open(os.path.join(folder, name), "wb") as f:
            f.write(py2_pickle(batch))
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        f.write(
            py2_pickle(
                {
                    b"label_names": [
                        b"airplane",
                        b"automobile",
                        b"bird",
                        b"cat",
                        b"deer",
                        b"dog",
                        b"frog",
                        b"horse",
                        b"ship",
                        b"truck",
                    ],
                    b"num_cases_per_batch": n_train_per_batch,
                    b"num_vis": 3072,
                }
            )
        )


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    """A BNPY_DATA directory with Fashion-MNIST and MNIST only (no CIFAR-10)."""
    root = tmp_path_factory.mktemp("data-digits")
    write_tiny_fashion_mnist(str(root))
    write_tiny_mnist(str(root))
    return str(root)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data-cifar")
    write_tiny_cifar10(str(root))
    return str(root)


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No ~/.keras cache of the real user, and downloads fail at once (no network in tests)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("BNPY_OFFLINE", "1")  # the loaders' switch: no download attempt
    monkeypatch.chdir(tmp_path)
    import urllib.request

    def no_network(*args, **kwargs):
        raise OSError("network disabled in the tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(urllib.request, "urlretrieve", no_network)
    return tmp_path


def run_cli(argv, **kwargs):
    return cli.main([str(a) for a in argv], **kwargs)


ARTICLE_TINY = [
    "--dataset",
    "fashion_mnist",
    "--train-size",
    64,
    "--test-size",
    32,
    "--batch-size",
    16,
    "--verbose",
    0,
]


# --------------------------------------------------------------------------------------------
# Checks of the files a run writes
# --------------------------------------------------------------------------------------------
def check_png(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR" and data[-8:-4] == b"IEND", path
    return data


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_history_files(run_dir, name, columns, n_rows):
    """history-<name>.csv and .json: n_rows rows, the CSV and the JSON saying the same."""
    rows = read_csv(os.path.join(run_dir, "history-{}.csv".format(name)))
    assert len(rows) == n_rows and list(rows[0]) == columns
    with open(os.path.join(run_dir, "history-{}.json".format(name))) as f:
        data = json.load(f)
    assert len(data["history"]) == n_rows
    for csv_row, json_row in zip(rows, data["history"]):
        for column in columns:
            assert float(csv_row[column]) == pytest.approx(json_row[column], rel=1e-15)
    return data


def check_article_run(
    run_dir, groups, epochs, dataset="fashion_mnist", seeds=(0,), checkpoints_kept=False
):
    with open(os.path.join(run_dir, "run.json")) as f:
        record = json.load(f)
    assert record["status"] == "finished" and record["command"] == "article"
    with open(os.path.join(run_dir, "dataset.json")) as f:
        info = json.load(f)
    assert info["dataset"] == dataset
    for group in groups:
        for seed in seeds:
            unit = check_history_files(
                run_dir, article.unit_name(group, seed), article.HISTORY_COLUMNS, epochs
            )
            assert unit["group"] == group and unit["seed"] == seed and unit["complete"]
            relu = unit["final_relu"]
            assert 0 <= relu["alive"] <= relu["units"] == info["num_classes"]
            history = unit["history"]
            assert [r["epoch"] for r in history] == list(range(1, epochs + 1))
            for row in history:
                for key in ("acc", "val_acc", "val_acc_population"):
                    assert 0.0 <= row[key] <= 1.0
                for key in ("loss", "val_loss", "val_loss_population"):
                    assert np.isfinite(row[key]) and row[key] > 0
                assert row["epoch_time_s"] > 0 and row["population_time_s"] > 0
            assert (
                os.path.isfile(
                    os.path.join(run_dir, "checkpoints", article.unit_name(group, seed) + ".npz")
                )
                == checkpoints_kept
            )
        check_png(os.path.join(run_dir, "model-{}.png".format(group)))
    check_png(os.path.join(run_dir, "history.png"))
    with open(os.path.join(run_dir, "summary.md")) as f:
        summary = f.read()
    assert (
        "| group | params | final val acc, moving statistics | final val acc, population "
        "statistics |" in summary
    )
    assert ("removed when the run finished" in summary) != checkpoints_kept
    for group in groups:
        assert "| {} |".format(group) in summary
    with open(os.path.join(run_dir, "results.json")) as f:
        results = json.load(f)
    assert list(results["groups"]) == groups
    for group in groups:
        assert list(results["groups"][group]["seeds"]) == [str(s) for s in seeds]
        assert results["aggregate"][group]["seeds"] == list(seeds)
    assert not [n for n in os.listdir(run_dir) if n.startswith(".tmp")]  # no temporary left
    return results


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
    argv = [
        "article",
        "--epochs",
        1,
        "--groups",
        "as-printed",
        "--train-size",
        64,
        "--test-size",
        32,
        "--verbose",
        0,
    ]
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
    argv = [
        "article",
        "--epochs",
        1,
        "--groups",
        "as-printed",
        "--out",
        out,
        "--train-size",
        32,
        "--test-size",
        16,
        "--verbose",
        0,
        "--batch-size",
        16,
    ]
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
    argv = [
        "article",
        "--epochs",
        1,
        "--groups",
        "no-bn",
        "--dataset",
        "cifar10",
        "--out",
        out,
        "--verbose",
        0,
        "--batch-size",
        16,
    ]
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
    argv = [
        "article",
        "--epochs",
        1,
        "--groups",
        "as-printed",
        "--dataset",
        root,
        "--out",
        out,
        "--batch-size",
        4,
        "--verbose",
        0,
    ]
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


class Interrupt:
    """after_epoch hook: Ctrl-C right after the checkpoint of (group, done)."""

    def __init__(self, group, done):
        self.at = (group, done)

    def __call__(self, group, done):
        if (group, done) == self.at:
            raise KeyboardInterrupt


def final_weights(run_dir, group, seed=0):
    path = os.path.join(run_dir, "checkpoints", article.unit_name(group, seed) + ".npz")
    with np.load(path) as data:
        return [data["weight_{}".format(i)] for i in range(int(data["n_weights"]))]


def test_article_resumes_to_the_same_result(offline, digits_root, monkeypatch, capsys):
    """Interrupted after epoch 1 of the first group, then resumed: the histories (loss, acc,
    val_loss, val_acc) and final weights equal those of an uninterrupted run."""
    monkeypatch.setenv("BNPY_DATA", digits_root)
    groups = "all-comments,no-bn"
    argv = [
        "article",
        "--epochs",
        2,
        "--groups",
        groups,
        "--dataset",
        "fashion_mnist",
        "--train-size",
        32,
        "--test-size",
        16,
        "--batch-size",
        16,
        "--verbose",
        0,
        "--keep-checkpoints",
    ]
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
    argv = [
        "article",
        "--epochs",
        1,
        "--groups",
        "no-bn",
        "--train-size",
        16,
        "--test-size",
        16,
        "--dataset",
        "fashion_mnist",
        "--verbose",
        0,
    ]
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
    argv = [
        "article",
        "--epochs",
        2,
        "--groups",
        "no-bn",
        "--train-size",
        16,
        "--test-size",
        16,
        "--dataset",
        "fashion_mnist",
        "--verbose",
        0,
    ]
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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["article", "--groups", "all-comments,bogus"], "--groups: unknown group(s) 'bogus'"),
        (
            ["article", "--groups", "no-bn,all-comments,no-bn"],
            "--groups: 'no-bn' given more than once",
        ),
        (
            ["paper-fig1", "--groups", "bn,batchnorm"],
            "--groups: unknown group(s) 'batchnorm'; choose from no-bn, bn",
        ),
        (["article", "--dataset", "/no/such/dir"], "--dataset '/no/such/dir' is neither one of"),
        (
            ["article", "--dataset", "fashion_mnist", "--train-size", 100000],
            "--train-size 100000 asked, but the dataset has only 128",
        ),
        (["article", "--resume", "--out", "nothing-here"], "--resume: there is no run to resume"),
        (["article", "--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
        (["article", "--out", "a-file.txt"], "--out a-file.txt is a file, not a directory"),
        (["paper-fig1", "--unit", 100, "--dataset", "mnist"], "--unit must be below 100"),
    ],
)
def test_bad_options_give_clear_errors(offline, digits_root, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    (offline / "a-file.txt").write_text("not a directory")
    assert run_cli(argv + ["--verbose", 0]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("bnpy-experiment {}: error:".format(argv[0])) and message in line
    assert not (offline / "bnpy-results").exists()  # nothing was created


@pytest.mark.parametrize(
    "argv",
    [
        ["article", "--epochs", "0"],
        ["article", "--batch-size", "x"],
        ["paper-fig1", "--lr", "-1"],
        ["nonsense"],
        [],
    ],
)
def test_argparse_rejects_bad_values(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()  # one line, no usage block
    assert "error:" in line and "--help" in line


def test_python_dash_m_help(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    # cwd elsewhere: `python -m` puts the cwd first on sys.path, and a source checkout's bnpy/
    # (no compiled _core when the package is installed with pip) must not shadow the installed one
    result = subprocess.run(
        [sys.executable, "-m", "bnpy.experiments", "article", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "--train-size" in result.stdout and "all-comments" in result.stdout
    assert "RuntimeWarning" not in result.stderr


# --------------------------------------------------------------------------------------------
# paper-fig1
# --------------------------------------------------------------------------------------------
FIG1_TINY = [
    "--train-size",
    120,
    "--test-size",
    60,
    "--steps",
    20,
    "--eval-every",
    10,
    "--verbose",
    0,
]


def test_batch_indices_visit_every_sample_once_per_pass():
    n, batch = 50, 7
    seen = np.concatenate([paper_fig1.batch_indices(s, batch, n, seed=4) for s in range(50)])
    for p in range(len(seen) // n):  # 350 indices = 7 full passes, each a permutation
        assert sorted(seen[p * n : (p + 1) * n]) == list(range(n))
    np.testing.assert_array_equal(paper_fig1.batch_indices(13, batch, n, seed=4), seen[91:98])


def test_paper_fig1_writes_every_output(offline, digits_root, monkeypatch, capsys):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    out = offline / "fig1"
    assert run_cli(["paper-fig1", "--out", out, "--verbose", 1] + FIG1_TINY[:-2]) == 0
    printed = capsys.readouterr().out
    assert "MNIST" in printed and "step 20/20" in printed
    for group in paper_fig1.GROUPS:
        history = check_history_files(str(out), group, paper_fig1.HISTORY_COLUMNS, 3)["history"]
        assert [r["step"] for r in history] == [0, 10, 20]
        for row in history:
            assert row["p15"] <= row["p50"] <= row["p85"] and 0 <= row["test_acc"] <= 1
    with open(out / "dataset.json") as f:
        assert json.load(f)["dataset"] == "mnist"
    check_png(out / "fig1.png")
    with open(out / "summary.md") as f:
        summary = f.read()
    assert "| bn |" in summary and "| no-bn |" in summary


@pytest.mark.parametrize("group, stop", [("bn", 8), ("no-bn", 5)])
def test_sigmoid_input_is_the_last_hidden_sigmoids_input(group, stop):
    """bn: Dense BN sigmoid Dense BN sigmoid Dense BN | sigmoid ...; no-bn: ... Dense | sigmoid."""
    np.random.seed(0)
    x = np.random.rand(60, 784).astype(np.float32)
    model = paper_fig1.build_model(group, 784)
    z = paper_fig1.sigmoid_input(model, x, unit=3)
    assert z.shape == (60,)
    assert type(model.layers[stop]).__name__ == "Activation"
    assert type(model.layers[stop - 1]).__name__ == (
        "BatchNormalization" if group == "bn" else "Dense"
    )
    h = x
    for layer in model.layers[:stop]:
        h = layer.forward(h, training=False)
    np.testing.assert_array_equal(z, h[:, 3])


def test_paper_fig1_falls_back_to_fashion_mnist_and_resumes(offline, tmp_path, monkeypatch, capsys):
    root = tmp_path / "fashion-only"
    root.mkdir()
    write_tiny_fashion_mnist(str(root))
    monkeypatch.setenv("BNPY_DATA", str(root))
    argv = ["paper-fig1", "--groups", "bn"] + FIG1_TINY
    assert run_cli(argv + ["--out", offline / "a"]) == 0
    assert "MNIST is not available" in capsys.readouterr().out
    assert run_cli(argv + ["--out", offline / "b"], after_epoch=Interrupt("bn", 10)) == 130
    assert run_cli(argv + ["--out", offline / "b", "--resume"]) == 0
    a = check_history_files(str(offline / "a"), "bn", paper_fig1.HISTORY_COLUMNS, 3)["history"]
    b = check_history_files(str(offline / "b"), "bn", paper_fig1.HISTORY_COLUMNS, 3)["history"]
    for ra, rb in zip(a, b):
        for key in ("test_acc", "test_loss", "p15", "p50", "p85"):
            assert ra[key] == rb[key], (ra["step"], key)
    with open(offline / "b" / "dataset.json") as f:
        assert "MNIST was not available; ran on Fashion-MNIST instead" in json.load(f)["note"]


# --------------------------------------------------------------------------------------------
# article: several seeds, the user's errors, data identity
# --------------------------------------------------------------------------------------------
def test_article_with_two_seeds_writes_per_seed_and_aggregated_results(
    offline, digits_root, monkeypatch
):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    out = offline / "two-seeds"
    groups = ["no-bn", "as-printed"]
    argv = [
        "article",
        "--epochs",
        2,
        "--groups",
        ",".join(groups),
        "--seeds",
        2,
        "--seed",
        3,
        "--out",
        out,
    ] + ARTICLE_TINY
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


def _one_error_line(capsys):
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("bnpy-experiment article: error: ")
    return line


def test_unwritable_out_is_a_one_line_error(offline, digits_root, monkeypatch, capsys):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    (offline / "a-file").write_text("x")
    assert run_cli(["article", "--out", offline / "a-file" / "run"] + ARTICLE_TINY) == 2
    assert "cannot write the results to" in _one_error_line(capsys)

    def read_only(path, *args, **kwargs):  # root ignores permission bits: stand in for them
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(_common.os, "makedirs", read_only)
    assert run_cli(["article", "--out", offline / "ro"] + ARTICLE_TINY) == 2
    line = _one_error_line(capsys)
    assert "Permission denied" in line and "choose a writable folder with --out" in line
    assert not (offline / "ro").exists()


def test_corrupt_run_record_is_a_one_line_error(offline, digits_root, monkeypatch, capsys):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    broken = offline / "bnpy-results" / "article-old"
    broken.mkdir(parents=True)
    (broken / "run.json").write_text('{"command": "article", "status": ')
    assert run_cli(["article", "--resume"] + ARTICLE_TINY) == 2
    line = _one_error_line(capsys)
    assert "run.json is damaged or unreadable" in line and "repair or remove it" in line
    assert run_cli(["article", "--out", broken] + ARTICLE_TINY) == 2
    assert "run.json is damaged" in _one_error_line(capsys)
    assert os.listdir(offline / "bnpy-results") == ["article-old"]


def test_damaged_checkpoint_on_resume_is_a_one_line_error(
    offline, digits_root, monkeypatch, capsys
):
    monkeypatch.setenv("BNPY_DATA", digits_root)
    out = offline / "damaged"
    argv = ["article", "--epochs", 2, "--groups", "no-bn", "--out", out] + ARTICLE_TINY
    assert run_cli(argv, after_epoch=Interrupt("no-bn", 1)) == 130
    checkpoint = out / "checkpoints" / "no-bn-seed0.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:300])  # truncated
    capsys.readouterr()
    assert run_cli(argv + ["--resume"]) == 2
    line = _one_error_line(capsys)
    assert "no-bn-seed0.npz is damaged" in line and "delete it" in line
    with open(out / "run.json") as f:
        assert json.load(f)["status"] == "interrupted"  # still resumable once mended
    checkpoint.unlink()
    assert run_cli(argv + ["--resume"]) == 0
    check_article_run(str(out), ["no-bn"], 2)


def test_resume_refuses_other_data(offline, tmp_path, monkeypatch, capsys):
    """Same options, but the files behind the dataset changed: --resume refuses."""
    first, second = tmp_path / "data-a", tmp_path / "data-b"
    write_tiny_fashion_mnist(str(first), seed=1)
    write_tiny_fashion_mnist(str(second), seed=7)
    out = offline / "data-run"
    argv = ["article", "--epochs", 2, "--groups", "no-bn", "--out", out] + ARTICLE_TINY
    monkeypatch.setenv("BNPY_DATA", str(first))
    assert run_cli(argv, after_epoch=Interrupt("no-bn", 1)) == 130
    with open(out / "run.json") as f:
        assert len(json.load(f)["data"]["digest"]) == 64
    monkeypatch.setenv("BNPY_DATA", str(second))
    capsys.readouterr()
    assert run_cli(argv + ["--resume"]) == 2
    assert "was trained on other data" in _one_error_line(capsys)
    monkeypatch.setenv("BNPY_DATA", str(first))
    assert run_cli(argv + ["--resume"]) == 0


def test_dataset_dir_in_the_keras_cache_layout(offline, cifar_root, tmp_path, capsys):
    """--dataset DIR where DIR holds cifar-10-batches-py/ (as ~/.keras/datasets does)."""
    assert os.path.isdir(os.path.join(cifar_root, "cifar-10-batches-py"))
    out = offline / "cache-layout"
    argv = [
        "article",
        "--epochs",
        1,
        "--groups",
        "as-printed",
        "--dataset",
        cifar_root,
        "--out",
        out,
        "--batch-size",
        16,
        "--verbose",
        0,
    ]
    assert run_cli(argv) == 0
    with open(out / "dataset.json") as f:
        info = json.load(f)
    assert info["dataset"] == "cifar10" and info["train_total"] == 80
    # a folder that is neither layout is refused in one line
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    assert run_cli(["article", "--dataset", tmp_path / "junk", "--verbose", 0]) == 2
    assert "expected CIFAR-10 as Keras caches it" in _one_error_line(capsys)
    assert not (offline / "bnpy-results").exists()


def test_help_names_bnpy_data(capsys):
    with pytest.raises(SystemExit):
        cli.main(["article", "--help"])
    out = capsys.readouterr().out
    assert "$BNPY_DATA" in out and "--seeds" in out and "cifar10_sample" in out
