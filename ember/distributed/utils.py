"""``prepare``: turn a single-process model and loader into their data-parallel forms (used by
``fit(..., distributed=True)`` and ``ember train`` under mpiexec)."""
from __future__ import annotations

from ..data.loader import DataLoader
from ..nn.module import Module
from .data_parallel import DistributedDataParallel
from .sampler import DistributedSampler


def prepare(model: Module, loader: DataLoader | None = None, seed: int = 0,
            **ddp_kwargs) -> tuple[DistributedDataParallel, DataLoader | None]:
    """Wrap ``model`` in DistributedDataParallel and give ``loader`` a DistributedSampler (same
    dataset, batch size per rank, collate and prefetch; shuffled iff the loader shuffled).

    >>> ddp, loader = dist.prepare(model, loader)
    >>> for epoch in range(E): loader.sampler.set_epoch(epoch); ...
    """
    ddp = model if isinstance(model, DistributedDataParallel) else DistributedDataParallel(model, **ddp_kwargs)
    if loader is None or isinstance(loader.sampler, DistributedSampler):
        return ddp, loader
    sampler = DistributedSampler(loader.dataset, shuffle=bool(loader.shuffle), seed=seed,
                                 drop_last=loader.drop_last)
    return ddp, DataLoader(loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last,
                           collate_fn=loader.collate_fn, prefetch=loader.prefetch, sampler=sampler)
