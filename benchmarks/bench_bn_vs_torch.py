"""BN training step (forward + backward, float32, channels-last) of bnpy against torch, 1 and 2 threads.

For each shape (N, H, W, C), four contestants in interleaved rounds: bnpy and torch on 1 thread,
bnpy and torch on 2 threads, plus a copy of x (np.copyto, the memory floor's unit). bnpy is
ops.batch_norm_forward + ops.batch_norm_backward with out= buffers; torch is

    y = torch.nn.functional.batch_norm(x_cl, None, None, weight, bias, training=True)
    torch.autograd.grad(y, (x_cl, weight, bias), dy_cl)

with x_cl and dy_cl in torch.channels_last memory format. In every round each contestant sets
its thread count, makes one untimed call, then `--calls` timed ones of which the fastest counts.
Printed per shape: the median over rounds of the per-round ratios bnpy ÷ torch (1 and 2 threads)
and bnpy 2 threads ÷ bnpy 1 thread, with the quartiles over the rounds in brackets. Each call is
timed twice, in wall time and in the calling thread's CPU time: the 1-thread ratios are given in
both (CPU time is not inflated by time spent descheduled on a busy machine), the 2-thread ones in
wall time only (CPU time would add the two threads up).

    python benchmarks/bench_bn_vs_torch.py [--rounds 15] [--calls 5] [--shapes 32x16x16x96,...]
"""

import argparse
import os
import time

import numpy as np
import torch

import bnpy
from bnpy import ops

SEED_SHAPES = [(32, 32, 32, 96), (32, 16, 16, 96), (32, 16, 16, 120)]
EPS = 1e-3


def contestants(shape):
    """{name: (threads, step)} for one shape."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    C = shape[-1]
    gamma = rng.uniform(0.5, 2, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    y_out, dx_out, copy_out = np.empty_like(x), np.empty_like(x), np.empty_like(x)

    def bnpy_step():
        _, mean, var = ops.batch_norm_forward(x, gamma, beta, axis=-1, epsilon=EPS, out=y_out)
        ops.batch_norm_backward(dy, x, gamma, mean, var, axis=-1, epsilon=EPS, out=dx_out)

    # torch's channel axis is 1: the NHWC array is an NCHW tensor in channels_last memory format.
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).requires_grad_(True)
    tdy = torch.from_numpy(dy).permute(0, 3, 1, 2)
    assert tx.is_contiguous(memory_format=torch.channels_last)
    tw = torch.from_numpy(gamma.copy()).requires_grad_(True)
    tb = torch.from_numpy(beta.copy()).requires_grad_(True)

    def torch_step():
        y = torch.nn.functional.batch_norm(tx, None, None, tw, tb, training=True, eps=EPS)
        torch.autograd.grad(y, (tx, tw, tb), tdy)

    return {
        "bnpy 1": (1, bnpy_step),
        "torch 1": (1, torch_step),
        "bnpy 2": (2, bnpy_step),
        "torch 2": (2, torch_step),
        "copy": (1, lambda: np.copyto(copy_out, x)),
    }


def rounds_of(steps, rounds, calls):
    """{name: (wall seconds, thread CPU seconds)}, arrays of the fastest call of each round."""
    wall = {name: [] for name in steps}
    cpu = {name: [] for name in steps}
    for _ in range(rounds):
        for name, (threads, step) in steps.items():
            bnpy.set_num_threads(threads)
            torch.set_num_threads(threads)
            step()
            best_wall = best_cpu = float("inf")
            for _ in range(calls):
                w0, c0 = time.perf_counter(), time.thread_time()
                step()
                best_cpu = min(best_cpu, time.thread_time() - c0)
                best_wall = min(best_wall, time.perf_counter() - w0)
            wall[name].append(best_wall)
            cpu[name].append(best_cpu)
    return {name: (np.array(wall[name]), np.array(cpu[name])) for name in steps}


def spread(ratios):
    q1, q2, q3 = np.percentile(ratios, [25, 50, 75])
    return f"{q2:.2f} [{q1:.2f}-{q3:.2f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--shapes", help="e.g. 32x16x16x96,32x16x16x120 (default: the seed shapes)")
    args = parser.parse_args()
    shapes = SEED_SHAPES
    if args.shapes:
        shapes = [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]
    print(
        f"bnpy {bnpy.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, load average "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
    )
    print(
        f"float32 channels-last fwd+bwd; {args.rounds} interleaved rounds, fastest of "
        f"{args.calls} calls per round; median [quartiles] of per-round ratios\n"
    )
    for shape in shapes:
        t = rounds_of(contestants(shape), args.rounds, args.calls)
        wall = {name: v[0] for name, v in t.items()}
        cpu = {name: v[1] for name, v in t.items()}
        print(
            f"{str(shape)}: bnpy 1 thread {np.median(wall['bnpy 1']) * 1e6:.0f} us, "
            f"2 threads {np.median(wall['bnpy 2']) * 1e6:.0f} us; torch 1 thread "
            f"{np.median(wall['torch 1']) * 1e6:.0f} us, 2 threads "
            f"{np.median(wall['torch 2']) * 1e6:.0f} us; copy {np.median(wall['copy']) * 1e6:.0f} us (wall)"
        )
        print(
            f"  bnpy/torch  1 thread wall {spread(wall['bnpy 1'] / wall['torch 1'])}, "
            f"cpu {spread(cpu['bnpy 1'] / cpu['torch 1'])}"
        )
        print(f"  bnpy/torch  2 threads wall {spread(wall['bnpy 2'] / wall['torch 2'])}")
        print(f"  bnpy 2 threads / 1 thread wall {spread(wall['bnpy 2'] / wall['bnpy 1'])}")
        print(
            f"  bnpy/copy   1 thread cpu {spread(cpu['bnpy 1'] / cpu['copy'])}, "
            f"2 threads wall {spread(wall['bnpy 2'] / wall['copy'])}",
            flush=True,
        )


if __name__ == "__main__":
    main()
