"""Shared by the tests of bnpy.ops batch normalization against its float64 NumPy twin
(test_batchnorm.py, test_batchnorm_kernel_paths.py): the tolerance (max|err| / max|ref|, explained
in test_batchnorm.py's docstring), the check of a kernel's outputs against the twin's, and random
per-channel gamma and beta."""

import numpy as np

TOLERANCE = {np.float32: 1e-5, np.float64: 1e-12}


def relative_error(got, ref):
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == ref.shape
    if ref.size == 0:
        return 0.0
    scale = np.abs(ref).max()
    err = np.abs(got - ref).max()
    return err / scale if scale > 0 else err


def check(name, dtype, shape, axis, layout, kind, pairs):
    for label, got, ref in pairs:
        assert got.dtype == dtype, f"{name} {label}: dtype {got.dtype}, expected {np.dtype(dtype)}"
        err = relative_error(got, ref)
        assert err <= TOLERANCE[dtype], (
            f"{name}: {label} off by max|err|/max|ref| = {err:.3g} (tolerance {TOLERANCE[dtype]}) "
            f"for dtype={np.dtype(dtype)}, shape={shape}, axis={axis}, layout={layout}, kind={kind}"
        )


def channel_params(rng, channels, dtype):
    gamma = rng.uniform(0.5, 2.0, channels).astype(dtype)
    beta = rng.standard_normal(channels).astype(dtype)
    return gamma, beta
