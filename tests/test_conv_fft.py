"""The FFT convolution path (bnpy/ops/_conv_fft.py, csrc/conv_fft.c) against the float64
shift-and-add reference of reference_conv.py, its dispatch, and its thread independence.

Tolerances. An FFT's rounding error is not that of a sum computed term by term: it is spread over
a whole plane, at about u log2(P_h P_w) times the scale of the plane's values (each transform
adds ~u log2 of its input's scale, the products a few u). So every array is checked against
max|error| <= 2 u log2(P_h P_w) max(sum|terms|) (u = 2**-24; sum|terms| is the same convolution
of |x|, |K|, |dy| by the reference; the errors measured on SHAPES reach at most 0.25 of that
bound, as FFT rounding grows more like sqrt(log2(P_h P_w)) on random data), and arrays whose
sums have at least 64 terms also against test_conv_ops.py's elementwise (K + 2) u sum|terms| (K
terms per sum), which the direct paths meet: with fewer terms (a 1x1 kernel, a dK over 12 pixels)
that bound is tighter than an FFT's rounding, and the dispatcher never sends such convolutions to
the FFT path. A wrong tap offset, a wrong conjugate or
a wrapped index gives errors of the size of the result, far above both.
"""

import zlib

import numpy as np
import pytest
import reference_conv as ref

import bnpy
import bnpy.ops as ops
from bnpy.ops import _conv_fft

U32 = 2.0**-24


@pytest.fixture
def forced_fft(monkeypatch):
    """The FFT path for every float32 channels-last stride-1 undilated convolution."""
    monkeypatch.setattr(_conv_fft, "MIN_TAPS", 1)
    monkeypatch.setattr(_conv_fft, "MIN_DIRECT_FLOPS", 0)
    monkeypatch.setattr(_conv_fft, "FFT_FLOP_COST", 0.0)


# Sums of fewer terms than this get the FFT bound only (see the module docstring).
ELEMENTWISE_MIN_TERMS = 64


def assert_fft_close(name, got, want, bound, terms, fft_sizes, context):
    """The FFT bound, max|error| <= 2 u log2(P_h P_w) max(sum|terms|), and, for sums of at least
    ELEMENTWISE_MIN_TERMS terms, test_conv_ops's (K + 2) u sum|terms| elementwise."""
    got = np.asarray(got, np.float64)
    assert got.shape == want.shape, "{} {}: shape {} != {}".format(
        name, context, got.shape, want.shape
    )
    err = np.abs(got - want)
    scale = float(2 * U32 * np.log2(fft_sizes[0] * fft_sizes[1]) * bound.max())
    assert err.max() <= scale, "{} {}: max error {:.3g} > {:.3g}".format(
        name, context, err.max(), scale
    )
    if terms >= ELEMENTWISE_MIN_TERMS:
        worst = float(np.max(err / ((terms + 2) * U32 * bound + 1e-300)))
        assert worst <= 1.0, "{} {}: max error {:.3g}, {:.3g}x the elementwise bound".format(
            name, context, err.max(), worst
        )


# (N, H, W, Cin, kh, kw, Cout, padding): odd and even kernels, rectangular ones, 'same' with the
# extra row/column at the bottom/right (even kernels), 'valid', explicit asymmetric pads, kernels
# as large as the padded input, Cin and Cout below, at and above the 8 lanes of a block (tails),
# FFT sizes with factors 2, 3 and 5.
SHAPES = [
    (2, 32, 32, 3, 11, 11, 96, "same"),
    (3, 9, 7, 2, 5, 4, 6, "same"),
    (2, 12, 10, 3, 5, 3, 10, "valid"),
    (1, 6, 6, 1, 6, 6, 1, "valid"),
    (2, 8, 9, 9, 4, 5, 17, ((2, 1), (0, 3))),
    (1, 13, 11, 5, 7, 7, 8, "same"),
    (2, 5, 16, 4, 2, 6, 9, "same"),
    (1, 20, 14, 16, 3, 3, 24, "valid"),
    (2, 7, 7, 3, 1, 1, 5, "same"),
    (1, 3, 4, 2, 5, 5, 3, ((2, 2), (3, 1))),
]


