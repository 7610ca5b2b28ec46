"""The MPI world through mpi4py: init, rank, world_size, barrier and collectives on tensors.

mpi4py is imported on first use only, so ember runs (single process) without it. Under
``mpiexec -n N`` every process runs the same script; ``init()`` also makes an uncaught error on
any rank abort the whole job, so no rank waits forever in a collective for a dead peer.

>>> import ember.distributed as dist
>>> dist.init(); t = em.ones(3) * dist.rank(); dist.all_reduce(t)   # t is now the sum over ranks
"""
from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np

from ..errors import EmberError
from ..tensor import Tensor

INSTALL = "pip install 'ember[mpi]'   (or: pip install mpi4py mpich)"


class DistributedError(EmberError, RuntimeError):
    """MPI is missing, a collective got bad input, or the ranks disagree (model shapes...)."""


class ReduceOp:
    """Reduction names for ``all_reduce`` (PyTorch's ``dist.ReduceOp.SUM`` ...)."""

    SUM, AVG, PRODUCT, MIN, MAX = "sum", "avg", "product", "min", "max"


_state: dict[str, Any] = {"MPI": None, "comm": None}


def _import_mpi():
    try:
        from mpi4py import MPI
    except ModuleNotFoundError as e:
        raise DistributedError(f"ember.distributed needs mpi4py and an MPI library ({e}); "
                               f"install them with: {INSTALL}") from None
    except (ImportError, RuntimeError) as e:  # mpi4py is there but no MPI library loads
        raise DistributedError(f"ember.distributed: mpi4py is installed but cannot load an MPI "
                               f"library ({e}); install one with: pip install mpich") from None
    return MPI


def init(comm=None):
    """Join the MPI world (idempotent) and return the communicator.

    ``comm``: an mpi4py communicator to use instead of ``MPI.COMM_WORLD``. Run the script with
    ``mpiexec -n N python script.py`` or ``ember run -n N script.py``; without a launcher the
    world is this one process.
    """
    if _state["comm"] is None or comm is not None:
        MPI = _import_mpi()
        _state["MPI"], _state["comm"] = MPI, comm if comm is not None else MPI.COMM_WORLD
        if _state["comm"].Get_size() > 1 and not getattr(sys.excepthook, "_ember_abort", False):
            sys.excepthook = _abort_on_error(sys.excepthook)
    return _state["comm"]


def is_initialized() -> bool:
    """True after ``init()`` (or any call that initializes MPI)."""
    return _state["comm"] is not None


def _comm():
    return _state["comm"] if _state["comm"] is not None else init()


def rank() -> int:
    """This process's index in the world, 0..world_size()-1 (initializes MPI if needed)."""
    return _comm().Get_rank()


def world_size() -> int:
    """How many processes run the job (initializes MPI if needed)."""
    return _comm().Get_size()


def is_main_process() -> bool:
    """True on rank 0, and in a plain single process (MPI never initialized): the one that
    prints, logs and writes checkpoints. ``if dist.is_main_process(): em.save(...)``"""
    return _state["comm"] is None or _state["comm"].Get_rank() == 0


def barrier() -> None:
    """Wait until every rank gets here."""
    _comm().Barrier()


def _abort_on_error(previous):
    """A sys.excepthook for MPI jobs: name the rank, let ``previous`` print the error, then
    abort every rank (the others may be blocked in a collective, waiting for this one)."""
    def hook(etype, value, tb) -> None:
        comm = _state["comm"]
        try:
            sys.stdout.flush()
            sys.stderr.write(f"ember.distributed: rank {comm.Get_rank()} of {comm.Get_size()} "
                             f"failed; aborting all ranks\n")
            previous(etype, value, tb)
            sys.stderr.flush()
            # mpiexec forwards each rank's output asynchronously; Abort tears the job down at
            # once, so give the forwarder a moment or the message can be lost (seen in tests).
            time.sleep(0.5)
        finally:
            comm.Abort(1)
    hook._ember_abort = True
    return hook


# -- collectives on tensors ------------------------------------------------------------------
def _buffer(t: Tensor, name: str) -> np.ndarray:
    """A contiguous host array for MPI: the tensor's own memory when possible (CPU)."""
    if not isinstance(t, Tensor):
        raise DistributedError(f"{name}: expected an ember Tensor, got {type(t).__name__}")
    a = t._host()
    return a if a.flags.c_contiguous and a.flags.writeable else np.ascontiguousarray(a).copy()


def _write_back(t: Tensor, buf: np.ndarray) -> None:
    """Make ``t`` hold ``buf`` (an in-place write: counted like any other)."""
    from ..ops.inplace import _bump
    if buf is not t._data:
        from ..backends import backend_for
        t._data[...] = backend_for(t._dev).from_host(buf, t._dev)
    _bump(t)


def _mpi_op(op: str):
    MPI = _state["MPI"]
    table = {"sum": MPI.SUM, "avg": MPI.SUM, "product": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX}
    if op not in table:
        raise DistributedError(f"all_reduce: unknown op {op!r}; use one of {sorted(table)} "
                               f"(or dist.ReduceOp.SUM ...)")
    return table[op]


def all_reduce(tensor: Tensor, op: str = ReduceOp.SUM) -> Tensor:
    """Reduce ``tensor`` over all ranks, in place (every rank gets the result); returns it.

    >>> dist.all_reduce(t, op=dist.ReduceOp.AVG)
    """
    comm = _comm()
    mop = _mpi_op(op)
    buf = _buffer(tensor, "all_reduce")
    if op == ReduceOp.AVG and buf.dtype.kind != "f":
        raise DistributedError(f"all_reduce: op 'avg' needs a floating-point tensor, got {tensor.dtype}; "
                               f"use op='sum' and divide, or convert with .float()")
    comm.Allreduce(_state["MPI"].IN_PLACE, buf, op=mop)
    if op == ReduceOp.AVG:
        buf *= 1.0 / comm.Get_size()
    _write_back(tensor, buf)
    return tensor


def broadcast(tensor: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s values, in place; returns it."""
    comm = _comm()
    if not 0 <= src < comm.Get_size():
        raise DistributedError(f"broadcast: src={src} is not a rank (world size {comm.Get_size()})")
    buf = _buffer(tensor, "broadcast")
    comm.Bcast(buf, root=src)
    _write_back(tensor, buf)
    return tensor


def all_gather(tensor_list: list, tensor: Tensor) -> list:
    """Fill ``tensor_list`` (one tensor per rank, shaped like ``tensor``) with every rank's
    ``tensor``, PyTorch's signature: ``out = [em.empty(3) for _ in range(W)]; all_gather(out, t)``."""
    comm = _comm()
    size = comm.Get_size()
    if len(tensor_list) != size:
        raise DistributedError(f"all_gather: tensor_list has {len(tensor_list)} tensors, the world "
                               f"has {size} ranks; pass one tensor per rank")
    send = np.ascontiguousarray(_buffer(tensor, "all_gather"))
    for i, t in enumerate(tensor_list):
        if not isinstance(t, Tensor) or tuple(t.shape) != send.shape or t._data.dtype != send.dtype:
            got = f"{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
            raise DistributedError(f"all_gather: tensor_list[{i}] is {got}, expected shape "
                                   f"{send.shape} and dtype {send.dtype} like the input tensor")
    recv = np.empty((size,) + send.shape, send.dtype)
    comm.Allgather(send, recv)
    for t, part in zip(tensor_list, recv):
        t_buf = _buffer(t, "all_gather")
        t_buf[...] = part
        _write_back(t, t_buf)
    return tensor_list
