"""The Keras-2-style example scripts: each runs with bnpy (small sizes, every warning an error)
and, when tf_keras is installed, unchanged on real Keras 2 after `bnpy` is replaced by
`tf_keras` in a copy; their only mentions of bnpy in code are imports."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
SCRIPTS = ["keras2_mnist_convnet.py", "keras2_cifar10_generator.py"]
SMALL = {"KERAS2_EXAMPLE_SAMPLES": "600", "KERAS2_EXAMPLE_EPOCHS": "2", "KERAS2_EXAMPLE_STEPS": "6"}


def _source(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return f.read()


def _run(script_path, cwd, env_changes, python_args=()):
    env = dict(os.environ, **{k: v for k, v in env_changes.items() if v is not None})
    env.update((k, "") for k, v in env_changes.items() if v is None)  # "": not set, for the script
    result = subprocess.run(
        [sys.executable, *python_args, script_path],
        cwd=cwd,  # not a source checkout, whose bnpy/ has no compiled _core
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _test_accuracy(stdout):
    found = re.findall(r"^Test accuracy: ([0-9.e-]+)$", stdout, re.M)
    assert len(found) == 1, stdout[-2000:]
    return float(found[0])


@pytest.mark.parametrize("name", SCRIPTS)
def test_bnpy_appears_in_code_only_in_imports(name):
    code = [
        line
        for line in _source(name).split('"""', 2)[2].splitlines()  # after the docstring
        if not line.lstrip().startswith("#")
    ]
    mentions = [line for line in code if re.search(r"\bbnpy\b", line.split("#")[0])]
    assert mentions and all(
        re.match(r"\s*(from bnpy[.\w]* import |import bnpy)", line) for line in mentions
    ), mentions


def test_mnist_convnet_learns_the_synthetic_images_with_bnpy(tmp_path):
    out = _run(
        os.path.join(EXAMPLES, "keras2_mnist_convnet.py"),
        tmp_path,
        dict(SMALL, KERAS2_EXAMPLE_DATA="synthetic"),
        python_args=("-W", "error"),
    )
    assert "Train on 600 samples, validate on 60 samples" in out
    # the class is the row of a bright bar: two epochs of 600 images find it (chance is 0.1)
    assert _test_accuracy(out) >= 0.8
    rows = (tmp_path / "keras2_mnist_convnet.csv").read_text().splitlines()
    assert rows[0] == "epoch,acc,loss,lr,val_acc,val_loss" and len(rows) == 3


def test_mnist_convnet_reads_fashion_mnist_when_debian_has_it(tmp_path):
    from reference_layers import fashion_mnist_paths

    if fashion_mnist_paths() is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    out = _run(
        os.path.join(EXAMPLES, "keras2_mnist_convnet.py"),
        tmp_path,
        dict(SMALL, KERAS2_EXAMPLE_DATA=None, HOME=str(tmp_path)),  # no ~/.keras cache
        python_args=("-W", "error"),
    )
    assert "x_train shape: (600, 28, 28, 1)" in out and "not available" not in out
    assert 0.0 <= _test_accuracy(out) <= 1.0


def test_cifar10_generator_runs_on_the_shipped_sample_with_bnpy(tmp_path):
    pytest.importorskip("PIL")  # the sample's JPEGs
    out = _run(
        os.path.join(EXAMPLES, "keras2_cifar10_generator.py"),
        tmp_path,
        dict(SMALL, KERAS2_EXAMPLE_DATA=None),
        python_args=("-W", "error"),
    )
    assert "x_train shape: (600, 32, 32, 3)" in out and "not available" not in out
    assert "Epoch 2/2" in out
    assert 0.0 <= _test_accuracy(out) <= 1.0


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs_unchanged_on_tf_keras(tmp_path, name):
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("tf_keras is not installed")
    copy = tmp_path / name
    copy.write_text(re.sub(r"\bbnpy\b", "tf_keras", _source(name)), encoding="utf-8")
    env = dict(SMALL, KERAS2_EXAMPLE_DATA="synthetic", TF_CPP_MIN_LOG_LEVEL="2")
    out = _run(str(copy), tmp_path, env)
    assert 0.0 <= _test_accuracy(out) <= 1.0
