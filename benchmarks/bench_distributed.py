"""Data-parallel training over MPI against one process, measured in the same run.

One training step of the article's network with BN in all four places (group all-comments,
355,192 parameters, 32x32x3 random images) on a global batch of B images (default 32 and 128):

  * 1 proc x 1 thread   Sequential.train_on_batch on rank 0, bnpy.set_num_threads(1) and NumPy's
                        BLAS limited to 1 thread (threadpoolctl);
  * 1 proc x 2 threads  the same with 2 threads (train_on_batch then caps BLAS at 1 thread while
                        bnpy's kernels run on 2, bnpy's own policy: bnpy._threads);
  * 2 procs x 1 thread  DataParallel.train_step on both ranks, synchronized BN, B/2 images each
                        (one Allreduce of the gradients after the backward, the default), and
                        the same with that sum overlapping the backward (overlap=True);
  * 2 x 1, local BN     the same with synchronized=False: each rank normalises its own half (no
                        BN collectives; only the gradients' Allreduce). Not the same training: a
                        bound on what the synchronisation costs;
  * 2 alone, no MPI     the machine's own limit for two processes: both ranks run
                        Sequential.train_on_batch on their half of the batch at the same time, no
                        collective at all while timed (shared memory bandwidth, caches, clocks);
                        the step's time is the slower rank's.

While rank 0 measures a one-process step, rank 1 waits in a sleeping poll (not in MPI's busy
wait, which would take a core). Interleaved rounds (all configurations in turn), the fastest of
--calls steps of each per round, the median over rounds of the per-round ratios against 1 x 1 and
1 x 2, and the spread of those ratios (the machine is shared: their spread says how noisy the run
was).

--profile B: where the time of a synchronized step goes on each rank (global batch B): the
synchronized BN's kernels, the time blocked in each kind of collective (a barrier timed just
before each one: waiting for the slower rank; then the collective itself), the other layers, and
the one-process step on the same half batch for comparison. The barriers add sync points: the
profile's step is not the benchmark's.

--kernels: the synchronized BN's phases (one process, no MPI) against the ordinary fused training
kernels on the first BN's input of a 16-image shard, (16, 32, 32, 96) float32, one thread:
statistics + normalisation against the forward, gradient sums + dx against the backward
(interleaved rounds, fastest of --calls per round, medians; outputs written into reused arrays).

Run (it starts itself under mpirun when not already under it; needs mpi4py and an MPI runtime):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_distributed.py
Options: --batches 32 128, --rounds 7, --calls 3, --markdown, --profile B, --kernels.
"""

import argparse
import collections
import contextlib
import inspect
import os
import subprocess
import sys
import time
import warnings

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


def make_model(synchronized):
    from bnpy.experiments.article import build_model

    np.random.seed(0)
    model = build_model("all-comments", (32, 32, 3), synchronized=synchronized)
    model.compile(loss="categorical_crossentropy", optimizer="adadelta")
    return model


def make_batch(batch):
    rng = np.random.default_rng(0)
    x = rng.random((batch, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, batch)]
    return x, y


def make_trainer(context, synchronized, **options):
    from bnpy import distributed

    with warnings.catch_warnings():  # local BN's warning: intended here
        warnings.simplefilter("ignore", RuntimeWarning)
        return distributed.DataParallel(make_model(synchronized), context, **options)


def measure(args, context):
    """{batch: {configuration: [per-round seconds]}} on rank 0 (None elsewhere)."""
    from threadpoolctl import threadpool_limits

    import bnpy
    from bnpy import distributed

    comm, rank = context.comm, context.rank
    results = {}
    for batch in args.batches:
        x, y = make_batch(batch)
        start, stop = context.shard(batch)
        two_procs = {"2 procs x 1 thread": make_trainer(context, True)}
        if "overlap" in inspect.signature(distributed.DataParallel).parameters:
            two_procs["2 x 1, gradient sum overlapping"] = make_trainer(context, True, overlap=True)
        two_procs["2 x 1, local BN"] = make_trainer(context, False)
        alone = make_model(False)  # every rank: its half, on its own
        solo = make_model(False) if rank == 0 else None
        times = collections.defaultdict(list)
        for round_index in range(args.rounds + 1):  # round 0 warms up
            for threads in (1, 2):
                if rank == 0:
                    bnpy.set_num_threads(threads)
                    threadpool_limits(threads, user_api="blas")
                    took = fastest(args.calls, solo.train_on_batch, x, y)
                    comm.Ibarrier().Wait()
                    if round_index:
                        times["1 proc x %d thread%s" % (threads, "s" * (threads > 1))].append(took)
                else:
                    idle_until_rank0_done(comm)
            bnpy.set_num_threads(1)
            threadpool_limits(1, user_api="blas")
            for name, trainer in two_procs.items():
                comm.Barrier()
                took = fastest(args.calls, trainer.train_step, x, y)
                if round_index:
                    times[name].append(took)
            comm.Barrier()
            took = fastest(args.calls, alone.train_on_batch, x[start:stop], y[start:stop])
            slower = comm.allreduce(took, op=context._mpi.MAX)
            if round_index:
                times["2 alone, no MPI (limit)"].append(slower)
        results[batch] = dict(times)
    return results if rank == 0 else None


