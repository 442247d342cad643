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
    FASHION_FILES,
    fashion_payloads,
    make_tar_gz,
    md5,
    py2_pickle,
    read_bytes,
    sha256,
    tree,
    write_cifar10,
    write_cifar100,
    write_fashion_mnist,
    write_mnist_npz,
)

from bnpy.datasets import (
    ChecksumError,
    DataFileError,
    UnsafePickleError,
    _lookup,
    cifar,
    cifar10,
    cifar100,
    fashion_mnist,
    mnist,
)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh HOME, no $BNPY_DATA, an empty system folder, and no downloads unless a test allows."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(_lookup.ENV_DATA, raising=False)
    monkeypatch.setenv(_lookup.ENV_OFFLINE, "1")
    system = tmp_path / "system"
    system.mkdir()
    monkeypatch.setattr(_lookup, "SYSTEM_DATA_DIRS", [str(system)])
    return {"home": home, "keras": home / ".keras" / "datasets", "system": system}


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


def test_cifar10_download_from_local_server_verifies_and_caches(
    tmp_path, monkeypatch, local_server, capsys
):
    expected = write_cifar10(str(tmp_path / "made"))
    archive = read_bytes(make_tar_gz(expected["dir"], str(tmp_path / "cifar-10-python.tar.gz")))
    local_server.files["/cifar-10-python.tar.gz"] = archive
    monkeypatch.setattr(
        cifar10,
        "DOWNLOAD",
        _lookup.Download(
            fname=CIFAR10_DIR,
            untar=True,
            origins=(local_server.url("cifar-10-python.tar.gz"),),
            file_hash=sha256(archive),
        ),
    )
    monkeypatch.delenv("BNPY_OFFLINE")
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
    expected = write_cifar10(str(tmp_path / "made"))
    archive = read_bytes(make_tar_gz(expected["dir"], str(tmp_path / "cifar-10-python.tar.gz")))
    local_server.files["/c.tar.gz"] = archive[:-10] + b"0123456789"
    monkeypatch.setattr(
        cifar10,
        "DOWNLOAD",
        _lookup.Download(
            fname=CIFAR10_DIR,
            untar=True,
            origins=(local_server.url("c.tar.gz"),),
            file_hash=md5(archive),
        ),
    )
    monkeypatch.delenv("BNPY_OFFLINE")
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
# the restricted unpickler


