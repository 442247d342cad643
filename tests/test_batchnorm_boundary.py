"""The boundary of bnpy.ops batch normalization: the fixed API, bad input, aliasing, input
immutability, reference counts, memory, byte order/alignment, and concurrent calls."""

import gc
import inspect
import os
import re
import sys
import threading
import tracemalloc

import numpy as np
import pytest

from bnpy import _core, ops

# ---- the API other code is written against ----------------------------------------------------

SIGNATURES = {
    "batch_norm_forward": "(x, gamma, beta, axis=-1, epsilon=0.001, out=None)",
    "batch_norm_inference": "(x, gamma, beta, mean, var, axis=-1, epsilon=0.001, out=None)",
    "batch_norm_backward": "(dy, x, gamma, mean, var, axis=-1, epsilon=0.001, out=None)",
    "batch_norm_inference_backward": "(dy, x, gamma, mean, var, axis=-1, epsilon=0.001, out=None)",
    "update_moving_stats": "(moving_mean, moving_var, mean, var, momentum=0.99, count=None)",
}


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_public_signature_is_fixed(name):
    assert str(inspect.signature(getattr(ops, name))) == SIGNATURES[name]
    assert name in ops.__all__


def test_return_types_and_shapes():
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    y, mean, var = ops.batch_norm_forward(x, None, None, axis=1)
    assert (y.shape, mean.shape, var.shape) == ((4, 3, 5), (3,), (3,))
    assert y.dtype == mean.dtype == var.dtype == np.float32
    assert y.flags.c_contiguous
    dx, dgamma, dbeta = ops.batch_norm_backward(x, x, None, mean, var, axis=1)
    assert (dx.shape, dgamma.shape, dbeta.shape) == ((4, 3, 5), (3,), (3,))
    assert ops.batch_norm_inference(x, None, None, mean, var, axis=1).shape == (4, 3, 5)


# ---- bad input: the documented error, and nothing written ----------------------------------------

C = 3


def valid_args(dtype=np.float32):
    rng = np.random.default_rng(1)
    return dict(
        x=rng.standard_normal((5, C)).astype(dtype),
        dy=rng.standard_normal((5, C)).astype(dtype),
        gamma=np.ones(C, dtype),
        beta=np.zeros(C, dtype),
        mean=np.zeros(C, dtype),
        var=np.ones(C, dtype),
        out=np.full((5, C), 7.0, dtype),
        moving_mean=np.full(C, 2.0, dtype),
        moving_var=np.full(C, 3.0, dtype),
    )


def call(name, a, **overrides):
    a = {**a, **overrides}
    if name == "batch_norm_forward":
        return ops.batch_norm_forward(
            a["x"],
            a["gamma"],
            a["beta"],
            axis=a.get("axis", -1),
            epsilon=a.get("epsilon", 1e-3),
            out=a["out"],
        )
    if name == "batch_norm_inference":
        return ops.batch_norm_inference(
            a["x"],
            a["gamma"],
            a["beta"],
            a["mean"],
            a["var"],
            axis=a.get("axis", -1),
            epsilon=a.get("epsilon", 1e-3),
            out=a["out"],
        )
    if name in ("batch_norm_backward", "batch_norm_inference_backward"):
        return getattr(ops, name)(
            a["dy"],
            a["x"],
            a["gamma"],
            a["mean"],
            a["var"],
            axis=a.get("axis", -1),
            epsilon=a.get("epsilon", 1e-3),
            out=a["out"],
        )
    return ops.update_moving_stats(
        a["moving_mean"],
        a["moving_var"],
        a["mean"],
        a["var"],
        momentum=a.get("momentum", 0.99),
        count=a.get("count"),
    )


FORWARDS = ["batch_norm_forward", "batch_norm_inference"]
BACKWARDS = ["batch_norm_backward", "batch_norm_inference_backward"]
ELEMENTWISE = FORWARDS + BACKWARDS


