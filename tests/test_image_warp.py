"""The affine warp kernel (csrc/affine.c) against its NumPy twin (tests/reference_image.py), its
boundary (layouts, out=, bad input), and scipy.ndimage.affine_transform where scipy is installed."""

import sys

import numpy as np
import pytest
import reference_image as ref

import bnpy
from bnpy.ops import affine_warp

MODES = ref.FILL_MODES
# (N, H, W, C): odd sizes, a single pixel, a single row and a single column.
SHAPES = [(2, 5, 7, 3), (3, 8, 6, 1), (1, 1, 1, 1), (2, 1, 9, 2), (2, 4, 1, 3), (1, 11, 13, 4)]


def random_matrices(rng, n, height, width, reach=1.5):
    """Rotation, anisotropic zoom, shear and a shift that reaches `reach` image sizes outside."""
    theta = rng.uniform(-np.pi, np.pi, n)
    zoom = rng.uniform(0.5, 1.6, (n, 2))
    shear = rng.uniform(-0.4, 0.4, n)
    m = np.zeros((n, 3, 3))
    m[:, 0, 0] = np.cos(theta) * zoom[:, 0]
    m[:, 0, 1] = -np.sin(theta + shear) * zoom[:, 1]
    m[:, 1, 0] = np.sin(theta) * zoom[:, 0]
    m[:, 1, 1] = np.cos(theta + shear) * zoom[:, 1]
    m[:, 0, 2] = rng.uniform(-reach, reach, n) * max(height, 1) + height / 2
    m[:, 1, 2] = rng.uniform(-reach, reach, n) * max(width, 1) + width / 2
    m[:, 2, 2] = 1.0
    return m


def half_pixel_shifts(n):
    """Pure shifts by k/2 pixels: every output coordinate is an exact tie of nearest rounding."""
    m = np.tile(np.eye(3), (n, 1, 1))
    m[:, 0, 2] = np.arange(n) - n / 2 + 0.5
    m[:, 1, 2] = -(np.arange(n) - n / 2) - 1.5
    return m


def images_for(rng, shape, dtype, data_format):
    x = rng.normal(size=shape) * 10 + 3
    if data_format == "channels_first":
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    return x.astype(dtype)


def tolerance(order, dtype, x):
    """Nearest copies pixels: exact. Bilinear: the kernel evaluates the same double expression as the
    reference (same operations, same order), so it agrees to the last bit here; allow 2 units in the
    last place of the dtype at the data's magnitude for a compiler that contracts a*b+c into an FMA."""
    if order == 0:
        return 0.0
    return 2 * np.finfo(dtype).eps * float(np.max(np.abs(x), initial=1.0))


def check_against_reference(x, m, order, mode, data_format, cval=-7.5, label=""):
    got = affine_warp(x, m, order=order, fill_mode=mode, cval=cval, data_format=data_format)
    want = ref.affine_warp(x, m, order, mode, cval, data_format)
    assert got.dtype == x.dtype and got.shape == x.shape
    err = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
    tol = tolerance(order, x.dtype, x)
    assert err <= tol, (
        f"affine_warp {label} order={order} mode={mode} dtype={x.dtype} shape={x.shape} "
        f"{data_format}: max error {err:g} > {tol:g}"
    )


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode", MODES)
def test_matches_reference_over_grid(mode, order, dtype, data_format):
    rng = np.random.default_rng(hash((mode, order, data_format)) % 2**32)
    for shape in SHAPES:
        x = images_for(rng, shape, dtype, data_format)
        n, h, w = shape[:3]
        check_against_reference(
            x, random_matrices(rng, n, h, w), order, mode, data_format, label="random"
        )
        check_against_reference(x, half_pixel_shifts(n), order, mode, data_format, label="ties")