class _Exploit:
    """Unpickling this with plain pickle would run ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


def _crafted_pickles(marker):
    protocol_0 = "cos\nsystem\n(S'touch {}'\ntR.".format(marker).encode()
    return {
        "os.system, protocol 0 GLOBAL": protocol_0,
        "os.system inside a batch dict, protocol 2": pickle.dumps(
            {"data": _Exploit(marker)}, protocol=2
        ),
        "os.system via STACK_GLOBAL, protocol 4": pickle.dumps(_Exploit(marker), protocol=4),
        "builtins.eval": pickle.dumps(_EvalExploit(marker), protocol=2),
    }


class _EvalExploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, ("open({!r}, 'w').close()".format(self.marker),))


@pytest.mark.parametrize(
    "case",
    [
        "os.system, protocol 0 GLOBAL",
        "os.system inside a batch dict, protocol 2",
        "os.system via STACK_GLOBAL, protocol 4",
        "builtins.eval",
    ],
)
def test_crafted_pickle_is_refused_and_nothing_runs(tmp_path, case):
    marker = str(tmp_path / "pwned")
    data = _crafted_pickles(marker)[case]
    expected = write_cifar10(str(tmp_path / "d"), batches=(1,))
    with open(os.path.join(expected["dir"], "data_batch_1"), "wb") as f:
        f.write(data)
    with pytest.raises(
        UnsafePickleError,
        match=r"asks to load the global (posix|os|nt|builtins|__builtin__)\.(system|eval)",
    ):
        cifar10.load_data(path=expected["dir"])
    assert not os.path.exists(marker)
    assert isinstance(UnsafePickleError("x"), (ValueError, pickle.UnpicklingError))


def test_the_exploit_fixture_really_is_one(tmp_path):
    """Guard for the test above: plain pickle.loads of the same bytes does run the command."""
    marker = str(tmp_path / "pwned")
    pickle.loads(_crafted_pickles(marker)["builtins.eval"])
    assert os.path.exists(marker)


def test_allowed_globals_cannot_be_misused(tmp_path):
    # _reconstruct with something other than numpy.ndarray as the class
    misuse = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\ndtype\nK\x00\x85U\x01b\x87R."
    with pytest.raises(UnsafePickleError, match="only numpy.ndarray is allowed"):
        cifar.unpickle_batch(misuse, "misuse")
    # numpy.ndarray called directly (REDUCE): the token it resolves to is not callable
    direct = b"\x80\x02cnumpy\nndarray\nK\x02\x85R."
    with pytest.raises(DataFileError, match="not a readable CIFAR batch"):
        cifar.unpickle_batch(direct, "direct")
    # object arrays could carry anything: numpy.dtype('O') is refused
    object_dtype = b"\x80\x02cnumpy\ndtype\nU\x02O8\x89\x88\x87R."
    with pytest.raises(UnsafePickleError, match="only plain numeric dtypes"):
        cifar.unpickle_batch(object_dtype, "object")
    # other numpy globals are not on the list
    matrix = b"\x80\x02cnumpy\nmatrix\n."
    with pytest.raises(UnsafePickleError, match="global numpy.matrix"):
        cifar.unpickle_batch(matrix, "matrix")


def test_opcodes_official_files_lack_are_refused_before_unpickling():
    with pytest.raises(UnsafePickleError, match="opcode INST at byte 1"):
        cifar.unpickle_batch(b"(ios\nsystem\n.", "inst")
    with pytest.raises(UnsafePickleError, match="opcode EXT1"):
        cifar.unpickle_batch(b"\x80\x02\x82\x01.", "ext")  # copyreg's extension registry
    with pytest.raises(UnsafePickleError, match="opcode BYTEARRAY8"):
        cifar.unpickle_batch(b"\x80\x05\x96" + (1).to_bytes(8, "little") + b"x.", "bytearray")
    # A memo index near 2**31 would make CPython's unpickler allocate gigabytes: refused by the scan.
    with pytest.raises(DataFileError, match="memo entry 2147483647 stored when only 1 exist"):
        cifar.unpickle_batch(b"\x80\x02}q\x00]r\xff\xff\xff\x7f.", "memo")
    with pytest.raises(DataFileError, match="ends without a STOP"):
        cifar.unpickle_batch(b"\x80\x02}q\x00", "cut")


def test_mutated_batches_give_a_clear_error_or_a_valid_batch():
    """A bounded fuzz: 1,500 random byte edits of a small batch never crash, hang or leak other errors."""
    base = py2_pickle(
        {
            b"batch_label": b"x",
            b"labels": [1, 2, 3],
            b"filenames": [b"a", b"b", b"c"],
            b"data": (np.arange(3 * 3072) % 7).astype(np.uint8).reshape(3, 3072),
        }
    )
    structure_end = base.index(b"T")  # edits mostly before the raw pixel bytes, where structure is
    outcomes = {"error": 0, "valid": 0}
    for mutated in _mutations(base, 1500, seed=2017, focus_end=structure_end + 5):
        try:
            images, labels = cifar.parse_batch(mutated, "fuzz")
        except DataFileError:
            outcomes["error"] += 1
            continue
        assert (
            images.dtype == np.uint8
            and images.shape[1:] == (3, 32, 32)
            and len(labels) == len(images)
        )
        outcomes["valid"] += 1
    assert outcomes["error"] > 1000  # the edits really do break most batches


def test_numpy2_written_batches_are_accepted(tmp_path):
    """A batch re-pickled by NumPy 2 (protocol 3+) names numpy._core.multiarray._reconstruct."""
    rows = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251
    data = pickle.dumps({b"data": rows, b"labels": [3, 4]}, protocol=3)
    images, labels = cifar.parse_batch(data, "numpy2")
    np.testing.assert_array_equal(images.reshape(2, 3072), rows)
    assert labels == [3, 4]


def test_wrong_batch_contents_are_reported(tmp_path):
    with pytest.raises(DataFileError, match=r"'data' should be a uint8 array of shape \(N, 3072\)"):
        cifar.parse_batch(
            py2_pickle({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}), "b"
        )
    with pytest.raises(DataFileError, match="has 2 images but 1 labels"):
        cifar.parse_batch(py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "b")
    with pytest.raises(DataFileError, match="has no 'labels' entry"):
        cifar.parse_batch(py2_pickle({b"data": np.zeros((2, 3072), np.uint8)}), "b")


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


# --------------------------------------------------------------------------------------------------
# MNIST


def _assert_mnist(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for name, value in (
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_test", x_test),
        ("y_test", y_test),
    ):
        assert value.dtype == np.uint8 and value.shape == arrays[name].shape, name
        np.testing.assert_array_equal(value, arrays[name])


def test_mnist_explicit_path_bnpy_data_and_keras_cache(tmp_path, monkeypatch, isolated):
    arrays = write_mnist_npz(str(tmp_path / "files" / "mnist.npz"))
    _assert_mnist(mnist.load_data(path=str(tmp_path / "files" / "mnist.npz")), arrays)
    _assert_mnist(mnist.load_data(path=str(tmp_path / "files")), arrays)  # a folder holding it
    keras_arrays = write_mnist_npz(str(isolated["keras"] / "mnist.npz"), seed=5)
    _assert_mnist(mnist.load_data(), keras_arrays)
    monkeypatch.setenv("BNPY_DATA", str(tmp_path / "files"))
    _assert_mnist(mnist.load_data(), arrays)


def test_mnist_corrupt_and_wrong_files(tmp_path):
    path = tmp_path / "mnist.npz"
    write_mnist_npz(str(path))
    data = read_bytes(str(path))
    path.write_bytes(data[: len(data) - 200])
    with pytest.raises((DataFileError, FileNotFoundError), match="mnist.load_data: .*mnist.npz"):
        mnist.load_data(path=str(path))
    np.savez(
        str(path),
        x_train=np.zeros((2, 28, 28), np.float32),
        y_train=np.zeros(2, np.uint8),
        x_test=np.zeros((1, 28, 28), np.uint8),
        y_test=np.zeros(1, np.uint8),
    )
    with pytest.raises(DataFileError, match=r"x_train should be uint8 \(N, 28, 28\), got float32"):
        mnist.load_data(path=str(path))
    # an object array needs pickle to load: refused (allow_pickle=False), not executed
    np.savez(
        str(path),
        x_train=np.array([_Exploit(str(tmp_path / "pwned"))], dtype=object),
        y_train=np.zeros(1, np.uint8),
        x_test=np.zeros((1, 28, 28), np.uint8),
        y_test=np.zeros(1, np.uint8),
    )
    with pytest.raises(
        DataFileError, match="mnist.npz is not a readable MNIST .npz file.*Python objects"
    ):
        mnist.load_data(path=str(path))
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------------------------------
# Fashion-MNIST


def _assert_fashion(loaded, arrays):
    (x_train, y_train), (x_test, y_test) = loaded
    for name, value in (
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_test", x_test),
        ("y_test", y_test),
    ):
        assert value.dtype == np.uint8 and value.shape == arrays[name].shape, name
        np.testing.assert_array_equal(value, arrays[name])
        assert value.flags.writeable


def test_fashion_mnist_from_a_debian_like_system_folder(isolated):
    # Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/<the four .gz files>
    arrays = write_fashion_mnist(str(isolated["system"] / "fashion-mnist"))
    _assert_fashion(fashion_mnist.load_data(), arrays)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_bnpy_data_gzipped_or_not_and_explicit_path(tmp_path, monkeypatch, gz):
    arrays = write_fashion_mnist(str(tmp_path / "d" / "fashion-mnist"), gz=gz)
    _assert_fashion(fashion_mnist.load_data(path=str(tmp_path / "d" / "fashion-mnist")), arrays)
    monkeypatch.setenv("BNPY_DATA", str(tmp_path / "d"))
    _assert_fashion(fashion_mnist.load_data(), arrays)


def test_fashion_mnist_download_lands_in_keras_layout(
    tmp_path, monkeypatch, local_server, isolated
):
    payloads, arrays = fashion_payloads()
    for name, data in payloads.items():
        local_server.files["/fm/" + name] = data
    monkeypatch.setattr(fashion_mnist, "BASE_URLS", (local_server.url("fm/"),))
    monkeypatch.setattr(fashion_mnist, "MD5", {name: md5(data) for name, data in payloads.items()})
    monkeypatch.delenv("BNPY_OFFLINE")
    _assert_fashion(fashion_mnist.load_data(), arrays)
    assert tree(str(isolated["keras"])) == ["fashion-mnist"] + sorted(
        "fashion-mnist/" + n for n in FASHION_FILES
    )


def test_fashion_mnist_truncated_and_inconsistent_files(tmp_path):
    folder = tmp_path / "fashion-mnist"
    write_fashion_mnist(str(folder))
    images = folder / "t10k-images-idx3-ubyte.gz"
    data = read_bytes(str(images))
    images.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="t10k-images-idx3-ubyte.gz is truncated or corrupt"):
        fashion_mnist.load_data(path=str(folder))
    write_fashion_mnist(str(folder))
    other, _ = fashion_payloads(n_train=4)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(other["train-labels-idx1-ubyte.gz"])
    with pytest.raises(DataFileError, match="has 5 training images but 4 labels"):
        fashion_mnist.load_data(path=str(folder))


def test_read_idx_checks_magic_and_size():
    good = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    np.testing.assert_array_equal(
        fashion_mnist.read_idx(good), np.arange(6, dtype=np.uint8).reshape(2, 3)
    )
    big_endian_i32 = (
        bytes([0, 0, 0x0C, 1, 0, 0, 0, 2])
        + (258).to_bytes(4, "big")
        + (-1).to_bytes(4, "big", signed=True)
    )
    np.testing.assert_array_equal(fashion_mnist.read_idx(big_endian_i32), [258, -1])
    with pytest.raises(DataFileError, match="bad magic number"):
        fashion_mnist.read_idx(b"\x1f\x8b\x08\x00" + good)
    with pytest.raises(DataFileError, match="truncated"):
        fashion_mnist.read_idx(good[:-1])
    with pytest.raises(DataFileError, match="trailing bytes"):
        fashion_mnist.read_idx(good + b"\x00")


@pytest.mark.parametrize(
    "loader", [cifar10.load_data, cifar100.load_data, mnist.load_data, fashion_mnist.load_data]
)
def test_path_of_the_wrong_type_is_a_type_error_naming_the_loader(loader):
    name = loader.__module__.rsplit(".", 1)[1] + ".load_data: path must be"
    with pytest.raises(TypeError, match=name):
        loader(path=42)


def _mutations(data, count, seed, focus_end=None):
    """`count` copies of `data` with 1-3 random byte edits each (replace, delete, insert); with
    focus_end, 9 edits in 10 fall before that offset (where a file's structure is)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        mutated = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            limit = len(mutated)
            if focus_end is not None and rng.random() < 0.9:
                limit = focus_end
            position = int(rng.integers(0, limit))
            edit = int(rng.integers(0, 3))
            if edit == 0:
                mutated[position] = int(rng.integers(0, 256))
            elif edit == 1:
                del mutated[position]
            else:
                mutated.insert(position, int(rng.integers(0, 256)))
        yield bytes(mutated)


def test_mutated_npz_and_gz_files_give_a_clear_error_or_valid_arrays(tmp_path):
    """Bounded fuzz of the other two formats: only DataFileError, never another exception."""
    npz = tmp_path / "mnist.npz"
    write_mnist_npz(str(npz))
    original = read_bytes(str(npz))
    errors = 0
    for mutated in _mutations(original, 400, seed=1):
        npz.write_bytes(mutated)
        try:
            (x_train, y_train), _ = mnist.load_data(path=str(npz))
        except DataFileError:
            errors += 1
            continue
        assert (
            x_train.dtype == np.uint8
            and x_train.shape[1:] == (28, 28)
            and len(y_train) == len(x_train)
        )
    assert errors > 300
    folder = tmp_path / "fashion-mnist"
    write_fashion_mnist(str(folder))
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    original = read_bytes(str(labels))
    errors = 0
    for mutated in _mutations(original, 300, seed=2):
        labels.write_bytes(mutated)
        try:
            fashion_mnist.load_data(path=str(folder))
        except DataFileError:
            errors += 1
    assert errors > 200


DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(
    not os.path.isdir(DEBIAN_FASHION_MNIST),
    reason="Debian's dataset-fashion-mnist is not installed (apt install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
    """The real files where the Debian package puts them, found through the default system folders."""
    monkeypatch.setattr(_lookup, "SYSTEM_DATA_DIRS", ["/usr/share/datasets"])
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    assert (x_train.shape, x_test.shape) == ((60000, 28, 28), (10000, 28, 28))
    assert x_train.dtype == y_train.dtype == np.uint8 and (y_train.shape, y_test.shape) == (
        (60000,),
        (10000,),
    )
    # Fashion-MNIST is balanced: 6,000 training and 1,000 test images per class (its README).
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), [1000] * 10)
    assert x_train.max() == 255 and x_train.min() == 0
