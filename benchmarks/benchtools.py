"""What the round-robin benchmarks (bench_conv, bench_training) share: their run options and clock."""

import sys
import time


def add_run_options(parser):
    """--threads, --repeats and --clock."""
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall time (default) or process CPU time (load-robust; 1 thread only)",
    )


def clock_of(args):
    """The timer --clock asks for: process CPU time adds up the threads' times, so it is refused
    with more than one thread."""
    if args.clock == "cpu":
        if any(t != 1 for t in args.threads):
            sys.exit("--clock cpu is only meaningful with --threads 1")
        return time.process_time
    return time.perf_counter


def interleaved_rounds(steps, rounds, calls=3, warmup=2, clock=time.perf_counter):
    """Times each step function in interleaved rounds: in every round each contestant in turn
    (A, B, C, A, B, C, ...) gets one untimed call, then `calls` timed ones, of which the fastest
    counts. The load of a shared machine then falls on all contestants alike, and the idle,
    spinning workers one library leaves behind (torch's OpenMP pool, OpenBLAS's) are gone before
    the next contestant's timed calls. Returns {name: [fastest seconds of each round]}."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            step()
            best = float("inf")
            for _ in range(calls):
                start = clock()
                step()
                best = min(best, clock() - start)
            times[name].append(best)
    return times


def ratio_summary(times, name, reference):
    """(median, 25th, 75th percentile) over the rounds of times[name] / times[reference]: each
    ratio compares two contestants measured moments apart, so a load change between rounds moves
    both."""
    import numpy as np

    ratios = np.asarray(times[name]) / np.asarray(times[reference])
    return (
        float(np.median(ratios)),
        float(np.percentile(ratios, 25)),
        float(np.percentile(ratios, 75)),
    )
