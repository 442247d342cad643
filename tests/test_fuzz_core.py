"""Property and fuzz tests of the C boundary (issue 6, item 1), cheap enough for every test run.

The bounded campaign of 100,000+ inputs is tests/fuzz/fuzz_core.py (run by .ci/hardening.sh under
ASan/UBSan); here hypothesis drives the same case generator (tests/fuzz/cases.py) over a few hundred
inputs, plus targeted properties: NaN/Inf/denormals stay in their channel, in-place equals
out-of-place, and the regressions of the bugs the campaign found.
"""

import tracemalloc

import numpy as np
import pytest
from fuzz import cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bnpy
from bnpy import _core, ops

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_the_campaign_covers_every_function():
    public_core = {n for n in dir(_core) if callable(getattr(_core, n)) and not n.startswith("_")}
    assert public_core <= cases.COVERED, public_core - cases.COVERED
    assert set(ops.__all__) <= cases.COVERED, set(ops.__all__) - cases.COVERED
    with np.errstate(all="ignore"):  # building a conv2d_backward case runs a forward on 1e38s
        seen = {cases.make_case(7, i).name.rsplit(".", 1)[1] for i in range(1500)}
    expected = (public_core | set(ops.__all__)) - {"get_num_threads", "conv_direct_available"}
    if not _core.conv_direct_available():
        expected -= {"conv2d_direct", "conv2d_direct_dkernel"}
    assert expected <= seen, expected - seen


def test_cases_are_deterministic():
    import re

    for index in range(50):
        a, b = cases.make_case(3, index), cases.make_case(3, index)
        strip = lambda text: re.sub(r"0x[0-9a-f]+", "", text)  # noqa: E731 (object addresses)
        assert strip(a.describe()) == strip(b.describe())


@pytest.fixture(scope="module")
def limited_address_space():
    """As in the campaign's workers: an honest-but-huge request (a padding of 2**31 asks for a
    64 GiB im2col matrix) must fail fast with MemoryError, not page the machine to death. The
    limit is this process's current size + 4 GiB, and is lifted afterwards."""
    try:
        import resource
    except ImportError:  # not POSIX
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * resource.getpagesize()
    limit = size + (4 << 30)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.skipif(
    not __import__("sys").platform.startswith("linux"), reason="reads /proc/self/statm"
)
@FAST
@given(index=st.integers(0, 2**63 - 1))
def test_random_calls_keep_the_contract(limited_address_space, index):
    """Rejected: TypeError/ValueError with a message and nothing written; accepted: only the
    outputs written, and layout-independent results (see cases.run_case)."""
    with np.errstate(all="ignore"):
        cases.run_case(cases.make_case(2026, index))


def test_contract_checker_catches_a_violation():
    """run_case must fail a function that writes into its input before refusing it."""

    def bad(x, out=None):
        x[...] = 0
        raise ValueError("bad: refused after writing")

    case = cases.Case("bad", bad, [np.ones(3)], core=False)
    with pytest.raises(cases.ContractViolation, match="wrote into an argument"):
        cases.run_case(case)

    def crashes_with_other_error(x):
        raise IndexError("oops")

    with pytest.raises(cases.ContractViolation, match="IndexError"):
        cases.run_case(cases.Case("other", crashes_with_other_error, [np.ones(3)], core=False))


# ---- NaN / Inf / denormals stay in their own channel ---------------------------------------------

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)
special = st.sampled_from([np.nan, np.inf, -np.inf, 1e-45, -1e-45, 1e-40, 0.0, -0.0])


@FAST
@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=5),
        elements=st.one_of(finite, special),
    ),
    st.integers(0, 3),
    st.sampled_from([np.float32, np.float64]),
)
def test_non_finite_values_stay_in_their_channel(x, axis, dtype):
    x = x.astype(dtype)
    axis = axis % x.ndim
    with np.errstate(all="ignore"):
        y, mean, var = ops.batch_norm_forward(x, None, None, axis=axis)
    moved = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    out = np.moveaxis(y, axis, 0).reshape(x.shape[axis], -1)
    for c in range(x.shape[axis]):
        if np.isfinite(moved[c]).all():
            # A channel of finite values: finite output, equal to normalising that channel alone.
            alone, m, v = ops.batch_norm_forward(moved[c : c + 1].T.copy(), None, None, axis=1)
            assert np.isfinite(out[c]).all() and np.isfinite(mean[c]) and np.isfinite(var[c])
            # Same formula, but the sums run over another (outer, C, inner) blocking, so the
            # double accumulations may round differently: a few ulps of the output's dtype.
            eps = np.finfo(dtype).eps
            np.testing.assert_allclose(
                out[c],
                alone[:, 0],
                rtol=8 * eps,
                atol=8 * eps * max(1.0, float(np.abs(alone).max())),
            )


@FAST
@given(
    hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4),
        elements=st.one_of(finite, special),
    ),
    st.integers(0, 3),
)
def test_in_place_equals_out_of_place(x, axis):
    axis = axis % x.ndim
    c = x.shape[axis]
    gamma = np.linspace(0.5, 2, c).astype(x.dtype)
    beta = np.linspace(-1, 1, c).astype(x.dtype)
    with np.errstate(all="ignore"):
        y, mean, var = ops.batch_norm_forward(x, gamma, beta, axis=axis)
        inplace = x.copy()
        ops.batch_norm_forward(inplace, gamma, beta, axis=axis, out=inplace)
        assert inplace.tobytes() == y.tobytes()
        z = ops.batch_norm_inference(x, gamma, beta, mean, np.abs(var), axis=axis)
        inplace = x.copy()
        ops.batch_norm_inference(inplace, gamma, beta, mean, np.abs(var), axis=axis, out=inplace)
        assert inplace.tobytes() == z.tobytes()


