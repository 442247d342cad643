"""Image folders (load_from_directory, flow_from_directory) and the PIL helpers, on tiny trees of
PNG/JPEG files each test writes itself. Pillow is an optional extra: without it these tests skip,
except the one that checks the error a user without Pillow gets."""

import os
import sys

import numpy as np
import pytest

from bnpy.datasets.cifar10 import LABEL_NAMES
from bnpy.preprocessing import image as bimage
from bnpy.preprocessing.image import ImageDataGenerator, load_from_directory

CIFAR_CLASSES = list(LABEL_NAMES)  # alphabetical: the archive's class folders sort into label order


@pytest.fixture
def pil():
    return pytest.importorskip(
        "PIL.Image", reason="Pillow (bnpy[image], in the test extra) is not installed"
    )


def write_png(pil, path, pixels):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    pil.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode).save(path)


@pytest.fixture
def tree(tmp_path, pil):
    """root/{bird,cat,dog}/...: PNGs (lossless: pixels known exactly), one upper-case .PNG, one
    nested folder, a text file and an empty folder that are not images."""
    rng = np.random.default_rng(0)
    root = tmp_path / "train"
    layout = {
        "cat": ["b.png", "a.png", "nested/c.png"],
        "dog": ["x.PNG"],
        "bird": ["0.png", "1.png"],
    }
    pixels = {}
    for cls, names in layout.items():
        for name in names:
            arr = rng.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
            write_png(pil, str(root / cls / name), arr)
            pixels[os.path.join(cls, name)] = arr
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "empty_class").mkdir()
    return str(root), pixels


def test_load_from_directory_reads_classes_in_order(tree):
    root, pixels = tree
    x, y, names = load_from_directory(root)
    assert names == ["bird", "cat", "dog", "empty_class"]
    order = ["bird/0.png", "bird/1.png", "cat/a.png", "cat/b.png", "cat/nested/c.png", "dog/x.PNG"]
    assert x.dtype == np.uint8 and x.shape == (6, 6, 5, 3)
    assert y.dtype == np.int32 and list(y) == [0, 0, 1, 1, 1, 2]
    for i, rel in enumerate(order):
        np.testing.assert_array_equal(x[i], pixels[rel.replace("/", os.sep)], err_msg=rel)


def test_load_from_directory_classes_argument_sets_labels(tree):
    root, pixels = tree
    x, y, names = load_from_directory(root, classes=["dog", "bird"])
    assert names == ["dog", "bird"] and list(y) == [0, 1, 1]
    np.testing.assert_array_equal(x[0], pixels[os.path.join("dog", "x.PNG")])
    with pytest.raises(
        ValueError, match="load_from_directory: class folders \\['cow'\\] not found"
    ):
        load_from_directory(root, classes=["cow"])


def test_load_from_directory_resize_and_color_modes(tree, pil):
    root, pixels = tree
    x, _, _ = load_from_directory(root, target_size=(4, 7))
    assert x.shape == (6, 4, 7, 3)
    g, _, _ = load_from_directory(root, color_mode="grayscale")
    assert g.shape == (6, 6, 5, 1)
    first = pixels[os.path.join("bird", "0.png")]
    np.testing.assert_array_equal(
        g[0, :, :, 0], np.asarray(pil.fromarray(first, "RGB").convert("L"))
    )
    rgba, _, _ = load_from_directory(root, color_mode="rgba")
    assert rgba.shape == (6, 6, 5, 4) and np.all(rgba[..., 3] == 255)
    with pytest.raises(ValueError, match="load_from_directory: color_mode"):
        load_from_directory(root, color_mode="cmyk")


def test_load_from_directory_jpeg_and_size_mismatch(tmp_path, pil):
    root = tmp_path / "data"
    smooth = np.tile(np.linspace(0, 255, 8, dtype=np.uint8)[None, :, None], (8, 1, 3))
    (root / "a").mkdir(parents=True)
    pil.fromarray(smooth, "RGB").save(str(root / "a" / "0.jpg"), quality=95)
    x, y, names = load_from_directory(str(root))
    assert x.shape == (1, 8, 8, 3) and names == ["a"]
    # JPEG is lossy: a smooth ramp at quality 95 comes back within a few grey levels
    assert np.abs(x[0].astype(int) - smooth).max() <= 8
    write_png(pil, str(root / "a" / "1.png"), np.zeros((5, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="1.png.*5x8.*first image is 8x8.*target_size"):
        load_from_directory(str(root))
    x, _, _ = load_from_directory(str(root), target_size=(8, 8))
    assert x.shape == (2, 8, 8, 3)


def test_load_from_directory_reads_the_cifar10_jpeg_layout(tmp_path, pil):
    # The layout of the CIFAR-10 JPEG archive: <split>/<class>/<NNNN>.jpg, class folders named so
    # that alphabetical order is CIFAR-10's label order 0..9.
    rng = np.random.default_rng(2)
    for cls in CIFAR_CLASSES:
        for k in range(2):
            path = tmp_path / "cifar10-jpeg" / "test" / cls / "{:04d}.jpg".format(k)
            path.parent.mkdir(parents=True, exist_ok=True)
            pil.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), "RGB").save(str(path))
    x, y, names = load_from_directory(str(tmp_path / "cifar10-jpeg" / "test"))
    assert names == CIFAR_CLASSES
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 2))