def test_nearest_ties_round_up():
    # A shift of +0.5 rows samples row r + 0.5, which rounds to r + 1 (floor(x + 0.5), as scipy).
    x = np.arange(5.0).reshape(1, 5, 1, 1)
    m = np.array([[[1, 0, 0.5], [0, 1, 0]]])
    got = affine_warp(x, m, order=0, fill_mode="nearest")[0, :, 0, 0]
    np.testing.assert_array_equal(got, [1, 2, 3, 4, 4])


def test_shift_moves_content_up_and_left():
    # Output (row, col) samples input (row + 2, col + 1): content moves up 2 rows and left 1 column.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 6, 7, 2))
    m = np.array([[[1, 0, 2], [0, 1, 1], [0, 0, 1]]], dtype=float)
    got = affine_warp(x, m, order=0, fill_mode="constant", cval=0.0)
    np.testing.assert_array_equal(got[0, :4, :6], x[0, 2:, 1:])
    assert np.all(got[0, 4:] == 0) and np.all(got[0, :, 6:] == 0)
    # bilinear on whole-pixel shifts is the same copy
    np.testing.assert_array_equal(affine_warp(x, m, order=1, fill_mode="constant"), got)


def test_quarter_turn_about_the_pixel_centre_is_rot90():
    # Output (row, col) samples (col, n-1-row): that is np.rot90 (counter-clockwise) of each image.
    n = 5
    x = np.arange(2 * n * n * 3, dtype=np.float64).reshape(2, n, n, 3)
    m = np.array([[0, 1, 0], [-1, 0, n - 1], [0, 0, 1]], dtype=float)
    got = affine_warp(x, m, order=0)
    np.testing.assert_array_equal(got, np.rot90(x, k=1, axes=(1, 2)))


@pytest.mark.parametrize(
    "mode, expected",
    [
        # an axis of 5 pixels [10, 20, 30, 40, 50] sampled at x = -2.25, -0.75, 4.25, 5.5, 7.0
        ("constant", [-1, -1, -1, -1, -1]),
        ("nearest", [10, 10, 50, 50, 50]),
        ("reflect", [20, 10, 50, 50, 30]),  # half-sample mirror: -x-1 and 2*5-x-1
        ("wrap", [30, 40, 10, 30, 40]),  # scipy's legacy period of 5 - 1 = 4 pixels
    ],
)
def test_fill_modes_on_one_axis(mode, expected):
    row = np.array([10.0, 20, 30, 40, 50])
    x = np.tile(row, (5, 1))[np.newaxis, :, :, np.newaxis]  # every row is `row`
    offsets = [-2.25, -0.75, 4.25, 5.5, 7.0]
    m = np.array([[[1, 0, 0], [0, 0, c]] for c in offsets], dtype=float)  # col coordinate = c
    got = affine_warp(np.repeat(x, 5, axis=0), m, order=0, fill_mode=mode, cval=-1)
    np.testing.assert_array_equal(got[:, 0, 0, 0], expected)


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode", MODES)
def test_identity_is_an_exact_copy(mode, order):
    x = np.random.default_rng(2).normal(size=(3, 6, 5, 2)).astype(np.float32)
    np.testing.assert_array_equal(affine_warp(x, np.eye(3), order=order, fill_mode=mode), x)


@pytest.mark.parametrize("layout", ["f_order", "sliced", "negative_stride", "transposed_channels"])
def test_non_contiguous_inputs(layout):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(4, 9, 10, 6))
    x = {
        "f_order": np.asfortranarray(base),
        "sliced": base[::2, 1:8, ::3, 1:4],
        "negative_stride": base[::-1, :, ::-1],
        "transposed_channels": np.moveaxis(base, 1, 2),
    }[layout]
    m = random_matrices(rng, x.shape[0], x.shape[1], x.shape[2])
    check_against_reference(x, m, 0, "reflect", "channels_last", label=layout)
    check_against_reference(
        x, m[:, :2, :].astype(np.float32), 1, "wrap", "channels_last", label=layout
    )