@pytest.mark.parametrize("shape", SHAPES, ids=[str(s) for s in SHAPES])
def test_fft_path_matches_reference(shape, forced_fft):
    n, h, w, cin, kh, kw, cout, padding = shape
    rng = np.random.default_rng(zlib.crc32(str(shape).encode()))
    x = rng.standard_normal((n, h, w, cin)).astype(np.float32)
    kernel = rng.standard_normal((kh, kw, cin, cout)).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    x_before, k_before = x.copy(), kernel.copy()
    pads = ref.pads_for(padding, h, w, kh, kw, 1, 1)

    y, ctx = ops.conv2d_forward(x, kernel, bias, 1, padding)
    assert ctx.fft is not None and ctx.xpad is None and ctx.col is None  # the FFT path ran
    sizes = (ctx.fft.p_h, ctx.fft.p_w)
    context = "{} FFT {}".format(shape, sizes)
    want = ref.conv2d(x, kernel, bias, (1, 1), pads)
    bound = ref.conv2d(np.abs(x), np.abs(kernel), np.abs(bias), (1, 1), pads)
    assert y.dtype == np.float32
    assert_fft_close("forward", y, want, bound, kh * kw * cin, sizes, context)
    np.testing.assert_array_equal(ops.conv2d(x, kernel, bias, 1, padding), y)

    dy = rng.standard_normal(want.shape).astype(np.float32)
    dx, dkernel, dbias = ops.conv2d_backward(dy, ctx)
    want_dx, want_dk, want_db = ref.conv2d_backward(dy, x, kernel, (1, 1), pads)
    bound_dx, bound_dk, _ = ref.conv2d_backward(np.abs(dy), np.abs(x), np.abs(kernel), (1, 1), pads)
    assert_fft_close("dx", dx, want_dx, bound_dx, cout * kh * kw, sizes, context)
    assert_fft_close("dkernel", dkernel, want_dk, bound_dk, dy[..., 0].size, sizes, context)
    np.testing.assert_allclose(
        dbias, want_db, rtol=0, atol=1e-6 * np.abs(dy).sum(axis=(0, 1, 2)).max()
    )
    _, dkernel_only, _ = ops.conv2d_backward(dy, ctx, need_dx=False)
    np.testing.assert_array_equal(dkernel_only, dkernel)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(kernel, k_before)


def test_fft_sizes_make_the_circular_convolution_linear():
    # the smallest products of 2, 3, 5 above max(H + pad_top, out_h + kh - 1 - pad_top)
    assert _conv_fft.sizes(32, 32, 32, 32, 11, 11, 5, 5) == (40, 40)  # needs 37
    assert _conv_fft.sizes(32, 32, 22, 22, 11, 11, 0, 0) == (32, 32)  # 'valid' needs H
    assert _conv_fft.sizes(7, 9, 7, 9, 4, 5, 1, 2) == (9, 12)  # even kernel: needs 9, 11
    with pytest.raises(ValueError, match="fft_size: n must be in"):
        _conv_fft.fft_size(2**62 + 1)  # 5-smooth numbers are sparse there: refused, not searched
    assert [_conv_fft.fft_size(n) for n in (1, 7, 11, 13, 14, 17, 31, 49)] == [
        1,
        8,
        12,
        15,
        15,
        18,
        32,
        50,
    ]


