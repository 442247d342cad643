"""bnpy's convolution and pooling kernels against PyTorch at the article network's shapes.

Cases (float32, batch 32):
  conv1  Conv2D 96 11x11 'same' on 32x32x3   (the step's dominant op; no dx: it is the first layer)
  conv2  Conv2D 120 1x1 'valid' on 16x16x96  (with dx)
  pool   MaxPooling2D 2x2 on 32x32x96
For each: forward, backward and forward+backward, at 1 and 2 threads, for bnpy (channels-last;
conv1 takes the FFT path, bnpy/ops/_conv_fft.py, and benchmarks/bench_conv_fft.py compares it
with the direct kernel), bnpy with the FFT path and the direct kernel switched off (im2col +
matmul: shows what they buy) and
torch in NCHW and channels-last (autograd; torch.set_num_threads; its backward is derived as
fwd+bwd minus forward, since autograd frees the graph after each backward). Medians are measured
round-robin (one call of each contestant in turn) so a busy machine slows all alike; ratios are
bnpy / fastest torch layout.

Run:  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_conv.py [--threads 1 --clock cpu]
(--clock cpu: process CPU time, which other processes' load does not inflate; one thread only)
"""

import argparse
import sys
import time

import benchtools  # noqa: E402  (benchmarks/, the script's own folder)
import numpy as np

import bnpy
import bnpy.ops as ops
from bnpy.ops import _conv_fft
from bnpy.ops import conv as conv_module

CLOCK = time.perf_counter


