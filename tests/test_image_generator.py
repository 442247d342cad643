"""ImageDataGenerator against Keras 2.0.8's per-image pipeline (tests/reference_image.py), and its
standardization, fit, flow and errors.

On exactness: bnpy builds the transform matrices for a whole batch with stacked matmuls, Keras
(and the reference) with np.dot per image; the two can differ in the last bit of a matrix entry.
Nearest-neighbour output can only differ where a sampling coordinate lies within ~1e-13 of a
half-integer (a rounding tie) or of the constant-mode boundary, which random draws do not hit:
the comparisons below are exact, and a failure would name the first differing pixel.
"""

import numpy as np
import pytest
import reference_image as ref

from bnpy.preprocessing import image as bimage
from bnpy.preprocessing.image import ImageDataGenerator

EVERYTHING = dict(
    rotation_range=40,
    width_shift_range=0.2,
    height_shift_range=0.15,
    shear_range=0.4,
    zoom_range=0.3,
    channel_shift_range=20.0,
    horizontal_flip=True,
    vertical_flip=True,
)

CONFIGS = {
    "article": dict(rotation_range=25, width_shift_range=0.1, height_shift_range=0.1),
    "everything": EVERYTHING,
    "rotation": dict(rotation_range=90),
    "height_shift": dict(height_shift_range=0.3, fill_mode="constant", cval=-5.0),
    "width_shift": dict(width_shift_range=0.3, fill_mode="wrap"),
    "shear": dict(shear_range=0.5, fill_mode="reflect"),
    "zoom_pair": dict(zoom_range=[0.5, 1.5]),
    "channel_shift": dict(channel_shift_range=50.0),
    "flips": dict(horizontal_flip=True, vertical_flip=True),
    "rotation_and_flip": dict(rotation_range=10, horizontal_flip=True, fill_mode="constant"),
}


def images(n=12, h=9, w=11, c=3, data_format="channels_last", seed=0):
    x = np.random.default_rng(seed).uniform(0, 255, size=(n, h, w, c)).astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, 1)) if data_format == "channels_first" else x


def reference_batch(gen, x):
    kwargs = dict(
        rotation_range=gen.rotation_range,
        width_shift_range=gen.width_shift_range,
        height_shift_range=gen.height_shift_range,
        shear_range=gen.shear_range,
        zoom_range=gen.zoom_range,
        channel_shift_range=gen.channel_shift_range,
        fill_mode=gen.fill_mode,
        cval=gen.cval,
        horizontal_flip=gen.horizontal_flip,
        vertical_flip=gen.vertical_flip,
        data_format=gen.data_format,
        order=gen.interpolation_order,
    )
    return np.stack([ref.keras_random_transform(img, **kwargs) for img in x])


def assert_same(got, want, what):
    assert got.shape == want.shape and got.dtype == want.dtype, (
        what,
        got.shape,
        want.shape,
        got.dtype,
        want.dtype,
    )
    bad = np.argwhere(got != want)
    assert bad.size == 0, "{}: {} values differ, first at {}: {} vs {}".format(
        what, len(bad), tuple(bad[0]), got[tuple(bad[0])], want[tuple(bad[0])]
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_random_transform_matches_keras_pipeline(name, data_format):
    gen = ImageDataGenerator(data_format=data_format, **CONFIGS[name])
    x = images(data_format=data_format)
    np.random.seed(7)
    got = np.stack([gen.random_transform(img) for img in x])  # image by image, as Keras's API
    np.random.seed(7)
    want = reference_batch(gen, x)
    assert_same(got, want, name + " per image")
    np.random.seed(7)
    assert_same(gen._random_transform_batch(x), want, name + " batched")  # what flow does


def test_random_transform_seed_argument():
    gen = ImageDataGenerator(**EVERYTHING)
    x = images(n=1)[0]
    np.random.seed(123)
    want = reference_batch(gen, x[None])[0]
    assert_same(gen.random_transform(x, seed=123), want, "seed=")


def test_bilinear_option_matches_reference():
    gen = ImageDataGenerator(
        interpolation_order=1, rotation_range=30, zoom_range=0.2, fill_mode="reflect"
    )
    x = images().astype(np.float64)
    np.random.seed(3)
    got = gen._random_transform_batch(x)
    np.random.seed(3)
    want = reference_batch(gen, x)
    # Same blend formula in the kernel and the reference; matrices may differ in the last bit
    # (stacked matmul vs np.dot), moving a weight by ~1e-16 relative: 1e-12 of the range is ample.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * 255)


def test_shift_is_a_fraction_of_height_and_moves_content_up():
    gen = ImageDataGenerator(height_shift_range=0.5, fill_mode="constant", cval=-1.0)
    x = np.arange(10 * 3, dtype=np.float32).reshape(10, 3, 1)
    np.random.seed(11)
    u = np.random.uniform(-0.5, 0.5)  # the one draw Keras makes: tx = u * height rows
    np.random.seed(11)
    got = gen.random_transform(x)
    tx = u * 10
    k = int(np.floor(tx + 0.5))  # output row r shows input row r + tx, rounded half up
    for r in range(10):
        if 0 <= r + tx <= 9:
            np.testing.assert_array_equal(got[r], x[r + k])
        else:
            assert np.all(got[r] == -1.0)


def test_keras_centre_is_half_a_pixel_off():
    # A quarter turn about Keras's o = (H/2 + 0.5, W/2 + 0.5) = (2.5, 2.5) on a 4x4 image: output
    # (row, col) samples input (5 - col, row), one column off a rotation about the true centre 1.5.
    x = np.arange(16, dtype=np.float64).reshape(4, 4, 1)
    quarter = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=float)
    m = bimage.transform_matrix_offset_center(quarter, 4, 4)
    got = bimage.apply_transform(x, m, channel_axis=2, fill_mode="constant", cval=-1)[:, :, 0]
    for row in range(4):
        for col in range(4):
            want = x[5 - col, row, 0] if 5 - col <= 3 else -1
            assert got[row, col] == want


