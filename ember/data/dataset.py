"""Datasets: anything with __len__ and __getitem__; TensorDataset, Subset, random_split.

A dataset may also define ``__getitems__(indices)`` that returns a whole *collated batch* for a
sequence of indices (for TensorDataset: one fancy index per tensor). The DataLoader uses it
when no custom collate_fn is given, so batching costs no per-sample Python loop.
"""
from __future__ import annotations

import math
from typing import Any, Generic, Sequence, TypeVar

import numpy as np

import ember
from ember.errors import EmberError

__all__ = ["DataError", "Dataset", "TensorDataset", "Subset", "random_split"]

T = TypeVar("T")


class DataError(EmberError, ValueError):
    """A dataset, loader, transform or collate got data it cannot handle."""


class Dataset(Generic[T]):
    """Base class of map-style datasets: subclass and define __len__ and __getitem__.

    Example: class Squares(Dataset): __len__ = lambda s: 10; __getitem__ = lambda s, i: i * i
    """

    def __getitem__(self, index: int) -> T:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


def _index_array(indices: Any) -> np.ndarray:
    return np.asarray(indices, dtype=np.int64).reshape(-1)


class TensorDataset(Dataset):
    """Samples are rows of the given tensors (ember tensors or numpy arrays), same length.

    Example: ds = TensorDataset(x, y); xi, yi = ds[0]
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise DataError("TensorDataset needs at least one tensor, e.g. TensorDataset(x, y)")
        lengths = [t.shape[0] if len(t.shape) else None for t in tensors]
        if None in lengths or len(set(lengths)) != 1:
            shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
            raise DataError(f"TensorDataset: every tensor needs the same first dimension (one row "
                            f"per sample), got shapes {shapes}")
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: int) -> tuple:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]) -> tuple:
        idx = _index_array(indices)  # one fancy index per tensor, not one per sample
        return tuple(t[idx] for t in self.tensors)


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order.

    Example: first_ten = Subset(ds, range(10))
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = _index_array(indices)
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise DataError(f"Subset: indices must lie in [0, {n}) for a dataset of {n} samples, "
                            f"got range [{self.indices.min()}, {self.indices.max()}]")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]

    @property
    def __getitems__(self):
        # Present only when the wrapped dataset has it, so hasattr() tells the DataLoader the truth.
        inner = getattr(self.dataset, "__getitems__", None)
        if inner is None:
            raise AttributeError("__getitems__")
        return lambda indices: inner(self.indices[_index_array(indices)])


def random_split(dataset: Dataset, lengths: Sequence[int | float],
                 generator: "ember.random.Generator | None" = None) -> list[Subset]:
    """Split `dataset` into non-overlapping random Subsets of the given lengths or fractions.

    Example: train, val = random_split(ds, [0.9, 0.1], generator=ember.random.Generator(0))

    Fractions summing to 1 are turned into counts like PyTorch does: floor each, then hand the
    remainder out one by one, round robin from the first split.
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        if any(x < 0 for x in lengths):
            raise DataError(f"random_split: fractions must be >= 0, got {lengths}")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(not isinstance(x, (int, np.integer)) or x < 0 for x in lengths) or sum(lengths) != n:
        raise DataError(f"random_split: lengths {lengths} must be non-negative ints summing to the "
                        f"dataset's {n} samples, or fractions summing to 1 (e.g. [0.8, 0.2])")
    gen = generator if generator is not None else ember.random.default_generator
    perm = gen.np.permutation(n)
    splits, start = [], 0
    for count in lengths:
        splits.append(Subset(dataset, perm[start:start + count]))
        start += count
    return splits
