"""bnpy.datasets: what load_data returns, where it finds files, and what it refuses.

Every file is written by the test in the official format (tests/dataset_fixtures.py); $HOME, $BNPY_DATA
and the system dataset folders point into tmp_path, and downloads come from a LocalServer on 127.0.0.1.
Nothing here reads ../shared or the network.
"""

import os
import pickle
import pickletools
import shutil
import warnings

import numpy as np
import pytest
from dataset_fixtures import (
    CIFAR10_DIR,
    make_tar_gz,
    md5,
    py2_pickle,
    read_bytes,
    sha256,
    tree,
    write_cifar10,
    write_cifar100,
    write_mnist_npz,
)

from bnpy.datasets import (
    ChecksumError,
    DataFileError,
    _lookup,
    cifar10,
    cifar100,
    fashion_mnist,
    mnist,
)

# Every test runs isolated (dataset_checks.py): no real HOME, $BNPY_DATA, system folder or download.
pytestmark = pytest.mark.usefixtures("isolated")


def assert_cifar10_matches(loaded, expected):
    (x_train, y_train), (x_test, y_test) = loaded
    n_train, n_test = len(expected["y_train"]), len(expected["y_test"])
    # Keras 2.0: x uint8 (N, 32, 32, 3); y_train (N, 1) uint8; y_test (N, 1) from a list -> int64.
    assert (x_train.shape, x_train.dtype) == ((n_train, 32, 32, 3), np.uint8)
    assert (x_test.shape, x_test.dtype) == ((n_test, 32, 32, 3), np.uint8)
    assert (y_train.shape, y_train.dtype) == ((n_train, 1), np.uint8)
    assert (y_test.shape, y_test.dtype) == ((n_test, 1), np.array([1]).dtype)
    np.testing.assert_array_equal(x_train, expected["x_train"])
    np.testing.assert_array_equal(x_test, expected["x_test"])
    np.testing.assert_array_equal(y_train[:, 0], expected["y_train"])
    np.testing.assert_array_equal(y_test[:, 0], expected["y_test"])


# --------------------------------------------------------------------------------------------------
# the fixtures themselves: the official format