def test_zoom_range_forms():
    assert ImageDataGenerator(zoom_range=0.2).zoom_range == [0.8, 1.2]
    assert ImageDataGenerator(zoom_range=(0.5, 2)).zoom_range == [0.5, 2]
    with pytest.raises(ValueError, match="ImageDataGenerator: zoom_range"):
        ImageDataGenerator(zoom_range=(1, 2, 3))


def test_zoom_draws_zx_and_zy_independently():
    gen = ImageDataGenerator(zoom_range=[0.5, 1.5])
    np.random.seed(5)
    zoom = gen._draw_parameters(200, 8, 8, 3)[4]
    np.random.seed(5)
    want = np.stack([np.random.uniform(0.5, 1.5, 2) for _ in range(200)])
    np.testing.assert_array_equal(zoom, want)
    assert np.corrcoef(zoom[:, 0], zoom[:, 1])[0, 1] < 0.3  # not one draw used twice


def test_channel_shift_stays_in_image_range():
    gen = ImageDataGenerator(channel_shift_range=100.0)
    x = images(n=20)
    out = gen._random_transform_batch(x)
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    assert np.all(out >= lo) and np.all(out <= hi)
    # unclipped pixels moved by one constant per (image, channel)
    delta = np.where((out > lo) & (out < hi), out - x, np.nan)
    spread = np.nanmax(delta, axis=(1, 2)) - np.nanmin(delta, axis=(1, 2))
    assert np.nanmax(spread) < 1e-3  # float32 sums of values <= 255: rounding <= 255 * 2**-23 * 2


def test_no_augmentation_is_identity_and_copies():
    gen = ImageDataGenerator()
    x = images()
    out = gen._random_transform_batch(x)
    assert_same(out, x, "identity")
    assert not np.shares_memory(out, x)


def test_standardize_order_and_formulas():
    x = images(n=1, c=3)[0].astype(np.float64)
    gen = ImageDataGenerator(
        preprocessing_function=lambda im: im + 1.0,
        rescale=0.5,
        samplewise_center=True,
        samplewise_std_normalization=True,
    )
    got = gen.standardize(x.copy())
    want = (x + 1.0) * 0.5
    want = want - want.mean(axis=-1, keepdims=True)  # Keras 2.0: over the channel axis, per pixel
    want = want / (want.std(axis=-1, keepdims=True) + 1e-7)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_standardize_works_in_place_on_float_images():
    x = images(n=1)[0]
    gen = ImageDataGenerator(rescale=1 / 255.0)
    out = gen.standardize(x)
    assert np.shares_memory(out, x) and x.max() <= 1.0


def test_featurewise_statistics_from_fit():
    x = images(n=30, c=3)
    gen = ImageDataGenerator(featurewise_center=True, featurewise_std_normalization=True)
    gen.fit(x)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 1, 2))
    std = (x64 - mean).std(axis=(0, 1, 2))
    assert gen.mean.shape == (1, 1, 3) and gen.std.shape == (1, 1, 3)
    # fit works in float32 (Keras's floatx): relative error ~ 1e-6 for sums of 30*99 values
    np.testing.assert_allclose(gen.mean.ravel(), mean, rtol=1e-5)
    np.testing.assert_allclose(gen.std.ravel(), std, rtol=1e-5)
    out = gen.standardize(x[0].copy())
    np.testing.assert_allclose(out, (x64[0] - mean) / (std + 1e-7), rtol=1e-4, atol=1e-5)


