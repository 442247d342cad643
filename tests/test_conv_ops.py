"""bnpy.ops convolution against the direct NumPy references of reference_conv.py: forward and
backward, dilation, any input strides, finite differences, thread counts, bad input, and the C
argument setup (_core.conv2d_setup). Tolerances: the floating-point bound of conv_checks.py."""

import itertools

import numpy as np
import pytest
import reference_conv as ref
from conv_checks import K32, X32, assert_within, from_format, layout, tf_same, to_format
from reference_layers import numeric_gradient

import bnpy
import bnpy.ops as ops

# ---- convolution: forward and backward against the reference ----------------------------------------

# (N, H, W, Cin, kh, kw, Cout): odd sizes, 1x1, rectangular, an 11x11 kernel, a batch of 1.
CONV_SHAPES = [
    (2, 7, 9, 3, 3, 3, 4),
    (1, 5, 5, 1, 1, 1, 2),
    (3, 6, 5, 2, 2, 3, 5),
    (2, 13, 12, 3, 11, 11, 6),
    (2, 4, 4, 5, 1, 1, 3),
    # Cout % 8 == 0 and few input channels: the direct AVX2 kernel in float32 channels-last
    # (24-channel blocks and an 8-channel tail, 4-pixel blocks and 1-pixel tails)
    (2, 9, 11, 3, 5, 5, 32),
    (2, 13, 12, 3, 11, 11, 24),
    (1, 6, 7, 1, 3, 3, 8),
    (2, 7, 9, 2, 2, 3, 40),
    (2, 5, 6, 16, 1, 1, 24),  # pointwise, Cin % 8 == 0: dx through the direct kernel too
    (1, 4, 5, 20, 1, 1, 8),  # pointwise with many input channels
    (1, 5, 5, 20, 3, 3, 8),  # many input channels, 3x3: im2col + matmul even in float32
]
PADDINGS = ["valid", "same", ((1, 2), (0, 3))]


def conv_cases():
    for shape, padding, stride, fmt in itertools.product(
        CONV_SHAPES, PADDINGS, [1, 2, 3], ["channels_last", "channels_first"]
    ):
        n, h, w, cin, kh, kw, cout = shape
        if padding == "valid" and (kh > h or kw > w):
            continue
        yield shape, padding, stride, fmt


def conv_cases_with_paths():
    """Every case with im2col + matmul; float32 channels-last cases also with the direct kernel."""
    for case in conv_cases():
        for dtype in (np.float32, np.float64):
            yield case + (dtype, "im2col")
            if dtype == np.float32 and case[3] == "channels_last":
                yield case + (dtype, "direct")


