"""Data-parallel training over MPI, with synchronized Batch Normalization.

One process per rank (``mpirun -n R python -m mpi4py script.py``); every rank holds the whole
model and the whole data set, takes its slice of each global batch, and the ranks combine what
the slices give so that a step is the step of one process on the whole batch::

    from bnpy import distributed
    context = distributed.init()              # the communicator, rank, size, threads per rank
    model = build(); model.compile(...)       # the same model on every rank
    trainer = distributed.DataParallel(model)  # rank 0's initial weights on every rank
    history = trainer.fit(x, y, batch_size=32, epochs=8, validation_data=(xv, yv))

``BatchNormalization(synchronized=True)`` normalizes with the statistics of the whole global
batch once :func:`init` has run in a job of more than one process; otherwise it is the ordinary
layer. mpi4py is imported by :func:`init` only, never by ``import bnpy``: install it with
``pip install "bnpy[mpi]"`` and an MPI runtime (docs/distributed.md).
"""

from ._context import Context, broadcast_weights, current, init
from ._data_parallel import DataParallel
from ._sync_bn import unsynchronized

__all__ = ["Context", "DataParallel", "broadcast_weights", "current", "init", "unsynchronized"]