def test_single_image_and_shared_matrix():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 7, 8, 3))
    m = random_matrices(rng, 1, 7, 8)[0]
    batch = affine_warp(x, m, order=1, fill_mode="nearest")  # one matrix for every image
    for i in range(3):
        np.testing.assert_array_equal(affine_warp(x[i], m, order=1, fill_mode="nearest"), batch[i])
    np.testing.assert_array_equal(batch, affine_warp(x, np.repeat(m[None], 3, axis=0), order=1))


def test_out_argument_and_input_untouched():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 6, 6, 3))
    keep = x.copy()
    m = random_matrices(rng, 2, 6, 6)
    out = np.full_like(x, np.nan)
    got = affine_warp(x, m, order=1, fill_mode="constant", out=out)
    assert got is out
    np.testing.assert_array_equal(out, affine_warp(x, m, order=1, fill_mode="constant"))
    np.testing.assert_array_equal(x, keep)


def test_empty_batch():
    x = np.zeros((0, 4, 4, 3), np.float32)
    got = affine_warp(x, np.zeros((0, 3, 3)))
    assert got.shape == (0, 4, 4, 3) and got.dtype == np.float32


def test_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(6)
    # 16*64*64*5 = 327,680 output values: above the kernel's 2**18 threshold for using threads
    x = rng.normal(size=(16, 64, 64, 5)).astype(np.float32)
    m = random_matrices(rng, 16, 64, 64)
    before = bnpy.get_num_threads()
    try:
        bnpy.set_num_threads(1)
        one = affine_warp(x, m, order=1, fill_mode="reflect")
        bnpy.set_num_threads(2)
        two = affine_warp(x, m, order=1, fill_mode="reflect")
    finally:
        bnpy.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


GOOD_X = np.zeros((2, 4, 5, 3))
GOOD_M = np.tile(np.eye(3), (2, 1, 1))


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (
            dict(images=np.zeros((2, 4, 5, 3), np.int32)),
            TypeError,
            "images must be float32 or float64",
        ),
        (dict(images=np.zeros((2, 4, 5, 3), np.float16)), TypeError, "images"),
        (dict(images=np.zeros((2, 4, 5))), ValueError, "images must have rank 4"),
        (dict(images=np.zeros((2, 1, 4, 5, 3))), ValueError, "images must have rank 4"),
        (dict(matrices=np.zeros((3, 3, 3))), ValueError, "matrices must have shape"),
        (dict(matrices=np.zeros((2, 3, 2))), ValueError, "matrices must have shape"),
        (dict(matrices=np.zeros((2, 4, 3))), ValueError, "matrices must have shape"),
        (dict(matrices=np.full((2, 3, 3), np.nan)), ValueError, "matrices must be finite"),
        (dict(matrices=np.zeros((2, 3, 3), complex)), TypeError, "matrices must be a real"),
        (dict(matrices="eye"), TypeError, "matrices must be a real"),
        (dict(order=2), ValueError, "order must be 0"),
        (dict(order=1.0), TypeError, "order must be an int"),
        (dict(fill_mode="mirror"), ValueError, "fill_mode must be one of"),
        (dict(fill_mode=3), TypeError, "fill_mode must be a str"),
        (dict(cval="zero"), TypeError, "cval must be a real number"),
        (dict(data_format="NHWC"), ValueError, "data_format must be"),
        (dict(out=np.zeros((2, 4, 5, 3), np.float32)), TypeError, "out must be float64"),
        (dict(out=np.zeros((2, 4, 5, 2))), ValueError, "out must have shape"),
        (dict(out=np.zeros((2, 4, 5, 3))[:, ::-1]), ValueError, "out must be C-contiguous"),
    ],
)
def test_bad_input_raises_naming_function_and_argument(kwargs, exc, words):
    args = dict(images=GOOD_X, matrices=GOOD_M)
    args.update(kwargs)
    with pytest.raises(exc, match="affine_warp: .*" + words):
        affine_warp(**args)


