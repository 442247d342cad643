"""The FFT convolution path against the direct kernel at the article's 11x11 conv, and two other
designs of the same algebra, measured in the same run.

Case: Conv2D 96 11x11 'same' on a batch of 32 32x32x3 float32 images (the article's first
layer: forward, and backward without dx, i.e. the kernel gradient and dbias). Contestants:

  * fft      bnpy's dispatch (the FFT path, csrc/conv_fft.c: 8 planes per AVX vector);
  * direct   the direct AVX2 kernel (csrc/conv_direct.c), the FFT path switched off;
  * pocketfft the same algebra on library FFTs: scipy.fft (workers = threads; when installed) or
             numpy.fft (one thread), rfft2 over the image axes of channels-last arrays, the
             channel sums as batched complex matmuls (one per frequency);
  * torch    torch.nn.functional.conv2d channels-last with autograd (when installed; its
             backward also computes nothing for x: x does not require grad).

Timing: interleaved rounds (each contestant in turn, A, B, C, ...), the fastest of --calls calls
per round; the ratios printed are medians over the rounds of per-round ratios (with quartiles),
so a load change between rounds moves both sides of a ratio.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv_fft.py
      [--threads 1 2] [--rounds 9] [--calls 3] [--profile]
"""

import argparse
import time

import benchtools  # noqa: E402  (benchmarks/, the script's own folder)
import numpy as np

import bnpy
import bnpy.ops as ops
from bnpy.ops import _conv_fft

N, SIZE, CIN, COUT, K = 32, 32, 3, 96, 11
PAD = K // 2


def bnpy_steps(x, kernel, bias, dy, fft):
    """forward, backward (dK, db), and both, with the FFT path on or off."""

    def with_path(fn):
        def run():
            saved = _conv_fft.ENABLED
            _conv_fft.ENABLED = fft
            try:
                return fn()
            finally:
                _conv_fft.ENABLED = saved

        return run

    ctx = with_path(lambda: ops.conv2d_forward(x, kernel, bias, 1, "same")[1])()
    assert (ctx.fft is not None) == fft
    forward = with_path(lambda: ops.conv2d_forward(x, kernel, bias, 1, "same"))
    backward = with_path(lambda: ops.conv2d_backward(dy, ctx, need_dx=False))
    both = with_path(
        lambda: ops.conv2d_backward(
            dy, ops.conv2d_forward(x, kernel, bias, 1, "same")[1], need_dx=False
        )
    )
    return forward, backward, both


