"""Data-parallel training over MPI: run the same script in N processes with ``mpiexec -n N``
(or ``ember run -n N script.py``); each trains on its own shard and gradients are averaged.

mpi4py and an MPI library are an optional extra (``pip install 'ember[mpi]'``); importing this
package works without them, the first call that needs MPI says how to install it.

>>> import ember.distributed as dist
>>> dist.init(); model = dist.DistributedDataParallel(model)
>>> loader = em.data.DataLoader(ds, batch_size=32, sampler=dist.DistributedSampler(ds))
>>> if dist.is_main_process(): print(loss.item())
"""
from .data_parallel import DistributedDataParallel
from .launcher import launch
from .mpi import (DistributedError, ReduceOp, all_gather, all_reduce, barrier, broadcast, init,
                  is_initialized, is_main_process, rank, world_size)
from .sampler import DistributedSampler
from .utils import prepare

__all__ = ["DistributedDataParallel", "DistributedError", "DistributedSampler", "ReduceOp",
           "all_gather", "all_reduce", "barrier", "broadcast", "init", "is_initialized",
           "is_main_process", "launch", "prepare", "rank", "world_size"]