def test_a_kernel_offset_by_one_tap_fails_the_check(forced_fft, monkeypatch):
    """The tolerance is tight enough to see a one-tap shift of the kernel's placement."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 12, 12, 3)).astype(np.float32)
    kernel = rng.standard_normal((5, 5, 3, 8)).astype(np.float32)
    real_spectrum = bnpy._core.fft_spectrum

    def shifted(a, p_h, p_w, shift_h, shift_w):
        return real_spectrum(a, p_h, p_w, shift_h + (1 if a.shape[1:3] == (5, 5) else 0), shift_w)

    monkeypatch.setattr(bnpy._core, "fft_spectrum", shifted)
    y, ctx = ops.conv2d_forward(x, kernel, None, 1, "same")
    want = ref.conv2d(x, kernel, np.zeros(8), (1, 1), ref.pads_for("same", 12, 12, 5, 5, 1, 1))
    bound = ref.conv2d(np.abs(x), np.abs(kernel), np.zeros(8), (1, 1), ((2, 2), (2, 2)))
    with pytest.raises(AssertionError, match="forward"):
        assert_fft_close("forward", y, want, bound, 75, (ctx.fft.p_h, ctx.fft.p_w), "shifted")


# ---- dispatch --------------------------------------------------------------------------------


def article_conv(rng, n=32, dtype=np.float32):
    x = rng.standard_normal((n, 32, 32, 3)).astype(dtype)
    kernel = (0.05 * rng.standard_normal((11, 11, 3, 96))).astype(dtype)
    return x, kernel, np.zeros(96, dtype)


def test_dispatch_takes_the_fft_path_for_the_article_conv():
    x, kernel, bias = article_conv(np.random.default_rng(0))
    y, ctx = ops.conv2d_forward(x, kernel, bias, 1, "same")
    assert ctx.fft is not None
    want = ops.conv2d_forward(x, kernel, bias, 1, "same")[0]
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize(
    "case",
    [
        "3x3 kernel",
        "stride 2",
        "dilation 2",
        "float64",
        "channels_first",
        "little work",
        "off",
        "huge padding",
    ],
)
def test_dispatch_keeps_the_direct_or_im2col_path(case, monkeypatch):
    """Small kernels, strides, dilation, float64, channels-first and tiny convolutions do not take
    the FFT path (strided and dilated ones cannot: the FFT computes stride-1 undilated sums), and
    the result is still the convolution."""
    rng = np.random.default_rng(1)
    dtype = np.float64 if case == "float64" else np.float32
    x, kernel, bias = article_conv(rng, n=4, dtype=dtype)
    if case == "little work":
        x = x[:1, :8, :8]
    if case == "3x3 kernel":
        kernel = kernel[:3, :3]
    if case == "off":
        monkeypatch.setattr(_conv_fft, "ENABLED", False)
    if case == "huge padding":  # FFT sizes beyond the glue's 1024: decided without searching one
        x = x[:1, :4, :4]
        padding = ((1100, 1100), (4, 4))
        y, ctx = ops.conv2d_forward(x, kernel, bias, 1, padding)
        assert ctx.fft is None and y.shape == (1, 2194, 2, 96)
        return
    strides = 2 if case == "stride 2" else 1
    dilation = 2 if case == "dilation 2" else 1
    fmt = "channels_first" if case == "channels_first" else "channels_last"
    xin = x.transpose(0, 3, 1, 2) if fmt == "channels_first" else x
    y, ctx = ops.conv2d_forward(xin, kernel, bias, strides, "same", fmt, dilation)
    assert ctx.fft is None
    if fmt == "channels_first":
        y = y.transpose(0, 2, 3, 1)
    kh, kw = kernel.shape[:2]
    ekh, ekw = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
    pads = ref.pads_for("same", x.shape[1], x.shape[2], ekh, ekw, strides, strides)
    want = ref.conv2d(x[:1], kernel, bias, (strides, strides), pads, (dilation, dilation))
    np.testing.assert_allclose(y[:1], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_dispatch_with_the_fft_path_off_for_the_article_conv(monkeypatch):
    x, kernel, bias = article_conv(np.random.default_rng(2), n=8)
    assert ops.conv2d_forward(x, kernel, bias, 1, "same")[1].fft is not None
    monkeypatch.setattr(_conv_fft, "ENABLED", False)
    assert ops.conv2d_forward(x, kernel, bias, 1, "same")[1].fft is None


# ---- threads ---------------------------------------------------------------------------------


def test_fft_results_do_not_depend_on_thread_count():
    rng = np.random.default_rng(3)
    x, kernel, bias = article_conv(rng, n=8)
    before = bnpy.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            bnpy.set_num_threads(threads)
            y, ctx = ops.conv2d_forward(x, kernel, bias, 1, "same")
            assert ctx.fft is not None
            dy = np.ones_like(y) + y
            results.append([y, *ops.conv2d_backward(dy, ctx)])
    finally:
        bnpy.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# ---- the C entry points check their arguments --------------------------------------------------


def test_core_functions_reject_inconsistent_arguments():
    core = bnpy._core
    a = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="fft_spectrum: P_h must be a product of 2s, 3s and 5s"):
        core.fft_spectrum(a, 7, 8, 0, 0)
    with pytest.raises(ValueError, match="fft_spectrum: a's planes .* do not fit"):
        core.fft_spectrum(a, 3, 8, 0, 0)
    with pytest.raises(ValueError, match="fft_spectrum: a must be a non-empty 4-D array"):
        core.fft_spectrum(a[0], 8, 8, 0, 0)
    with pytest.raises(TypeError, match="fft_spectrum: a must be float32"):
        core.fft_spectrum(a.astype(np.float64), 8, 8, 0, 0)
    xspec = core.fft_spectrum(np.zeros((1, 4, 4, 2 * 3), np.float32), 8, 8, 0, 0)  # N=2, Cin=3
    kspec = core.fft_spectrum(np.zeros((3, 3, 3, 5), np.float32), 8, 8, -1, -1)
    assert xspec.shape == (1, 1, 8, 5, 2, 8) and kspec.shape == (3, 1, 8, 5, 2, 8)
    y = core.conv2d_fft_forward(xspec, kspec, None, 2, 5, 4, 4, 8)
    assert y.shape == (2, 4, 4, 5) and not y.any()
    with pytest.raises(ValueError, match="conv2d_fft_forward: P_w 10 does not match"):
        core.conv2d_fft_forward(xspec, kspec, None, 2, 5, 4, 4, 10)
    with pytest.raises(ValueError, match="conv2d_fft_forward: xspec must be a spectrum"):
        core.conv2d_fft_forward(xspec, kspec, None, 3, 5, 4, 4, 8)  # 9 lanes: 2 blocks
    with pytest.raises(ValueError, match="conv2d_fft_forward: the output's planes"):
        core.conv2d_fft_forward(xspec, kspec, None, 2, 5, 9, 4, 8)
    with pytest.raises(ValueError, match=r"conv2d_fft_forward: bias must be \(5,\)"):
        core.conv2d_fft_forward(xspec, kspec, np.zeros(4, np.float32), 2, 5, 4, 4, 8)
    dy = np.zeros((2, 4, 4, 5), np.float32)
    with pytest.raises(ValueError, match="conv2d_fft_dkernel: the kernel's planes"):
        core.conv2d_fft_dkernel(dy, xspec, 3, 9, 3, 1, 1, 8)
    with pytest.raises(ValueError, match="conv2d_fft_dkernel: pad_top must be in"):
        core.conv2d_fft_dkernel(dy, xspec, 3, 3, 3, -1, 1, 8)
    ktspec = core.fft_spectrum(np.zeros((5, 3, 3, 3), np.float32), 8, 8, -1, -1)
    with pytest.raises(ValueError, match="conv2d_fft_dinput: ktspec must be a spectrum"):
        core.conv2d_fft_dinput(dy[..., :4], ktspec, 3, 4, 4, 8)
    with pytest.raises(ValueError, match="conv2d_fft_dinput: x's planes"):
        core.conv2d_fft_dinput(dy, ktspec, 3, 4, 12, 8)
    assert core.conv2d_fft_dinput(dy, ktspec, 3, 4, 4, 8).shape == (2, 4, 4, 3)