def print_table(results, args):
    head = "| global batch | configuration | step | vs 1 x 1 (min-max) | vs 1 x 2 (min-max) |"
    print(head if args.markdown else head.replace("|", " "))
    if args.markdown:
        print("|---" * 5 + "|")
    for batch, times in results.items():
        t = {k: np.asarray(v) for k, v in times.items()}
        for name, seconds in t.items():
            cells = [str(batch), name, "{:.1f} ms".format(1e3 * np.median(seconds))]
            for reference in ("1 proc x 1 thread", "1 proc x 2 threads"):
                ratio = t[reference] / seconds
                cells.append(
                    "{:.2f}x ({:.2f}-{:.2f})".format(np.median(ratio), ratio.min(), ratio.max())
                )
            line = "| " + " | ".join(cells) + " |"
            print(line if args.markdown else line.replace("|", " "))
    print(
        "({} rounds, fastest of {} steps per round; medians of per-round ratios)".format(
            args.rounds, args.calls
        )
    )


# ---- --kernels ------------------------------------------------------------------------------


def kernels(args):
    import bnpy
    from bnpy import ops

    bnpy.set_num_threads(1)
    shape, channels = (16, 32, 32, 96), 96
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    gamma, beta = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    out = np.empty_like(x)
    n, mean, m2 = ops.batch_norm_local_stats(x)
    var = m2 / n
    sum_dy, sum_dyxc = ops.batch_norm_grad_sums(dy, x, mean)
    _, mean32, var32 = ops.batch_norm_forward(x, gamma, beta)
    phases = {
        "sync: local statistics": lambda: ops.batch_norm_local_stats(x),
        "sync: normalize": lambda: ops.batch_norm_normalize(x, gamma, beta, mean, var, out=out),
        "sync: gradient sums": lambda: ops.batch_norm_grad_sums(dy, x, mean),
        "sync: dx": lambda: ops.batch_norm_backward_apply(
            dy, x, gamma, mean, var, sum_dy, sum_dyxc, n, out=out
        ),
        "ordinary forward": lambda: ops.batch_norm_forward(x, gamma, beta),
        "ordinary backward": lambda: ops.batch_norm_backward(dy, x, gamma, mean32, var32),
    }
    times = collections.defaultdict(list)
    for round_index in range(args.rounds + 1):  # round 0 warms up
        for name, call in phases.items():
            took = fastest(args.calls, call)
            if round_index:
                times[name].append(took)
    ms = {name: 1e3 * np.median(t) for name, t in times.items()}
    print("(16, 32, 32, 96) float32, 1 thread, ms (medians of {} rounds)".format(args.rounds))
    for name, value in ms.items():
        print("{:25s} {:6.3f}".format(name, value))
    forward = ms["sync: local statistics"] + ms["sync: normalize"]
    backward = ms["sync: gradient sums"] + ms["sync: dx"]
    print(
        "sync forward {:.3f} ({:.2f}x the ordinary), sync backward {:.3f} ({:.2f}x)".format(
            forward,
            forward / ms["ordinary forward"],
            backward,
            backward / ms["ordinary backward"],
        )
    )


# ---- --profile ------------------------------------------------------------------------------


class Clock:
    """Seconds spent per label, with the labels' call counts."""

    def __init__(self):
        self.seconds = collections.defaultdict(float)
        self.calls = collections.defaultdict(int)

    @contextlib.contextmanager
    def timing(self, label):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[label] += time.perf_counter() - t0
            self.calls[label] += 1

    def wrap(self, label, function):
        def timed(*args, **kwargs):
            with self.timing(label):
                return function(*args, **kwargs)

        return timed


