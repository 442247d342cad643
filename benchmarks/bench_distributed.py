"""Data-parallel training over MPI against one process, measured in the same run.

One training step of the article's network with BN in all four places (group all-comments,
355,192 parameters, 32x32x3 random images) on a global batch of B images (default 32 and 128):

  * 1 proc x 1 thread   Sequential.train_on_batch on rank 0, bnpy.set_num_threads(1) and NumPy's
                        BLAS limited to 1 thread (threadpoolctl);
  * 1 proc x 2 threads  the same with 2 threads (train_on_batch then caps BLAS at 1 thread while
                        bnpy's kernels run on 2, bnpy's own policy: bnpy._threads);
  * 2 procs x 1 thread  DataParallel.train_step on both ranks, synchronized BN, B/2 images each.

While rank 0 measures a one-process step, rank 1 waits in a sleeping poll (not in MPI's busy
wait, which would take a core). Interleaved rounds (the three in turn), the fastest of --calls
steps of each per round, the median over rounds of the per-round ratios, and the spread of those
ratios (the machine is shared: their spread says how noisy the run was).

Run (it starts itself under mpirun when not already under it; needs mpi4py and an MPI runtime):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_distributed.py
Options: --batches 32 128, --rounds 7, --calls 3, --markdown.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np


def relaunch_under_mpirun(argv):
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    mpirun = mpirun if os.path.exists(mpirun) else "mpirun"
    env = dict(os.environ, BNPY_BENCH_UNDER_MPI="1")
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")  # Open MPI refuses root without both
    env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    # waiting ranks yield their core instead of polling it: on a machine shared with other work
    # a polling rank takes the core its partner needs (docs/distributed.md)
    env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    # --bind-to none: Open MPI would bind rank 0 to one core, and its 2-thread runs to that core
    command = [mpirun, "-n", "2", "--bind-to", "none", sys.executable, "-m", "mpi4py"]
    return subprocess.call(command + [os.path.abspath(__file__)] + argv, env=env)


def idle_until_rank0_done(comm):
    """Wait for rank 0's barrier without spinning on a core."""
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.0005)


def fastest(calls, step, *step_args):
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        step(*step_args)
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("BNPY_BENCH_UNDER_MPI"):
        sys.exit(relaunch_under_mpirun(sys.argv[1:]))

    from threadpoolctl import threadpool_limits

    import bnpy
    from bnpy import distributed
    from bnpy.experiments.article import build_model

    context = distributed.init(threads=1)
    comm, rank = context.comm, context.rank
    if context.size != 2:
        sys.exit("bench_distributed: run on 2 ranks (got {})".format(context.size))
    rows = []
    for batch in args.batches:
        rng = np.random.default_rng(0)
        x = rng.random((batch, 32, 32, 3), dtype=np.float32)
        y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
        np.random.seed(0)
        parallel = build_model("all-comments", (32, 32, 3), synchronized=True)
        parallel.compile(loss="categorical_crossentropy", optimizer="adadelta")
        trainer = distributed.DataParallel(parallel, context)
        solo = None
        if rank == 0:
            np.random.seed(0)
            solo = build_model("all-comments", (32, 32, 3))
            solo.compile(loss="categorical_crossentropy", optimizer="adadelta")
        times = {"1x1": [], "1x2": [], "2x1": []}
        for round_index in range(args.rounds + 1):  # round 0 warms up
            for threads in (1, 2):
                if rank == 0:
                    bnpy.set_num_threads(threads)
                    threadpool_limits(threads, user_api="blas")
                    took = fastest(args.calls, solo.train_on_batch, x, y)
                    comm.Ibarrier().Wait()
                    if round_index:
                        times["1x%d" % threads].append(took)
                else:
                    idle_until_rank0_done(comm)
            bnpy.set_num_threads(1)
            threadpool_limits(1, user_api="blas")
            comm.Barrier()
            took = fastest(args.calls, trainer.train_step, x, y)
            if round_index:
                times["2x1"].append(took)
        if rank == 0:
            t = {k: np.asarray(v) for k, v in times.items()}
            vs1, vs2 = t["1x1"] / t["2x1"], t["1x2"] / t["2x1"]
            rows.append(
                (
                    batch,
                    *(1e3 * np.median(t[k]) for k in ("1x1", "1x2", "2x1")),
                    np.median(vs1),
                    vs1.min(),
                    vs1.max(),
                    np.median(vs2),
                    vs2.min(),
                    vs2.max(),
                )
            )
    if rank == 0:
        head = (
            "| global batch | 1 proc x 1 thread | 1 proc x 2 threads | 2 procs x 1 thread "
            "| speed-up vs 1x1 (min-max) | vs 1x2 (min-max) |"
        )
        print(head if args.markdown else head.replace("|", " "))
        if args.markdown:
            print("|---" * 6 + "|")
        for b, a, c, d, s1, l1, h1, s2, l2, h2 in rows:
            line = (
                "| {} | {:.1f} ms | {:.1f} ms | {:.1f} ms | {:.2f}x ({:.2f}-{:.2f}) "
                "| {:.2f}x ({:.2f}-{:.2f}) |".format(b, a, c, d, s1, l1, h1, s2, l2, h2)
            )
            print(line if args.markdown else line.replace("|", " "))
        print(
            "({} rounds, fastest of {} steps per round; medians of per-round ratios)".format(
                args.rounds, args.calls
            )
        )


if __name__ == "__main__":
    main()
