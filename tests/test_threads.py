"""Eight Python threads calling the kernels and Sequential.predict at once (issue 6, item 3).

Every thread works on the same read-only inputs (flags.writeable = False: a kernel that wrote into
an input would raise instead of silently racing), released together by a barrier so the calls
overlap (the kernels release the GIL). Each result must equal the serial one: bitwise for the C
kernels (they are deterministic and their results do not depend on the thread count), and within
float32 rounding for anything that goes through NumPy's matmul (OpenBLAS may split a product
differently when several callers use it at once). The batch-normalization kernels have their own
concurrency test in test_batchnorm_boundary.py.
"""

import json
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
from child_python import child_env

import bnpy
from bnpy import _core, ops
from bnpy.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPooling2D,
)
from bnpy.models import Sequential

THREADS = 8
ROUNDS = 4


def _readonly(a):
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def _run_concurrently(work, n_threads=THREADS, rounds=ROUNDS):
    """work(i) in n_threads threads, `rounds` times each, all starting together; the results of the
    last round per thread, and every exception raised."""
    barrier = threading.Barrier(n_threads)
    results, errors = [None] * n_threads, []

    def run(i):
        try:
            barrier.wait()
            for _ in range(rounds):
                results[i] = work(i)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish (deadlock?)"
    assert not errors, errors
    return results


rng = np.random.default_rng(6)
X_NHWC = _readonly(rng.standard_normal((8, 12, 12, 3)).astype(np.float32))
X_NCHW = _readonly(np.transpose(X_NHWC, (0, 3, 1, 2)))
KERNEL = _readonly(rng.standard_normal((3, 3, 3, 8)).astype(np.float32))
BIAS = _readonly(rng.standard_normal(8).astype(np.float32))
MATRICES = _readonly(np.tile(np.array([[0.9, 0.2, 1.0], [-0.2, 0.9, -0.5], [0, 0, 1]]), (8, 1, 1)))


def _core_work(i):
    """A different mix of C kernels per thread (i), every one of them on the shared inputs."""
    x = X_NCHW if i % 2 else X_NHWC
    cf = bool(i % 2)
    out = {}
    out["im2col"] = _core.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, cf)
    out["col2im"] = _core.col2im(out["im2col"], x.shape, 3, 3, 1, 1, 1, 1, 1, 1, cf)
    max_window, avg_window = (3, 3, 2, 2, 1, 1, 1, 1), (2, 2, 2, 2, 0, 0, 0, 0)
    out["max"], out["argmax"] = _core.pool2d(x, True, *max_window, cf)
    out["max_back"] = _core.pool2d_backward(out["max"], out["argmax"], x.shape, *max_window, cf)
    out["avg"] = _core.pool2d(x, False, *avg_window, cf)[0]
    out["avg_back"] = _core.pool2d_backward(out["avg"], None, x.shape, *avg_window, cf)
    product = out["im2col"]  # (8·P, 27) rows, and as 8 images of (P, 1, 27)
    images = product.reshape(8, -1, 1, 27)
    out["rows"], out["sum"] = _core.conv_output_backward(images, True, False)
    out["transpose"] = _core.conv_output(product, out["sum"], 8, True)
    out["rows_transposed"], out["sum_transposed"] = _core.conv_output_backward(images, True, True)
    out["bias_rows"] = _core.conv_output(product.copy(), out["sum"], 8, False)
    out["warp"] = ops.affine_warp(
        x,
        MATRICES,
        order=i % 2,
        fill_mode=("constant", "nearest", "reflect", "wrap")[i % 4],
        data_format="channels_first" if cf else "channels_last",
    )
    if _core.conv_direct_available():
        out["direct"], xpad = _core.conv2d_direct(X_NHWC, KERNEL, BIAS, 1, 1, 1, 1, 1, 1)
        out["direct_dk"] = _core.conv2d_direct_dkernel(
            out["direct"], xpad, X_NHWC.shape, 3, 3, 1, 1, 1, 1, 1, 1
        )
    return out


@pytest.mark.parametrize("omp_threads", [1, 2])
def test_eight_threads_calling_the_c_kernels_agree_with_serial_calls(omp_threads):
    previous = bnpy.set_num_threads(omp_threads)  # 8 Python threads x 1 or 2 OpenMP threads each
    try:
        serial = [_core_work(i) for i in range(THREADS)]
        concurrent = _run_concurrently(_core_work)
    finally:
        bnpy.set_num_threads(previous)
    for i, (got, want) in enumerate(zip(concurrent, serial)):
        assert got.keys() == want.keys()
        for name in want:
            assert got[name].tobytes() == want[name].tobytes(), "thread {}: {} differs".format(
                i, name
            )


