"""Shared by the tests of bnpy-experiment (test_experiments.py, test_experiments_errors.py,
test_experiments_paper_fig1.py; test_examples.py uses the CIFAR-10 writer), through conftest's
pytest_plugins: tiny datasets in the official file formats and fixtures that point a run at them
offline, the command run in-process, checks of the files a run writes, and a Ctrl-C at a chosen
epoch. bnpy.experiments is imported inside the functions that need it: conftest loads this module
in every test session, which must not fail where bnpy is not importable (the tests say why)."""

import csv
import gzip
import json
import os
import struct

import numpy as np
import pytest

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
    from dataset_fixtures import py2_pickle, write_cifar10_meta

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
    write_cifar10_meta(folder, n_train_per_batch)


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
    """bnpy-experiment's main() on these arguments (as strings), in this process."""
    from bnpy.experiments import __main__ as cli

    return cli.main([str(a) for a in argv], **kwargs)


def article_argv(epochs, groups, **options):
    """bnpy-experiment's arguments ``article --epochs EPOCHS --groups GROUPS``, then ``--name
    value`` for each keyword in the order given (train_size=16 gives --train-size 16)."""
    argv = ["article", "--epochs", epochs, "--groups", groups]
    for name, value in options.items():
        argv += ["--" + name.replace("_", "-"), value]
    return argv


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
    from bnpy.experiments import article

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


class Interrupt:
    """after_epoch hook: Ctrl-C right after the checkpoint of (group, done)."""

    def __init__(self, group, done):
        self.at = (group, done)

    def __call__(self, group, done):
        if (group, done) == self.at:
            raise KeyboardInterrupt