def bad_cases():
    f32 = np.float32
    for name in ELEMENTWISE:
        main = "dy" if name in BACKWARDS else "x"
        yield (
            name,
            main,
            {main: np.ones((5, C), np.int32)},
            TypeError,
            "must be float32 or float64, got int32",
        )
        yield (
            name,
            main,
            {main: np.ones((5, C), np.float16)},
            TypeError,
            "must be float32 or float64",
        )
        yield name, main, {main: np.ones((5, C), complex)}, TypeError, "must be float32 or float64"
        yield name, main, {main: "abc"}, TypeError, "float32 or float64"
        yield name, main, {main: np.float32(1.0)}, ValueError, "at least one dimension"
        yield (
            name,
            "gamma",
            {"gamma": np.ones(C, np.float64)},
            TypeError,
            "must be float32 like the other arrays, got float64",
        )
        yield name, "gamma", {"gamma": np.ones(C + 1, f32)}, ValueError, r"must have shape \(3,\)"
        yield name, "gamma", {"gamma": np.ones((1, C), f32)}, ValueError, r"must have shape \(3,\)"
        yield name, "axis", {"axis": 2}, ValueError, "axis 2 is out of range for an array of rank 2"
        yield name, "axis", {"axis": -3}, ValueError, "axis -3 is out of range"
        yield name, "axis", {"axis": 1.0}, TypeError, "axis must be an int"
        yield name, "axis", {"axis": None}, TypeError, "axis must be an int"
        yield (
            name,
            "epsilon",
            {"epsilon": -1e-3},
            ValueError,
            "epsilon must be a finite number >= 0",
        )
        yield (
            name,
            "epsilon",
            {"epsilon": float("nan")},
            ValueError,
            "epsilon must be a finite number",
        )
        yield (
            name,
            "epsilon",
            {"epsilon": float("inf")},
            ValueError,
            "epsilon must be a finite number",
        )
        yield (
            name,
            "epsilon",
            {"epsilon": "1e-3"},
            TypeError,
            "epsilon must be a real number, got str",
        )
        yield (
            name,
            "out",
            {"out": np.zeros((5, C + 1), f32)},
            ValueError,
            r"out must have shape \[5, 3\]",
        )
        yield name, "out", {"out": np.zeros((5, C), np.float64)}, TypeError, "out must be float32"
        yield name, "out", {"out": np.zeros((C, 5), f32).T}, ValueError, "out must be C-contiguous"
        yield name, "out", {"out": [[0.0] * C] * 5}, TypeError, "out must be a numpy.ndarray"
        readonly = np.zeros((5, C), f32)
        readonly.flags.writeable = False
        yield name, "out", {"out": readonly}, ValueError, "out must be writeable"
        if name != "batch_norm_forward":
            yield name, "mean", {"mean": None}, TypeError, "mean must be an array of shape"
            yield (
                name,
                "var",
                {"var": np.ones(C + 2, f32)},
                ValueError,
                r"var must have shape \(3,\)",
            )
    for name in BACKWARDS:
        yield (
            name,
            "x",
            {"x": np.ones((5, C + 1), np.float32)},
            ValueError,
            "x must have the shape of dy",
        )
        yield (
            name,
            "x",
            {"x": np.ones((5, C), np.float64)},
            TypeError,
            "x must be float32 like the other",
        )
    name = "update_moving_stats"
    yield (
        name,
        "moving_mean",
        {"moving_mean": [0.0] * C},
        TypeError,
        "moving_mean must be a numpy.ndarray",
    )
    yield (
        name,
        "moving_mean",
        {"moving_mean": np.zeros(C, np.int64)},
        TypeError,
        "moving_mean must be float32 or float64",
    )
    yield (
        name,
        "moving_mean",
        {"moving_mean": np.zeros(2 * C, np.float32)[::2]},
        ValueError,
        "moving_mean must be C-contiguous",
    )
    yield (
        name,
        "moving_mean",
        {"moving_mean": np.zeros((1, C), np.float32)},
        ValueError,
        "moving_mean must have shape",
    )
    ro = np.zeros(C, np.float32)
    ro.flags.writeable = False
    yield name, "moving_var", {"moving_var": ro}, ValueError, "moving_var must be writeable"
    yield (
        name,
        "moving_var",
        {"moving_var": np.zeros(C + 1, np.float32)},
        ValueError,
        r"moving_var must have shape \[3\]",
    )
    yield (
        name,
        "moving_var",
        {"moving_var": np.zeros(C, np.float64)},
        TypeError,
        "moving_var must be float32",
    )
    yield name, "mean", {"mean": np.zeros(C, np.float64)}, TypeError, "mean must be float32"
    yield (
        name,
        "var",
        {"var": np.zeros(C + 1, np.float32)},
        ValueError,
        r"var must have shape \(3,\)",
    )
    yield (
        name,
        "momentum",
        {"momentum": 1.5},
        ValueError,
        r"momentum must be in \[0.0, 1.0\], got 1.5",
    )
    yield name, "momentum", {"momentum": -0.01}, ValueError, "momentum must be in"
    yield name, "momentum", {"momentum": float("nan")}, ValueError, "momentum must be in"
    yield name, "momentum", {"momentum": None}, TypeError, "momentum must be a real number"
    yield name, "count", {"count": 0}, ValueError, "count .* must be >= 1, got 0"
    yield name, "count", {"count": -5}, ValueError, "count .* must be >= 1"
    yield name, "count", {"count": 2.5}, TypeError, "count must be an int or None, got float"
    yield name, "count", {"count": True}, TypeError, "count must be an int or None"