def test_out_overlapping_the_input_is_refused_and_left_alone():
    x = np.random.default_rng(7).normal(size=(2, 4, 5, 3))
    keep = x.copy()
    with pytest.raises(ValueError, match="affine_warp: out must not share memory"):
        affine_warp(x, GOOD_M, out=x)
    np.testing.assert_array_equal(x, keep)


def test_reference_counts_are_stable():
    x = np.random.default_rng(8).normal(size=(2, 4, 5, 3))
    m = GOOD_M.copy()
    out = np.empty_like(x)
    counts = [sys.getrefcount(a) for a in (x, m, out)]
    for _ in range(200):
        affine_warp(x, m, order=1, out=out)
        with pytest.raises(ValueError):
            affine_warp(x, m, fill_mode="bogus", out=out)
        with pytest.raises(ValueError):
            affine_warp(x, m[:1], out=out)
    assert [sys.getrefcount(a) for a in (x, m, out)] == counts


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode", MODES)
def test_reference_matches_scipy(mode, order):
    """The reference restates scipy.ndimage.affine_transform (what Keras 2.0 calls per channel)."""
    ndi = pytest.importorskip(
        "scipy.ndimage",
        reason="scipy is optional: the cross-check of the reference against scipy needs it",
    )
    rng = np.random.default_rng(9)
    for n, h, w, c in SHAPES:
        x = rng.normal(size=(n, h, w, c))
        for m in (random_matrices(rng, n, h, w), half_pixel_shifts(n)):
            want = np.stack(
                [
                    np.stack(
                        [
                            ndi.affine_transform(
                                x[i, :, :, k],
                                m[i, :2, :2],
                                m[i, :2, 2],
                                order=order,
                                mode=mode,
                                cval=-7.5,
                            )
                            for k in range(c)
                        ],
                        axis=-1,
                    )
                    for i in range(n)
                ]
            )
            got = ref.affine_warp(x, m, order, mode, -7.5)
            if order == 0:  # scipy computes the coordinate with the same operations: same pixel
                np.testing.assert_array_equal(got, want, err_msg=f"{mode} {(n, h, w, c)}")
            else:  # scipy's spline weights reach the same blend by another route: ~1e-15 relative
                np.testing.assert_allclose(
                    got,
                    want,
                    rtol=0,
                    atol=1e-12 * np.abs(x).max(),
                    err_msg=f"{mode} {(n, h, w, c)}",
                )


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("mode", MODES)
def test_far_away_coordinates_stay_in_bounds(mode, order):
    # Finite matrices whose coordinates reach 1e300 or overflow to inf: the kernel's casts are
    # guarded, so every output is a pixel value (or a blend of them) or cval, never a stray read.
    x = np.arange(1.0, 1.0 + 2 * 5 * 6).reshape(2, 5, 6, 1)
    m = np.array([[[1e300, 0, 0], [0, 1, 0]], [[1.7e308, 1.7e308, -1e308], [-1e308, 0, 1e308]]])
    got = affine_warp(x, m, order=order, fill_mode=mode, cval=-1.0)
    assert got.shape == x.shape
    assert np.all((got == -1.0) | ((got >= 1.0) & (got <= 60.0))), got.ravel()


def test_memory_does_not_grow_over_many_calls():
    import tracemalloc  # NumPy reports its data buffers to tracemalloc

    x = np.random.default_rng(10).normal(size=(4, 16, 16, 3))
    m = random_matrices(np.random.default_rng(11), 4, 16, 16)
    affine_warp(x, m)  # warm up caches
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(500):
            affine_warp(x, m, order=1)
            try:
                affine_warp(x, m, fill_mode="bogus")
            except ValueError:
                pass
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    # each call allocates a 24 kB output; 500 leaked outputs would be 12 MB. Allow 64 kB of noise.
    assert grown < 64 * 1024, grown