def test_featurewise_channels_first_shapes():
    gen = ImageDataGenerator(featurewise_center=True, data_format="channels_first")
    gen.fit(images(n=5, data_format="channels_first"))
    assert gen.mean.shape == (3, 1, 1)


def test_zca_whitening_whitens():
    rng = np.random.default_rng(1)
    n, d = 4000, 12
    # a rotation times scales 1..3: covariance eigenvalues 1..9, well conditioned for float32
    mixing = np.linalg.qr(rng.normal(size=(d, d)))[0] * np.linspace(1, 3, d)
    x = (rng.normal(size=(n, d)) @ mixing).reshape(n, 2, 2, 3).astype(np.float32)
    gen = ImageDataGenerator(zca_whitening=True, featurewise_center=True, zca_epsilon=1e-6)
    gen.fit(x)
    centred = x.astype(np.float64) - x.astype(np.float64).mean(
        axis=(0, 1, 2)
    )  # Keras: per-channel mean
    flat = centred.reshape(n, d)
    sigma = flat.T @ flat / n
    u, s, _ = np.linalg.svd(sigma)
    want = u @ np.diag(1 / np.sqrt(s + 1e-6)) @ u.T
    # float32 SVD of a well-conditioned covariance: ~1e-5 relative to the matrix's scale
    np.testing.assert_allclose(gen.principal_components, want, atol=1e-4 * np.abs(want).max())
    white = np.stack([gen.standardize(img.copy()) for img in x]).reshape(n, d).astype(np.float64)
    cov = white.T @ white / n
    np.testing.assert_allclose(cov, np.eye(d), atol=1e-3)  # float32 data, eps 1e-6 << eigenvalues


def test_standardize_warns_when_not_fit():
    gen = ImageDataGenerator(featurewise_center=True)
    with pytest.warns(UserWarning, match="hasn't been fit"):
        gen.standardize(images(n=1)[0])


def test_fit_with_augment_uses_augmented_rounds():
    x = images(n=6)
    gen = ImageDataGenerator(
        featurewise_center=True,
        rotation_range=30,
        width_shift_range=0.2,
        fill_mode="constant",
        cval=0.0,
    )
    gen.fit(x, augment=True, rounds=3, seed=17)
    np.random.seed(17)
    augmented = np.concatenate([reference_batch(gen, x) for _ in range(3)])
    want = augmented.astype(np.float64).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(gen.mean.ravel(), want, rtol=1e-5)
    plain = ImageDataGenerator(featurewise_center=True)
    plain.fit(x)
    assert not np.allclose(plain.mean, gen.mean, rtol=1e-3)  # constant fill pulled the mean down


def test_fit_rejects_wrong_rank_and_warns_on_channels():
    gen = ImageDataGenerator(featurewise_center=True)
    with pytest.raises(ValueError, match="ImageDataGenerator.fit: x must have rank 4"):
        gen.fit(np.zeros((4, 5, 5)))
    with pytest.warns(UserWarning, match="channels"):
        gen.fit(np.zeros((4, 5, 5, 7)))


