"""bnpy._memory: the caching allocator for NumPy array data around Sequential's compute methods
(csrc/py_memory.c)."""

import sys
import threading

import numpy as np
import pytest

import bnpy
from bnpy import _core, _memory
from bnpy.layers.core import Dense
from bnpy.models import Sequential

MIB = 1 << 20


def handler_name(array=None):
    return (
        np._core.multiarray.get_handler_name(array)
        if array is not None
        else np._core.multiarray.get_handler_name()
    )


def cache_state():
    """(active calls, cached blocks, cached bytes)."""
    return _core._array_cache_info()[:3]


def address(a):
    return a.__array_interface__["data"][0]


def churn(nbytes):
    """Make an array of nbytes and drop it."""
    np.empty(nbytes, np.uint8)


@pytest.fixture(autouse=True)
def empty_cache():
    assert cache_state()[0] == 0
    _core._array_cache_release()
    yield
    assert cache_state()[0] == 0  # every block exited
    _core._array_cache_release()
    assert cache_state() == (0, 0, 0)


def test_a_freed_large_array_is_reused_for_the_next_of_its_size():
    outside = handler_name()
    with _memory.array_cache():
        assert handler_name() == "bnpy_array_cache"
        a = np.empty(MIB, np.float32)
        assert handler_name(a) == "bnpy_array_cache"
        where = address(a)
        del a
        assert cache_state() == (1, 1, 4 * MIB)
        b = np.empty(MIB, np.float32)  # same byte size
        assert address(b) == where and cache_state() == (1, 0, 0)
        c = np.empty(MIB + 1, np.float32)  # another size: a new block
        assert address(c) != where
        small = np.empty(1000, np.float32)  # under 1 MiB: never cached
        del small
        assert cache_state()[1] == 0
        del b, c
        assert cache_state() == (1, 2, 8 * MIB + 4)
    assert handler_name() == outside
    assert cache_state() == (0, 2, 8 * MIB + 4)  # kept for the next call
    assert _core._array_cache_release() == 2 and cache_state() == (0, 0, 0)


def test_blocks_last_from_one_call_to_the_next_and_no_longer_unused():
    with _memory.array_cache():
        churn(MIB)
        churn(2 * MIB)
    assert cache_state() == (0, 2, 3 * MIB)
    with _memory.array_cache():  # takes the 1 MiB block, frees it again, leaves the other alone
        churn(MIB)
        assert cache_state() == (1, 2, 3 * MIB)
    assert cache_state() == (0, 1, MIB)  # the 2 MiB block sat out a whole call: released
    with _memory.array_cache():
        pass
    assert cache_state() == (0, 0, 0)


def test_zeros_from_a_reused_block_are_zeros():
    with _memory.array_cache():
        a = np.full(2 * MIB, 7.5)
        where = address(a)
        del a
        z = np.zeros(2 * MIB)
        assert address(z) == where and not z.any()


def test_arrays_outlive_the_block_and_are_freed_when_dropped():
    with _memory.array_cache():
        kept = np.arange(MIB, dtype=np.float64)
    assert handler_name(kept) == "bnpy_array_cache"
    assert kept[12345] == 12345.0
    del kept  # freed at once: arrays freed between calls are not kept
    assert cache_state() == (0, 0, 0)


def test_nested_blocks_share_one_cache_emptied_by_the_last():
    with _memory.array_cache():
        with _memory.array_cache():
            churn(MIB)
            assert cache_state() == (2, 1, MIB)
        assert cache_state() == (1, 1, MIB)
    assert cache_state() == (0, 1, MIB)


def test_the_handler_is_restored_on_an_exception():
    outside = handler_name()
    with pytest.raises(RuntimeError, match="inside"):
        with _memory.array_cache():
            churn(MIB)
            raise RuntimeError("inside")
    assert handler_name() == outside


def test_the_cache_holds_a_bounded_number_of_blocks_and_bytes():
    with _memory.array_cache():
        arrays = [np.empty(MIB + 4096 * i, np.uint8) for i in range(100)]
        while arrays:
            arrays.pop(0)  # freed in the order made
        depth, blocks, nbytes = cache_state()
        assert depth == 1 and blocks == 64  # the 36 freed first were released
        assert nbytes == sum(MIB + 4096 * i for i in range(36, 100))
        big = np.empty(600 * MIB, np.uint8)  # larger than the cache may hold: not kept
        del big
        assert cache_state()[2] == nbytes


def test_the_oldest_blocks_make_room_for_a_new_one():
    limit = _core._array_cache_info()[3]
    assert 0 < limit <= 512 * MIB
    third = limit // 3 + 1
    with _memory.array_cache():
        arrays = [np.empty(third, np.uint8) for _ in range(3)]
        first = address(arrays[0])
        while arrays:
            arrays.pop(0)
        assert cache_state() == (1, 2, 2 * third)  # the first one was released
        assert address(np.empty(third, np.uint8)) != first


def test_other_threads_keep_numpys_allocator():
    # The handler is per context (contextvars): a thread started inside the block has its own.
    seen = []
    with _memory.array_cache():
        t = threading.Thread(target=lambda: seen.append(handler_name(np.empty(MIB, np.uint8))))
        t.start()
        t.join()
    assert seen and seen[0] != "bnpy_array_cache"


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("BNPY_ARRAY_CACHE", "0")
    with _memory.array_cache():
        assert handler_name() != "bnpy_array_cache"
    monkeypatch.setenv("BNPY_ARRAY_CACHE", "yes")
    with pytest.raises(ValueError, match="BNPY_ARRAY_CACHE must be 0 or 1, got 'yes'"):
        with _memory.array_cache():
            pass


def test_exit_refuses_what_enter_did_not_return():
    with pytest.raises(TypeError, match="_array_cache_exit: previous must be the handler"):
        _core._array_cache_exit(42)
    assert handler_name() != "bnpy_array_cache"


def test_enter_and_exit_keep_reference_counts_flat():
    previous = _core._array_cache_enter()
    _core._array_cache_exit(previous)
    before = sys.getrefcount(previous)
    for _ in range(10000):
        _core._array_cache_exit(_core._array_cache_enter())
    assert sys.getrefcount(previous) == before


def test_fit_and_predict_run_with_the_cache_and_leave_nothing():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 1200)).astype(np.float32)  # 1.2 MB batches: cached sizes
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 256)]
    model = Sequential([Dense(300, input_shape=(1200,)), Dense(4, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    during = []

    class Watch(bnpy.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            during.append((handler_name(), cache_state()[0]))

    model.fit(x, y, batch_size=256, epochs=3, verbose=0, callbacks=[Watch()])
    assert during and all(name == "bnpy_array_cache" and depth >= 1 for name, depth in during)
    assert handler_name() != "bnpy_array_cache"
    assert 0 < cache_state()[1]  # the batches' blocks, kept for the next call
    with _memory.array_cache():  # the same numbers with and without the cache
        cached = model.predict(x, batch_size=64)
    np.testing.assert_array_equal(cached, model.predict(x, batch_size=64))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_uses_the_cache_it_inherited():
    import os

    with _memory.array_cache():
        churn(MIB)
        pid = os.fork()
        if pid == 0:  # the child: allocate and free through the inherited handler and cache
            ok = cache_state() == (1, 1, MIB)
            a = np.ones(MIB, np.uint8)
            ok = ok and cache_state() == (1, 0, 0) and a.sum() == MIB
            del a
            ok = ok and cache_state() == (1, 1, MIB)
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
