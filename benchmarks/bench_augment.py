"""Augmenting a batch of 32 CIFAR-sized images (32x32x3): bnpy against Keras 2.0's way.

Keras 2.0 augments image by image: random draws, 3x3 matrices composed with np.dot, then
scipy.ndimage.affine_transform(order=0) once per channel. bnpy draws the same numbers (a Python loop
per image) and warps the whole batch in one C call. Cases:

  pipeline   ImageDataGenerator(rotation_range=25, width_shift_range=0.1, height_shift_range=0.1)
             (the article's settings): bnpy's batched random_transform vs Keras 2.0.8's
             random_transform per image with scipy per channel
  flow       next(datagen.flow(x, batch_size=32)): the iterator around it (standardize is a no-op)
  warp o=0   the warp alone: one bnpy.ops.affine_warp call vs 96 scipy calls, nearest
  warp o=1   the same, bilinear
  big o=0    the warp of a larger batch, 128 images 64x64x3 (3.1M values: above the kernel's
             threshold for using threads, so --threads shows its scaling)

Medians of repeated runs measured in the same process, and their ratios (scipy time / bnpy time).
This machine is shared and noisy: the ratios are the result, not the absolute times.
Run: PYTHONPATH=. python benchmarks/bench_augment.py [--threads N] [--repeats R]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import bnpy  # noqa: E402
from bnpy.ops import affine_warp  # noqa: E402
from bnpy.preprocessing.image import ImageDataGenerator  # noqa: E402

try:
    from scipy import ndimage
except ImportError:  # scipy is only the benchmark's yardstick
    sys.exit("bench_augment.py compares against scipy.ndimage: pip install scipy")


def keras_random_transform(
    x, rotation_range, width_shift_range, height_shift_range, fill_mode="nearest", cval=0.0
):
    """Keras 2.0.8's random_transform of one channels_last image (the part these settings use)."""
    theta = np.pi / 180 * np.random.uniform(-rotation_range, rotation_range)
    tx = np.random.uniform(-height_shift_range, height_shift_range) * x.shape[0]
    ty = np.random.uniform(-width_shift_range, width_shift_range) * x.shape[1]
    rotation_matrix = np.array(
        [[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]
    )
    shift_matrix = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]])
    transform_matrix = np.dot(rotation_matrix, shift_matrix)
    o_x, o_y = float(x.shape[0]) / 2 + 0.5, float(x.shape[1]) / 2 + 0.5
    offset_matrix = np.array([[1, 0, o_x], [0, 1, o_y], [0, 0, 1]])
    reset_matrix = np.array([[1, 0, -o_x], [0, 1, -o_y], [0, 0, 1]])
    transform_matrix = np.dot(np.dot(offset_matrix, transform_matrix), reset_matrix)
    channels = np.rollaxis(x, 2, 0)
    warped = [
        ndimage.affine_transform(
            c, transform_matrix[:2, :2], transform_matrix[:2, 2], order=0, mode=fill_mode, cval=cval
        )
        for c in channels
    ]
    return np.rollaxis(np.stack(warped, axis=0), 0, 3)


def median_time(fn, repeats):
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=int, default=None, help="bnpy threads (default: bnpy's default)"
    )
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    if args.threads:
        bnpy.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(32, 32, 32, 3)).astype(np.float32)
    settings = dict(rotation_range=25, width_shift_range=0.1, height_shift_range=0.1)
    datagen = ImageDataGenerator(**settings)

    # Same seed, same draws: the two pipelines produce the same batch (checked, not assumed).
    np.random.seed(1)
    ours = datagen._random_transform_batch(x)
    np.random.seed(1)
    theirs = np.stack([keras_random_transform(img, **settings) for img in x])
    mismatch = float(np.mean(ours != theirs))

    matrices = np.stack(
        [
            np.array([[np.cos(a), -np.sin(a), 1.3], [np.sin(a), np.cos(a), -2.1], [0, 0, 1]])
            for a in rng.uniform(-0.4, 0.4, 32)
        ]
    )

    def scipy_warp(order):
        return np.stack(
            [
                np.stack(
                    [
                        ndimage.affine_transform(
                            img[:, :, c], m[:2, :2], m[:2, 2], order=order, mode="nearest"
                        )
                        for c in range(3)
                    ],
                    axis=-1,
                )
                for img, m in zip(x, matrices)
            ]
        )

    big = rng.integers(0, 256, size=(128, 64, 64, 3)).astype(np.float32)
    big_matrices = np.concatenate([matrices] * 4)

    def scipy_big():
        return np.stack(
            [
                np.stack(
                    [
                        ndimage.affine_transform(
                            img[:, :, c], m[:2, :2], m[:2, 2], order=0, mode="nearest"
                        )
                        for c in range(3)
                    ],
                    axis=-1,
                )
                for img, m in zip(big, big_matrices)
            ]
        )

    iterator = datagen.flow(x, batch_size=32, shuffle=False)
    cases = [
        (
            "pipeline",
            lambda: datagen._random_transform_batch(x),
            lambda: [keras_random_transform(img, **settings) for img in x],
        ),
        (
            "flow",
            lambda: next(iterator),
            lambda: [keras_random_transform(img, **settings) for img in x],
        ),
        ("warp o=0", lambda: affine_warp(x, matrices, order=0), lambda: scipy_warp(0)),
        ("warp o=1", lambda: affine_warp(x, matrices, order=1), lambda: scipy_warp(1)),
        ("big o=0", lambda: affine_warp(big, big_matrices, order=0), scipy_big),
    ]
    print(
        "batch of 32 images 32x32x3 float32, bnpy threads: {} (OpenMP: {}), repeats: {}".format(
            bnpy.get_num_threads(), bool(bnpy._core.HAVE_OPENMP), args.repeats
        )
    )
    print(
        "pipeline outputs equal to Keras 2.0.8 + scipy with the same seed: {:.4%} of values differ".format(
            mismatch
        )
    )
    print("{:<10} {:>12} {:>14} {:>8}".format("case", "bnpy (ms)", "keras/scipy (ms)", "ratio"))
    for name, ours_fn, theirs_fn in cases:
        t_ours = median_time(ours_fn, args.repeats)
        t_theirs = median_time(theirs_fn, max(args.repeats // 4, 5))
        print(
            "{:<10} {:>12.3f} {:>14.3f} {:>7.1f}x".format(
                name, t_ours * 1e3, t_theirs * 1e3, t_theirs / t_ours
            )
        )


if __name__ == "__main__":
    main()