def test_flow_batches_order_and_labels():
    x = images(n=10)
    y = np.arange(10) * 10
    it = ImageDataGenerator().flow(x, y, batch_size=4, shuffle=False)
    sizes, labels = [], []
    for _ in range(5):
        bx, by = next(it)
        assert bx.dtype == np.float32
        sizes.append(len(bx))
        labels.append(by)
        np.testing.assert_array_equal(bx, x[by // 10])
    assert sizes == [4, 4, 2, 4, 4] and len(it) == 3
    np.testing.assert_array_equal(np.concatenate(labels[:3]), y)


def test_flow_without_labels_and_uint8_input():
    x = images(n=5).astype(np.uint8)
    bx = next(ImageDataGenerator().flow(x, batch_size=5, shuffle=False))
    assert bx.dtype == np.float32
    np.testing.assert_array_equal(bx, x.astype(np.float32))


def test_seeded_flow_matches_keras_iteration():
    x = images(n=7)
    gen = ImageDataGenerator(**CONFIGS["everything"])
    it = gen.flow(x, np.arange(7), batch_size=3, shuffle=True, seed=42)
    total = 0
    order = None
    for batch in range(5):  # crosses two pass boundaries (7 = 3 + 3 + 1)
        bx, by = next(it)
        np.random.seed(
            42 + total
        )  # Keras: reseeded with seed + total_batches_seen before each batch
        start = (batch % 3) * 3
        if start == 0:
            order = np.random.permutation(7)
        idx = order[start : start + 3]
        np.testing.assert_array_equal(by, idx)
        assert_same(bx, reference_batch(gen, x[idx]), "flow batch %d" % batch)
        total += 1


def test_same_seed_same_batches_and_shuffle_permutes():
    x = images(n=16)
    gen = ImageDataGenerator(rotation_range=20)
    a = [next(gen.flow(x, np.arange(16), batch_size=16, seed=3))[1] for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    assert sorted(a[0]) == list(range(16)) and list(a[0]) != list(range(16))


def test_flow_warps_each_batch_in_one_kernel_call(monkeypatch):
    calls = []
    real = bimage.affine_warp

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(bimage, "affine_warp", counting)
    it = ImageDataGenerator(rotation_range=25, width_shift_range=0.1).flow(
        images(n=20), batch_size=8
    )
    for _ in range(3):
        next(it)
    assert calls == [(8, 9, 11, 3), (8, 9, 11, 3), (4, 9, 11, 3)]


def test_flow_save_to_dir(tmp_path):
    pytest.importorskip("PIL", reason="save_to_dir needs Pillow (bnpy[image]), not installed")
    it = ImageDataGenerator(rotation_range=10).flow(
        images(n=5), batch_size=3, save_to_dir=str(tmp_path), save_prefix="aug", save_format="png"
    )
    next(it)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 3 and all(f.startswith("aug_") and f.endswith(".png") for f in files)
    assert sorted(int(f.split("_")[1]) for f in files) == [0, 1, 2]


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (
            lambda: ImageDataGenerator().flow(np.zeros((4, 5, 5))),
            ValueError,
            "NumpyArrayIterator: x must have rank 4",
        ),
        (
            lambda: ImageDataGenerator().flow(np.zeros((4, 5, 5, 3)), np.zeros(3)),
            ValueError,
            "same length",
        ),
        (lambda: next(ImageDataGenerator().flow(np.zeros((0, 5, 5, 3)))), ValueError, "no images"),
        (
            lambda: ImageDataGenerator().flow(np.zeros((4, 5, 5, 3)), batch_size=0),
            ValueError,
            "batch_size",
        ),
        (
            lambda: ImageDataGenerator(data_format="NHWC"),
            ValueError,
            "ImageDataGenerator: data_format",
        ),
        (
            lambda: ImageDataGenerator(fill_mode="mirror"),
            ValueError,
            "ImageDataGenerator: fill_mode",
        ),
        (lambda: ImageDataGenerator(interpolation_order=3), ValueError, "interpolation_order"),
        (
            lambda: ImageDataGenerator().random_transform(np.zeros((2, 4, 4, 3))),
            ValueError,
            "rank 3",
        ),
    ],
)
def test_bad_arguments(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_module_functions_match_keras_formulas():
    x = images(n=1, data_format="channels_first")[
        0
    ]  # Keras's module functions default to channels first
    np.random.seed(2)
    got = bimage.random_rotation(x, 30)
    np.random.seed(2)
    theta = np.pi / 180 * np.random.uniform(-30, 30)
    rot = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    m = ref.transform_matrix_offset_center(rot, x.shape[1], x.shape[2])
    want = np.stack([ref.warp_one_channel(p, m, 0, "nearest", 0.0) for p in x]).astype(np.float32)
    assert_same(got, want, "random_rotation")
    np.random.seed(2)
    shifted = bimage.random_channel_shift(x, 10.0)
    np.random.seed(2)
    want = np.stack([np.clip(p + np.random.uniform(-10, 10), x.min(), x.max()) for p in x])
    assert_same(shifted, want, "random_channel_shift")
    np.testing.assert_array_equal(bimage.flip_axis(x, 2), x[:, :, ::-1])


def test_fit_without_statistics_computes_nothing_and_only_seeds():
    gen = ImageDataGenerator(**CONFIGS["article"])  # the article: all statistics flags False
    gen.fit(images(n=4).astype(np.uint8), seed=9)
    after_fit = np.random.random()
    np.random.seed(9)
    assert after_fit == np.random.random()  # the seed, and no augmentation draws
    assert gen.mean is None and gen.std is None and gen.principal_components is None
