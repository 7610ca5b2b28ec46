"""DistributedSampler: each rank iterates over its own disjoint shard of a dataset."""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from .mpi import DistributedError


class DistributedSampler:
    """Indices of this rank's shard of ``dataset``, for ``DataLoader(sampler=...)``.

    PyTorch semantics: every rank gets ``ceil(len / num_replicas)`` indices; without
    ``drop_last`` the (shuffled) order is padded by repeating its start so all ranks get equally
    many, with ``drop_last`` the tail is dropped instead. Rank r takes positions r, r+W, r+2W...
    Call ``set_epoch(epoch)`` before each epoch so the shuffle differs per epoch (and is the same
    on all ranks: it depends only on ``seed + epoch``).

    >>> sampler = DistributedSampler(ds); loader = DataLoader(ds, batch_size=32, sampler=sampler)
    >>> for epoch in range(5): sampler.set_epoch(epoch); train(loader)
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        from . import mpi
        num_replicas = mpi.world_size() if num_replicas is None else num_replicas
        rank = mpi.rank() if rank is None else rank
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise DistributedError(f"DistributedSampler: num_replicas must be an int >= 1, got {num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise DistributedError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}] "
                                   f"for num_replicas={num_replicas}, got {rank!r}")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, int(seed), drop_last, 0
        n = len(dataset)
        if drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng(self.seed + self.epoch).permutation(n)
        else:
            order = np.arange(n)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n:
            order = np.resize(order, self.total_size)  # repeats the order from its start
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use a new shuffle for ``epoch`` (call it on every rank with the same value)."""
        self.epoch = int(epoch)
