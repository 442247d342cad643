"""bnpy.datasets' MNIST and Fashion-MNIST: where load_data finds the files, what it returns, and
what it refuses (corrupt, truncated or inconsistent files; a bounded fuzz of .npz and .gz byte
edits), and the real Fashion-MNIST of Debian's package where it is installed. Files are written by
tests/dataset_fixtures.py in the official formats; nothing here reads the network."""

import os

import numpy as np
import pytest
from dataset_checks import Exploit, mutations
from dataset_fixtures import (
    FASHION_FILES,
    fashion_payloads,
    md5,
    read_bytes,
    tree,
    write_fashion_mnist,
    write_mnist_npz,
)

from bnpy.datasets import DataFileError, _lookup, fashion_mnist, mnist

# Every test runs isolated (dataset_checks.py): no real HOME, $BNPY_DATA, system folder or download.
pytestmark = pytest.mark.usefixtures("isolated")


def _assert_digits(loaded, arrays):
    """MNIST and Fashion-MNIST: the four arrays as written, uint8, and writeable (as Keras's)."""
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


# --------------------------------------------------------------------------------------------------
# MNIST


def test_mnist_explicit_path_bnpy_data_and_keras_cache(tmp_path, monkeypatch, isolated):
    arrays = write_mnist_npz(str(tmp_path / "files" / "mnist.npz"))
    _assert_digits(mnist.load_data(path=str(tmp_path / "files" / "mnist.npz")), arrays)
    _assert_digits(mnist.load_data(path=str(tmp_path / "files")), arrays)  # a folder holding it
    keras_arrays = write_mnist_npz(str(isolated["keras"] / "mnist.npz"), seed=5)
    _assert_digits(mnist.load_data(), keras_arrays)
    monkeypatch.setenv("BNPY_DATA", str(tmp_path / "files"))
    _assert_digits(mnist.load_data(), arrays)


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
        x_train=np.array([Exploit(str(tmp_path / "pwned"))], dtype=object),
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


def test_fashion_mnist_from_a_debian_like_system_folder(isolated):
    # Debian's dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/<the four .gz files>
    arrays = write_fashion_mnist(str(isolated["system"] / "fashion-mnist"))
    _assert_digits(fashion_mnist.load_data(), arrays)


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_bnpy_data_gzipped_or_not_and_explicit_path(tmp_path, monkeypatch, gz):
    arrays = write_fashion_mnist(str(tmp_path / "d" / "fashion-mnist"), gz=gz)
    _assert_digits(fashion_mnist.load_data(path=str(tmp_path / "d" / "fashion-mnist")), arrays)
    monkeypatch.setenv("BNPY_DATA", str(tmp_path / "d"))
    _assert_digits(fashion_mnist.load_data(), arrays)


def test_fashion_mnist_download_lands_in_keras_layout(
    tmp_path, monkeypatch, local_server, isolated
):
    payloads, arrays = fashion_payloads()
    for name, data in payloads.items():
        local_server.files["/fm/" + name] = data
    monkeypatch.setattr(fashion_mnist, "BASE_URLS", (local_server.url("fm/"),))
    monkeypatch.setattr(fashion_mnist, "MD5", {name: md5(data) for name, data in payloads.items()})
    monkeypatch.delenv("BNPY_OFFLINE")
    _assert_digits(fashion_mnist.load_data(), arrays)
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


def test_mutated_npz_and_gz_files_give_a_clear_error_or_valid_arrays(tmp_path):
    """Bounded fuzz of the other two formats: only DataFileError, never another exception."""
    npz = tmp_path / "mnist.npz"
    write_mnist_npz(str(npz))
    original = read_bytes(str(npz))
    errors = 0
    for mutated in mutations(original, 400, seed=1):
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
    for mutated in mutations(original, 300, seed=2):
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
