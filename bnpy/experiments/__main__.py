"""``bnpy-experiment article|paper-fig1 [options]`` (also ``python -m bnpy.experiments``)."""

import argparse
import sys

from . import _common
from ._common import ExperimentError


def _number_type(convert, accept, expected):
    """An argparse type: the text converted by ``convert`` and kept when ``accept(value)``, else
    the one-line error 'expected <expected>, got ...'."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                "expected {}, got {!r}".format(expected, text)
            ) from None
        if not accept(value):  # a NaN is refused too
            raise argparse.ArgumentTypeError("expected {}, got {}".format(expected, value))
        return value

    return parse


_positive_int = _number_type(int, lambda value: value >= 1, "a positive integer")
_nonnegative_int = _number_type(int, lambda value: value >= 0, "an integer >= 0")
_positive_float = _number_type(float, lambda value: value > 0, "a positive number")


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``prog: error: ...``) and exit status 2."""

    def error(self, message):
        self.exit(2, "{}: error: {} (see {} --help)\n".format(self.prog, message, self.prog))


DATA_HELP = (
    "Datasets are found offline first: in $BNPY_DATA, ~/.keras/datasets and system "
    "dataset folders (Debian's /usr/share/datasets); set BNPY_OFFLINE=1 to never "
    "download."
)


def _add_common(parser, dataset_help, batch_size):
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=batch_size,
        help="mini-batch size (default %(default)s)",
    )
    parser.add_argument(
        "--train-size",
        type=_positive_int,
        default=None,
        help="use the first N training images (default: all)",
    )
    parser.add_argument(
        "--test-size",
        type=_positive_int,
        default=None,
        help="use the first N test images (default: all)",
    )
    parser.add_argument(
        "--seed",
        type=_nonnegative_int,
        default=0,
        help="NumPy seed for initialisation and shuffling (default %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="threads of bnpy's C kernels and of NumPy's BLAS (the latter with "
        "threadpoolctl installed) (default: OMP_NUM_THREADS or all cores)",
    )
    parser.add_argument("--dataset", default=None, help=dataset_help)
    parser.add_argument(
        "--out",
        default=None,
        help="directory of this run's results (default: a new directory "
        "bnpy-results/<command>-<UTC time>)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out (default: the latest "
        "unfinished run under bnpy-results/) from its last checkpoint",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the results of an earlier run in --out"
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="Keras progress output: 0 silent, 1 progress bar, 2 one line per "
        "epoch (default %(default)s)",
    )


def build_parser():
    from . import article, paper_fig1

    parser = _Parser(
        prog="bnpy-experiment",
        epilog=DATA_HELP,
        description="Reproduce the article's comparison of BN placements (article) or the BN "
        "paper's Figure 1 (paper-fig1) with bnpy; results go to --out.",
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{article,paper-fig1}", parser_class=_Parser
    )
    sub.required = True

    p = sub.add_parser(
        "article",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="the article's LeNet-5-style net with and without BN (Adadelta, batch 32, 8 epochs)",
        description="Train the article's network in each group and compare.\n\ngroups:\n"
        + article.describe_groups(),
        epilog=DATA_HELP,
    )
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=article.DEFAULTS["epochs"],
        help="epochs per group (default %(default)s, as the article)",
    )
    p.add_argument(
        "--groups",
        default=None,
        help="comma-separated groups to run (default: all four: {})".format(
            ",".join(article.GROUPS)
        ),
    )
    p.add_argument(
        "--seeds",
        type=_positive_int,
        default=article.DEFAULTS["seeds"],
        help="train every group from N seeds: --seed, --seed + 1, ... (default "
        "%(default)s); the summary gives the spread and tests the differences",
    )
    p.add_argument(
        "--keep-checkpoints",
        action="store_true",
        help="keep the checkpoints of a finished run (default: removed at the end)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training over MPI, every BN synchronized: launch with "
        "`mpirun -n R python -m mpi4py -m bnpy.experiments article --distributed ...`; "
        "--batch-size is the global batch, rank 0 writes the results (docs/distributed.md)",
    )
    _add_common(
        p,
        "cifar10 | cifar10_sample | fashion_mnist | mnist | DIR: CIFAR-10 as Keras "
        "caches it (DIR/cifar-10-batches-py/ or the .tar.gz) or image class folders "
        "DIR/train/<class>/ and DIR/test/<class>/ (default: CIFAR-10 where it can be "
        "had, else the CIFAR-10 sample built into bnpy, saying so)",
        article.DEFAULTS["batch_size"],
    )

    p = sub.add_parser(
        "paper-fig1",
        help="the BN paper's Figure 1: 3x100 sigmoid MLP on 28x28 digits with and without BN",
        description="Ioffe & Szegedy (2015), section 4.1: test accuracy against training steps "
        "and the 15/50/85th percentiles of one last-hidden-layer sigmoid input.",
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        default=paper_fig1.DEFAULTS["steps"],
        help="training steps (mini-batches) per group (default %(default)s, as the paper)",
    )
    p.add_argument(
        "--eval-every",
        type=_positive_int,
        default=paper_fig1.DEFAULTS["eval_every"],
        help="evaluate and checkpoint every N steps (default %(default)s)",
    )
    p.add_argument(
        "--lr",
        type=_positive_float,
        default=paper_fig1.DEFAULTS["lr"],
        help="SGD learning rate (default %(default)s)",
    )
    p.add_argument(
        "--unit",
        type=_nonnegative_int,
        default=0,
        help="which sigmoid of the last hidden layer to follow (default %(default)s)",
    )
    p.add_argument(
        "--groups",
        default=None,
        help="comma-separated groups (default: {})".format(",".join(paper_fig1.GROUPS)),
    )
    _add_common(
        p,
        "mnist | fashion_mnist (default: MNIST, else Fashion-MNIST, saying so)",
        paper_fig1.DEFAULTS["batch_size"],
    )
    return parser


