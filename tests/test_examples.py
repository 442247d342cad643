"""The examples run: the article's script to its final "Test accuracy" line on a tiny CIFAR-10
the test writes (found through BNPY_DATA), and the notebook, cell by cell, on small data."""

import os
import re
import runpy
import sys

import numpy as np
import pytest

pytest.importorskip("bnpy.models")
pytest.importorskip("bnpy.datasets")
pytest.importorskip("matplotlib")

from experiment_fixtures import write_tiny_cifar10  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
# the project's shared folder sits beside the main checkout (../shared) or beside the worktrees
SEED_CANDIDATES = [
    os.path.join(ROOT, *up, "shared", "seed", "article_script.py") for up in (("..",), ("..", ".."))
]


def test_article_script_is_the_seed_with_keras_replaced():
    """examples/article_script.py = the seed with `keras` -> `bnpy` in code and the two
    tensorflow lines removed, nothing else (checked against the seed when it is at hand)."""
    with open(os.path.join(EXAMPLES, "article_script.py"), encoding="utf-8") as f:
        script = f.read()
    code = [line for line in script.splitlines() if not line.startswith("#")]
    assert not [line for line in code if re.search(r"\b(keras|tensorflow)\b|\btf\.", line)]
    assert "from bnpy.utils.vis_utils import plot_model" in script
    seeds = [p for p in SEED_CANDIDATES if os.path.isfile(p)]
    if not seeds:
        pytest.skip(
            "the seed script (../shared/seed/article_script.py) is not beside this checkout"
        )
    with open(seeds[0], encoding="utf-8") as f:
        seed = f.read().splitlines()
    expected = [
        line if line.startswith("#") else re.sub(r"\bkeras\b", "bnpy", line)
        for line in seed
        if line not in ("import tensorflow as tf", "tf.python.control_flow_ops = tf")
    ]
    assert script.splitlines() == expected


def test_article_script_runs_to_test_accuracy(tmp_path, monkeypatch, capsys):
    """The whole script (8 epochs, batch 32) on 32 training and 16 test CIFAR images."""
    pytest.importorskip("bnpy.preprocessing.image")
    data = tmp_path / "data"
    write_tiny_cifar10(str(data), n_train_per_batch=32, n_batches=1, n_test=16)
    monkeypatch.setenv("BNPY_DATA", str(data))
    monkeypatch.setenv("HOME", str(tmp_path))  # no real ~/.keras cache
    monkeypatch.chdir(tmp_path)  # the script writes LeNet-5.png into the working directory
    monkeypatch.setattr(sys, "argv", ["article_script.py"])
    with pytest.warns(UserWarning) as caught:
        runpy.run_path(os.path.join(EXAMPLES, "article_script.py"), run_name="__main__")
    # The article's Keras 1 calls get Keras 2.0's deprecation warnings, one per call; the tiny
    # fixture (one training batch of five) its own; nothing else.
    assert sorted(str(w.message).split(":")[0] for w in caught) == [
        "The `nb_epoch` argument in `fit` has been renamed `epochs`.",
        "Update your `Conv2D` call to the Keras 2 API",
        "Update your `Conv2D` call to the Keras 2 API",
        "cifar10.load_data",
    ]
    out = capsys.readouterr().out
    assert "Total params: 353,834" in out  # the model summary, as Keras 2.0 prints it
    assert "Epoch 8/8" in out
    score = re.search(r"^Test score: (\S+)\nTest accuracy: (\S+)$", out, re.M)
    assert score, out[-2000:]
    assert np.isfinite(float(score.group(1))) and 0.0 <= float(score.group(2)) <= 1.0
    with open(tmp_path / "LeNet-5.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("PIL")  # the built-in CIFAR-10 sample's decoder
    monkeypatch.delenv("BNPY_DATA", raising=False)  # a fresh machine: no dataset but bnpy's own
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("BNPY_NOTEBOOK_SMALL", "1")  # the notebook's small-workload switch
    # the kernel is a new process: it must import the bnpy this test imported (an in-place
    # build or the installed package), not the source tree without its compiled core
    import bnpy

    bnpy_parent = os.path.dirname(os.path.dirname(os.path.abspath(bnpy.__file__)))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([bnpy_parent] + [p for p in sys.path if p]))
    notebook = nbformat.read(os.path.join(EXAMPLES, "batchnorm_explained.ipynb"), as_version=4)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        startup_timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    examples_before = sorted(os.listdir(EXAMPLES))
    client.execute()  # raises CellExecutionError naming the cell if any cell fails
    assert sorted(os.listdir(EXAMPLES)) == examples_before  # nothing written beside the notebook
    assert os.listdir(workdir) == []  # nor into its working directory
    outputs = [
        o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    ]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    # the notebook's own checks print these lines after asserting them
    assert "gradient check passed" in text
    assert "moving statistics converged" in text
    assert "CIFAR-10 sample | train (128, 32, 32, 3)" in text
    assert "not available" not in text and "Error" not in text  # no loader error on the way
    assert "population statistics" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)