def test_load_from_directory_errors(tmp_path, pil):
    with pytest.raises(ValueError, match="load_from_directory: directory .* does not exist"):
        load_from_directory(str(tmp_path / "missing"))
    (tmp_path / "only_empty" / "a").mkdir(parents=True)
    x, y, names = load_from_directory(str(tmp_path / "only_empty"), target_size=(3, 4))
    assert x.shape == (0, 3, 4, 3) and len(y) == 0 and names == ["a"]


@pytest.mark.parametrize("class_mode", ["categorical", "binary", "sparse", "input", None])
def test_flow_from_directory_batches(tree, class_mode, capsys):
    root, _ = tree
    x, y, _ = load_from_directory(root, classes=["bird", "cat"])
    it = ImageDataGenerator(rescale=1 / 255.0).flow_from_directory(
        root,
        target_size=(6, 5),
        classes=["bird", "cat"],
        class_mode=class_mode,
        batch_size=4,
        shuffle=False,
    )
    assert "Found 5 images belonging to 2 classes." in capsys.readouterr().out
    assert it.class_indices == {"bird": 0, "cat": 1} and it.samples == 5 and it.num_class == 2
    assert it.filenames[2] == os.path.join("cat", "a.png")
    out = next(it)
    bx = out[0] if class_mode is not None else out
    assert bx.shape == (4, 6, 5, 3) and bx.dtype == np.float32
    np.testing.assert_allclose(bx, x[:4].astype(np.float32) / 255.0, rtol=1e-6)
    if class_mode == "categorical":
        np.testing.assert_array_equal(out[1], np.eye(2, dtype=np.float32)[y[:4]])
    elif class_mode == "binary":
        assert out[1].dtype == np.float32 and list(out[1]) == [0, 0, 1, 1]
    elif class_mode == "sparse":
        assert list(out[1]) == [0, 0, 1, 1]
    elif class_mode == "input":
        np.testing.assert_array_equal(out[1], bx)
    assert len(next(it)[0] if class_mode is not None else next(it)) == 1  # the short last batch


def test_flow_from_directory_augments_and_channels_first(tree):
    root, _ = tree
    gen = ImageDataGenerator(rotation_range=30, horizontal_flip=True, data_format="channels_first")
    it = gen.flow_from_directory(
        root, target_size=(6, 5), class_mode="sparse", batch_size=6, shuffle=True, seed=1
    )
    bx, by = next(it)
    assert bx.shape == (6, 3, 6, 5)
    assert sorted(by) == [0, 0, 1, 1, 1, 2]
    with pytest.raises(ValueError, match="flow_from_directory: class_mode"):
        gen.flow_from_directory(root, class_mode="one-hot")


def test_flow_from_directory_grayscale(tree):
    root, _ = tree
    it = ImageDataGenerator().flow_from_directory(
        root, target_size=(3, 3), color_mode="grayscale", batch_size=2
    )
    bx, by = next(it)
    assert bx.shape == (2, 3, 3, 1) and by.shape == (2, 4)


def test_array_to_img_and_back(pil):
    x = np.random.default_rng(3).integers(0, 256, (4, 6, 3)).astype(np.float32)
    img = bimage.array_to_img(x, scale=False)
    assert img.size == (6, 4) and img.mode == "RGB"
    np.testing.assert_array_equal(bimage.img_to_array(img), x)
    np.testing.assert_array_equal(
        bimage.img_to_array(img, data_format="channels_first"), x.transpose(2, 0, 1)
    )
    scaled = bimage.img_to_array(bimage.array_to_img(x - 1000.0))  # shifted to 0, max scaled to 255
    assert scaled.min() == 0 and scaled.max() == 255
    grey = bimage.array_to_img(x[:, :, :1], scale=False)
    assert grey.mode == "L" and bimage.img_to_array(grey).shape == (4, 6, 1)
    with pytest.raises(ValueError, match="array_to_img: x must have 1, 3 or 4 channels"):
        bimage.array_to_img(np.zeros((4, 6, 2)))
    with pytest.raises(ValueError, match="array_to_img: x must be one image of rank 3"):
        bimage.array_to_img(np.zeros((1, 4, 6, 3)))


def test_load_img_and_list_pictures(tree, pil):
    root, pixels = tree
    path = os.path.join(root, "cat", "a.png")
    img = bimage.load_img(path, target_size=(3, 2))
    assert img.size == (2, 3) and img.mode == "RGB"
    assert bimage.load_img(path, grayscale=True).mode == "L"
    with pytest.raises(ValueError, match="load_img: interpolation"):
        bimage.load_img(path, target_size=(3, 2), interpolation="magic")
    assert len(bimage.list_pictures(root, ext="png")) == 6  # extensions match in any case
    assert bimage.list_pictures(root, ext="jpg") == []


def test_missing_pillow_gives_the_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import Image` fail
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    hint = r'pip install "bnpy\[image\]"'
    with pytest.raises(ImportError, match="load_from_directory needs Pillow.*" + hint):
        load_from_directory(str(tmp_path))
    with pytest.raises(ImportError, match="flow_from_directory needs Pillow.*" + hint):
        ImageDataGenerator().flow_from_directory(str(tmp_path))
    with pytest.raises(ImportError, match="array_to_img needs Pillow"):
        bimage.array_to_img(np.zeros((2, 2, 3)))
    with pytest.raises(ImportError, match="save_to_dir"):
        ImageDataGenerator().flow(np.zeros((2, 2, 2, 3)), save_to_dir=str(tmp_path))
    # augmentation itself needs no Pillow
    assert next(
        ImageDataGenerator(rotation_range=5).flow(np.zeros((2, 4, 4, 3)), batch_size=2)
    ).shape == (2, 4, 4, 3)
