"""DataLoader: batches from a dataset, seeded shuffling, default collate, background prefetch."""
from __future__ import annotations

import math
import queue
import threading
from collections.abc import Mapping
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

import ember
from .dataset import DataError, Dataset

__all__ = ["DataLoader", "default_collate", "CollateError"]


class CollateError(DataError):
    """Samples of one batch cannot be stacked.

    `position` is the offending sample's place in the batch; `reason` says what differs, with
    "{first}" standing for the batch's first sample (the DataLoader fills in its dataset index).
    """

    def __init__(self, message: str, position: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.position, self.reason = position, reason

    @classmethod
    def mismatch(cls, position: int, reason: str) -> "CollateError":
        return cls(f"default_collate: sample {position} of the batch "
                   + reason.format(first="the batch's first sample"), position, reason)


def _where(path: str, template: bool = False) -> str:
    where = f" (field {path} of the sample)" if path else ""
    return where.replace("{", "{{").replace("}", "}}") if template else where


def _stack(arrays: list[np.ndarray], path: str) -> Any:
    first = arrays[0].shape
    for j, a in enumerate(arrays):
        if a.shape != first:
            raise CollateError.mismatch(j, f"has shape {tuple(a.shape)} but {{first}} has shape "
                                           f"{tuple(first)}{_where(path, template=True)}")
    return ember.from_numpy(np.stack(arrays))


def _collate(batch: list, path: str) -> Any:
    elem = batch[0]
    if isinstance(elem, ember.Tensor):
        return _stack([t.detach().cpu().numpy() for t in batch], path)
    if isinstance(elem, (np.ndarray, np.generic)):
        return _stack([np.asarray(a) for a in batch], path)
    if isinstance(elem, (bool, int, float)):
        return ember.tensor(batch)  # ember's default dtypes: int64, float32, bool
    if isinstance(elem, str):
        return list(batch)
    if isinstance(elem, Mapping):
        return {k: _collate([d[k] for d in batch], f"{path}[{k!r}]") for k in elem}
    if isinstance(elem, (tuple, list)):
        for j, s in enumerate(batch):
            if len(s) != len(elem):
                raise CollateError.mismatch(j, f"has {len(s)} fields but {{first}} has "
                                               f"{len(elem)}{_where(path, template=True)}")
        fields = [_collate(list(f), f"{path}[{i}]") for i, f in enumerate(zip(*batch))]
        if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
            return type(elem)(*fields)
        return tuple(fields) if isinstance(elem, tuple) else fields
    raise DataError(f"default_collate: cannot batch a {type(elem).__name__}{_where(path)}; samples "
                    "may hold tensors, numpy arrays, numbers, strings and tuples/lists/dicts of "
                    "them. Pass collate_fn= to batch other types")


def default_collate(batch: Sequence[Any]) -> Any:
    """Stack a list of samples into a batch of ember tensors, keeping tuples/lists/dicts.

    Example: default_collate([(x0, 0), (x1, 1)]) -> (Tensor of shape (2, *x0.shape), Tensor([0, 1]))
    """
    if len(batch) == 0:
        raise DataError("default_collate: the batch is empty")
    return _collate(list(batch), "")


class DataLoader:
    """Iterate over `dataset` in batches.

    Example: for xb, yb in DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True): ...

    - shuffle: a new order each epoch, drawn when iteration starts from `generator` (default:
      ember's default generator, so `ember.manual_seed(0)` makes the order reproducible).
    - sampler: any iterable of dataset indices (instead of shuffle), e.g. a list or a custom object.
    - collate_fn: turns a list of samples into a batch; default `default_collate`. Without a custom
      collate_fn, a dataset's `__getitems__(indices)` (TensorDataset has one) builds the whole batch.
    - prefetch: how many batches a background thread prepares ahead (0: none). Random transforms
      that draw from the default generator then interleave with the training loop's draws; for
      bit-exact reruns give them their own Generator or keep prefetch=0.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, collate_fn: Callable[[list], Any] | None = None,
                 generator: "ember.random.Generator | None" = None, prefetch: int = 0,
                 sampler: Iterable[int] | None = None) -> None:
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise DataError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise DataError("DataLoader: give either shuffle=True or a sampler, not both "
                            "(a sampler decides the order itself)")
        if not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise DataError(f"DataLoader: prefetch must be an int >= 0, got {prefetch!r}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), shuffle
        self.drop_last, self.collate_fn, self.generator = drop_last, collate_fn, generator
        self.prefetch, self.sampler = int(prefetch), sampler

    def _order(self) -> np.ndarray:
        if self.sampler is not None:
            return np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        gen = self.generator if self.generator is not None else ember.random.default_generator
        return gen.np.permutation(n)

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _fetch(self, idx: np.ndarray) -> Any:
        if self.collate_fn is None:
            fast = getattr(self.dataset, "__getitems__", None)
            if fast is not None:
                return fast(idx)
        samples = [self.dataset[int(i)] for i in idx]
        try:
            return (self.collate_fn or default_collate)(samples)
        except CollateError as e:
            if e.position is None:
                raise
            first = f"the sample at dataset index {int(idx[0])}"
            raise CollateError(f"DataLoader: cannot stack a batch of {type(self.dataset).__name__}: "
                               f"the sample at dataset index {int(idx[e.position])} "
                               f"{e.reason.format(first=first)}. Make every sample the same shape "
                               "(crop or pad in a transform) or pass a collate_fn that pads",
                               e.position, e.reason) from None

    def _batches(self, order: np.ndarray) -> Iterator[Any]:
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield self._fetch(order[start:start + self.batch_size])

    def __iter__(self) -> Iterator[Any]:
        order = self._order()  # drawn now, in the caller's thread, so seeding stays exact
        if self.prefetch == 0:
            return self._batches(order)
        return _Prefetcher(self._batches(order), self.prefetch)


class _Prefetcher:
    """Runs a batch iterator in a daemon thread, `depth` batches ahead of the consumer.

    The thread holds only the queue and the stop event, not this object, so an iterator the
    consumer abandons (a `break`) is garbage collected, and __del__ stops the thread.
    """

    _DONE = object()

    def __init__(self, batches: Iterator[Any], depth: int) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_produce, args=(batches, self._queue, self._stop, self._DONE),
                                        daemon=True, name="ember-DataLoader-prefetch")
        self._thread.start()

    def __iter__(self) -> "_Prefetcher":
        return self

    def __next__(self) -> Any:
        if self._stop.is_set():
            raise StopIteration
        ok, item = self._queue.get()
        if not ok:
            self.close()
            raise item
        if item is self._DONE:
            self.close()
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the background thread (called on exhaustion, on error and on garbage collection)."""
        self._stop.set()

    def __del__(self) -> None:
        self._stop.set()


def _produce(batches: Iterator[Any], q: queue.Queue, stop: threading.Event, done: object) -> None:
    def put(item: Any) -> bool:
        while not stop.is_set():  # time out now and then so a stop is never stuck behind a full queue
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in batches:
            if not put((True, batch)):
                return
    except BaseException as e:  # handed to the consumer, raised there with its traceback
        put((False, e))
        return
    put((True, done))
