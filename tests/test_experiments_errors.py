"""bnpy-experiment on tiny data the tests write in the official formats: bad options, an
unwritable or damaged run, other data on --resume and a folder in neither dataset layout each give
one clear error line and change nothing; --help says where the data is looked for."""

import json
import os
import subprocess
import sys

import pytest
from child_python import child_env
from experiment_fixtures import (
    ARTICLE_TINY,
    Interrupt,
    article_argv,
    check_article_run,
    run_cli,
    write_tiny_fashion_mnist,
)

pytest.importorskip("bnpy.models")
pytest.importorskip("bnpy.datasets")
pytest.importorskip("matplotlib")

from bnpy.experiments import __main__ as cli  # noqa: E402
from bnpy.experiments import _common  # noqa: E402


# --------------------------------------------------------------------------------------------
# article and paper-fig1: bad options, the user's errors, data identity, --help
# --------------------------------------------------------------------------------------------
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
    env = child_env()
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
    argv = article_argv(1, "as-printed", dataset=cifar_root, out=out, batch_size=16, verbose=0)
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
