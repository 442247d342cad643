"""Stride-1 float32 channels-last 2-D convolution through 2-D FFTs (csrc/conv_fft.c).

For large kernels a convolution costs fewer operations in the frequency domain. Every plane is
placed in a P_h x P_w periodic domain and transformed once (DFT, S[u,v] = sum_(r,c) s[r,c]
e^(-2 pi i (u r / P_h + v c / P_w))); with x at the origin and the kernel's tap (di, dj) at
(di - pad_top, dj - pad_left) (KF: the kernel's spectrum so placed)::

    Y[n,o]  = sum_c X[n,c] conj(KF[c,o])       y  = IDFT(Y)[i, j]                  + b[o]
    G[c,o]  = sum_n X[n,c] conj(DY[n,o])       dK = IDFT(G)[di - pad_top, dj - pad_left]
    DX[n,c] = sum_o DY[n,o] KF[c,o]            dx = IDFT(DX)[h, w]

(a cross-correlation, as Keras's convolution: hence the conjugates).

The circular products equal the linear (zero-padded) ones when no index wraps onto a real cell:
P_h >= max(H + pad_top, out_h + kh - 1 - pad_top), and likewise for the columns; the sizes are
the smallest products of 2, 3 and 5 that satisfy it.

Operation counts for a batch (real flops, F = P_h (P_w/2 + 1) frequencies, T = the cost of one
P_h x P_w real 2-D FFT, about 2.5 P_h P_w log2(P_h P_w)): the forward transforms N Cin + Cin Cout
planes and inverts N Cout, and multiplies 8 N F Cin Cout; the kernel gradient transforms N Cout
planes (x's spectra are kept from the forward), multiplies the same, and inverts Cin Cout; the
input gradient transforms N Cout and Cout Cin planes and inverts N Cin. The direct convolution
costs 2 N out_h out_w kh kw Cin Cout per pass. The transforms grow with the planes, not with the
kernel, so the FFT wins for large kernels on small images (the article's 11x11 over 32x32x3:
docs/convolution.md has the counts and timings).

`use_fft` decides; `forward` and `backward` run it. Strided or dilated convolutions, float64,
channels-first data and small kernels keep the direct/im2col paths of bnpy.ops.conv.
"""

import numpy as np

from .. import _core

# Tests switch the path off, or force it (MIN_DIRECT_FLOPS = 0, FFT_FLOP_COST = 0).
ENABLED = True
# The FFT path is considered from a 5x5 kernel on (smaller kernels: its transforms cost more than
# the direct sums they replace) ...
MIN_TAPS = 25
# ... for convolutions of at least this many direct flops (forward + kernel gradient): below it,
# the fixed costs (plans, scratch, the kernel's spectra on every call) outweigh what it saves ...
MIN_DIRECT_FLOPS = 20e6
# ... whose kernel spectrum (Cin Cout F complex64) fits this budget: every image's products read
# all of it, so beyond the caches they run at memory speed ...
MAX_KERNEL_SPECTRUM_BYTES = 4 << 20
# ... whose FFT sizes stay within the C glue's limit (larger planes are not what it is for) ...
MAX_FFT_SIZE = 1024
# ... and when the estimated FFT flops times this weight stay below the direct count: a
# transform's flop costs more time than one of the direct kernel's fused multiply-adds
# (calibrated on the shapes in docs/convolution.md).
FFT_FLOP_COST = 3.5


def fft_size(n):
    """The smallest product of 2s, 3s and 5s that is >= n (1 <= n <= MAX_FFT_SIZE; beyond it such
    numbers grow sparse, and the C glue refuses them anyway)."""
    if not 1 <= n <= MAX_FFT_SIZE:
        raise ValueError("fft_size: n must be in [1, {}], got {}".format(MAX_FFT_SIZE, n))
    size = n
    while not _is_fft_size(size):
        size += 1
    return size


def _is_fft_size(n):
    m = n
    for p in (2, 3, 5):
        while m % p == 0:
            m //= p
    return m == 1


def sizes(h, w, out_h, out_w, kh, kw, pad_top, pad_left):
    """(P_h, P_w): FFT sizes whose circular convolution equals the linear one (module docstring)."""
    return (
        fft_size(max(h + pad_top, out_h + kh - 1 - pad_top)),
        fft_size(max(w + pad_left, out_w + kw - 1 - pad_left)),
    )


def _fft2_flops(p_h, p_w):
    return 2.5 * p_h * p_w * np.log2(p_h * p_w)


