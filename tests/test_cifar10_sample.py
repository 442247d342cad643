"""The CIFAR-10 sample shipped inside bnpy (bnpy.datasets.cifar10_sample)."""

import shutil
import sys

import numpy as np
import pytest

from bnpy.datasets import DataFileError, cifar10_sample


@pytest.fixture(scope="module")
def sample():
    return cifar10_sample.load_data()


def test_shapes_dtypes_and_label_layout_are_cifar10s(sample):
    (x_train, y_train), (x_test, y_test) = sample
    assert x_train.shape == (10000, 32, 32, 3) and x_train.dtype == np.uint8
    assert x_test.shape == (2000, 32, 32, 3) and x_test.dtype == np.uint8
    # Keras 2.0's cifar10.load_data(): y_train uint8, y_test NumPy's default int, both (N, 1)
    assert y_train.shape == (10000, 1) and y_train.dtype == np.uint8
    assert y_test.shape == (2000, 1) and y_test.dtype == np.int64


def test_class_balanced_and_shuffled(sample):
    (_, y_train), (_, y_test) = sample
    assert np.bincount(y_train.ravel(), minlength=10).tolist() == [1000] * 10
    assert np.bincount(y_test.ravel(), minlength=10).tolist() == [200] * 10
    # one fixed random order: the first 500 training images hold every class
    assert np.bincount(y_train[:500].ravel(), minlength=10).min() >= 25


def test_images_are_real_pictures(sample):
    (x_train, _), (x_test, _) = sample
    for x in (x_train, x_test):
        assert 90 < x.mean() < 150  # CIFAR-10's mean pixel is about 120
        assert (x.reshape(len(x), -1).std(axis=1) > 5).mean() > 0.98  # not blank images
    # no image twice (a packing error would repeat one)
    flat = x_train.reshape(len(x_train), -1)
    assert len(np.unique(flat[:2000], axis=0)) == 2000


def test_file_provenance_first_images_of_each_class():
    with np.load(cifar10_sample.FILE, allow_pickle=False) as f:
        for split, per_class in (("train", 1000), ("test", 200)):
            labels, numbers = f[split + "_labels"], f[split + "_numbers"]
            for c in range(10):
                assert sorted(numbers[labels == c].tolist()) == list(range(per_class))
            offsets = f[split + "_offsets"]
            assert offsets[0] == 0 and np.all(np.diff(offsets) > 0)
            assert offsets[-1] == len(f[split + "_jpeg"])
        header = f["jpeg_header"].tobytes()
        assert header[:2] == b"\xff\xd8"  # JPEG start-of-image
        assert [str(n) for n in f["label_names"]] == list(cifar10_sample.LABEL_NAMES)


def test_channels_first(monkeypatch, sample):
    from bnpy.datasets import _lookup

    monkeypatch.setattr(_lookup, "image_data_format", lambda: "channels_first")
    (x_train, _), (x_test, _) = cifar10_sample.load_data()
    assert x_train.shape == (10000, 3, 32, 32) and x_test.shape == (2000, 3, 32, 32)
    np.testing.assert_array_equal(x_train[5], sample[0][0][5].transpose(2, 0, 1))


def test_missing_pillow_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"Pillow.*bnpy\[image\]"):
        cifar10_sample.load_data()


def test_damaged_file_is_refused(monkeypatch, tmp_path):
    damaged = tmp_path / "cifar10_sample.npz"
    shutil.copyfile(cifar10_sample.FILE, damaged)
    with open(damaged, "r+b") as f:
        f.seek(200000)
        byte = f.read(1)
        f.seek(200000)
        f.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(cifar10_sample, "FILE", str(damaged))
    with pytest.raises(DataFileError, match="damaged.*reinstall"):
        cifar10_sample.load_data()
    monkeypatch.setattr(cifar10_sample, "FILE", str(tmp_path / "missing.npz"))
    with pytest.raises(DataFileError, match="cannot read the built-in sample"):
        cifar10_sample.load_data()
