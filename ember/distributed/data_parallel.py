"""DistributedDataParallel: the same model on every rank, gradients averaged over ranks.

How the all-reduce overlaps backward: parameters are grouped into buckets of at most
``bucket_cap_mb`` in reverse registration order (about the order backward produces their
gradients). Each parameter has a post-accumulate-grad hook; when the last gradient of a bucket
arrives, that bucket's non-blocking ``Iallreduce`` starts while backward keeps computing the
earlier layers' gradients. Buckets start strictly in index order, so every rank issues the same
sequence of collectives. ember has no end-of-backward callback, so the hook that starts the
last bucket also waits for all of them and writes the averaged gradients into ``.grad``: when
``loss.backward()`` returns, the gradients are synchronized. ``forward`` arms this for one
backward.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Iterator

import numpy as np

from ..nn.module import Module
from ..ops import registry as R
from ..tensor import Tensor, _new
from . import mpi
from .mpi import DistributedError


_WRAPPER: "weakref.WeakKeyDictionary[Module, weakref.ref]" = weakref.WeakKeyDictionary()  # module -> its DDP


class _Bucket:
    """Gradients of a few parameters packed in one flat buffer: one Iallreduce."""

    def __init__(self, entries: list, dtype: np.dtype):
        self.entries = entries  # (index, name, param, lo, hi)
        self.flat = np.zeros(entries[-1][4], dtype)
        self.pending = len(entries)
        self.request = None


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training under ``mpiexec -n N``.

    At construction rank 0's parameters and buffers are broadcast to every rank (after checking
    that all ranks built the same model). Each ``backward()`` after a ``forward`` through this
    wrapper leaves every rank with the gradients averaged over ranks. Save ``ddp.module``.

    >>> ddp = dist.DistributedDataParallel(model); loss_fn(ddp(xb), yb).backward(); opt.step()

    - bucket_cap_mb: the most gradient data one all-reduce carries (a bigger parameter gets a
      bucket of its own). Smaller buckets start communication earlier; bigger ones pay less
      per-message latency.
    - broadcast_buffers: copy rank 0's buffers (BatchNorm running statistics) to every rank at
      each forward, as PyTorch does.
    - find_unused_parameters: walk the graph after each forward and count parameters it does not
      reach as ready (zero gradient). Without it such a parameter keeps its bucket from ever
      starting and the next forward raises an error naming it.
    - process_group: an mpi4py communicator (default: the world from ``dist.init()``).
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True,
                 find_unused_parameters: bool = False, process_group=None):
        super().__init__()
        if not isinstance(module, Module):
            raise DistributedError(f"DistributedDataParallel: expected an ember.nn.Module, got "
                                   f"{type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise DistributedError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        world = mpi.init()
        self.module = module
        self._comm = process_group if process_group is not None else world
        self._world = self._comm.Get_size()
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        _check_same_model(self._comm, module)
        with _no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                _bcast(self._comm, t)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._buckets = _assign_buckets(named[::-1], int(bucket_cap_mb * 2**20))
        self._ready = [False] * len(named)
        self._armed = self._done = False
        self._sync = True
        self._next = 0
        old = _WRAPPER.get(module)
        if old is not None and old() is not None:  # wrapping again detaches the previous wrapper
            for h in old()._handles:
                h.remove()
        _WRAPPER[module] = weakref.ref(self)
        self._handles = [e[2].register_post_accumulate_grad_hook(self._make_hook(b, e))
                         for b in self._buckets for e in b.entries]

    @property
    def bucket_sizes(self) -> list[int]:
        """Bytes of gradient each bucket all-reduces, in launch order."""
        return [b.flat.nbytes for b in self._buckets]

    def forward(self, *args, **kwargs):
        self._check_finished()
        if self.broadcast_buffers and self._world > 1:
            with _no_grad():
                for t in self.module.buffers():
                    _bcast(self._comm, t)
        out = self.module(*args, **kwargs)
        self._done = False
        if self._sync and R.is_grad_enabled() and self._buckets:
            self._arm()
            if self.find_unused_parameters:
                self._mark_unused(_reachable_leaves(out))
        return out

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally (no communication) for the backward passes in this
        block; the first synchronized backward after it averages the accumulated sums."""
        prev, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = prev

    # -- the reducer --------------------------------------------------------------------------
    def _arm(self) -> None:
        for b in self._buckets:
            b.pending, b.request = len(b.entries), None
        self._ready = [False] * len(self._ready)
        self._next = 0
        self._armed, self._done = True, False

    def _check_finished(self) -> None:
        if self._armed and any(self._ready):
            missing = [e[1] for b in self._buckets for e in b.entries if not self._ready[e[0]]]
            raise DistributedError(
                f"DistributedDataParallel: the last backward produced no gradient for "
                f"{len(missing)} parameter(s) ({', '.join(missing[:5])}), so their buckets were "
                f"never all-reduced. Pass find_unused_parameters=True if the model skips them on "
                f"purpose, or set requires_grad=False on them before wrapping")

    def _make_hook(self, bucket: _Bucket, entry: tuple):
        def hook(p: Tensor) -> None:
            if self._sync and (self._armed or self._done):  # else: a backward not through ddp
                self._mark_ready(bucket, entry, p.grad)
        return hook

    def _mark_ready(self, bucket: _Bucket, entry: tuple, grad: Tensor | None) -> None:
        index, name, _, lo, hi = entry
        if not self._armed or self._ready[index]:
            raise DistributedError(
                f"DistributedDataParallel: parameter {name} got a gradient twice after one forward "
                f"(a second backward through the same graph); run the model again before each "
                f"backward, or wrap the extra backward passes in ddp.no_sync()")
        self._ready[index] = True
        if grad is None:
            bucket.flat[lo:hi] = 0
        else:
            bucket.flat[lo:hi] = grad._host().reshape(-1)
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready()
        elif self._next:  # let MPI progress the buckets already in flight
            mpi._state["MPI"].Request.Testall([b.request for b in self._buckets[:self._next]])

    def _launch_ready(self) -> None:
        MPI = mpi._state["MPI"]
        while self._next < len(self._buckets) and self._buckets[self._next].pending == 0:
            b = self._buckets[self._next]
            b.request = self._comm.Iallreduce(MPI.IN_PLACE, b.flat, op=MPI.SUM)
            self._next += 1
        if self._next == len(self._buckets):
            self._finish()

    def _finish(self) -> None:
        """Wait for every bucket and write the averaged gradients into ``.grad``."""
        mpi._state["MPI"].Request.Waitall([b.request for b in self._buckets])
        scale = 1.0 / self._world
        for b in self._buckets:
            for _, _, p, lo, hi in b.entries:
                avg = b.flat[lo:hi].reshape(p.shape)
                g = p.grad
                if g is not None and type(g._data) is np.ndarray and g._data.flags.writeable:
                    np.multiply(avg, scale, out=g._data, casting="unsafe")
                else:
                    from ..backends import backend_for
                    p.grad = _new(backend_for(p._dev).from_host(avg * scale, p._dev), p._dev)
        self._armed, self._done = False, True

    def _mark_unused(self, reachable: set) -> None:
        for b in self._buckets:
            for e in b.entries:
                if id(e[2]) not in reachable:
                    self._mark_ready(b, e, None)