@pytest.mark.parametrize(
    "name, arg, overrides, exc, message",
    list(bad_cases()),
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_input_raises_and_writes_nothing(name, arg, overrides, exc, message):
    a = valid_args()
    call(name, a)  # the unmodified arguments are valid
    a = valid_args()
    before = {k: v.copy() for k, v in a.items() if isinstance(v, np.ndarray)}
    with pytest.raises(exc, match=f"^{name}: {arg}\\b") as info:  # names the function and argument
        call(name, a, **overrides)
    assert re.search(message, str(info.value)), str(info.value)
    for k, v in before.items():
        np.testing.assert_array_equal(a[k], v, err_msg=f"{name} wrote into {k} before raising")


# A Python list has no dtype of its own: the call's dtype comes from its first ndarray, and an
# error names the argument that is wrong, not the list beside it.
LIST_X = [[1.0, 2.0, 3.0], [4.0, 6.0, 5.0]]


@pytest.mark.parametrize(
    "gamma, exc, message",
    [
        (
            np.ones(2, np.float32),
            ValueError,
            "gamma must have shape (3,) (one value per channel), got shape (2,)",
        ),
        (np.ones(3, np.int32), TypeError, "gamma must be float32 or float64, got int32"),
        ("abc", TypeError, "gamma must be float32 or float64, got <U3"),
    ],
)
def test_list_input_with_a_bad_gamma_blames_gamma(gamma, exc, message):
    with pytest.raises(exc, match="^batch_norm_forward: " + re.escape(message) + "$"):
        ops.batch_norm_forward(LIST_X, gamma, None)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_list_input_takes_the_dtype_of_the_array_arguments(dtype):
    gamma, beta = np.array([1.0, 2.0, 0.5], dtype), np.array([0.0, 0.25, -1.0], dtype)
    y, mean, var = ops.batch_norm_forward(LIST_X, gamma, beta)
    y_ref, mean_ref, var_ref = ops.batch_norm_forward(np.array(LIST_X, dtype), gamma, beta)
    assert y.dtype == mean.dtype == var.dtype == dtype
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(var, var_ref)
    dx, _, _ = ops.batch_norm_backward(LIST_X, np.array(LIST_X, dtype), gamma, mean, var)
    assert dx.dtype == dtype
    # with no array at all, NumPy's conversion of the list decides (float64)
    assert ops.batch_norm_forward(LIST_X, [1.0, 1.0, 1.0], None)[0].dtype == np.float64


def test_overlapping_out_is_rejected_and_untouched():
    rng = np.random.default_rng(2)
    buffer = rng.standard_normal((11, C)).astype(np.float32)
    snapshot = buffer.copy()
    x, out = buffer[:10], buffer[1:]  # overlapping, not identical
    with pytest.raises(ValueError, match="^batch_norm_forward: out must not overlap x"):
        ops.batch_norm_forward(x, None, None, out=out)
    gamma_in_out = np.ones((5, C), np.float32)
    with pytest.raises(ValueError, match="^batch_norm_forward: out must not overlap gamma"):
        ops.batch_norm_forward(np.ones((5, C), np.float32), gamma_in_out[0], None, out=gamma_in_out)
    with pytest.raises(ValueError, match="^batch_norm_inference: out must not overlap mean"):
        ops.batch_norm_inference(
            np.ones((5, C), np.float32),
            None,
            None,
            gamma_in_out[1],
            np.ones(C, np.float32),
            out=gamma_in_out,
        )
    with pytest.raises(ValueError, match="^batch_norm_backward: out must not overlap dy"):
        ops.batch_norm_backward(
            x, x.copy(), None, np.zeros(C, np.float32), np.ones(C, np.float32), out=out
        )
    np.testing.assert_array_equal(buffer, snapshot)
    stats = np.ones(2 * C, np.float32)
    with pytest.raises(
        ValueError, match="^update_moving_stats: moving_mean must not overlap moving_var"
    ):
        ops.update_moving_stats(
            stats[:C], stats[:C], np.zeros(C, np.float32), np.zeros(C, np.float32)
        )
    np.testing.assert_array_equal(stats, 1.0)


def test_core_functions_check_their_argument_count():
    for name, n in [
        ("batch_norm_forward", 6),
        ("batch_norm_inference", 8),
        ("batch_norm_backward", 8),
        ("batch_norm_inference_backward", 8),
        ("update_moving_stats", 6),
    ]:
        with pytest.raises(TypeError, match=f"{name} expected {n} positional arguments, got 1"):
            getattr(_core, name)(np.zeros(3))


# ---- inputs are never modified -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inputs_are_not_modified(dtype):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((12, 6, 8)).astype(dtype)
    views = {"C": base, "strided": base[::2, :, ::-1], "F": np.asfortranarray(base)}
    for label, x in views.items():
        dy = np.cos(x)
        gamma, beta = rng.uniform(0.5, 2, 6).astype(dtype), rng.standard_normal(6).astype(dtype)
        mean, var = rng.standard_normal(6).astype(dtype), rng.uniform(0.5, 2, 6).astype(dtype)
        inputs = [x, dy, gamma, beta, mean, var]
        copies = [v.copy() for v in inputs]
        ops.batch_norm_forward(x, gamma, beta, axis=1)
        ops.batch_norm_inference(x, gamma, beta, mean, var, axis=1)
        ops.batch_norm_backward(dy, x, gamma, mean, var, axis=1)
        ops.batch_norm_inference_backward(dy, x, gamma, mean, var, axis=1)
        ops.update_moving_stats(np.zeros(6, dtype), np.ones(6, dtype), mean, var, count=5)
        for v, c in zip(inputs, copies):
            np.testing.assert_array_equal(v, c, err_msg=f"an input was modified ({label})")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_byte_swapped_and_unaligned_input(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((9, 4)).astype(dtype)
    expected = ops.batch_norm_forward(x, None, None)
    swapped = x.astype(x.dtype.newbyteorder())
    raw = bytearray(x.nbytes + 1)
    unaligned = np.frombuffer(raw, dtype=dtype, offset=1, count=x.size).reshape(x.shape)
    unaligned[...] = x
    assert not unaligned.flags.aligned
    for variant in (swapped, unaligned):
        for got, want in zip(ops.batch_norm_forward(variant, None, None), expected):
            np.testing.assert_array_equal(got, want)
            assert got.dtype.isnative


# ---- reference counts and memory over 10,000 calls ----------------------------------------------


def run_all(a, n):
    """n calls of every function, plus n failing calls, with the arrays of a."""
    x, dy, gamma, beta, mean, var, out = (
        a[k] for k in ("x", "dy", "gamma", "beta", "mean", "var", "out")
    )
    mm, mv = a["moving_mean"], a["moving_var"]
    bad_gamma = np.ones(C + 1, np.float32)
    for _ in range(n):
        ops.batch_norm_forward(x, gamma, beta)
        ops.batch_norm_forward(x, gamma, beta, out=out)
        ops.batch_norm_inference(x, gamma, beta, mean, var)
        ops.batch_norm_backward(dy, x, gamma, mean, var, out=out)
        ops.batch_norm_inference_backward(dy, x, None, mean, var)
        ops.update_moving_stats(mm, mv, mean, var, count=5)
        try:
            ops.batch_norm_forward(x, bad_gamma, beta)
        except ValueError:
            pass
        try:
            ops.batch_norm_backward(dy, x, gamma, mean, var, axis=7)
        except ValueError:
            pass


def test_reference_counts_are_stable():
    a = valid_args()
    a["x_strided"] = np.ones((10, 2 * C), np.float32)[
        ::2, ::2
    ]  # converted (copied) at the boundary
    run_all(a, 10)
    ops.batch_norm_forward(a["x_strided"], None, None)
    before = {k: sys.getrefcount(v) for k, v in a.items()}
    run_all(a, 10_000)
    for _ in range(1000):
        ops.batch_norm_forward(a["x_strided"], None, None)
    after = {k: sys.getrefcount(v) for k, v in a.items()}
    assert after == before


def test_memory_is_flat():
    a = valid_args()
    run_all(a, 100)
    gc.collect()
    tracemalloc.start()
    try:
        run_all(a, 100)
        gc.collect()
        start, _ = tracemalloc.get_traced_memory()
        run_all(a, 10_000)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # NumPy reports its data allocations to tracemalloc. One leaked (5, 3) array per call would be
    # 10,000 × (60 B + ~100 B header) ≈ 1.6 MB; allow 64 KiB for interpreter caches.
    assert end - start < 64 * 1024, f"traced memory grew by {end - start} bytes over 10,000 rounds"


def _resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc/self/statm (Linux)")
@pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="AddressSanitizer keeps freed memory in quarantine, so the resident size grows",
)
def test_scratch_memory_is_released():
    """Kernels malloc scratch (per-chunk sums, coefficients) beyond 512 doubles; tracemalloc does not
    see C allocations, so watch the resident size: 2,000 calls that each take ~60 KB of scratch
    would leak ~120 MB per kernel if it were not freed."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((16, 600)).astype(np.float32)  # C = 600: scratch well over 512 doubles
    dy = rng.standard_normal(x.shape).astype(np.float32)
    out = np.empty_like(x)

    def rounds(n):
        for _ in range(n):
            _, mean, var = ops.batch_norm_forward(x, None, None, out=out)
            ops.batch_norm_backward(dy, x, None, mean, var, out=out)
            ops.batch_norm_inference_backward(dy, x, None, mean, var, out=out)
            ops.batch_norm_inference(x, None, None, mean, var, out=out)

    rounds(200)
    before = _resident_bytes()
    rounds(2000)
    growth = _resident_bytes() - before
    assert growth < 16 * 2**20, (
        f"resident memory grew by {growth / 2**20:.1f} MiB over 2,000 rounds"
    )


# ---- threads ---------------------------------------------------------------------------------------


def test_concurrent_calls_agree_with_serial_ones():
    rng = np.random.default_rng(5)
    jobs = [
        ((rng.standard_normal((64, 8, 8, 24)) * (k + 1) + k).astype(np.float32), -1 if k % 2 else 1)
        for k in range(6)
    ]

    def work(x, axis):
        y, mean, var = ops.batch_norm_forward(x, None, None, axis=axis)
        dx, dgamma, dbeta = ops.batch_norm_backward(np.sin(x), x, None, mean, var, axis=axis)
        y2 = ops.batch_norm_inference(x, None, None, mean, var, axis=axis)
        return [y, mean, var, dx, dgamma, dbeta, y2]

    serial = [work(x, axis) for x, axis in jobs]
    results = [None] * len(jobs)
    errors = []

    def run(i):
        try:
            for _ in range(5):
                results[i] = work(*jobs[i])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for got, want in zip(results, serial):
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


@pytest.mark.skipif(
    not hasattr(os, "fork") or not _core.HAVE_OPENMP, reason="needs fork() and OpenMP"
)
def test_forked_child_after_threaded_calls_does_not_hang():
    """libgomp's thread pool does not survive fork(): every kernel family runs on one thread in a
    child (and gives the same results)."""
    import time

    import bnpy

    before = bnpy.get_num_threads()
    bnpy.set_num_threads(2)
    try:
        rng = np.random.default_rng(7)
        x = rng.standard_normal((256, 1000)).astype(np.float32)
        images = rng.standard_normal((96, 32, 32, 3)).astype(np.float32)
        kernel = rng.standard_normal((5, 5, 3, 16)).astype(np.float32)
        shift = np.tile(np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]]), (96, 1, 1))

        def every_kernel_family():  # each large enough to run on the threads
            y, mean, var = ops.batch_norm_forward(x, None, None)
            return (
                y,
                var,
                ops.conv2d(images, kernel),
                ops.max_pool2d_forward(images)[0],
                ops.affine_warp(images, shift),
            )

        want = every_kernel_family()
        pid = os.fork()
        if pid == 0:  # the child: compute again and report through the exit status
            try:
                got = every_kernel_family()
                same = all(np.array_equal(g, w) for g, w in zip(got, want))
                os._exit(0 if same and bnpy.get_num_threads() == 1 else 1)
            finally:
                os._exit(2)
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung in a kernel")
            time.sleep(0.05)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    finally:
        bnpy.set_num_threads(before)
