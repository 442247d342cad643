"""Benchmark of bnpy's batch normalization kernels (float32), against references in the same run.

For each shape, channels-last (axis=-1) and channels-first (axis=1), and 1 and 2 threads, the
median time per call of

  fwd      training forward              bnpy.ops.batch_norm_forward
  bwd      training backward             bnpy.ops.batch_norm_backward
  fwd+bwd  the two in a row (a training step of one BN layer)
  inf      inference forward             bnpy.ops.batch_norm_inference

for bnpy (outputs written into preallocated out= buffers, as a training loop reuses them), a
float32 NumPy implementation (the obvious vectorised formulas), and torch.nn.functional.batch_norm
with autograd (when torch is installed; channels-last via memory_format=torch.channels_last).

Also the float64 NumPy twins of tests/reference.py (fwd+bwd only), the reference the tests use.

The bandwidth floor: a copy (read + write) and a read (a max or a sum) of an array of the same size, timed
in the same run (the faster of NumPy single-threaded and torch with the same thread count). A
forward must at least read x twice and write y once (t_read + t_copy); a backward read x and dy
twice and write dx once (3·t_read + t_copy); fwd+bwd is their sum; inference reads x once and
writes y once (t_copy).

The machine is shared and noisy: all the functions of a case are timed in rounds, one batch each,
interleaved; times are medians over the rounds, and every ratio is the median over the rounds of
the ratio within a round (a burst of load, or a lower clock, slows a round's batches alike). Only
ratios measured in the same run are meaningful. Usage:

    python benchmarks/bench_batchnorm.py [--quick] [--repeats N] [--threads 1,2] [--shapes 32x16x16x96,...]
                                         [--no-torch] [--cpu-time]

On a machine shared with other busy processes, OpenMP's spin-waiting threads (bnpy's and torch's)
make 2-thread wall times meaningless; run with OMP_WAIT_POLICY=passive there (the default, active,
is best on an otherwise idle machine).
"""

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# tests/ for reference.py only: bnpy is the installed package (a source checkout's bnpy/ has no
# compiled _core after `pip install .`; with an in-place build, run with PYTHONPATH=.).
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import reference  # noqa: E402  (tests/reference.py: the float64 NumPy twins of the kernels)

import bnpy  # noqa: E402
from bnpy import ops  # noqa: E402

SHAPES = [
    (32, 32, 32, 96),
    (32, 16, 16, 96),
    (32, 16, 16, 120),
    (32, 10),
    (128, 32, 32, 64),
    (256, 14, 14, 256),
]
SEED_CONV_SHAPES = [(32, 32, 32, 96), (32, 16, 16, 96), (32, 16, 16, 120)]
EPS = 1e-3


CLOCK = time.perf_counter  # --cpu-time: time.thread_time for the single-threaded cases


def calls_for(fn, min_time):
    """How many calls of fn make a timed batch of about min_time seconds (fn is warmed up)."""
    fn()
    t0 = CLOCK()
    fn()
    once = max(CLOCK() - t0, 1e-6)
    return max(1, int(min_time / once))


def interleaved_rounds(functions, repeats, min_time=0.01):
    """Seconds per call of each of `functions` (name -> (fn, min_time or None)), one per round.

    The functions are timed in rounds, one batch of each per round, so that a burst of load from
    other processes on a shared machine slows every function's batch alike instead of all the
    batches of one (the ratios, not the absolute times, are what this benchmark reports). Each
    batch starts with one untimed call.
    """
    plan = {
        name: (fn, calls_for(fn, own if own is not None else min_time))
        for name, (fn, own) in functions.items()
    }
    samples = {name: [] for name in plan}
    for _ in range(repeats):
        for name, (fn, calls) in plan.items():
            fn()
            t0 = CLOCK()
            for _ in range(calls):
                fn()
            samples[name].append((CLOCK() - t0) / calls)
    return samples