def _conv2d_matches_reference(
    rng, x, kernel, bias, strides, padding, fmt, context, dilation=(1, 1)
):
    """ops.conv2d_forward of the NHWC arrays (given to it in ``fmt``) and conv2d_backward's dx and
    dkernel for a random dy, against the reference within the floating-point bound, in x's dtype;
    the inference-only conv2d equal to the forward bit for bit. Returns (ctx, dbias, the
    reference's dbias, its bound, the number of terms it sums) for the caller's own dbias check."""
    dtype = x.dtype.type
    n, h, w, cin = x.shape
    kh, kw, _, cout = kernel.shape
    ekh, ekw = (kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1  # the dilated window
    pads = ref.pads_for(padding, h, w, ekh, ekw, *strides)
    y, ctx = ops.conv2d_forward(
        to_format(x, fmt), kernel, bias, strides, padding, fmt, dilation_rate=dilation
    )
    assert y.dtype == dtype
    want = ref.conv2d(x, kernel, bias, strides, pads, dilation)
    bound = ref.conv2d(np.abs(x), np.abs(kernel), np.abs(bias), strides, pads, dilation)
    assert_within("conv2d_forward", from_format(y, fmt), want, bound, kh * kw * cin, dtype, context)
    y_inference = ops.conv2d(
        to_format(x, fmt), kernel, bias, strides, padding, fmt, dilation_rate=dilation
    )
    np.testing.assert_array_equal(y_inference, y)

    dy = rng.standard_normal(want.shape).astype(dtype)
    dx, dkernel, dbias = ops.conv2d_backward(to_format(dy, fmt), ctx)
    want_dx, want_dk, want_db = ref.conv2d_backward(dy, x, kernel, strides, pads, dilation)
    bound_dx, bound_dk, bound_db = ref.conv2d_backward(
        np.abs(dy), np.abs(x), np.abs(kernel), strides, pads, dilation
    )
    rows = dy.shape[0] * dy.shape[1] * dy.shape[2]
    assert_within(
        "conv2d_backward dx",
        from_format(dx, fmt),
        want_dx,
        bound_dx,
        cout + kh * kw,
        dtype,
        context,
    )
    assert_within("conv2d_backward dkernel", dkernel, want_dk, bound_dk, rows, dtype, context)
    assert dx.dtype == dkernel.dtype == dtype
    return ctx, dbias, want_db, bound_db, rows


@pytest.mark.parametrize("shape, padding, stride, fmt, dtype, path", list(conv_cases_with_paths()))
def test_conv2d_matches_reference(shape, padding, stride, fmt, dtype, path, monkeypatch):
    from bnpy.ops import conv as conv_module

    if path == "direct" and not bnpy._core.conv_direct_available():
        pytest.skip("this CPU has no AVX2/FMA: the direct kernel never runs")
    monkeypatch.setattr(conv_module, "_USE_DIRECT", path == "direct")
    n, h, w, cin, kh, kw, cout = shape
    rng = np.random.default_rng(hash((shape, str(padding), stride, fmt)) % 2**32)
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, cin, cout)).astype(dtype)
    bias = rng.standard_normal(cout).astype(dtype)
    strides = (stride, 1 if stride == 3 else stride)  # also a non-square stride
    context = "shape={} padding={} strides={} {} {}".format(shape, padding, strides, fmt, path)

    ctx, dbias, want_db, bound_db, rows = _conv2d_matches_reference(
        rng, x, kernel, bias, strides, padding, fmt, context
    )
    direct_applies = (
        path == "direct" and cout % 8 == 0 and (kh * kw == 1 or cin <= conv_module._DIRECT_MAX_CIN)
    )
    assert (ctx.xpad is not None) == direct_applies, context  # the path under test really ran
    assert_within("conv2d_backward dbias", dbias, want_db, bound_db, rows, dtype, context)
    assert dbias.dtype == dtype


