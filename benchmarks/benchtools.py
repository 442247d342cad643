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
