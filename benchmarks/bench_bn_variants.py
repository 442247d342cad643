"""Batch-norm variants against plain batch norm, forward + backward through bnpy.ops (float32,
preallocated outputs): Batch Renormalization and ghost batches (virtual_batch_size 8).

    python benchmarks/bench_bn_variants.py [--threads 1 2] [--repeats 15] [--clock wall|cpu]

Per shape and thread count, the three are timed in interleaved rounds (plain, renorm, ghost),
fastest of 5 calls each per round; printed: plain's time and the medians of the per-round ratios.
"""

import argparse
import statistics

import numpy as np
from benchtools import add_run_options, clock_of

import bnpy
from bnpy import ops

SHAPES = [((32, 16, 16, 96), -1), ((32, 96, 16, 16), 1), ((256, 512), -1)]


def fastest(fn, clock, calls=5):
    best = float("inf")
    for _ in range(calls):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def cases(shape, axis, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    c = shape[axis]
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    renorm_mean, renorm_stddev = np.zeros(c, np.float32), np.ones(c, np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)

    def plain():
        _, mean, var = ops.batch_norm_forward(x, gamma, beta, axis=axis, out=y)
        ops.batch_norm_backward(dy, x, gamma, mean, var, axis=axis, out=dx)

    def renorm():
        _, mean, var, r, d = ops.batch_renorm_forward(
            x, gamma, beta, renorm_mean, renorm_stddev, axis=axis, rmax=3.0, dmax=5.0, out=y
        )
        ops.batch_renorm_backward(dy, x, gamma, mean, var, r, d, axis=axis, out=dx)

    def ghost():
        _, mean, var = ops.ghost_batch_norm_forward(x, gamma, beta, 8, axis=axis, out=y)
        ops.ghost_batch_norm_backward(dy, x, gamma, mean, var, 8, axis=axis, out=dx)

    return plain, renorm, ghost


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_options(parser)
    args = parser.parse_args()
    clock = clock_of(args)
    rng = np.random.default_rng(0)
    print("| shape | axis | threads | plain fwd+bwd | renorm ÷ plain | ghost (V=8) ÷ plain |")
    print("|---|---|---|---|---|---|")
    for shape, axis in SHAPES:
        plain, renorm, ghost = cases(shape, axis, rng)
        for threads in args.threads:
            bnpy.set_num_threads(threads)
            times, renorm_ratios, ghost_ratios = [], [], []
            for _ in range(args.repeats):
                t_plain = fastest(plain, clock)
                renorm_ratios.append(fastest(renorm, clock) / t_plain)
                ghost_ratios.append(fastest(ghost, clock) / t_plain)
                times.append(t_plain)
            print(
                "| {} | {} | {} | {:.1f}us | {:.2f} | {:.2f} |".format(
                    shape,
                    axis,
                    threads,
                    statistics.median(times) * 1e6,
                    statistics.median(renorm_ratios),
                    statistics.median(ghost_ratios),
                )
            )


if __name__ == "__main__":
    main()