# (N, H, W, Cin, kh, kw, Cout) x dilation: the taps spread apart (Keras's dilation_rate), a 1x1
# kernel (dilation has nothing to spread: the pointwise and direct paths still apply), Cout % 8 == 0
# with few input channels (the direct kernel's case, which dilation must send to im2col).
DILATED_CASES = [
    ((2, 9, 10, 3, 3, 3, 4), (2, 2)),
    ((1, 8, 11, 2, 2, 3, 5), (3, 2)),
    ((2, 7, 9, 3, 3, 2, 16), (1, 3)),
    ((2, 5, 6, 8, 1, 1, 8), (2, 2)),
    ((1, 12, 12, 1, 4, 4, 2), (3, 3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape, dilation", DILATED_CASES)
def test_dilated_conv2d_matches_reference(shape, dilation, padding, fmt, dtype):
    n, h, w, cin, kh, kw, cout = shape
    rng = np.random.default_rng(hash((shape, dilation, str(padding), fmt)) % 2**32)
    x = rng.standard_normal((n, h, w, cin)).astype(dtype)
    kernel = rng.standard_normal((kh, kw, cin, cout)).astype(dtype)
    bias = rng.standard_normal(cout).astype(dtype)
    for strides in [(1, 1), (2, 1)]:
        context = "shape={} dilation={} padding={} strides={} {}".format(
            shape, dilation, padding, strides, fmt
        )
        _, dbias, want_db, _, _ = _conv2d_matches_reference(
            rng, x, kernel, bias, strides, padding, fmt, context, dilation
        )
        np.testing.assert_allclose(dbias, want_db, rtol=1e-5)


def test_dilated_conv2d_geometry_errors():
    x = np.zeros((1, 6, 6, 2), np.float32)
    kernel = np.zeros((3, 3, 2, 4), np.float32)
    with pytest.raises(
        ValueError, match=r"dilated kernel size \(7, 7\) is larger than the padded input \(6, 6\)"
    ):
        ops.conv2d_forward(x, kernel, dilation_rate=3)
    with pytest.raises(ValueError, match="dilation_rate must be >= 1"):
        ops.conv2d(x, kernel, dilation_rate=(0, 1))
    with pytest.raises(TypeError, match="dilation_rate must be an int or a pair of ints"):
        ops.conv2d(x, kernel, dilation_rate=1.5)
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        bnpy._core.im2col(x, 3, 3, 1, 1, 0, 0, 0, 0, False, None, 0)
    with pytest.raises(ValueError, match=r"im2col: dilated kernel size \(5, 3\) is larger"):
        bnpy._core.im2col(x[:, :4], 3, 3, 1, 1, 0, 0, 0, 0, False, None, 2)
    with pytest.raises(ValueError, match="below 2\\*\\*60"):
        bnpy._core.col2im(
            np.zeros((1, 18)), (1, 6, 6, 2), 3, 3, 1, 1, 0, 0, 0, 0, False, None, 1, 2**62
        )
    # 'same' keeps ceil(n / s) whatever the dilation
    assert ops.conv2d(x, kernel, padding="same", dilation_rate=3).shape == (1, 6, 6, 4)


@pytest.mark.parametrize("kind", ["F", "sliced", "reversed"])
@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_conv2d_any_input_strides(kind, fmt):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 8, 7, 4)).astype(np.float32)
    kernel = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    dy_shape = ops.conv2d(to_format(x, fmt), kernel, bias, 2, "same", fmt).shape
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    y0, ctx0 = ops.conv2d_forward(
        np.ascontiguousarray(to_format(x, fmt)), kernel, bias, 2, "same", fmt
    )
    grads0 = ops.conv2d_backward(dy, ctx0)
    xs = layout(to_format(x, fmt), kind)
    y1, ctx1 = ops.conv2d_forward(
        xs, layout(kernel, kind), layout(bias[None, None, :], kind)[0, 0], 2, "same", fmt
    )
    grads1 = ops.conv2d_backward(layout(dy, kind), ctx1)
    np.testing.assert_array_equal(y1, y0)  # same values in, same arithmetic: identical results
    for a, b in zip(grads1, grads0):
        np.testing.assert_array_equal(a, b)


def test_conv2d_without_bias_and_need_dx_false():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 6, 3))
    kernel = rng.standard_normal((3, 3, 3, 4))
    y, ctx = ops.conv2d_forward(x, kernel, None, 1, "same")
    np.testing.assert_allclose(
        y, ref.conv2d(x, kernel, None, (1, 1), ((1, 1), (1, 1))), rtol=0, atol=1e-12
    )
    dy = rng.standard_normal(y.shape)
    dx, dkernel, dbias = ops.conv2d_backward(dy, ctx, need_dx=False)
    assert dx is None and dbias is None
    np.testing.assert_allclose(
        dkernel, ref.conv2d_backward(dy, x, kernel, (1, 1), ((1, 1), (1, 1)))[1], rtol=0, atol=1e-12
    )


