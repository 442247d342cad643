#!/usr/bin/env python3
"""A training epoch at 2 threads, quiet and beside one busy process, for each OpenMP wait policy.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_contention.py [--rounds 7]

When a parallel region ends, libgomp's idle workers spin before they sleep: GOMP_SPINCOUNT
iterations (default 300,000, about 3 ms at ~100,000 spins per ms; 0 with OMP_WAIT_POLICY=passive).
On a quiet machine that saves the wake-up of the next region. When another process takes one of
the cores, it backfires: at a barrier, the thread that is running spins while its teammate waits
for the core, so the team runs at the pace of the descheduled thread and burns its own share
spinning. This benchmark measures both sides for each candidate policy:

  * quiet: the epoch time with nothing of ours beside it, as a ratio to libgomp's default
    (goal: within 5 %);
  * busy: the epoch time with one competing busy process (a Python `while True: pass` the
    benchmark starts and stops itself) as a ratio to the same candidate's quiet time. Two threads
    and one busy process on 2 cores make 3 runnable threads: the fair share is 2/3 of the cores, a
    ratio of 1.5; the goal is <= 2.2.

The contestants are persistent child processes, one per candidate (libgomp reads the variables
once, when it is loaded): the article's model (all four BN lines, batch 32, bnpy.fit) with each
wait policy; "bnpy default" with none of the variables set (what bnpy itself chooses, see
bnpy/__init__.py); and, when installed, PyTorch's same network (channels-last, its own libgomp at
its defaults). Each child reports the GOMP_SPINCOUNT its libgomp actually uses (OMP_DISPLAY_ENV).
Rounds interleave the contestants (quiet, then busy, for each in turn); each measurement is the
fastest of --calls epochs; the table shows medians of the per-round ratios and their range.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CANDIDATES = [  # (name, environment); "libgomp default" spells out libgomp's built-in count
    ("libgomp default (spin 300000)", {"GOMP_SPINCOUNT": "300000"}),
    ("GOMP_SPINCOUNT=30000", {"GOMP_SPINCOUNT": "30000"}),
    ("GOMP_SPINCOUNT=3000", {"GOMP_SPINCOUNT": "3000"}),
    ("OMP_WAIT_POLICY=passive", {"OMP_WAIT_POLICY": "passive"}),
    ("bnpy default (nothing set)", {}),
]
BASELINE = CANDIDATES[0][0]
POLICY_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

CHILD = r"""
import sys, time
sys.path.insert(0, {here!r})
import numpy as np
contestant, samples, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
if contestant == "torch":
    import torch
    import bench_training as bt
    torch.set_num_threads(threads)
    step = bt.torch_step_factory(channels_last=True)

    def epoch():
        for _ in range(samples // bt.BATCH):
            step()
else:
    import bnpy
    import bench_training as bt
    bnpy.set_num_threads(threads)
    model = bt.build_model()
    x = rng.random((samples, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, samples)]

    def epoch():
        model.fit(x, y, batch_size=bt.BATCH, epochs=1, verbose=0, shuffle=False)
epoch()  # warm-up: thread pools, caches
print("ready", flush=True)
for line in sys.stdin:
    calls = int(line)
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        epoch()
        best = min(best, time.perf_counter() - start)
    print(best, flush=True)
"""

BUSY = "import sys\nprint('ready', flush=True)\nwhile True:\n    pass\n"


class Contestant:
    """A child process that times epochs on request."""

    def __init__(self, name, kind, extra_env, samples, threads):
        env = {k: v for k, v in os.environ.items() if k not in POLICY_VARIABLES}
        env.update(extra_env, OMP_DISPLAY_ENV="verbose")
        self.name = name
        self.stderr = tempfile.TemporaryFile(mode="w+")  # libgomp prints its settings there at load
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD.format(here=HERE), kind, str(samples), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            cwd="/",
        )
        if self.process.stdout.readline().strip() != "ready":
            self.stderr.seek(0)
            raise RuntimeError("{} did not start: {}".format(name, self.stderr.read()[-2000:]))
        self.spincount = None

    def time(self, calls):
        self.process.stdin.write("{}\n".format(calls))
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.stderr.seek(0)
        spin = re.findall(r"GOMP_SPINCOUNT = '(\d+)'", self.stderr.read())
        self.spincount = ", ".join(sorted(set(spin))) or "?"
        self.stderr.close()


def busy_process():
    process = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True)
    if process.stdout.readline().strip() != "ready":
        raise RuntimeError("the busy process did not start")
    return process


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--calls", type=int, default=3, help="epochs per measurement (the fastest counts)"
    )
    parser.add_argument("--samples", type=int, default=320, help="samples per epoch (batch 32)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument(
        "--quiet-only", action="store_true", help="skip the busy process (quick quiet check)"
    )
    args = parser.parse_args()
    contestants = [
        Contestant(name, "bnpy", env, args.samples, args.threads) for name, env in CANDIDATES
    ]
    try:
        import torch  # noqa: F401  (only to know whether the torch child can run)

        have_torch = not args.no_torch
    except ImportError:
        have_torch = False
    if have_torch:
        contestants.append(
            Contestant(
                "torch " + torch.__version__ + " (its defaults)",
                "torch",
                {},
                args.samples,
                args.threads,
            )
        )
    quiet = {c.name: [] for c in contestants}
    busy = {c.name: [] for c in contestants}
    try:
        for round_index in range(args.rounds):
            order = (
                contestants[round_index % len(contestants) :]
                + contestants[: round_index % len(contestants)]
            )
            for contestant in order:
                quiet[contestant.name].append(contestant.time(args.calls))
                if args.quiet_only:
                    busy[contestant.name].append(float("nan"))
                    continue
                competitor = busy_process()
                try:
                    busy[contestant.name].append(contestant.time(args.calls))
                finally:
                    competitor.kill()
                    competitor.wait()
            print(
                "round {}/{}: {}".format(
                    round_index + 1,
                    args.rounds,
                    json.dumps(
                        {
                            c.name: [round(quiet[c.name][-1], 4), round(busy[c.name][-1], 4)]
                            for c in contestants
                        }
                    ),
                ),
                file=sys.stderr,
                flush=True,
            )  # quiet and busy seconds: a cut-short run still tells
    finally:
        for contestant in contestants:
            contestant.close()

    def summary(values):
        return "{:.2f} ({:.2f}-{:.2f})".format(statistics.median(values), min(values), max(values))

    print(
        "cores: {}  threads: {}  epoch: {} samples, batch 32  rounds: {}  fastest of {} epochs per "
        "measurement; load average at the end: {}".format(
            len(os.sched_getaffinity(0)),
            args.threads,
            args.samples,
            args.rounds,
            args.calls,
            " ".join("{:.1f}".format(v) for v in os.getloadavg()),
        )
    )
    print(
        "{:<34} {:>13} {:>10} {:>18} {:>18}".format(
            "contestant", "spincount", "quiet s", "quiet / default", "busy / quiet"
        )
    )
    for contestant in contestants:
        name = contestant.name
        vs_default = [q / b for q, b in zip(quiet[name], quiet[BASELINE])]
        slowdown = [b / q for b, q in zip(busy[name], quiet[name])]
        print(
            "{:<34} {:>13} {:>10.3f} {:>18} {:>18}".format(
                name,
                contestant.spincount,
                statistics.median(quiet[name]),
                summary(vs_default),
                summary(slowdown),
            )
        )
    print(json.dumps({"quiet": quiet, "busy": busy}))


if __name__ == "__main__":
    main()