def _no_grad():
    from ..autograd import no_grad
    return no_grad()


def _assign_buckets(named: list, cap: int) -> list[_Bucket]:
    """Consecutive parameters (backward order) of one dtype, at most ``cap`` bytes a bucket."""
    buckets, cur, size = [], [], 0
    for i, (name, p) in enumerate(named):
        if cur and (size + p.nbytes > cap or p._data.dtype != cur[0][2]._data.dtype):
            buckets.append(_Bucket(cur, cur[0][2]._data.dtype))
            cur, size = [], 0
        lo = cur[-1][4] if cur else 0
        cur.append((i, name, p, lo, lo + p.numel()))
        size += p.nbytes
    if cur:
        buckets.append(_Bucket(cur, cur[0][2]._data.dtype))
    return buckets


def _bcast(comm, t: Tensor) -> None:
    buf = mpi._buffer(t, "DistributedDataParallel")
    comm.Bcast(buf, root=0)
    mpi._write_back(t, buf)


def _check_same_model(comm, module: Module) -> None:
    """Every rank must hold the same parameter and buffer names, shapes and dtypes."""
    mine = [(kind, n, tuple(t.shape), t.dtype.name)
            for kind, items in (("parameter", module.named_parameters()), ("buffer", module.named_buffers()))
            for n, t in items]
    every = comm.allgather(mine)
    if all(m == every[0] for m in every):
        return
    tables = [{(k, n): (s, d) for k, n, s, d in m} for m in every]
    for key in dict.fromkeys(k for t in tables for k in t):
        seen = [t.get(key) for t in tables]
        if any(s != seen[0] for s in seen):
            where = ", ".join((f"shape {s[0]} {s[1]}" if s else "no such entry") + f" on rank {r}"
                              for r, s in enumerate(seen))
            raise DistributedError(
                f"DistributedDataParallel: the model differs across ranks: {key[0]} '{key[1]}' has "
                f"{where}. Build the same model on every rank (same config, same input size)")
    raise DistributedError("DistributedDataParallel: the ranks list the same parameters in a "
                           "different order; build the model the same way on every rank")


def _reachable_leaves(out) -> set:
    """ids of the leaf tensors the graph of ``out`` (a tensor or nested tuple/list/dict) reaches."""
    stack, tensors = [out], []
    while stack:
        o = stack.pop()
        if isinstance(o, Tensor):
            tensors.append(o)
        elif isinstance(o, (tuple, list)):
            stack.extend(o)
        elif isinstance(o, dict):
            stack.extend(o.values())
    leaves, seen = {id(t) for t in tensors if t._node is None}, set()
    nodes = [t._node for t in tensors if t._node is not None]
    while nodes:
        n = nodes.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        for p in n.parents:
            if type(p) is R.Node:
                nodes.append(p)
            elif p is not None:
                leaves.add(id(p))
    return leaves
