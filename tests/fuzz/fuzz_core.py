#!/usr/bin/env python3
"""A bounded fuzz campaign over every function of bnpy._core and bnpy.ops (issue 6, item 1).

    python tests/fuzz/fuzz_core.py [--inputs 100000] [--seed 1] [--jobs 1] [--timeout 20]
    python tests/fuzz/fuzz_core.py --replay SEED:INDEX      # re-run one case, verbosely

Each input is one call built by tests/fuzz/cases.py from (seed, index): a valid call, usually
mutated into a bad one (see that module for what is generated and what is checked). The campaign
fails (non-zero exit) on

- a contract violation: a rejected input raising anything but TypeError/ValueError, an error
  without a message, a write into an argument on a rejected call (or into an input on an accepted
  one), a result that depends on the input's memory layout;
- a crash or a sanitizer report: the worker process dies (run it under ASan/UBSan with
  halt_on_error=1, see .ci/hardening.sh) -- the driver names the last case started;
- a hang: one input running longer than --timeout seconds (faulthandler dumps the stacks and
  ends the worker).

Workers are separate processes (``--jobs``), each taking every jobs-th index, so a crash is
attributed to one case, which ``--replay`` reproduces. Deterministic: the same seed and count run
the same inputs. A seeded random generator rather than atheris: atheris needs a libFuzzer-enabled
clang, which this machine does not have; the mutations here are structured (shapes, dtypes,
strides, aliasing), which is where the C boundary's bugs live.
"""

import argparse
import collections
import faulthandler
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

# A sanitizer report (not ASan's "failed to allocate" warnings, which allocator_may_return_null
# turns into the MemoryError of an honest-but-huge request).
SANITIZER_REPORT = re.compile(r"ERROR: \w*Sanitizer|runtime error:|SUMMARY: \w*Sanitizer")
HERE = os.path.dirname(os.path.abspath(__file__))


def _import_cases():
    # tests/fuzz/cases.py, as a module of the fuzz package: it imports its siblings (builders_*.py,
    # calls.py) relatively
    sys.path.insert(0, os.path.dirname(HERE))
    from fuzz import cases

    return cases


MEMORY_LIMIT = 6 << 30  # bytes a worker may allocate: a legitimately huge request fails fast


def _limit_memory():
    """Make an honest-but-huge allocation (a padding of 2**31 asks for a 64 GiB im2col matrix)
    fail with MemoryError instead of swapping the machine into the OOM killer. RLIMIT_AS cannot be
    used under AddressSanitizer (its shadow memory reserves terabytes of address space); there
    ASAN_OPTIONS=max_allocation_size_mb=...:allocator_may_return_null=1 does the same."""
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def worker(seed, start, stop, step, timeout, progress_path):
    """Run cases start, start+step, ... < stop; record each index in progress_path before it runs."""
    import numpy as np

    np.seterr(all="ignore")
    _limit_memory()
    cases = _import_cases()
    fd = os.open(progress_path, os.O_RDWR | os.O_CREAT, 0o600)
    counts = collections.Counter()
    faulthandler.enable()
    for index in range(start, stop, step):
        os.pwrite(fd, struct.pack("<q", index), 0)
        faulthandler.dump_traceback_later(timeout, exit=True)
        case = cases.make_case(seed, index)
        try:
            outcome = cases.run_case(case)
        except cases.ContractViolation as exc:
            faulthandler.cancel_dump_traceback_later()
            print("CONTRACT VIOLATION at case {}:{}\n  {}".format(seed, index, exc), flush=True)
            return 1
        counts[(case.name, outcome)] += 1
    faulthandler.cancel_dump_traceback_later()
    os.pwrite(fd, struct.pack("<q", -1), 0)
    os.close(fd)
    for (name, outcome), n in sorted(counts.items()):
        print("COUNT\t{}\t{}\t{}".format(name, outcome, n), flush=True)
    return 0