def test_conv2d_inference_chunks_large_batches(monkeypatch):
    """conv2d works through a batch in chunks; the result is the same as in one piece."""
    from bnpy.ops import conv as conv_module

    rng = np.random.default_rng(5)
    x = rng.standard_normal((7, 6, 5, 2)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    for fmt in ["channels_last", "channels_first"]:
        whole = ops.conv2d(to_format(x, fmt), kernel, bias, 1, "same", fmt)
        monkeypatch.setattr(conv_module, "_INFERENCE_COL_BYTES", 2 * 6 * 5 * 9 * 2 * 4)  # 2 images
        chunked = ops.conv2d(to_format(x, fmt), kernel, bias, 1, "same", fmt)
        monkeypatch.undo()
        np.testing.assert_array_equal(chunked, whole)


def test_same_output_sizes_follow_tensorflow():
    x = np.zeros((1, 10, 7, 1), np.float32)
    for k, s in [(3, 1), (3, 2), (4, 3), (11, 1), (11, 4)]:
        y = ops.conv2d(x, np.zeros((k, k, 1, 1), np.float32), None, s, "same")
        assert y.shape[1:3] == (-(-10 // s), -(-7 // s)), (k, s)
        if k <= 7:
            y = ops.conv2d(x, np.zeros((k, k, 1, 1), np.float32), None, s, "valid")
            assert y.shape[1:3] == (-(-(10 - k + 1) // s), -(-(7 - k + 1) // s)), (k, s)


# ---- finite differences --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "padding, stride, fmt",
    [
        ("same", 1, "channels_last"),
        ("valid", 2, "channels_first"),
        ("same", 3, "channels_first"),
        (((2, 0), (1, 1)), 2, "channels_last"),
    ],
)
def test_conv2d_backward_finite_differences(padding, stride, fmt):
    # The loss sum(g * y) is linear in each of x, K, b, so central differences are exact up to
    # rounding: error ~ u * |loss| / step ≈ 1e-16 * 10 / 1e-3 = 1e-12; 1e-8 leaves ample margin.
    rng = np.random.default_rng(11)
    x = rng.standard_normal(to_format(np.empty((2, 6, 5, 3)), fmt).shape)
    kernel = rng.standard_normal((3, 2, 3, 4))
    bias = rng.standard_normal(4)
    y, ctx = ops.conv2d_forward(x, kernel, bias, stride, padding, fmt)
    g = rng.standard_normal(y.shape)
    dx, dkernel, dbias = ops.conv2d_backward(g, ctx)

    def loss():
        return float(np.sum(g * ops.conv2d(x, kernel, bias, stride, padding, fmt)))

    for name, analytic, param in [
        ("dx", dx, x),
        ("dkernel", dkernel, kernel),
        ("dbias", dbias, bias),
    ]:
        np.testing.assert_allclose(
            analytic, numeric_gradient(loss, param, 1e-3), rtol=0, atol=1e-8, err_msg=name
        )


# ---- thread count, inputs untouched -------------------------------------------------------------------


@pytest.mark.parametrize("direct", [True, False])
def test_results_do_not_depend_on_thread_count(direct, monkeypatch):
    # Sizes above the kernels' 64K-value threshold for going parallel, in both data formats.
    from bnpy.ops import conv as conv_module

    monkeypatch.setattr(conv_module, "_USE_DIRECT", direct and bnpy._core.conv_direct_available())
    rng = np.random.default_rng(17)
    x = rng.standard_normal((16, 24, 24, 3)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 3, 16)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    before = bnpy.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            bnpy.set_num_threads(threads)
            out = []
            for fmt in ("channels_last", "channels_first"):
                y, ctx = ops.conv2d_forward(to_format(x, fmt), kernel, bias, 1, "same", fmt)
                out.extend(ops.conv2d_backward(np.ones_like(y) + y, ctx))
                p, pctx = ops.max_pool2d_forward(y, 3, 2, "same", fmt)
                a, actx = ops.avg_pool2d_forward(y, 3, 2, "same", fmt)
                out += [y, p, ops.max_pool2d_backward(p, pctx), a, ops.avg_pool2d_backward(a, actx)]
            results.append(out)
    finally:
        bnpy.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            # the im2col path's kernel gradient is a BLAS product, whose sums follow its threads:
            # the same to a few float32 ulps of the largest value
            np.testing.assert_allclose(a, b, rtol=0, atol=4 * 2.0**-24 * np.abs(a).max())
        for i in (2, 10):  # dbias of each format: blocks by size alone, bitwise the same
            np.testing.assert_array_equal(results[0][i], other[i])


def test_bias_gradient_is_bitwise_the_same_for_any_thread_count():
    """float64, where partial sums cut at other places differ in their last bits (they did when
    the row blocks were one per thread): the blocks follow from the sizes alone."""
    dy = np.random.default_rng(23).standard_normal((16, 24, 24, 16))  # 147K values: parallel
    before = bnpy.get_num_threads()
    sums = []
    try:
        for threads in (1, 2, 3):
            bnpy.set_num_threads(threads)
            sums.append(bnpy._core.conv_output_backward(dy, True, False)[1])
    finally:
        bnpy.set_num_threads(before)
    for other in sums[1:]:
        np.testing.assert_array_equal(sums[0], other)
    np.testing.assert_allclose(sums[0], dy.sum(axis=(0, 1, 2)), rtol=1e-13)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(19)
    x = rng.standard_normal((2, 6, 6, 3))
    kernel = rng.standard_normal((3, 3, 3, 2))
    bias = rng.standard_normal(2)
    copies = [a.copy() for a in (x, kernel, bias)]
    y, ctx = ops.conv2d_forward(x, kernel, bias, 1, "same")
    dy = rng.standard_normal(y.shape)
    dy_copy = dy.copy()
    ops.conv2d_backward(dy, ctx)
    p, pctx = ops.max_pool2d_forward(x)
    ops.max_pool2d_backward(p, pctx)
    for a, b in zip((x, kernel, bias, dy), copies + [dy_copy]):
        np.testing.assert_array_equal(a, b)


# ---- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(x=X32.astype(np.int32)), TypeError, ["conv2d_forward", "x", "int32"]),
        (dict(kernel=K32.astype(np.float64)), TypeError, ["conv2d_forward", "kernel", "float32"]),
        (dict(x=X32[0]), ValueError, ["conv2d_forward", "x", "4-D"]),
        (dict(kernel=K32[0]), ValueError, ["conv2d_forward", "kernel", "4-D"]),
        (
            dict(kernel=np.zeros((3, 3, 2, 4), np.float32)),
            ValueError,
            ["conv2d_forward", "kernel", "channels"],
        ),
        (dict(bias=np.zeros(3, np.float32)), ValueError, ["conv2d_forward", "bias", "(4,)"]),
        (dict(bias=np.zeros(4, np.float64)), TypeError, ["conv2d_forward", "bias"]),
        (dict(strides=0), ValueError, ["conv2d_forward", "strides", ">= 1"]),
        (dict(strides=(1, 1.5)), TypeError, ["conv2d_forward", "strides"]),
        (dict(padding="full"), ValueError, ["conv2d_forward", "padding", "'full'"]),
        (dict(padding=((1, -1), (0, 0))), ValueError, ["conv2d_forward", "padding"]),
        (dict(data_format="tf"), ValueError, ["conv2d_forward", "data_format", "'tf'"]),
        (
            dict(kernel=np.zeros((7, 3, 3, 4), np.float32)),
            ValueError,
            ["conv2d_forward", "larger than the padded input"],
        ),
    ],
)
def test_conv2d_forward_rejects_bad_arguments(kwargs, exc, words):
    args = dict(
        x=X32, kernel=K32, bias=None, strides=(1, 1), padding="valid", data_format="channels_last"
    )
    args.update(kwargs)
    with pytest.raises(exc) as info:
        ops.conv2d_forward(**args)
    for word in words:
        assert word in str(info.value), (word, str(info.value))
    with pytest.raises(exc, match="^conv2d:"):
        ops.conv2d(**args)


def test_conv2d_backward_rejects_bad_arguments():
    y, ctx = ops.conv2d_forward(X32, K32)
    with pytest.raises(
        ValueError, match="conv2d_backward: dy must have the forward output's shape"
    ):
        ops.conv2d_backward(np.zeros((2, 4, 4, 4), np.float32), ctx)
    with pytest.raises(TypeError, match="conv2d_backward: dy must be float32"):
        ops.conv2d_backward(y.astype(np.float64), ctx)
    with pytest.raises(TypeError, match="conv2d_backward: ctx"):
        ops.conv2d_backward(y, None)
    _, pool_ctx = ops.max_pool2d_forward(X32)
    with pytest.raises(TypeError, match="conv2d_backward: ctx"):
        ops.conv2d_backward(y, pool_ctx)


def test_core_rejects_inconsistent_arguments_without_writing():
    """The C entry points validate on their own (they are callable directly) and write nothing."""
    core = bnpy._core
    x = np.ones((1, 4, 4, 2), np.float32)
    out = np.full((9, 7), 7.0, np.float32)
    with pytest.raises(ValueError, match=r"im2col: out must have shape \[9, 8\]"):
        core.im2col(x, 2, 2, 1, 1, 0, 0, 0, 0, False, out)  # 3x3 windows of 2x2x2 values
    np.testing.assert_array_equal(out, 7.0)
    with pytest.raises(TypeError, match="im2col: out must be float32"):
        core.im2col(x, 2, 2, 1, 1, 0, 0, 0, 0, False, np.zeros((9, 8)))
    with pytest.raises(ValueError, match="im2col: kernel size"):
        core.im2col(x, 6, 2, 1, 1, 0, 0, 0, 0, False)
    with pytest.raises(ValueError, match="im2col: strides"):
        core.im2col(x, 2, 2, 0, 1, 0, 0, 0, 0, False)
    with pytest.raises(ValueError, match="col2im: dcol must have shape"):
        core.col2im(np.zeros((9, 7), np.float32), (1, 4, 4, 2), 2, 2, 1, 1, 0, 0, 0, 0, False)
    window = (2, 2, 2, 2, 0, 0, 0, 0)
    y, argmax = core.pool2d(x, True, *window, False)
    bad = argmax.copy()
    bad[0, 0, 0, 0] = 16
    with pytest.raises(ValueError, match="pool2d_backward: argmax holds 16"):
        core.pool2d_backward(y, bad, x.shape, *window, False)
    with pytest.raises(TypeError, match="pool2d_backward: argmax must be the int32"):
        core.pool2d_backward(y, argmax.astype(np.int64), x.shape, *window, False)
    with pytest.raises(ValueError, match=r"pool2d_backward: argmax must have shape \[1, 2, 2, 2\]"):
        core.pool2d_backward(y, argmax[:, :1], x.shape, *window, False)
    with pytest.raises(ValueError, match=r"pool2d_backward: dy must have shape \[1, 2, 2, 2\]"):
        core.pool2d_backward(y[:, :1], None, x.shape, *window, False)
    with pytest.raises(ValueError, match="pool2d: padding"):
        core.pool2d(x, True, 2, 2, 2, 2, 2, 0, 0, 0, False)
    with pytest.raises(ValueError, match="conv_output: bias must have shape"):
        core.conv_output(out, np.zeros(3, np.float32), 1, False)
    with pytest.raises(ValueError, match="conv_output: y must be writeable"):
        ro = out.copy()
        ro.flags.writeable = False
        core.conv_output(ro, np.zeros(7, np.float32), 1, False)
    with pytest.raises(ValueError, match="conv_output: y must not overlap bias"):
        core.conv_output(out, out[0], 1, False)
    for images in (2, 0, -1):  # 9 rows: not 2 images of equal size, nor 0 images
        with pytest.raises(ValueError, match="conv_output: y's 9 rows are not"):
            core.conv_output(out, None, images, True)
    np.testing.assert_array_equal(out, 7.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_output_stage_matches_numpy(dtype, with_bias):
    """conv_output: the (N·P, Cout) product in the data format with the bias added (in place for
    channels-last, transposed per image for channels-first); conv_output_backward: dy, (N, H, W,
    Cout) or (N, Cout, H, W), back as those rows, and the bias gradient."""
    rng = np.random.default_rng(31)
    images = rng.standard_normal((3, 4, 5, 6)).astype(dtype)  # (N, H, W, Cout)
    product = images.reshape(60, 6)
    bias = rng.standard_normal(6).astype(dtype) if with_bias else None
    expected = images + (0 if bias is None else bias)
    cl = product.copy()
    assert bnpy._core.conv_output(cl, bias, 3, False) is cl
    np.testing.assert_array_equal(cl, expected.reshape(60, 6))
    cf = bnpy._core.conv_output(product, bias, 3, True)
    np.testing.assert_array_equal(cf, expected.transpose(0, 3, 1, 2).reshape(3, 6, 20))

    # the gradient: sums in double, rounded once (the tolerance of one rounding of the sum)
    exact_sum = product.astype(np.float64).sum(axis=0)
    for given, channels_first in [(images, False), (images.transpose(0, 3, 1, 2), True)]:
        rows, dbias = bnpy._core.conv_output_backward(given, with_bias, channels_first)
        assert rows.flags.c_contiguous and rows.shape == product.shape
        np.testing.assert_array_equal(rows, product)
        if with_bias:
            np.testing.assert_allclose(dbias, exact_sum, rtol=np.finfo(dtype).eps, atol=0)
        else:
            assert dbias is None


def test_reference_counts_are_stable():
    """No call leaks a reference to its inputs, on success or on error."""
    import sys

    rng = np.random.default_rng(29)
    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    kernel = rng.standard_normal((3, 3, 3, 8)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    arrays = (x, kernel, bias)
    before = [sys.getrefcount(a) for a in arrays]
    for _ in range(200):
        for channels_first in (False, True):
            fmt = "channels_first" if channels_first else "channels_last"
            y, ctx = ops.conv2d_forward(to_format(x, fmt), kernel, bias, 1, "same", fmt)
            ops.conv2d_backward(y, ctx)
            del ctx
            p, pctx = ops.max_pool2d_forward(to_format(x, fmt), 2, None, "same", fmt)
            ops.max_pool2d_backward(p, pctx)
            del pctx
        with pytest.raises(ValueError):
            bnpy._core.im2col(x, 9, 9, 1, 1, 0, 0, 0, 0, False)
        with pytest.raises(ValueError):
            bnpy._core.conv2d_direct(
                x, kernel[..., :5], bias, 1, 1, 0, 0, 0, 0
            ) if bnpy._core.conv_direct_available() else bnpy._core.im2col(
                x, 9, 9, 1, 1, 0, 0, 0, 0, False
            )
        with pytest.raises(ValueError):
            bnpy._core.conv_output(x.reshape(-1, 3), bias, 2, False)
    assert [sys.getrefcount(a) for a in arrays] == before


@pytest.mark.skipif(not bnpy._core.conv_direct_available(), reason="this CPU has no AVX2/FMA")
def test_direct_kernel_gradient_is_identical_for_any_thread_count():
    """The direct kernel gradient adds the images' sums in image order, whatever thread did them."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((9, 16, 16, 3)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 3, 24)).astype(np.float32)
    y, ctx = ops.conv2d_forward(x, kernel, None, 1, "same")
    assert ctx.xpad is not None
    dy = rng.standard_normal(y.shape).astype(np.float32)
    before = bnpy.get_num_threads()
    try:
        grads = []
        for threads in (1, 2, 3):
            bnpy.set_num_threads(threads)
            grads.append(ops.conv2d_backward(dy, ctx, need_dx=False)[1])
    finally:
        bnpy.set_num_threads(before)
    for other in grads[1:]:
        np.testing.assert_array_equal(other, grads[0])


def test_conv2d_setup_resolves_the_keras_arguments_in_c():
    """The convolutions' arguments are checked and resolved once, by _core.conv2d_setup: strides
    and dilation as an int or a pair, 'same' padding (TF's rule over the dilated extent) and a
    1-wide kernel axis's dilation, with errors that name the caller."""
    x = np.zeros((2, 7, 5, 3), np.float32)
    kernel = np.zeros((3, 1, 3, 8), np.float32)
    for strides, dilation in [(1, 1), (2, 1), ((3, 2), (2, 3)), (np.array([2, 3]), 2)]:
        sh, sw = np.broadcast_to(strides, 2)
        dh, _ = np.broadcast_to(dilation, 2)
        xs, ks, bias, geometry, dil, out_hw = bnpy._core.conv2d_setup(
            "caller", x, kernel, None, strides, "SAME", dilation, False
        )
        assert xs is x and ks is kernel and bias is None
        assert dil == (dh, 1)  # a 1-wide kernel axis has no taps to spread
        out_h, top, bottom = tf_same(7, (3 - 1) * dh + 1, sh)
        out_w, left, right = tf_same(5, 1, sw)
        assert geometry == (3, 1, sh, sw, top, bottom, left, right)
        assert out_hw == (out_h, out_w)
    for padding in [((1, 0), (2, 2)), [[1, 0], [2, 2]], np.array([[1, 0], [2, 2]])]:
        geometry = bnpy._core.conv2d_setup("caller", x, kernel, None, 1, padding, 1, False)[3]
        assert geometry[4:] == (1, 0, 2, 2)
    cases = [
        (dict(padding=(1, 2)), ValueError, "caller: padding must be 'valid', 'same' or"),
        (dict(padding=((0, 2**70), (0, 0))), ValueError, "caller: padding is too large"),
        (dict(padding=((0, 1), (0, "a"))), ValueError, "caller: padding must be"),
        (dict(strides=(1, 2, 3)), TypeError, "caller: strides must be an int or a pair of ints"),
        (dict(strides=True), TypeError, "caller: strides must be an int or a pair of ints"),
        (dict(dilation=(1, 0)), ValueError, r"caller: dilation_rate must be >= 1, got \(1, 0\)"),
        (dict(kernel=kernel[:, :, :2]), ValueError, "caller: kernel .* expects 2 input channels"),
        (dict(kernel=np.zeros((3, 1, 3, 0), np.float32)), ValueError, "non-empty shape"),
        (dict(caller=None), TypeError, "conv2d_setup: caller must be a str"),
    ]
    for change, exc, message in cases:
        args = dict(caller="caller", x=x, kernel=kernel, bias=None, strides=1, padding="valid")
        args.update(dilation=1, channels_first=False)
        args.update(change)
        with pytest.raises(exc, match=message):
            bnpy._core.conv2d_setup(*args.values())


def test_conv2d_checks_a_huge_view_before_copying_it():
    """A zero-stride view of 2**56 values with a kernel of the wrong channel count: the argument
    error, not an attempt to copy the view into a C-contiguous array (MemoryError, or an abort
    under AddressSanitizer)."""
    huge = np.lib.stride_tricks.as_strided(
        np.zeros(1, np.float32), shape=(2**14, 2**14, 2**14, 2**14), strides=(0, 0, 0, 0)
    )
    with pytest.raises(ValueError, match="conv2d: kernel .* expects 2 input channels"):
        ops.conv2d(huge, np.zeros((3, 3, 2, 8), np.float32))
    with pytest.raises(ValueError, match="conv2d_forward: bias must have shape"):
        ops.conv2d_forward(huge, np.zeros((3, 3, 2**14, 8), np.float32), huge[0, 0, 0])
