"""bnpy-experiment paper-fig1 (the BN paper's Figure 1) on tiny data the tests write in the official
formats: its batches, every output file, the sigmoid input it records, and the fallback to
Fashion-MNIST with a resume to the same result."""

import json

import numpy as np
import pytest
from experiment_fixtures import (
    Interrupt,
    check_history_files,
    check_png,
    run_cli,
    write_tiny_fashion_mnist,
)

pytest.importorskip("bnpy.models")
pytest.importorskip("bnpy.datasets")
pytest.importorskip("matplotlib")

from bnpy.experiments import paper_fig1  # noqa: E402

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