def replay(spec):
    import numpy as np

    np.seterr(all="ignore")
    seed, index = (int(v) for v in spec.split(":"))
    cases = _import_cases()
    case = cases.make_case(seed, index)
    print("case {}:{}: {}".format(seed, index, case.describe()), flush=True)
    print("outcome:", cases.run_case(case))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="seconds per input before it is a hang"
    )
    parser.add_argument("--replay", metavar="SEED:INDEX")
    parser.add_argument(
        "--require-core-under",
        metavar="DIR",
        help="fail unless bnpy._core is loaded from DIR (e.g. the sanitizer build)",
    )
    parser.add_argument(
        "--worker",
        nargs=5,
        metavar=("START", "STOP", "STEP", "TIMEOUT", "PROGRESS"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args(argv)
    if args.replay:
        return replay(args.replay)
    if args.worker:
        start, stop, step = (int(v) for v in args.worker[:3])
        return worker(args.seed, start, stop, step, float(args.worker[3]), args.worker[4])

    if args.require_core_under:
        probe = subprocess.run(
            [sys.executable, "-c", "import bnpy._core as c; print(c.__file__)"],
            capture_output=True,
            text=True,
        )
        where = os.path.realpath(probe.stdout.strip() or "?")
        if probe.returncode != 0 or not where.startswith(os.path.realpath(args.require_core_under)):
            print(
                "FUZZ FAILURE: bnpy._core is {} (rc {}), not under {}\n{}".format(
                    where, probe.returncode, args.require_core_under, probe.stderr[-2000:]
                )
            )
            return 1
        print("fuzz: bnpy._core from", where)
    started = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="bnpy-fuzz-")
    procs = []
    for job in range(args.jobs):
        progress = os.path.join(tmp, "progress-{}".format(job))
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--seed",
            str(args.seed),
            "--worker",
            str(job),
            str(args.inputs),
            str(args.jobs),
            str(args.timeout),
            progress,
        ]
        procs.append(
            (
                job,
                progress,
                subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
            )
        )
    failed = False
    totals = collections.Counter()
    for job, progress, proc in procs:
        out, err = proc.communicate()
        for line in out.splitlines():
            if line.startswith("COUNT\t"):
                _, name, outcome, n = line.split("\t")
                totals[(name, outcome)] += int(n)
            else:
                print(line)
        if proc.returncode != 0:
            failed = True
            last = None
            if os.path.exists(progress) and os.path.getsize(progress) >= 8:
                with open(progress, "rb") as f:
                    last = struct.unpack("<q", f.read(8))[0]
            how = (
                "killed by signal {}".format(-proc.returncode)
                if proc.returncode < 0
                else "exit status {}".format(proc.returncode)
            )
            print(
                "FUZZ FAILURE: worker {} ended with {} during case {}:{}".format(
                    job, how, args.seed, last
                )
            )
            print(
                "  reproduce: {} {} --replay {}:{}".format(
                    sys.executable, os.path.abspath(__file__), args.seed, last
                )
            )
            tail = err[-6000:]
            if tail:
                print("  worker stderr (tail):\n" + tail)
        elif err.strip():
            # A sanitizer report that did not stop the process still fails the campaign.
            if SANITIZER_REPORT.search(err):
                failed = True
                print("FUZZ FAILURE: sanitizer output from worker {}:\n{}".format(job, err[-6000:]))
    elapsed = time.perf_counter() - started
    done = sum(totals.values())
    by_function = collections.defaultdict(collections.Counter)
    for (name, outcome), n in totals.items():
        by_function[name][outcome] += n
    print("{:<36} {:>8} {:>9} {:>9}".format("function", "accepted", "TypeError", "ValueError"))
    for name in sorted(by_function):
        c = by_function[name]
        other = {
            k: v
            for k, v in c.items()
            if k not in ("ok", "rejected:TypeError", "rejected:ValueError")
        }
        print(
            "{:<36} {:>8} {:>9} {:>9} {}".format(
                name, c["ok"], c["rejected:TypeError"], c["rejected:ValueError"], other or ""
            )
        )
    print(
        "fuzz: {} inputs (seed {}) in {:.1f} s, {} functions, {}".format(
            done, args.seed, elapsed, len(by_function), "FAILED" if failed else "no failure"
        )
    )
    if not failed and done != args.inputs:
        print("FUZZ FAILURE: {} of {} inputs reported".format(done, args.inputs))
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