def _conv_pool_work(i):
    fmt = "channels_first" if i % 2 else "channels_last"
    x = X_NCHW if i % 2 else X_NHWC
    y, ctx = ops.conv2d_forward(x, KERNEL, BIAS, strides=1 + i % 2, padding="same", data_format=fmt)
    dx, dk, db = ops.conv2d_backward(y, ctx)
    p, pctx = ops.max_pool2d_forward(y, 2, None, "same", fmt)
    return [
        y,
        dx,
        dk,
        db,
        p,
        ops.max_pool2d_backward(p, pctx),
        ops.conv2d(x, KERNEL, None, 1, "valid", fmt),
    ]


def test_eight_threads_calling_the_ops_agree_with_serial_calls():
    serial = [_conv_pool_work(i) for i in range(THREADS)]
    concurrent = _run_concurrently(_conv_pool_work)
    for got, want in zip(concurrent, serial):
        for g, w in zip(got, want):
            # matmul sums 27 (forward) to 8*12*12 (kernel gradient) float32 products: allow a few
            # ulps of the largest term's scale, float32 eps = 1.2e-7.
            scale = float(np.abs(w).max()) or 1.0
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5 * scale)


def _model():
    np.random.seed(11)
    model = Sequential()
    model.add(Conv2D(8, (3, 3), padding="same", input_shape=(12, 12, 3)))
    model.add(BatchNormalization())
    model.add(Activation("relu"))
    model.add(MaxPooling2D((2, 2)))
    model.add(Conv2D(8, (3, 3)))
    model.add(BatchNormalization(axis=-1))
    model.add(AveragePooling2D((2, 2)))
    model.add(Flatten())
    model.add(Dropout(0.5))  # inactive in predict
    model.add(Dense(5))
    model.add(BatchNormalization())
    model.add(Activation("softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    # Moving statistics away from (0, 1), so inference BN does something.
    y = np.eye(5, dtype=np.float32)[np.arange(32) % 5]
    x = np.random.default_rng(1).standard_normal((32, 12, 12, 3)).astype(np.float32)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    return model


def test_eight_threads_predicting_with_one_model_agree_with_serial_predict():
    model = _model()
    weights_before = [w.copy() for w in model.get_weights()]
    inputs = [
        _readonly(
            np.random.default_rng(100 + i).standard_normal((20, 12, 12, 3)).astype(np.float32)
        )
        for i in range(THREADS)
    ]
    serial = [model.predict(x, batch_size=7) for x in inputs]
    concurrent = _run_concurrently(lambda i: model.predict(inputs[i], batch_size=7))
    for got, want in zip(concurrent, serial):
        # float32 softmax outputs in [0, 1] after two matmul-based convolutions and a Dense layer
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for before, after in zip(weights_before, model.get_weights()):  # predict changes nothing
        np.testing.assert_array_equal(before, after)


# ---- bnpy._threads: the BLAS cap during fit (see docs/reliability.md) ---------------------------


def _blas_threads():
    """Thread counts of NumPy's own BLAS (the one the model's matmuls use). Other BLAS copies
    (SciPy's, loaded by other tests) are left out: the cap is about NumPy's pool, and bnpy's
    cached controller only knows the libraries loaded when it was made."""
    from threadpoolctl import threadpool_info

    return [
        p["num_threads"]
        for p in threadpool_info()
        if p["user_api"] == "blas" and os.sep + "numpy" in p["filepath"]
    ]


def test_fit_threads_caps_blas_while_bnpy_runs_parallel_and_restores_it(monkeypatch):
    pytest.importorskip("threadpoolctl")
    from bnpy import _threads

    if not _blas_threads():
        pytest.skip("NumPy's BLAS exposes no thread pool to threadpoolctl")
    if not bnpy._core.HAVE_OPENMP:
        pytest.skip("a serial build runs its kernels on one thread: BLAS is never capped")
    monkeypatch.delenv("BNPY_FIT_BLAS_THREADS", raising=False)
    previous = bnpy.set_num_threads(2)
    try:
        before = _blas_threads()
        with pytest.raises(RuntimeError, match="inside"):
            with _threads.fit_threads():
                assert _blas_threads() == [1] * len(before)
                raise RuntimeError("inside")
        assert _blas_threads() == before  # restored on an exception too
        bnpy.set_num_threads(1)  # bnpy serial: nothing to fight over, BLAS left alone
        with _threads.fit_threads() as cap:
            assert cap is None and _blas_threads() == before
        monkeypatch.setenv("BNPY_FIT_BLAS_THREADS", "0")
        bnpy.set_num_threads(2)
        with _threads.fit_threads() as cap:
            assert cap is None and _blas_threads() == before
        for bad in ("two", "-1"):
            monkeypatch.setenv("BNPY_FIT_BLAS_THREADS", bad)
            with pytest.raises(ValueError, match="BNPY_FIT_BLAS_THREADS must be an int >= 0"):
                with _threads.fit_threads():
                    pass
    finally:
        bnpy.set_num_threads(previous)


class _FakeBlasPool:
    """A process-wide BLAS pool of ``threads`` threads behind threadpoolctl's controller API."""

    user_api, internal_api, threading_layer = "blas", "openblas", "pthreads"

    def __init__(self, threads):
        self.threads = threads
        self.lib_controllers = [self]

    def get_num_threads(self):
        return self.threads

    def set_num_threads(self, threads):
        self.threads = threads

    def limit(self, limits, user_api):  # ThreadpoolController.limit, with its limiter
        pool, original = self, self.threads

        class Limiter:
            def restore_original_limits(self):
                pool.threads = original

            def __enter__(self):
                return self

            def __exit__(self, *exc_info):
                self.restore_original_limits()

        self.threads = limits
        return Limiter()


@pytest.mark.parametrize("exit_order", ["first in, first out", "last in, first out"])
def test_overlapping_blas_caps_restore_the_pool_whatever_order_they_end_in(monkeypatch, exit_order):
    from bnpy import _threads

    pool = _FakeBlasPool(threads=2)
    monkeypatch.setattr(_threads, "_blas_controller", lambda: pool)
    monkeypatch.setenv("BNPY_FIT_BLAS_THREADS", "1")
    first, second = _threads.fit_threads(), _threads.fit_threads()
    first.__enter__()
    second.__enter__()
    assert pool.threads == 1
    for block in (first, second) if exit_order == "first in, first out" else (second, first):
        assert pool.threads == 1  # capped while any block is open
        block.__exit__(None, None, None)
    assert pool.threads == 2
    with pytest.raises(RuntimeError, match="inside"):
        with _threads.fit_threads():
            assert pool.threads == 1
            raise RuntimeError("inside")
    assert pool.threads == 2


def _run_python(script, env, cwd):
    """``script`` in a new Python process with ``env`` (child_env: the bnpy this test imported),
    from ``cwd``; fails with the end of its stderr unless it exits with 0."""
    run = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(cwd),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run


_OVERLAPPING_FITS_SCRIPT = r"""
import json
import threading
import numpy as np
import bnpy
from bnpy import callbacks
from bnpy.layers import Dense
from bnpy.models import Sequential
from threadpoolctl import threadpool_info

def blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

def wait(event):
    assert event.wait(timeout=120), "the other fit did not get there"

x = np.random.default_rng(0).standard_normal((16, 6)).astype(np.float32)
y = np.eye(3, dtype=np.float32)[np.arange(16) % 3]
a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
seen, errors = {}, []

def run(name, signal, wait_for, start_after=None, then=None):
    def hold(logs):
        seen[name] = blas_threads()
        signal.set()
        wait(wait_for)
    try:
        if start_after is not None:
            wait(start_after)
        model = Sequential([Dense(4, activation="relu", input_shape=(6,)), Dense(3, activation="softmax")])
        model.compile(loss="categorical_crossentropy", optimizer="sgd")
        model.fit(x, y, epochs=1, verbose=0, callbacks=[callbacks.LambdaCallback(on_train_begin=hold)])
        if then is not None:
            seen[name + " done"] = blas_threads()
            then.set()
    except BaseException as exc:
        errors.append(repr(exc))
        a_in.set(), b_in.set(), a_out.set()

bnpy.set_num_threads(2)
before = blas_threads()
# A starts, B starts, A ends, B ends, both in threads other than the main one: B finds the cap A
# set, and B (not the thread that set it) must put the original count back.
threads = [threading.Thread(target=run, args=("a", a_in, b_in, None, a_out)),
           threading.Thread(target=run, args=("b", b_in, a_out, a_in))]
for t in threads:
    t.start()
for t in threads:
    t.join(timeout=300)
assert not any(t.is_alive() for t in threads), "a fit did not finish"
print(json.dumps({"before": before, "after": blas_threads(), "errors": errors, **seen}))
"""


@pytest.mark.skipif(not _core.HAVE_OPENMP, reason="a serial build never caps BLAS")
def test_overlapping_fits_in_two_threads_leave_the_blas_pool_as_they_found_it(tmp_path):
    """The issue as users meet it, with the real BLAS, in a fresh process (see the script)."""
    pytest.importorskip("threadpoolctl")
    env = child_env(OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    env.pop("BNPY_FIT_BLAS_THREADS", None)
    run = _run_python(_OVERLAPPING_FITS_SCRIPT, env, tmp_path)
    seen = json.loads(run.stdout)
    assert seen["errors"] == []
    if seen["before"] != [2]:
        pytest.skip("NumPy's BLAS does not run on 2 threads here: {}".format(seen["before"]))
    assert seen["a"] == seen["b"] == seen["a done"] == [1]  # capped while either fit runs
    assert seen["after"] == [2]


_CAP_SCRIPT = r"""
import os, resource
import numpy as np
import bnpy
from bnpy import ops

rng = np.random.default_rng(0)
x = rng.standard_normal((4000, 64)).astype(np.float32)
images = rng.standard_normal((8, 32, 32, 16)).astype(np.float32)
expected = (ops.batch_norm_forward(x, None, None)[0], ops.max_pool2d_forward(images, (2, 2))[0])
# Room for the processors' threads (8 MiB stacks) and little else: 4096 threads need 32 GiB.
with open("/proc/self/status") as status:
    vm_kib = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
limit = vm_kib * 1024 + (512 + 16 * len(os.sched_getaffinity(0))) * 2 ** 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
bnpy.set_num_threads(4096)
got = (ops.batch_norm_forward(x, None, None)[0], ops.max_pool2d_forward(images, (2, 2))[0])
print(bnpy.get_num_threads(), all(np.array_equal(a, b) for a, b in zip(got, expected)))
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _core.HAVE_OPENMP,
    reason="needs Linux's RLIMIT_AS and /proc, and OpenMP",
)
def test_more_threads_than_processors_cannot_end_the_process(tmp_path):
    """set_num_threads accepts up to 4096, but the kernels use at most one thread per processor:
    libgomp ends the process ("Thread creation failed") when it cannot create a team, as it cannot
    with 4096 threads under a memory limit."""
    env = child_env(OMP_NUM_THREADS="2")
    run = _run_python(_CAP_SCRIPT, env, tmp_path)
    assert run.stdout.split() == ["4096", "True"]


def test_threadpoolctl_is_a_dependency_of_the_installed_package():
    """Without it the BLAS cap is silently skipped and both thread pools spin on the same cores."""
    from importlib.metadata import requires

    unconditional = [r for r in requires("bnpy") or [] if ";" not in r]  # not an extra's
    assert any(r.replace(" ", "").startswith("threadpoolctl") for r in unconditional), unconditional


_SPIN_SCRIPT = r"""
import os, sys
import bnpy
print(os.environ.get("GOMP_SPINCOUNT"), bnpy._SPINCOUNT)
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _core.HAVE_OPENMP,
    reason="libgomp (GCC's OpenMP) on Linux",
)
@pytest.mark.parametrize(
    "user_setting, expected",
    [
        ({}, None),  # None: bnpy's own count
        ({"GOMP_SPINCOUNT": "12345"}, "12345"),
        ({"OMP_WAIT_POLICY": "active"}, "30000000000"),  # libgomp's count for active
        ({"OMP_WAIT_POLICY": "passive"}, "0"),
    ],
)
def test_libgomp_gets_bnpys_spin_count_unless_the_user_chose_a_wait_policy(
    tmp_path, user_setting, expected
):
    """libgomp prints the settings it read at load with OMP_DISPLAY_ENV=verbose: bnpy's short spin
    count takes effect, a user's own choice wins, and the variable is gone from the environment
    once bnpy is imported (child processes keep libgomp's default)."""
    unset = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env = child_env(unset, OMP_DISPLAY_ENV="verbose", **user_setting)
    run = _run_python(_SPIN_SCRIPT, env, tmp_path)
    counts = set(re.findall(r"GOMP_SPINCOUNT = '(\d+)'", run.stderr))
    if not counts:
        pytest.skip("the OpenMP runtime is not libgomp: {}".format(run.stderr[-300:]))
    left_in_environment, bnpy_count = run.stdout.split()
    assert counts == {expected or bnpy_count}
    assert left_in_environment == user_setting.get("GOMP_SPINCOUNT", "None")