# ---- the NumPy reference (float32, vectorised) ----------------------------------------------------


def numpy_forward(x, gamma, beta, axes, bshape):
    mean = x.mean(axis=axes)
    xc = x - mean.reshape(bshape)
    var = (xc * xc).mean(axis=axes)
    invstd = 1.0 / np.sqrt(var + EPS)
    return xc * (gamma * invstd).reshape(bshape) + beta.reshape(bshape), mean, var, invstd


def numpy_backward(dy, x, gamma, mean, invstd, axes, bshape):
    m = x.size // mean.size
    xhat = (x - mean.reshape(bshape)) * invstd.reshape(bshape)
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * xhat).sum(axis=axes)
    dx = (gamma * invstd / m).reshape(bshape) * (
        m * dy - dbeta.reshape(bshape) - xhat * dgamma.reshape(bshape)
    )
    return dx, dgamma, dbeta


def numpy_inference(x, gamma, beta, mean, var, bshape):
    scale = gamma / np.sqrt(var + EPS)
    return (x - mean.reshape(bshape)) * scale.reshape(bshape) + beta.reshape(bshape)


# ---- one case ----------------------------------------------------------------------------------------


def bench_case(shape, channels_last, threads, repeats, torch, with_numpy):
    rng = np.random.default_rng(0)
    if channels_last or len(shape) == 2:
        logical = shape
        axis = len(shape) - 1
    else:  # (N, H, W, C) -> (N, C, H, W)
        logical = (shape[0], shape[-1]) + tuple(shape[1:-1])
        axis = 1
    x = rng.standard_normal(logical).astype(np.float32)
    dy = rng.standard_normal(logical).astype(np.float32)
    C = logical[axis]
    gamma = rng.uniform(0.5, 2, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    y_out, dx_out, inf_out = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    axes = tuple(d for d in range(x.ndim) if d != axis)
    bshape = [1] * x.ndim
    bshape[axis] = C

    bnpy.set_num_threads(threads)
    _, mean, var = ops.batch_norm_forward(x, gamma, beta, axis=axis, out=y_out)
    functions = {}  # "library op" -> (fn, batch time or None for the default)

    def b_step():
        _, m, v = ops.batch_norm_forward(x, gamma, beta, axis=axis, out=y_out)
        ops.batch_norm_backward(dy, x, gamma, m, v, axis=axis, out=dx_out)

    functions["bnpy fwd"] = (
        lambda: ops.batch_norm_forward(x, gamma, beta, axis=axis, out=y_out),
        None,
    )
    functions["bnpy bwd"] = (
        lambda: ops.batch_norm_backward(dy, x, gamma, mean, var, axis=axis, out=dx_out),
        None,
    )
    functions["bnpy fwd+bwd"] = (b_step, None)
    functions["bnpy inf"] = (
        lambda: ops.batch_norm_inference(x, gamma, beta, mean, var, axis=axis, out=inf_out),
        None,
    )

    if with_numpy:
        _, nmean, nvar, ninvstd = numpy_forward(x, gamma, beta, axes, bshape)

        def n_step():
            _, m, v, s = numpy_forward(x, gamma, beta, axes, bshape)
            numpy_backward(dy, x, gamma, m, s, axes, bshape)

        def twin_step():
            _, m, v = reference.batch_norm_forward(x, gamma, beta, axis, EPS)
            reference.batch_norm_backward(dy, x, gamma, m, v, axis, EPS)

        functions["numpy fwd"] = (lambda: numpy_forward(x, gamma, beta, axes, bshape), 0.0)
        functions["numpy bwd"] = (
            lambda: numpy_backward(dy, x, gamma, nmean, ninvstd, axes, bshape),
            0.0,
        )
        functions["numpy fwd+bwd"] = (n_step, 0.0)
        functions["numpy inf"] = (lambda: numpy_inference(x, gamma, beta, nmean, nvar, bshape), 0.0)
        functions["twin fwd+bwd"] = (twin_step, 0.0)

    # The bandwidth floor: NumPy single-threaded, and torch with `threads` threads when present.
    dst = np.empty_like(x)
    functions["numpy copy"] = (lambda: np.copyto(dst, x), None)
    # x.max(), not x.sum(): NumPy's float32 sum is pairwise and runs at ~1/3 of a read (155 against
    # 48 us on 3 MiB), which would price the read by the copy whenever torch is absent.
    functions["numpy read"] = (lambda: x.max(), None)
    if torch is not None:
        torch.set_num_threads(threads)
        tx_floor, tdst = torch.from_numpy(x), torch.from_numpy(dst)
        functions["torch copy"] = (lambda: tdst.copy_(tx_floor), None)
        functions["torch read"] = (lambda: tx_floor.sum(), None)

        F = torch.nn.functional
        memory_format = (
            torch.channels_last if (channels_last and x.ndim == 4) else torch.contiguous_format
        )
        if x.ndim == 4:  # torch's channel axis is 1: a channels-last tensor is NCHW logically
            nchw = np.moveaxis(x, -1, 1) if channels_last else x
            dnchw = np.moveaxis(dy, -1, 1) if channels_last else dy
        else:
            nchw, dnchw = x, dy
        tx = torch.from_numpy(np.ascontiguousarray(nchw)).contiguous(memory_format=memory_format)
        tdy = torch.from_numpy(np.ascontiguousarray(dnchw)).contiguous(memory_format=memory_format)
        tx.requires_grad_(True)
        tw = torch.from_numpy(gamma.copy()).requires_grad_(True)
        tb = torch.from_numpy(beta.copy()).requires_grad_(True)
        rm, rv = torch.zeros(C), torch.ones(C)

        def t_fwd():
            return F.batch_norm(tx, rm, rv, tw, tb, training=True, momentum=0.01, eps=EPS)

        ty = t_fwd()

        def t_step():
            out = F.batch_norm(tx, rm, rv, tw, tb, training=True, momentum=0.01, eps=EPS)
            return torch.autograd.grad(out, (tx, tw, tb), tdy)

        def t_inf():
            with torch.no_grad():
                return F.batch_norm(tx, rm, rv, tw, tb, training=False, eps=EPS)

        functions["torch fwd"] = (t_fwd, None)
        functions["torch bwd"] = (
            lambda: torch.autograd.grad(ty, (tx, tw, tb), tdy, retain_graph=True),
            None,
        )
        functions["torch fwd+bwd"] = (t_step, None)
        functions["torch inf"] = (t_inf, None)

    rounds = interleaved_rounds(functions, repeats)
    rounds = {name: np.array(times) for name, times in rounds.items()}
    ops_names = ("fwd", "bwd", "fwd+bwd", "inf")
    # Per round, the floor from that round's copy and read (the faster of NumPy's and torch's).
    t_copy = np.min([rounds[k] for k in ("numpy copy", "torch copy") if k in rounds], axis=0)
    t_read = np.minimum(
        np.min([rounds[k] for k in ("numpy read", "torch read") if k in rounds], axis=0), t_copy
    )
    per_round = {
        f"floor {op}": v
        for op, v in (
            ("fwd", t_read + t_copy),
            ("bwd", 3 * t_read + t_copy),
            ("fwd+bwd", 4 * t_read + 2 * t_copy),
            ("inf", t_copy),
        )
    }
    per_round.update(rounds)
    row = {
        lib: {op: float(np.median(per_round[f"{lib} {op}"])) for op in ops_names}
        for lib in ("bnpy", "numpy", "torch", "floor")
        if f"{lib} fwd" in per_round
    }
    if with_numpy:
        row["twin"] = {"fwd+bwd": float(np.median(per_round["twin fwd+bwd"]))}
    row["rounds"] = per_round
    return row


def round_ratios(row, numerator, denominator, op):
    """numerator/denominator for op in each round, both timed in the same round (so a change of
    the machine's speed between rounds, e.g. its clock under other load, cancels)."""
    r = row["rounds"]
    return r[f"{numerator} {op}"] / r[f"{denominator} {op}"]


def ratio(row, numerator, denominator, op):
    """The median over rounds of numerator/denominator for op (see round_ratios)."""
    return float(np.median(round_ratios(row, numerator, denominator, op)))


def spread(row, numerator, denominator, op):
    """The ratio's median and, in brackets, its lower and upper quartiles over the rounds: how far
    the machine's noise moved it in this run."""
    q1, q2, q3 = np.percentile(round_ratios(row, numerator, denominator, op), [25, 50, 75])
    return f"{q2:.2f} [{q1:.2f}-{q3:.2f}]"


def fmt_time(t):
    return f"{t * 1e6:9.1f}us" if t < 1e-3 else f"{t * 1e3:9.2f}ms"


def main():
    global CLOCK
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats, small shapes only")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--shapes", help="only these shapes, e.g. 32x16x16x96,32x10 (default: all)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-numpy", action="store_true")
    parser.add_argument(
        "--markdown", action="store_true", help="also print a summary table in Markdown"
    )
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="single-threaded cases: time the calling thread's CPU time (time.thread_time), "
        "which time spent descheduled on a busy machine does not inflate; every "
        "library then runs on this one thread (torch.set_num_threads(1))",
    )
    args = parser.parse_args()

    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("torch not installed: no torch column")
    shapes = [s for s in SHAPES if np.prod(s) <= 2**20] if args.quick else SHAPES
    if args.shapes:
        shapes = [tuple(int(n) for n in spec.split("x")) for spec in args.shapes.split(",")]
    repeats = 3 if args.quick else args.repeats
    threads_list = [int(t) for t in args.threads.split(",")]
    print(
        f"bnpy {bnpy.__version__}, OpenMP={bool(bnpy._core.HAVE_OPENMP)}, numpy {np.__version__}"
        + (f", torch {torch.__version__}" if torch is not None else "")
        + f", {os.cpu_count()} CPUs"
        + f", OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"
    )
    if hasattr(os, "getloadavg"):
        print(
            "load average at start: {:.1f} {:.1f} {:.1f} (other processes inflate wall times, "
            "above all with 2 threads)".format(*os.getloadavg())
        )
    print(
        "float32; medians of {} interleaved rounds; a ratio is the median of its per-round ratios; clock: {}\n".format(
            repeats,
            "thread CPU time for 1 thread, wall time otherwise" if args.cpu_time else "wall time",
        )
    )

    summary = []
    header = (
        f"{'shape':>18} {'layout':>6} {'thr':>3} {'op':>7} | {'bnpy':>11} {'floor':>11} {'bnpy/floor':>10}"
        f" | {'numpy':>11} {'numpy/bnpy':>10}"
        + (f" | {'torch':>11} {'torch/bnpy':>10}" if torch is not None else "")
    )
    print(header)
    print("-" * len(header))
    for shape in shapes:
        layouts = ["last"] if len(shape) == 2 else ["last", "first"]
        for layout in layouts:
            for threads in threads_list:
                CLOCK = time.thread_time if (args.cpu_time and threads == 1) else time.perf_counter
                row = bench_case(
                    shape, layout == "last", threads, repeats, torch, not args.no_numpy
                )
                for op in ("fwd", "bwd", "fwd+bwd", "inf"):
                    b = row["bnpy"][op]
                    line = (
                        f"{str(shape):>18} {layout:>6} {threads:>3} {op:>7} | {fmt_time(b)} "
                        f"{fmt_time(row['floor'][op])} {ratio(row, 'bnpy', 'floor', op):10.2f}"
                    )
                    line += (
                        f" | {fmt_time(row['numpy'][op])} {ratio(row, 'numpy', 'bnpy', op):10.1f}"
                        if "numpy" in row
                        else f" | {'-':>11} {'-':>10}"
                    )
                    if torch is not None:
                        line += f" | {fmt_time(row['torch'][op])} {ratio(row, 'torch', 'bnpy', op):10.2f}"
                    print(line, flush=True)
                summary.append((shape, layout, threads, row))
    print()
    # The "done means" of issue 2, from the figures above.
    mib = 2**20
    print("checks (issue 2): median ratio [lower-upper quartile over the rounds]")
    for shape, layout, threads, row in summary:
        nbytes = int(np.prod(shape)) * 4
        r = ratio(row, "bnpy", "floor", "fwd+bwd")
        i = ratio(row, "bnpy", "floor", "inf")
        notes = []
        if nbytes >= mib:  # the floor target is for tensors of 1 MiB and more; inference's for all
            notes.append(
                f"fwd+bwd/floor {spread(row, 'bnpy', 'floor', 'fwd+bwd')} ({'ok' if r <= 1.5 else 'over 1.5'})"
            )
        notes.append(
            f"inf/copy {spread(row, 'bnpy', 'floor', 'inf')} ({'ok' if i <= 1.3 else 'over 1.3'})"
        )
        if "numpy" in row:
            q = ratio(row, "numpy", "bnpy", "fwd+bwd")
            t = ratio(row, "twin", "bnpy", "fwd+bwd")
            notes.append(
                f"fwd+bwd: numpy-float32/bnpy {q:.1f}x, float64 twin (tests/reference.py)/bnpy "
                f"{t:.1f}x ({'ok' if t >= 10 else 'under 10x'})"
            )
        if "torch" in row and shape in SEED_CONV_SHAPES and layout == "last" and threads == 2:
            q = ratio(row, "torch", "bnpy", "fwd+bwd")
            notes.append(
                f"torch/bnpy {spread(row, 'torch', 'bnpy', 'fwd+bwd')}x ({'ok' if q >= 2 else 'under 2x'})"
            )
        if shape == (32, 10):
            notes.append(
                "per call: "
                + ", ".join(f"{op} {row['bnpy'][op] * 1e6:.1f}us" for op in ("fwd", "bwd", "inf"))
            )
        print(f"  {str(shape):>18} {layout:>6} {threads} threads: " + "; ".join(notes))
    if args.markdown:
        clock_note = (
            "1 thread: CPU time of the calling thread; 2 threads: wall time"
            if args.cpu_time
            else "wall time"
        )
        print()
        print(markdown_table(summary, clock_note))


def markdown_table(summary, clock_note):
    """The README's table: one line per case, fwd+bwd and inference against their references."""
    lines = [
        f"float32, medians; {clock_note}. Ratios > 1 in the last three columns mean bnpy is faster.",
        "",
        "| shape | layout | threads | fwd+bwd | ÷ floor | inference ÷ copy | NumPy f32 ÷ bnpy | float64 twin ÷ bnpy | torch ÷ bnpy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for shape, layout, threads, row in summary:
        b = row["bnpy"]
        cells = [
            str(shape),
            layout,
            str(threads),
            fmt_time(b["fwd+bwd"]).strip(),
            f"{ratio(row, 'bnpy', 'floor', 'fwd+bwd'):.2f}",
            f"{ratio(row, 'bnpy', 'floor', 'inf'):.2f}",
        ]
        cells.append(f"{ratio(row, 'numpy', 'bnpy', 'fwd+bwd'):.1f}" if "numpy" in row else "–")
        cells.append(f"{ratio(row, 'twin', 'bnpy', 'fwd+bwd'):.1f}" if "twin" in row else "–")
        cells.append(f"{ratio(row, 'torch', 'bnpy', 'fwd+bwd'):.2f}" if "torch" in row else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