# ---- regressions of the bugs the campaign found ----------------------------------------------------


@pytest.mark.parametrize("take_max", [True, False])
@pytest.mark.parametrize("shape", [(2, 1, 0, 6), (2, 3, 4, 0)])
def test_pooling_an_empty_plane_is_refused(take_max, shape):
    """Was: padding made the window 'fit' a 0-row plane and max pooling read x[0] of an empty
    buffer (out of bounds), returning garbage maxima and argmax indices."""
    x = np.zeros(shape)
    with pytest.raises(ValueError, match="is empty: nothing to pool"):
        _core.pool2d(x, take_max, 3, 1, 1, 2, 1, 2, 0, 0, True)


def test_huge_padding_cannot_wrap_the_shape_check():
    """Was: out_w = 2**62 + 3 and 16 * out_w == 48 (mod 2**64), so a (48, 6) dcol passed the shape
    check and col2im looped over 2**62 columns, reading far past dcol."""
    dcol = np.zeros((48, 6), np.float32)
    with pytest.raises(ValueError, match="geometry is too large"):
        _core.col2im(dcol, (2, 3, 5, 4), 1, 2, 1, 1, 1, 2, 0, 2**62, True)
    x = np.zeros((1, 4, 4, 1))
    for pads in [(2**62, 2**62, 0, 0), (0, 0, 2**63 - 1, 2**63 - 1), (0, 2**40, 0, 2**40)]:
        with pytest.raises(ValueError, match="too large"):
            _core.im2col(x, 1, 1, 1, 1, *pads, False)


def test_a_huge_array_as_a_shape_is_refused_at_once():
    """Was: x_shape / pool_size given a zero-stride array was first copied into a list
    (PySequence_Fast, tuple()): for 2**56 elements, minutes of work and gigabytes before the
    error. Here 2**20 rows, whose copy would take 2**20 row views (over 8 MiB of list and
    objects): the error must come before any of that is allocated."""
    huge = np.lib.stride_tricks.as_strided(np.zeros(1), shape=(2**20, 2**20), strides=(0, 0))
    dy, argmax = np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int32)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="4-item shape tuple"):
            _core.pool2d_backward(dy, argmax, huge, 1, 1, 1, 1, 0, 0, 0, 0, False)
        with pytest.raises(TypeError, match="pool_size must be an int or a pair of ints"):
            ops.max_pool2d_forward(np.ones((1, 4, 4, 1)), huge)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, "{} bytes allocated on the way to the error".format(peak)


def test_set_num_threads_refuses_a_huge_int_with_value_error():
    before = bnpy.get_num_threads()
    for n in (2**70, -(2**70), 2**63):
        with pytest.raises(ValueError, match=r"set_num_threads: n must be in \[1, 4096\]"):
            bnpy.set_num_threads(n)
    assert bnpy.get_num_threads() == before


# ---- regressions of bugs the campaign found --------------------------------------------------------


def test_conv2d_channels_first_empty_batch():
    x = np.zeros((0, 2, 5, 5))
    y, ctx = ops.conv2d_forward(x, np.ones((3, 3, 2, 4)), np.zeros(4), data_format="channels_first")
    assert y.shape == (0, 4, 3, 3)
    dx, dkernel, dbias = ops.conv2d_backward(np.zeros(y.shape), ctx)
    assert dx.shape == x.shape and not dkernel.any() and not dbias.any()


def test_conv2d_backward_refuses_a_non_bool_need_dx():
    y, ctx = ops.conv2d_forward(np.ones((1, 4, 4, 1)), np.ones((3, 3, 1, 2)))
    with pytest.raises(TypeError, match="conv2d_backward: need_dx must be a bool"):
        ops.conv2d_backward(np.ones(y.shape), ctx, need_dx=np.ones(2))


def test_ops_refuse_a_huge_stride_with_value_error():
    with pytest.raises(ValueError, match="max_pool2d_forward: strides is too large"):
        ops.max_pool2d_forward(np.ones((1, 4, 4, 1)), 2, strides=2**64)


def test_update_moving_stats_refuses_a_huge_count_with_value_error():
    with pytest.raises(ValueError, match="update_moving_stats: count is too large"):
        ops.update_moving_stats(np.zeros(2), np.ones(2), np.zeros(2), np.ones(2), count=2**64)


# Error messages that did not name the function and the argument (found by counting the campaign's
# rejections whose message lacked the function's name).


def test_an_array_axis_is_refused_naming_function_and_argument():
    with pytest.raises(TypeError, match="batch_norm_forward: axis"):
        ops.batch_norm_forward(np.ones((2, 3)), None, None, axis=np.ones(2, np.int64))


def test_an_array_data_format_is_refused_naming_function_and_argument():
    with pytest.raises(ValueError, match="max_pool2d_forward: data_format"):
        ops.max_pool2d_forward(np.ones((1, 4, 4, 1)), 2, data_format=np.ones(2))