def test_fixture_batches_have_the_official_pickle_structure(tmp_path):
    expected = write_cifar10(str(tmp_path), rows_per_batch=2, test_rows=2, batches=(1,))
    data = read_bytes(os.path.join(expected["dir"], "test_batch"))
    globals_named = [arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"]
    assert globals_named == ["numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"]
    # A plain (unrestricted) pickle.load with Keras's encoding reads it as the official files read.
    batch = pickle.loads(data, encoding="bytes")
    assert sorted(batch) == [b"batch_label", b"data", b"filenames", b"labels"]
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (2, 3072)
    np.testing.assert_array_equal(batch[b"labels"], expected["y_test"])


def test_channels_last_layout_is_keras_transpose_of_the_planes(tmp_path):
    """Row r of a batch is R plane, G plane, B plane (each 32x32 row-major): check one pixel by hand."""
    expected = write_cifar10(str(tmp_path), rows_per_batch=2, test_rows=2, batches=(1,))
    raw = pickle.loads(read_bytes(os.path.join(expected["dir"], "data_batch_1")), encoding="bytes")[
        b"data"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (x_train, _), _ = cifar10.load_data(path=expected["dir"])
    image, row, col = 1, 5, 17
    for channel in range(3):
        assert x_train[image, row, col, channel] == raw[image, channel * 1024 + row * 32 + col]
    assert not x_train.flags.c_contiguous  # Keras returns the transposed view, not a copy
    assert np.array_equal(
        x_train.reshape(len(x_train), 32, 32, 3), x_train
    )  # the script's no-op reshape


# --------------------------------------------------------------------------------------------------
# CIFAR-10 through every lookup path


def test_cifar10_explicit_path_folder_parent_and_archive(tmp_path):
    expected = write_cifar10(str(tmp_path / "data"))
    assert_cifar10_matches(cifar10.load_data(path=expected["dir"]), expected)
    assert_cifar10_matches(cifar10.load_data(path=str(tmp_path / "data")), expected)
    archive = make_tar_gz(expected["dir"], str(tmp_path / "cifar-10-python.tar.gz"))
    assert_cifar10_matches(cifar10.load_data(path=archive), expected)


def test_cifar10_explicit_path_that_does_not_hold_it_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match="cifar10.load_data: path=.*empty.* holds no usable CIFAR-10"
    ):
        cifar10.load_data(path=str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        cifar10.load_data(path=str(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    "archive_name", [None, "cifar-10-python.tar.gz", "cifar-10-batches-py.tar.gz"]
)
def test_cifar10_from_bnpy_data_folder_or_either_archive_name(tmp_path, monkeypatch, archive_name):
    expected = write_cifar10(str(tmp_path / "made"))
    data = tmp_path / "bnpy-data"
    data.mkdir()
    if archive_name is None:
        shutil.copytree(expected["dir"], str(data / CIFAR10_DIR))
    else:
        make_tar_gz(expected["dir"], str(data / archive_name))
    monkeypatch.setenv("BNPY_DATA", str(data))
    before = tree(str(data))
    assert_cifar10_matches(cifar10.load_data(), expected)
    assert (
        tree(str(data)) == before
    )  # read in place: an archive is read, not unpacked beside itself


def test_cifar10_from_keras_cache_under_home(tmp_path, isolated):
    expected = write_cifar10(str(isolated["keras"]))
    assert_cifar10_matches(cifar10.load_data(), expected)


def test_cifar10_from_a_system_folder(tmp_path, isolated):
    expected = write_cifar10(str(isolated["system"]))
    assert_cifar10_matches(cifar10.load_data(), expected)


def test_lookup_order_bnpy_data_before_keras_cache_before_system(tmp_path, monkeypatch, isolated):
    in_system = write_cifar10(str(isolated["system"]), seed=10)
    in_keras = write_cifar10(str(isolated["keras"]), seed=11)
    assert_cifar10_matches(cifar10.load_data(), in_keras)
    in_env = write_cifar10(str(tmp_path / "env"), seed=12)
    monkeypatch.setenv("BNPY_DATA", str(tmp_path / "env"))
    assert_cifar10_matches(cifar10.load_data(), in_env)
    assert_cifar10_matches(cifar10.load_data(path=in_system["dir"]), in_system)  # path= beats all


def _cifar10_archive(tmp_path):
    """A CIFAR-10 folder written under tmp_path/made, and its cifar-10-python.tar.gz as bytes."""
    expected = write_cifar10(str(tmp_path / "made"))
    archive = read_bytes(make_tar_gz(expected["dir"], str(tmp_path / "cifar-10-python.tar.gz")))
    return expected, archive


def _download_cifar10_from(monkeypatch, local_server, name, served, file_hash):
    """cifar10.load_data downloads ``served`` from the local server's /name, expecting file_hash."""
    local_server.files["/" + name] = served
    download = _lookup.Download(
        fname=CIFAR10_DIR, untar=True, origins=(local_server.url(name),), file_hash=file_hash
    )
    monkeypatch.setattr(cifar10, "DOWNLOAD", download)
    monkeypatch.delenv("BNPY_OFFLINE")


def test_cifar10_download_from_local_server_verifies_and_caches(
    tmp_path, monkeypatch, local_server, capsys
):
    expected, archive = _cifar10_archive(tmp_path)
    _download_cifar10_from(
        monkeypatch, local_server, "cifar-10-python.tar.gz", archive, sha256(archive)
    )
    data = tmp_path / "bnpy-data"
    monkeypatch.setenv("BNPY_DATA", str(data))  # downloads go to the first $BNPY_DATA folder

    assert_cifar10_matches(cifar10.load_data(), expected)
    out = capsys.readouterr().out
    assert "Downloading data from " + local_server.url("cifar-10-python.tar.gz") in out
    assert "{0}/{0} [".format(len(archive)) in out
    # Keras's cache layout: the archive kept as <dirname>.tar.gz next to the unpacked folder.
    assert sorted(os.listdir(str(data))) == [CIFAR10_DIR, CIFAR10_DIR + ".tar.gz"]
    assert_cifar10_matches(cifar10.load_data(), expected)
    assert local_server.requests == ["/cifar-10-python.tar.gz"]  # the second load found it on disk


def test_download_goes_to_keras_cache_without_bnpy_data(
    tmp_path, monkeypatch, local_server, isolated
):
    arrays = write_mnist_npz(str(tmp_path / "made" / "mnist.npz"))
    payload = read_bytes(str(tmp_path / "made" / "mnist.npz"))
    local_server.files["/mnist.npz"] = payload
    monkeypatch.setattr(mnist, "ORIGINS", (local_server.url("mnist.npz"),))
    monkeypatch.setattr(mnist, "FILE_HASH", md5(payload))
    monkeypatch.delenv("BNPY_OFFLINE")
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    np.testing.assert_array_equal(x_test, arrays["x_test"])
    assert tree(str(isolated["keras"])) == ["mnist.npz"]


def test_corrupt_download_gives_checksum_error_and_leaves_nothing(
    tmp_path, monkeypatch, local_server
):
    _, archive = _cifar10_archive(tmp_path)
    corrupt = archive[:-10] + b"0123456789"
    _download_cifar10_from(monkeypatch, local_server, "c.tar.gz", corrupt, md5(archive))
    monkeypatch.setenv("BNPY_DATA", str(tmp_path / "bnpy-data"))
    with pytest.raises(ChecksumError, match="expected"):
        cifar10.load_data()
    assert tree(str(tmp_path / "bnpy-data")) == []


def test_not_found_offline_names_file_folders_and_url(isolated):
    with pytest.raises(FileNotFoundError) as info:
        cifar10.load_data()
    message = str(info.value)
    for part in (
        "cifar10.load_data",
        "cifar-10-batches-py",
        "cifar-10-python.tar.gz",
        str(isolated["keras"]),
        str(isolated["system"]),
        "$BNPY_DATA",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "170,498,071 bytes",
        cifar10.DOWNLOAD.file_hash,
        "c58f30108f718f92721af3b95e74349a",
        "BNPY_OFFLINE",
        "$BNPY_DATA (not set)",
    ):
        assert part in message, (part, message)


def test_not_found_when_the_download_fails_says_why(monkeypatch, local_server):
    monkeypatch.setattr(fashion_mnist, "BASE_URLS", (local_server.url("nothing-here/"),))
    monkeypatch.delenv("BNPY_OFFLINE")
    with pytest.raises(FileNotFoundError) as info:
        fashion_mnist.load_data()
    message = str(info.value)
    assert "could not be downloaded" in message and "404" in message
    assert "apt install dataset-fashion-mnist" in message
    assert "train-labels-idx1-ubyte.gz" in message


def test_partial_cifar10_folder_loads_what_is_there_with_a_warning(tmp_path):
    expected = write_cifar10(str(tmp_path), rows_per_batch=3, batches=(1, 3))
    with pytest.warns(
        UserWarning,
        match=r"holds only 2 of the five .*data_batch_2, data_batch_4, "
        r"data_batch_5 missing.* 6 training images",
    ):
        loaded = cifar10.load_data(path=expected["dir"])
    assert_cifar10_matches(loaded, expected)


def test_cifar10_folder_without_test_batch_is_not_usable(tmp_path):
    expected = write_cifar10(str(tmp_path))
    os.remove(os.path.join(expected["dir"], "test_batch"))
    with pytest.raises(FileNotFoundError, match="has no test_batch"):
        cifar10.load_data(path=expected["dir"])


def test_truncated_cifar_archive_gives_clear_error(tmp_path, monkeypatch):
    expected = write_cifar10(str(tmp_path / "made"))
    archive = read_bytes(make_tar_gz(expected["dir"], str(tmp_path / "full.tar.gz")))
    data = tmp_path / "bnpy-data"
    data.mkdir()
    (data / "cifar-10-python.tar.gz").write_bytes(archive[: len(archive) // 2])
    monkeypatch.setenv("BNPY_DATA", str(data))
    with pytest.raises(
        DataFileError, match="cifar10.load_data: .*cifar-10-python.tar.gz is truncated or corrupt"
    ):
        cifar10.load_data()
    assert tree(str(data)) == ["cifar-10-python.tar.gz"]  # nothing extracted beside it


def test_truncated_batch_file_gives_clear_error(tmp_path):
    expected = write_cifar10(str(tmp_path))
    path = os.path.join(expected["dir"], "data_batch_2")
    data = read_bytes(path)
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="data_batch_2 .* is not a readable CIFAR batch"):
        cifar10.load_data(path=expected["dir"])


def test_out_of_range_labels_are_reported(tmp_path):
    expected = write_cifar10(str(tmp_path), batches=(1,))
    path = os.path.join(expected["dir"], "test_batch")
    with open(path, "wb") as f:
        f.write(py2_pickle({b"labels": [0, 12], b"data": np.zeros((2, 3072), np.uint8)}))
    with (
        pytest.warns(UserWarning),
        pytest.raises(DataFileError, match=r"labels in \[0, 12\], expected 0 to 9"),
    ):
        cifar10.load_data(path=expected["dir"])


def test_label_too_large_for_int64_is_reported(tmp_path):
    expected = write_cifar10(str(tmp_path))
    with open(os.path.join(expected["dir"], "test_batch"), "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [2**70]}, f, protocol=3)
    with pytest.raises(DataFileError, match="test_batch in .* has a label too large"):
        cifar10.load_data(path=expected["dir"])


# --------------------------------------------------------------------------------------------------
# CIFAR-100


@pytest.mark.parametrize("label_mode, classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_label_modes(tmp_path, label_mode, classes):
    expected = write_cifar100(str(tmp_path))
    (x_train, y_train), (x_test, y_test) = cifar100.load_data(
        label_mode=label_mode, path=expected["dir"]
    )
    assert (x_train.shape, x_train.dtype) == ((5, 32, 32, 3), np.uint8)
    assert (x_test.shape, y_test.shape) == ((3, 32, 32, 3), (3, 1))
    assert y_train.dtype == np.array([1]).dtype  # Keras 2.0: both label arrays from lists
    np.testing.assert_array_equal(x_train, expected["x_train"])
    np.testing.assert_array_equal(y_train[:, 0], expected[label_mode + "_train"])
    np.testing.assert_array_equal(y_test[:, 0], expected[label_mode + "_test"])


def test_cifar100_archive_in_keras_cache_and_bad_label_mode(tmp_path, isolated):
    expected = write_cifar100(str(tmp_path / "made"))
    isolated["keras"].mkdir(parents=True)
    make_tar_gz(expected["dir"], str(isolated["keras"] / "cifar-100-python.tar.gz"))
    (x_train, _), _ = cifar100.load_data("coarse")
    np.testing.assert_array_equal(x_train, expected["x_train"])
    with pytest.raises(
        ValueError, match='cifar100.load_data: label_mode must be one of "fine" "coarse"'
    ):
        cifar100.load_data(label_mode="medium")


@pytest.mark.parametrize(
    "loader", [cifar10.load_data, cifar100.load_data, mnist.load_data, fashion_mnist.load_data]
)
def test_path_of_the_wrong_type_is_a_type_error_naming_the_loader(loader):
    name = loader.__module__.rsplit(".", 1)[1] + ".load_data: path must be"
    with pytest.raises(TypeError, match=name):
        loader(path=42)