class PocketFFTConv:
    """The FFT algebra of bnpy/ops/_conv_fft.py on a library FFT (pocketfft, via scipy.fft or
    numpy.fft) and NumPy's batched matmul: X = rfft2(x), Y = X·conj(KF) summed over channels (one
    (N x Cin)·(Cin x Cout) complex product per frequency), y = irfft2(Y) cropped; dK from
    G = Σ_n X·conj(DY)... with the roles as in conv_fft.c."""

    def __init__(self, fft_module, workers, p):
        self.fft, self.p = fft_module, p
        self.kw = {"workers": workers} if workers else {}

    def kernel_spectrum(self, kernel):
        p = self.p
        placed = np.zeros((p, p) + kernel.shape[2:], np.float32)
        rows = (np.arange(K) - PAD) % p
        placed[np.ix_(rows, rows)] = kernel
        return self.fft.rfft2(placed, axes=(0, 1), **self.kw)  # (P, Pr, Cin, Cout)

    def forward(self, x, kernel, bias):
        p = self.p
        xs = self.fft.rfft2(x, s=(p, p), axes=(1, 2), **self.kw)  # (N, P, Pr, Cin)
        ks = self.kernel_spectrum(kernel)
        freq = p * (p // 2 + 1)
        y_spec = np.matmul(
            xs.reshape(N, freq, CIN).transpose(1, 0, 2), ks.reshape(freq, CIN, COUT).conj()
        )  # (F, N, Cout)
        y_spec = y_spec.transpose(1, 0, 2).reshape(N, p, p // 2 + 1, COUT)
        y = self.fft.irfft2(y_spec, s=(p, p), axes=(1, 2), **self.kw)[:, :SIZE, :SIZE]
        return y + bias, xs

    def dkernel(self, dy, xs):
        p = self.p
        freq = p * (p // 2 + 1)
        dys = self.fft.rfft2(dy, s=(p, p), axes=(1, 2), **self.kw)  # (N, P, Pr, Cout)
        g = np.matmul(
            xs.reshape(N, freq, CIN).transpose(1, 2, 0),  # (F, Cin, N)
            dys.reshape(N, freq, COUT).transpose(1, 0, 2).conj(),  # (F, N, Cout)
        ).reshape(p, p // 2 + 1, CIN, COUT)
        g = self.fft.irfft2(g, s=(p, p), axes=(0, 1), **self.kw)
        rows = (np.arange(K) - PAD) % p
        return g[np.ix_(rows, rows)], dy.sum(axis=(0, 1, 2))

    def steps(self, x, kernel, bias, dy):
        xs = self.forward(x, kernel, bias)[1]
        return (
            lambda: self.forward(x, kernel, bias),
            lambda: self.dkernel(dy, xs),
            lambda: self.dkernel(dy, self.forward(x, kernel, bias)[1]),
        )


def torch_steps(torch, x, kernel, bias, dy):
    fmt = torch.channels_last
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
    wt = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous(memory_format=fmt)
    wt.requires_grad_(True)
    bt = torch.from_numpy(bias).requires_grad_(True)
    dyt = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous(memory_format=fmt)

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(xt, wt, bt, padding=PAD)

    def both():
        torch.autograd.backward(torch.nn.functional.conv2d(xt, wt, bt, padding=PAD), dyt)

    return forward, None, both


def check_pocketfft(design, x, kernel, bias, dy):
    """The library design computes the same convolution as bnpy (else its timing means nothing)."""
    y, ctx = ops.conv2d_forward(x, kernel, bias, 1, "same")
    y2, xs = design.forward(x, kernel, bias)
    dk = ops.conv2d_backward(dy, ctx, need_dx=False)[1]
    dk2 = design.dkernel(dy, xs)[0]
    assert np.abs(y2 - y).max() <= 1e-4 * np.abs(y).max(), np.abs(y2 - y).max()
    assert np.abs(dk2 - dk).max() <= 1e-4 * np.abs(dk).max(), np.abs(dk2 - dk).max()


def profile(x, kernel, bias, dy, rounds):
    """Where the FFT path's time goes: its C calls one by one, on one thread, in process CPU time
    (which other processes' load does not inflate)."""
    core = bnpy._core
    geometry = (K, K, 1, 1, PAD, PAD, PAD, PAD)
    y, state = _conv_fft.forward(x, kernel, bias, geometry)
    p = state.p_h
    planes_x = np.ascontiguousarray(x.transpose(1, 2, 0, 3)).reshape(1, SIZE, SIZE, N * CIN)
    kernel_t = np.ascontiguousarray(kernel.transpose(2, 0, 1, 3))
    kspec = core.fft_spectrum(kernel_t, p, p, -PAD, -PAD)
    dy_planes = np.ascontiguousarray(dy)  # (N, 32, 32, 96): N blocks of 96 lanes
    steps = {
        "x spectra (96 planes)": lambda: core.fft_spectrum(planes_x, p, p, 0, 0),
        "kernel spectra (288 planes)": lambda: core.fft_spectrum(kernel_t, p, p, -PAD, -PAD),
        "forward products + inverse (3072 planes)": lambda: core.conv2d_fft_forward(
            state.xspec, kspec, bias, N, COUT, SIZE, SIZE, p
        ),
        "dK: dy spectra + products + inverse": lambda: core.conv2d_fft_dkernel(
            dy, state.xspec, CIN, K, K, PAD, PAD, p
        ),
        "3072 spectra alone (dy's planes)": lambda: core.fft_spectrum(dy_planes, p, p, 0, 0),
    }
    times = benchtools.interleaved_rounds(steps, rounds, clock=time.process_time)
    print(
        "\nFFT path, one thread, CPU time, P = {} (fastest call per round, median of {} rounds):".format(
            p, rounds
        )
    )
    for name, t in times.items():
        print("  {:<44} {:7.2f} ms".format(name, 1e3 * float(np.median(t))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also time the FFT path's stages")
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    try:
        import scipy.fft as fft_module

        fft_name = "scipy.fft"
    except ImportError:
        fft_module, fft_name = np.fft, "numpy.fft"
    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, SIZE, SIZE, CIN)).astype(np.float32)
    kernel = (0.05 * rng.standard_normal((K, K, CIN, COUT))).astype(np.float32)
    bias = np.zeros(COUT, np.float32)
    dy = rng.standard_normal((N, SIZE, SIZE, COUT)).astype(np.float32)
    p = _conv_fft.sizes(SIZE, SIZE, SIZE, SIZE, K, K, PAD, PAD)[0]
    print(
        "Conv2D {} {}x{} 'same' on {}x{}x{}x{} float32; FFT size {}x{}; library FFT: {}; "
        "torch {}".format(
            COUT, K, K, N, SIZE, SIZE, CIN, p, p, fft_name, torch.__version__ if torch else "absent"
        )
    )
    print(
        "\n{:>3} {:<9} {:>8} {:>8} {:>9} {:>8}   {:<22} {:<22} {:<22}".format(
            "thr",
            "phase",
            "fft ms",
            "direct",
            "pocketfft",
            "torch",
            "direct/fft [q1-q3]",
            "pocketfft/fft",
            "torch/fft",
        )
    )
    for threads in args.threads:
        bnpy.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        with threadpool_limits(threads):
            workers = threads if fft_module is not np.fft else None
            design = PocketFFTConv(fft_module, workers, p)
            check_pocketfft(design, x, kernel, bias, dy)
            contestants = {
                "fft": bnpy_steps(x, kernel, bias, dy, True),
                "direct": bnpy_steps(x, kernel, bias, dy, False),
                "pocketfft": design.steps(x, kernel, bias, dy),
            }
            if torch is not None:
                contestants["torch"] = torch_steps(torch, x, kernel, bias, dy)
            results = {}
            for index, phase in [(0, "forward"), (2, "fwd+dK")]:
                steps = {name: fns[index] for name, fns in contestants.items()}
                results[phase] = benchtools.interleaved_rounds(steps, args.rounds, args.calls)
            steps = {n: fns[1] for n, fns in contestants.items() if fns[1] is not None}
            results["dK"] = benchtools.interleaved_rounds(steps, args.rounds, args.calls)
        for phase in ["forward", "dK", "fwd+dK"]:
            times = results[phase]
            cells = []
            for name in ["direct", "pocketfft", "torch"]:
                if name in times:
                    cells.append(
                        "{:.2f}x [{:.2f}-{:.2f}]".format(
                            *benchtools.ratio_summary(times, name, "fft")
                        )
                    )
                else:
                    cells.append("-")
            medians = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
            print(
                "{:>3} {:<9} {:>8.2f} {:>8.2f} {:>9.2f} {:>8}   {:<22} {:<22} {:<22}".format(
                    threads,
                    phase,
                    medians["fft"],
                    medians["direct"],
                    medians["pocketfft"],
                    "{:.2f}".format(medians["torch"]) if "torch" in medians else "-",
                    *cells,
                )
            )
    print(
        "\nms: median over {} rounds of the fastest of {} calls; ratios: median [quartiles] of "
        "per-round ratios (above 1: the FFT path is faster).".format(args.rounds, args.calls)
    )
    if args.profile:
        bnpy.set_num_threads(1)
        with threadpool_limits(1):
            profile(x, kernel, bias, dy, args.rounds)


if __name__ == "__main__":
    main()