def main(argv=None, *, after_epoch=None):
    """Entry point of ``bnpy-experiment``; returns the exit status (0 done, 2 error, 130 Ctrl-C).

    ``after_epoch(group, done)`` is called after every checkpoint, on every rank of a
    --distributed run (tests interrupt runs with it).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from . import article, paper_fig1

    module = article if args.command == "article" else paper_fig1
    log = _common.Log()
    context = None  # the MPI context of a --distributed run
    try:
        if getattr(args, "distributed", False):
            context = _distributed_context(args)
            if not context.is_root:
                log = _common.Log(quiet=True)
        if args.threads is not None:
            _set_threads(args.threads, log)
        config = module.vars_config(args)
        module.validate_args(args)  # reject bad options and unusable data before creating anything
        data = module.load_data(args, log)
        if context is not None and not context.is_root:
            return _follow_root(context, module, args, data, after_epoch)
        try:
            run_dir, record, resuming = _common.prepare_run_dir(
                args.command,
                args.out,
                args.resume,
                args.overwrite,
                config,
                log,
                data=_common.data_identity(*data),
            )
        except BaseException:
            if context is not None:  # the other ranks wait for the run directory: stop them
                context.bcast_object(None)
            raise
        if context is not None:  # the other ranks train once rank 0 has its run directory
            context.bcast_object(
                {"resuming": resuming, "files": _common.read_run_files(run_dir) if resuming else {}}
            )
        log = _common.Log(run_dir)
        log(
            "bnpy-experiment {} -> {}{}".format(
                args.command, run_dir, " (resumed)" if resuming else ""
            )
        )
        record["status"] = "running"
        record.setdefault("resumed", [])
        if resuming:
            record["resumed"].append(_common.now_text())
        _common.write_json(_common.os.path.join(run_dir, _common.RUN_FILE), record)
        try:
            module.run(args, run_dir, resuming, log, data, after_epoch=after_epoch)
        except KeyboardInterrupt:
            record["status"] = "interrupted"
            _common.write_json(_common.os.path.join(run_dir, _common.RUN_FILE), record)
            log(
                "Interrupted. The finished epochs are checkpointed; continue with:\n"
                "  bnpy-experiment {} --out {} --resume {}".format(
                    args.command, run_dir, _same_options_hint(argv)
                )
            )
            return 130
        except ExperimentError:  # e.g. a damaged checkpoint: fixable, so still resumable
            record["status"] = "interrupted"
            _common.write_json(_common.os.path.join(run_dir, _common.RUN_FILE), record)
            raise
        except Exception as exc:  # recorded in the run, then reported as usual
            record["status"] = "failed"
            record["error"] = "{}: {}".format(type(exc).__name__, exc)
            _common.write_json(_common.os.path.join(run_dir, _common.RUN_FILE), record)
            raise
        record["status"] = "finished"
        record["finished"] = _common.now_text()
        _common.write_json(_common.os.path.join(run_dir, _common.RUN_FILE), record)
        log("Done: results in {}/ (summary.md, history-*.csv/json, figures)".format(run_dir))
        return 0
    except ExperimentError as exc:
        print("bnpy-experiment {}: error: {}".format(args.command, exc), file=sys.stderr)
        return 2


def _distributed_context(args):
    """This rank's bnpy.distributed context; rank 0 says what the job is."""
    try:
        from bnpy import distributed

        context = distributed.init(threads=args.threads)
    except ImportError as exc:
        raise ExperimentError(str(exc)) from None
    if context.is_root:
        print(
            "bnpy-experiment: distributed over {} ranks, {} thread(s) each; global batch {}, "
            "about {} samples a rank".format(
                context.size,
                context.threads,
                args.batch_size,
                args.batch_size // context.size,
            ),
            flush=True,
        )
    return context


def _follow_root(context, module, args, data, after_epoch):
    """A rank other than 0 of a --distributed run: the same training as rank 0 (its collectives
    need every rank), its files in a scratch directory removed at the end; rank 0 writes the
    run's results. A resumed run starts from a copy of rank 0's run directory, sent by rank 0,
    so that every rank loads the same checkpoints and skips the same finished parts."""
    import shutil
    import tempfile

    start = context.bcast_object(None)
    if start is None:
        return 2  # rank 0 could not prepare its run directory and said why
    args.verbose = 0
    scratch = tempfile.mkdtemp(prefix="bnpy-rank{}-".format(context.rank))
    try:
        _common.write_run_files(scratch, start["files"])
        module.run(
            args, scratch, start["resuming"], _common.Log(quiet=True), data, after_epoch=after_epoch
        )
    except KeyboardInterrupt:  # rank 0 records the interruption and says how to resume
        return 130
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _set_threads(n, log):
    """bnpy's OpenMP kernels and, where threadpoolctl is installed, NumPy's BLAS (the matrix
    products of Dense and of the convolutions): on a busy machine a BLAS that spins more threads
    than there are free cores can be ten times slower than one thread."""
    import bnpy

    bnpy.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log(
            "(--threads {}: bnpy's kernels only; install threadpoolctl, or set "
            "OPENBLAS_NUM_THREADS/OMP_NUM_THREADS, to limit NumPy's BLAS too)".format(n)
        )
        return
    threadpool_limits(limits=n)


def _same_options_hint(argv):
    argv = list(sys.argv[1:] if argv is None else argv)
    kept, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a in ("--out",):
            skip = True
            continue
        if a.startswith("--out=") or a in ("--resume", "--overwrite") or i == 0:
            continue
        kept.append(a)
    return " ".join(kept)


if __name__ == "__main__":
    sys.exit(main())