def instrument(clock, model, context=None):
    """Time every layer's forward and backward (per kind of layer), and, with a context, the sync
    BN kernels and the collectives (a timed barrier first: the wait for the slower rank)."""
    from bnpy import ops

    for layer in model.layers:
        kind = type(layer).__name__
        layer.forward = clock.wrap(kind + " forward", layer.forward)
        layer.backward = clock.wrap(kind + " backward", layer.backward)
    if context is None:
        return
    from bnpy.distributed import _sync_bn

    source = inspect.getsource(_sync_bn)  # the ops the synchronized layer calls
    for name in [n for n in ops.__all__ if "ops.{}(".format(n) in source]:
        setattr(ops, name, clock.wrap("kernel " + name, getattr(ops, name)))
    for name, label in (("allgather", "BN statistics"), ("allreduce_sum", "sums")):
        collective = getattr(context, name)

        def timed(*args, _collective=collective, _label=label):
            label = _label
            if label == "sums":  # the BN layers' 2·C sums, or every weight gradient
                label = "BN gradient sums" if args[0].size < 4096 else "weight gradients"
            with clock.timing("wait before " + label):
                context.comm.Barrier()
            with clock.timing("collective " + label):
                return _collective(*args)

        setattr(context, name, timed)
    for name, label in (("iallreduce_sum", "start"), ("test_all", "progress")):
        if hasattr(context, name):  # the gradients' sum overlapping the backward
            setattr(
                context,
                name,
                clock.wrap(label + " weight-gradient buckets", getattr(context, name)),
            )
    if hasattr(context, "wait_all"):
        wait_all = context.wait_all

        def timed_wait(requests):
            with clock.timing("wait before weight gradients"):
                context.comm.Barrier()
            with clock.timing("collective weight gradients (the buckets' rest)"):
                return wait_all(requests)

        context.wait_all = timed_wait


def profile(args, context):
    import bnpy

    bnpy.set_num_threads(1)
    batch, steps = args.profile, max(args.rounds, 3)
    x, y = make_batch(batch)
    start, stop = context.shard(batch)
    trainer = make_trainer(context, True)
    alone = make_model(False)
    steps_of = {
        "synchronized step": lambda: trainer.train_step(x, y),
        "one process, half batch": lambda: alone.train_on_batch(x[start:stop], y[start:stop]),
    }
    for step in steps_of.values():  # warm-up, outside the clocks
        step()
    clocks = {"synchronized step": Clock(), "one process, half batch": Clock()}
    instrument(clocks["synchronized step"], trainer.model, context)
    instrument(clocks["one process, half batch"], alone)
    totals = {}
    for name, step in steps_of.items():
        context.comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        totals[name] = (time.perf_counter() - t0) / steps
    gathered = context.comm.gather((totals, {n: dict(c.seconds) for n, c in clocks.items()}))
    if context.rank != 0:
        return
    print("profile: global batch {}, {} steps, ms per step".format(batch, steps))
    for rank, (rank_totals, rank_clocks) in enumerate(gathered):
        for name, seconds in rank_clocks.items():
            print("rank {}, {}: {:.2f} ms".format(rank, name, 1e3 * rank_totals[name]))
            accounted = 0.0
            for label in sorted(seconds, key=seconds.get, reverse=True):
                print("    {:45s} {:7.2f}".format(label, 1e3 * seconds[label] / steps))
                if not label.startswith(("kernel", "wait before BN", "collective BN")):
                    accounted += seconds[label]
            other = rank_totals[name] - accounted / steps
            print("    {:45s} {:7.2f}".format("the rest (loss, optimizer, ...)", 1e3 * other))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--profile", type=int, metavar="B")
    parser.add_argument("--kernels", action="store_true")
    args = parser.parse_args()
    if args.kernels:
        kernels(args)
        return
    if not os.environ.get("BNPY_BENCH_UNDER_MPI"):
        sys.exit(relaunch_under_mpirun(sys.argv[1:]))

    from bnpy import distributed

    context = distributed.init(threads=1)
    if context.size != 2:
        sys.exit("bench_distributed: run on 2 ranks (got {})".format(context.size))
    if args.profile:
        profile(args, context)
        return
    results = measure(args, context)
    if context.rank == 0:
        print_table(results, args)


if __name__ == "__main__":
    main()