def round_robin_medians(steps, repeats, warmup=2):
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = CLOCK()
            step()
            times[name].append(CLOCK() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def bnpy_conv_steps(x, kernel, bias, padding, need_dx, direct):
    """bnpy's dispatch (direct=True: the FFT path or the direct kernel where they apply), or
    im2col + matmul with both switched off."""

    def with_path(fn):
        def run():
            saved = conv_module._USE_DIRECT, _conv_fft.ENABLED
            conv_module._USE_DIRECT = direct and saved[0]
            _conv_fft.ENABLED = direct and saved[1]
            try:
                return fn()
            finally:
                conv_module._USE_DIRECT, _conv_fft.ENABLED = saved

        return run

    y, ctx = ops.conv2d_forward(x, kernel, bias, 1, padding)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    forward = with_path(lambda: ops.conv2d_forward(x, kernel, bias, 1, padding))
    fixed_ctx = with_path(lambda: ops.conv2d_forward(x, kernel, bias, 1, padding)[1])()
    backward = with_path(lambda: ops.conv2d_backward(dy, fixed_ctx, need_dx=need_dx))
    both = with_path(
        lambda: ops.conv2d_backward(
            dy, ops.conv2d_forward(x, kernel, bias, 1, padding)[1], need_dx=need_dx
        )
    )
    return forward, backward, both


def torch_conv_steps(torch, x, kernel, bias, padding, need_dx, channels_last):
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    xt = (
        torch.from_numpy(x)
        .permute(0, 3, 1, 2)
        .contiguous(memory_format=fmt)
        .requires_grad_(need_dx)
    )
    wt = (
        torch.from_numpy(kernel)
        .permute(3, 2, 0, 1)
        .contiguous(memory_format=fmt)
        .requires_grad_(True)
    )
    bt = torch.from_numpy(bias).requires_grad_(True)
    pad = kernel.shape[0] // 2 if padding == "same" else 0
    with torch.no_grad():
        y = torch.nn.functional.conv2d(xt, wt, bt, padding=pad)
    dy = torch.randn(y.shape).contiguous(memory_format=fmt)

    def forward():
        with torch.no_grad():
            return torch.nn.functional.conv2d(xt, wt, bt, padding=pad)

    def both():
        torch.autograd.backward(torch.nn.functional.conv2d(xt, wt, bt, padding=pad), dy)

    return forward, None, both  # no separate backward: derived as (fwd+bwd) - forward


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    benchtools.add_run_options(parser)
    args = parser.parse_args()
    global CLOCK
    CLOCK = benchtools.clock_of(args)
    from threadpoolctl import threadpool_info, threadpool_limits

    try:
        import torch
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    blas = [
        (i["internal_api"], i.get("architecture"))
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]
    print(
        "BLAS {}; direct conv kernel available: {}; torch {}".format(
            blas, bool(bnpy._core.conv_direct_available()), torch.__version__ if torch else "absent"
        )
    )
    x1 = rng.standard_normal((32, 32, 32, 3)).astype(np.float32)
    k1 = (0.05 * rng.standard_normal((11, 11, 3, 96))).astype(np.float32)
    b1 = np.zeros(96, np.float32)
    x2 = rng.standard_normal((32, 16, 16, 96)).astype(np.float32)
    k2 = (0.1 * rng.standard_normal((1, 1, 96, 120))).astype(np.float32)
    b2 = np.zeros(120, np.float32)
    xp = rng.standard_normal((32, 32, 32, 96)).astype(np.float32)
    print(
        "\n{:>3} {:<6} {:<9} {:>9} {:>9} {:>10} {:>10} {:>8}".format(
            "thr", "case", "phase", "bnpy", "im2col", "torch NCHW", "torch CL", "ratio"
        )
    )
    for threads in args.threads:
        bnpy.set_num_threads(threads)
        with threadpool_limits(threads):
            if torch is not None:
                torch.set_num_threads(threads)
            for case, x, kernel, bias, padding, need_dx in [
                ("conv1", x1, k1, b1, "same", False),
                ("conv2", x2, k2, b2, "valid", True),
            ]:
                contestants = {
                    "bnpy": bnpy_conv_steps(x, kernel, bias, padding, need_dx, True),
                    "im2col": bnpy_conv_steps(x, kernel, bias, padding, need_dx, False),
                }
                if torch is not None:
                    contestants["torch NCHW"] = torch_conv_steps(
                        torch, x, kernel, bias, padding, need_dx, False
                    )
                    contestants["torch CL"] = torch_conv_steps(
                        torch, x, kernel, bias, padding, need_dx, True
                    )
                res = {}
                for phase_index, phase in enumerate(["forward", "backward", "fwd+bwd"]):
                    steps = {
                        k: v[phase_index]
                        for k, v in contestants.items()
                        if not (phase == "backward" and k.startswith("torch"))
                    }
                    res[phase] = round_robin_medians(steps, args.repeats)
                for (
                    name
                ) in contestants:  # torch frees its graph: its backward = (fwd+bwd) - forward
                    if name.startswith("torch"):
                        res["backward"][name] = res["fwd+bwd"][name] - res["forward"][name]
                for phase in ["forward", "backward", "fwd+bwd"]:
                    r = res[phase]
                    best = min(
                        (v for k, v in r.items() if k.startswith("torch")), default=float("nan")
                    )
                    print(
                        "{:>3} {:<6} {:<9} {:>9.2f} {:>9.2f} {:>10.2f} {:>10.2f} {:>7.2f}x".format(
                            threads,
                            case,
                            phase,
                            r["bnpy"],
                            r["im2col"],
                            r.get("torch NCHW", float("nan")),
                            r.get("torch CL", float("nan")),
                            r["bnpy"] / best,
                        )
                    )
            # max pooling 2x2 on 32x32x96
            y, ctx = ops.max_pool2d_forward(xp)
            dy = rng.standard_normal(y.shape).astype(np.float32)
            steps = {
                "bnpy fwd": lambda: ops.max_pool2d_forward(xp),
                "bnpy bwd": lambda dy=dy, ctx=ctx: ops.max_pool2d_backward(dy, ctx),
            }
            if torch is not None:
                for name, fmt in [("NCHW", torch.contiguous_format), ("CL", torch.channels_last)]:
                    xt = (
                        torch.from_numpy(xp)
                        .permute(0, 3, 1, 2)
                        .contiguous(memory_format=fmt)
                        .requires_grad_(True)
                    )
                    dyt = torch.from_numpy(dy).permute(0, 3, 1, 2).contiguous(memory_format=fmt)

                    def fwd(xt=xt):
                        with torch.no_grad():
                            return torch.nn.functional.max_pool2d(xt, 2)

                    def fwd_bwd(xt=xt, dyt=dyt):
                        torch.autograd.backward(torch.nn.functional.max_pool2d(xt, 2), dyt)

                    steps["torch {} fwd".format(name)] = fwd
                    steps["torch {} fwd+bwd".format(name)] = fwd_bwd
            steps["bnpy fwd+bwd"] = lambda dy=dy: ops.max_pool2d_backward(
                dy, ops.max_pool2d_forward(xp)[1]
            )
            res = round_robin_medians(steps, args.repeats)
            for phase, key in [("forward", "fwd"), ("fwd+bwd", "fwd+bwd")]:
                torch_times = [
                    res.get("torch NCHW " + key, float("nan")),
                    res.get("torch CL " + key, float("nan")),
                ]
                print(
                    "{:>3} {:<6} {:<9} {:>9.2f} {:>9} {:>10.2f} {:>10.2f} {:>7.2f}x".format(
                        threads,
                        "pool",
                        phase,
                        res["bnpy " + key],
                        "-",
                        torch_times[0],
                        torch_times[1],
                        res["bnpy " + key] / min(torch_times),
                    )
                )
    print(
        "\nratio = bnpy / fastest torch layout (below 1: bnpy faster). Timings: medians of {} "
        "round-robin calls, clock: {}.".format(args.repeats, args.clock)
    )


if __name__ == "__main__":
    sys.exit(main())
