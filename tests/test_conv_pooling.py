"""bnpy.ops max and average pooling against the direct NumPy references of reference_conv.py:
forward and backward, ties, NaN, 'same' padding, finite differences, bad input, any input strides,
and the C argument setup (_core.pool2d_setup). Tolerances: the floating-point bound of
conv_checks.py."""

import itertools

import numpy as np
import pytest
import reference_conv as ref
from conv_checks import X32, assert_within, from_format, layout, tf_same, to_format
from reference_layers import numeric_gradient

import bnpy
import bnpy.ops as ops

# ---- pooling against the reference -------------------------------------------------------------------

POOL_CASES = list(
    itertools.product(
        [(2, 2), (3, 3), (2, 3), (1, 1)],
        [None, 1, 2, 3],
        ["valid", "same"],
        ["channels_last", "channels_first"],
    )
)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool, stride, padding, fmt", POOL_CASES)
def test_pooling_matches_reference(pool, stride, padding, fmt, dtype):
    rng = np.random.default_rng(hash((pool, stride, padding, fmt)) % 2**32)
    x = rng.standard_normal((2, 7, 6, 3)).astype(dtype)
    strides = pool if stride is None else (stride, stride)
    pads = ref.pads_for(padding, 7, 6, pool[0], pool[1], *strides)
    context = "pool={} strides={} padding={} {}".format(pool, stride, padding, fmt)

    y, ctx = ops.max_pool2d_forward(to_format(x, fmt), pool, stride, padding, fmt)
    want, argmax = ref.max_pool2d(x, pool, strides, pads)
    np.testing.assert_array_equal(from_format(y, fmt), want, err_msg=context)  # a max is exact
    dy = rng.standard_normal(want.shape).astype(dtype)
    dx = ops.max_pool2d_backward(to_format(dy, fmt), ctx)
    # overlapping windows (stride < pool) add several dy into one cell: at most ceil(k/s)^2 terms
    overlaps = -(-pool[0] // strides[0]) * -(-pool[1] // strides[1])
    assert_within(
        "max_pool2d_backward",
        from_format(dx, fmt),
        ref.max_pool2d_backward(dy, argmax, x.shape),
        ref.max_pool2d_backward(np.abs(dy), argmax, x.shape),
        overlaps,
        dtype,
        context,
    )

    y, ctx = ops.avg_pool2d_forward(to_format(x, fmt), pool, stride, padding, fmt)
    window = pool[0] * pool[1]
    want = ref.avg_pool2d(x, pool, strides, pads)
    assert_within(
        "avg_pool2d_forward",
        from_format(y, fmt),
        want,
        ref.avg_pool2d(np.abs(x), pool, strides, pads),
        window + 1,
        dtype,
        context,
    )
    dx = ops.avg_pool2d_backward(to_format(dy, fmt), ctx)
    assert_within(
        "avg_pool2d_backward",
        from_format(dx, fmt),
        ref.avg_pool2d_backward(dy, x.shape, pool, strides, pads),
        ref.avg_pool2d_backward(np.abs(dy), x.shape, pool, strides, pads),
        window + 1,
        dtype,
        context,
    )


def test_max_pool_ties_go_to_the_first_maximum():
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 1, 1, 1] = x[0, 0, 1, 1] = (
        5.0  # two maxima in window (0, 0) of channel 1: (0,1) comes first
    )
    y, ctx = ops.max_pool2d_forward(x)
    dx = ops.max_pool2d_backward(np.ones_like(y), ctx)
    # channel 0 is all ties: each window's gradient goes to its top-left cell
    np.testing.assert_array_equal(
        dx[0, :, :, 0], np.array([[1, 0, 1, 0], [0, 0, 0, 0]] * 2, np.float32)
    )
    assert dx[0, 0, 1, 1] == 1 and dx[0, 1, 1, 1] == 0 and dx[..., 1].sum() == 4


def test_max_pool_propagates_nan():
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    x[0, 2, 3, 0] = np.nan
    y, _ = ops.max_pool2d_forward(x)
    assert np.isnan(y[0, 1, 1, 0]) and np.isfinite(np.delete(y.ravel(), 3)).all()


def test_same_pooling_ignores_padding():
    x = -np.ones((1, 3, 3, 1), np.float32)  # all negative: a zero pad cell would win a max
    y, _ = ops.max_pool2d_forward(x, (2, 2), None, "same")
    assert y.shape == (1, 2, 2, 1) and (y == -1).all()
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    y, _ = ops.avg_pool2d_forward(x, (2, 2), None, "same")
    np.testing.assert_array_equal(
        y[0, :, :, 0], [[2, 3.5], [6.5, 8]]
    )  # border windows: real cells only