def estimated_flops(n, h, w, cin, cout, out_hw, geometry):
    """(direct, fft) flops of a forward plus kernel gradient (the module docstring's counts)."""
    kh, kw, _, _, pt, _, pl, _ = geometry
    p_h, p_w = sizes(h, w, out_hw[0], out_hw[1], kh, kw, pt, pl)
    direct = 2.0 * 2 * n * out_hw[0] * out_hw[1] * kh * kw * cin * cout
    planes = n * cin + cin * cout + n * cout + n * cout + cin * cout
    products = 2 * 8.0 * n * p_h * (p_w // 2 + 1) * cin * cout
    return direct, planes * _fft2_flops(p_h, p_w) + products


def use_fft(x, geometry, cout, channels_first, dilation):
    """True when the FFT path runs this convolution: float32 channels-last, stride 1, no dilation,
    a kernel of >= MIN_TAPS taps, enough work, a kernel spectrum within the budget, and fewer
    estimated flops (weighted) than direct."""
    kh, kw, sh, sw = geometry[:4]
    if (
        not ENABLED
        or channels_first
        or x.dtype != np.float32
        or (sh, sw) != (1, 1)
        or dilation != (1, 1)
        or kh * kw < MIN_TAPS
        or x.size == 0
    ):
        return False
    n, h, w, cin = x.shape
    pt, pb, pl, pr = geometry[4:]
    out_hw = (h + pt + pb - kh + 1, w + pl + pr - kw + 1)
    if max(h + pt, out_hw[0] + kh - 1 - pt, w + pl, out_hw[1] + kw - 1 - pl) > MAX_FFT_SIZE:
        return False  # (FFT sizes are at least these)
    p_h, p_w = sizes(h, w, out_hw[0], out_hw[1], kh, kw, pt, pl)
    if (
        max(p_h, p_w) > MAX_FFT_SIZE
        or cin * cout * p_h * (p_w // 2 + 1) * 8 > MAX_KERNEL_SPECTRUM_BYTES
    ):
        return False
    direct, fft = estimated_flops(n, h, w, cin, cout, out_hw, geometry)
    return direct >= MIN_DIRECT_FLOPS and FFT_FLOP_COST * fft < direct


class FFTState:
    """What the backward needs: x's spectra, the kernel (kh, kw, Cin, Cout), the geometry."""

    __slots__ = ("xspec", "kernel", "x_shape", "geometry", "p_h", "p_w")


def _x_spectrum(x, p_h, p_w):
    """Spectra of x's N*Cin planes: x as (1, H, W, N*Cin), lane n*Cin + c."""
    n, h, w, cin = x.shape
    planes = np.ascontiguousarray(x.transpose(1, 2, 0, 3)).reshape(1, h, w, n * cin)
    return _core.fft_spectrum(planes, p_h, p_w, 0, 0)


def forward(x, kernel, bias, geometry):
    """(y, state) of the convolution of x (N, H, W, Cin) with kernel (kh, kw, Cin, Cout)."""
    n, h, w, cin = x.shape
    kh, kw, cout = kernel.shape[0], kernel.shape[1], kernel.shape[3]
    pt, pb, pl, pr = geometry[4:]
    out_h, out_w = h + pt + pb - kh + 1, w + pl + pr - kw + 1
    p_h, p_w = sizes(h, w, out_h, out_w, kh, kw, pt, pl)
    state = FFTState()
    state.xspec = _x_spectrum(x, p_h, p_w)
    kspec = _core.fft_spectrum(
        np.ascontiguousarray(kernel.transpose(2, 0, 1, 3)), p_h, p_w, -pt, -pl
    )
    y = _core.conv2d_fft_forward(state.xspec, kspec, bias, n, cout, out_h, out_w, p_w)
    state.kernel, state.x_shape, state.geometry = kernel, x.shape, geometry
    state.p_h, state.p_w = p_h, p_w
    return y, state


def backward(dy, state, need_dx):
    """(dx or None, dkernel) from dy (N, out_h, out_w, Cout) and the forward's state."""
    dy = np.ascontiguousarray(dy)
    n, h, w, cin = state.x_shape
    kh, kw = state.kernel.shape[:2]
    pt, pl = state.geometry[4], state.geometry[6]
    dkernel = _core.conv2d_fft_dkernel(dy, state.xspec, cin, kh, kw, pt, pl, state.p_w)
    dx = None
    if need_dx:
        kernel_t = np.ascontiguousarray(state.kernel.transpose(3, 0, 1, 2))  # (Cout, kh, kw, Cin)
        ktspec = _core.fft_spectrum(kernel_t, state.p_h, state.p_w, -pt, -pl)
        dx = _core.conv2d_fft_dinput(dy, ktspec, cin, h, w, state.p_w)
    return dx, dkernel
