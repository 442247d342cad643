"""Benchmark of fold_batch_norm: ``predict`` of the article's network with all four BN lines,
before and after folding (three of the four BN layers fold into conv2d_1, conv2d_2 and dense_1;
the one after max pooling stays).

Rounds interleave the two models (original, folded, original, folded, ...); in each round every
model's time is the fastest of --calls predict calls, and the figure is the median over the
rounds of original time / folded time (a burst of load slows a round's calls alike). Also prints
the largest relative difference of the two models' predictions. Usage:

    python benchmarks/bench_folding.py [--samples 256] [--repeats 15] [--calls 3] [--threads 1 2]
                                       [--clock cpu] [--per-layer]

--per-layer also prints each layer's share of an inference forward pass of one batch (1 thread).

--repeats is the number of rounds; --clock cpu times process CPU time (load-robust, 1 thread).
"""

import argparse
import functools
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# tests/ for reference_layers.build_article_model only: bnpy is the installed package
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from benchtools import add_run_options, clock_of  # noqa: E402
from reference_layers import build_article_model  # noqa: E402

import bnpy  # noqa: E402
from bnpy.layers.normalization import set_population_statistics  # noqa: E402
from bnpy.utils import fold_batch_norm  # noqa: E402


def fastest(function, calls, clock):
    best = float("inf")
    for _ in range(calls):
        start = clock()
        function()
        best = min(best, clock() - start)
    return best


def per_layer(model, batch, calls, clock):
    """Fastest inference forward of each layer on ``batch``, and its share of their sum."""
    bnpy.set_num_threads(1)
    times, out = [], batch
    for layer in model.layers:
        times.append(fastest(functools.partial(layer.forward, out, training=False), calls, clock))
        out = layer.forward(out, training=False)
    total = sum(times)
    print("per layer, one batch of {}, 1 thread:".format(len(batch)))
    for layer, t in zip(model.layers, times):
        print("  {:28s} {:7.2f} ms  {:5.1f} %".format(layer.name, 1e3 * t, 100 * t / total))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--per-layer", action="store_true")
    add_run_options(parser)
    args = parser.parse_args()
    clock = clock_of(args)

    rng = np.random.RandomState(0)
    x = rng.uniform(0, 1, (args.samples, 32, 32, 3)).astype(np.float32)
    model = build_article_model(True, True, True, True)
    set_population_statistics(model, x[:64])  # moving statistics as training leaves them
    folded = fold_batch_norm(model)
    expected, got = model.predict(x), folded.predict(x)
    print(
        "article network, all four BN lines: {} layers -> {} after folding; "
        "max relative difference of predict: {:.2e}".format(
            len(model.layers), len(folded.layers), float(np.max(np.abs(got - expected) / expected))
        )
    )
    if args.per_layer:
        per_layer(model, x[: args.batch_size], args.calls, clock)
    print(
        "predict of {} samples, batch_size {}, {} clock".format(
            args.samples, args.batch_size, args.clock
        )
    )
    for threads in args.threads:
        bnpy.set_num_threads(threads)
        ratios, original_times, folded_times = [], [], []
        for _ in range(args.repeats):
            t_original = fastest(
                lambda: model.predict(x, batch_size=args.batch_size), args.calls, clock
            )
            t_folded = fastest(
                lambda: folded.predict(x, batch_size=args.batch_size), args.calls, clock
            )
            original_times.append(t_original)
            folded_times.append(t_folded)
            ratios.append(t_original / t_folded)
        print(
            "threads {}: original {:.1f} ms, folded {:.1f} ms (medians); "
            "speed-up (median of per-round ratios) {:.2f}x".format(
                threads,
                1e3 * np.median(original_times),
                1e3 * np.median(folded_times),
                np.median(ratios),
            )
        )


if __name__ == "__main__":
    main()