# ---- finite differences --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, padding, pool, stride, fmt",
    [
        ("max", "valid", (2, 2), None, "channels_last"),
        ("max", "same", (3, 3), 2, "channels_first"),
        ("avg", "valid", (2, 3), 1, "channels_first"),
        ("avg", "same", (3, 2), (2, 1), "channels_last"),
    ],
)
def test_pool_backward_finite_differences(kind, padding, pool, stride, fmt):
    # Average pooling is linear (exact differences). Max pooling is linear between ties; distinct
    # values at least 1e-3 apart (a shuffled grid) keep every window's winner fixed within ±1e-5.
    rng = np.random.default_rng(13)
    shape = to_format(np.empty((2, 5, 7, 3)), fmt).shape
    x = rng.permutation(np.arange(np.prod(shape)) * 1e-3).reshape(shape)
    forward = ops.max_pool2d_forward if kind == "max" else ops.avg_pool2d_forward
    backward = ops.max_pool2d_backward if kind == "max" else ops.avg_pool2d_backward
    y, ctx = forward(x, pool, stride, padding, fmt)
    g = rng.standard_normal(y.shape)
    dx = backward(g, ctx)
    numeric = numeric_gradient(
        lambda: float(np.sum(g * forward(x, pool, stride, padding, fmt)[0])), x, 1e-5
    )
    np.testing.assert_allclose(dx, numeric, rtol=0, atol=1e-8)


# ---- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_rejects_bad_arguments(kind):
    forward = getattr(ops, kind + "_pool2d_forward")
    backward = getattr(ops, kind + "_pool2d_backward")
    name = kind + "_pool2d_forward"
    cases = [
        (dict(x=X32.astype(np.float16)), TypeError, "x must be float32 or float64, got float16"),
        (dict(x=X32[0]), ValueError, "x must be a 4-D array"),
        (dict(pool_size=(0, 2)), ValueError, "pool_size must be >= 1"),
        (dict(strides=(2, -1)), ValueError, "strides must be >= 1"),
        (dict(padding=((0, 0), (0, 0))), ValueError, "padding must be 'valid' or 'same'"),
        (dict(data_format="th"), ValueError, "data_format"),
        (dict(pool_size=(6, 2)), ValueError, "pool_size (6, 2) is larger than the padded input"),
    ]
    for kwargs, exc, message in cases:
        args = dict(
            x=X32, pool_size=(2, 2), strides=None, padding="valid", data_format="channels_last"
        )
        args.update(kwargs)
        with pytest.raises(
            exc, match=name + ": " + message.replace("(", r"\(").replace(")", r"\)")
        ):
            forward(**args)
    y, ctx = forward(X32)
    with pytest.raises(
        ValueError, match=kind + "_pool2d_backward: dy must have the forward output's shape"
    ):
        backward(np.zeros((2, 3, 3, 3), np.float32), ctx)
    other = "avg" if kind == "max" else "max"
    with pytest.raises(TypeError, match=kind + "_pool2d_backward: ctx"):
        backward(y, getattr(ops, other + "_pool2d_forward")(X32)[1])


@pytest.mark.parametrize("kind", ["F", "sliced", "reversed"])
@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_pooling_any_input_strides(kind, fmt):
    rng = np.random.default_rng(23)
    x = to_format(rng.standard_normal((3, 7, 8, 4)), fmt)
    for forward, backward in [
        (ops.max_pool2d_forward, ops.max_pool2d_backward),
        (ops.avg_pool2d_forward, ops.avg_pool2d_backward),
    ]:
        y0, ctx0 = forward(np.ascontiguousarray(x), 3, 2, "same", fmt)
        dy = rng.standard_normal(y0.shape)
        y1, ctx1 = forward(layout(x, kind), 3, 2, "same", fmt)
        np.testing.assert_array_equal(y1, y0)
        np.testing.assert_array_equal(backward(layout(dy, kind), ctx1), backward(dy, ctx0))


def test_pool2d_setup_resolves_the_keras_arguments_in_c():
    """Pooling's arguments are checked and resolved once, by _core.pool2d_setup: pool_size and
    strides as an int or a pair (strides None: pool_size), 'same' padding by TF's rule, errors
    naming the caller, and a huge view refused before it is copied."""
    x = np.zeros((2, 7, 5, 3), np.float32)
    for pool, strides in [(2, None), ((3, 2), 1), (np.array([2, 3]), (3, 2))]:
        ph, pw = np.broadcast_to(pool, 2)
        sh, sw = (ph, pw) if strides is None else np.broadcast_to(strides, 2)
        xs, geometry = bnpy._core.pool2d_setup("caller", x, pool, strides, "Same", False)
        _, top, bottom = tf_same(7, ph, sh)
        _, left, right = tf_same(5, pw, sw)
        assert xs is x and geometry == (ph, pw, sh, sw, top, bottom, left, right)
    huge = np.lib.stride_tricks.as_strided(
        np.zeros(1, np.float32), shape=(2**14, 2**14, 2**14, 2**14), strides=(0, 0, 0, 0)
    )
    cases = [
        (dict(padding=((0, 0), (0, 0))), ValueError, "caller: padding must be 'valid' or 'same'"),
        (dict(pool_size=(0, 2)), ValueError, r"caller: pool_size must be >= 1, got \(0, 2\)"),
        (dict(strides=(1, 2, 3)), TypeError, "caller: strides must be an int or a pair of ints"),
        (dict(x=huge, padding="full"), ValueError, "caller: padding must be"),
        (dict(x=x[0]), ValueError, "caller: x must be a 4-D array"),
    ]
    for change, exc, message in cases:
        args = dict(caller="caller", x=x, pool_size=2, strides=None, padding="valid")
        args.update(channels_first=False)
        args.update(change)
        with pytest.raises(exc, match=message):
            bnpy._core.pool2d_setup(*args.values())
