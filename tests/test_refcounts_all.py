"""Reference counts and memory over 10,000 calls of every C entry point (issue 6, item 2).

Each round calls every function of bnpy._core once with good arguments and once per bad argument
set (tests/fuzz/leak_check.py: errors raised in parsing, after an input was converted -- copied --,
and after the output was allocated). The batch-normalization entry points have their own
10,000-call tests in test_batchnorm_boundary.py; here they ride along in the same rounds (a few
microseconds each) because the bad-argument paths are different ones.
"""

import gc
import sys
import tracemalloc

import numpy as np
import pytest
from fuzz import leak_check

from bnpy import _core

ROUNDS = 10_000


def _refcounts():
    # None is shared by the whole interpreter: its count moves with everything else.
    return {
        name: sys.getrefcount(value) for name, value in leak_check.ARGS.items() if value is not None
    }


def test_every_entry_point_is_exercised():
    points = leak_check.entry_points()
    public = {n for n in dir(_core) if callable(getattr(_core, n)) and not n.startswith("_")}
    assert public == set(points)
    leak_check.run_round(points)  # and each bad call really fails with its error type


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_reference_counts_and_memory_stay_flat_over_10000_rounds():
    points = leak_check.entry_points()
    for _ in range(200):  # warm up: interpreter caches, NumPy's small-array cache, OpenMP pools
        leak_check.run_round(points)
    gc.collect()
    before = _refcounts()
    tracemalloc.start()
    try:
        for _ in range(200):
            leak_check.run_round(points)
        gc.collect()
        traced, rss = [tracemalloc.get_traced_memory()[0]], [_rss_bytes()]
        for _ in range(2):  # two halves: a leak grows in both, a cache that fills once does not
            for _ in range(ROUNDS // 2):
                leak_check.run_round(points)
            gc.collect()
            traced.append(tracemalloc.get_traced_memory()[0])
            rss.append(_rss_bytes())
    finally:
        tracemalloc.stop()
    after = _refcounts()
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, "reference counts changed over {} rounds: {}".format(ROUNDS, changed)
    # NumPy reports its data buffers to tracemalloc: one leaked output per round -- the smallest is
    # a 3-element vector, ~100 B with its header -- would be >= 500 kB in each half. 64 KiB is room
    # for interpreter caches.
    traced_growth = [b - a for a, b in zip(traced, traced[1:])]
    assert max(traced_growth) < 64 * 1024, traced_growth
    # Memory malloc'ed inside the C code (kernel scratch) is invisible to tracemalloc: the resident
    # size catches it. Scratch is sized by the data (>= 1 KiB here), so one leak per round is
    # >= 5 MB per half; the second half must grow less than 2 MiB (the first may fill allocator
    # arenas once).
    rss_growth = [b - a for a, b in zip(rss, rss[1:])]
    assert rss_growth[1] < 2 << 20, rss_growth


def test_a_leak_would_be_seen():
    """The method above detects a leaked reference: keep one per round on purpose."""
    keep = []
    x = leak_check.ARGS["rows64"]
    before = sys.getrefcount(x)
    for _ in range(100):
        keep.append(x)
    assert sys.getrefcount(x) == before + 100
    del keep
    arrays = []
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            arrays.append(
                _core.conv_output_backward(x[None, None], True, True)[1]
            )  # kept, as a leak
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown > 64 * 1024
    assert np.isfinite(arrays[-1]).all()
